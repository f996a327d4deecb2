// Tolerances of the op tests, in one place: per activation dtype, scaled to the values (max abs
// error divided by max |expected|), plus a cosine floor. Used by tests/cpp/op_case.cpp for
// every backend (tests/cpp/test_cpu_ops.cpp today, the CUDA op test later).
#pragma once

#include <algorithm>
#include <string_view>

#include "core/tensor.h"

namespace frt::test {

struct Tolerance {
  double max_abs_rel;  // max |got - want| <= max_abs_rel * max |want|
  double min_cos;      // cosine(got, want) >= min_cos
  // Quantized outputs: up to max_outlier_frac of the elements may exceed max_abs_rel as long
  // as they stay within outlier_abs_rel (one quantization step). 0 = no outliers allowed.
  double outlier_abs_rel = 0;
  double max_outlier_frac = 0;
};

// fp32 CPU reference: fp32 storage, fp64 accumulation for long sums.
inline constexpr Tolerance kCpuF32{1e-5, 0.999999};
// bf16 activations (CUDA backend): ~8 mantissa bits per stored value.
inline constexpr Tolerance kBf16{2e-2, 0.9995};
inline constexpr Tolerance kF16{4e-3, 0.9999};

inline Tolerance tolerance_for(DType activation_dtype) {
  switch (activation_dtype) {
    case DType::kBF16:
      return kBf16;
    case DType::kF16:
      return kF16;
    default:
      return kCpuF32;
  }
}

// Per-op adjustments on top of the dtype's tolerance.
inline Tolerance tolerance_for(std::string_view op, DType activation_dtype) {
  Tolerance t = tolerance_for(activation_dtype);
  if (op == "resize_pad_normalize") {
    // fp32 bilinear coordinates (as torch computes them) against the fp64 reference: ~1e-6 per
    // pixel at worst. No rounding happens, so there are no ties and no outliers to allow.
    t.max_abs_rel = std::max(t.max_abs_rel, 5e-6);
  }
  return t;
}

}  // namespace frt::test
