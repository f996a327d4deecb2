// CpuBackend memory (alloc, weights, copies), the CPU factory, and the CUDA entry points of a
// build without CUDA. Covered by tests/cpp/test_cpu_ops.cpp (CpuBackendMemory.*).
#include "backend/cpu/cpu_backend.h"

#include <cstring>
#include <utility>

#include "core/status.h"

namespace frt {

namespace {
// Bytes a view spans in memory, from its first element to the end of its last row.
size_t span_bytes(const Tensor& t) {
  if (t.numel() == 0) return 0;
  const int64_t elems = (t.rows() - 1) * t.ld() + t.cols();
  return static_cast<size_t>(elems) * dtype_size(t.dtype);
}

void check_copy(const char* where, const Tensor& t, size_t bytes) {
  if (t.device != Device::kCpu)
    throw_error(Status::kInternal, where, ": expected a CPU tensor, got a device tensor");
  // A packed byte count means nothing for a strided view of several rows.
  if (!t.contiguous() && t.rows() > 1)
    throw_error(Status::kInternal, where, ": tensor ", t.shape_str(), " is a strided view (ld ",
                t.ld(), "); copy it row by row");
  if (bytes > span_bytes(t))
    throw_error(Status::kInternal, where, ": ", bytes, " bytes do not fit tensor ", t.shape_str(),
                " ", dtype_name(t.dtype), " (", t.nbytes(), " bytes)");
}
}  // namespace

Tensor CpuBackend::alloc(DType dtype, std::initializer_list<int64_t> shape, const char* what) {
  if (shape.size() > static_cast<size_t>(kMaxDims))
    throw_error(Status::kInternal, "cpu alloc '", what ? what : "?", "': ", shape.size(),
                " dims; at most ", kMaxDims);
  for (int64_t d : shape)
    if (d < 0)
      throw_error(Status::kInternal, "cpu alloc '", what ? what : "?", "': negative dim ", d);
  // HostTensor gives 64-byte aligned, zeroed storage; the backend keeps it until destruction.
  HostTensor t(dtype, std::vector<int64_t>(shape));
  bytes_ += t.nbytes();
  Tensor view = t.view();
  buffers_.push_back(std::move(t));
  return view;
}

Tensor CpuBackend::upload_weight(HostTensor&& w, const std::string& name, WeightUse) {
  if (w.dtype() == DType::kBF16 || w.dtype() == DType::kF16) {
    // Weights are expected in f32 already; widen the odd narrow one instead of refusing it.
    HostTensor wide(DType::kF32, w.shape());
    convert_to_f32(w.data(), w.dtype(), wide.as<float>(), static_cast<size_t>(w.numel()));
    w = std::move(wide);
  }
  if (w.data() == nullptr)
    throw_error(Status::kInternal, "cpu upload_weight '", name, "': empty host tensor");
  bytes_ += w.nbytes();
  Tensor view = w.view();
  buffers_.push_back(std::move(w));  // keeps the buffer: no copy
  return view;
}

void CpuBackend::copy_to_device(Tensor dst, const void* host_src, size_t bytes) {
  check_copy("cpu copy_to_device", dst, bytes);
  if (bytes) std::memcpy(dst.data, host_src, bytes);
}

void CpuBackend::copy_to_host(void* host_dst, Tensor src, size_t bytes) {
  check_copy("cpu copy_to_host", src, bytes);
  if (bytes) std::memcpy(host_dst, src.data, bytes);
}

float* CpuBackend::scratch(size_t count) {
  if (scratch_.size() < count) scratch_.resize(count);
  return scratch_.data();
}

double* CpuBackend::scratch_f64(size_t count) {
  if (scratch_f64_.size() < count) scratch_f64_.resize(count);
  return scratch_f64_.data();
}

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

#ifndef FLASHRT_WITH_CUDA
// This build has no CUDA backend (src/backend/cuda/ defines these when it is compiled).
bool cuda_available(std::string* why_not) {
  if (why_not) *why_not = "built without CUDA (FLASHRT_CUDA=OFF)";
  return false;
}

bool cuda_supports_fp8(int, std::string* why_not) {
  if (why_not) *why_not = "built without CUDA (FLASHRT_CUDA=OFF)";
  return false;
}

std::unique_ptr<Backend> make_cuda_backend(int device_index, Precision) {
  throw_error(Status::kNotSupported, "CUDA backend (device ", device_index,
              "): this build has no CUDA support (FLASHRT_CUDA=OFF); rebuild with nvcc available "
              "(cmake -DFLASHRT_CUDA=ON) or use hardware='cpu'");
}
#endif

}  // namespace frt
