// Host-side checks of the CUDA backend (see cuda_check.h). Covered by tests/gpu/test_cuda_ops.cpp.
#include "backend/cuda/cuda_check.h"

#include <cstring>
#include <string>

namespace frt::cuda {

namespace {
std::string dtype_list(std::initializer_list<DType> dtypes) {
  std::string s;
  for (DType d : dtypes) s += (s.empty() ? "" : " or ") + std::string(dtype_name(d));
  return s;
}

void check_device_tensor(const char* op, const char* operand, const Tensor& t,
                         std::initializer_list<DType> dtypes) {
  if (t.device != Device::kCuda)
    throw_error(Status::kInternal, op, ": operand '", operand,
                "': expected a CUDA device tensor, got a host tensor (shape ", t.shape_str(), ")");
  bool ok = false;
  for (DType d : dtypes) ok = ok || t.dtype == d;
  if (!ok)
    throw_error(Status::kInternal, op, ": operand '", operand, "': expected dtype ",
                dtype_list(dtypes), ", got ", dtype_name(t.dtype), " (shape ", t.shape_str(), ")");
  if (t.data == nullptr && t.numel() > 0)
    throw_error(Status::kInternal, op, ": operand '", operand, "': null data pointer (shape ",
                t.shape_str(), ")");
  if (reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype) != 0)
    throw_error(Status::kInternal, op, ": operand '", operand, "': data pointer ", t.data,
                " is not aligned to its ", dtype_size(t.dtype), "-byte elements");
}
}  // namespace

const char* api_name(const char* call_text, char (&buf)[64]) {
  size_t n = 0;
  while (call_text[n] && call_text[n] != '(' && n + 1 < sizeof(buf)) {
    buf[n] = call_text[n];
    ++n;
  }
  buf[n] = '\0';
  return buf;
}

void throw_cuda(const char* op, const char* call_text, cudaError_t err) {
  char buf[64];
  throw_error(Status::kCudaError, op, ": ", api_name(call_text, buf), " failed: ",
              cudaGetErrorString(err), " (", cudaGetErrorName(err), ")");
}

void throw_cublas(const char* op, const char* call_text, cublasStatus_t st) {
  char buf[64];
  throw_error(Status::kCudaError, op, ": ", api_name(call_text, buf), " failed: ",
              cublasLtGetStatusString(st), " (status ", static_cast<int>(st), ")");
}

void check_matrix(const char* op, const char* operand, const Tensor& t, int64_t rows,
                  int64_t cols, std::initializer_list<DType> dtypes) {
  check_device_tensor(op, operand, t, dtypes);
  if (t.ndim < 1 || t.rows() != rows || t.cols() != cols)
    throw_error(Status::kInternal, op, ": operand '", operand, "': expected a [", rows, ", ",
                cols, "] matrix, got shape ", t.shape_str());
  if (t.ld() < cols)
    throw_error(Status::kInternal, op, ": operand '", operand, "': row stride ", t.ld(),
                " is smaller than its ", cols, " columns");
}

void check_vector(const char* op, const char* operand, const Tensor& t, int64_t n,
                  std::initializer_list<DType> dtypes) {
  check_device_tensor(op, operand, t, dtypes);
  if (t.numel() != n)
    throw_error(Status::kInternal, op, ": operand '", operand, "': expected ", n,
                " elements, got shape ", t.shape_str());
  if (!t.contiguous() && t.rows() > 1)
    throw_error(Status::kInternal, op, ": operand '", operand,
                "': expected a contiguous vector, got a strided view (ld ", t.ld(), ")");
}

void check_nd(const char* op, const char* operand, const Tensor& t, int ndim,
              std::initializer_list<DType> dtypes) {
  check_device_tensor(op, operand, t, dtypes);
  if (t.ndim != ndim || !t.contiguous())
    throw_error(Status::kInternal, op, ": operand '", operand, "': expected a contiguous ", ndim,
                "-D tensor, got shape ", t.shape_str(), t.contiguous() ? "" : " (strided)");
}

void check_arg(bool cond, const char* op, const char* what) {
  if (!cond) throw_error(Status::kInternal, op, ": ", what);
}

}  // namespace frt::cuda
