// Tensors: a non-owning view (Tensor) used across the backend interface, and an owning host
// buffer (HostTensor) used by loaders and tests. Shapes are row-major; a 2-D view may have a row
// stride larger than its width so ops can read column slices of a fused buffer (e.g. q/k/v of
// one QKV projection) without copies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace frt {

// kF8E4M3: OCP FP8 E4M3 (finite max 448), the CUDA backend's FP8 GEMM weights and inputs.
enum class DType : uint8_t { kF32, kBF16, kF16, kI32, kU8, kF8E4M3 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);

enum class Device : uint8_t { kCpu, kCuda };

constexpr int kMaxDims = 4;

// Quantization data of one FP8 GEMM weight (the CUDA backend in FP8 mode makes one per weight it
// quantizes, at upload). A weight is used by exactly one GEMM site of the model (the expert's
// weights by the same site in every Euler step), so the site's activation scale lives here too.
// All pointers are device memory that a captured graph reads: changing a scale needs no recapture.
struct QuantInfo {
  const float* w_scale = nullptr;  // [1]: real weight = fp8 value * w_scale
  float* x_scale = nullptr;        // [1]: static input scale: x_fp8 = saturate(x / x_scale)
  float* x_amax = nullptr;         // [1]: calibration: max |x| seen at this site since reset
  int site = -1;                   // index of the site (upload order) in calibration data
};

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::kF32;
  Device device = Device::kCpu;
  int ndim = 0;
  int64_t shape[kMaxDims] = {0, 0, 0, 0};
  // Elements between consecutive rows of the last two dims viewed as a matrix
  // (rows = numel / last dim). 0 means contiguous (row_stride == shape[ndim-1]).
  int64_t row_stride = 0;
  // FP8 weights only: their scales (owned by the backend); nullptr for everything else.
  const QuantInfo* quant = nullptr;

  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
  int64_t numel() const;
  int64_t rows() const { return ndim == 0 ? 1 : numel() / shape[ndim - 1]; }
  int64_t cols() const { return ndim == 0 ? 1 : shape[ndim - 1]; }
  int64_t ld() const { return row_stride ? row_stride : cols(); }
  bool contiguous() const { return row_stride == 0 || row_stride == cols(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }

  template <typename T>
  T* as() const { return static_cast<T*>(data); }

  // Rows [begin, begin + count) of a tensor viewed as a matrix (keeps row_stride).
  Tensor row_slice(int64_t begin, int64_t count) const;
  // Columns [begin, begin + count) of the last dim; the result has row_stride = ld().
  Tensor col_slice(int64_t begin, int64_t count) const;
  // Same memory, new shape (requires contiguous and equal numel).
  Tensor reshape(std::initializer_list<int64_t> new_shape) const;

  std::string shape_str() const;  // "[256, 1152]"
};

Tensor make_view(void* data, DType dtype, Device device, std::initializer_list<int64_t> shape);
Tensor make_view(void* data, DType dtype, Device device, const std::vector<int64_t>& shape);

// Owning host tensor (64-byte aligned storage).
// Whether a new HostTensor's bytes are zeroed (the default) or left for the caller to overwrite
// entirely (kNone: the load path, where zeroing 14 GB of f32 that is written next cost seconds).
enum class HostInit : uint8_t { kZero, kNone };

class HostTensor {
 public:
  HostTensor() = default;
  HostTensor(DType dtype, std::vector<int64_t> shape, HostInit init = HostInit::kZero);
  HostTensor(const HostTensor&) = delete;
  HostTensor& operator=(const HostTensor&) = delete;
  HostTensor(HostTensor&&) noexcept;
  HostTensor& operator=(HostTensor&&) noexcept;
  ~HostTensor();

  Tensor view() const;
  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  void* data() const { return data_; }
  template <typename T>
  T* as() const { return static_cast<T*>(data_); }

 private:
  DType dtype_ = DType::kF32;
  std::vector<int64_t> shape_;
  void* data_ = nullptr;
};

// max |v[i]| over n floats (multi-threaded for large n); +inf when any value is inf or NaN, so
// one isfinite() check on the result catches both.
float max_abs(const float* v, size_t n);

// bf16/f16 <-> f32 conversions (round-to-nearest-even for narrowing).
float bf16_to_f32(uint16_t v);
uint16_t f32_to_bf16(float v);
float f16_to_f32(uint16_t v);
uint16_t f32_to_f16(float v);
// OCP FP8 E4M3 (as __nv_fp8_e4m3 with __NV_SATFINITE): round-to-nearest-even, |x| > 448
// saturates to ±448, NaN stays NaN (0x7F). Host twins of the CUDA conversions.
float e4m3_to_f32(uint8_t v);
uint8_t f32_to_e4m3(float v);
constexpr float kE4M3Max = 448.f;
// Converts `count` elements of `src` (dtype F32/BF16/F16/F8E4M3, unscaled) into f32.
void convert_to_f32(const void* src, DType src_dtype, float* dst, size_t count);

}  // namespace frt
