// SigLIP encoder, Gemma prefix pass and action-expert layer (shared by Pi0.5 and Pi0).
#include "models/blocks.h"

#include <cmath>

#include "core/status.h"

namespace frt {

namespace {
constexpr float kLayerNormEps = 1e-6f;  // SigLIP
constexpr float kRmsEps = 1e-6f;        // Gemma
constexpr float kRopeTheta = 10000.f;

Tensor rows(Tensor t, int64_t n) { return t.row_slice(0, n); }
}  // namespace

void Dumps::record(const std::string& name, Tensor t) {
  if (!enabled_ || !be_) return;
  HostTensor h(DType::kF32, {t.rows(), t.cols()});
  if (t.dtype == DType::kF32 && t.contiguous()) {
    be_->copy_to_host(h.data(), t, h.nbytes());
  } else {
    // Strided or narrow views: copy row by row, widening to f32.
    std::vector<uint8_t> row(static_cast<size_t>(t.cols()) * dtype_size(t.dtype));
    for (int64_t r = 0; r < t.rows(); ++r) {
      Tensor one = t.row_slice(r, 1);
      be_->copy_to_host(row.data(), one, row.size());
      convert_to_f32(row.data(), t.dtype, h.as<float>() + r * t.cols(), t.cols());
    }
  }
  store_[name] = std::move(h);
}

const HostTensor* Dumps::find(const std::string& name) const {
  auto it = store_.find(name);
  return it == store_.end() ? nullptr : &it->second;
}

std::vector<std::string> Dumps::names() const {
  std::vector<std::string> out;
  for (const auto& kv : store_) out.push_back(kv.first);
  return out;
}

Workspace make_workspace(Backend& be, const ModelDims& d, int num_views, int max_tokens,
                         int max_suffix) {
  const DType a = be.activation_dtype();
  Workspace ws;
  const VisionDims& v = d.vision;
  // Every view's tokens at once: the SigLIP GEMMs run over all views' rows together.
  const int np = v.num_patches() * num_views;
  // f32 whatever the backend: the normalized pixels feed the fp32 patch embedding exactly.
  ws.image = be.alloc(DType::kF32, {v.image, v.image, 3}, "image");
  ws.vis_x = be.alloc(a, {np, v.width}, "vis_x");
  ws.vis_n = be.alloc(a, {np, v.width}, "vis_n");
  ws.vis_qkv = be.alloc(a, {np, 3 * v.width}, "vis_qkv");
  ws.vis_attn = be.alloc(a, {np, v.width}, "vis_attn");
  ws.vis_h = be.alloc(a, {np, v.mlp}, "vis_h");

  const GemmaDims& g = d.llm;
  const int P = num_views * np + max_tokens;
  ws.max_prefix = P;
  ws.max_suffix = max_suffix;
  const int qkv_cols = (g.heads + 2 * g.kv_heads) * g.head_dim;
  ws.prefix_x = be.alloc(a, {P, g.width}, "prefix_x");
  ws.prefix_n = be.alloc(a, {P, g.width}, "prefix_n");
  ws.prefix_qkv = be.alloc(a, {P, qkv_cols}, "prefix_qkv");
  ws.prefix_q = be.alloc(a, {P, g.heads * g.head_dim}, "prefix_q");
  ws.prefix_attn = be.alloc(a, {P, g.heads * g.head_dim}, "prefix_attn");
  ws.prefix_gu = be.alloc(a, {P, 2 * g.mlp}, "prefix_gate_up");
  ws.prefix_h = be.alloc(a, {P, g.mlp}, "prefix_h");
  for (int l = 0; l < g.layers; ++l) {
    ws.k_cache.push_back(be.alloc(a, {P + max_suffix, g.kv_heads * g.head_dim}, "k_cache"));
    ws.v_cache.push_back(be.alloc(a, {P + max_suffix, g.kv_heads * g.head_dim}, "v_cache"));
  }

  const GemmaDims& e = d.expert;
  const int S = max_suffix;
  ws.sx = be.alloc(a, {S, e.width}, "suffix_x");
  ws.sn = be.alloc(a, {S, e.width}, "suffix_n");
  ws.sqkv = be.alloc(a, {S, (e.heads + 2 * e.kv_heads) * e.head_dim}, "suffix_qkv");
  ws.sq = be.alloc(a, {S, e.heads * e.head_dim}, "suffix_q");
  ws.sattn = be.alloc(a, {S, e.heads * e.head_dim}, "suffix_attn");
  ws.so = be.alloc(a, {S, e.width}, "suffix_out");
  ws.sgu = be.alloc(a, {S, 2 * e.mlp}, "suffix_gate_up");
  ws.sh = be.alloc(a, {S, e.mlp}, "suffix_h");
  ws.velocity = be.alloc(DType::kF32, {S, d.action_dim}, "velocity");
  return ws;
}

void encode_views(Backend& be, const Pi0Weights& w, const ModelDims& d, Workspace& ws,
                  const ModelInputs& in, Tensor out, Dumps& dumps) {
  const VisionDims& v = d.vision;
  const int np = v.num_patches();
  // Patch embeddings of the present views, stacked: view i owns rows [i*np, (i+1)*np).
  std::vector<int> slots;
  for (size_t slot = 0; slot < in.views.size(); ++slot) {
    if (!in.views[slot].data) continue;
    const std::string tag = std::to_string(slot);
    be.resize_pad_normalize(ws.image, in.views[slot]);
    dumps.record("image." + tag, ws.image.reshape({v.image * v.image, 3}));
    be.patch_embed(ws.vis_x.row_slice(static_cast<int64_t>(slots.size()) * np, np), ws.image,
                   w.patch_w, w.patch_b, w.pos_emb);
    slots.push_back(static_cast<int>(slot));
  }
  const int n = static_cast<int>(slots.size()) * np;
  Tensor x = rows(ws.vis_x, n), nrm = rows(ws.vis_n, n), qkv = rows(ws.vis_qkv, n);
  Tensor attn = rows(ws.vis_attn, n), h = rows(ws.vis_h, n);
  AttentionParams ap{v.heads, v.heads, v.head_dim,
                     1.0f / std::sqrt(static_cast<float>(v.head_dim)), 0, Tensor{}, 0};
  ap.batch = static_cast<int>(slots.size());  // a view attends to its own patches only
  for (const SiglipLayerWeights& l : w.vision) {
    // Pre-LN block: x += attn(LN1(x)); x += mlp(LN2(x)). Residuals fused into the GEMMs.
    be.layer_norm(nrm, x, l.ln1_w, l.ln1_b, kLayerNormEps);
    be.linear(qkv, nrm, l.qkv_w, &l.qkv_b, Activation::kNone, false);
    be.attention(attn, qkv.col_slice(0, v.width), qkv.col_slice(v.width, v.width),
                 qkv.col_slice(2 * v.width, v.width), ap);
    be.linear(x, attn, l.o_w, &l.o_b, Activation::kNone, true);
    be.layer_norm(nrm, x, l.ln2_w, l.ln2_b, kLayerNormEps);
    be.linear(h, nrm, l.fc1_w, &l.fc1_b, Activation::kGeluTanh, false);
    be.linear(x, h, l.fc2_w, &l.fc2_b, Activation::kNone, true);
  }
  be.layer_norm(nrm, x, w.post_ln_w, w.post_ln_b, kLayerNormEps);
  be.linear(out.row_slice(0, n), nrm, w.proj_w, &w.proj_b, Activation::kNone, false);
  for (size_t i = 0; i < slots.size(); ++i)
    dumps.record("vision_tokens." + std::to_string(slots[i]),
                 out.row_slice(static_cast<int64_t>(i) * np, np));
}

int valid_prefix_rows(const ModelDims& d, const ModelInputs& in) {
  int rows = in.num_tokens;
  for (const Tensor& v : in.views)
    if (v.data) rows += d.vision.num_patches();
  return rows;
}

PrefixLayout encode_prefix(Backend& be, const Pi0Weights& w, const ModelDims& d,
                           Workspace& ws, const ModelInputs& in, Dumps& dumps) {
  const int np = d.vision.num_patches();
  be.stage("vision");
  int P = 0;
  for (const Tensor& view : in.views)
    if (view.data) P += np;
  if (P > 0) encode_views(be, w, d, ws, in, ws.prefix_x.row_slice(0, P), dumps);
  be.stage("prefix");
  const float text_scale = static_cast<float>(std::sqrt(static_cast<double>(d.llm.width)));
  const int max_tokens = static_cast<int>(in.token_ids.numel());
  be.embed_gather(ws.prefix_x.row_slice(P, max_tokens), w.embed, in.token_ids, text_scale);
  PrefixLayout pre;
  pre.rows = P + max_tokens;
  pre.valid = in.prefix_len;
  pre.valid_host = valid_prefix_rows(d, in);
  dumps.record("prefix_embeddings", ws.prefix_x.row_slice(0, pre.valid_host));
  // Most of the prompt's padding is skipped: the pass runs over the valid rows rounded up to the
  // next option, picked from the device length when the op runs (one graph serves every prompt).
  be.run_bucketed(pre.valid, pre.valid_host, prefix_row_options(P, max_tokens),
                  [&](int rows) { prefix_pass(be, w, d, ws, pre, rows, dumps); });
  return pre;
}

std::vector<int> prefix_row_options(int image_rows, int max_tokens) {
  std::vector<int> out;
  for (int t = kPrefixBucketTokens; t < max_tokens; t += kPrefixBucketTokens)
    out.push_back(image_rows + t);
  out.push_back(image_rows + max_tokens);
  return out;
}

void prefix_pass(Backend& be, const Pi0Weights& w, const ModelDims& d, Workspace& ws,
                 const PrefixLayout& pre, int rows_run, Dumps& dumps) {
  const GemmaDims& g = d.llm;
  // (Under graph capture every option is recorded, also those below this call's length.)
  FRT_CHECK(rows_run >= 1 && rows_run <= pre.rows, "prefix rows run");
  const int P = rows_run;
  // The padding rows up to P are computed but never attended to: keys [valid, P) are masked.
  const AttentionParams ap{g.heads, g.kv_heads, g.head_dim,
                           1.0f / std::sqrt(static_cast<float>(g.head_dim)), 0, pre.valid, P};
  Tensor x = rows(ws.prefix_x, P), n = rows(ws.prefix_n, P), qkv = rows(ws.prefix_qkv, P);
  Tensor q = rows(ws.prefix_q, P), attn = rows(ws.prefix_attn, P);
  Tensor gu = rows(ws.prefix_gu, P), h = rows(ws.prefix_h, P);
  for (int l = 0; l < g.layers; ++l) {
    const GemmaLayerWeights& lw = w.llm[l];
    Tensor k = rows(ws.k_cache[l], P), v = rows(ws.v_cache[l], P);
    // gemm_input: in FP8 the norm / GeGLU write the next GEMM's quantized input directly.
    const Tensor n_qkv = be.gemm_input(n, lw.qkv_w);
    be.add_rms_norm(x, nullptr, n_qkv, lw.input_scale, kRmsEps);
    be.linear(qkv, n_qkv, lw.qkv_w, nullptr, Activation::kNone, false);
    // Masked views are dropped and the padding comes last, so position = row index.
    be.qkv_split_rope(q, k, v, qkv, g.heads, g.kv_heads, g.head_dim, 0, nullptr, kRopeTheta);
    dumps.record("prefix_k." + std::to_string(l), ws.k_cache[l].row_slice(0, pre.valid_host));
    dumps.record("prefix_v." + std::to_string(l), ws.v_cache[l].row_slice(0, pre.valid_host));
    if (l + 1 == g.layers) break;  // the last layer only has to produce K and V
    be.attention(attn, q, k, v, ap);
    be.linear(x, attn, lw.o_w, nullptr, Activation::kNone, true);
    const Tensor n_gu = be.gemm_input(n, lw.gate_up_w);
    be.add_rms_norm(x, nullptr, n_gu, lw.post_scale, kRmsEps);
    be.linear(gu, n_gu, lw.gate_up_w, nullptr, Activation::kNone, false);
    const Tensor h_down = be.gemm_input(h, lw.down_w);
    be.geglu(h_down, gu);
    be.linear(x, h_down, lw.down_w, nullptr, Activation::kNone, true);
  }
}

}  // namespace frt
