// FP8 calibration math, independent of any backend: reducing per-sample activation amax to one
// value per GEMM-input site (percentile across samples, numpy's default "linear" method), turning
// amax into an E4M3 scale, and flagging sites whose scale is far above their group's median.
// Test: tests/cpp/test_calibration.cpp. Overview: docs/calibration.md.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"  // kE4M3Max: the largest finite FP8 E4M3

namespace frt {

// amax below this is raised to it before dividing by fp8_max, so a site that only ever saw zeros
// (or denormals) gets a tiny positive scale: 1/scale stays finite (<= 4.48e8), the quantized
// zeros stay zero, and a saved cache never holds a 0 that load_calibration would reject.
inline constexpr float kMinCalibrationAmax = 1e-6f;
// A scale above this many times its group's median is reported by scale_outliers().
inline constexpr double kScaleOutlierRatio = 20.0;

// One amax per site from N per-sample amaxes (each the max |x| a site saw in one calibration
// forward). N == 1: that value. N >= 2: the `percentile` (0..100) of the samples with linear
// interpolation between order statistics — numpy.percentile(a, q) with its default method:
// sorted a, h = (N - 1) * q / 100, result = a[floor(h)] + (h - floor(h)) * (a[floor(h)+1] -
// a[floor(h)]). So q = 100 is the max, q = 0 the min, q = 50 the median.
// Throws kInvalidArgument naming `site` and the sample for an empty list, a NaN / inf / negative
// amax, or a percentile outside [0, 100].
float reduce_amax(std::vector<float> per_sample_amax, double percentile,
                  std::string_view site = "reduce_amax");

// site -> scale = max(reduce_amax(samples), kMinCalibrationAmax) / fp8_max. Errors as above,
// plus kInvalidArgument for a non-positive or non-finite fp8_max.
std::map<std::string, float> reduce_scales(
    const std::map<std::string, std::vector<float>>& amax_per_site, double percentile,
    float fp8_max = kE4M3Max);

// The group a site belongs to: its name with the layer index component removed
// ("llm.layer12.qkv_in" -> "llm.qkv_in", "vision.block3.fc2_in" -> "vision.fc2_in",
// "expert.7.out_in" -> "expert.out_in"). Components dropped: all digits, or "layer"/"layers"/
// "block"/"blocks" followed by digits. Other digits stay ("fc1_in" is not "fc2_in").
std::string site_group(const std::string& site);

// Sites whose scale is > ratio x the median of their group's scales (median of an even count:
// mean of the middle two, like numpy.median), sorted by name. When any exist, one log_warning
// lists every one with its scale, group, group median and ratio. Groups of fewer than 3 sites are
// never flagged (with 2, neither can exceed 20x their mean).
std::vector<std::string> scale_outliers(
    const std::map<std::string, float>& scales,
    const std::function<std::string(const std::string&)>& group_of = site_group,
    double ratio = kScaleOutlierRatio);

}  // namespace frt
