// The engine behind the C ABI: loads a checkpoint directory (weights, norm stats, tokenizer),
// picks the backend, validates every predict input, turns an observation into model inputs
// (state normalization, prompt tokenization, uploads) and the model output into unnormalized
// actions. One Engine = one model instance; calls on it are serialized by the caller (the C ABI
// takes a per-model mutex).
// Tests: tests/python/test_python_api.py, tests/python/test_reference_parity.py.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "engine/calibration_cache.h"
#include "io/norm_stats.h"
#include "io/tokenizer.h"
#include "models/blocks.h"
#include "models/model_config.h"
#include "models/policy.h"

namespace frt {

struct LoadRequest {
  std::string config = "auto";    // "pi05" / "pi0" / "auto"
  std::string hardware = "auto";  // "auto" / "cpu" / "cuda"
  bool cuda_graphs = true;        // capture the whole predict as one graph (backends that can)
  bool profile_ops = false;       // time every op (eager, synchronizing): see profile_report()
  // FP8 GEMMs (CUDA, sm_89+): -1 auto (on where supported), 0 off (bf16), 1 on
  // (an error where the hardware has no FP8).
  int use_fp8 = -1;
  ModelOptions options;
};

struct ImageInput {
  const void* data = nullptr;  // nullptr: masked / absent view
  int height = 0, width = 0, channels = 0;
  bool is_float = false;       // f32 in [0, 1] (else u8)
};

struct Observation {
  std::vector<ImageInput> images;
  const char* prompt = nullptr;  // nullptr → the engine's current prompt
  const float* state = nullptr;
  int state_dim = 0;
  const float* noise = nullptr;
  int64_t noise_len = 0;
};

class Engine {
 public:
  Engine(const std::string& checkpoint_dir, const LoadRequest& req);
  ~Engine();

  // Writes horizon x action_dim unnormalized actions.
  void predict(const Observation& obs, std::vector<float>& actions);

  // FP8 calibration (src/engine/engine_calibration.cpp; no-ops on a non-FP8 backend).
  // Measures every FP8 GEMM input on each observation (at most max_samples; <= 0: all), reduces
  // per site by `percentile` across them (one observation: its max), writes the scales into the
  // device memory the graph reads and into the calibration cache.
  void calibrate(const std::vector<Observation>& observations, double percentile,
                 int max_samples);
  // Forgets the scales: the next predict recalibrates on its own observation (and re-caches).
  void recalibrate();
  // "fp32" (CPU), "bf16" or "fp8".
  const char* precision() const;
  // Whether FP8 scales are in place (false before the first predict when nothing was cached).
  bool calibrated() const { return calibrated_; }

  void set_prompt(const std::string& prompt);
  const std::string& prompt() const { return prompt_; }
  Dumps& dumps() { return dumps_; }

  const ModelDims& dims() const { return dims_; }
  const ModelOptions& options() const { return opts_; }
  const Backend& backend() const { return *backend_; }
  const NormStatsFile& norm_stats() const { return stats_; }
  NormMode norm_mode() const { return mode_; }
  int64_t params_in(Part part) const;
  // GPU time of the last predict's graph replay (ms), < 0 when it ran eagerly.
  float last_graph_ms() { return last_graph_ms_; }
  // Per-stage / per-op times when loaded with profile_ops, else the graph replays' mean time per
  // stage ("" when there is none).
  std::string profile_report() const;
  // Clears what profile_report has counted (e.g. after warm-up predicts).
  void profile_reset() { backend_->reset_stage_report(); }

  // Largest raw image accepted (pixels); larger ones get an error asking to downscale.
  static constexpr int64_t kMaxImagePixels = 2048LL * 2048LL;

 private:
  void check_images(const Observation& obs) const;
  std::vector<float> normalized_state(const Observation& obs) const;
  // Validates `obs` and uploads everything predict needs; `noise` receives the initial x (the
  // model overwrites it with the actions).
  ModelInputs upload_inputs(const Observation& obs, std::vector<float>& noise);
  // One eager forward in calibrate mode on uploaded inputs: per-site amax.
  std::vector<float> measure_amax(ModelInputs& in);
  // Reduces per-sample amax, installs the scales, saves the cache.
  void install_scales(const std::vector<std::vector<float>>& per_sample, double percentile);
  void load_cached_scales(const SafetensorsCheckpoint& ckpt);

  std::string dir_;
  ModelDims dims_;
  ModelOptions opts_;
  NormStatsFile stats_;
  NormMode mode_ = NormMode::kQuantile;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<PolicyModel> model_;
  Dumps dumps_;
  std::string prompt_;
  bool cuda_graphs_ = true;
  bool calibrated_ = true;         // FP8: scales installed (always true without FP8)
  CalibrationKey calib_key_;
  float last_graph_ms_ = -1.f;
  std::mt19937_64 rng_;
  std::vector<int64_t> part_params_;
  // Device-side inputs (allocated once at load).
  std::vector<Tensor> raw_views_;  // per slot: u8 [kMaxImagePixels * 3]
  Tensor token_ids_;    // i32 [max_token_len]: the padded prompt
  Tensor prefix_len_;   // i32 [1]: valid prefix rows (image tokens + prompt tokens)
  Tensor x_;                       // f32 [horizon, action_dim]
  Tensor state_;                   // f32 [1, action_dim]: Pi0's normalized, zero-padded state
};

}  // namespace frt
