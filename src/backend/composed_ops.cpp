// Ops of the Backend interface that are defined as a composition of other ops: the meaning of
// the op (its CPU twin runs exactly this) and the path a fusing backend takes where its fused
// kernel does not apply. Covered by tests/cpp/test_cpu_ops.cpp (EXPERT_MLP cases in
// tests/cpp/op_cases_fused_linear.cpp, ATTENTION_BATCH in tests/cpp/op_cases_attention.cpp) and
// tests/gpu/test_cuda_expert_mlp.cpp.
#include "backend/backend.h"
#include "core/status.h"

namespace frt {

void attention_per_sequence(Backend& be, Tensor out, Tensor q, Tensor k, Tensor v,
                            const AttentionParams& p) {
  AttentionParams one = p;
  one.batch = 1;
  const int64_t sq = q.rows() / p.batch, skv = k.rows() / p.batch;
  for (int b = 0; b < p.batch; ++b)
    be.attention(out.row_slice(b * sq, sq), q.row_slice(b * sq, sq), k.row_slice(b * skv, skv),
                 v.row_slice(b * skv, skv), one);
}

void expert_attention_composed(Backend& be, Tensor x, const ExpertAttention& a,
                               const std::function<bool()>& qkv_rope) {
  if (!a.pro.is_norm())
    throw_error(Status::kInvalidArgument,
                "expert_attention: the prologue must be kRmsNorm or kAdaRmsNorm (the input norm)");
  if (!a.attn.key_valid.data || a.attn.key_gap_end != a.prefix_rows)
    throw_error(Status::kInvalidArgument,
                "expert_attention: attn.key_valid (the valid prefix length on the device) and "
                "key_gap_end == prefix_rows are required");
  const int64_t S = x.rows(), P = a.prefix_rows;
  if (P < 0 || a.k_cache.rows() < P + S || a.v_cache.rows() < P + S)
    throw_error(Status::kInvalidArgument, "expert_attention: the KV cache has ", a.k_cache.rows(),
                " rows; expected at least prefix_rows + S = ", P + S);
  if (!qkv_rope || !qkv_rope()) {
    be.fused_linear(a.qkv, x, a.qkv_w, a.pro, nullptr, false, a.staged, {});
    be.qkv_split_rope(a.q, a.k_cache.row_slice(P, S), a.v_cache.row_slice(P, S), a.qkv,
                      a.attn.num_q_heads, a.attn.num_kv_heads, a.attn.head_dim, 0,
                      &a.attn.key_valid, a.rope_theta);
  }
  be.attention(a.attn_out, a.q, a.k_cache.row_slice(0, P + S), a.v_cache.row_slice(0, P + S),
               a.attn);
  be.fused_linear(x, a.attn_out, a.o_w, LinearPrologue{}, a.gate, true, {}, a.product);
}

Tensor stage_prologue(Backend& be, Tensor x, const LinearPrologue& pro, Tensor staged) {
  using Kind = LinearPrologue::Kind;
  if (pro.kind == Kind::kRmsNorm)
    be.add_rms_norm(x, nullptr, staged, pro.scale, pro.eps);
  else if (pro.kind == Kind::kAdaRmsNorm)
    be.add_ada_rms_norm(x, nullptr, nullptr, staged, pro.scale, pro.shift, pro.eps);
  else if (pro.kind == Kind::kGeglu)
    be.geglu(staged, x);
  else
    return x;
  return staged;
}

void expert_mlp_composed(Backend& be, Tensor x, Tensor gate_up_w, Tensor down_w,
                         const LinearPrologue& pro, const Tensor* gate, Tensor staged,
                         Tensor gate_up, Tensor h, Tensor product) {
  using Kind = LinearPrologue::Kind;
  if (!pro.is_norm())
    throw_error(
        Status::kInvalidArgument,
        "expert_mlp: the prologue must be kRmsNorm or kAdaRmsNorm (the norm before the MLP)");
  LinearPrologue geglu;
  geglu.kind = Kind::kGeglu;
  be.fused_linear(gate_up, x, gate_up_w, pro, nullptr, false, staged, {});
  be.fused_linear(x, gate_up, down_w, geglu, gate, true, h, product);
}

}  // namespace frt
