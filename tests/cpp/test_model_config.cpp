// Model config detection, the weight table and load options; synthetic checkpoints.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include "cpp/test_util.h"
#include "core/status.h"
#include "engine/engine.h"
#include "io/safetensors.h"
#include "models/blocks.h"
#include "models/model_config.h"
#include "models/synthetic_checkpoint.h"
#include "models/weights.h"

namespace fs = std::filesystem;
using frt::test::error_of;
using namespace frt;

namespace {

// A shared tiny pi05 checkpoint for the tests of this file.
const fs::path& tiny_pi05() {
  static fs::path dir = [] {
    fs::path d = frt::test::fresh_test_dir("mc_tiny_pi05");
    make_synthetic_checkpoint(d.string(), "pi05", "tiny", 7);
    return d;
  }();
  return dir;
}

}  // namespace

TEST(ModelConfig, DetectsTinyPi05DimsFromShapes) {
  SafetensorsCheckpoint ckpt(tiny_pi05().string());
  ModelDims d = detect_dims(ckpt, tiny_pi05().string(), "auto");
  ModelDims want = preset_dims(Arch::kPi05, true);
  EXPECT_EQ(d.arch, Arch::kPi05);
  EXPECT_EQ(d.vision.width, want.vision.width);
  EXPECT_EQ(d.vision.layers, want.vision.layers);
  EXPECT_EQ(d.vision.heads, want.vision.heads);
  EXPECT_EQ(d.llm.width, want.llm.width);
  EXPECT_EQ(d.llm.heads, want.llm.heads);
  EXPECT_EQ(d.llm.head_dim, want.llm.head_dim);
  EXPECT_EQ(d.llm.mlp, want.llm.mlp);
  EXPECT_EQ(d.expert.width, want.expert.width);
  EXPECT_EQ(d.expert.mlp, want.expert.mlp);
  EXPECT_EQ(d.vocab, want.vocab);
}

TEST(ModelConfig, WrongConfigNamesWhatWasFound) {
  SafetensorsCheckpoint ckpt(tiny_pi05().string());
  std::string msg = error_of([&] { detect_dims(ckpt, tiny_pi05().string(), "pi0"); });
  EXPECT_NE(msg.find("pi05 checkpoint"), std::string::npos) << msg;
  EXPECT_NE(msg.find("config='pi0'"), std::string::npos) << msg;
}

TEST(ModelConfig, UnknownLayoutIsRejected) {
  fs::path d = frt::test::fresh_test_dir("mc_unknown_layout");
  float v[4] = {1, 2, 3, 4};
  SafetensorsWriter w;
  w.add("model.layers.0.weight", DType::kF32, {2, 2}, v);
  w.write((d / "model.safetensors").string());
  SafetensorsCheckpoint ckpt(d.string());
  std::string msg = error_of([&] { detect_dims(ckpt, d.string(), "auto"); });
  EXPECT_NE(msg.find("unknown checkpoint layout"), std::string::npos) << msg;
}

TEST(ModelConfig, FullSizeTableMatchesPublishedParameterCounts) {
  // pi05 full size: SigLIP ~412M, Gemma-2B layers ~1.98B, expert ~311M (+ adaRMS dense 117M).
  ModelDims d = preset_dims(Arch::kPi05, false);
  int64_t vision = 0, llm = 0, expert = 0, embed = 0;
  for (const WeightSpec& s : weight_table(d)) {
    int64_t n = 1;
    for (int64_t x : s.shape) n *= x;
    if (s.part == Part::kVision) vision += n;
    if (s.part == Part::kLlm) llm += n;
    if (s.part == Part::kExpert) expert += n;
    if (s.part == Part::kEmbedding) embed += n;
  }
  EXPECT_NEAR(vision / 1e6, 412, 3);
  EXPECT_NEAR(llm / 1e9, 1.98, 0.02);
  EXPECT_NEAR(embed / 1e6, 527, 1);
  EXPECT_NEAR((expert - 117e6) / 1e6, 311, 10);
}

TEST(ModelConfig, ResolveOptionsDefaultsAndRanges) {
  ModelOptions o = resolve_options(ModelOptions{}, Arch::kPi05);
  EXPECT_EQ(o.max_token_len, 200);
  EXPECT_EQ(o.discrete_state_input, 1);
  EXPECT_EQ(o.normalization, 1);
  EXPECT_EQ(o.num_steps, 10);
  EXPECT_EQ(o.action_horizon, 50);
  ModelOptions p = resolve_options(ModelOptions{}, Arch::kPi0);
  EXPECT_EQ(p.max_token_len, 48);
  EXPECT_EQ(p.discrete_state_input, 0);
  EXPECT_EQ(p.normalization, 2);
  ModelOptions bad;
  bad.num_views = 4;
  std::string msg = error_of([&] { resolve_options(bad, Arch::kPi05); });
  EXPECT_NE(msg.find("num_views=4"), std::string::npos) << msg;
}

TEST(ModelConfig, FlowScheduleMatchesOpenpiLoop) {
  std::vector<float> ts = flow_schedule(10);
  ASSERT_EQ(ts.size(), 10u);
  EXPECT_FLOAT_EQ(ts[0], 1.0f);
  EXPECT_NEAR(ts[9], 0.1f, 1e-6);
  EXPECT_EQ(flow_schedule(3).size(), 3u);
}

// The prefix pass runs over the valid rows rounded up to one of these (Backend::run_bucketed).
TEST(ModelConfig, PrefixRowOptionsCoverEveryLength) {
  EXPECT_EQ(frt::prefix_row_options(512, 200),
            (std::vector<int>{544, 576, 608, 640, 672, 704, 712}));
  EXPECT_EQ(frt::prefix_row_options(512, 48), (std::vector<int>{544, 560}));
  EXPECT_EQ(frt::prefix_row_options(256, 32), (std::vector<int>{288}));
  EXPECT_EQ(frt::prefix_row_options(0, 5), (std::vector<int>{5}));
  const std::vector<int> opts = frt::prefix_row_options(512, 200);
  for (int valid = 513; valid <= 712; ++valid) {  // 2 views: 512 image rows + >= 1 token
    const int rows = frt::bucket_rows(opts, valid);
    ASSERT_GE(rows, valid);
    ASSERT_LT(rows - valid, frt::kPrefixBucketTokens) << valid;
  }
}

TEST(SyntheticCheckpoint, IsDeterministicPerSeed) {
  fs::path a = frt::test::fresh_test_dir("mc_det_a"), b = frt::test::fresh_test_dir("mc_det_b");
  make_synthetic_checkpoint(a.string(), "pi05", "tiny", 3);
  make_synthetic_checkpoint(b.string(), "pi05", "tiny", 3);
  auto slurp = [](const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  EXPECT_EQ(slurp(a / "model.safetensors"), slurp(b / "model.safetensors"));
  EXPECT_TRUE(fs::exists(a / "assets" / kSyntheticAssetId / "norm_stats.json"));
  EXPECT_TRUE(fs::exists(a / "paligemma_tokenizer.model"));
  EXPECT_TRUE(fs::exists(a / "config.json"));
}

TEST(Engine, TinyPi05PredictsFiniteDeterministicActions) {
  LoadRequest req;
  req.hardware = "cpu";
  req.options.action_horizon = 10;
  Engine e(tiny_pi05().string(), req);
  std::vector<uint8_t> img(120 * 160 * 3);
  for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<uint8_t>((i * 37) % 251);
  Observation obs;
  obs.images = {ImageInput{img.data(), 120, 160, 3, false}};
  float state[8] = {0.1f, -0.2f, 0.3f, 0.f, 0.5f, -0.6f, 0.7f, 0.05f};
  obs.state = state;
  obs.state_dim = 8;
  obs.prompt = "pick up the red block";
  std::vector<float> noise(10 * 32);
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = std::sin(0.37f * i);
  obs.noise = noise.data();
  obs.noise_len = static_cast<int64_t>(noise.size());
  std::vector<float> a1, a2;
  e.predict(obs, a1);
  e.predict(obs, a2);
  ASSERT_EQ(a1.size(), 320u);
  for (float v : a1) ASSERT_TRUE(std::isfinite(v));
  EXPECT_EQ(a1, a2);
  obs.prompt = "open the drawer";
  std::vector<float> a3;
  e.predict(obs, a3);
  EXPECT_NE(a1, a3);
}

TEST(Engine, RejectsBadInputsWithNamedErrors) {
  LoadRequest req;
  req.hardware = "cpu";
  req.options.action_horizon = 10;
  Engine e(tiny_pi05().string(), req);
  std::vector<uint8_t> img(32 * 32 * 3, 100);
  float state[8] = {0};
  Observation obs;
  obs.images = {ImageInput{img.data(), 32, 32, 4, false}};
  obs.state = state;
  obs.state_dim = 8;
  obs.prompt = "x";
  std::vector<float> out;
  EXPECT_NE(error_of([&] { e.predict(obs, out); }).find("4 channels"), std::string::npos);
  obs.images = {ImageInput{img.data(), 32, 32, 3, false}};
  state[2] = std::nanf("");
  EXPECT_NE(error_of([&] { e.predict(obs, out); }).find("state[2]"), std::string::npos);
  state[2] = 0;
  obs.state = nullptr;
  obs.state_dim = 0;
  EXPECT_NE(error_of([&] { e.predict(obs, out); }).find("state is required"), std::string::npos);
}
