// `flashrt run`: loads a checkpoint, decodes image files (PNG/JPEG/BMP), parses the state and
// predicts one action chunk, printed as a table or as JSON.
// Tests: tests/python/test_cli.py (run on PNGs written by the test, --json, bad --state).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_common.h"

namespace frt::cli {

int cmd_run(int argc, char** argv) {
  Args args("run",
            "Predict one action chunk from camera images (PNG, JPEG or BMP, any size), a task\n"
            "prompt and the robot state. Images fill the slots base, left wrist, right wrist in\n"
            "order; --image none leaves a slot empty (masked).");
  args.option("--checkpoint", "DIR", "checkpoint directory (openpi PyTorch export)")
      .repeated("--image", "FILE", "camera image for the next slot, or 'none'")
      .option("--prompt", "TEXT", "task prompt")
      .option("--state", "V0,V1,...", "robot state, unnormalized, comma-separated");
  add_model_options(args, 0);
  args.option("--config", "pi05|pi0|auto", "expected model family", "auto")
      .flag("--json", "print {\"horizon\", \"dim\", \"actions\": [[...]], ...} instead of a table")
      .flag("--all-dims", "print all action dims (default: the dims the norm stats cover)")
      .epilog(
          "--views defaults to the number of --image given.\nexample:\n"
          "  flashrt run --checkpoint /tmp/pi05_tiny --image base.png --image wrist.jpg \\\n"
          "      --prompt \"pick up the red block\" --state 0.1,0.2,0,0,0,0,0,0");
  if (!args.parse(argc, argv)) return 0;
  if (!args.has("--checkpoint")) args.fail("missing --checkpoint DIR");
  const std::vector<std::string> files = args.all("--image");
  if (files.empty()) args.fail("at least one --image FILE is needed (the base camera)");
  if (files.size() > 3) args.fail("at most 3 --image (base, left wrist, right wrist)");
  if (!args.has("--prompt")) args.fail("missing --prompt TEXT");
  flashrt::LoadOptions opts;
  opts.hardware = args.choice("--hardware", {"auto", "cpu", "cuda"});
  opts.num_views = args.has("--views") ? static_cast<int32_t>(args.integer("--views", 1, 3))
                                       : static_cast<int32_t>(files.size());
  opts.num_steps = static_cast<int32_t>(args.integer("--steps", 1, 1000));
  opts.action_horizon = static_cast<int32_t>(args.integer("--horizon", 1, 1024));
  opts.seed = args.u64("--seed");
  opts.use_fp8 = fp8_choice(args);
  opts.config = args.choice("--config", {"pi05", "pi0", "auto"});
  const std::vector<float> state = args.floats("--state");
  if (static_cast<int>(files.size()) > opts.num_views)
    args.fail(std::to_string(files.size()) + " --image given but --views is " +
              std::to_string(opts.num_views));

  std::vector<ImageU8> frames(files.size());
  std::vector<flashrt::Image> views;
  for (size_t i = 0; i < files.size(); ++i) {
    if (files[i] == "none") {
      views.push_back(flashrt::Image::absent());
      continue;
    }
    frames[i] = read_image(files[i]);
    views.push_back(flashrt::Image::u8(frames[i].pixels.data(), frames[i].height, frames[i].width));
  }

  const double t0 = now_ms();
  flashrt::Model model = flashrt::Model::load(args.str("--checkpoint"), opts);
  const double load_ms = now_ms() - t0;
  const frt_model_info_t info = model.info();
  if (state.empty() && info.discrete_state_input == 1)
    args.fail("missing --state: this " + std::string(info.config) +
              " model puts the robot state into the prompt (discrete_state_input=1); pass " +
              std::to_string(info.state_dim) + " comma-separated values");

  const double t1 = now_ms();
  const flashrt::Actions a = model.predict(views, args.str("--prompt"), state);
  const double predict_ms = now_ms() - t1;

  if (args.has("--json")) {
    nlohmann::json rows = nlohmann::json::array();
    for (int t = 0; t < a.horizon; ++t) {
      nlohmann::json row = nlohmann::json::array();
      for (int d = 0; d < a.dim; ++d) row.push_back(a(t, d));
      rows.push_back(std::move(row));
    }
    nlohmann::json out = {{"config", info.config},
                          {"hardware", info.hardware},
                          {"horizon", a.horizon},
                          {"dim", a.dim},
                          {"robot_action_dim", info.robot_action_dim},
                          {"load_ms", load_ms},
                          {"predict_ms", predict_ms},
                          {"actions", std::move(rows)}};
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("%s on %s: %d x %d actions (load %.1f ms, predict %.2f ms, first call)\n",
              info.config, info.hardware, a.horizon, a.dim, load_ms, predict_ms);
  const int cols =
      args.has("--all-dims") || info.robot_action_dim <= 0 ? a.dim : info.robot_action_dim;
  print_actions(a, a.horizon, cols);
  return 0;
}

}  // namespace frt::cli
