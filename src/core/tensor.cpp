// Tensor views, owning host tensors and float format conversions.
#include "core/tensor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>

#include "core/status.h"

namespace frt {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kF16: return 2;
    case DType::kI32: return 4;
    case DType::kU8: return 1;
    case DType::kF8E4M3: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
    case DType::kI32: return "I32";
    case DType::kU8: return "U8";
    case DType::kF8E4M3: return "F8_E4M3";
  }
  return "?";
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

Tensor Tensor::row_slice(int64_t begin, int64_t count) const {
  FRT_CHECK(ndim >= 1 && begin >= 0 && count >= 0 && begin + count <= rows(),
            "row_slice [", begin, ", ", begin + count, ") of ", shape_str());
  Tensor t = *this;
  t.data = static_cast<char*>(data) + begin * ld() * static_cast<int64_t>(dtype_size(dtype));
  // Collapse leading dims into rows.
  t.ndim = 2;
  t.shape[0] = count;
  t.shape[1] = cols();
  t.shape[2] = t.shape[3] = 0;
  t.row_stride = row_stride;
  return t;
}

Tensor Tensor::col_slice(int64_t begin, int64_t count) const {
  FRT_CHECK(ndim >= 1 && begin >= 0 && count > 0 && begin + count <= cols(),
            "col_slice [", begin, ", ", begin + count, ") of ", shape_str());
  Tensor t = *this;
  t.data = static_cast<char*>(data) + begin * static_cast<int64_t>(dtype_size(dtype));
  t.ndim = 2;
  t.shape[0] = rows();
  t.shape[1] = count;
  t.shape[2] = t.shape[3] = 0;
  t.row_stride = ld();
  return t;
}

Tensor Tensor::reshape(std::initializer_list<int64_t> new_shape) const {
  FRT_CHECK(contiguous(), "reshape of a strided view ", shape_str());
  Tensor t = make_view(data, dtype, device, new_shape);
  FRT_CHECK(t.numel() == numel(), "reshape ", shape_str(), " -> ", t.shape_str());
  return t;
}

std::string Tensor::shape_str() const {
  std::ostringstream os;
  os << "[";
  for (int i = 0; i < ndim; ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

Tensor make_view(void* data, DType dtype, Device device, std::initializer_list<int64_t> shape) {
  return make_view(data, dtype, device, std::vector<int64_t>(shape));
}

Tensor make_view(void* data, DType dtype, Device device, const std::vector<int64_t>& shape) {
  FRT_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), "too many dims");
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.device = device;
  t.ndim = static_cast<int>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) t.shape[i] = shape[i];
  return t;
}

HostTensor::HostTensor(DType dtype, std::vector<int64_t> shape, HostInit init)
    : dtype_(dtype), shape_(std::move(shape)) {
  size_t bytes = nbytes();
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  data_ = std::aligned_alloc(64, rounded);
  if (!data_) throw_error(Status::kOutOfMemory, "host allocation of ", bytes, " bytes failed");
  if (init == HostInit::kZero)
    std::memset(data_, 0, rounded);
  else  // the caller writes [0, bytes); the alignment tail is still defined
    std::memset(static_cast<char*>(data_) + bytes, 0, rounded - bytes);
}

float max_abs(const float* v, size_t n) {
  float amax = 0.f;
  int bad = 0;
#pragma omp parallel for reduction(max : amax) reduction(| : bad) if (n > (1 << 20))
  for (size_t i = 0; i < n; ++i) {
    const float a = std::fabs(v[i]);
    bad |= !std::isfinite(a);
    amax = a > amax ? a : amax;
  }
  return bad ? std::numeric_limits<float>::infinity() : amax;
}

HostTensor::HostTensor(HostTensor&& o) noexcept
    : dtype_(o.dtype_), shape_(std::move(o.shape_)), data_(o.data_) {
  o.data_ = nullptr;
}

HostTensor& HostTensor::operator=(HostTensor&& o) noexcept {
  if (this != &o) {
    std::free(data_);
    dtype_ = o.dtype_;
    shape_ = std::move(o.shape_);
    data_ = o.data_;
    o.data_ = nullptr;
  }
  return *this;
}

HostTensor::~HostTensor() { std::free(data_); }

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

Tensor HostTensor::view() const { return make_view(data_, dtype_, Device::kCpu, shape_); }

float bf16_to_f32(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_bf16(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  uint32_t sign = (bits >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((bits >> 23) & 0xff) - 127 + 15;
  uint32_t mant = bits & 0x7fffffu;
  if (((bits >> 23) & 0xff) == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0));
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;
  return static_cast<uint16_t>(half);
}

float e4m3_to_f32(uint8_t v) {
  const int sign = v >> 7, exp = (v >> 3) & 0xF, man = v & 7;
  float mag;
  if (exp == 0xF && man == 7) return std::numeric_limits<float>::quiet_NaN();
  if (exp == 0) mag = std::ldexp(static_cast<float>(man) / 8.f, -6);  // subnormal
  else mag = std::ldexp(1.f + static_cast<float>(man) / 8.f, exp - 7);
  return sign ? -mag : mag;
}

uint8_t f32_to_e4m3(float v) {
  if (std::isnan(v)) return 0x7F;
  const uint8_t sign = std::signbit(v) ? 0x80 : 0;
  const float a = std::fabs(v);
  if (a >= kE4M3Max) return sign | 0x7E;  // saturate (also inf)
  // Positive codes 0x00..0x7E are increasing in value: binary search the nearest, ties to even.
  int lo = 0, hi = 0x7E;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (e4m3_to_f32(static_cast<uint8_t>(mid)) <= a) lo = mid; else hi = mid;
  }
  const float dl = a - e4m3_to_f32(static_cast<uint8_t>(lo));
  const float dh = e4m3_to_f32(static_cast<uint8_t>(hi)) - a;
  const int code = dl < dh ? lo : dh < dl ? hi : ((lo & 1) ? hi : lo);
  return sign | static_cast<uint8_t>(code);
}

void convert_to_f32(const void* src, DType src_dtype, float* dst, size_t count) {
  switch (src_dtype) {
    case DType::kF8E4M3: {
      const uint8_t* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = e4m3_to_f32(s[i]);
      return;
    }
    case DType::kF32:
      std::memcpy(dst, src, count * 4);
      return;
    case DType::kBF16:
    case DType::kF16: {
      // memcpy per element: a valid file may place 2-byte data at an odd address.
      const char* s = static_cast<const char*>(src);
      const bool bf16 = src_dtype == DType::kBF16;
#pragma omp parallel for if (count > (1 << 20))
      for (size_t i = 0; i < count; ++i) {
        uint16_t v;
        std::memcpy(&v, s + 2 * i, 2);
        dst[i] = bf16 ? bf16_to_f32(v) : f16_to_f32(v);
      }
      return;
    }
    default:
      throw_error(Status::kInternal, "convert_to_f32: unsupported source dtype ",
                  dtype_name(src_dtype));
  }
}

}  // namespace frt
