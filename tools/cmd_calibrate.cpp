// `flashrt calibrate`: FP8 activation scales from sample observations, written to the calibration
// cache (~/.flash_rt/calibration/ or $FLASH_RT_CALIBRATION_DIR) so later loads of the same
// checkpoint with the same view count start calibrated. Observations come from JSON files
// ({"images": ["base.png", null, ...], "prompt": "...", "state": [...]}, image paths relative to
// the file) or, for synthetic checkpoints and benchmarks, from generated frames (--random N).
// Tests: tests/python/test_cli.py (argument errors, CPU no-op); the GPU run in
// scripts/device/check_fp8.py.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_common.h"

namespace frt::cli {

namespace {

// One observation and the pixels it points into.
struct LoadedObservation {
  std::vector<ImageU8> frames;
  flashrt::Observation obs;
};

LoadedObservation read_observation(const std::string& path, const Args& args) {
  std::ifstream f(path);
  if (!f) args.fail("--obs " + path + ": cannot open the file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    args.fail("--obs " + path + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("images") || !j["images"].is_array() || j["images"].empty())
    args.fail("--obs " + path + ": expected {\"images\": [\"file.png\", ...], \"prompt\": ..., "
              "\"state\": [...]}");
  LoadedObservation lo;
  const std::filesystem::path base = std::filesystem::path(path).parent_path();
  lo.frames.resize(j["images"].size());
  std::vector<flashrt::Image> views;
  for (size_t i = 0; i < j["images"].size(); ++i) {
    const nlohmann::json& im = j["images"][i];
    if (im.is_null()) {
      views.push_back(flashrt::Image::absent());
      continue;
    }
    if (!im.is_string()) args.fail("--obs " + path + ": images[" + std::to_string(i) +
                                   "] must be a file name or null");
    lo.frames[i] = read_image((base / im.get<std::string>()).string());
    views.push_back(flashrt::Image::u8(lo.frames[i].pixels.data(), lo.frames[i].height,
                                       lo.frames[i].width));
  }
  lo.obs.images = views;
  if (j.contains("prompt")) {
    if (!j["prompt"].is_string()) args.fail("--obs " + path + ": prompt must be a string");
    lo.obs.prompt = j["prompt"].get<std::string>();
  }
  if (j.contains("state")) {
    if (!j["state"].is_array()) args.fail("--obs " + path + ": state must be a list of numbers");
    for (const nlohmann::json& v : j["state"]) {
      if (!v.is_number()) args.fail("--obs " + path + ": state must be a list of numbers");
      lo.obs.state.push_back(v.get<float>());
    }
  }
  return lo;
}

// Generated frames and states, different per sample (synthetic checkpoints, benchmarks).
LoadedObservation random_observation(int k, int views, int state_dim, const std::string& prompt) {
  LoadedObservation lo;
  std::vector<flashrt::Image> imgs;
  for (int v = 0; v < views; ++v) lo.frames.push_back(synthetic_image(v + 3 * k, 224, 224));
  for (const ImageU8& f : lo.frames)
    imgs.push_back(flashrt::Image::u8(f.pixels.data(), f.height, f.width));
  std::vector<float> state = synthetic_state(state_dim);
  for (size_t i = 0; i < state.size(); ++i)
    state[i] *= 1.0f - 0.15f * static_cast<float>((k + static_cast<int>(i)) % 5);
  lo.obs = flashrt::Observation{imgs, prompt, state, {}};
  return lo;
}

}  // namespace

int cmd_calibrate(int argc, char** argv) {
  Args args("calibrate",
            "Calibrate the FP8 activation scales of a checkpoint on sample observations and write\n"
            "them to the calibration cache, so later loads (same checkpoint, same --views) start\n"
            "calibrated. Without a cache, the first predict after a load calibrates on its own\n"
            "observation instead.");
  args.option("--checkpoint", "DIR", "checkpoint directory (openpi PyTorch export)")
      .repeated("--obs", "FILE.json",
                "an observation: {\"images\": [\"base.png\", null], \"prompt\": \"...\", "
                "\"state\": [...]}")
      .option("--random", "N", "calibrate on N generated observations instead (synthetic use)")
      .option("--prompt", "TEXT", "prompt for --random observations", "pick up the red block")
      .option("--percentile", "P", "per-input percentile of the samples' max |x|", "99.9")
      .option("--max-samples", "N", "use at most N of the observations (0: all)", "0");
  add_model_options(args, 2);
  args.option("--config", "pi05|pi0|auto", "expected model family", "auto")
      .epilog("example:\n  flashrt calibrate --checkpoint /ckpt/pi05_libero --views 2 \\\n"
              "      --obs episode0_t0.json --obs episode0_t40.json --obs episode3_t10.json");
  if (!args.parse(argc, argv)) return 0;
  if (!args.has("--checkpoint")) args.fail("missing --checkpoint DIR");
  const std::vector<std::string> files = args.all("--obs");
  if (files.empty() == !args.has("--random"))
    args.fail("give either --obs FILE.json (one or more) or --random N");
  const std::vector<float> pct = args.floats("--percentile");
  if (pct.size() != 1 || pct[0] < 0.f || pct[0] > 100.f)
    args.fail("--percentile must be one number in [0, 100]");
  flashrt::LoadOptions opts = model_options(args);
  opts.config = args.choice("--config", {"pi05", "pi0", "auto"});
  if (opts.use_fp8 == 0) args.fail("--bf16 has no FP8 scales to calibrate");

  std::vector<LoadedObservation> loaded;  // files first: a bad file fails before the slow load
  for (const std::string& f : files) loaded.push_back(read_observation(f, args));
  const double t0 = now_ms();
  flashrt::Model model = flashrt::Model::load(args.str("--checkpoint"), opts);
  const double load_ms = now_ms() - t0;
  if (model.precision() != "fp8") {
    std::fprintf(stderr, "flashrt calibrate: this model runs in %s here (FP8 needs a CUDA GPU "
                 "with sm_89+); nothing to calibrate\n", model.precision().c_str());
    return 1;
  }
  if (args.has("--random")) {
    const int n = static_cast<int>(args.integer("--random", 1, 10000));
    const frt_model_info_t info = model.info();
    for (int k = 0; k < n; ++k)
      loaded.push_back(random_observation(k, info.num_views, info.state_dim, args.str("--prompt")));
  }
  std::vector<flashrt::Observation> obs;
  for (const LoadedObservation& lo : loaded) obs.push_back(lo.obs);
  const double t1 = now_ms();
  model.calibrate(obs, pct[0], static_cast<int32_t>(args.integer("--max-samples", 0, 1000000)));
  std::printf("calibrated %zu observation(s) at percentile %g in %.1f ms (load %.1f ms); the "
              "scales are cached for this checkpoint and --views %d\n",
              obs.size(), pct[0], now_ms() - t1, load_ms, opts.num_views);
  return 0;
}

}  // namespace frt::cli
