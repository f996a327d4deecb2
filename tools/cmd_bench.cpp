// `flashrt bench`: times predict end to end (wall clock around each call, which includes the
// host copies and, on CUDA, the synchronization): warm-up runs, then N timed runs, reported as
// median / p90 / p99 / min / mean, plus one JSON line for scripts.
// Without --checkpoint it uses the demo's tiny synthetic checkpoint.
// Tests: tests/python/test_cli.py (bench --iters 3 on the tiny checkpoint).
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>

#include "cli_common.h"

namespace frt::cli {

int cmd_bench(int argc, char** argv) {
  Args args("bench",
            "Time predict: --warmup untimed runs, then --iters timed ones on synthetic camera\n"
            "frames (224x224) and state; prints p50/p90/p99 of the wall time around predict.\n"
            "Without --checkpoint the demo's tiny synthetic checkpoint is used (made if needed).");
  args.option("--checkpoint", "DIR", "checkpoint directory (default: the demo's tiny one)");
  add_model_options(args, 2);
  args.option("--iters", "N", "timed runs", "20")
      .option("--warmup", "N", "untimed runs first", "3")
      .option("--prompt", "TEXT", "task prompt", "pick up the red block and put it in the bowl")
      .flag("--json", "print only the JSON line")
      .flag("--profile", "time every op (eager, synchronized) and print the per-stage table")
      .flag("--no-graphs", "run eagerly instead of replaying a captured CUDA graph")
      .flag("--verbose", "print debug messages too (e.g. each cuBLASLt plan's tuning)");
  if (!args.parse(argc, argv)) return 0;
  if (args.has("--verbose")) frt_set_log_callback(nullptr, nullptr, FRT_LOG_DEBUG);
  flashrt::LoadOptions opts = model_options(args);
  opts.profile_ops = args.has("--profile");
  opts.cuda_graphs = !args.has("--no-graphs");
  const int iters = static_cast<int>(args.integer("--iters", 1, 1000000));
  const int warmup = static_cast<int>(args.integer("--warmup", 0, 1000000));

  std::string dir = args.str("--checkpoint");
  const double t0 = now_ms();
  bool made = false;
  flashrt::Model model = [&] {
    if (!dir.empty()) return flashrt::Model::load(dir, opts);
    dir = (std::filesystem::path(default_cache_dir()) / "demo-tiny-pi05").string();
    return load_or_make_tiny(dir, opts, 0, &made);
  }();
  const double load_ms = now_ms() - t0;
  const frt_model_info_t info = model.info();

  // Four different observations, rotated, so no run sees the previous run's inputs.
  constexpr int kInputs = 4;
  std::vector<ImageU8> frames;
  for (int k = 0; k < kInputs; ++k)
    for (int v = 0; v < opts.num_views; ++v) frames.push_back(synthetic_image(v + 3 * k, 224, 224));
  std::vector<flashrt::Observation> inputs;
  for (int k = 0; k < kInputs; ++k) {
    std::vector<flashrt::Image> views;
    for (int v = 0; v < opts.num_views; ++v) {
      const ImageU8& f = frames[static_cast<size_t>(k * opts.num_views + v)];
      views.push_back(flashrt::Image::u8(f.pixels.data(), f.height, f.width));
    }
    std::vector<float> state = synthetic_state(info.state_dim);
    for (float& x : state) x *= 1.0f - 0.1f * static_cast<float>(k);
    inputs.push_back(flashrt::Observation{views, args.str("--prompt"), state, {}});
  }

  for (int i = 0; i < warmup; ++i) model.predict(inputs[static_cast<size_t>(i % kInputs)]);
  model.profile_reset();  // the stage / op tables cover the timed runs only
  std::vector<double> ms, gpu_ms;
  ms.reserve(static_cast<size_t>(iters));
  for (int i = 0; i < iters; ++i) {
    const double s = now_ms();
    model.predict(inputs[static_cast<size_t>(i % kInputs)]);
    ms.push_back(now_ms() - s);
    const float g = model.last_gpu_ms();
    if (g >= 0) gpu_ms.push_back(g);
  }
  const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
  const auto [model_bytes, device_bytes] = model.memory();  // after the runs: the peak shapes

  nlohmann::json line = {{"bench", "predict"},
                         {"config", info.config},
                         {"hardware", info.hardware},
                         {"device", info.device_name},
                         {"checkpoint", dir},
                         {"views", info.num_views},
                         {"steps", info.num_steps},
                         {"horizon", info.action_horizon},
                         {"iters", iters},
                         {"warmup", warmup},
                         {"load_ms", load_ms},
                         {"p50_ms", percentile(ms, 50)},
                         {"p90_ms", percentile(ms, 90)},
                         {"p99_ms", percentile(ms, 99)},
                         {"min_ms", percentile(ms, 0)},
                         {"mean_ms", mean},
                         {"replay_p50_ms", gpu_ms.empty() ? -1.0 : percentile(gpu_ms, 50)},
                         {"replay_p90_ms", gpu_ms.empty() ? -1.0 : percentile(gpu_ms, 90)},
                         {"precision", model.precision()},
                         {"model_mb", static_cast<double>(model_bytes) / 1e6},
                         {"device_in_use_mb", static_cast<double>(device_bytes) / 1e6},
                         {"version", flashrt::version()}};
  if (!args.has("--json")) {
    std::printf("predict %s on %s (%s): views %d, steps %d, horizon %d\n", info.config,
                info.hardware, info.device_name, info.num_views, info.num_steps,
                info.action_horizon);
    std::printf("checkpoint %s (load %.1f ms%s)\n", dir.c_str(), load_ms, made ? ", made now" : "");
    std::printf(
        "%d iters after %d warm-up: p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  min %.3f ms"
        "  mean %.3f ms\n",
        iters, warmup, percentile(ms, 50), percentile(ms, 90), percentile(ms, 99),
        percentile(ms, 0), mean);
    if (!gpu_ms.empty())
      std::printf("CUDA graph replay (GPU time): p50 %.3f ms  p90 %.3f ms\n",
                  percentile(gpu_ms, 50), percentile(gpu_ms, 90));
    std::printf("precision %s; memory: model %.1f MB", model.precision().c_str(),
                static_cast<double>(model_bytes) / 1e6);
    if (device_bytes > 0)
      std::printf(", whole device in use %.1f MB", static_cast<double>(device_bytes) / 1e6);
    std::printf("\n");
    const std::string report = model.profile_report();  // per op, or the replays' stage split
    if (!report.empty()) std::printf("%s%s\n", opts.profile_ops ? "\n" : "", report.c_str());
  }
  std::printf("%s\n", line.dump().c_str());
  return 0;
}

}  // namespace frt::cli
