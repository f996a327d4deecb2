// The tensor-core flash-attention path of CudaBackend::attention (cuda_flash_attention.cu):
// which calls it takes, and process-wide hooks for tests and benchmarks (never for model code).
// CudaBackend::attention calls CudaBackend::attention_flash after its entry checks; shapes the
// fast kernel does not take (f32 operands, head_dim not a multiple of 8 or > 256, misaligned
// views) run on the correct-first kernel of cuda_attention.cu. Few-row calls split keys across
// CTAs: on sm_90+ as one thread-block cluster per (M tile, kv head) combining in distributed
// shared memory (one launch), elsewhere through global scratch and a combine kernel.
// Covered by tests/gpu/test_cuda_flash_attention.cpp; timed by bench/bench_attention_cuda.cpp.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "core/tensor.h"

namespace frt {

// Whether the flash kernel takes this call (operands already passed attention's entry checks):
// q/k/v/out BF16 on the device, head_dim a multiple of 8 and <= 256, every data pointer
// 16-byte aligned and every row stride a multiple of 8 elements. Pure: ignores the override.
bool flash_attention_would_handle(const Tensor& out, const Tensor& q, const Tensor& k,
                                  const Tensor& v, const AttentionParams& p);

// Tests / bench only. disable: every call runs the fallback kernel. splits > 0: that many key
// splits (clamped to [1, key tiles] and to the scratch) on the split + combine path (never the
// cluster path) instead of the planner's choice. disable_pdl: launch the flash kernels (split,
// combine, cluster) without programmatic dependent launch, whatever
// CudaBackend::pdl_enabled() says. cluster (head_dim > 80 only; ignored when splits > 0):
// 0 the planner decides; < 0 never the cluster path (the split + combine path as before it);
// > 0 the cluster path with that many key splits (clamped to [2, min(8, key tiles)]) wherever
// the device and the build have it (flash_attention_cluster_slots() > 0).
struct FlashAttentionOverride {
  bool disable = false;
  int splits = 0;
  bool disable_pdl = false;
  int cluster = 0;
};
void set_flash_attention_override(const FlashAttentionOverride& o);

// How many clusters of 8 wide CTAs the current device runs at once on the cluster path; 0: no
// cluster path here (needs an sm_90+ GPU and kernel code built for sm_90+). The planner takes it
// for calls of at most that many (M tile, kv head) pairs. Sets the device up on first use.
int flash_attention_cluster_slots();

// What the flash path did since the process started (tests check routing with it).
struct FlashAttentionStats {
  uint64_t launches = 0;          // calls that ran the flash kernel
  uint64_t cluster_launches = 0;  // ... of them on the cluster path (one launch, no combine)
  bool last_cluster = false;      // the latest such call ran the cluster path
  int last_splits = 0;    // key splits of the latest such call (1: no combine step; cluster
                          // path: the cluster size)
  int last_block_n = 0;   // keys per shared-memory tile of the latest call
  int last_head_dim_pad = 0;
};
FlashAttentionStats flash_attention_stats();

}  // namespace frt
