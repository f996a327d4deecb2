// FP8 calibration inside the engine: the calibration forward (the same model code, run eagerly
// with the backend in QuantMode::kCalibrate, which scales every FP8 GEMM input by its own max and
// records that max per site), the percentile reduction across observations, the scale install
// (device memory the captured graph reads: no recapture) and the calibration cache.
// Math: src/engine/calibration.h. Cache file: src/engine/calibration_cache.h. Overview:
// docs/calibration.md. Tests: tests/python/test_fp8_api.py (CPU: errors and no-ops),
// scripts/device/check_fp8.py (GPU: accuracy, cache hit vs cold calibration).
#include <map>

#include "core/log.h"
#include "core/status.h"
#include "engine/calibration.h"
#include "engine/engine.h"
#include "io/safetensors.h"

namespace frt {

const char* Engine::precision() const {
  if (backend_->device() == Device::kCpu) return "fp32";
  return backend_->precision() == Precision::kFP8 ? "fp8" : "bf16";
}

void Engine::load_cached_scales(const SafetensorsCheckpoint& ckpt) {
  calib_key_.checkpoint_hash = checkpoint_hash(ckpt);
  // The padded prefix length: the graph's shape whatever the prompt (image tokens of every slot
  // plus max_token_len).
  calib_key_.prefix_len = opts_.num_views * dims_.vision.num_patches() + opts_.max_token_len;
  calib_key_.num_views = opts_.num_views;
  const std::vector<std::string> sites = backend_->quant_site_names();
  std::optional<CalibrationScales> cached = load_calibration(calib_key_, sites);
  calibrated_ = false;
  if (!cached) return;
  std::vector<float> scales;
  for (const std::string& s : sites) scales.push_back(cached->scales.at(s));
  backend_->write_quant_scales(scales);
  calibrated_ = true;
  log_info("FP8: calibration scales loaded from ",
           calibration_cache_path(calib_key_, calibration_dir()), " (", cached->num_samples,
           " sample(s), percentile ", cached->percentile, ")");
}

std::vector<float> Engine::measure_amax(ModelInputs& in) {
  backend_->set_quant_mode(QuantMode::kCalibrate);
  try {
    backend_->reset_quant_amax();
    model_->predict(in, dumps_);  // eager: dynamic scales are not for a captured graph
    std::vector<float> amax = backend_->read_quant_amax();
    backend_->set_quant_mode(QuantMode::kStatic);
    return amax;
  } catch (...) {
    backend_->set_quant_mode(QuantMode::kStatic);
    throw;
  }
}

void Engine::install_scales(const std::vector<std::vector<float>>& per_sample,
                            double percentile) {
  const std::vector<std::string> sites = backend_->quant_site_names();
  std::map<std::string, std::vector<float>> by_site;
  for (const std::vector<float>& sample : per_sample) {
    FRT_CHECK(sample.size() == sites.size(), "calibration: ", sample.size(), " amax for ",
              sites.size(), " sites");
    for (size_t i = 0; i < sites.size(); ++i) by_site[sites[i]].push_back(sample[i]);
  }
  CalibrationScales cs;
  cs.scales = reduce_scales(by_site, percentile);
  cs.percentile = percentile;
  cs.num_samples = static_cast<int>(per_sample.size());
  scale_outliers(cs.scales);  // logs a warning listing any site far above its group
  std::vector<float> ordered;
  for (const std::string& s : sites) ordered.push_back(cs.scales.at(s));
  backend_->write_quant_scales(ordered);
  calibrated_ = true;
  if (calibration_dir().empty()) return;  // no HOME and no override: nothing to cache into
  if (save_calibration(calib_key_, cs))
    log_info("FP8: calibrated ", sites.size(), " GEMM inputs on ", cs.num_samples,
             " observation(s); scales cached in ",
             calibration_cache_path(calib_key_, calibration_dir()));
}

void Engine::calibrate(const std::vector<Observation>& observations, double percentile,
                       int max_samples) {
  if (backend_->precision() != Precision::kFP8) {
    log_info("calibrate: this model runs in ", precision(), ", which has no FP8 scales; nothing "
             "to do");
    return;
  }
  if (observations.empty())
    throw_error(Status::kInvalidArgument, "calibrate: no observations given; pass at least one");
  if (!(percentile >= 0.0 && percentile <= 100.0))
    throw_error(Status::kInvalidArgument, "calibrate: percentile ", percentile,
                " is outside [0, 100] (99.9 is the usual choice)");
  const size_t n = max_samples > 0 ? std::min(observations.size(), static_cast<size_t>(max_samples))
                                   : observations.size();
  std::vector<std::vector<float>> per_sample;
  // Observations without noise draw it from the model's generator; calibrating must not shift
  // the noise later predicts get, so the generator is restored afterwards.
  const std::mt19937_64 rng_before = rng_;
  for (size_t i = 0; i < n; ++i) {
    std::vector<float> noise;
    ModelInputs in = upload_inputs(observations[i], noise);
    per_sample.push_back(measure_amax(in));
  }
  rng_ = rng_before;
  install_scales(per_sample, n == 1 ? 100.0 : percentile);
}

void Engine::recalibrate() {
  if (backend_->precision() != Precision::kFP8) return;
  calibrated_ = false;
}

}  // namespace frt
