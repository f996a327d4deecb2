// Which calls the skinny weight-streaming GEMM (cuda_skinny_gemm.cu) takes, which of them
// CudaBackend::linear / fused_linear route to it (the operand checks and the measured routing
// limits, see cuda_skinny_gemm.h), and the checked entry points that launch it. Host code only.
// Covered by tests/gpu/test_cuda_skinny_gemm.cpp and test_cuda_fused_linear.cpp.
#include <cstdint>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_rope.cuh"
#include "backend/cuda/cuda_skinny_gemm.h"
#include "backend/cuda/cuda_skinny_gemm_args.cuh"

namespace frt {

namespace {
bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }
}  // namespace

bool skinny_gemm_supported(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) {
  (void)y;
  (void)bias;
  const int64_t M = x.rows(), K = x.cols(), N = w.rows();
  if (M < 1 || M > kSkinnyMaxRows || N < 1 || K < 8 || K % 8 != 0) return false;
  if (K > (int64_t{1} << 30) || N > int64_t{65535} * 64) return false;  // int indices, grid y
  if (w.dtype == DType::kF8E4M3) {  // W8A16: bf16 x, 16 k per weight vector
    if (!w.quant || K % 16 != 0 || w.ld() % 16 != 0 || !aligned16(w.data)) return false;
    return x.dtype == DType::kBF16 && x.ld() % 8 == 0 && aligned16(x.data);
  }
  if (w.dtype != DType::kBF16 || w.ld() % 8 != 0 || !aligned16(w.data)) return false;
  if (x.dtype == DType::kBF16) return x.ld() % 8 == 0 && aligned16(x.data);
  if (x.dtype == DType::kF32) return x.ld() % 4 == 0 && aligned16(x.data);
  return false;
}

// Routing: where this kernel measured faster than cuBLASLt. Per launch inside a graph of
// back-to-back launches of one op (bench/bench_linear_cuda.cpp, H200, PDL on): at M = 10 o_proj
// 4.3 vs 5.4 us, down 5.0 vs 7.1, qkv 4.5 vs 4.5, action in / out 2.8 / 2.9 vs 4.1 / 4.7; at M >=
// 32 cuBLASLt wins for most shapes. gate_up (16.8 MB bf16 / 8.4 MB FP8) loses that benchmark
// (H100: 12.1 vs 10.4 us bf16 with its norm, 10.6 vs 8.8 FP8) but wins inside the model, where
// its weight stream starts before the norm kernel ends (PDL) and cuBLASLt's cannot: full Pi0.5
// denoise 8.24 -> 8.07 ms bf16, 7.80 -> 7.72 FP8 (H100, session 8). So the plain route takes
// weights up to gate_up's size; the fused route (a norm prologue in the kernel) stops at 9 MB,
// where it measured slower in the model too (gate_up fused: denoise 8.53 ms). Revisit with the
// model A/B (scripts/device/gpu_suite.sh STAGES=ab) whenever the kernel changes.
constexpr int64_t kRouteMaxRows = 16;
constexpr int64_t kRouteMaxWeightBytes = int64_t{17} << 20;
constexpr int64_t kFusedRouteMaxWeightBytes = int64_t{9} << 20;
// FP8 weights (W8A16): the alternative is quantizing x plus an FP8 cuBLASLt GEMM (two launches,
// W8A8). Measured on an H100 (bench/bench_fp8_cuda.cpp, graphs of back-to-back launches, us per
// launch, skinny vs quantize + cuBLASLt): M = 10 qkv 5.10 vs 5.24, o 4.63 vs 5.50, down 5.65 vs
// 6.77; M = 50 the cuBLASLt path wins everywhere (8.7 vs 5.4 qkv). gate_up: see above.
constexpr int64_t kRouteMaxRowsFp8 = 16;
constexpr int64_t kRouteMaxWeightBytesFp8 = int64_t{9} << 20;
constexpr int64_t kFusedRouteMaxWeightBytesFp8 = int64_t{5} << 20;

// Weights small enough that the skinny kernel beats cuBLASLt on them (the limits above).
bool within_route_bytes(const Tensor& w, bool fused) {
  const int64_t bytes = w.rows() * w.cols() * (w.dtype == DType::kF8E4M3 ? 1 : 2);
  if (w.dtype == DType::kF8E4M3)
    return bytes <= (fused ? kFusedRouteMaxWeightBytesFp8 : kRouteMaxWeightBytesFp8);
  return bytes <= (fused ? kFusedRouteMaxWeightBytes : kRouteMaxWeightBytes);
}

bool skinny_gemm_would_handle(const CudaBackend& be, const Tensor& y, const Tensor& x,
                              const Tensor& w, const Tensor* bias) {
  if (!be.skinny_gemm_enabled() || !skinny_gemm_supported(y, x, w, bias)) return false;
  const int64_t max_rows = w.dtype == DType::kF8E4M3 ? kRouteMaxRowsFp8 : kRouteMaxRows;
  return x.rows() <= max_rows && within_route_bytes(w, false);
}

bool skinny_fused_supported(const Tensor& y, const Tensor& x, const Tensor& w,
                            const LinearPrologue& pro) {
  // A prologue reads x as bf16 vectors (the F32-x variant stages hi/lo planes, no prologue).
  if (pro.kind != LinearPrologue::Kind::kNone && x.dtype != DType::kBF16) return false;
  if (pro.kind == LinearPrologue::Kind::kGeglu && x.cols() != 2 * w.cols()) return false;
  // Norms stage their scale / shift with cp.async: 16-byte aligned vectors.
  if (pro.kind == LinearPrologue::Kind::kRmsNorm && !aligned16(pro.scale.data)) return false;
  if (pro.kind == LinearPrologue::Kind::kAdaRmsNorm &&
      (!aligned16(pro.scale.data) || !aligned16(pro.shift.data)))
    return false;
  const Tensor gx = pro.kind == LinearPrologue::Kind::kGeglu ? x.col_slice(0, x.cols() / 2) : x;
  return skinny_gemm_supported(y, gx, w, nullptr);
}

bool skinny_fused_would_handle(const CudaBackend& be, const Tensor& y, const Tensor& x,
                               const Tensor& w, const LinearPrologue& pro) {
  // The weight-size limit holds fused too: gate_up (16.8 MB bf16 / 8.4 MB fp8, adaRMS) fused
  // measured 19.4 / 17.5 us against 10.9 / 9.3 us for its norm + cuBLASLt GEMM (H100, M = 10,
  // bench_fused_linear_cuda); with the one-round-trip norm staging and every plan swept
  // (bench_fused_linear_cuda --sweep) the best fused gate_up was 13.0 / 12.4 us, plain 8.8 /
  // 7.3: the prologue's critical path (x after griddepcontrol.wait, behind the weight stream)
  // costs ~2-4 us there, more than the launch it saves. qkv / o / down fused (bf16: 7.5 vs 8.0,
  // 5.3 vs 6.4, 8.1 vs 9.7 us; fp8: 8.4 vs 7.3 (a loss), 5.5 vs 6.2, 7.5 vs 9.1).
  // FP8 weights behind a norm: the W8A16 stream after the norm kernel measured faster than
  // fused (7.3 vs 8.4 us at qkv), so only their GeGLU / gated-residual fusions stay.
  if (w.dtype == DType::kF8E4M3 && pro.is_norm()) return false;
  return be.skinny_gemm_enabled() && x.rows() <= kFusedRouteMaxRows &&
         within_route_bytes(w, true) && skinny_fused_supported(y, x, w, pro);
}

void skinny_gemm(CudaBackend& be, Tensor y, Tensor x, Tensor w, const Tensor* bias, Activation act,
                 bool accumulate) {
  const char* op = "linear (skinny)";
  cuda::check_arg(skinny_gemm_supported(y, x, w, bias), op,
                  "operands outside the skinny kernel's domain (see skinny_gemm_supported)");
  skinny::launch(be, op, y, x, w, bias, act, accumulate, LinearPrologue{}, nullptr, nullptr);
}

void skinny_gemm_fused(CudaBackend& be, Tensor y, Tensor x, Tensor w, const LinearPrologue& pro,
                       const Tensor* gate, bool accumulate) {
  const char* op = "fused_linear (skinny)";
  cuda::check_arg(skinny_fused_supported(y, x, w, pro), op,
                  "operands outside the skinny kernel's domain (see skinny_fused_supported)");
  skinny::launch(be, op, y, x, w, nullptr, Activation::kNone, accumulate, pro, gate, nullptr);
}

bool skinny_qkv_rope_supported(const Tensor& x, const Tensor& w, const LinearPrologue& pro,
                               const SkinnyQkvRope& r) {
  const int64_t M = x.rows(), D = r.head_dim;
  if (M > kSkinnyMaxSplitRows || pro.kind == LinearPrologue::Kind::kGeglu) return false;
  if (r.num_q_heads < 1 || r.num_kv_heads < 1 || D < 2 || D % 2 != 0) return false;
  if (r.theta != 0.f && D / 2 > kSkinnyMaxRopePairs) return false;
  const int64_t q_cols = r.num_q_heads * D, kv_cols = r.num_kv_heads * D;
  if (w.rows() != q_cols + 2 * kv_cols || w.rows() % 64 != 0) return false;  // warp-uniform pairs
  if (r.q.rows() != M || r.k.rows() != M || r.v.rows() != M || r.q.cols() != q_cols ||
      r.k.cols() != kv_cols || r.v.cols() != kv_cols)
    return false;
  for (const Tensor* t : {&r.q, &r.k, &r.v})
    if (t->dtype != DType::kBF16 && t->dtype != DType::kF32) return false;
  if (r.pos_base && (r.pos_base->dtype != DType::kI32 || r.pos_base->numel() != 1)) return false;
  return skinny_fused_supported(r.q, x, w, pro);
}

void skinny_gemm_qkv_rope(CudaBackend& be, Tensor x, Tensor w, const LinearPrologue& pro,
                          const SkinnyQkvRope& r) {
  const char* op = "qkv projection + RoPE (skinny)";
  cuda::check_arg(skinny_qkv_rope_supported(x, w, pro, r), op,
                  "operands outside the kernel's domain (see skinny_qkv_rope_supported)");
  skinny::QkvSplit s{};
  s.q = cuda::mat_of(r.q);
  s.k = cuda::mat_of(r.k);
  s.v = cuda::mat_of(r.v);
  s.head_dim = r.head_dim;
  s.q_cols = r.num_q_heads * r.head_dim;
  s.kv_cols = r.num_kv_heads * r.head_dim;
  s.rope_cols = r.theta != 0.f ? s.q_cols + s.kv_cols : 0;
  s.pos_offset = r.pos_offset;
  s.pos_base = r.pos_base ? r.pos_base->as<const int32_t>() : nullptr;
  for (int i = 0; i < r.head_dim / 2 && s.rope_cols > 0; ++i)
    s.inv_freq[i] = cuda::rope_inv_freq(r.theta, i, r.head_dim);
  skinny::launch(be, op, r.q, x, w, nullptr, Activation::kNone, false, pro, nullptr, &s);
}

}  // namespace frt
