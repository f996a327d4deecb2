// Dims presets, the weight table in openpi's naming, and detection from a checkpoint.
#include "models/model_config.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/status.h"
#include "models/checkpoint_keys.h"
#include "io/safetensors.h"

namespace frt {

namespace {
int count_layers(const SafetensorsCheckpoint& ckpt, const std::string& base,
                 const std::string& probe) {
  int n = 0;
  while (ckpt.find(keys::layer(base, n, probe))) ++n;
  return n;
}

int64_t dim_of(const SafetensorsCheckpoint& ckpt, const std::string& key, int i) {
  const SafetensorsEntry& e = ckpt.get(key);
  if (static_cast<int>(e.shape.size()) <= i)
    throw_error(Status::kInvalidArgument, e.file, ": tensor '", key, "': expected at least ", i + 1,
                " dims, got ", e.shape.size());
  return e.shape[i];
}
}  // namespace

const char* arch_name(Arch a) { return a == Arch::kPi05 ? "pi05" : "pi0"; }

const char* part_name(Part p) {
  switch (p) {
    case Part::kVision: return "vision (SigLIP)";
    case Part::kProjector: return "projector";
    case Part::kLlm: return "llm (Gemma 2B layers)";
    case Part::kEmbedding: return "token embedding";
    case Part::kExpert: return "action expert";
    case Part::kHeads: return "action/time heads";
    case Part::kUnused: return "unused";
  }
  return "?";
}

ModelDims preset_dims(Arch arch, bool tiny) {
  ModelDims d;
  d.arch = arch;
  if (tiny) {
    d.vision = VisionDims{64, 2, 4, 16, 128, 14, 224};
    d.llm = GemmaDims{64, 2, 8, 1, 16, 128};
    d.expert = GemmaDims{32, 2, 8, 1, 16, 64};
    d.vocab = 1024;
  }
  return d;
}

std::vector<WeightSpec> weight_table(const ModelDims& d) {
  std::vector<WeightSpec> t;
  auto add = [&](std::string name, std::vector<int64_t> shape, Part part, bool optional = false) {
    t.push_back(WeightSpec{std::move(name), std::move(shape), part, optional});
  };
  const VisionDims& v = d.vision;
  add(keys::kVision + "embeddings.patch_embedding.weight", {v.width, 3, v.patch, v.patch}, Part::kVision);
  add(keys::kVision + "embeddings.patch_embedding.bias", {v.width}, Part::kVision);
  add(keys::kVision + "embeddings.position_embedding.weight", {v.num_patches(), v.width}, Part::kVision);
  const std::string enc = keys::kVision + "encoder.";
  for (int i = 0; i < v.layers; ++i) {
    for (const char* ln : {"layer_norm1", "layer_norm2"}) {
      add(keys::layer(enc, i, std::string(ln) + ".weight"), {v.width}, Part::kVision);
      add(keys::layer(enc, i, std::string(ln) + ".bias"), {v.width}, Part::kVision);
    }
    for (const char* p : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      add(keys::layer(enc, i, std::string("self_attn.") + p + ".weight"), {v.width, v.width}, Part::kVision);
      add(keys::layer(enc, i, std::string("self_attn.") + p + ".bias"), {v.width}, Part::kVision);
    }
    add(keys::layer(enc, i, "mlp.fc1.weight"), {v.mlp, v.width}, Part::kVision);
    add(keys::layer(enc, i, "mlp.fc1.bias"), {v.mlp}, Part::kVision);
    add(keys::layer(enc, i, "mlp.fc2.weight"), {v.width, v.mlp}, Part::kVision);
    add(keys::layer(enc, i, "mlp.fc2.bias"), {v.width}, Part::kVision);
  }
  add(keys::kVision + "post_layernorm.weight", {v.width}, Part::kVision);
  add(keys::kVision + "post_layernorm.bias", {v.width}, Part::kVision);
  add(keys::kPrefix + "paligemma.model.multi_modal_projector.linear.weight", {d.llm.width, v.width},
      Part::kProjector);
  add(keys::kPrefix + "paligemma.model.multi_modal_projector.linear.bias", {d.llm.width}, Part::kProjector);
  // Tied embedding table as openpi stores it (see embedding_key for the alternative name).
  add(keys::kTiedEmbedding, {d.vocab, d.llm.width}, Part::kEmbedding);

  auto gemma = [&](const std::string& base, const GemmaDims& g, Part part, bool ada) {
    for (int i = 0; i < g.layers; ++i) {
      add(keys::layer(base, i, "self_attn.q_proj.weight"), {g.heads * g.head_dim, g.width}, part);
      add(keys::layer(base, i, "self_attn.k_proj.weight"), {g.kv_heads * g.head_dim, g.width}, part);
      add(keys::layer(base, i, "self_attn.v_proj.weight"), {g.kv_heads * g.head_dim, g.width}, part);
      add(keys::layer(base, i, "self_attn.o_proj.weight"), {g.width, g.heads * g.head_dim}, part);
      add(keys::layer(base, i, "mlp.gate_proj.weight"), {g.mlp, g.width}, part);
      add(keys::layer(base, i, "mlp.up_proj.weight"), {g.mlp, g.width}, part);
      add(keys::layer(base, i, "mlp.down_proj.weight"), {g.width, g.mlp}, part);
      for (const char* n : {"input_layernorm", "post_attention_layernorm"}) {
        if (ada) {
          add(keys::layer(base, i, std::string(n) + ".dense.weight"), {3 * g.width, g.width}, part);
          add(keys::layer(base, i, std::string(n) + ".dense.bias"), {3 * g.width}, part);
        } else {
          add(keys::layer(base, i, std::string(n) + ".weight"), {g.width}, part);
        }
      }
    }
    if (ada) {
      add(base + "norm.dense.weight", {3 * g.width, g.width}, part);
      add(base + "norm.dense.bias", {3 * g.width}, part);
    } else {
      add(base + "norm.weight", {g.width}, part);
    }
  };
  gemma(keys::kLlm, d.llm, Part::kLlm, false);
  const bool pi05 = d.arch == Arch::kPi05;
  gemma(keys::kExpert, d.expert, Part::kExpert, pi05);
  add(keys::kPrefix + "gemma_expert.lm_head.weight", {d.vocab, d.expert.width}, Part::kUnused, true);

  const int64_t w = d.expert.width;
  auto linear = [&](const std::string& name, int64_t out, int64_t in) {
    add(name + ".weight", {out, in}, Part::kHeads);
    add(name + ".bias", {out}, Part::kHeads);
  };
  linear("action_in_proj", w, d.action_dim);
  linear("action_out_proj", d.action_dim, w);
  if (pi05) {
    linear("time_mlp_in", w, w);
    linear("time_mlp_out", w, w);
  } else {
    linear("state_proj", w, d.state_dim);
    linear("action_time_mlp_in", w, 2 * w);
    linear("action_time_mlp_out", w, w);
  }
  return t;
}

std::string embedding_key(const SafetensorsCheckpoint& ckpt) {
  const std::string tied = keys::kTiedEmbedding;
  const std::string untied = keys::kUntiedEmbedding;
  if (ckpt.find(tied)) return tied;
  if (ckpt.find(untied)) return untied;
  throw_error(Status::kNotFound, ckpt.dir(), ": no token-embedding table; expected '", tied,
              "' (openpi export) or '", untied, "'");
}

ModelDims detect_dims(const SafetensorsCheckpoint& ckpt, const std::string& checkpoint_dir,
                      const std::string& requested) {
  const std::string patch = keys::kVision + "embeddings.patch_embedding.weight";
  const std::string q0 = keys::layer(keys::kLlm, 0, "self_attn.q_proj.weight");
  const std::string eq0 = keys::layer(keys::kExpert, 0, "self_attn.q_proj.weight");
  for (const std::string& key : {patch, q0, eq0}) {
    if (!ckpt.find(key))
      throw_error(Status::kInvalidArgument, checkpoint_dir,
                  ": unknown checkpoint layout: missing '", key,
                  "'. Expected an openpi PyTorch export of Pi0 or Pi0.5 (keys under '", keys::kPrefix,
                  "'); make one with `flashrt make-checkpoint` to see the layout");
  }
  const bool has_time_mlp = ckpt.find("time_mlp_in.weight") != nullptr;
  const bool has_ada = ckpt.find(keys::layer(keys::kExpert, 0, "input_layernorm.dense.weight")) != nullptr;
  const bool has_state_proj = ckpt.find("state_proj.weight") != nullptr;
  Arch arch;
  if (has_time_mlp || has_ada) {
    arch = Arch::kPi05;
  } else if (has_state_proj) {
    arch = Arch::kPi0;
  } else {
    throw_error(Status::kInvalidArgument, checkpoint_dir,
                ": cannot tell pi05 from pi0: neither 'time_mlp_in.weight' (pi05) nor "
                "'state_proj.weight' (pi0) is present");
  }
  if (!requested.empty() && requested != "auto" && requested != arch_name(arch)) {
    throw_error(Status::kInvalidArgument, "load_model: config='", requested, "' but the checkpoint ",
                checkpoint_dir, " is a ", arch_name(arch), " checkpoint (",
                arch == Arch::kPi05 ? "has time_mlp_in / adaRMS norms" : "has state_proj",
                "); pass config='", arch_name(arch), "' or config='auto'");
  }

  ModelDims d = preset_dims(arch, false);
  d.vision.width = static_cast<int>(dim_of(ckpt, patch, 0));
  d.vision.patch = static_cast<int>(dim_of(ckpt, patch, 2));
  d.vision.layers = count_layers(ckpt, keys::kVision + "encoder.", "self_attn.q_proj.weight");
  d.vision.mlp = static_cast<int>(dim_of(ckpt, keys::layer(keys::kVision + "encoder.", 0, "mlp.fc1.weight"), 0));
  int vision_heads = 0;
  std::ifstream cfg(std::filesystem::path(checkpoint_dir) / "config.json");
  if (cfg) {
    nlohmann::json j = nlohmann::json::parse(cfg, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("flashrt") && j["flashrt"].is_object() &&
        j["flashrt"].contains("vision_heads") && j["flashrt"]["vision_heads"].is_number_integer())
      vision_heads = j["flashrt"]["vision_heads"].get<int>();
  }
  if (vision_heads <= 0) {
    if (d.vision.width % 72 != 0)
      throw_error(Status::kInvalidArgument, checkpoint_dir, ": SigLIP width ", d.vision.width,
                  " is not a multiple of head_dim 72 and config.json has no flashrt.vision_heads");
    vision_heads = d.vision.width / 72;
  }
  d.vision.heads = vision_heads;
  d.vision.head_dim = d.vision.width / vision_heads;

  auto gemma_dims = [&](const std::string& base, const std::string& probe) {
    GemmaDims g;
    g.width = static_cast<int>(dim_of(ckpt, keys::layer(base, 0, "self_attn.q_proj.weight"), 1));
    g.layers = count_layers(ckpt, base, "self_attn.q_proj.weight");
    g.kv_heads = 1;  // Gemma 2B and 300M are multi-query; a larger k_proj means a bigger head_dim
    g.head_dim = static_cast<int>(dim_of(ckpt, keys::layer(base, 0, "self_attn.k_proj.weight"), 0));
    g.heads = static_cast<int>(dim_of(ckpt, keys::layer(base, 0, "self_attn.q_proj.weight"), 0)) / g.head_dim;
    g.mlp = static_cast<int>(dim_of(ckpt, keys::layer(base, 0, "mlp.gate_proj.weight"), 0));
    (void)probe;
    return g;
  };
  d.llm = gemma_dims(keys::kLlm, "");
  d.expert = gemma_dims(keys::kExpert, "");
  if (d.expert.layers != d.llm.layers || d.expert.head_dim != d.llm.head_dim)
    throw_error(Status::kInvalidArgument, checkpoint_dir, ": the action expert (", d.expert.layers,
                " layers, head_dim ", d.expert.head_dim, ") must match the LLM (", d.llm.layers,
                " layers, head_dim ", d.llm.head_dim, ") layer for layer");
  d.vocab = static_cast<int>(dim_of(ckpt, embedding_key(ckpt), 0));
  d.action_dim = static_cast<int>(dim_of(ckpt, "action_in_proj.weight", 1));
  if (arch == Arch::kPi0) d.state_dim = static_cast<int>(dim_of(ckpt, "state_proj.weight", 1));
  return d;
}

ModelOptions resolve_options(const ModelOptions& in, Arch arch) {
  ModelOptions o = in;
  auto bad = [](const char* name, int value, const char* allowed) {
    throw_error(Status::kInvalidArgument, "load_model: ", name, "=", value, " is invalid; allowed: ",
                allowed);
  };
  if (o.num_views < 1 || o.num_views > 3) bad("num_views", o.num_views, "1, 2 or 3");
  if (o.num_steps == 0) o.num_steps = 10;
  if (o.num_steps < 1 || o.num_steps > 1000) bad("num_steps", o.num_steps, "1..1000 (0 = 10)");
  if (o.action_horizon == 0) o.action_horizon = 50;
  if (o.action_horizon < 1 || o.action_horizon > 1024)
    bad("action_horizon", o.action_horizon, "1..1024 (0 = 50)");
  if (o.max_token_len == 0) o.max_token_len = arch == Arch::kPi05 ? 200 : 48;
  if (o.max_token_len < 2 || o.max_token_len > 4096)
    bad("max_token_len", o.max_token_len, "2..4096 (0 = config default)");
  if (o.discrete_state_input == -1) o.discrete_state_input = arch == Arch::kPi05 ? 1 : 0;
  if (o.discrete_state_input != 0 && o.discrete_state_input != 1)
    bad("discrete_state_input", o.discrete_state_input, "-1 (default), 0 or 1");
  if (arch == Arch::kPi0 && o.discrete_state_input == 1)
    bad("discrete_state_input", 1, "0 for pi0 (pi0 feeds the state through state_proj)");
  if (o.normalization == 0) o.normalization = arch == Arch::kPi05 ? 1 : 2;
  if (o.normalization < 1 || o.normalization > 3)
    bad("normalization", o.normalization, "0 default, 1 quantile, 2 z-score, 3 none");
  return o;
}

}  // namespace frt
