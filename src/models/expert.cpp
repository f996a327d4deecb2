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

void expert_norm(Backend& be, Workspace& ws, int S, const PendingResidual& pending,
                 const ExpertNorm& norm, float eps) {
  Tensor x = rows(ws.sx, S), n = rows(ws.sn, S);
  Tensor delta;
  const Tensor* dp = nullptr;
  if (pending.delta) {
    delta = rows(*pending.delta, S);
    dp = &delta;
  }
  if (norm.ada) {
    be.add_ada_rms_norm(x, dp, dp ? pending.gate : nullptr, n, norm.scale, norm.shift, eps);
  } else {
    FRT_CHECK(!pending.gate, "a gated residual needs an adaRMS norm");
    be.add_rms_norm(x, dp, n, norm.rms_scale, eps);
  }
}

void expert_layer(Backend& be, const GemmaLayerWeights& lw, const GemmaDims& g, Workspace& ws,
                  int layer, const PrefixLayout& pre, int S, const ExpertNorm& in,
                  const ExpertNorm& post, PendingResidual& pending, int blind_rows) {
  const int P = pre.rows;
  // Keys [valid, P) are the prompt padding.
  const AttentionParams ap{g.heads, g.kv_heads, g.head_dim,
                           1.0f / std::sqrt(static_cast<float>(g.head_dim)), blind_rows,
                           pre.valid, P};
  expert_norm(be, ws, S, pending, in, kRmsEps);
  Tensor n = rows(ws.sn, S), qkv = rows(ws.sqkv, S), q = rows(ws.sq, S);
  Tensor attn = rows(ws.sattn, S), o = rows(ws.so, S);
  // Suffix K/V go right after the padded prefix in this layer's cache; their positions continue
  // the valid prefix (read on the device), as if the padding were not there.
  Tensor k_new = ws.k_cache[layer].row_slice(P, S), v_new = ws.v_cache[layer].row_slice(P, S);
  be.linear(qkv, n, lw.qkv_w, nullptr, Activation::kNone, false);
  be.qkv_split_rope(q, k_new, v_new, qkv, g.heads, g.kv_heads, g.head_dim, 0, &pre.valid,
                    kRopeTheta);
  be.attention(attn, q, ws.k_cache[layer].row_slice(0, P + S),
               ws.v_cache[layer].row_slice(0, P + S), ap);
  be.linear(o, attn, lw.o_w, nullptr, Activation::kNone, false);
  pending = PendingResidual{&ws.so, in.ada ? &in.gate : nullptr};
  expert_norm(be, ws, S, pending, post, kRmsEps);
  Tensor gu = rows(ws.sgu, S), h = rows(ws.sh, S);
  be.linear(gu, n, lw.gate_up_w, nullptr, Activation::kNone, false);
  be.geglu(h, gu);
  be.linear(o, h, lw.down_w, nullptr, Activation::kNone, false);
  pending = PendingResidual{&ws.so, post.ada ? &post.gate : nullptr};
}

}  // namespace frt
