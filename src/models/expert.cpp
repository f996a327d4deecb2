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
  Tensor x = rows(ws.sx, S), n = rows(ws.sn, S), o = rows(ws.so, S);
  // Keys [valid, P) are the prompt padding. The suffix's K/V go right after the padded prefix in
  // this layer's cache; their positions continue the valid prefix (read on the device), as if
  // the padding were not there. sn / sqkv / sq / sattn / so / sgu / sh are the buffers of a
  // backend that does not fuse.
  ExpertAttention att;
  att.qkv_w = lw.qkv_w;
  att.o_w = lw.o_w;
  att.pro = expert_prologue(in, kRmsEps);
  att.gate = expert_gate(in);
  att.k_cache = ws.k_cache[layer];
  att.v_cache = ws.v_cache[layer];
  att.prefix_rows = P;
  att.attn = AttentionParams{
      g.heads,    g.kv_heads, g.head_dim, 1.0f / std::sqrt(static_cast<float>(g.head_dim)),
      blind_rows, pre.valid,  P};
  att.rope_theta = kRopeTheta;
  att.staged = n;
  att.qkv = rows(ws.sqkv, S);
  att.q = rows(ws.sq, S);
  att.attn_out = rows(ws.sattn, S);
  att.product = o;
  be.expert_attention(x, att);
  be.expert_mlp(x, lw.gate_up_w, lw.down_w, expert_prologue(post, kRmsEps), expert_gate(post), n,
                rows(ws.sgu, S), rows(ws.sh, S), o);
}

}  // namespace frt
