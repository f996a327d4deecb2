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

enum class DType : uint8_t { kF32, kBF16, kF16, kI32, kU8 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);

enum class Device : uint8_t { kCpu, kCuda };

constexpr int kMaxDims = 4;

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::kF32;
  Device device = Device::kCpu;
  int ndim = 0;
  int64_t shape[kMaxDims] = {0, 0, 0, 0};
  // Elements between consecutive rows of the last two dims viewed as a matrix
  // (rows = numel / last dim). 0 means contiguous (row_stride == shape[ndim-1]).
  int64_t row_stride = 0;

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
class HostTensor {
 public:
  HostTensor() = default;
  HostTensor(DType dtype, std::vector<int64_t> shape);
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

// bf16/f16 <-> f32 conversions (round-to-nearest-even for narrowing).
float bf16_to_f32(uint16_t v);
uint16_t f32_to_bf16(float v);
float f16_to_f32(uint16_t v);
uint16_t f32_to_f16(float v);
// Converts `count` elements of `src` (dtype F32/BF16/F16) into f32.
void convert_to_f32(const void* src, DType src_dtype, float* dst, size_t count);

}  // namespace frt
