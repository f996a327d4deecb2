// Calibration cache: the checkpoint hash (changes with a tensor's bytes or the header, not with
// the directory's name), the cache path and directory override, save/load round trip, every kind
// of corrupted or foreign file ignored with a warning, atomic writes, unwritable directories.
// Run: flashrt_tests --gtest_filter='CalibrationCache*'
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>

#include "core/log.h"
#include "core/tensor.h"
#include "cpp/test_util.h"
#include "engine/calibration_cache.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using namespace frt;
using json = nlohmann::json;

namespace {

using frt::test::contains;
using frt::test::LogCapture;

// A tiny checkpoint: a small f32 tensor (hashed whole), a 64x64 f32 tensor (sampled) and a bf16
// bias. `edit` may change the values before writing.
struct TinyWeights {
  std::vector<float> small, big;
  std::vector<uint16_t> bias;
};
TinyWeights random_weights(uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 0.5f);
  TinyWeights w;
  w.small.resize(12);
  w.big.resize(64 * 64);
  w.bias.resize(64);
  for (float& x : w.small) x = d(rng);
  for (float& x : w.big) x = d(rng);
  for (uint16_t& x : w.bias) x = f32_to_bf16(d(rng));
  return w;
}
void write_checkpoint(const fs::path& dir, const TinyWeights& w,
                      const std::string& small_name = "layer.small.weight") {
  fs::create_directories(dir);
  SafetensorsWriter wr;
  wr.add(small_name, DType::kF32, {4, 3}, w.small.data());
  wr.add("layer.big.weight", DType::kF32, {64, 64}, w.big.data());
  wr.add("layer.bias", DType::kBF16, {64}, w.bias.data());
  wr.write((dir / "model.safetensors").string());
}
std::string hash_of(const fs::path& dir) {
  return checkpoint_hash(SafetensorsCheckpoint(dir.string()));
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
void write_text(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << s;
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Sets an environment variable for one scope, restoring the old value after.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(const std::string& n, const char* value) : name(n) {
    if (const char* v = std::getenv(n.c_str())) old = v;
    if (value) setenv(n.c_str(), value, 1);
    else unsetenv(n.c_str());
  }
  ~ScopedEnv() {
    if (old) setenv(name.c_str(), old->c_str(), 1);
    else unsetenv(name.c_str());
  }
};

const CalibrationKey kKey{std::string(64, 'a').replace(0, 6, "0123ab"), 968, 2};
const std::vector<std::string> kSites = {"llm.layer0.qkv_in", "llm.layer1.qkv_in",
                                         "vision.block0.fc2_in"};

CalibrationScales some_scales() {
  CalibrationScales s;
  s.scales = {{"llm.layer0.qkv_in", 0.0123f}, {"llm.layer1.qkv_in", 1.f / 3.f},
              {"vision.block0.fc2_in", 7.5e-5f}};
  s.percentile = 99.9;
  s.num_samples = 8;
  return s;
}

}  // namespace

TEST(CalibrationCacheHash, ChangesWithBytesNotWithDirectoryName) {
  const fs::path root = test::fresh_test_dir("calib_hash");
  const TinyWeights w = random_weights(5);
  write_checkpoint(root / "ckpt_a", w);
  const std::string h = hash_of(root / "ckpt_a");
  EXPECT_TRUE(std::regex_match(h, std::regex("[0-9a-f]{64}"))) << h;
  EXPECT_EQ(hash_of(root / "ckpt_a"), h);  // deterministic across opens

  // Same files in a renamed directory (and a copy elsewhere): same hash.
  fs::rename(root / "ckpt_a", root / "renamed");
  EXPECT_EQ(hash_of(root / "renamed"), h);
  fs::create_directories(root / "nested" / "deeper");
  fs::copy_file(root / "renamed" / "model.safetensors",
                root / "nested" / "deeper" / "model.safetensors");
  EXPECT_EQ(hash_of(root / "nested" / "deeper"), h);

  // One value of the small tensor differs (same header): new hash.
  TinyWeights w1 = w;
  w1.small[7] += 0.25f;
  write_checkpoint(root / "one_value", w1);
  EXPECT_EQ(fs::file_size(root / "one_value" / "model.safetensors"),
            fs::file_size(root / "renamed" / "model.safetensors"));
  EXPECT_NE(hash_of(root / "one_value"), h);

  // A fine-tune of the big (sampled) tensor: every value nudged by 0.1%: new hash.
  TinyWeights w2 = w;
  for (float& x : w2.big) x *= 1.001f;
  write_checkpoint(root / "finetuned", w2);
  EXPECT_NE(hash_of(root / "finetuned"), h);

  // A single bf16 bias value (bias is 128 bytes: hashed whole).
  TinyWeights w3 = w;
  w3.bias[63] ^= 1;
  write_checkpoint(root / "bias", w3);
  EXPECT_NE(hash_of(root / "bias"), h);

  // Same bytes under another tensor name (header only): new hash.
  write_checkpoint(root / "renamed_tensor", w, "layer.small.weight2");
  EXPECT_NE(hash_of(root / "renamed_tensor"), h);
}

TEST(CalibrationCachePath, FormatAndDirectoryOverride) {
  EXPECT_EQ(calibration_cache_path(kKey, "/x/y"), "/x/y/" + kKey.checkpoint_hash + "_Se968_v2.json");
  {
    ScopedEnv env("FLASH_RT_CALIBRATION_DIR", "/tmp/somewhere_else");
    EXPECT_EQ(calibration_dir(), "/tmp/somewhere_else");
  }
  {
    ScopedEnv env("FLASH_RT_CALIBRATION_DIR", nullptr);
    ScopedEnv home("HOME", "/home/robot");
    EXPECT_EQ(calibration_dir(), "/home/robot/.flash_rt/calibration");
  }
  {
    ScopedEnv env("FLASH_RT_CALIBRATION_DIR", "");  // empty counts as unset
    ScopedEnv home("HOME", nullptr);
    EXPECT_EQ(calibration_dir(), "");
  }
  Status st = Status::kOk;
  EXPECT_FALSE(test::error_of([] { calibration_cache_path({"../../etc", 968, 2}, "/x"); }, &st)
                   .empty());
  EXPECT_EQ(st, Status::kInvalidArgument);
  EXPECT_FALSE(
      test::error_of([] { calibration_cache_path({kKey.checkpoint_hash, 0, 2}, "/x"); }).empty());
}

TEST(CalibrationCacheFile, RoundTripAndFields) {
  const fs::path dir = test::fresh_test_dir("calib_roundtrip") / "not" / "yet" / "there";
  const CalibrationScales s = some_scales();
  LogCapture log;
  ASSERT_TRUE(save_calibration(kKey, s, dir.string()));
  const auto loaded = load_calibration(kKey, kSites, dir.string());
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->scales, s.scales);  // bit-exact floats
  EXPECT_EQ(loaded->percentile, 99.9);
  EXPECT_EQ(loaded->num_samples, 8);
  EXPECT_TRUE(log.warnings().empty());

  const json j = json::parse(read_text(calibration_cache_path(kKey, dir.string())));
  EXPECT_EQ(j["format_version"], 1);
  EXPECT_EQ(j["engine_version"], FLASHRT_VERSION);
  EXPECT_EQ(j["checkpoint_hash"], kKey.checkpoint_hash);
  EXPECT_EQ(j["prefix_len"], 968);
  EXPECT_EQ(j["num_views"], 2);
  EXPECT_EQ(j["num_samples"], 8);
  EXPECT_TRUE(std::regex_match(j["created"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
      << j["created"];
  EXPECT_EQ(j["scales"].size(), 3u);

  // The key is part of the name: another view count or prefix length is another file.
  EXPECT_FALSE(load_calibration({kKey.checkpoint_hash, 968, 3}, kSites, dir.string()));
  EXPECT_FALSE(load_calibration({kKey.checkpoint_hash, 969, 2}, kSites, dir.string()));
  EXPECT_TRUE(log.warnings().empty());  // missing files are silent
}

TEST(CalibrationCacheFile, DefaultDirectoryFromEnv) {
  const fs::path dir = test::fresh_test_dir("calib_env");
  ScopedEnv env("FLASH_RT_CALIBRATION_DIR", dir.c_str());
  ASSERT_TRUE(save_calibration(kKey, some_scales()));
  EXPECT_TRUE(fs::exists(calibration_cache_path(kKey, dir.string())));
  EXPECT_TRUE(load_calibration(kKey, kSites).has_value());
}

// Every way a file can be wrong: nullopt plus one warning naming the file and the reason.
TEST(CalibrationCacheFile, CorruptedOrForeignFilesAreIgnoredWithAWarning) {
  const fs::path dir = test::fresh_test_dir("calib_corrupt");
  ASSERT_TRUE(save_calibration(kKey, some_scales(), dir.string()));
  const fs::path path = calibration_cache_path(kKey, dir.string());
  const std::string good = read_text(path);

  auto edited = [&](const std::function<void(json&)>& edit) {
    json j = json::parse(good);
    edit(j);
    return j.dump();
  };
  // Infinity has no JSON spelling: a hand-edited overflow is what a file can hold.
  const std::string with_inf = std::regex_replace(
      good, std::regex(R"("llm\.layer1\.qkv_in": [^,\n]+)"), R"("llm.layer1.qkv_in": 1e999)");
  ASSERT_NE(with_inf, good);

  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"truncated", good.substr(0, good.size() / 2), "not valid JSON"},
      {"empty", "", "not valid JSON"},
      {"garbage", std::string("\x00\xff{{{", 5), "not valid JSON"},
      {"array", "[1, 2, 3]", "expected an object"},
      {"format 2", edited([](json& j) { j["format_version"] = 2; }), "format_version 2"},
      {"format string", edited([](json& j) { j["format_version"] = "1"; }), "format_version"},
      {"engine version", edited([](json& j) { j["engine_version"] = "0.0.0-other"; }),
       "0.0.0-other"},
      {"nan scale", edited([](json& j) { j["scales"]["llm.layer1.qkv_in"] = NAN; }),
       "llm.layer1.qkv_in"},
      {"inf scale", with_inf, "1e999"},
      {"zero scale", edited([](json& j) { j["scales"]["llm.layer0.qkv_in"] = 0.0; }),
       "llm.layer0.qkv_in"},
      {"negative scale", edited([](json& j) { j["scales"]["vision.block0.fc2_in"] = -0.01; }),
       "vision.block0.fc2_in"},
      {"underflowing scale", edited([](json& j) { j["scales"]["llm.layer0.qkv_in"] = 1e-300; }),
       "llm.layer0.qkv_in"},
      {"string scale", edited([](json& j) { j["scales"]["llm.layer0.qkv_in"] = "0.1"; }),
       "llm.layer0.qkv_in"},
      {"missing site", edited([](json& j) { j["scales"].erase("vision.block0.fc2_in"); }),
       "no scale for site(s) 'vision.block0.fc2_in'"},
      {"unknown site", edited([](json& j) { j["scales"]["llm.layer9.qkv_in"] = 0.1; }),
       "unknown site(s) 'llm.layer9.qkv_in'"},
      {"no scales", edited([](json& j) { j.erase("scales"); }), "scales"},
      {"hash mismatch", edited([](json& j) { j["checkpoint_hash"] = std::string(64, 'f'); }),
       "checkpoint_hash"},
      {"prefix mismatch", edited([](json& j) { j["prefix_len"] = 967; }), "prefix_len"},
      {"views type", edited([](json& j) { j["num_views"] = "2"; }), "num_views"},
      {"bad percentile", edited([](json& j) { j["percentile"] = 250.0; }), "percentile"},
      {"bad num_samples", edited([](json& j) { j["num_samples"] = 0; }), "num_samples"},
  };
  for (const auto& [name, text, reason] : cases) {
    write_text(path, text);
    LogCapture log;
    std::optional<CalibrationScales> got;
    EXPECT_NO_THROW(got = load_calibration(kKey, kSites, dir.string())) << name;
    EXPECT_FALSE(got.has_value()) << name;
    const auto w = log.warnings();
    ASSERT_EQ(w.size(), 1u) << name;
    EXPECT_TRUE(contains(w[0], path.string())) << name << ": " << w[0];
    EXPECT_TRUE(contains(w[0], "ignored")) << name << ": " << w[0];
    EXPECT_TRUE(contains(w[0], "will recalibrate")) << name << ": " << w[0];
    EXPECT_TRUE(contains(w[0], reason)) << name << ": '" << reason << "' missing in " << w[0];
  }
  // The good text still loads (so the cases above failed for their edit, not for the setup).
  write_text(path, good);
  EXPECT_TRUE(load_calibration(kKey, kSites, dir.string()).has_value());
}

TEST(CalibrationCacheFile, AtomicWriteLeavesNoTempFile) {
  const fs::path dir = test::fresh_test_dir("calib_atomic");
  CalibrationScales s = some_scales();
  ASSERT_TRUE(save_calibration(kKey, s, dir.string()));
  const std::string name = fs::path(calibration_cache_path(kKey, dir.string())).filename();
  EXPECT_EQ(files_in(dir), std::vector<std::string>{name});
  // Overwriting replaces the file in place: still one file, holding the new values.
  s.scales["llm.layer0.qkv_in"] = 0.5f;
  s.num_samples = 3;
  ASSERT_TRUE(save_calibration(kKey, s, dir.string()));
  EXPECT_EQ(files_in(dir), std::vector<std::string>{name});
  const auto loaded = load_calibration(kKey, kSites, dir.string());
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->scales.at("llm.layer0.qkv_in"), 0.5f);
  EXPECT_EQ(loaded->num_samples, 3);
}

TEST(CalibrationCacheFile, UnwritableDirectoryWarnsAndReturnsFalse) {
  const fs::path root = test::fresh_test_dir("calib_readonly");
  write_text(root / "a_file", "x");  // a directory cannot be created under a regular file
  LogCapture log;
  bool ok = true;
  EXPECT_NO_THROW(ok = save_calibration(kKey, some_scales(), (root / "a_file" / "sub").string()));
  EXPECT_FALSE(ok);
  ASSERT_EQ(log.warnings().size(), 1u);
  EXPECT_TRUE(contains(log.warnings()[0], "cannot write the calibration cache"))
      << log.warnings()[0];
  EXPECT_TRUE(contains(log.warnings()[0], "FLASH_RT_CALIBRATION_DIR")) << log.warnings()[0];

  if (geteuid() != 0) {  // root ignores permission bits
    fs::create_directories(root / "ro");
    fs::permissions(root / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    LogCapture log2;
    EXPECT_FALSE(save_calibration(kKey, some_scales(), (root / "ro").string()));
    EXPECT_EQ(log2.warnings().size(), 1u);
    fs::permissions(root / "ro", fs::perms::owner_all);
    EXPECT_TRUE(files_in(root / "ro").empty());
  }
}

TEST(CalibrationCacheFile, InvalidScalesOrKeyThrow) {
  const fs::path dir = test::fresh_test_dir("calib_invalid");
  CalibrationScales s = some_scales();
  s.scales["llm.layer1.qkv_in"] = NAN;
  Status st = Status::kOk;
  const std::string msg = test::error_of([&] { save_calibration(kKey, s, dir.string()); }, &st);
  EXPECT_EQ(st, Status::kInvalidArgument);
  EXPECT_TRUE(contains(msg, "llm.layer1.qkv_in")) << msg;
  EXPECT_TRUE(files_in(dir).empty());
  EXPECT_FALSE(
      test::error_of([&] { load_calibration({"ABC", 968, 2}, kSites, dir.string()); }).empty());
}

// Scales are written as their shortest exact decimal: every float reads back bit for bit.
TEST(CalibrationCacheFile, RandomScalesRoundTripBitExact) {
  const fs::path dir = test::fresh_test_dir("calib_bits");
  std::mt19937 rng(2024);
  std::uniform_real_distribution<float> exponent(-9.f, 3.f);
  CalibrationScales s;
  std::vector<std::string> sites;
  for (int i = 0; i < 300; ++i) {
    sites.push_back("llm.layer" + std::to_string(i) + ".qkv_in");
    s.scales[sites.back()] =
        std::pow(10.f, exponent(rng)) * (1.f + static_cast<float>(rng() % 997) / 1e4f);
  }
  s.scales[sites[0]] = std::nextafter(1.f, 2.f);  // needs all 9 digits
  s.scales[sites[1]] = std::numeric_limits<float>::denorm_min();
  ASSERT_TRUE(save_calibration(kKey, s, dir.string()));
  const auto loaded = load_calibration(kKey, sites, dir.string());
  ASSERT_TRUE(loaded.has_value());
  for (const std::string& site : sites)
    EXPECT_EQ(loaded->scales.at(site), s.scales.at(site)) << site;
}
