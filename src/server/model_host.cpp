// Loading, warm-up and predict of the server's model (see model_host.h).
// Tests: tests/python/test_server_openpi.py, tests/python/test_server_http.py (/health).
#include "server/model_host.h"

#include <chrono>
#include <filesystem>
#include <utility>

namespace frt::server {
namespace {

double now_ms() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count();
}

// A smooth, per-slot different frame, so the warm-up run sees structure, not a constant.
std::vector<uint8_t> warmup_frame(int slot, int h, int w) {
  std::vector<uint8_t> px(static_cast<size_t>(h) * w * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        px[(static_cast<size_t>(y) * w + x) * 3 + c] =
            static_cast<uint8_t>((x * (c + 1) + y * (slot + 2) + 40 * slot) & 0xff);
  return px;
}

}  // namespace

ModelHost::ModelHost(std::string checkpoint, flashrt::LoadOptions options, std::string name)
    : checkpoint_(std::move(checkpoint)), options_(std::move(options)) {
  summary_.name = name.empty() ? std::filesystem::path(checkpoint_).filename().string() : name;
  if (summary_.name.empty())  // "ckpt/" has an empty filename
    summary_.name = std::filesystem::path(checkpoint_).parent_path().filename().string();
  summary_.checkpoint = checkpoint_;
}

ModelHost::~ModelHost() = default;

void ModelHost::load_and_warm_up(int warmup_runs) {
  const double t0 = now_ms();
  model_ = std::make_unique<flashrt::Model>(flashrt::Model::load(checkpoint_, options_));
  load_ms_ = now_ms() - t0;
  const frt_model_info_t i = model_->info();
  summary_.config = i.config;
  summary_.hardware = i.hardware;
  summary_.precision = model_->precision();
  summary_.device_name = i.device_name;
  summary_.version = flashrt::version();
  summary_.num_views = i.num_views;
  summary_.num_steps = i.num_steps;
  summary_.action_horizon = i.action_horizon;
  summary_.action_dim = i.action_dim;
  summary_.state_dim = i.state_dim;
  summary_.robot_action_dim = i.robot_action_dim;
  summary_.discrete_state_input = i.discrete_state_input;
  summary_.prompt = model_->prompt();

  // Every slot filled, the norm-stats state length, fixed zero noise (keeps the seeded
  // generator where a fresh model has it), the default prompt or a placeholder.
  const double t1 = now_ms();
  std::vector<std::vector<uint8_t>> frames;
  flashrt::Observation obs;
  for (int s = 0; s < i.num_views; ++s) {
    frames.push_back(warmup_frame(s, 224, 224));
    obs.images.push_back(flashrt::Image::u8(frames.back().data(), 224, 224));
  }
  obs.state.assign(static_cast<size_t>(i.state_dim > 0 ? i.state_dim : 0), 0.f);
  obs.noise.assign(static_cast<size_t>(i.action_horizon) * i.action_dim, 0.f);
  if (summary_.prompt.empty()) obs.prompt = "warm up";
  for (int r = 0; r < warmup_runs; ++r) model_->predict(obs);
  warmup_ms_ = now_ms() - t1;
  ready_.store(true, std::memory_order_release);
}

InferenceOutput ModelHost::predict(const InferenceInput& in) {
  InferenceOutput out;
  std::vector<flashrt::Image> views;
  views.reserve(in.images.size());
  for (const ImageBuffer& im : in.images) {
    if (!im.u8.empty())
      views.push_back(flashrt::Image::u8(im.u8.data(), im.height, im.width));
    else if (!im.f32.empty())
      views.push_back(flashrt::Image::f32(im.f32.data(), im.height, im.width));
    else
      views.push_back(flashrt::Image::absent());
  }
  flashrt::Observation obs{std::move(views), in.prompt, in.state, in.noise};
  const double t0 = now_ms();
  try {
    flashrt::Actions a = model_->predict(obs);
    out.horizon = a.horizon;
    out.dim = a.dim;
    out.actions = std::move(a.actions);
  } catch (const flashrt::Error& e) {
    // Bad input the mapping did not catch is the client's (400); the rest is ours (500).
    out.status = e.status() == FRT_STATUS_INVALID_ARGUMENT ? 400 : 500;
    out.error = e.what();
  } catch (const std::exception& e) {
    out.status = 500;
    out.error = std::string("internal error: ") + e.what();
  }
  out.infer_ms = now_ms() - t0;
  return out;
}

}  // namespace frt::server
