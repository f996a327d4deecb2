// CUDA fused_linear: y (=|+=) [gate *] (pro(x) . w^T), the action expert's GEMMs with their norm
// / GeGLU prologue and gated residual (backend.h).
//  - few rows (skinny_fused_would_handle: M <= 16, bf16 x, bf16 or FP8 weights): one launch of
//    the skinny weight-streaming kernel with the prologue in its x staging and the gate in its
//    epilogue (cuda_skinny_gemm.cu), for weights within linear()'s skinny size limits (qkv, o,
//    down; H100 M = 10 bf16: 7.5 / 5.3 / 8.1 us vs 8.0 / 6.4 / 9.7 unfused);
//  - otherwise (more rows, gate_up's 16.8 / 8.4 MB: fused 12.9 / 12.5 us at its best plan vs
//    10.4 / 8.8 unfused, FP8 calibration, the routing switch off) the unfused composition:
//    add_rms_norm / add_ada_rms_norm / geglu into `staged`, linear() into y (no gate) or into
//    `product`, then gated_add(y, product, gate).
// Covered by tests/gpu/test_cuda_fused_linear.cpp; timed by bench/bench_fused_linear_cuda.cpp.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_skinny_gemm.h"

namespace frt {

void CudaBackend::fused_linear(Tensor y, Tensor x, Tensor w, const LinearPrologue& pro,
                               const Tensor* gate, bool accumulate, Tensor staged, Tensor product) {
  const char* op = "fused_linear";
  using Kind = LinearPrologue::Kind;
  const int64_t M = x.rows(), K = w.cols(), N = w.rows();
  const bool norm = pro.is_norm();
  cuda::check_matrix(op, "x", x, M, pro.kind == Kind::kGeglu ? 2 * K : K,
                     {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "w", w, N, K, {DType::kBF16, DType::kF32, DType::kF8E4M3});
  cuda::check_matrix(op, "y", y, M, N, {DType::kBF16, DType::kF32});
  if (norm) cuda::check_vector(op, "scale", pro.scale, K, {DType::kF32, DType::kBF16});
  if (pro.kind == Kind::kAdaRmsNorm)
    cuda::check_vector(op, "shift", pro.shift, K, {DType::kF32, DType::kBF16});
  if (gate) {
    cuda::check_arg(accumulate, op, "a gate (gated residual) needs accumulate");
    cuda::check_vector(op, "gate", *gate, N, {DType::kF32, DType::kBF16});
  }
  cuda::check_arg(y.data != x.data && y.data != w.data, op, "y must not alias x or w");
  if (M == 0 || N == 0) return;
  if (pro.kind == Kind::kNone && !gate) {  // nothing to fuse
    linear(y, x, w, nullptr, Activation::kNone, accumulate);
    return;
  }
  // Calibration measures each FP8 site's GEMM input, which is pro(x): the unfused path has it.
  const bool calibrating = w.dtype == DType::kF8E4M3 && quant_mode_ == QuantMode::kCalibrate;
  if (!calibrating && skinny_fused_would_handle(*this, y, x, w, pro)) {
    ++linear_stats_.skinny;
    skinny_gemm_fused(*this, y, x, w, pro, gate, accumulate);
    return;
  }

  if (pro.kind != Kind::kNone)
    cuda::check_matrix(op, "staged", staged, M, K, {DType::kBF16, DType::kF32});
  const Tensor src = stage_prologue(*this, x, pro, staged);
  if (!gate) {
    linear(y, src, w, nullptr, Activation::kNone, accumulate);
    return;
  }
  cuda::check_matrix(op, "product", product, M, N, {DType::kBF16, DType::kF32});
  linear(product, src, w, nullptr, Activation::kNone, false);
  gated_add(y, product, *gate);
}

}  // namespace frt
