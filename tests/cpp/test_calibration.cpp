// FP8 calibration math: percentile reduction (hand-computed and numpy.percentile values), input
// errors naming site and sample, amax -> scale with the zero floor, site groups, and the
// scale-outlier warning (captured through the log callback).
// Run: flashrt_tests --gtest_filter='Calibration*'
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/log.h"
#include "core/status.h"
#include "cpp/test_util.h"
#include "engine/calibration.h"

using namespace frt;

namespace {

using frt::test::contains;
using frt::test::LogCapture;

}  // namespace

TEST(CalibrationReduce, OneSampleIsItsValue) {
  EXPECT_EQ(reduce_amax({3.75f}, 99.9), 3.75f);
  EXPECT_EQ(reduce_amax({3.75f}, 0.0), 3.75f);
  EXPECT_EQ(reduce_amax({0.f}, 99.9), 0.f);
}

// By hand: sorted a, h = (n - 1) q / 100, a[floor h] + frac(h) (a[floor h + 1] - a[floor h]).
TEST(CalibrationReduce, HandComputedPercentiles) {
  const std::vector<float> a = {3.f, 1.f, 4.f, 2.f};  // sorted: 1 2 3 4
  EXPECT_FLOAT_EQ(reduce_amax(a, 50.0), 2.5f);      // h = 1.5
  EXPECT_FLOAT_EQ(reduce_amax(a, 100.0), 4.f);      // h = 3: the max
  EXPECT_FLOAT_EQ(reduce_amax(a, 0.0), 1.f);        // h = 0: the min
  EXPECT_FLOAT_EQ(reduce_amax(a, 99.9), 3.997f);    // h = 2.997
  EXPECT_FLOAT_EQ(reduce_amax(a, 25.0), 1.75f);     // h = 0.75
  EXPECT_FLOAT_EQ(reduce_amax({10.f, 0.f}, 99.9), 9.99f);  // h = 0.999
}

// Expected values from numpy 1.24 np.percentile(v, q) (default method "linear").
TEST(CalibrationReduce, MatchesNumpyPercentile) {
  const std::vector<float> v = {3.25f, 0.5f, 7.75f, 1.0f, 12.5f, 4.0f, 2.25f, 9.0f};
  const std::vector<std::pair<double, double>> cases = {
      {99.9, 12.4755}, {90.0, 10.05}, {37.5, 2.875}, {12.3, 0.9305}, {50.0, 3.625}};
  for (const auto& [q, want] : cases)
    EXPECT_NEAR(reduce_amax(v, q), want, 1e-5 * want) << "q = " << q;
  const std::vector<float> v3 = {2.f, 8.f, 4.f};
  EXPECT_NEAR(reduce_amax(v3, 99.9), 7.992, 1e-5);
  EXPECT_NEAR(reduce_amax(v3, 25.0), 3.0, 1e-6);
  EXPECT_NEAR(reduce_amax(v3, 75.0), 6.0, 1e-6);
}

// Properties on random inputs: order of samples does not matter, the result lies between the
// min and max and grows with the percentile.
TEST(CalibrationReduce, RandomProperties) {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> dist(0.01f, 50.f);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<float> a(2 + rng() % 30);
    for (float& x : a) x = dist(rng);
    std::vector<float> shuffled = a;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    const float lo = *std::min_element(a.begin(), a.end());
    const float hi = *std::max_element(a.begin(), a.end());
    float prev = -1.f;
    for (double q : {0.0, 10.0, 50.0, 90.0, 99.0, 99.9, 100.0}) {
      const float r = reduce_amax(a, q);
      EXPECT_EQ(r, reduce_amax(shuffled, q)) << "trial " << trial << " q " << q;
      EXPECT_GE(r, lo);
      EXPECT_LE(r, hi);
      EXPECT_GE(r, prev);
      prev = r;
    }
    EXPECT_EQ(reduce_amax(a, 100.0), hi);
    EXPECT_EQ(reduce_amax(a, 0.0), lo);
  }
}

TEST(CalibrationReduce, BadInputsNameSiteAndSample) {
  Status st = Status::kOk;
  std::string msg = test::error_of([] { reduce_amax({1.f, 2.f, NAN}, 99.9, "site_x"); }, &st);
  EXPECT_EQ(st, Status::kInvalidArgument);
  EXPECT_TRUE(contains(msg, "site_x")) << msg;
  EXPECT_TRUE(contains(msg, "sample 2")) << msg;

  msg = test::error_of([] { reduce_amax({INFINITY, 2.f}, 99.9, "s"); });
  EXPECT_TRUE(contains(msg, "sample 0")) << msg;
  msg = test::error_of([] { reduce_amax({1.f, -0.5f}, 99.9, "s"); });
  EXPECT_TRUE(contains(msg, "sample 1")) << msg;
  EXPECT_TRUE(contains(msg, "-0.5")) << msg;
  msg = test::error_of([] { reduce_amax({}, 99.9, "s"); });
  EXPECT_TRUE(contains(msg, "no calibration samples")) << msg;
  for (double q : {-1.0, 100.5, double(NAN)}) {
    msg = test::error_of([q] { reduce_amax({1.f, 2.f}, q, "s"); }, &st);
    EXPECT_EQ(st, Status::kInvalidArgument);
    EXPECT_TRUE(contains(msg, "percentile")) << msg;
  }
}

TEST(CalibrationReduce, ScalesAreAmaxOverFp8Max) {
  const std::map<std::string, std::vector<float>> amax = {
      {"llm.layer0.qkv_in", {4.f, 8.f}},
      {"llm.layer1.qkv_in", {17.5f}},
      {"dead.site", {0.f, 0.f, 0.f}},
  };
  const auto s = reduce_scales(amax, 100.0);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_FLOAT_EQ(s.at("llm.layer0.qkv_in"), 8.f / 448.f);
  EXPECT_FLOAT_EQ(s.at("llm.layer1.qkv_in"), 17.5f / 448.f);
  // Zero amax: floored to a tiny positive scale whose inverse stays finite.
  EXPECT_FLOAT_EQ(s.at("dead.site"), kMinCalibrationAmax / 448.f);
  EXPECT_GT(s.at("dead.site"), 0.f);
  EXPECT_TRUE(std::isfinite(1.f / s.at("dead.site")));
  // Another fp8 max (e.g. E5M2's 57344) divides by that.
  EXPECT_FLOAT_EQ(reduce_scales(amax, 100.0, 57344.f).at("llm.layer1.qkv_in"), 17.5f / 57344.f);

  Status st = Status::kOk;
  const std::string msg =
      test::error_of([] { reduce_scales({{"vision.block3.fc2_in", {1.f, NAN}}}, 99.9); }, &st);
  EXPECT_EQ(st, Status::kInvalidArgument);
  EXPECT_TRUE(contains(msg, "vision.block3.fc2_in")) << msg;
  EXPECT_TRUE(contains(msg, "sample 1")) << msg;
  EXPECT_FALSE(test::error_of([] { reduce_scales({{"a", {1.f}}}, 99.9, 0.f); }).empty());
}

TEST(CalibrationOutliers, SiteGroup) {
  EXPECT_EQ(site_group("llm.layer12.qkv_in"), "llm.qkv_in");
  EXPECT_EQ(site_group("vision.block3.fc2_in"), "vision.fc2_in");
  EXPECT_EQ(site_group("expert.layers7.out_in"), "expert.out_in");
  EXPECT_EQ(site_group("expert.7.out_in"), "expert.out_in");
  EXPECT_EQ(site_group("llm.layer12.fc1_in"), "llm.fc1_in");  // fc1 keeps its digit
  EXPECT_NE(site_group("llm.layer2.fc1_in"), site_group("llm.layer2.fc2_in"));
  EXPECT_EQ(site_group("action_in_proj"), "action_in_proj");
  EXPECT_EQ(site_group("llm.layer.x"), "llm.layer.x");  // "layer" without digits stays
}

TEST(CalibrationOutliers, WarnsAboveTwentyTimesGroupMedian) {
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> jitter(0.9f, 1.1f);
  std::map<std::string, float> scales;
  // Group llm.qkv_in: 7 layers around 0.01, layer 5 at 50x.
  for (int i = 0; i < 7; ++i)
    scales["llm.layer" + std::to_string(i) + ".qkv_in"] = 0.01f * jitter(rng);
  scales["llm.layer5.qkv_in"] = 0.5f;
  // Group vision.fc2_in: median exactly 0.02 (odd count); 0.39 is 19.5x (kept), 0.41 20.5x.
  scales["vision.block0.fc2_in"] = 0.02f;
  scales["vision.block1.fc2_in"] = 0.02f;
  scales["vision.block2.fc2_in"] = 0.02f;
  scales["vision.block3.fc2_in"] = 0.39f;
  scales["vision.block4.fc2_in"] = 0.41f;
  // A group of two is never flagged, however far apart.
  scales["expert.layer0.out_in"] = 1e-4f;
  scales["expert.layer1.out_in"] = 5.f;

  LogCapture log;
  const std::vector<std::string> out = scale_outliers(scales);
  EXPECT_EQ(out, (std::vector<std::string>{"llm.layer5.qkv_in", "vision.block4.fc2_in"}));
  const auto warnings = log.warnings();
  ASSERT_EQ(warnings.size(), 1u);
  const std::string& w = warnings[0];
  for (const std::string& part :
       {std::string("llm.layer5.qkv_in"), std::string("vision.block4.fc2_in"),
        std::string("'llm.qkv_in'"), std::string("'vision.fc2_in'"), std::string("20x"),
        std::string("20.5x")})
    EXPECT_TRUE(contains(w, part)) << "'" << part << "' missing in: " << w;
  EXPECT_FALSE(contains(w, "vision.block3.fc2_in")) << w;
  EXPECT_FALSE(contains(w, "expert.layer1")) << w;
}

TEST(CalibrationOutliers, QuietWhenNoneAndCustomGroups) {
  std::map<std::string, float> scales = {{"a0", 1.f}, {"a1", 2.f}, {"a2", 3.f}, {"a3", 30.f}};
  {
    LogCapture log;
    // Default grouping: every name is its own group (no layer component): nothing to compare.
    EXPECT_TRUE(scale_outliers(scales).empty());
    EXPECT_TRUE(log.warnings().empty());
  }
  {
    LogCapture log;
    // One group: median 2.5, 30 is 12x: not flagged at 20x, flagged at 10x.
    auto one_group = [](const std::string&) { return std::string("all"); };
    EXPECT_TRUE(scale_outliers(scales, one_group).empty());
    EXPECT_EQ(scale_outliers(scales, one_group, 10.0), std::vector<std::string>{"a3"});
    EXPECT_EQ(log.warnings().size(), 1u);
  }
}
