// Calibration cache: checkpoint hash, cache path, strict JSON load, atomic save.
// Test: tests/cpp/test_calibration_cache.cpp.
#include "engine/calibration_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/log.h"
#include "core/sha256.h"
#include "core/status.h"
#include "io/safetensors.h"

#ifndef FLASHRT_VERSION
#error "FLASHRT_VERSION must be defined (CMake sets it on flashrt_core; ad hoc: -DFLASHRT_VERSION=...)"
#endif

namespace frt {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Changing how the hash is computed must change every hash (old cache files then miss, rather
// than being matched by a different sampling): bump the tag.
constexpr const char* kHashTag = "flashrt-checkpoint-hash-v1";
constexpr size_t kWindowBytes = 64;
constexpr size_t kWindowsPerTensor = 16;
constexpr uintmax_t kMaxCacheFileBytes = 16u << 20;  // far above any real one (~100 KB)

void hash_u64(Sha256& h, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  h.update(b, 8);
}

// Length-prefixed, so ("ab", "c") and ("a", "bc") hash differently.
void hash_field(Sha256& h, std::string_view s) {
  hash_u64(h, s.size());
  h.update(s);
}

void hash_tensor_sample(Sha256& h, const SafetensorsEntry& e) {
  const auto* p = static_cast<const uint8_t*>(e.data);
  if (e.nbytes <= kWindowBytes * kWindowsPerTensor) {
    h.update(p, e.nbytes);
    return;
  }
  // First and last window included; starts evenly spaced in between.
  for (size_t i = 0; i < kWindowsPerTensor; ++i)
    h.update(p + (e.nbytes - kWindowBytes) * i / (kWindowsPerTensor - 1), kWindowBytes);
}

bool is_hex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

void check_key(const CalibrationKey& key, const char* where) {
  if (!is_hex64(key.checkpoint_hash))
    throw_error(Status::kInvalidArgument, where, ": checkpoint_hash '", key.checkpoint_hash,
                "'; expected 64 lowercase hex characters (from checkpoint_hash())");
  if (key.prefix_len <= 0 || key.num_views <= 0)
    throw_error(Status::kInvalidArgument, where, ": prefix_len ", key.prefix_len,
                ", num_views ", key.num_views, "; expected both > 0");
}

std::string resolve_dir(const std::string& dir) { return dir.empty() ? calibration_dir() : dir; }

std::string utc_now_iso() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "" when `j[name]` exists and is an integer equal to `want`, else the reason.
std::string check_int_field(const json& j, const char* name, int64_t want) {
  if (!j.contains(name)) return std::string("no \"") + name + "\"";
  const json& v = j[name];
  if (!v.is_number_integer())
    return std::string("\"") + name + "\" is " + v.type_name() + "; expected an integer";
  if (v.get<int64_t>() != want)
    return std::string("\"") + name + "\" is " + v.dump() + "; expected " + std::to_string(want);
  return "";
}

// Validates a parsed cache file against the key and sites; "" when it can be trusted.
std::string validate(const json& j, const CalibrationKey& key,
                     const std::vector<std::string>& expected_sites, CalibrationScales* out) {
  if (!j.is_object()) return std::string("top level is ") + j.type_name() + "; expected an object";
  if (!j.contains("format_version") || !j["format_version"].is_number_integer())
    return "no integer \"format_version\"";
  if (j["format_version"].get<int64_t>() != kCalibrationFormatVersion)
    return "format_version " + j["format_version"].dump() + "; this engine reads " +
           std::to_string(kCalibrationFormatVersion);
  if (!j.contains("engine_version") || !j["engine_version"].is_string())
    return "no string \"engine_version\"";
  if (j["engine_version"].get<std::string>() != FLASHRT_VERSION)
    return "written by engine version " + j["engine_version"].dump() + "; this is \"" +
           FLASHRT_VERSION + "\"";
  if (!j.contains("checkpoint_hash") || !j["checkpoint_hash"].is_string())
    return "no string \"checkpoint_hash\"";
  if (j["checkpoint_hash"].get<std::string>() != key.checkpoint_hash)
    return "checkpoint_hash " + j["checkpoint_hash"].dump() + " does not match the file name's " +
           key.checkpoint_hash;
  for (const auto& [name, want] : {std::pair<const char*, int>{"prefix_len", key.prefix_len},
                                   {"num_views", key.num_views}})
    if (std::string why = check_int_field(j, name, want); !why.empty()) return why;
  if (!j.contains("percentile") || !j["percentile"].is_number() ||
      !(j["percentile"].get<double>() >= 0.0 && j["percentile"].get<double>() <= 100.0))
    return "\"percentile\" is missing or not a number in [0, 100]";
  if (!j.contains("num_samples") || !j["num_samples"].is_number_integer() ||
      j["num_samples"].get<int64_t>() < 1 || j["num_samples"].get<int64_t>() > (1 << 30))
    return "\"num_samples\" is missing or not an integer >= 1";
  if (!j.contains("scales") || !j["scales"].is_object()) return "no object \"scales\"";

  CalibrationScales s;
  s.percentile = j["percentile"].get<double>();
  s.num_samples = static_cast<int>(j["num_samples"].get<int64_t>());
  for (auto it = j["scales"].begin(); it != j["scales"].end(); ++it) {
    // NaN/inf are written by JSON libraries as null (or not at all): both fail here.
    if (!it->is_number())
      return "scale of site '" + it.key() + "' is " + it->type_name() + "; expected a number";
    const float v = static_cast<float>(it->get<double>());  // 1e300 -> inf, 1e-300 -> 0
    if (!std::isfinite(v) || v <= 0.f)
      return "scale of site '" + it.key() + "' is " + it->dump() +
             "; expected a finite float > 0";
    s.scales.emplace(it.key(), v);
  }
  std::vector<std::string> missing, extra;
  for (const std::string& site : expected_sites)
    if (!s.scales.count(site)) missing.push_back(site);
  for (const auto& kv : s.scales)
    if (std::find(expected_sites.begin(), expected_sites.end(), kv.first) == expected_sites.end())
      extra.push_back(kv.first);
  auto list = [](const std::vector<std::string>& v) {
    std::string out;
    for (size_t i = 0; i < v.size() && i < 5; ++i) out += (i ? ", '" : "'") + v[i] + "'";
    if (v.size() > 5) out += ", ... (" + std::to_string(v.size()) + " in all)";
    return out;
  };
  if (!missing.empty()) return "no scale for site(s) " + list(missing);
  if (!extra.empty()) return "scales for unknown site(s) " + list(extra);
  *out = std::move(s);
  return "";
}

// The shortest decimal that reads back as exactly `v` (9 significant digits always do), so the
// file shows 0.0123 rather than the float's full double expansion 0.012299999594688416.
double shortest_double(float v) {
  for (int digits = 6; digits <= 9; ++digits) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(v));
    const double d = std::strtod(buf, nullptr);
    if (static_cast<float>(d) == v) return d;
  }
  return v;  // unreachable: 9 digits round-trip every float
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

std::string checkpoint_hash(const SafetensorsCheckpoint& ckpt) {
  Sha256 h;
  hash_field(h, kHashTag);
  hash_u64(h, ckpt.files().size());
  for (const auto& file : ckpt.files()) {
    hash_field(h, fs::path(file->path()).filename().string());
    hash_u64(h, file->file_size());
    hash_field(h, file->header_json());
    for (const SafetensorsEntry& e : file->entries()) hash_tensor_sample(h, e);
  }
  return Sha256::to_hex(h.finish());
}

std::string calibration_dir() {
  if (const char* d = std::getenv("FLASH_RT_CALIBRATION_DIR"); d && *d) return d;
  if (const char* home = std::getenv("HOME"); home && *home)
    return (fs::path(home) / ".flash_rt" / "calibration").string();
  return "";
}

std::string calibration_cache_path(const CalibrationKey& key, const std::string& dir) {
  check_key(key, "calibration_cache_path");
  return (fs::path(dir) / (key.checkpoint_hash + "_Se" + std::to_string(key.prefix_len) + "_v" +
                           std::to_string(key.num_views) + ".json"))
      .string();
}

std::optional<CalibrationScales> load_calibration(const CalibrationKey& key,
                                                  const std::vector<std::string>& expected_sites,
                                                  const std::string& dir_in) {
  check_key(key, "load_calibration");
  const std::string dir = resolve_dir(dir_in);
  if (dir.empty()) return std::nullopt;  // no HOME and no override: nothing was ever cached
  const std::string path = calibration_cache_path(key, dir);
  auto ignored = [&](const std::string& why) -> std::optional<CalibrationScales> {
    log_warning(path, ": calibration cache ignored (", why, "); will recalibrate");
    return std::nullopt;
  };

  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) return std::nullopt;  // the usual cold start
  if (ec) return ignored("cannot stat: " + ec.message());
  if (st.type() != fs::file_type::regular) return ignored("not a regular file");
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return ignored("cannot read its size: " + ec.message());
  if (size > kMaxCacheFileBytes)
    return ignored(std::to_string(size) + " bytes; expected at most " +
                   std::to_string(kMaxCacheFileBytes));

  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) return ignored("cannot read it");
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::exception& e) {
    return ignored(std::string("not valid JSON, truncated or corrupted: ") + e.what());
  }
  CalibrationScales scales;
  if (std::string why = validate(j, key, expected_sites, &scales); !why.empty())
    return ignored(why);
  log_info("calibration: using ", scales.scales.size(), " cached FP8 scales from ", path);
  return scales;
}

bool save_calibration(const CalibrationKey& key, const CalibrationScales& scales,
                      const std::string& dir_in) {
  check_key(key, "save_calibration");
  for (const auto& [site, v] : scales.scales)
    if (!std::isfinite(v) || v <= 0.f)
      throw_error(Status::kInvalidArgument, "save_calibration: scale of site '", site, "' is ", v,
                  "; expected a finite value > 0 (reduce_scales() never makes such a scale)");
  const std::string dir = resolve_dir(dir_in);
  if (dir.empty()) {
    log_warning("calibration: not cached (HOME is unset and FLASH_RT_CALIBRATION_DIR is not set); "
                "the scales are used from memory and recomputed on the next load");
    return false;
  }
  const std::string path = calibration_cache_path(key, dir);
  auto failed = [&](const std::string& what) {
    log_warning(path, ": cannot write the calibration cache (", what,
                "); the scales are used from memory and recomputed on the next load (set "
                "FLASH_RT_CALIBRATION_DIR to a writable directory)");
    return false;
  };

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return failed("cannot create " + dir + ": " + ec.message());

  nlohmann::ordered_json j;
  j["format_version"] = kCalibrationFormatVersion;
  j["engine_version"] = FLASHRT_VERSION;
  j["checkpoint_hash"] = key.checkpoint_hash;
  j["prefix_len"] = key.prefix_len;
  j["num_views"] = key.num_views;
  j["percentile"] = scales.percentile;
  j["num_samples"] = scales.num_samples;
  j["created"] = utc_now_iso();
  j["scales"] = nlohmann::ordered_json::object();
  for (const auto& [site, v] : scales.scales) j["scales"][site] = shortest_double(v);
  const std::string text = j.dump(1) + "\n";

  // A unique temp name in the same directory (rename is atomic only within one file system).
  static std::atomic<unsigned> counter{0};
  const std::string tmp =
      path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return failed("create " + tmp + ": " + errno_text());
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = "write " + tmp + ": " + errno_text();
      ::close(fd);
      ::unlink(tmp.c_str());
      return failed(why);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {  // the data must be on disk before the name points at it
    const std::string why = "fsync " + tmp + ": " + errno_text();
    ::close(fd);
    ::unlink(tmp.c_str());
    return failed(why);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = "rename to the final name: " + errno_text();
    ::unlink(tmp.c_str());
    return failed(why);
  }
  // Persist the rename itself; failure here only risks losing the cache on a power cut.
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  log_info("calibration: saved ", scales.scales.size(), " FP8 scales to ", path);
  return true;
}

}  // namespace frt
