// The skinny GEMM's plan (host side): m-tiles, weight rows per CTA, the k-split over a
// thread-block cluster, the x stage and the shared-memory layout of one launch for a shape,
// from the device's SM count and shared memory. Shared by the kernels' file
// (cuda_skinny_gemm.cu: kernels, launch) and cuda_skinny_gemm_plan.cu (make_plan). Included
// by .cu files only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/tensor.h"

namespace frt {
class CudaBackend;

namespace skinny {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kTileRows = kWarps * 16;  // weight rows per CTA x warps along k
constexpr int kMaxCluster = 8;          // portable cluster size

inline int m_tiles_for(int64_t M) { return M <= 8 ? 1 : M <= 16 ? 2 : M <= 32 ? 4 : 8; }
// Kernel variants: bf16 weights with bf16 x / with f32 x, fp8 weights with bf16 x.
enum Variant : int { kVarBf16 = 0, kVarXf32 = 1, kVarW8 = 2, kVariants = 3 };
inline Variant variant_of(DType x, DType w) {
  return w == DType::kF8E4M3 ? kVarW8 : x == DType::kF32 ? kVarXf32 : kVarBf16;
}

// k-steps per weight batch (two batches in flight per warp): 4 (8 loads of 16 bytes per lane
// and batch) where registers allow, fewer where the accumulators / hi+lo x planes need them
// (<= 128 registers for 2 CTAs per SM and no spills on sm_80/89/90a/120, per ptxas -v). FP8: 2
// (64 k per step, so the same 128 k per batch as bf16: k-splits stay as deep, half the bytes).
constexpr int steps_for(int mt, int var) {
  return mt >= 4 ? 1 : var == kVarXf32 ? 2 : var == kVarW8 ? 2 : 4;
}
constexpr int step_k(int var) { return var == kVarW8 ? 64 : 32; }

struct Plan {
  int mt = 1, u = 4, wk = 1, rows = 128, batch_k = 128, cluster = 1, xs_log2 = 7;
  int64_t ks = 0, blocks_n = 0;
  size_t smem = 0, rms_off = 0, pro_off = 0;
  size_t recv_off = 0;  // > 0: partials pushed to their owner (SkinnyArgs::recv_off)
  bool norm_full = false;  // norm prologue: whole x rows staged once (SkinnyArgs::norm_full)
  bool clusters = false;   // device and kernel code support clusters (and griddepcontrol)
};

// Tile and split for a shape (cuda_skinny_gemm_plan.cu); pro: a Prologue.
Plan make_plan(const CudaBackend& be, int64_t M, int64_t N, int64_t K, int var, int pro);

// Whether the kernel code of (mt, wk, var) can use clusters (built for sm_90+); the first call
// also raises every kernel's dynamic shared-memory limit to `cap` (cuda_skinny_gemm.cu).
bool kernel_has_clusters(int mt, int wk, int var, int cap);

}  // namespace skinny
}  // namespace frt
