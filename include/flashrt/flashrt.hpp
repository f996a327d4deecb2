// FlashRT C++ API: a header-only, RAII layer over the C ABI (flashrt.h). Errors become
// flashrt::Error (the C status + frt_last_error()); a Model frees its handle when destroyed.
//
//   auto model = flashrt::Model::load("ckpt/", {.hardware = "cpu"});
//   std::vector<uint8_t> rgb(224 * 224 * 3);
//   flashrt::Actions a = model.predict({flashrt::Image::u8(rgb.data(), 224, 224)},
//                                      "pick up the cup", state);
//   float first = a(0, 0);  // a.horizon x a.dim, row-major in a.actions
//
// Used by the `flashrt` CLI (tools/), so tests/python/test_cli.py exercises it end to end.
#ifndef FLASHRT_FLASHRT_HPP_
#define FLASHRT_FLASHRT_HPP_

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "flashrt/flashrt.h"

namespace flashrt {

class Error : public std::runtime_error {
 public:
  Error(frt_status_t status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  frt_status_t status() const { return status_; }

 private:
  frt_status_t status_;
};

// Throws flashrt::Error with the thread's last error message when `status` is not FRT_OK.
inline void check(frt_status_t status) {
  if (status != FRT_OK) {
    const char* msg = frt_last_error();
    throw Error(status, msg && *msg ? msg : frt_status_string(status));
  }
}

inline std::string version() { return frt_version(); }

// Writes a synthetic checkpoint (random weights) in the openpi layout.
inline void make_checkpoint(const std::string& out_dir, const std::string& config = "pi05",
                            const std::string& size = "tiny", uint64_t seed = 0) {
  check(frt_make_checkpoint(out_dir.c_str(), config.c_str(), size.c_str(), seed));
}

// Mirrors frt_load_options_t; 0 / -1 / empty mean "the config's default" as there.
struct LoadOptions {
  std::string config = "auto";    // "pi05", "pi0", "auto"
  std::string hardware = "auto";  // "auto", "cpu", "cuda"
  int32_t num_views = 2;
  int32_t num_steps = 0;
  int32_t action_horizon = 0;
  int32_t max_token_len = 0;
  int32_t discrete_state_input = -1;
  frt_normalization_t normalization = FRT_NORM_DEFAULT;
  std::string norm_stats_asset;
  std::string tokenizer_path;
  std::string default_prompt;
  uint64_t seed = 0;
  bool cuda_graphs = true;   // capture the whole predict as one CUDA graph
  bool profile_ops = false;  // time every op (eager); see Model::profile_report
  int32_t use_fp8 = -1;      // -1: FP8 where the GPU has it, 0: bf16, 1: FP8 or an error
};

// One camera view: HxWx3 row-major, u8 or f32 in [0, 1]. The pixels are borrowed, not copied.
struct Image {
  const void* data = nullptr;  // nullptr: view absent (masked)
  int32_t height = 0, width = 0;
  frt_image_dtype_t dtype = FRT_IMAGE_U8;

  static Image u8(const uint8_t* pixels, int32_t h, int32_t w) {
    return {pixels, h, w, FRT_IMAGE_U8};
  }
  static Image f32(const float* pixels, int32_t h, int32_t w) {
    return {pixels, h, w, FRT_IMAGE_F32};
  }
  static Image absent() { return {}; }
};

// Everything one predict needs; empty state / noise mean "none" / "sampled".
struct Observation {
  std::vector<Image> images;          // base, left wrist, right wrist
  std::optional<std::string> prompt;  // nullopt: the model's current prompt
  std::vector<float> state;           // unnormalized robot state
  std::vector<float> noise;           // horizon x dim standard normal
};

// An action chunk: horizon x dim unnormalized actions, row-major.
struct Actions {
  int32_t horizon = 0, dim = 0;
  std::vector<float> actions;
  float operator()(int32_t t, int32_t d) const {
    return actions[static_cast<size_t>(t) * static_cast<size_t>(dim) + static_cast<size_t>(d)];
  }
};

// A debugging intermediate (see Model::enable_dumps).
struct Dump {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

class Model {
 public:
  static Model load(const std::string& checkpoint_dir, const LoadOptions& o = {}) {
    frt_load_options_t c;
    frt_load_options_init(&c);
    c.config = o.config.c_str();
    c.hardware = o.hardware.c_str();
    c.num_views = o.num_views;
    c.num_steps = o.num_steps;
    c.action_horizon = o.action_horizon;
    c.max_token_len = o.max_token_len;
    c.discrete_state_input = o.discrete_state_input;
    c.normalization = o.normalization;
    c.norm_stats_asset = o.norm_stats_asset.empty() ? nullptr : o.norm_stats_asset.c_str();
    c.tokenizer_path = o.tokenizer_path.empty() ? nullptr : o.tokenizer_path.c_str();
    c.default_prompt = o.default_prompt.empty() ? nullptr : o.default_prompt.c_str();
    c.seed = o.seed;
    c.cuda_graphs = o.cuda_graphs ? 1 : 0;
    c.profile_ops = o.profile_ops ? 1 : 0;
    c.use_fp8 = o.use_fp8;
    frt_model_t* handle = nullptr;
    check(frt_model_load(checkpoint_dir.c_str(), &c, &handle));
    return Model(handle);
  }

  Model(Model&& other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  Model& operator=(Model&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, nullptr);
      capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
  }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  ~Model() { reset(); }

  Actions predict(const Observation& obs) {
    std::vector<frt_image_t> images;
    const frt_observation_t o = to_c(obs, images);
    if (capacity_ == 0) {
      const frt_model_info_t i = info();
      capacity_ = static_cast<int64_t>(i.action_horizon) * i.action_dim;
    }
    Actions a;
    a.actions.resize(static_cast<size_t>(capacity_));
    check(frt_model_predict(handle_, &o, a.actions.data(), capacity_, &a.horizon, &a.dim));
    a.actions.resize(static_cast<size_t>(a.horizon) * static_cast<size_t>(a.dim));
    return a;
  }
  Actions predict(std::vector<Image> images, std::optional<std::string> prompt = std::nullopt,
                  std::vector<float> state = {}) {
    return predict(Observation{std::move(images), std::move(prompt), std::move(state), {}});
  }

  void set_prompt(const std::string& prompt) {
    check(frt_model_set_prompt(handle_, prompt.c_str()));
  }
  std::string prompt() const { return frt_model_prompt(handle_); }
  void recalibrate() { check(frt_model_recalibrate(handle_)); }
  // FP8: calibrates on `observations` (see frt_model_calibrate); a no-op for fp32/bf16.
  void calibrate(const std::vector<Observation>& observations, double percentile = 99.9,
                 int32_t max_samples = 0) {
    std::vector<std::vector<frt_image_t>> images(observations.size());
    std::vector<frt_observation_t> c;
    for (size_t i = 0; i < observations.size(); ++i) c.push_back(to_c(observations[i], images[i]));
    check(frt_model_calibrate(handle_, c.data(), static_cast<int32_t>(c.size()), percentile,
                              max_samples));
  }
  // "fp32", "bf16" or "fp8".
  std::string precision() const { return frt_model_precision(handle_); }
  // {model allocations, whole-device memory in use (0 on the CPU)} in bytes.
  std::pair<int64_t, int64_t> memory() const {
    int64_t model = 0, device = 0;
    check(frt_model_memory(handle_, &model, &device));
    return {model, device};
  }

  frt_model_info_t info() const {
    frt_model_info_t i{};
    i.struct_size = sizeof(i);
    check(frt_model_get_info(handle_, &i));
    return i;
  }

  // GPU time of the last predict's graph replay (ms); < 0 when it ran eagerly.
  float last_gpu_ms() const { return frt_model_last_gpu_ms(handle_); }
  std::string profile_report() const {
    size_t needed = 0;
    check(frt_model_profile_report(handle_, nullptr, 0, &needed));
    std::string r(needed, '\0');
    check(frt_model_profile_report(handle_, r.data(), r.size(), &needed));
    r.resize(needed > 0 ? needed - 1 : 0);
    return r;
  }
  // Clears what profile_report has counted (call after warm-up predicts).
  void profile_reset() { check(frt_model_profile_reset(handle_)); }

  void enable_dumps(bool on) { check(frt_model_enable_dumps(handle_, on ? 1 : 0)); }
  // Shape query first (capacity 0), then the copy.
  Dump dump(const std::string& name) const {
    int64_t shape[4] = {0, 0, 0, 0};
    int32_t ndim = 0;
    check(frt_model_get_dump(handle_, name.c_str(), nullptr, 0, shape, &ndim));
    Dump d;
    int64_t n = 1;
    for (int32_t k = 0; k < ndim && k < 4; ++k) {
      d.shape.push_back(shape[k]);
      n *= shape[k];
    }
    d.values.resize(static_cast<size_t>(n));
    if (n > 0) check(frt_model_get_dump(handle_, name.c_str(), d.values.data(), n, shape, &ndim));
    return d;
  }

  frt_model_t* handle() const { return handle_; }

 private:
  // The C observation of `obs`; `images` receives its image array (keep it alive while used).
  static frt_observation_t to_c(const Observation& obs, std::vector<frt_image_t>& images) {
    images.clear();
    for (const Image& im : obs.images)
      images.push_back(frt_image_t{im.data, im.height, im.width, 3, im.dtype});
    frt_observation_t o{};
    o.struct_size = sizeof(o);
    o.images = images.data();
    o.num_images = static_cast<int32_t>(images.size());
    o.prompt = obs.prompt ? obs.prompt->c_str() : nullptr;
    o.state = obs.state.empty() ? nullptr : obs.state.data();
    o.state_dim = static_cast<int32_t>(obs.state.size());
    o.noise = obs.noise.empty() ? nullptr : obs.noise.data();
    o.noise_len = static_cast<int32_t>(obs.noise.size());
    return o;
  }
  explicit Model(frt_model_t* handle) : handle_(handle) {}
  void reset() {
    if (handle_) frt_model_free(handle_);
    handle_ = nullptr;
    capacity_ = 0;
  }

  frt_model_t* handle_ = nullptr;
  int64_t capacity_ = 0;  // actions buffer size, from info() on first predict
};

}  // namespace flashrt

#endif  // FLASHRT_FLASHRT_HPP_
