// The cluster epilogue of the wide flash kernel (flash_wide_kernel<true>, sm_90+): the key splits
// of one (64 M rows, kv head) are the CTAs of one thread-block cluster, and their partials meet
// in distributed shared memory instead of global scratch + flash_combine_kernel. One launch, no
// scratch, deterministic. After its split-local flash pass each CTA
//   1. stores its partial in its own shared memory (the Q and K/V stages are free by then):
//      unnormalized O [64][kPitch] fp32 and (running max, sum) [64] per M row;
//   2. cluster barrier (arrive = release, wait = acquire): every peer's partial is visible;
//   3. combines rows split, split + S, ... (S = cluster size) from all S peers in rank order 0..S-1
//      (fixed order: the result does not depend on scheduling) and writes them as bf16;
//   4. cluster barrier again before exiting: a peer may still be reading this CTA's partial, and
//      an exited CTA's shared memory is gone.
// The combine is the arithmetic of flash_combine_kernel: out = sum_s 2^(m_s - M) O_s /
// sum_s 2^(m_s - M) l_s with M = max_s m_s; a split that saw no key of a row (whole split in the
// key gap, blind rows) has m = -inf, l = 0, O = 0 and weighs 0.
// Covered by tests/gpu/test_cuda_flash_attention.cpp (FlashAttention.ExpertCluster*) and
// tests/gpu/test_cuda_device_lengths.cpp.
#pragma once

#include "backend/cuda/cuda_flash_attention_common.cuh"

namespace frt::cuda::fa {

constexpr int kMaxCluster = 8;  // portable cluster size: no non-portable opt-in needed

// The partial tile in a CTA's shared memory. A row pitch of 256 + 8 floats puts the 8 rows g of
// a warp's float2 stores 8 banks apart (a pitch of 256 would make them all collide).
struct ClusterPartial {
  static constexpr int kPitch = 256 + 8;  // floats
  static constexpr uint32_t kOBytes = kBlockM * kPitch * 4;
  static constexpr uint32_t kBytes = kOBytes + kBlockM * 8;  // + (max, sum) per row
};

// Cluster barrier halves and distributed-shared-memory loads (PTX ISA 7.8, sm_90). Code of an
// older target traps: the host launches the cluster kernel only where its code is sm_90+.
__device__ __forceinline__ void cluster_barrier() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // arrive has release semantics (this CTA's earlier shared-memory accesses are ordered before
  // it), wait acquire semantics; .aligned: every thread of a warp executes the same barrier.
  asm volatile("barrier.cluster.arrive.aligned;\n\tbarrier.cluster.wait.aligned;" ::: "memory");
#else
  __trap();
#endif
}
// The shared::cluster address of `addr` (a shared-window address) in the CTA of rank `rank`.
__device__ __forceinline__ uint32_t cluster_map(uint32_t addr, int rank) {
  uint32_t r = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(r) : "r"(addr), "r"(rank));
#else
  __trap();
#endif
  return r;
}
__device__ __forceinline__ float2 ld_cluster_f2(uint32_t addr) {
  float2 v = make_float2(0.f, 0.f);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("ld.shared::cluster.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "r"(addr)
               : "memory");
#else
  __trap();
#endif
  return v;
}
__device__ __forceinline__ float4 ld_cluster_f4(uint32_t addr) {
  float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(addr)
               : "memory");
#else
  __trap();
#endif
  return v;
}

// Steps 1-4 above for the wide kernel (8 warps: row group wm = warp / 2, column half h): every
// thread of the CTA must call it (it has CTA and cluster barriers) after its last cp.async
// landed. `smem` is the kernel's 128-byte aligned shared-memory base; o / m_run / l_run are the
// warp's split-local state for rows wm * 16 + g (+ 8), columns h * 128 + 8 i + 2 t4 (+ 1), l_run
// already summed over the quad; `active`: the warp's rows exist (m0 + wm * 16 < m_total).
// blockIdx.x is the split and the cluster rank (cluster dims (S, 1, 1) over grid x = S).
template <int kOT, int kWarps>
__device__ __forceinline__ void cluster_combine(const FlashArgs& a, unsigned char* smem,
                                                const float (&o)[kOT][4], const float (&m_run)[2],
                                                const float (&l_run)[2], bool active, int m0,
                                                int kvh, int warp, int lane) {
  using P = ClusterPartial;
  static_assert(kOT == 16, "the wide kernel: 16 n8 tiles of O per column half");
  const int wm = warp >> 1, h = warp & 1, g = lane >> 2, t4 = lane & 3;
  float* const po = reinterpret_cast<float*>(smem);
  float2* const pml = reinterpret_cast<float2*>(smem + P::kOBytes);
  __syncthreads();  // every warp is done with Q and the K/V stages: the partial overwrites them
  if (active) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = wm * 16 + g + 8 * r;
#pragma unroll
      for (int i = 0; i < kOT; ++i)  // columns past head_dim hold 0 (zero-filled Q, K, V)
        *reinterpret_cast<float2*>(po + row * P::kPitch + h * 128 + i * 8 + 2 * t4) =
            make_float2(o[i][2 * r], o[i][2 * r + 1]);
      if (h == 0 && t4 == 0) pml[row] = make_float2(m_run[r], l_run[r]);
    }
  }
  __syncwarp();       // converged for the .aligned barrier
  cluster_barrier();  // every peer's partial is complete and visible

  // Rows split + S (warp + kWarps j) of this M tile; lane c combines columns 8c .. 8c + 7.
  const int split = blockIdx.x, S = a.splits, rows = min(kBlockM, a.m_total - m0);
  const int c = lane;
  const uint32_t po_s = smem_addr(po), pml_s = smem_addr(pml);
  for (int r = split + S * warp; r < rows; r += S * kWarps) {  // warp-uniform
    if (c * 8 >= a.d) continue;
    float2 ml[kMaxCluster];
    float4 ov[kMaxCluster][2];
    const uint32_t o_off = po_s + static_cast<uint32_t>(r * P::kPitch + c * 8) * 4;
#pragma unroll
    for (int s = 0; s < kMaxCluster; ++s) {  // every load in flight before the first use
      ml[s] = make_float2(-INFINITY, 0.f);
      ov[s][0] = ov[s][1] = make_float4(0.f, 0.f, 0.f, 0.f);
      if (s < S) {
        ml[s] = ld_cluster_f2(cluster_map(pml_s + r * 8, s));
        const uint32_t src = cluster_map(o_off, s);
        ov[s][0] = ld_cluster_f4(src);
        ov[s][1] = ld_cluster_f4(src + 16);
      }
    }
    float mx = -INFINITY;
#pragma unroll
    for (int s = 0; s < kMaxCluster; ++s) mx = fmaxf(mx, ml[s].x);
    // mx = -inf: no split saw a key of this row; every weight is then 0 and so is the output
    // (as flash_combine_kernel), never 2^(-inf + inf) = NaN.
    const float base = mx == -INFINITY ? 0.f : mx;
    float l = 0.f, acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int s = 0; s < kMaxCluster; ++s) {  // rank order: deterministic
      const float w = ex2(ml[s].x - base);  // ranks >= S and splits without keys: 0
      l += w * ml[s].y;
      acc[0] += w * ov[s][0].x;
      acc[1] += w * ov[s][0].y;
      acc[2] += w * ov[s][0].z;
      acc[3] += w * ov[s][0].w;
      acc[4] += w * ov[s][1].x;
      acc[5] += w * ov[s][1].y;
      acc[6] += w * ov[s][1].z;
      acc[7] += w * ov[s][1].w;
    }
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const int m = m0 + r, row = a.group.div(m), head = kvh * a.group.d + (m - row * a.group.d);
    const uint4 packed = make_uint4(
        pack_bf16x2(acc[0] * inv, acc[1] * inv), pack_bf16x2(acc[2] * inv, acc[3] * inv),
        pack_bf16x2(acc[4] * inv, acc[5] * inv), pack_bf16x2(acc[6] * inv, acc[7] * inv));
    *reinterpret_cast<uint4*>(a.out + row * a.ldo + static_cast<int64_t>(head) * a.d + c * 8) =
        packed;
  }
  __syncwarp();
  cluster_barrier();  // peers may still be reading this CTA's partial
}

}  // namespace frt::cuda::fa
