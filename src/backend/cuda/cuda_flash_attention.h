// The tensor-core flash-attention path of CudaBackend::attention (cuda_flash_attention.cu):
// which calls it takes, and process-wide hooks for tests and benchmarks (never for model code).
// CudaBackend::attention calls CudaBackend::attention_flash after its entry checks; shapes the
// fast kernel does not take (f32 operands, head_dim not a multiple of 8 or > 256, misaligned
// views) run on the correct-first kernel of cuda_attention.cu.
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
// splits (clamped to [1, key tiles] and to the scratch) instead of the planner's choice.
// disable_pdl: launch the flash kernels (split and combine) without programmatic dependent
// launch, whatever CudaBackend::pdl_enabled() says.
struct FlashAttentionOverride {
  bool disable = false;
  int splits = 0;
  bool disable_pdl = false;
};
void set_flash_attention_override(const FlashAttentionOverride& o);

// What the flash path did since the process started (tests check routing with it).
struct FlashAttentionStats {
  uint64_t launches = 0;  // calls that ran the flash kernel
  int last_splits = 0;    // key splits of the latest such call (1: no combine step)
  int last_block_n = 0;   // keys per shared-memory tile of the latest call
  int last_head_dim_pad = 0;
};
FlashAttentionStats flash_attention_stats();

}  // namespace frt
