// Percentile reduction of calibration amax, amax -> FP8 scale, and the scale-outlier check.
// Test: tests/cpp/test_calibration.cpp.
#include "engine/calibration.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/log.h"
#include "core/status.h"

namespace frt {
namespace {

// numpy.median: mean of the two middle values for an even count. Sorts `v`.
double median_of(std::vector<double>& v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

bool is_layer_index(const std::string& c) {
  size_t digits_from = 0;
  for (const char* prefix : {"layers", "layer", "blocks", "block"}) {
    const std::string p(prefix);
    if (c.size() > p.size() && c.compare(0, p.size(), p) == 0) {
      digits_from = p.size();
      break;
    }
  }
  if (digits_from == c.size()) return false;  // empty component
  return std::all_of(c.begin() + static_cast<std::ptrdiff_t>(digits_from), c.end(),
                     [](char ch) { return ch >= '0' && ch <= '9'; });
}

}  // namespace

float reduce_amax(std::vector<float> a, double percentile, std::string_view site) {
  if (!(percentile >= 0.0 && percentile <= 100.0))  // also rejects NaN
    throw_error(Status::kInvalidArgument, site, ": percentile ", percentile,
                " is out of range; expected a value in [0, 100] (e.g. 99.9)");
  if (a.empty())
    throw_error(Status::kInvalidArgument, site,
                ": no calibration samples; expected at least 1 per-sample amax");
  for (size_t i = 0; i < a.size(); ++i)
    if (!std::isfinite(a[i]) || a[i] < 0.f)
      throw_error(Status::kInvalidArgument, site, ": calibration sample ", i, " has amax ", a[i],
                  "; expected a finite value >= 0 (a NaN/inf activation in the calibration "
                  "forward: check that observation and the checkpoint's weights)");
  if (a.size() == 1) return a[0];
  std::sort(a.begin(), a.end());
  // numpy's "linear" method (Hyndman & Fan type 7): virtual index h = (n - 1) q / 100.
  const double h = static_cast<double>(a.size() - 1) * percentile / 100.0;
  const size_t lo = std::min(static_cast<size_t>(std::floor(h)), a.size() - 1);
  const size_t hi = std::min(lo + 1, a.size() - 1);
  const double frac = h - static_cast<double>(lo);
  const double v = static_cast<double>(a[lo]) + frac * (static_cast<double>(a[hi]) - a[lo]);
  return static_cast<float>(v);
}

std::map<std::string, float> reduce_scales(
    const std::map<std::string, std::vector<float>>& amax_per_site, double percentile,
    float fp8_max) {
  if (!(std::isfinite(fp8_max) && fp8_max > 0.f))
    throw_error(Status::kInvalidArgument, "reduce_scales: fp8_max is ", fp8_max,
                "; expected a finite value > 0 (448 for E4M3)");
  std::map<std::string, float> scales;
  for (const auto& [site, samples] : amax_per_site) {
    const float amax = reduce_amax(samples, percentile, "calibration site '" + site + "'");
    scales.emplace(site, std::max(amax, kMinCalibrationAmax) / fp8_max);
  }
  return scales;
}

std::string site_group(const std::string& site) {
  std::string out;
  size_t start = 0;
  while (start <= site.size()) {
    size_t end = site.find('.', start);
    if (end == std::string::npos) end = site.size();
    const std::string comp = site.substr(start, end - start);
    if (!is_layer_index(comp)) {
      if (!out.empty()) out += '.';
      out += comp;
    }
    start = end + 1;
  }
  return out;
}

std::vector<std::string> scale_outliers(
    const std::map<std::string, float>& scales,
    const std::function<std::string(const std::string&)>& group_of, double ratio) {
  std::map<std::string, std::vector<std::string>> groups;  // group -> sites
  for (const auto& kv : scales) groups[group_of(kv.first)].push_back(kv.first);

  std::vector<std::string> outliers;
  std::ostringstream details;
  for (const auto& [group, sites] : groups) {
    if (sites.size() < 3) continue;
    std::vector<double> values;
    for (const std::string& s : sites) values.push_back(scales.at(s));
    const double med = median_of(values);
    for (const std::string& s : sites) {
      const double v = scales.at(s);
      if (v > ratio * med) {
        outliers.push_back(s);
        details << "\n  " << s << " = " << v << " (group '" << group << "' median " << med
                << ", " << (med > 0 ? v / med : INFINITY) << "x)";
      }
    }
  }
  std::sort(outliers.begin(), outliers.end());
  if (!outliers.empty())
    log_warning("calibration: ", outliers.size(), " FP8 activation scale(s) are more than ", ratio,
                "x the median of their group; a few extreme activations set these scales, so "
                "FP8 loses precision on the typical values there (check the calibration "
                "observations, or keep these GEMMs in bf16 if accuracy drops):",
                details.str());
  return outliers;
}

}  // namespace frt
