// Entry checks shared by the CPU ops: dtype, device and shape of each operand, throwing
// frt::Error(kInternal) "<op>: operand '<name>': expected ..., got ..." on a mismatch.
// Covered by the error cases of tests/cpp/test_cpu_ops.cpp.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace frt::cpu {

// Host memory, non-null, of dtype `dtype`.
void check_tensor(const char* op, const char* operand, const Tensor& t, DType dtype);
// A matrix view of `rows` x `cols` (rows = numel / last dim) with ld() >= cols.
void check_matrix(const char* op, const char* operand, const Tensor& t, int64_t rows, int64_t cols,
                  DType dtype = DType::kF32);
// A contiguous vector of `n` elements (any shape with numel == n, e.g. [n] or [1, n]).
void check_vector(const char* op, const char* operand, const Tensor& t, int64_t n,
                  DType dtype = DType::kF32);
// Throws kInternal "<op>: <what>" when `cond` is false (parameter checks).
void check_arg(bool cond, const char* op, const char* what);

}  // namespace frt::cpu
