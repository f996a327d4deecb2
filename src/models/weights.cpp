// Loading the Pi0-family weights: check every tensor against the weight table, apply the
// load-time transforms (fusions, (1 + w) folds, Pi0.5 adaRMS precompute) and upload.
#include "models/weights.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "core/log.h"
#include "core/status.h"
#include "models/checkpoint_keys.h"
#include "io/safetensors.h"

namespace frt {

namespace {

// Where load time goes (logged once per load: a 7 GB checkpoint takes seconds, and knowing
// whether reading/converting or uploading dominates says what to speed up). Loads run on one
// thread each, so one instance per thread.
struct LoadTiming {
  double read_ms = 0, upload_ms = 0, precompute_ms = 0;
  double uploaded_bytes = 0;  // f32 bytes handed to the backend
};
thread_local LoadTiming g_timing;

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Reads tensors as f32 with the shape the weight table expects.
class Reader {
 public:
  Reader(const SafetensorsCheckpoint& ckpt, const ModelDims& dims) : ckpt_(ckpt) {
    for (WeightSpec& s : weight_table(dims)) specs_.emplace(s.name, std::move(s));
    check_all_present();
  }

  // Lists every missing required tensor at once (not just the first).
  void check_all_present() const {
    const std::string tied = keys::kTiedEmbedding;
    std::vector<std::string> missing;
    for (const auto& [name, spec] : specs_) {
      if (spec.optional || name == tied) continue;  // the table has two possible names
      if (!ckpt_.find(name)) missing.push_back(name);
    }
    if (missing.empty()) return;
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 10; ++i) list += "\n  " + missing[i];
    throw_error(Status::kNotFound, ckpt_.dir(), ": ", missing.size(),
                " required tensor(s) missing:", list, missing.size() > 10 ? "\n  ..." : "",
                "\nIs this a complete openpi PyTorch export of a ",
                "Pi0-family model? (`flashrt inspect DIR` lists what the file holds)");
  }

  HostTensor f32(const std::string& name) {
    auto it = specs_.find(name);
    FRT_CHECK(it != specs_.end(), "weight '", name, "' is not in the weight table");
    used_.insert(name);
    const auto t0 = std::chrono::steady_clock::now();
    HostTensor t = ckpt_.load_f32(name, it->second.shape);
    g_timing.read_ms += ms_since(t0);
    return t;
  }

  // Concatenates tensors along dim 0 (fused projections), converting each part straight from
  // the mapped file into its rows (no per-part buffer and copy: 5 GB less memory traffic at full
  // size).
  HostTensor concat_rows(const std::vector<std::string>& names) {
    std::vector<const SafetensorsEntry*> parts;
    std::vector<int64_t> shape;
    int64_t rows = 0, part_numel_total = 0;
    for (const std::string& n : names) {
      auto it = specs_.find(n);
      FRT_CHECK(it != specs_.end(), "weight '", n, "' is not in the weight table");
      used_.insert(n);
      parts.push_back(&ckpt_.get(n, it->second.shape));
      if (shape.empty()) shape = it->second.shape;
      FRT_CHECK(it->second.shape.size() == shape.size(), "concat_rows: rank mismatch at '", n, "'");
      rows += it->second.shape[0];
      int64_t numel = 1;
      for (int64_t d : it->second.shape) numel *= d;
      part_numel_total += numel;
    }
    shape[0] = rows;
    const auto t0 = std::chrono::steady_clock::now();
    HostTensor out(DType::kF32, shape, HostInit::kNone);  // every element converted below
    FRT_CHECK(out.numel() == part_numel_total, "concat_rows: parts of unequal row widths");
    float* dst = out.as<float>();
    for (const SafetensorsEntry* e : parts) {
      const int64_t numel = static_cast<int64_t>(e->nbytes / dtype_size(e->dtype));
      convert_to_f32(e->data, e->dtype, dst, static_cast<size_t>(numel));
      dst += numel;
    }
    g_timing.read_ms += ms_since(t0);
    return out;
  }

  // Gemma RMSNorm weight folded to (1 + w).
  HostTensor one_plus(const std::string& name) {
    HostTensor t = f32(name);
    float* p = t.as<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = 1.0f + p[i];
    return t;
  }

  void mark_used(const std::string& name) { used_.insert(name); }

  // Reports keys of the file that the model does not use (as a warning: exporters add extras).
  void report_unused() const {
    std::vector<std::string> extra;
    for (const std::string& n : ckpt_.names()) {
      auto it = specs_.find(n);
      const bool known_unused = it != specs_.end() && it->second.part == Part::kUnused;
      if (!used_.count(n) && !known_unused) extra.push_back(n);
    }
    if (!extra.empty()) {
      std::string list;
      for (size_t i = 0; i < extra.size() && i < 8; ++i) list += "\n  " + extra[i];
      log_warning(ckpt_.dir(), ": ", extra.size(), " tensor(s) in the checkpoint are not used by ",
                  "the model:", list, extra.size() > 8 ? "\n  ..." : "");
    }
  }

 private:
  const SafetensorsCheckpoint& ckpt_;
  std::map<std::string, WeightSpec> specs_;
  std::set<std::string> used_;
};

Tensor up(Backend& be, HostTensor&& t, const std::string& name,
           WeightUse use = WeightUse::kParam) {
  const auto t0 = std::chrono::steady_clock::now();
  g_timing.uploaded_bytes += static_cast<double>(t.nbytes());
  Tensor out = be.upload_weight(std::move(t), name, use);
  g_timing.upload_ms += ms_since(t0);
  return out;
}
constexpr WeightUse kGemm = WeightUse::kGemm;
constexpr WeightUse kPrecise = WeightUse::kGemmPrecise;

// gemm: how the four projection matrices are stored (kGemm: FP8 under an FP8 backend).
GemmaLayerWeights load_gemma_layer(Backend& be, Reader& r, const std::string& base, int i,
                                   bool ada, WeightUse gemm) {
  GemmaLayerWeights w;
  auto k = [&](const std::string& rest) { return keys::layer(base, i, rest); };
  if (!ada) {
    w.input_scale = up(be, r.one_plus(k("input_layernorm.weight")), k("input_layernorm.weight"));
    w.post_scale = up(be, r.one_plus(k("post_attention_layernorm.weight")),
                      k("post_attention_layernorm.weight"));
  }
  w.qkv_w = up(be,
               r.concat_rows({k("self_attn.q_proj.weight"), k("self_attn.k_proj.weight"),
                              k("self_attn.v_proj.weight")}),
               k("self_attn.qkv"), gemm);
  w.o_w = up(be, r.f32(k("self_attn.o_proj.weight")), k("self_attn.o_proj.weight"), gemm);
  w.gate_up_w = up(be, r.concat_rows({k("mlp.gate_proj.weight"), k("mlp.up_proj.weight")}),
                   k("mlp.gate_up"), gemm);
  w.down_w = up(be, r.f32(k("mlp.down_proj.weight")), k("mlp.down_proj.weight"), gemm);
  return w;
}

// Pi0.5: cond_s = silu(time_mlp_out(silu(time_mlp_in(sinusoid(t_s))))) and, for every adaRMS
// norm n, mod = n.dense(cond_s) = (scale, shift, gate). Evaluated with the CPU reference backend
// in fp32 whatever the target backend is: 117 M dense parameters never reach the device.
HostTensor precompute_adarms(Reader& r, const ModelDims& d, int num_steps) {
  const int W = d.expert.width;
  const int L = d.expert.layers;
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  auto load = [&](const std::string& name) {
    return cpu->upload_weight(r.f32(name), name, WeightUse::kParam);
  };
  Tensor tin_w = load("time_mlp_in.weight"), tin_b = load("time_mlp_in.bias");
  Tensor tout_w = load("time_mlp_out.weight"), tout_b = load("time_mlp_out.bias");
  std::vector<std::string> dense;
  for (int i = 0; i < L; ++i) {
    dense.push_back(keys::layer(keys::kExpert, i, "input_layernorm.dense"));
    dense.push_back(keys::layer(keys::kExpert, i, "post_attention_layernorm.dense"));
  }
  dense.push_back(keys::kExpert + "norm.dense");
  std::vector<Tensor> dense_w, dense_b;
  for (const std::string& n : dense) {
    dense_w.push_back(load(n + ".weight"));
    dense_b.push_back(load(n + ".bias"));
  }
  const std::vector<float> ts = flow_schedule(num_steps);
  const int steps = static_cast<int>(ts.size());
  const int norms = static_cast<int>(dense.size());
  HostTensor mod(DType::kF32, {steps, norms, 3, W});
  Tensor emb = cpu->alloc(DType::kF32, {1, W}, "time_emb");
  Tensor hid = cpu->alloc(DType::kF32, {1, W}, "time_hidden");
  Tensor cond = cpu->alloc(DType::kF32, {1, W}, "time_cond");
  for (int s = 0; s < steps; ++s) {
    cpu->time_embedding(emb, ts[s], 4e-3f, 4.0f);
    cpu->linear(hid, emb, tin_w, &tin_b, Activation::kSilu, false);
    cpu->linear(cond, hid, tout_w, &tout_b, Activation::kSilu, false);
    for (int n = 0; n < norms; ++n) {
      float* dst = mod.as<float>() + (static_cast<int64_t>(s) * norms + n) * 3 * W;
      Tensor out = make_view(dst, DType::kF32, Device::kCpu, {1, 3 * W});
      cpu->linear(out, cond, dense_w[n], &dense_b[n], Activation::kNone, false);
    }
  }
  return mod;
}

// Pi0: action_time_mlp_in(concat(a, e_s)) = W[:, :W] a + (W[:, W:] e_s + b). The second term is
// fixed per Euler step: evaluate it once per step in fp64 (a tiny [W, W] x [W] product).
std::pair<HostTensor, HostTensor> split_action_time_mlp(Reader& r, const ModelDims& d,
                                                        int num_steps) {
  const int W = d.expert.width;
  HostTensor full = r.f32("action_time_mlp_in.weight");  // [W, 2W]
  HostTensor bias = r.f32("action_time_mlp_in.bias");    // [W]
  HostTensor action_half(DType::kF32, {W, W});
  for (int o = 0; o < W; ++o)
    std::memcpy(action_half.as<float>() + static_cast<int64_t>(o) * W,
                full.as<float>() + static_cast<int64_t>(o) * 2 * W, sizeof(float) * W);
  const std::vector<float> ts = flow_schedule(num_steps);
  const int steps = static_cast<int>(ts.size());
  HostTensor step_bias(DType::kF32, {steps, W});
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  Tensor emb = cpu->alloc(DType::kF32, {1, W}, "time_emb");
  for (int s = 0; s < steps; ++s) {
    cpu->time_embedding(emb, ts[s], 4e-3f, 4.0f);
    const float* e = emb.as<float>();
    for (int o = 0; o < W; ++o) {
      const float* wt = full.as<float>() + static_cast<int64_t>(o) * 2 * W + W;
      double acc = bias.as<float>()[o];
      for (int k = 0; k < W; ++k) acc += static_cast<double>(wt[k]) * e[k];
      step_bias.as<float>()[static_cast<int64_t>(s) * W + o] = static_cast<float>(acc);
    }
  }
  return {std::move(action_half), std::move(step_bias)};
}

}  // namespace

std::vector<float> flow_schedule(int num_steps) {
  // Mirrors openpi's fp32 loop so the step count and the t values match bit for bit.
  const float dt = -1.0f / static_cast<float>(num_steps);
  std::vector<float> ts;
  for (float t = 1.0f; t >= -dt / 2.0f; t += dt) ts.push_back(t);
  return ts;
}

Pi0Weights load_pi0_weights(Backend& be, const SafetensorsCheckpoint& ckpt, const ModelDims& d,
                            int num_steps) {
  g_timing = LoadTiming{};
  const auto t_start = std::chrono::steady_clock::now();
  Reader r(ckpt, d);
  Pi0Weights w;
  // Vision tower.
  w.patch_w = up(be, r.f32(keys::kVision + "embeddings.patch_embedding.weight"), "patch_embedding.weight");
  w.patch_b = up(be, r.f32(keys::kVision + "embeddings.patch_embedding.bias"), "patch_embedding.bias");
  w.pos_emb = up(be, r.f32(keys::kVision + "embeddings.position_embedding.weight"), "position_embedding");
  const std::string enc = keys::kVision + "encoder.";
  // SigLIP's GEMMs stay out of FP8 (kPrecise): at its 256 rows per view FP8 measured no faster
  // (the input quantization eats the GEMM's gain), and its error was the largest single share of
  // the FP8 path's (vision tokens cos 0.9947 vs bf16), which Pi0's expert does not absorb.
  for (int i = 0; i < d.vision.layers; ++i) {
    auto k = [&](const std::string& rest) { return keys::layer(enc, i, rest); };
    SiglipLayerWeights l;
    l.ln1_w = up(be, r.f32(k("layer_norm1.weight")), k("layer_norm1.weight"));
    l.ln1_b = up(be, r.f32(k("layer_norm1.bias")), k("layer_norm1.bias"));
    l.qkv_w = up(be,
                 r.concat_rows({k("self_attn.q_proj.weight"), k("self_attn.k_proj.weight"),
                                k("self_attn.v_proj.weight")}),
                 k("self_attn.qkv.weight"), kPrecise);
    l.qkv_b = up(be,
                 r.concat_rows({k("self_attn.q_proj.bias"), k("self_attn.k_proj.bias"),
                                k("self_attn.v_proj.bias")}),
                 k("self_attn.qkv.bias"));
    l.o_w = up(be, r.f32(k("self_attn.out_proj.weight")), k("self_attn.out_proj.weight"), kPrecise);
    l.o_b = up(be, r.f32(k("self_attn.out_proj.bias")), k("self_attn.out_proj.bias"));
    l.ln2_w = up(be, r.f32(k("layer_norm2.weight")), k("layer_norm2.weight"));
    l.ln2_b = up(be, r.f32(k("layer_norm2.bias")), k("layer_norm2.bias"));
    l.fc1_w = up(be, r.f32(k("mlp.fc1.weight")), k("mlp.fc1.weight"), kPrecise);
    l.fc1_b = up(be, r.f32(k("mlp.fc1.bias")), k("mlp.fc1.bias"));
    l.fc2_w = up(be, r.f32(k("mlp.fc2.weight")), k("mlp.fc2.weight"), kPrecise);
    l.fc2_b = up(be, r.f32(k("mlp.fc2.bias")), k("mlp.fc2.bias"));
    w.vision.push_back(l);
  }
  w.post_ln_w = up(be, r.f32(keys::kVision + "post_layernorm.weight"), "post_layernorm.weight");
  w.post_ln_b = up(be, r.f32(keys::kVision + "post_layernorm.bias"), "post_layernorm.bias");
  const std::string proj = keys::kPrefix + "paligemma.model.multi_modal_projector.linear.";
  w.proj_w = up(be, r.f32(proj + "weight"), "projector.weight", kPrecise);
  w.proj_b = up(be, r.f32(proj + "bias"), "projector.bias");

  // Embedding table: openpi's tied lm_head, or an untied embed_tokens from other exporters.
  const std::string emb_key = embedding_key(ckpt);
  r.mark_used(emb_key);
  w.embed = up(be, ckpt.load_f32(emb_key, {d.vocab, d.llm.width}), "embed_tokens",
               WeightUse::kTable);

  // The LLM's final norm is never read: Pi0/Pi0.5 use only the prefix KV cache.
  r.mark_used(keys::kLlm + "norm.weight");
  // Pi0 keeps the PaliGemma prefix GEMMs in bf16 under FP8. Measured on the full-size synthetic
  // Pi0 (scripts/device/check_fp8.py --config pi0): with W8A8 prefix GEMMs the prefix K/V drift
  // to cos ~0.995 by layer 4 (scripts/device/diag_fp8.py) and Pi0's expert, which has no gated
  // residual to damp it, carries that to the actions (cos 0.9967-0.9973 vs the fp32 reference,
  // bar 0.998). Pi0.5's gated adaRMS expert keeps 0.9997 with the FP8 prefix. The expert's FP8
  // GEMMs are weight-only (skinny: activations stay bf16), so they stay FP8 for both.
  const bool pi05 = d.arch == Arch::kPi05;
  const WeightUse prefix_gemm = pi05 ? kGemm : kPrecise;
  for (int i = 0; i < d.llm.layers; ++i)
    w.llm.push_back(load_gemma_layer(be, r, keys::kLlm, i, false, prefix_gemm));
  for (int i = 0; i < d.expert.layers; ++i)
    w.expert.push_back(load_gemma_layer(be, r, keys::kExpert, i, pi05, kGemm));
  if (pi05) {
    const auto t0 = std::chrono::steady_clock::now();
    HostTensor mod = precompute_adarms(r, d, num_steps);
    g_timing.precompute_ms += ms_since(t0);
    w.adarms_mod = up(be, std::move(mod), "adarms_modulation");
  } else {
    w.expert_final_scale = up(be, r.one_plus(keys::kExpert + "norm.weight"), "expert.norm.weight");
    w.state_w = up(be, r.f32("state_proj.weight"), "state_proj.weight", kPrecise);
    w.state_b = up(be, r.f32("state_proj.bias"), "state_proj.bias");
    auto [action_half, step_bias] = split_action_time_mlp(r, d, num_steps);
    w.action_time_in_w =
        up(be, std::move(action_half), "action_time_mlp_in.weight[:, :W]", kPrecise);
    w.action_time_step_bias = up(be, std::move(step_bias), "action_time_mlp_in.step_bias");
    w.action_time_out_w =
        up(be, r.f32("action_time_mlp_out.weight"), "action_time_mlp_out.weight", kPrecise);
    w.action_time_out_b = up(be, r.f32("action_time_mlp_out.bias"), "action_time_mlp_out.bias");
  }
  w.action_in_w = up(be, r.f32("action_in_proj.weight"), "action_in_proj.weight", kPrecise);
  w.action_in_b = up(be, r.f32("action_in_proj.bias"), "action_in_proj.bias");
  w.action_out_w = up(be, r.f32("action_out_proj.weight"), "action_out_proj.weight", kPrecise);
  w.action_out_b = up(be, r.f32("action_out_proj.bias"), "action_out_proj.bias");
  r.report_unused();
  log_info("weights loaded in ", static_cast<int64_t>(ms_since(t_start)), " ms: reading + f32 ",
           "conversion ", static_cast<int64_t>(g_timing.read_ms), " ms, upload (",
           static_cast<int64_t>(g_timing.uploaded_bytes / 1e6), " MB of f32) ",
           static_cast<int64_t>(g_timing.upload_ms), " ms, time-schedule precompute ",
           static_cast<int64_t>(g_timing.precompute_ms), " ms (its reads counted as reading)");
  return w;
}

}  // namespace frt
