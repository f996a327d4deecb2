// The FP8 calibration cache: one JSON file of per-site activation scales per (checkpoint, prefix
// length, number of views), so a reload skips the calibration forward. Files are keyed by a
// SHA-256 of the checkpoint's bytes (sampled), written atomically, and never trusted when
// anything about them is off: a corrupted or foreign file is reported and ignored.
// Test: tests/cpp/test_calibration_cache.cpp. Format and rules: docs/calibration.md.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace frt {

class SafetensorsCheckpoint;

inline constexpr int kCalibrationFormatVersion = 1;

struct CalibrationKey {
  std::string checkpoint_hash;  // checkpoint_hash(): 64 lowercase hex characters
  int prefix_len = 0;           // prefix tokens (image tokens of all views + prompt)
  int num_views = 0;            // camera views the graph was built for
};

struct CalibrationScales {
  std::map<std::string, float> scales;  // site -> FP8 scale (amax / 448), each finite and > 0
  double percentile = 99.9;             // how per-sample amax were reduced (informational)
  int num_samples = 1;                  // calibration observations behind the scales
};

// SHA-256 (hex) identifying a checkpoint's weights. Hashed, for each safetensors file in the
// checkpoint's order: its base name, its size, its header JSON, and a fixed sample of every
// tensor's bytes (the whole tensor up to 1 KiB, else 16 evenly spaced 64-byte windows), read
// from the existing mapping. So the same files in a renamed or copied directory keep the hash,
// while a fine-tune (same header, new values) or any header change gets a new one. Reads
// ~1 KiB per tensor: milliseconds on a 7 GB checkpoint whose pages are cached.
std::string checkpoint_hash(const SafetensorsCheckpoint& ckpt);

// $FLASH_RT_CALIBRATION_DIR when set and non-empty, else $HOME/.flash_rt/calibration, else ""
// (no HOME: nothing is cached).
std::string calibration_dir();

// <dir>/<hash>_Se<prefix_len>_v<num_views>.json. Throws kInvalidArgument for a malformed key.
std::string calibration_cache_path(const CalibrationKey& key, const std::string& dir);

// The cached scales for `key` from `dir` ("" = calibration_dir()), or nullopt. A missing file is
// a silent nullopt. A file that is not valid JSON, has a field of the wrong type, another format
// or engine version, a key that does not match `key`, a scale that is not finite and > 0, or a
// set of sites different from `expected_sites` gives a log_warning naming the file and the reason
// ("... ignored; will recalibrate") and nullopt: never an exception, never partial scales.
std::optional<CalibrationScales> load_calibration(const CalibrationKey& key,
                                                  const std::vector<std::string>& expected_sites,
                                                  const std::string& dir = "");

// Writes the file for `key` under `dir` ("" = calibration_dir()), creating the directory:
// a temp file in the same directory, fsync, rename over the final name, so readers see the old
// file or the new one, never half of one. Returns false after a log_warning when it cannot write
// (read-only or unusable directory, disk full): the caller keeps using the scales in memory.
// Throws kInvalidArgument for a malformed key or a scale that is not finite and > 0 (a bug in the
// caller: such a file could never be loaded).
bool save_calibration(const CalibrationKey& key, const CalibrationScales& scales,
                      const std::string& dir = "");

}  // namespace frt
