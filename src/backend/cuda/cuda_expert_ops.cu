// CUDA expert_attention / expert_mlp (backend.h): the action expert's two halves, run as their
// compositions (src/backend/composed_ops.cpp), expert_attention with its first two ops (the qkv
// projection and qkv_split_rope) as one skinny launch where that applies (expert_qkv_rope).
// One-launch persistent kernels for both halves (bulk async weight copies, grid barriers, also
// chained phase by phase) measured 1.6-2x slower than these compositions on the H100 / H200 and
// were removed (docs/performance_history.md, sessions 6 and 7).
// Covered by tests/gpu/test_cuda_expert_attention.cpp and test_cuda_expert_mlp.cpp; timed by
// bench/bench_expert_cuda.cpp.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_skinny_gemm.h"

namespace frt {

void CudaBackend::expert_attention(Tensor x, const ExpertAttention& e) {
  const char* op = "expert_attention";
  cuda::check_matrix(op, "x", x, x.rows(), x.cols(), {DType::kBF16, DType::kF32});
  expert_attention_composed(*this, x, e, [&] { return x.rows() > 0 && expert_qkv_rope(x, e); });
}

// The qkv projection where fused_linear would take the skinny kernel (its prologue fused, or,
// for FP8 weights behind a norm, after the norm kernel as fused_linear runs it), with
// qkv_split_rope in the epilogue: one launch less per expert layer. Bit-identical to the two ops
// when the composition's qkv buffer is bf16 (the epilogue rounds there before rotating).
bool CudaBackend::expert_qkv_rope(Tensor x, const ExpertAttention& e) {
  const Tensor& w = e.qkv_w;
  if (!qkv_rope_fusion_ || e.qkv.dtype != DType::kBF16) return false;
  if (w.dtype == DType::kF8E4M3 && quant_mode_ == QuantMode::kCalibrate) return false;
  const int64_t S = x.rows(), P = e.prefix_rows;
  SkinnyQkvRope r;
  r.q = e.q;
  r.k = e.k_cache.row_slice(P, S);
  r.v = e.v_cache.row_slice(P, S);
  r.num_q_heads = e.attn.num_q_heads;
  r.num_kv_heads = e.attn.num_kv_heads;
  r.head_dim = e.attn.head_dim;
  r.pos_base = &e.attn.key_valid;
  r.theta = e.rope_theta;
  if (skinny_fused_would_handle(*this, e.qkv, x, w, e.pro)) {
    if (!skinny_qkv_rope_supported(x, w, e.pro, r)) return false;
    skinny_gemm_qkv_rope(*this, x, w, e.pro, r);
  } else {
    if (!e.pro.is_norm() || !skinny_gemm_would_handle(*this, e.qkv, e.staged, w, nullptr) ||
        !skinny_qkv_rope_supported(e.staged, w, LinearPrologue{}, r))
      return false;
    skinny_gemm_qkv_rope(*this, stage_prologue(*this, x, e.pro, e.staged), w, LinearPrologue{}, r);
  }
  ++linear_stats_.skinny;
  ++linear_stats_.qkv_rope;
  return true;
}

void CudaBackend::expert_mlp(Tensor x, Tensor gate_up_w, Tensor down_w, const LinearPrologue& pro,
                             const Tensor* gate, Tensor staged, Tensor gate_up, Tensor h,
                             Tensor product) {
  const char* op = "expert_mlp";
  const int64_t M = x.rows(), D = x.cols(), F = down_w.cols();
  cuda::check_matrix(op, "x", x, M, D, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "gate_up_w", gate_up_w, 2 * F, D,
                     {DType::kBF16, DType::kF32, DType::kF8E4M3});
  cuda::check_matrix(op, "down_w", down_w, D, F, {DType::kBF16, DType::kF32, DType::kF8E4M3});
  cuda::check_matrix(op, "h", h, M, F, {DType::kBF16, DType::kF32});
  expert_mlp_composed(*this, x, gate_up_w, down_w, pro, gate, staged, gate_up, h, product);
}

}  // namespace frt
