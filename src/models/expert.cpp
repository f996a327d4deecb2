// One action-expert layer and its norms (shared by Pi0.5 and Pi0).
#include "models/expert.h"

#include <cmath>

#include "core/status.h"

namespace frt {

namespace {
constexpr float kRmsEps = 1e-6f;  // Gemma
constexpr float kRopeTheta = 10000.f;

Tensor rows(Tensor t, int64_t n) { return t.row_slice(0, n); }
}  // namespace

LinearPrologue expert_prologue(const ExpertNorm& norm, float eps) {
  LinearPrologue p;
  p.eps = eps;
  if (norm.ada) {
    p.kind = LinearPrologue::Kind::kAdaRmsNorm;
    p.scale = norm.scale;
    p.shift = norm.shift;
  } else {
    p.kind = LinearPrologue::Kind::kRmsNorm;
    p.scale = norm.rms_scale;
  }
  return p;
}

const Tensor* expert_gate(const ExpertNorm& norm) { return norm.ada ? &norm.gate : nullptr; }

void expert_norm(Backend& be, Workspace& ws, int S, const ExpertNorm& norm, float eps) {
  Tensor x = rows(ws.sx, S), n = rows(ws.sn, S);
  if (norm.ada)
    be.add_ada_rms_norm(x, nullptr, nullptr, n, norm.scale, norm.shift, eps);
  else
    be.add_rms_norm(x, nullptr, n, norm.rms_scale, eps);
}

void expert_layer(Backend& be, const GemmaLayerWeights& lw, const GemmaDims& g, Workspace& ws,
                  int layer, const PrefixLayout& pre, int S, const ExpertNorm& in,
                  const ExpertNorm& post, int blind_rows) {
  const int P = pre.rows;
  // Keys [valid, P) are the prompt padding.
  const AttentionParams ap{g.heads, g.kv_heads, g.head_dim,
                           1.0f / std::sqrt(static_cast<float>(g.head_dim)), blind_rows,
                           pre.valid, P};
  Tensor x = rows(ws.sx, S), n = rows(ws.sn, S), qkv = rows(ws.sqkv, S), q = rows(ws.sq, S);
  Tensor attn = rows(ws.sattn, S), o = rows(ws.so, S), gu = rows(ws.sgu, S), h = rows(ws.sh, S);
  // Suffix K/V go right after the padded prefix in this layer's cache; their positions continue
  // the valid prefix (read on the device), as if the padding were not there.
  Tensor k_new = ws.k_cache[layer].row_slice(P, S), v_new = ws.v_cache[layer].row_slice(P, S);
  // sn / sh / so are the staged / product buffers of a backend that does not fuse.
  LinearPrologue geglu;
  geglu.kind = LinearPrologue::Kind::kGeglu;
  be.fused_linear(qkv, x, lw.qkv_w, expert_prologue(in, kRmsEps), nullptr, false, n, {});
  be.qkv_split_rope(q, k_new, v_new, qkv, g.heads, g.kv_heads, g.head_dim, 0, &pre.valid,
                    kRopeTheta);
  be.attention(attn, q, ws.k_cache[layer].row_slice(0, P + S),
               ws.v_cache[layer].row_slice(0, P + S), ap);
  be.fused_linear(x, attn, lw.o_w, LinearPrologue{}, expert_gate(in), true, {}, o);
  be.fused_linear(gu, x, lw.gate_up_w, expert_prologue(post, kRmsEps), nullptr, false, n, {});
  be.fused_linear(x, gu, lw.down_w, geglu, expert_gate(post), true, h, o);
}

}  // namespace frt
