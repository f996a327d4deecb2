// Skinny weight-streaming GEMM: y[M,N] (=|+=) act(x[M,K] . w[N,K]^T + bias[N]) for M <= 64,
// bf16 weights or (W8A16) fp8 E4M3 weights with a per-tensor scale,
// the action expert's shapes (M = horizon 10 / 50; K x N = 1024x2560, 2048x1024, 1024x8192,
// 4096x1024, 32x1024, 1024x32). Bound by reading w (bf16) once, so the design is about bytes in
// flight and a short instruction path per warp, not arithmetic:
//  - CTA = 8 warps over R = 128 (or 64) weight rows x a k-range; each warp owns 16 rows and
//    streams them with 16-byte non-caching loads in batches of U 32-k steps (2U loads), two
//    batches in flight (two register sets; loads are predicated, never branched around, so the
//    compiler never copies in-flight registers).
//  - x for the CTA's whole k-range is staged once in shared memory as bf16 (cp.async) while the
//    first weight batches are in flight; the weight loop then runs without barriers.
//  - Tensor cores (mma.sync m16n8k16 bf16, fp32 accumulate; plain sm_80 PTX): A = the weight
//    tile as loaded (16 rows x 32 k per step), B = staged x (8 rows per m-tile, up to 8 m-tiles).
//    A lane's 16-byte weight vector is 8 consecutive k; the k order inside a 32-k step is
//    permuted identically for A and B, so both come straight from 16-byte loads, no shuffles.
//  - Split-K across the CTAs of a thread-block cluster (sm_90+, up to 8): M <= 16, each CTA
//    pushes its partials into the receive area of the CTA owning those outputs
//    (st.shared::cluster), one cluster barrier, the owner sums them from its own shared memory
//    (push_reduce_epilogue); more rows leave the partial tile in shared memory and each CTA
//    pulls its slice from all peers after the barrier. Both sum in the same fixed (rank, k
//    slot) order: one launch, no global scratch, no atomics, bit-reproducible. Without clusters
//    (sm_80/89, or PTX built for them) each CTA covers the whole K.
//  - x in F32 (the action input) is split into hi + lo bf16 planes (two MMAs): the product stays
//    within ~2^-16 of fp32 instead of rounding x to bf16.
//  - FP8 weights: a lane's 16-byte vector is 16 k; it is dequantized to bf16 in registers with
//    integer ops and one exact bf16x2 multiply (dequant_e4m3x16), x is staged permuted to match,
//    and the per-tensor scale multiplies the fp32 sum in the epilogue. Half the bytes of bf16.
//  - Epilogue fused: y = act(acc + bias) [* gate] (+ y), fp32, rounded once (the CPU twin's
//    order); or (SPLIT instantiations, M <= 16) qkv_split_rope's split and RoPE into q / k / v.
//  - fused_linear's prologue (a runtime switch in stage_x, outside the weight loop), one
//    cp.async round trip after griddepcontrol.wait: norms stage whole x rows (M x K, when they
//    fit) plus scale / shift, take the row factors from shared memory and normalize the CTA's
//    k-range in place; GeGLU goes through registers (gelu(g) * u).
// Plan (tiles, split, x stage): cuda_skinny_gemm_plan.cu. Routing (which calls come here):
// cuda_skinny_gemm_route.cu. Covered by
// tests/gpu/test_cuda_skinny_gemm.cpp and test_cuda_fused_linear.cpp; timed by
// bench/bench_linear_cuda.cpp and bench_fused_linear_cuda.cpp.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <sstream>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_e4m3_dequant.cuh"
#include "backend/cuda/cuda_rope.cuh"
#include "backend/cuda/cuda_skinny_gemm.h"
#include "backend/cuda/cuda_skinny_gemm_args.cuh"
#include "backend/cuda/cuda_skinny_gemm_plan.h"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define FRT_SKINNY_CLUSTERS 1  // device code with thread-block clusters
#else
#define FRT_SKINNY_CLUSTERS 0
#endif

namespace frt {

namespace {
using cuda::Mat;
using namespace skinny;  // SkinnyArgs, QkvSplit, Prologue (_args.cuh); Plan, kWarps (_plan.h)

#include "backend/cuda/cuda_skinny_gemm.cuh"  // device helpers (inside this namespace)

constexpr int log2_of(int v) { return v <= 1 ? 0 : 1 + log2_of(v / 2); }

// U k-steps of this lane's two weight rows (g and g + 8 of the warp's 16) from k0 on. Lanes
// of a quad (t = 0..3) hold 4 x 16 bytes of a row: 32 consecutive k of bf16, 64 of fp8 (ES:
// bytes per weight); zeros past K / N.
template <int U, int ES>
__device__ __forceinline__ void load_w(uint4 (&dst)[U][2], const unsigned char* w_lo,
                                       const unsigned char* w_hi, bool ok_lo, bool ok_hi, int k0,
                                       int ke) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int k = k0 + u * (64 / ES);
    dst[u][0] = ldg_stream(w_lo + k * ES, k < ke && ok_lo);
    dst[u][1] = ldg_stream(w_hi + k * ES, k < ke && ok_hi);
  }
}

// MT: m-tiles of 8 x rows (M <= 8 MT); U: k-steps per weight batch; WK: warps along k (the
// CTA covers 128 / WK rows); XF32: x is F32 (hi + lo planes); W8: weights F8E4M3 (W8A16: each
// 16-byte vector is 16 k, dequantized to bf16 in registers; the scale is applied in the
// epilogue), else BF16. SPLIT: the epilogue is qkv_split_rope's (SkinnyArgs::split), a kernel of
// its own because that code's mere presence in the plain kernels measured ~0.2 ms slower over a
// Pi0.5 predict (register allocation of the weight stream).
template <int MT, int U, int WK, bool XF32, bool W8, bool SPLIT>
__global__ void __launch_bounds__(kThreads, 2) skinny_gemm_kernel(const SkinnyArgs a) {
  static_assert(!(W8 && XF32), "fp8 weights take bf16 x only");
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int ES = W8 ? 1 : 2;            // bytes per weight
  constexpr int VE = 16 / ES;               // weights per 16-byte vector
  constexpr int kStepK = 4 * VE;            // k per step of a quad
  constexpr int MP = 8 * MT;                // x rows a stage holds
  constexpr int kWarpsN = kWarps / WK;      // warps along n
  constexpr int kRows = 16 * kWarpsN;       // R: weight rows per CTA
  constexpr int kBatchK = kStepK * U * WK;  // k per CTA batch (each warp: kStepK U of it)
  constexpr int kPitch = kRows + 4;         // partial-tile row pitch (floats), bank-spread
#if !FRT_SKINNY_CLUSTERS
  if (a.cluster > 1) __trap();  // the host never asks for a cluster from a pre-sm_90 build
#endif
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;  // mma groupID / thread in group
  const int wn = warp % kWarpsN, wq = warp / kWarpsN;
  const int n_base = blockIdx.y * kRows;
  const int kb = blockIdx.x * a.ks;
  const int ke = min(a.K, kb + a.ks);
  const int nbat = ke > kb ? (ke - kb + kBatchK - 1) / kBatchK : 0;
  const int stage_mask = (1 << (a.xs_log2 - log2_of(kBatchK))) - 1;  // batches per stage - 1
  // Staged x row pitch in bytes: 2 * stage width is a multiple of 128; +64 (bf16: lanes read 16
  // bytes at 16 t) or +16 (fp8: 32 bytes at 32 t) puts rows g and g+1 on disjoint banks, so the
  // quarter-warp phases of an LDS.128 are conflict-free.
  const int x_pitch = (2 << a.xs_log2) + (W8 ? 16 : 64);
  const int m_rows = (a.M + 7) & ~7;  // x rows of the m-tiles in use

  // This lane's weight rows; out-of-range rows point at row 0 and are never loaded.
  const int n_lo = n_base + wn * 16 + g, n_hi = n_lo + 8;
  const bool ok_lo = n_lo < a.N, ok_hi = n_hi < a.N;
  const unsigned char* wb8 = static_cast<const unsigned char*>(a.w);
  const unsigned char* w_lo =
      wb8 + static_cast<int64_t>(ok_lo ? (SPLIT ? weight_row(a, n_lo) : n_lo) : 0) * a.ldw * ES;
  const unsigned char* w_hi =
      wb8 + static_cast<int64_t>(ok_hi ? (SPLIT ? weight_row(a, n_hi) : n_hi) : 0) * a.ldw * ES;
  const int k_lane = kb + wq * U * kStepK + VE * t;  // this lane's first k in batch 0

  float acc[MT][4];
#pragma unroll
  for (int j = 0; j < MT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;

  // Norm prologues: 1 / rms of each x row over the whole K (a CTA of a k-split multiplies only
  // part of it), filled after griddepcontrol.wait; past the area the partial tile reuses.
  float* inv_rms = reinterpret_cast<float*>(smem + a.rms_off);
  // Byte column of the CTA's first k in the x stage: norm_full stages whole rows from k 0.
  const int x_col = a.norm_full ? 2 * kb : 0;

  // x[:, k0 .. k0 + stage width) -> shared memory as bf16 (F32: hi plane, lo plane MP rows
  // below); zeros past M / K. Vector i of the stage: row i >> sh, 16-byte column i & mask.
  auto stage_x = [&](int k0) {
    const int sh = a.xs_log2 - 3, mask = (1 << sh) - 1;
    const int total = m_rows << sh;
    if constexpr (XF32) {
      const float* x = static_cast<const float*>(a.x);
      for (int i = threadIdx.x; i < total; i += kThreads) {
        const int m = i >> sh, c = i & mask, k = k0 + 8 * c;
        float f[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
        if (m < a.M && k < ke) {
          const float4* p = reinterpret_cast<const float4*>(x + m * a.ldx + k);
          const float4 v0 = __ldg(p), v1 = __ldg(p + 1);
          f[0] = v0.x, f[1] = v0.y, f[2] = v0.z, f[3] = v0.w;
          f[4] = v1.x, f[5] = v1.y, f[6] = v1.z, f[7] = v1.w;
        }
        uint4 hi, lo;
        split_bf16(f, hi, lo);
        *reinterpret_cast<uint4*>(smem + m * x_pitch + 16 * c) = hi;
        *reinterpret_cast<uint4*>(smem + (MP + m) * x_pitch + 16 * c) = lo;
      }
    } else {
      const __nv_bfloat16* x = static_cast<const __nv_bfloat16*>(a.x);
      const bool norm = a.pro == kProRms || a.pro == kProAda;
      if (norm && !a.norm_full) {  // rows too long for shared memory: through registers, from L2
        for (int i = threadIdx.x; i < total; i += kThreads) {
          const int m = i >> sh, c = i & mask, k = k0 + 8 * c;
          uint4 v = make_uint4(0u, 0u, 0u, 0u);  // zeros past M / K (not the norm's shift)
          if (m < a.M && k < ke) v = norm_x8_global(a, x + m * a.ldx, k, inv_rms[m]);
          if constexpr (W8) v = permute_x8(v);
          *reinterpret_cast<uint4*>(smem + m * x_pitch + 16 * c) = v;
        }
        return;
      }
      // (Not built into the SPLIT kernels, which take no GeGLU prologue: its registers made the
      // qkv + RoPE kernel spill.)
      if (!SPLIT && a.pro == kProGeglu) {  // through registers (faster than cp.async + rewrite)
        // kGegluLoads vectors per thread issued before any is used: one L2 round trip for the
        // whole stage where the plain loop waited on each vector in turn.
        constexpr int kGegluLoads = 4;
        for (int i0 = threadIdx.x; i0 < total; i0 += kGegluLoads * kThreads) {
          uint4 gv[kGegluLoads], uv[kGegluLoads];
#pragma unroll
          for (int j = 0; j < kGegluLoads; ++j) {
            const int i = i0 + j * kThreads, m = i >> sh, k = k0 + 8 * (i & mask);
            gv[j] = uv[j] = make_uint4(0u, 0u, 0u, 0u);  // zeros past M / K: gelu(0) * 0 = 0
            if (i < total && m < a.M && k < ke) {
              const __nv_bfloat16* xr = x + m * a.ldx + k;
              gv[j] = __ldg(reinterpret_cast<const uint4*>(xr));
              uv[j] = __ldg(reinterpret_cast<const uint4*>(xr + a.x_up));
            }
          }
#pragma unroll
          for (int j = 0; j < kGegluLoads; ++j) {
            const int i = i0 + j * kThreads;
            if (i >= total) break;
            uint4 v = geglu_x8(gv[j], uv[j]);
            if constexpr (W8) v = permute_x8(v);
            *reinterpret_cast<uint4*>(smem + (i >> sh) * x_pitch + 16 * (i & mask)) = v;
          }
        }
        return;
      }
      // Every load in flight at once (cp.async): x rows (norm_full: whole rows from k 0, then
      // the norm's scale / shift for the CTA's k-range); zeros past M / K.
      const int kbeg = norm ? 0 : k0, kend = norm ? a.K : ke;
      for (int i = threadIdx.x; i < total; i += kThreads) {
        const int m = i >> sh, c = i & mask, k = kbeg + 8 * c;
        const bool ok = m < a.M && k < kend;
        cp_async16(smem + m * x_pitch + 16 * c, ok ? x + m * a.ldx + k : x, ok);
      }
      if (norm) {  // cp.async the scale / shift too, then normalize in shared memory
        finish_norm_stage<W8>(a, smem, x_pitch, kb, ke, inv_rms);
        return;
      }
      cp_async_wait_all();
      if constexpr (W8) {  // each thread permutes the vectors it loaded: no barrier
        for (int i = threadIdx.x; i < total; i += kThreads) {
          uint4* p = reinterpret_cast<uint4*>(smem + (i >> sh) * x_pitch + 16 * (i & mask));
          *p = permute_x8(*p);
        }
      }
    }
  };

  // acc += weight batch . staged x at byte column `col0` (the batch's offset in the stage).
  // Step u of a lane: weight vectors (rows g, g+8) and x vector (row g of each m-tile) at the
  // same 8 k; elements 0-3 feed the first MMA, 4-7 the second.
  auto multiply = [&](const uint4(&wv)[U][2], int col0) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const unsigned char* xu =
          smem + g * x_pitch + col0 + 2 * (wq * U * kStepK + VE * t + kStepK * u);
      if constexpr (W8) {  // 16 k per vector: 4 MMAs per m-tile, x as two permuted vectors
        uint32_t dl[8], dh[8];
        dequant_e4m3x16(wv[u][0], dl);
        dequant_e4m3x16(wv[u][1], dh);
#pragma unroll
        for (int j = 0; j < MT; ++j) {
          if (8 * j >= a.M) continue;
          const unsigned char* xr = xu + 8 * j * x_pitch;
          const uint4 x0 = *reinterpret_cast<const uint4*>(xr);
          const uint4 x1 = *reinterpret_cast<const uint4*>(xr + 16);
          mma_bf16(acc[j], dl[0], dh[0], dl[1], dh[1], x0.x, x0.y);
          mma_bf16(acc[j], dl[2], dh[2], dl[3], dh[3], x0.z, x0.w);
          mma_bf16(acc[j], dl[4], dh[4], dl[5], dh[5], x1.x, x1.y);
          mma_bf16(acc[j], dl[6], dh[6], dl[7], dh[7], x1.z, x1.w);
        }
      } else {
#pragma unroll
        for (int j = 0; j < MT; ++j) {
          if (8 * j >= a.M) continue;  // m-tile past M: nothing to compute
          const unsigned char* xr = xu + 8 * j * x_pitch;
          const uint4 xv = *reinterpret_cast<const uint4*>(xr);
          mma_bf16(acc[j], wv[u][0].x, wv[u][1].x, wv[u][0].y, wv[u][1].y, xv.x, xv.y);
          mma_bf16(acc[j], wv[u][0].z, wv[u][1].z, wv[u][0].w, wv[u][1].w, xv.z, xv.w);
          if constexpr (XF32) {
            const uint4 xl = *reinterpret_cast<const uint4*>(xr + MP * x_pitch);
            mma_bf16(acc[j], wv[u][0].x, wv[u][1].x, wv[u][0].y, wv[u][1].y, xl.x, xl.y);
            mma_bf16(acc[j], wv[u][0].z, wv[u][1].z, wv[u][0].w, wv[u][1].w, xl.z, xl.w);
          }
        }
      }
    }
  };

  // Batch b: multiply (if it exists), then reuse the registers for batch b + 2. Loads are
  // unconditional (predicated off past K), so register sets never get copied.
  auto batch = [&](int b, uint4(&cur)[U][2]) {
    if (b < nbat) multiply(cur, x_col + 2 * (b & stage_mask) * kBatchK);  // uniform over the CTA
    load_w<U, ES>(cur, w_lo, w_hi, ok_lo, ok_hi, k_lane + (b + 2) * kBatchK, ke);
  };

  // Two weight batches in flight per warp from the start. The weights depend on no earlier
  // kernel, so they are issued before waiting on it (programmatic dependent launch); x is not.
  uint4 wa[U][2], wb[U][2];
  load_w<U, ES>(wa, w_lo, w_hi, ok_lo, ok_hi, k_lane, ke);
  load_w<U, ES>(wb, w_lo, w_hi, ok_lo, ok_hi, k_lane + kBatchK, ke);
#if FRT_SKINNY_CLUSTERS
  // Programmatic dependent launch (when launched with it): let the next kernel's CTAs start
  // (they too only prefetch weights before waiting), then wait for the previous kernel's
  // results. Both are no-ops without the launch attribute.
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  if (!XF32 && !a.norm_full && (a.pro == kProRms || a.pro == kProAda)) {  // uniform
    row_inv_rms(inv_rms, static_cast<const __nv_bfloat16*>(a.x), a.ldx, a.M, a.K, a.eps);
    __syncthreads();
  }
  for (int b = 0; b < nbat; b += 2) {
    if ((b & stage_mask) == 0) {   // b opens an x stage (stages hold an even number of batches)
      if (b > 0) __syncthreads();  // the previous stage is consumed
      stage_x(kb + b * kBatchK);
      __syncthreads();
    }
    batch(b, wa);
    batch(b + 1, wb);
  }
#if FRT_SKINNY_CLUSTERS
  if constexpr (MT <= 2) {
    if (a.recv_off > 0) {  // uniform: cluster > 1
      push_reduce_epilogue<MT, WK, W8, SPLIT, kRows, MP>(a, acc, n_base, wn, wq, g, t);
      return;
    }
  }
#endif
  __syncthreads();  // every warp is done with the staged x: the partial tile reuses it

  // Partial tile [wq][m][r] (fp32); acc[j]: (row g, m 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1).
  float* part = reinterpret_cast<float*>(smem);
#pragma unroll
  for (int j = 0; j < MT; ++j) {
    if (8 * j >= a.M) continue;
    float* p = part + (wq * MP + 8 * j + 2 * t) * kPitch + wn * 16 + g;
    p[0] = acc[j][0];
    p[kPitch] = acc[j][1];
    p[8] = acc[j][2];
    p[kPitch + 8] = acc[j][3];
  }
#if FRT_SKINNY_CLUSTERS
  const uint32_t part_s = static_cast<uint32_t>(__cvta_generic_to_shared(part));
  if (a.cluster > 1) {
    cluster_arrive();
    cluster_wait();
  } else {
    __syncthreads();
  }
#else
  __syncthreads();
#endif

  // Reduce + epilogue. The cluster's threads split the R x M tile: thread `lin` owns tile row
  // r = lin % R (one weight row n: bias loaded once) and x rows m = lin / R + i * m_step. Each
  // output sums the partials of every (cluster rank q, k slot) in a fixed order: results do
  // not depend on scheduling. (Each partial is summed as it arrives: issuing all of an
  // output's distributed-shared-memory loads first measured slower in the model, session 8.)
  const int lin = blockIdx.x * kThreads + threadIdx.x;
  const int r = lin % kRows, n = n_base + r;
  const int m_step = a.cluster * (kThreads / kRows);
  const bool live = n < a.N;
  const float bias_n = live ? cuda::load_vec(a.bias, n, 0.f) : 0.f;
  const float gate_n = live ? cuda::load_vec(a.gate, n, 1.f) : 1.f;
  const float w_scale = W8 ? *a.w_scale : 1.f;  // after griddepcontrol.wait: may be new
  constexpr int kGroup = 4;  // x rows per thread finished together
  float out[kGroup];
  int m_first = lin / kRows;
  for (; m_first < a.M; m_first += kGroup * m_step) {
#pragma unroll
    for (int i = 0; i < kGroup; ++i) {
      const int m = m_first + i * m_step;
      float s = 0.f;
      if (m < a.M) {
#if FRT_SKINNY_CLUSTERS
        const uint32_t off = part_s + 4u * ((m * kPitch) + r);
#pragma unroll
        for (int q = 0; q < kMaxCluster; ++q) {
          if (q >= a.cluster) continue;
          const uint32_t base = a.cluster > 1 ? map_rank(off, q) : off;
#pragma unroll
          for (int k = 0; k < WK; ++k)
            s += a.cluster > 1 ? ld_cluster(base + 4u * k * MP * kPitch)
                               : part[(k * MP + m) * kPitch + r];
        }
#else
#pragma unroll
        for (int k = 0; k < WK; ++k) s += part[(k * MP + m) * kPitch + r];
#endif
      }
      out[i] = s;
    }
    if (!live) continue;
#pragma unroll
    for (int i = 0; i < kGroup; ++i) {
      const int m = m_first + i * m_step;
      if (m >= a.M) continue;
      float v = cuda::apply_act(a.act, (W8 ? out[i] * w_scale : out[i]) + bias_n);
      if constexpr (SPLIT) {  // live, m warp-uniform (N % 64 == 0): the pair's shuffle is safe
        store_qkv_split(a.split, m, n, v);
        continue;
      }
      if (a.gate.p) v *= gate_n;  // the gated residual of fused_linear
      if (a.accumulate) v += cuda::load(a.y, m, n);
      cuda::store(a.y, m, n, v);
    }
  }
#if FRT_SKINNY_CLUSTERS
  if (a.cluster > 1) {  // peers may still be reading this CTA's tile
    cluster_arrive();
    cluster_wait();
  }
#endif
}

// ---------------------------------------------------------------- host side

using KernelFn = void (*)(SkinnyArgs);

template <int MT, int VAR, bool SPLIT>
KernelFn kernel_of(int wk) {
  constexpr int U = steps_for(MT, VAR);
  constexpr bool XF32 = VAR == kVarXf32, W8 = VAR == kVarW8;
  return wk == 1 ? skinny_gemm_kernel<MT, U, 1, XF32, W8, SPLIT>
                 : skinny_gemm_kernel<MT, U, 2, XF32, W8, SPLIT>;
}

template <int MT, bool SPLIT>
KernelFn kernel_mt(int wk, int var) {
  return var == kVarW8     ? kernel_of<MT, kVarW8, SPLIT>(wk)
         : var == kVarXf32 ? kernel_of<MT, kVarXf32, SPLIT>(wk)
                           : kernel_of<MT, kVarBf16, SPLIT>(wk);
}

// The kernel of a plan; split: the qkv_split_rope epilogue, built for M <= kSkinnyMaxSplitRows
// only (null above).
KernelFn kernel_for(int mt, int wk, int var, bool split) {
  static_assert(kSkinnyMaxSplitRows == 16, "split kernels: m-tiles 1 and 2");
  if (split) return mt == 1 ? kernel_mt<1, true>(wk, var)
                    : mt == 2 ? kernel_mt<2, true>(wk, var) : nullptr;
  switch (mt) {
    case 1: return kernel_mt<1, false>(wk, var);
    case 2: return kernel_mt<2, false>(wk, var);
    case 4: return kernel_mt<4, false>(wk, var);
    default: return kernel_mt<8, false>(wk, var);
  }
}

// Once per process, for every instantiation: whether its code can use clusters (built for
// sm_90+, not PTX of an older target JIT-compiled for this device), and its dynamic shared
// memory limit raised to `cap`. (Function attributes apply to the current device: one GPU per
// process, like the rest of the backend.)
struct KernelInfo {
  bool clusters[kVariants][4][2] = {};  // [variant][m-tile index][wk - 1]
};

int mt_index(int mt) { return mt == 1 ? 0 : mt == 2 ? 1 : mt == 4 ? 2 : 3; }

KernelInfo probe_kernels(int cap) {
  const char* op = "linear (skinny)";
  KernelInfo info;
  for (int var = 0; var < kVariants; ++var)
    for (int mt : {1, 2, 4, 8})
      for (int wk : {1, 2})
        for (bool split : {false, true}) {
          const KernelFn fn = kernel_for(mt, wk, var, split);
          if (!fn) continue;
          cudaFuncAttributes attr{};
          FRT_CUDA_CHECK(op, cudaFuncGetAttributes(&attr, fn));
          if (!split) info.clusters[var][mt_index(mt)][wk - 1] = attr.ptxVersion >= 90;
          if (cap > 48 * 1024)
            FRT_CUDA_CHECK(
                op, cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, cap));
        }
  return info;
}

}  // namespace

// (cuda_skinny_gemm_plan.h)
bool skinny::kernel_has_clusters(int mt, int wk, int var, int cap) {
  static const KernelInfo info = probe_kernels(cap);  // thread-safe once; retried if it threw
  return info.clusters[var][mt_index(mt)][wk - 1];
}

namespace {
// The GEMM's x [M, K] of fused_linear (the gate half of a GeGLU input [M, 2K]).
Tensor gemm_x(const Tensor& x, const LinearPrologue& pro) {
  return pro.kind == LinearPrologue::Kind::kGeglu ? x.col_slice(0, x.cols() / 2) : x;
}

}  // namespace

// One launch of the kernel: linear()'s GEMM (pro kNone, gate null) or fused_linear's.
void skinny::launch(CudaBackend& be, const char* op, Tensor y, Tensor x, Tensor w,
                    const Tensor* bias, Activation act, bool accumulate, const LinearPrologue& pro,
                    const Tensor* gate, const QkvSplit* split) {
  x = gemm_x(x, pro);
  const int64_t M = x.rows(), K = w.cols(), N = w.rows();
  const int var = variant_of(x.dtype, w.dtype);
  const Plan p = make_plan(be, M, N, K, var, static_cast<int>(pro.kind));

  SkinnyArgs args{};  // zeroed: every field a launch does not set is off
  args.w = w.data;
  args.w_scale = var == kVarW8 ? w.quant->w_scale : nullptr;
  args.ldw = w.ld();
  args.x = x.data;
  args.ldx = x.ld();
  args.y = cuda::mat_of(y);
  args.bias = cuda::mat_of(bias);
  args.act = static_cast<int>(act);
  args.accumulate = accumulate ? 1 : 0;
  args.M = static_cast<int>(M);
  args.N = static_cast<int>(N);
  args.K = static_cast<int>(K);
  args.ks = static_cast<int>(p.ks);
  args.xs_log2 = p.xs_log2;
  args.cluster = p.cluster;
  args.pro = static_cast<int>(pro.kind);  // Prologue mirrors LinearPrologue::Kind
  args.pro_scale = pro.is_norm() ? cuda::mat_of(pro.scale) : Mat{};
  args.pro_shift = pro.kind == LinearPrologue::Kind::kAdaRmsNorm ? cuda::mat_of(pro.shift) : Mat{};
  args.eps = pro.eps;
  args.x_up = pro.kind == LinearPrologue::Kind::kGeglu ? static_cast<int>(K) : 0;
  args.rms_off = static_cast<int>(p.rms_off);
  args.pro_off = static_cast<int>(p.pro_off);
  args.norm_full = p.norm_full ? 1 : 0;
  args.recv_off = static_cast<int>(p.recv_off);
  args.gate = cuda::mat_of(gate);
  if (split) args.split = *split;

  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(p.cluster), static_cast<unsigned>(p.blocks_n), 1);
  cfg.blockDim = dim3(kThreads, 1, 1);
  cfg.dynamicSmemBytes = p.smem;
  cfg.stream = be.stream();
  cudaLaunchAttribute attrs[2];
  int n_attrs = 0;
  if (p.cluster > 1) {
    attrs[n_attrs].id = cudaLaunchAttributeClusterDimension;
    attrs[n_attrs].val.clusterDim.x = static_cast<unsigned>(p.cluster);
    attrs[n_attrs].val.clusterDim.y = 1;
    attrs[n_attrs].val.clusterDim.z = 1;
    ++n_attrs;
  }
  if (be.skinny_gemm_pdl() && p.clusters) {  // sm_90+ code (griddepcontrol) on an sm_90+ GPU
    attrs[n_attrs].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attrs[n_attrs].val.programmaticStreamSerializationAllowed = 1;
    ++n_attrs;
  }
  cfg.attrs = attrs;
  cfg.numAttrs = static_cast<unsigned>(n_attrs);
  const KernelFn fn = kernel_for(p.mt, p.wk, var, split != nullptr);
  cuda::check_arg(fn != nullptr, op, "the qkv + RoPE epilogue takes at most 16 rows of x");
  FRT_CUDA_CHECK(op, cudaLaunchKernelEx(&cfg, fn, args));
  FRT_CUDA_LAUNCH_CHECK(op);
}

}  // namespace frt
