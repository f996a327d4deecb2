// `flashrt inspect DIR`: describes a checkpoint without loading weights into a backend: files
// and dtypes, the detected config and dims, parameters per part (checked against the weight
// table: missing, wrong-shape and unused tensors), norm-stats assets, the tokenizer lookup and
// the load options the checkpoint cannot carry, with their defaults.
// Tests: tests/python/test_cli.py (make-checkpoint tiny, then inspect).
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "cli_common.h"
#include "core/status.h"
#include "io/norm_stats.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "models/model_config.h"

namespace frt::cli {

namespace {

namespace fs = std::filesystem;

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string short_count(int64_t n) {
  char buf[32];
  if (n >= 1000000000)
    std::snprintf(buf, sizeof(buf), "%.2f B", n / 1e9);
  else if (n >= 1000000)
    std::snprintf(buf, sizeof(buf), "%.2f M", n / 1e6);
  else if (n >= 1000)
    std::snprintf(buf, sizeof(buf), "%.1f K", n / 1e3);
  else
    std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(n));
  return buf;
}

std::string bytes_str(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30))
    std::snprintf(buf, sizeof(buf), "%.2f GiB", b / double(1ull << 30));
  else if (b >= (1ull << 20))
    std::snprintf(buf, sizeof(buf), "%.1f MiB", b / double(1ull << 20));
  else
    std::snprintf(buf, sizeof(buf), "%.1f KiB", b / 1024.0);
  return buf;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t x : s) n *= x;
  return n;
}

void print_list(const char* title, const std::vector<std::string>& items) {
  if (items.empty()) return;
  std::printf("  %s (%zu):\n", title, items.size());
  const size_t shown = std::min<size_t>(items.size(), 20);
  for (size_t i = 0; i < shown; ++i) std::printf("    %s\n", items[i].c_str());
  if (shown < items.size()) std::printf("    ... and %zu more\n", items.size() - shown);
}

const char* norm_name(int n) {
  switch (n) {
    case 1:
      return "quantile";
    case 2:
      return "zscore";
    case 3:
      return "none";
    default:
      return "default";
  }
}

// Parameters per part, checked against the weight table.
void print_parameters(const SafetensorsCheckpoint& ckpt, const ModelDims& dims) {
  std::map<Part, int64_t> per_part;
  std::set<std::string> known;
  std::vector<std::string> missing, wrong_shape, unused;
  int required = 0;
  for (const WeightSpec& spec : weight_table(dims)) {
    std::string name = spec.name;
    if (spec.part == Part::kEmbedding && !ckpt.find(name)) {
      try {
        name = embedding_key(ckpt);  // the untied spelling of other exporters
      } catch (const Error&) {
      }
    }
    known.insert(name);
    if (!spec.optional) ++required;
    const SafetensorsEntry* e = ckpt.find(name);
    if (!e) {
      if (!spec.optional) missing.push_back(name + " " + shape_str(spec.shape));
      continue;
    }
    if (e->shape != spec.shape) {
      wrong_shape.push_back(name + ": expected " + shape_str(spec.shape) + ", got " +
                            shape_str(e->shape));
      continue;
    }
    if (spec.part == Part::kUnused) {
      unused.push_back(name + " (" + short_count(numel(e->shape)) + " params, skipped at load)");
      continue;
    }
    per_part[spec.part] += numel(e->shape);
  }
  std::vector<std::string> unknown;
  for (const std::string& n : ckpt.names())
    if (!known.count(n)) unknown.push_back(n);

  std::printf("\nparameters (weight table of the detected dims):\n");
  int64_t total = 0;
  for (Part p : {Part::kVision, Part::kProjector, Part::kLlm, Part::kEmbedding, Part::kExpert,
                 Part::kHeads}) {
    std::printf("  %-24s %16s  (%s)\n", part_name(p), with_commas(per_part[p]).c_str(),
                short_count(per_part[p]).c_str());
    total += per_part[p];
  }
  std::printf("  %-24s %16s  (%s)\n", "total", with_commas(total).c_str(),
              short_count(total).c_str());
  if (missing.empty() && wrong_shape.empty())
    std::printf("  all %d required tensors present with the expected shapes\n", required);
  print_list("MISSING required tensors", missing);
  print_list("WRONG SHAPE", wrong_shape);
  print_list("present but unused by inference", unused);
  print_list("unknown keys (not in the weight table, ignored)", unknown);
}

void print_dims(const ModelDims& d) {
  const VisionDims& v = d.vision;
  std::printf("\ndims:\n");
  std::printf(
      "  vision (SigLIP)  width %d, layers %d, heads %d x %d, mlp %d, patch %d, image %d"
      " (%d patches)\n",
      v.width, v.layers, v.heads, v.head_dim, v.mlp, v.patch, v.image, v.num_patches());
  auto gemma = [](const char* what, const GemmaDims& g) {
    std::printf("  %-16s width %d, layers %d, heads %d (kv %d) x %d, mlp %d\n", what, g.width,
                g.layers, g.heads, g.kv_heads, g.head_dim, g.mlp);
  };
  gemma("llm (Gemma)", d.llm);
  gemma("action expert", d.expert);
  std::printf("  vocabulary       %d\n  action dim       %d\n", d.vocab, d.action_dim);
  if (d.arch == Arch::kPi0) std::printf("  state dim        %d (state_proj)\n", d.state_dim);
}

void print_norm_stats(const std::string& dir) {
  std::printf("\nnorm stats (assets/<id>/norm_stats.json):\n");
  const fs::path assets = fs::path(dir) / "assets";
  int found = 0;
  if (fs::is_directory(assets)) {
    for (const fs::directory_entry& e : fs::directory_iterator(assets)) {
      const fs::path f = e.path() / "norm_stats.json";
      if (!e.is_directory() || !fs::exists(f)) continue;
      ++found;
      try {
        const NormStatsFile s = read_norm_stats(f.string());
        std::printf("  %s: state dim %zu, actions dim %zu, quantiles %s\n",
                    e.path().filename().string().c_str(), s.state.dim(), s.actions.dim(),
                    s.state.q01.empty() || s.actions.q01.empty() ? "no (z-score only)" : "yes");
      } catch (const Error& err) {
        std::printf("  %s: UNREADABLE: %s\n", e.path().filename().string().c_str(), err.what());
      }
    }
  }
  if (found == 0) std::printf("  none found under %s\n", assets.string().c_str());
}

void print_tokenizer(const std::string& dir) {
  std::printf("\ntokenizer lookup (first existing wins):\n");
  for (const std::string& c : tokenizer_candidates("", dir))
    std::printf("  [%s] %s\n", fs::exists(c) ? "found" : "     ", c.c_str());
  try {
    std::printf("  -> %s\n", find_tokenizer("", dir).c_str());
  } catch (const Error&) {
    std::printf("  -> NOT FOUND: loading will fail unless tokenizer_path is given\n");
  }
}

void print_load_options(const std::string& dir, Arch arch) {
  const ModelOptions o = resolve_options(ModelOptions{}, arch);
  std::string asset;
  try {
    asset = fs::path(find_norm_stats(dir, "")).parent_path().filename().string();
  } catch (const Error&) {
    asset = "(none usable by default: must be given)";
  }
  std::printf(
      "\nload options (the checkpoint cannot say these; defaults for %s, override when"
      " loading):\n",
      arch_name(arch));
  std::printf("  %-22s %d\n", "num_views", o.num_views);
  std::printf("  %-22s %d\n", "num_steps", o.num_steps);
  std::printf("  %-22s %d  (LIBERO configs use 10)\n", "action_horizon", o.action_horizon);
  std::printf("  %-22s %d\n", "max_token_len", o.max_token_len);
  std::printf("  %-22s %d  (%s)\n", "discrete_state_input", o.discrete_state_input,
              o.discrete_state_input ? "state written into the prompt" : "off");
  std::printf("  %-22s %s\n", "normalization", norm_name(o.normalization));
  std::printf("  %-22s %s\n", "norm_stats_asset", asset.c_str());
  std::printf("  %-22s (search above)\n", "tokenizer_path");
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  Args args("inspect",
            "Describe a checkpoint without loading its weights into a backend: files, dtypes,\n"
            "detected config and dims, parameters per part (with missing / wrong-shape / unused\n"
            "tensors), norm-stats assets, the tokenizer lookup and the load options the\n"
            "checkpoint cannot carry, with their defaults.");
  args.positional("DIR", "checkpoint directory");
  if (!args.parse(argc, argv)) return 0;
  const std::string dir = args.pos(0);
  if (!fs::is_directory(dir))
    throw_error(Status::kNotFound, "checkpoint directory '", dir, "' does not exist");
  const SafetensorsCheckpoint ckpt(dir);

  std::printf("checkpoint: %s\n\nfiles:\n", dir.c_str());
  uint64_t total_bytes = 0;
  std::map<std::string, int> dtypes;
  for (const auto& f : ckpt.files()) {
    std::printf("  %s  %s, %zu tensors\n", fs::path(f->path()).filename().string().c_str(),
                bytes_str(f->file_size()).c_str(), f->entries().size());
    total_bytes += f->file_size();
    for (const SafetensorsEntry& e : f->entries()) ++dtypes[dtype_name(e.dtype)];
  }
  std::printf("  total %s\ndtypes:", bytes_str(total_bytes).c_str());
  for (const auto& [name, count] : dtypes) std::printf(" %s x%d", name.c_str(), count);
  std::printf("\n");
  std::fflush(stdout);  // the file summary stays visible if detection fails below

  const ModelDims dims = detect_dims(ckpt, dir, "auto");
  std::printf("\nconfig: %s (detected from the keys: %s)\n", arch_name(dims.arch),
              dims.arch == Arch::kPi05 ? "time_mlp_in / adaRMS norms" : "state_proj");
  print_dims(dims);
  print_parameters(ckpt, dims);
  print_norm_stats(dir);
  print_tokenizer(dir);
  print_load_options(dir, dims.arch);
  return 0;
}

}  // namespace frt::cli
