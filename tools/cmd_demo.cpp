// `flashrt demo`: makes (once) a tiny synthetic Pi0.5 checkpoint in the cache, runs it on
// generated camera frames and a synthetic state, prints the action chunk, the load time and the
// median predict latency. The weights are random, so the actions are meaningless: the demo
// shows the pipeline and its speed, not a policy.
// Tests: tests/python/test_cli.py (demo prints the random-weights note).
#include <cstdio>
#include <filesystem>

#include "cli_common.h"

namespace frt::cli {

int cmd_demo(int argc, char** argv) {
  Args args("demo",
            "Run a tiny synthetic Pi0.5 model (random weights) on generated camera frames and\n"
            "print the action chunk and the predict latency. The checkpoint is made once under\n"
            "CACHE/demo-tiny-pi05 and reused.");
  add_model_options(args, 2);
  args.option("--cache-dir", "DIR", "cache directory", default_cache_dir())
      .option("--prompt", "TEXT", "task prompt", "pick up the red block and put it in the bowl")
      .option("--runs", "N", "timed predicts after one warm-up", "5")
      .option("--save-images", "DIR", "also write the generated frames as view<i>.png there");
  if (!args.parse(argc, argv)) return 0;
  flashrt::LoadOptions opts = model_options(args);
  const int runs = static_cast<int>(args.integer("--runs", 1, 100000));
  const std::string dir =
      (std::filesystem::path(args.str("--cache-dir")) / "demo-tiny-pi05").string();

  const double t0 = now_ms();
  bool made = false;
  flashrt::Model model = load_or_make_tiny(dir, opts, /*seed=*/0, &made);
  const double load_ms = now_ms() - t0;
  const frt_model_info_t info = model.info();

  // Frames of different sizes on purpose: predict resizes each with padding to 224x224.
  std::vector<ImageU8> frames;
  std::vector<flashrt::Image> views;
  for (int v = 0; v < opts.num_views; ++v)
    frames.push_back(v == 0 ? synthetic_image(v, 240, 320) : synthetic_image(v, 224, 224));
  for (const ImageU8& f : frames)
    views.push_back(flashrt::Image::u8(f.pixels.data(), f.height, f.width));
  if (args.has("--save-images")) {
    std::filesystem::create_directories(args.str("--save-images"));
    for (size_t v = 0; v < frames.size(); ++v)
      write_png(
          (std::filesystem::path(args.str("--save-images")) / ("view" + std::to_string(v) + ".png"))
              .string(),
          frames[v]);
  }
  flashrt::Observation obs{views, args.str("--prompt"), synthetic_state(info.state_dim), {}};

  model.predict(obs);  // warm-up: first-call allocations, caches
  std::vector<double> ms;
  flashrt::Actions actions;
  for (int i = 0; i < runs; ++i) {
    const double s = now_ms();
    actions = model.predict(obs);
    ms.push_back(now_ms() - s);
  }

  std::printf("FlashRT %s demo: %s on %s (%s), precision %s\n", flashrt::version().c_str(),
              info.config, info.hardware, info.device_name, model.precision().c_str());
  std::printf("checkpoint: %s (%s)\n", dir.c_str(), made ? "made now" : "cached");
  std::printf("views: %d, steps: %d, horizon: %d, action dim: %d (robot dims: %d)\n",
              info.num_views, info.num_steps, info.action_horizon, info.action_dim,
              info.robot_action_dim);
  std::printf("prompt: \"%s\"\n\nactions (first steps, robot dims):\n",
              args.str("--prompt").c_str());
  print_actions(actions, 10, info.robot_action_dim > 0 ? info.robot_action_dim : 8);
  std::printf("\nload: %.1f ms%s\npredict: %.2f ms median of %d runs (min %.2f, max %.2f)\n",
              load_ms, made ? " (including making the checkpoint)" : "", percentile(ms, 50), runs,
              percentile(ms, 0), percentile(ms, 100));
  std::printf(
      "\nNOTE: the weights are random, so these actions are meaningless; the demo shows\n"
      "the pipeline and its latency. Load a real openpi checkpoint with `flashrt run`.\n");
  return 0;
}

}  // namespace frt::cli
