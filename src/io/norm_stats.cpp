// openpi norm_stats.json: strict reader, writer, asset lookup, and the Normalize / Unnormalize
// math of openpi's src/openpi/transforms.py. Tests: tests/cpp/test_norm_stats.cpp.
#include "io/norm_stats.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/status.h"

namespace frt {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr double kEps = 1e-6;  // openpi's epsilon in every normalize formula

// `field` of one stats group as floats; absent (or null, as pydantic writes None) → empty when
// optional.
std::vector<float> read_array(const json& group, const char* field, bool required,
                              const std::string& where) {
  const std::string name = where + "." + field;
  if (!group.contains(field) || group[field].is_null()) {
    if (required) throw_error(Status::kIoError, name, ": missing; expected an array of numbers");
    return {};
  }
  const json& arr = group[field];
  if (!arr.is_array())
    throw_error(Status::kIoError, name, ": expected an array of numbers, got ", arr.type_name());
  std::vector<float> out;
  out.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    if (!arr[i].is_number())
      throw_error(Status::kIoError, name, "[", i, "]: expected a number, got ", arr[i].type_name());
    const float v = static_cast<float>(arr[i].get<double>());
    if (!std::isfinite(v))
      throw_error(Status::kIoError, name, "[", i, "]: expected a finite float, got ",
                  arr[i].dump());
    out.push_back(v);
  }
  return out;
}

// `prefix` is "<path>: norm_stats"; the group is "state" or "actions".
NormStats read_group(const json& stats, const char* key, const std::string& prefix) {
  const std::string where = prefix + "." + key;
  if (!stats.contains(key))
    throw_error(Status::kIoError, where, ": missing; expected {mean, std[, q01, q99]}");
  const json& g = stats[key];
  if (!g.is_object())
    throw_error(Status::kIoError, where, ": expected an object {mean, std[, q01, q99]}, got ",
                g.type_name());
  NormStats s;
  s.where = where;
  s.mean = read_array(g, "mean", true, where);
  s.std = read_array(g, "std", true, where);
  s.q01 = read_array(g, "q01", false, where);
  s.q99 = read_array(g, "q99", false, where);
  if (s.mean.empty())
    throw_error(Status::kIoError, where, ".mean: expected at least one number, got 0");
  const std::pair<const char*, const std::vector<float>*> others[] = {
      {"std", &s.std}, {"q01", &s.q01}, {"q99", &s.q99}};
  for (const auto& [name, v] : others) {
    if (v->empty() && name[0] == 'q') continue;
    if (v->size() != s.mean.size())
      throw_error(Status::kIoError, where, ".", name, ": expected ", s.mean.size(),
                  " numbers like mean, got ", v->size());
  }
  if (s.q01.empty() != s.q99.empty())
    throw_error(Status::kIoError, where, ": has ", s.q01.empty() ? "q99" : "q01", " but not ",
                s.q01.empty() ? "q01" : "q99", "; expected both quantiles or neither");
  return s;
}

// The shortest decimal that reads back as the same float (0.3f → 0.3, not 0.30000001192...).
double shortest(float v) {
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  double d = 0;
  std::from_chars(buf, res.ptr, d);
  return d;
}

nlohmann::ordered_json group_json(const NormStats& s) {
  auto arr = [](const std::vector<float>& v) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    for (float x : v) a.push_back(shortest(x));
    return a;
  };
  nlohmann::ordered_json g = {{"mean", arr(s.mean)}, {"std", arr(s.std)}};
  if (!s.q01.empty()) g["q01"] = arr(s.q01);
  if (!s.q99.empty()) g["q99"] = arr(s.q99);
  return g;
}

// Number of leading dims transformed; checks the stats the mode needs.
size_t covered(size_t n, const NormStats& stats, NormMode mode) {
  if (mode == NormMode::kQuantile) {
    if (stats.q01.empty() || stats.q99.empty())
      throw_error(Status::kInvalidArgument, stats.where.empty() ? "norm stats" : stats.where,
                  ": quantile normalization needs q01 and q99, which these stats lack; use "
                  "normalization='zscore' or stats with quantiles");
    return std::min({n, stats.q01.size(), stats.q99.size()});
  }
  FRT_CHECK(stats.std.size() >= stats.mean.size(), "norm stats std shorter than mean");
  return std::min(n, stats.mean.size());
}

}  // namespace

NormStatsFile read_norm_stats(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw_error(Status::kNotFound, path,
                ": norm stats file not found or unreadable; expected openpi's "
                "assets/<asset_id>/norm_stats.json");
  std::stringstream ss;
  ss << in.rdbuf();
  json root;
  try {
    root = json::parse(ss.str());
  } catch (const json::exception& e) {
    throw_error(Status::kIoError, path, ": not valid JSON (", e.what(), ")");
  }
  if (!root.is_object() || !root.contains("norm_stats") || !root["norm_stats"].is_object())
    throw_error(
        Status::kIoError, path,
        ": norm_stats: missing; expected {\"norm_stats\": {\"state\": {...}, \"actions\": {...}}}");
  NormStatsFile out;
  out.path = path;
  const std::string prefix = path + ": norm_stats";
  out.state = read_group(root["norm_stats"], "state", prefix);
  out.actions = read_group(root["norm_stats"], "actions", prefix);
  return out;
}

void write_norm_stats(const std::string& path, const NormStatsFile& stats) {
  nlohmann::ordered_json root = {
      {"norm_stats", {{"state", group_json(stats.state)}, {"actions", group_json(stats.actions)}}}};
  std::error_code ec;
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << root.dump(2) << "\n";
  out.close();
  if (!out) throw_error(Status::kIoError, path, ": cannot write norm stats");
}

std::string find_norm_stats(const std::string& checkpoint_dir, const std::string& asset_id) {
  const fs::path assets = fs::path(checkpoint_dir) / "assets";
  // Every asset id present: directories (possibly nested, "org/name") holding norm_stats.json.
  std::vector<std::string> found;
  std::error_code ec;
  if (fs::is_directory(assets, ec)) {
    fs::recursive_directory_iterator it(assets, fs::directory_options::follow_directory_symlink,
                                        ec),
        end;
    for (; !ec && it != end; it.increment(ec)) {
      if (it.depth() > 3) it.disable_recursion_pending();
      if (it->path().filename() == "norm_stats.json" && it->is_regular_file(ec))
        found.push_back(fs::relative(it->path().parent_path(), assets, ec).generic_string());
    }
    std::sort(found.begin(), found.end());
  }
  auto list = [&] {
    std::string s;
    for (const std::string& f : found) s += (s.empty() ? "" : ", ") + f;
    return s.empty() ? std::string("none") : s;
  };
  if (!asset_id.empty()) {
    const fs::path p = assets / asset_id / "norm_stats.json";
    if (fs::is_regular_file(p, ec)) return p.string();
    throw_error(Status::kNotFound, p.string(), ": not found for asset '", asset_id,
                "'; assets with norm stats in ", assets.string(), ": ", list());
  }
  if (found.size() == 1) return (assets / found[0] / "norm_stats.json").string();
  if (found.empty())
    throw_error(Status::kNotFound, assets.string(),
                ": no <asset_id>/norm_stats.json found; expected openpi's assets directory "
                "next to the weights (copy it from the original checkpoint)");
  throw_error(Status::kInvalidArgument, assets.string(), ": several assets have norm stats (",
              list(), "); pass the asset id to use (norm_stats_asset option)");
}

void normalize(std::vector<float>& values, const NormStats& stats, NormMode mode) {
  if (mode == NormMode::kNone) return;
  const size_t n = covered(values.size(), stats, mode);
  for (size_t i = 0; i < n; ++i) {
    const double x = values[i];
    const double y =
        mode == NormMode::kQuantile
            ? (x - stats.q01[i]) / (double(stats.q99[i]) - stats.q01[i] + kEps) * 2.0 - 1.0
            : (x - stats.mean[i]) / (double(stats.std[i]) + kEps);
    values[i] = static_cast<float>(y);
  }
}

void unnormalize_rows(float* values, size_t rows, size_t row_dim, const NormStats& stats,
                      NormMode mode) {
  if (mode == NormMode::kNone) return;
  const size_t n = covered(row_dim, stats, mode);
  for (size_t r = 0; r < rows; ++r) {
    float* row = values + r * row_dim;
    for (size_t i = 0; i < n; ++i) {
      const double y = row[i];
      const double x =
          mode == NormMode::kQuantile
              ? (y + 1.0) / 2.0 * (double(stats.q99[i]) - stats.q01[i] + kEps) + stats.q01[i]
              : y * (double(stats.std[i]) + kEps) + stats.mean[i];
      row[i] = static_cast<float>(x);
    }
  }
}

}  // namespace frt
