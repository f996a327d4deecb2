// Entry checks shared by the CPU ops (see cpu_check.h). Covered by the error cases of
// tests/cpp/test_cpu_ops.cpp.
#include "backend/cpu/cpu_check.h"

#include "core/status.h"

namespace frt::cpu {

void check_tensor(const char* op, const char* operand, const Tensor& t, DType dtype) {
  if (t.device != Device::kCpu)
    throw_error(Status::kInternal, op, ": operand '", operand,
                "': expected a host (CPU) tensor, got a device tensor");
  if (t.dtype != dtype)
    throw_error(Status::kInternal, op, ": operand '", operand, "': expected dtype ",
                dtype_name(dtype), ", got ", dtype_name(t.dtype), " (shape ", t.shape_str(), ")");
  if (t.data == nullptr && t.numel() > 0)
    throw_error(Status::kInternal, op, ": operand '", operand, "': null data pointer (shape ",
                t.shape_str(), ")");
}

void check_matrix(const char* op, const char* operand, const Tensor& t, int64_t rows, int64_t cols,
                  DType dtype) {
  check_tensor(op, operand, t, dtype);
  if (t.ndim < 1 || t.rows() != rows || t.cols() != cols)
    throw_error(Status::kInternal, op, ": operand '", operand, "': expected a [", rows, ", ", cols,
                "] matrix, got shape ", t.shape_str());
  if (t.ld() < cols)
    throw_error(Status::kInternal, op, ": operand '", operand, "': row stride ", t.ld(),
                " is smaller than its ", cols, " columns");
}

void check_vector(const char* op, const char* operand, const Tensor& t, int64_t n, DType dtype) {
  check_tensor(op, operand, t, dtype);
  if (t.numel() != n)
    throw_error(Status::kInternal, op, ": operand '", operand, "': expected ", n,
                " elements, got shape ", t.shape_str());
  if (!t.contiguous())
    throw_error(Status::kInternal, op, ": operand '", operand,
                "': expected a contiguous vector, got a strided view (ld ", t.ld(), ")");
}

void check_arg(bool cond, const char* op, const char* what) {
  if (!cond) throw_error(Status::kInternal, op, ": ", what);
}

}  // namespace frt::cpu
