// Reader for openpi's assets/<asset_id>/norm_stats.json:
//   {"norm_stats": {"state": {"mean": [...], "std": [...], "q01": [...], "q99": [...]},
//                   "actions": {...}}}
// and the normalize / unnormalize math of openpi (src/openpi/transforms.py). Writer for synthetic
// checkpoints. Tests: tests/cpp/test_norm_stats.cpp.
#pragma once

#include <string>
#include <vector>

namespace frt {

struct NormStats {
  std::vector<float> mean, std, q01, q99;  // q01/q99 may be empty (z-score-only stats)
  std::string where;  // "<file>: norm_stats.actions", set by read_norm_stats; for messages
  size_t dim() const { return mean.size(); }
};

struct NormStatsFile {
  NormStats state;
  NormStats actions;
  std::string path;  // file read, for messages
};

// Throws kNotFound (naming the path) or kIoError (naming file and field, e.g.
// "<path>: norm_stats.actions.std: expected 32 numbers like mean, got 7"). "state" and "actions"
// with mean/std are required; q01/q99 are optional (absent or null → empty) but come as a pair;
// all arrays have mean's length; every value is finite as a float.
NormStatsFile read_norm_stats(const std::string& path);
// Same layout, pretty-printed; creates the parent directories. Empty q01/q99 are left out.
void write_norm_stats(const std::string& path, const NormStatsFile& stats);

// Finds assets/<id>/norm_stats.json under a checkpoint dir. asset_id may contain '/' (openpi
// uses the LeRobot repo id, e.g. "physical-intelligence/libero"). asset_id empty: the only
// directory under assets/ holding a norm_stats.json (error listing them if several or none).
std::string find_norm_stats(const std::string& checkpoint_dir, const std::string& asset_id);

enum class NormMode { kQuantile, kZScore, kNone };

// openpi transforms.Normalize / Unnormalize, evaluated in double (openpi's stats are float64):
//   quantile: y = (x - q01) / (q99 - q01 + 1e-6) * 2 - 1;  x = (y + 1) / 2 * (q99 - q01 + 1e-6) +
//   q01 z-score:  y = (x - mean) / (std + 1e-6);               x = y * (std + 1e-6) + mean
// In place over the first min(n, stats.dim()) entries; the rest pass through. (openpi's z-score
// Unnormalize pads std with 1 and so scales those padded dims by 1 + 1e-6; they are zero-padded
// model outputs that callers drop, so passing them through unchanged is the clearer contract.)
// kQuantile without q01/q99 throws kInvalidArgument naming stats.where.
void normalize(std::vector<float>& values, const NormStats& stats, NormMode mode);
// Inverse of normalize over values laid out as rows of `row_dim` (e.g. horizon x 32 actions).
void unnormalize_rows(float* values, size_t rows, size_t row_dim, const NormStats& stats,
                      NormMode mode);

}  // namespace frt
