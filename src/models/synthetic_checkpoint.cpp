// Synthetic openpi-layout checkpoints: deterministic weights per tensor (seeded by the tensor's
// name, so a tensor does not change when others are added), bf16 like openpi's converter.
#include "models/synthetic_checkpoint.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/log.h"
#include "core/status.h"
#include "core/tensor.h"
#include "io/norm_stats.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "models/model_config.h"

namespace frt {

namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// Standard normal stream (Box-Muller over splitmix64): fast and reproducible everywhere.
class Normal {
 public:
  explicit Normal(uint64_t seed) : state_(seed) {}
  float next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = (static_cast<double>(splitmix64(state_) >> 11) + 0.5) * 0x1.0p-53;
    double u2 = static_cast<double>(splitmix64(state_) >> 11) * 0x1.0p-53;
    double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = static_cast<float>(r * std::sin(2.0 * M_PI * u2));
    has_spare_ = true;
    return static_cast<float>(r * std::cos(2.0 * M_PI * u2));
  }

 private:
  uint64_t state_;
  bool has_spare_ = false;
  float spare_ = 0.f;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// (mean, std) of a parameter, chosen so activations stay O(1) as in a trained network.
std::pair<float, float> init_of(const WeightSpec& s) {
  const std::string& n = s.name;
  const bool is_bias = ends_with(n, ".bias");
  if (n.find("layer_norm") != std::string::npos || n.find("post_layernorm") != std::string::npos)
    return is_bias ? std::pair{0.f, 0.02f} : std::pair{1.f, 0.05f};
  // Gemma RMSNorm stores w with scale (1 + w): trained values sit near 0.
  if (ends_with(n, "layernorm.weight") || ends_with(n, "model.norm.weight")) return {0.f, 0.1f};
  if (is_bias) return {0.f, 0.02f};
  if (n.find("position_embedding") != std::string::npos) return {0.f, 0.02f};
  if (n.find("lm_head") != std::string::npos || n.find("embed_tokens") != std::string::npos)
    return {0.f, 0.02f};
  int64_t fan_in = 1;
  for (size_t i = 1; i < s.shape.size(); ++i) fan_in *= s.shape[i];
  return {0.f, static_cast<float>(1.0 / std::sqrt(static_cast<double>(fan_in)))};
}

NormStats random_stats(Normal& rng, int dim) {
  NormStats st;
  for (int i = 0; i < dim; ++i) {
    const float mean = 0.3f * rng.next();
    const float sd = 0.2f + 0.4f * std::fabs(rng.next());
    st.mean.push_back(mean);
    st.std.push_back(sd);
    st.q01.push_back(mean - 2.3f * sd);
    st.q99.push_back(mean + 2.3f * sd);
  }
  return st;
}

}  // namespace

void make_synthetic_checkpoint(const std::string& out_dir, const std::string& config,
                               const std::string& size, uint64_t seed) {
  if (config != "pi05" && config != "pi0")
    throw_error(Status::kInvalidArgument, "make-checkpoint: config '", config,
                "' is not one of 'pi05', 'pi0'");
  if (size != "tiny" && size != "full")
    throw_error(Status::kInvalidArgument, "make-checkpoint: size '", size,
                "' is not one of 'tiny', 'full'");
  const Arch arch = config == "pi05" ? Arch::kPi05 : Arch::kPi0;
  const bool tiny = size == "tiny";
  const ModelDims dims = preset_dims(arch, tiny);
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(fs::path(out_dir) / "assets" / kSyntheticAssetId, ec);
  if (ec)
    throw_error(Status::kIoError, "make-checkpoint: cannot create '", out_dir, "': ", ec.message());

  // Weights: bf16, one buffer per tensor, generated in parallel (each tensor has its own seed).
  const std::vector<WeightSpec> table = weight_table(dims);
  std::vector<std::vector<uint16_t>> data(table.size());
  int64_t total = 0;
#pragma omp parallel for schedule(dynamic) reduction(+ : total)
  for (size_t i = 0; i < table.size(); ++i) {
    const WeightSpec& s = table[i];
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    total += n;
    auto [mean, sd] = init_of(s);
    Normal rng(seed * 0x9e3779b97f4a7c15ULL ^ fnv1a(s.name));
    data[i].resize(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) data[i][k] = f32_to_bf16(mean + sd * rng.next());
  }
  SafetensorsWriter writer;
  for (size_t i = 0; i < table.size(); ++i)
    writer.add(table[i].name, DType::kBF16, table[i].shape, data[i].data());
  writer.set_metadata("format", "pt");
  writer.set_metadata("flashrt_synthetic", "random weights: actions are meaningless");
  writer.write((fs::path(out_dir) / "model.safetensors").string());

  // config.json: the openpi fields plus what shapes cannot tell (SigLIP head count of the tiny
  // model) under "flashrt".
  nlohmann::json cfg = {
      {"action_dim", dims.action_dim},
      {"action_horizon", 50},
      {"paligemma_variant", tiny ? "dummy" : "gemma_2b"},
      {"action_expert_variant", tiny ? "dummy" : "gemma_300m"},
      {"precision", "bfloat16"},
      {"pi05", arch == Arch::kPi05},
      {"flashrt",
       {{"synthetic", true}, {"size", size}, {"seed", seed}, {"vision_heads", dims.vision.heads},
        {"note", "random weights; the tokenizer is a small stand-in, not PaliGemma's"}}}};
  std::ofstream(fs::path(out_dir) / "config.json") << cfg.dump(2) << "\n";

  Normal stats_rng(seed ^ 0x5eedULL);
  NormStatsFile stats;
  stats.state = random_stats(stats_rng, 8);    // LIBERO-like robot: 8-D state, 7-D actions
  stats.actions = random_stats(stats_rng, 7);
  write_norm_stats((fs::path(out_dir) / "assets" / kSyntheticAssetId / "norm_stats.json").string(),
                   stats);

  // The real PaliGemma tokenizer cannot be downloaded here: a small SentencePiece model trained
  // on robot-task text stands in (its ids fit every embedding table size).
  train_tiny_tokenizer((fs::path(out_dir) / "paligemma_tokenizer.model").string(),
                       std::min(dims.vocab, 1024));
  log_info("wrote synthetic ", config, " ", size, " checkpoint (", total, " parameters) to ",
           out_dir);
}

}  // namespace frt
