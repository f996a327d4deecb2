// Building blocks of the persistent kernels (expert_mlp, cuda_expert_mlp.cu; the expert's
// attention half next): one CTA of 8 warps per SM, launched cooperatively, phases separated by
// grid barriers, weights brought into shared memory by bulk async copies (cp.async.bulk +
// mbarrier transaction counts) issued before the kernel waits for its predecessor, and the
// "item" product: 16 (or 8) weight rows x up to 16 x rows over a k range split across the warps
// (mma.sync m16n8k16, fixed-order reduction), for bf16 or E4M3 (W8A16) weights.
// Used only from .cu files (device code); covered by tests/gpu/test_cuda_expert_mlp.cpp.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_e4m3_dequant.cuh"
#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_persistent_launch.h"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define FRT_PERSISTENT_SM90 1  // bulk async copies, mbarrier tx counts, griddepcontrol
#else
#define FRT_PERSISTENT_SM90 0
#endif

namespace frt::cuda::persistent {

// kWarps, kThreads, kMaxRows, kRowPad, kRowPadX8, kMaxTxBytes: cuda_persistent_launch.h (the
// host plans with the same numbers).

#if FRT_PERSISTENT_SM90
__device__ __forceinline__ void mbar_init(uint32_t bar) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void fence_mbar_init() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
// One arrival that also expects `bytes` of bulk copies to complete on the barrier.
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n\t.reg .pred P1;\n"
      "WAIT:\n\t"
      "mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n\t"
      "@P1 bra DONE;\n\t"
      "bra WAIT;\n"
      "DONE:\n\t}" ::"r"(bar),
      "r"(parity)
      : "memory");
}
// bytes (a multiple of 16, both addresses 16-byte aligned) global -> shared, completing on bar.
__device__ __forceinline__ void bulk_copy(uint32_t dst, const void* src, uint32_t bytes,
                                          uint32_t bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::
          "r"(dst),
      "l"(src), "r"(bytes), "r"(bar)
      : "memory");
}
// Weight rows [row0, row0 + rows) (row_bytes each, ld_bytes apart in global memory) -> shared
// memory at dst, pitch bytes apart, completing on bar (whose expected bytes the caller set). Rows
// contiguous on both sides go as one copy (each bulk copy has a fixed cost in the copy engine);
// padded rows (conflict-free ldmatrix) one copy each.
__device__ __forceinline__ void copy_rows(uint32_t dst, int pitch, const unsigned char* w,
                                          int64_t ld_bytes, int64_t row0, int rows,
                                          uint32_t row_bytes, uint32_t bar) {
  if (pitch == static_cast<int>(row_bytes) && ld_bytes == row_bytes) {
    bulk_copy(dst, w + row0 * ld_bytes, rows * row_bytes, bar);
    return;
  }
  for (int r = 0; r < rows; ++r)
    bulk_copy(dst + r * pitch, w + (row0 + r) * ld_bytes, row_bytes, bar);
}
// How many items of a phase with `items` work items this CTA owns (items c, c + G, c + 2G, ...).
__device__ __forceinline__ int owned_items(int items) {
  return blockIdx.x < items ? (items - 1 - static_cast<int>(blockIdx.x)) / gridDim.x + 1 : 0;
}
// The two weight mbarriers at the start of shared memory (s0: its address), initialized and
// visible to the copy engine. The whole CTA.
__device__ __forceinline__ void init_weight_barriers(uint32_t s0) {
  if (threadIdx.x == 0) {
    mbar_init(s0);
    mbar_init(s0 + 8);
    fence_mbar_init();
  }
  __syncthreads();
}
// A 16-row A tile: weight rows [r0, r0 + 8) and their partners [r0 + partner, + 8) (gate / up,
// or the two halves RoPE rotates together) -> dst, pitch bytes apart.
__device__ __forceinline__ void copy_row_pairs(uint32_t dst, int pitch, const unsigned char* w,
                                               int64_t ld_bytes, int64_t r0, int64_t partner,
                                               uint32_t row_bytes, uint32_t bar) {
  copy_rows(dst, pitch, w, ld_bytes, r0, 8, row_bytes, bar);
  copy_rows(dst + 8 * pitch, pitch, w, ld_bytes, r0 + partner, 8, row_bytes, bar);
}
// This CTA's `count` items of 8 rows (item i: rows 8 (blockIdx.x + gridDim.x i)) -> dst,
// item after item, pitch bytes per row.
__device__ __forceinline__ void copy_row_items(uint32_t dst, int pitch, const unsigned char* w,
                                               int64_t ld_bytes, int count, uint32_t row_bytes,
                                               uint32_t bar) {
  for (int i = 0; i < count; ++i)
    copy_rows(dst + i * 8 * pitch, pitch, w, ld_bytes,
              static_cast<int64_t>(blockIdx.x + gridDim.x * i) * 8, 8, row_bytes, bar);
}

// Every CTA of the grid arrives, then waits for all. Writes before it (any thread of the CTA) are
// visible to every CTA after it: the CTA barrier orders them before thread 0's release fence.
__device__ __forceinline__ void grid_barrier(unsigned long long* counter, unsigned ctas) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    const unsigned long long old = atomicAdd(counter, 1ull);
    const unsigned long long target = (old / ctas + 1) * ctas;
    unsigned long long v;
    do {
      asm volatile("ld.acquire.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(counter) : "memory");
    } while (v < target);
  }
  __syncthreads();
}
#endif

__device__ __forceinline__ void ldmatrix_x2(uint32_t& r0, uint32_t& r1, uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];"
               : "=r"(r0), "=r"(r1)
               : "r"(addr)
               : "memory");
}

__device__ __forceinline__ float round_bf16(float v) {
  return __bfloat162float(__float2bfloat16_rn(v));
}

// One item's product over D (phase 1) or F (phase 2): the 8 warps split the k range, each runs
// mma.sync over its share, then the partials are summed in a fixed warp order into sum[16][16]
// (weight row r, x row m). A: 16 weight rows at w_s (row pitch pw), or 8 when half (rows 8-15
// zero); B: x rows at x_s (pitch px; row m >= M reads row 0: it only feeds output columns that
// are never stored). W8: E4M3 weights, one 4-byte load per row and k-step dequantized to the k
// pairs (4t, 4t+2) / (4t+1, 4t+3), against x staged through permute_x8, whose 8-byte loads give
// the same pairs; else bf16 weights through ldmatrix.
template <bool W8>
__device__ __forceinline__ void item_product(uint32_t w_s, uint32_t x_s, int pw, int px, int k_len,
                                             int M, bool half, float* red, float* sum) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int kw = k_len / kWarps, k0 = warp * kw;
  const bool two = M > 8;
  float acc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
  if constexpr (W8) {
    const int g = lane >> 2, t = lane & 3;
    const uint32_t a_lo = w_s + g * pw + k0 + 4 * t, a_hi = a_lo + 8 * pw;
    const int n0 = g < M ? g : 0, n1 = 8 + g < M ? 8 + g : 0;
    const uint32_t b_lo = x_s + n0 * px + 2 * (k0 + 4 * t);
    const uint32_t b_hi = x_s + n1 * px + 2 * (k0 + 4 * t);
    for (int s = 0; s < kw / 16; ++s) {
      uint32_t a[4], q, b0, b1;
      asm volatile("ld.shared.b32 %0, [%1];" : "=r"(q) : "r"(a_lo + 16 * s));
      cuda::dequant_e4m3x4(q, a[0], a[2]);
      if (half) {
        a[1] = a[3] = 0u;
      } else {
        asm volatile("ld.shared.b32 %0, [%1];" : "=r"(q) : "r"(a_hi + 16 * s));
        cuda::dequant_e4m3x4(q, a[1], a[3]);
      }
      asm volatile("ld.shared.v2.b32 {%0, %1}, [%2];" : "=r"(b0), "=r"(b1) : "r"(b_lo + 32 * s));
      cuda::mma_bf16_16816(acc[0], a, b0, b1);
      if (two) {
        asm volatile("ld.shared.v2.b32 {%0, %1}, [%2];" : "=r"(b0), "=r"(b1) : "r"(b_hi + 32 * s));
        cuda::mma_bf16_16816(acc[1], a, b0, b1);
      }
    }
  } else {
    // A (ldmatrix.x4): lane -> row lane & 15, k + 8 (lane >> 4). Half: x2 over rows 0-7, lanes
    // 0-15 -> row lane & 7, k + 8 ((lane >> 3) & 1).
    const int a_row = half ? (lane & 7) : (lane & 15);
    const int a_k = half ? 8 * ((lane >> 3) & 1) : 8 * (lane >> 4);
    const uint32_t a_addr = w_s + a_row * pw + 2 * (k0 + a_k);
    // B (ldmatrix.x4, two n8 tiles): matrix q = lane >> 3 holds x rows 8 (q >> 1) + (lane & 7)
    // at k + 8 (q & 1).
    const int q = lane >> 3;
    int b_row = 8 * (q >> 1) + (lane & 7);
    if (b_row >= M) b_row = 0;
    const uint32_t b_addr = x_s + b_row * px + 2 * (k0 + 8 * (q & 1));
    for (int s = 0; s < kw / 16; ++s) {
      uint32_t a[4], b[4];
      if (half) {
        ldmatrix_x2(a[0], a[2], a_addr + 32 * s);
        a[1] = a[3] = 0u;
      } else {
        cuda::ldmatrix_x4(a, a_addr + 32 * s);
      }
      cuda::ldmatrix_x4(b, b_addr + 32 * s);
      cuda::mma_bf16_16816(acc[0], a, b[0], b[1]);
      if (two) cuda::mma_bf16_16816(acc[1], a, b[2], b[3]);
    }
  }
  float* my = red + (warp * 32 + lane) * 8;
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) my[4 * j + e] = acc[j][e];
  __syncthreads();
  // Thread -> (weight row r, x row m); C fragment: c0,c1 (g, 2t..2t+1), c2,c3 (g+8, ..).
  const int r = threadIdx.x >> 4, m = threadIdx.x & 15;
  const int j = m >> 3, mm = m & 7;
  const int src = (r & 7) * 4 + (mm >> 1), e = (mm & 1) + (r >= 8 ? 2 : 0);
  float s = 0.f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) s += red[(w * 32 + src) * 8 + 4 * j + e];
  sum[r * 16 + m] = s;
  __syncthreads();
}

// Every 16-byte vector of `rows` staged rows (pitch bytes apart, `cols` bf16 each) through
// permute_x8: the FP8 kernel's x order.
__device__ __forceinline__ void permute_rows(unsigned char* base, int rows, int cols, int pitch) {
  const int per_row = cols / 8;
  for (int i = threadIdx.x; i < rows * per_row; i += kThreads) {
    uint4* p = reinterpret_cast<uint4*>(base + (i / per_row) * pitch + 16 * (i % per_row));
    *p = cuda::permute_x8(*p);
  }
}

// rows x cols bf16 (global, row stride ld; written earlier in this launch or by the previous
// kernel: read through L2 with cp.async) -> shared memory at dst, pitch bytes apart; permute:
// then in the FP8 kernels' x order. The whole CTA; ends with a barrier.
__device__ __forceinline__ void stage_rows(unsigned char* dst, int pitch, const __nv_bfloat16* src,
                                           int64_t ld, int rows, int cols, bool permute) {
  const uint32_t d = smem_addr(dst);
  const int cpr = cols / 8;  // 16-byte chunks per row
  for (int i = threadIdx.x; i < rows * cpr; i += kThreads) {
    const int m = i / cpr, c = i - m * cpr;
    cp_async_16(d + m * pitch + 16 * c, src + m * ld + 8 * c, true);
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  if (permute) {
    permute_rows(dst, rows, cols, pitch);
    __syncthreads();
  }
}

// The last phase of the persistent kernels (o with the attention output, down with h): for this
// CTA's `count` items of 8 output rows (item i: rows 8 (first + stride i) of the weight, staged
// at w_s + 8 i pw), x[m][n] = bf16(x + gate[n] * w_scale * (act[m] . w[n])), act: M rows of K
// staged at act_s (pitch px). Each x element is read and written by one thread.
template <bool W8>
__device__ __forceinline__ void residual_items(uint32_t w_s, int pw, uint32_t act_s, int px, int K,
                                               int M, int first, int stride, int count,
                                               float w_scale, const Mat& gate, __nv_bfloat16* x,
                                               int64_t ldx, float* red, float* sum) {
  for (int i = 0; i < count; ++i) {
    item_product<W8>(w_s + i * 8 * pw, act_s, pw, px, K, M, true, red, sum);
    if (threadIdx.x < 8 * 16) {
      const int r = threadIdx.x >> 4, m = threadIdx.x & 15;
      if (m < M) {
        const int n = (first + stride * i) * 8 + r;
        __nv_bfloat16* p = x + m * ldx + n;
        const float g = gate.p ? load(gate, 0, n) : 1.f;
        *p = __float2bfloat16_rn(__bfloat162float(*p) + g * (sum[r * 16 + m] * w_scale));
      }
    }
  }
}

// x rows [M, D] (bf16 in global memory, row stride ldx) -> their norm as bf16 rows at xs
// (pitch px bytes) in shared memory: x * inv_rms * scale (RMSNorm, scale = 1 + w) or
// x * inv_rms * (1 + scale) + shift (adaRMS), fp32 math and one rounding, inv_rms summed in the
// skinny GEMM prologue's order. permute: then in the FP8 kernels' x order (permute_x8).
// After the predecessor kernel (reads x); the whole CTA; ends with a barrier.
__device__ __forceinline__ void stage_norm_rows(unsigned char* xs, int px, const __nv_bfloat16* x,
                                                int64_t ldx, int M, int D, const Mat& scale,
                                                const Mat& shift, bool ada, float eps,
                                                float* inv_rms, bool permute) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  stage_rows(xs, px, x, ldx, M, D, false);
  for (int m = warp; m < M; m += kWarps) {
    float ss = 0.f;
    for (int k = 8 * lane; k < D; k += 8 * 32) {
      const uint4 v = *reinterpret_cast<const uint4*>(xs + m * px + 2 * k);
      const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float lo = __uint_as_float(w[e] << 16), hi = __uint_as_float(w[e] & 0xffff0000u);
        ss += lo * lo;
        ss += hi * hi;
      }
    }
    ss = warp_sum(ss);
    if (lane == 0) inv_rms[m] = 1.f / sqrtf(ss / static_cast<float>(D) + eps);
  }
  __syncthreads();
  for (int i = tid; i < M * D; i += kThreads) {
    const int m = i / D, k = i - m * D;
    __nv_bfloat16* p = reinterpret_cast<__nv_bfloat16*>(xs + m * px) + k;
    const float v = __bfloat162float(*p) * inv_rms[m];
    const float sc = load(scale, 0, k);
    *p = __float2bfloat16_rn(ada ? v * (1.f + sc) + load(shift, 0, k) : v * sc);
  }
  __syncthreads();
  if (permute) {
    permute_rows(xs, M, D, px);
    __syncthreads();
  }
}

}  // namespace frt::cuda::persistent
