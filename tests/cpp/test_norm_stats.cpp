// norm_stats.json reading/writing, asset lookup, and openpi's Normalize / Unnormalize math
// (hand-computed values, inverse round trips, pass-through of dims the stats do not cover).
// Run: flashrt_tests --gtest_filter='NormStats*'
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "cpp/test_util.h"
#include "core/status.h"
#include "io/norm_stats.h"

namespace fs = std::filesystem;
using frt::test::error_of;
using namespace frt;

namespace {

NormStats random_stats(std::mt19937& rng, size_t dim, bool quantiles) {
  std::uniform_real_distribution<float> u(-2.f, 2.f), pos(0.1f, 1.5f);
  NormStats s;
  for (size_t i = 0; i < dim; ++i) {
    s.mean.push_back(u(rng));
    s.std.push_back(pos(rng));
    if (quantiles) {
      s.q01.push_back(s.mean.back() - 2.f * s.std.back());
      s.q99.push_back(s.mean.back() + 2.5f * s.std.back());
    }
  }
  return s;
}

// Writes `body` as the value of "norm_stats" and returns the error of reading it.
std::string read_error(const std::string& body, std::string* path_out = nullptr) {
  const fs::path p = frt::test::fresh_test_dir("ns_bad") / "norm_stats.json";
  std::ofstream(p) << body;
  if (path_out) *path_out = p.string();
  return error_of([&] { read_norm_stats(p.string()); });
}

bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST(NormStats, WriteReadRoundTripIsExact) {
  std::mt19937 rng(21);
  NormStatsFile f;
  f.state = random_stats(rng, 8, true);
  f.actions = random_stats(rng, 7, false);
  const fs::path p = frt::test::fresh_test_dir("ns_rt") / "assets" / "robot" / "norm_stats.json";  // dirs created
  write_norm_stats(p.string(), f);
  NormStatsFile g = read_norm_stats(p.string());
  EXPECT_EQ(g.path, p.string());
  EXPECT_EQ(g.state.mean, f.state.mean);
  EXPECT_EQ(g.state.std, f.state.std);
  EXPECT_EQ(g.state.q01, f.state.q01);
  EXPECT_EQ(g.state.q99, f.state.q99);
  EXPECT_EQ(g.actions.mean, f.actions.mean);
  EXPECT_TRUE(g.actions.q01.empty());
  EXPECT_EQ(g.actions.dim(), 7u);
  EXPECT_TRUE(has(g.actions.where, "norm_stats.actions"));
}

TEST(NormStats, ReadsOpenpiLayout) {
  // As openpi's pydantic model writes it (None quantiles come out as null), with an extra group.
  const fs::path p = frt::test::fresh_test_dir("ns_openpi") / "norm_stats.json";
  std::ofstream(p) << R"({
  "norm_stats": {
    "state": {"mean": [0.5, -1.0], "std": [2.0, 0.25], "q01": [-3, -2], "q99": [4, 0.5]},
    "actions": {"mean": [0.1], "std": [1e-3], "q01": null, "q99": null},
    "other": {"mean": [1]}
  }
})";
  NormStatsFile f = read_norm_stats(p.string());
  EXPECT_EQ(f.state.q99[1], 0.5f);
  EXPECT_EQ(f.state.q01[0], -3.f);
  EXPECT_EQ(f.actions.std[0], 1e-3f);
  EXPECT_TRUE(f.actions.q99.empty());
}

TEST(NormStats, ReadErrorsNameFileAndField) {
  Status st = Status::kOk;
  const fs::path missing = frt::test::fresh_test_dir("ns_missing") / "norm_stats.json";
  std::string e = error_of([&] { read_norm_stats(missing.string()); }, &st);
  EXPECT_EQ(st, Status::kNotFound);
  EXPECT_TRUE(has(e, missing.string())) << e;

  std::string path;
  e = read_error("{\"norm_stats\": ", &path);
  EXPECT_TRUE(has(e, path) && has(e, "not valid JSON")) << e;
  e = read_error(R"({"stats": {}})", &path);
  EXPECT_TRUE(has(e, path + ": norm_stats: missing")) << e;
  e = read_error(R"({"norm_stats": {"state": {"mean": [1], "std": [1]}}})");
  EXPECT_TRUE(has(e, "norm_stats.actions: missing")) << e;
  e = read_error(R"({"norm_stats": {"state": [1], "actions": {}}})");
  EXPECT_TRUE(has(e, "norm_stats.state: expected an object")) << e;
  e = read_error(
      R"({"norm_stats": {"state": {"std": [1]}, "actions": {"mean": [1], "std": [1]}}})");
  EXPECT_TRUE(has(e, "norm_stats.state.mean: missing")) << e;
  e = read_error(R"({"norm_stats": {"state": {"mean": [1], "std": [1]},
      "actions": {"mean": [1,2,3,4], "std": [1,2,3]}}})",
                 &path);
  EXPECT_TRUE(has(e, path + ": norm_stats.actions.std: expected 4 numbers like mean, got 3")) << e;
  e = read_error(
      R"({"norm_stats": {"state": {"mean": [1,2], "std": [1,2], "q01": [0,0], "q99": [5]},
      "actions": {"mean": [1], "std": [1]}}})");
  EXPECT_TRUE(has(e, "norm_stats.state.q99: expected 2 numbers like mean, got 1")) << e;
  e = read_error(R"({"norm_stats": {"state": {"mean": [1], "std": [1], "q01": [0]},
      "actions": {"mean": [1], "std": [1]}}})");
  EXPECT_TRUE(has(e, "norm_stats.state: has q01 but not q99")) << e;
  e = read_error(R"({"norm_stats": {"state": {"mean": [1, "x"], "std": [1, 1]},
      "actions": {"mean": [1], "std": [1]}}})");
  EXPECT_TRUE(has(e, "norm_stats.state.mean[1]: expected a number, got string")) << e;
  e = read_error(R"({"norm_stats": {"state": {"mean": [1], "std": [1e39]},
      "actions": {"mean": [1], "std": [1]}}})");
  EXPECT_TRUE(has(e, "norm_stats.state.std[0]: expected a finite float")) << e;
  e = read_error(R"({"norm_stats": {"state": {"mean": [], "std": []},
      "actions": {"mean": [1], "std": [1]}}})");
  EXPECT_TRUE(has(e, "norm_stats.state.mean: expected at least one number")) << e;
  e = read_error(R"({"norm_stats": {"state": {"mean": 3, "std": [1]},
      "actions": {"mean": [1], "std": [1]}}})");
  EXPECT_TRUE(has(e, "norm_stats.state.mean: expected an array of numbers, got number")) << e;
}

TEST(NormStats, FindsAssetsByIdOrAlone) {
  const fs::path dir = frt::test::fresh_test_dir("ns_find");
  NormStatsFile f;
  f.state.mean = f.state.std = f.actions.mean = f.actions.std = {1.f};
  Status st = Status::kOk;
  std::string e = error_of([&] { find_norm_stats(dir.string(), ""); }, &st);
  EXPECT_EQ(st, Status::kNotFound);
  EXPECT_TRUE(has(e, (dir / "assets").string()) && has(e, "norm_stats.json")) << e;

  // openpi names LeRobot assets by repo id, so an id may hold a '/'.
  const fs::path libero = dir / "assets" / "physical-intelligence" / "libero" / "norm_stats.json";
  write_norm_stats(libero.string(), f);
  fs::create_directories(dir / "assets" / "empty_dir");
  EXPECT_EQ(find_norm_stats(dir.string(), ""), libero.string());
  EXPECT_EQ(find_norm_stats(dir.string(), "physical-intelligence/libero"), libero.string());

  const fs::path droid = dir / "assets" / "droid" / "norm_stats.json";
  write_norm_stats(droid.string(), f);
  EXPECT_EQ(find_norm_stats(dir.string(), "droid"), droid.string());
  e = error_of([&] { find_norm_stats(dir.string(), ""); }, &st);
  EXPECT_EQ(st, Status::kInvalidArgument);
  EXPECT_TRUE(has(e, "droid, physical-intelligence/libero") && has(e, "norm_stats_asset")) << e;
  e = error_of([&] { find_norm_stats(dir.string(), "aloha"); }, &st);
  EXPECT_EQ(st, Status::kNotFound);
  EXPECT_TRUE(has(e, "'aloha'") && has(e, "droid, physical-intelligence/libero")) << e;
}

TEST(NormStats, NormalizeMatchesHandComputedOpenpiValues) {
  NormStats s;
  s.mean = {0.5f, -1.f};
  s.std = {2.f, 0.25f};
  s.q01 = {-1.f, 0.f};
  s.q99 = {3.f, 0.f};  // a constant dim: only the 1e-6 keeps it finite
  std::vector<float> q = {1.f, 0.5f, 7.f};
  normalize(q, s, NormMode::kQuantile);
  EXPECT_FLOAT_EQ(q[0], static_cast<float>(2.0 / 4.000001 * 2.0 - 1.0));
  EXPECT_FLOAT_EQ(q[1], static_cast<float>(0.5 / 1e-6 * 2.0 - 1.0));  // 999999
  EXPECT_EQ(q[2], 7.f);                                               // beyond the stats: untouched
  std::vector<float> z = {4.5f, -0.5f, -3.f};
  normalize(z, s, NormMode::kZScore);
  EXPECT_FLOAT_EQ(z[0], static_cast<float>(4.0 / 2.000001));
  EXPECT_FLOAT_EQ(z[1], static_cast<float>(0.5 / 0.250001));
  EXPECT_EQ(z[2], -3.f);
  std::vector<float> none = {4.5f};
  normalize(none, s, NormMode::kNone);
  EXPECT_EQ(none[0], 4.5f);
  std::vector<float> shorter = {1.f};  // fewer values than stats
  normalize(shorter, s, NormMode::kZScore);
  EXPECT_FLOAT_EQ(shorter[0], static_cast<float>(0.5 / 2.000001));

  float rows[2 * 3] = {0.f, 1.f, 9.f, -1.f, 0.5f, -9.f};
  unnormalize_rows(rows, 2, 3, s, NormMode::kQuantile);
  EXPECT_FLOAT_EQ(rows[0], static_cast<float>(0.5 * 4.000001 - 1.0));
  EXPECT_FLOAT_EQ(rows[1], static_cast<float>(1.0 * 1e-6));
  EXPECT_EQ(rows[2], 9.f);
  EXPECT_FLOAT_EQ(rows[3], -1.f);
  EXPECT_EQ(rows[5], -9.f);
  float zr[2] = {1.5f, -2.f};
  unnormalize_rows(zr, 1, 2, s, NormMode::kZScore);
  EXPECT_FLOAT_EQ(zr[0], static_cast<float>(1.5 * 2.000001 + 0.5));
  EXPECT_FLOAT_EQ(zr[1], static_cast<float>(-2.0 * 0.250001 - 1.0));
}

TEST(NormStats, UnnormalizeInvertsNormalize) {
  std::mt19937 rng(5);
  std::normal_distribution<float> n01(0.f, 1.f);
  const NormStats s = random_stats(rng, 7, true);
  const size_t rows = 5, row_dim = 10;  // 32-wide model actions in real use; 7 robot dims
  for (NormMode mode : {NormMode::kQuantile, NormMode::kZScore}) {
    std::vector<float> raw(rows * row_dim), work;
    for (float& x : raw) x = n01(rng);
    work = raw;
    for (size_t r = 0; r < rows; ++r) {
      std::vector<float> row(work.begin() + r * row_dim, work.begin() + (r + 1) * row_dim);
      normalize(row, s, mode);
      std::copy(row.begin(), row.end(), work.begin() + r * row_dim);
    }
    EXPECT_GT(std::fabs(work[3] - raw[3]), 1e-3f);  // it did change the covered dims
    unnormalize_rows(work.data(), rows, row_dim, s, mode);
    for (size_t i = 0; i < raw.size(); ++i) {
      if (i % row_dim >= 7) {
        EXPECT_EQ(work[i], raw[i]) << i;  // not covered by the stats: passed through
      } else {
        EXPECT_NEAR(work[i], raw[i], 1e-5f * (1.f + std::fabs(raw[i]))) << i;
      }
    }
  }
}

TEST(NormStats, QuantileModeNeedsQuantiles) {
  const fs::path p = frt::test::fresh_test_dir("ns_noq") / "norm_stats.json";
  NormStatsFile f;
  f.state.mean = f.actions.mean = {0.f, 1.f};
  f.state.std = f.actions.std = {1.f, 2.f};
  write_norm_stats(p.string(), f);
  NormStatsFile g = read_norm_stats(p.string());
  std::vector<float> v = {1.f, 2.f};
  Status st = Status::kOk;
  std::string e = error_of([&] { normalize(v, g.state, NormMode::kQuantile); }, &st);
  EXPECT_EQ(st, Status::kInvalidArgument);
  EXPECT_TRUE(has(e, p.string()) && has(e, "q01") && has(e, "zscore")) << e;
  e = error_of([&] { unnormalize_rows(v.data(), 1, 2, g.actions, NormMode::kQuantile); });
  EXPECT_TRUE(has(e, p.string() + ": norm_stats.actions")) << e;
  EXPECT_EQ(v[0], 1.f);                      // untouched on error
  normalize(v, g.state, NormMode::kZScore);  // z-score works without quantiles
  EXPECT_FLOAT_EQ(v[1], static_cast<float>(1.0 / 2.000001));
}
