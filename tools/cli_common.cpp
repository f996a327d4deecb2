// Shared pieces of the `flashrt` subcommands (see cli_common.h).
// Tests: tests/python/test_cli.py.
#include "cli_common.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "core/log.h"

namespace frt::cli {

void add_model_options(Args& args, int default_views) {
  args.option("--hardware", "auto|cpu|cuda", "where to run (auto: CUDA if a GPU is usable)", "auto")
      .option("--views", "N", "camera slots the model is prepared for (1..3)",
              default_views > 0 ? std::to_string(default_views) : "")
      .option("--steps", "N", "flow-matching steps", "10")
      .option("--horizon", "N", "actions per chunk (LIBERO configs use 10)", "50")
      .option("--seed", "N", "noise seed", "0")
      .flag("--fp8", "FP8 GEMMs (default on GPUs that have them: sm_89+); an error elsewhere")
      .flag("--bf16", "bf16 GEMMs on the GPU (no FP8)");
}

int32_t fp8_choice(const Args& args) {
  if (args.has("--fp8") && args.has("--bf16")) args.fail("--fp8 and --bf16 exclude each other");
  return args.has("--fp8") ? 1 : args.has("--bf16") ? 0 : -1;
}

flashrt::LoadOptions model_options(const Args& args) {
  flashrt::LoadOptions o;
  o.hardware = args.choice("--hardware", {"auto", "cpu", "cuda"});
  o.num_views = static_cast<int32_t>(args.integer("--views", 1, 3));
  o.num_steps = static_cast<int32_t>(args.integer("--steps", 1, 1000));
  o.action_horizon = static_cast<int32_t>(args.integer("--horizon", 1, 1024));
  o.seed = args.u64("--seed");
  o.use_fp8 = fp8_choice(args);
  return o;
}

ImageU8 synthetic_image(int view, int height, int width) {
  ImageU8 img;
  img.height = height;
  img.width = width;
  img.pixels.resize(static_cast<size_t>(height) * width * 3);
  // A table edge, a red block, a blue bowl and a gripper-like bar; positions move per view.
  const float cx = width * (0.35f + 0.15f * view), cy = height * (0.55f - 0.05f * view);
  const float r = std::min(height, width) * 0.12f;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const float u = static_cast<float>(x) / std::max(1, width - 1);
      const float v = static_cast<float>(y) / std::max(1, height - 1);
      float rgb[3] = {40 + 120 * u, 60 + 100 * v, 90 + 60 * (1 - u) + 20 * view};
      if (v > 0.62f - 0.04f * view) {  // table
        rgb[0] = 150 + 30 * std::sin(x * 0.21f);
        rgb[1] = 110 + 20 * std::sin(y * 0.17f);
        rgb[2] = 70;
      }
      const float bx = width * (0.25f + 0.2f * view), by = height * 0.5f;
      if (std::fabs(x - bx) < r * 0.8f && std::fabs(y - by) < r * 0.8f) {  // red block
        rgb[0] = 210, rgb[1] = 30, rgb[2] = 35;
      }
      const float dx = x - cx - r * 1.6f, dy = y - cy;
      const float d = std::sqrt(dx * dx + dy * dy);
      if (d < r && d > r * 0.6f) rgb[0] = 30, rgb[1] = 60, rgb[2] = 200;  // bowl rim
      if (view > 0 && y < height * 0.18f && std::fabs(x - width * 0.5f) < width * 0.3f)
        rgb[0] = rgb[1] = rgb[2] = 25;  // gripper fingers in the wrist views
      uint8_t* p = &img.pixels[(static_cast<size_t>(y) * width + x) * 3];
      for (int c = 0; c < 3; ++c) p[c] = static_cast<uint8_t>(std::clamp(rgb[c], 0.f, 255.f));
    }
  }
  return img;
}

std::vector<float> synthetic_state(int dim) {
  std::vector<float> s(static_cast<size_t>(std::max(dim, 0)));
  for (int i = 0; i < dim; ++i) s[i] = 0.8f * std::sin(0.7f * i + 0.3f);
  return s;
}

std::string default_cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return (std::filesystem::path(x) / "flash_rt").string();
  if (const char* h = std::getenv("HOME"); h && *h)
    return (std::filesystem::path(h) / ".cache" / "flash_rt").string();
  return (std::filesystem::path(".cache") / "flash_rt").string();
}

flashrt::Model load_or_make_tiny(const std::string& dir, flashrt::LoadOptions opts, uint64_t seed,
                                 bool* made) {
  namespace fs = std::filesystem;
  const fs::path tok = fs::path(dir) / "paligemma_tokenizer.model";
  *made = false;
  if (fs::exists(fs::path(dir) / "model.safetensors")) {
    try {
      if (fs::exists(tok)) opts.tokenizer_path = tok.string();
      return flashrt::Model::load(dir, opts);
    } catch (const flashrt::Error& e) {
      // Problems of the machine, not of the files: rewriting would not help.
      if (e.status() == FRT_STATUS_NOT_SUPPORTED || e.status() == FRT_STATUS_CUDA_ERROR ||
          e.status() == FRT_STATUS_OUT_OF_MEMORY)
        throw;
      log_warning("cached checkpoint ", dir, " is not loadable (", e.what(), "); rewriting it");
    }
  }
  fs::create_directories(dir);
  flashrt::make_checkpoint(dir, "pi05", "tiny", seed);
  *made = true;
  opts.tokenizer_path = fs::exists(tok) ? tok.string() : "";
  return flashrt::Model::load(dir, opts);
}

void print_actions(const flashrt::Actions& a, int rows, int cols) {
  rows = std::min(rows, a.horizon);
  cols = std::min(cols, a.dim);
  std::printf("  step");
  for (int d = 0; d < cols; ++d) std::printf("  %8s", ("a" + std::to_string(d)).c_str());
  std::printf("\n");
  for (int t = 0; t < rows; ++t) {
    std::printf("  %4d", t);
    for (int d = 0; d < cols; ++d) std::printf("  %8.4f", a(t, d));
    std::printf("\n");
  }
  if (rows < a.horizon || cols < a.dim)
    std::printf("  (%d of %d steps, %d of %d dims shown)\n", rows, a.horizon, cols, a.dim);
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * (values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (rank - lo);
}

double now_ms() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count();
}

}  // namespace frt::cli
