// The skinny weight-streaming GEMM behind CudaBackend::linear for few x rows (the action
// expert: horizon 10 or 50), with the full linear epilogue (bias, activation, residual add).
// Such a GEMM is bound by reading the bf16 weight once; the kernel (cuda_skinny_gemm.cu) aims at
// the device's copy bandwidth. linear() routes here whenever skinny_gemm_would_handle() says so;
// skinny_gemm() runs it directly for any supported shape (tests, benchmarks).
// Covered by tests/gpu/test_cuda_skinny_gemm.cpp; timed by bench/bench_linear_cuda.cpp.
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "core/tensor.h"

namespace frt {

class CudaBackend;

// Most x rows the skinny kernel takes.
inline constexpr int64_t kSkinnyMaxRows = 64;

// Whether the skinny kernel can run linear(y, x, w, bias, ...): 1 <= M <= 64, w BF16 with x BF16
// or F32 and K a multiple of 8, or w F8E4M3 (with its QuantInfo) with x BF16 and K a multiple of
// 16; x and w rows 16-byte aligned (address and row stride). y (F32/BF16,
// any row stride), bias, activation and accumulate never matter. Operands are assumed already
// checked by linear().
bool skinny_gemm_supported(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias);

// Whether CudaBackend::linear routes this call to the skinny kernel: routing on
// (CudaBackend::set_skinny_gemm_enabled), supported, and a shape where it measured faster than
// cuBLASLt inside CUDA graphs (M <= 16 and at most 17 MB of bf16 / 9 MB of FP8 weights; the
// measurements in cuda_skinny_gemm_route.cu).
bool skinny_gemm_would_handle(const CudaBackend& be, const Tensor& y, const Tensor& x,
                              const Tensor& w, const Tensor* bias);

// y[M,N] (=|+=) act(x[M,K] . w[N,K]^T + bias[N]), fp32 accumulation, one rounding into y.
// One launch on be.stream(); no allocation, no synchronization (capturable). Precondition:
// skinny_gemm_supported() (throws kInternal otherwise).
void skinny_gemm(CudaBackend& be, Tensor y, Tensor x, Tensor w, const Tensor* bias, Activation act,
                 bool accumulate);

// fused_linear (cuda_fused_linear.cu) in one launch: the LinearPrologue applied to x while it is
// staged (norms: each CTA stages whole x rows once when they fit and takes every row's inverse
// RMS from shared memory), the gate in the epilogue. Needs what skinny_gemm_supported needs of
// the [M, K] GEMM input (the gate half of a GeGLU x [M, 2K]), with a prologue BF16 x, and norm
// scale / shift 16-byte aligned (cuda_skinny_gemm_route.cu).
bool skinny_fused_supported(const Tensor& y, const Tensor& x, const Tensor& w,
                            const LinearPrologue& pro);
// Most rows fused_linear sends to the kernel (weights up to 9 MB bf16 / 5 MB FP8: gate_up stays
// unfused, see skinny_fused_would_handle).
inline constexpr int64_t kFusedRouteMaxRows = 16;
// Whether CudaBackend::fused_linear routes here: routing on, supported, M <= kFusedRouteMaxRows,
// weights within the fused size limits.
bool skinny_fused_would_handle(const CudaBackend& be, const Tensor& y, const Tensor& x,
                               const Tensor& w, const LinearPrologue& pro);
// y (=|+=) [gate *] (pro(x) . w^T), fp32 throughout, one rounding into y; one launch, capturable.
// Precondition: skinny_fused_supported() (throws kInternal otherwise).
void skinny_gemm_fused(CudaBackend& be, Tensor y, Tensor x, Tensor w, const LinearPrologue& pro,
                       const Tensor* gate, bool accumulate);

// The expert's qkv projection with qkv_split_rope fused into the epilogue (one launch instead
// of two): q / k / v = split(rope(bf16(pro(x) . w^T))) with fused_linear's prologue and
// qkv_split_rope's arithmetic (bit-identical to the two ops in sequence when the qkv buffer
// between them is bf16). k, v may be row slices of a KV cache.
inline constexpr int kSkinnyMaxRopePairs = 128;  // head_dim / 2 limit of the RoPE epilogue
inline constexpr int kSkinnyMaxSplitRows = 16;   // x rows the qkv + RoPE epilogue is built for
struct SkinnyQkvRope {
  Tensor q, k, v;  // [M, Hq D], [M, Hkv D], [M, Hkv D], BF16 or F32
  int num_q_heads = 0, num_kv_heads = 0, head_dim = 0;
  int pos_offset = 0;
  const Tensor* pos_base = nullptr;  // I32 [1] on the device, added to every position
  float theta = 0.f;                 // 0: no RoPE (split only)
};
// Whether skinny_gemm_qkv_rope can run it: what skinny_fused_supported needs of x / w / pro,
// w rows = (Hq + 2 Hkv) head_dim, a multiple of 64, even head_dim <= 2 kSkinnyMaxRopePairs,
// M <= kSkinnyMaxSplitRows (the action expert's horizon 10 and below); no GeGLU prologue.
bool skinny_qkv_rope_supported(const Tensor& x, const Tensor& w, const LinearPrologue& pro,
                               const SkinnyQkvRope& r);
// One launch; precondition skinny_qkv_rope_supported (throws kInternal otherwise).
void skinny_gemm_qkv_rope(CudaBackend& be, Tensor x, Tensor w, const LinearPrologue& pro,
                          const SkinnyQkvRope& r);

// Benchmarks only: force the warps along k (1: 128 rows per CTA, 2: 64) and the k-split
// (cluster size 1..8; 1 without clusters) of every later launch; 0 leaves the plan's choice.
// Process-wide, not synchronized with launches on other threads.
void skinny_gemm_force_plan(int wk, int cluster);

// The launch the kernel would make for this shape on be's device, for logs and benchmarks, e.g.
// "m_tiles=2 steps/batch=4 rows/cta=128 k_split=8 (cluster) ctas=160 k/cta=128 ...".
std::string skinny_gemm_plan(const CudaBackend& be, int64_t M, int64_t N, int64_t K, DType x_dtype,
                             DType w_dtype = DType::kBF16);

}  // namespace frt
