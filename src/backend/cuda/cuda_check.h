// Host-side checks of the CUDA backend: the error macros that turn a failed CUDA runtime /
// cuBLASLt call or kernel launch into frt::Error(kCudaError, "<op>: <api> failed: <reason>"), and
// the operand checks every op runs at its entry (device, dtype, shape, row stride), throwing
// frt::Error(kInternal) "<op>: operand '<name>': expected ..., got ...".
// Covered by tests/gpu/test_cuda_ops.cpp (CudaOps.RejectsBadShapes and every op case).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

#include "core/status.h"
#include "core/tensor.h"

namespace frt::cuda {

// The function name of a call expression ("cudaMalloc(&p, n)" -> "cudaMalloc").
const char* api_name(const char* call_text, char (&buf)[64]);

[[noreturn]] void throw_cuda(const char* op, const char* call_text, cudaError_t err);
[[noreturn]] void throw_cublas(const char* op, const char* call_text, cublasStatus_t st);

// A matrix view of `rows` x `cols` (rows = numel / last dim), ld() >= cols, on the device, with a
// dtype from `dtypes`.
void check_matrix(const char* op, const char* operand, const Tensor& t, int64_t rows,
                  int64_t cols, std::initializer_list<DType> dtypes);
// A contiguous vector of `n` elements (any shape with numel == n, e.g. [n] or [1, n]).
void check_vector(const char* op, const char* operand, const Tensor& t, int64_t n,
                  std::initializer_list<DType> dtypes);
// A contiguous device tensor of exactly `ndim` dims with a dtype from `dtypes` (shape unchecked).
void check_nd(const char* op, const char* operand, const Tensor& t, int ndim,
              std::initializer_list<DType> dtypes);
// Throws kInternal "<op>: <what>" when `cond` is false.
void check_arg(bool cond, const char* op, const char* what);

}  // namespace frt::cuda

// FRT_CUDA_CHECK("linear", cudaMemsetAsync(...)): throws kCudaError naming the op and the API.
#define FRT_CUDA_CHECK(op, call)                                     \
  do {                                                               \
    const cudaError_t frt_err_ = (call);                             \
    if (frt_err_ != cudaSuccess) ::frt::cuda::throw_cuda(op, #call, frt_err_); \
  } while (0)

#define FRT_CUBLAS_CHECK(op, call)                                          \
  do {                                                                      \
    const cublasStatus_t frt_st_ = (call);                                  \
    if (frt_st_ != CUBLAS_STATUS_SUCCESS) ::frt::cuda::throw_cublas(op, #call, frt_st_); \
  } while (0)

// After every kernel launch: a bad configuration (grid, shared memory) shows up here.
#define FRT_CUDA_LAUNCH_CHECK(op)                                               \
  do {                                                                          \
    const cudaError_t frt_err_ = cudaGetLastError();                            \
    if (frt_err_ != cudaSuccess) ::frt::cuda::throw_cuda(op, "kernel launch", frt_err_); \
  } while (0)
