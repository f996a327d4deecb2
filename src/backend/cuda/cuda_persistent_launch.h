// Host side of the persistent kernels (cuda_persistent.cuh; expert_attention, expert_mlp): the
// per-device facts they are planned with, operand checks they share, the base of their
// shared-memory layout and the cooperative launch. Host code; cuda_persistent_launch.cu.
// Covered by tests/gpu/test_cuda_expert_attention.cpp and tests/gpu/test_cuda_expert_mlp.cpp.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "core/tensor.h"

namespace frt::cuda {

// The shape the persistent kernels are written for, shared by their device code and the host
// that plans their grids and shared memory.
namespace persistent {
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kMaxRows = 16;  // x rows: two n8 tiles of the MMA
// Bytes after each staged row so the 8 rows one instruction reads fall on distinct banks: 16 for
// rows read by ldmatrix / 4-byte loads (weights, x of the bf16 kernels), 32 for x rows read with
// 8-byte loads (the FP8 kernels' permuted x).
constexpr int kRowPad = 16;
constexpr int kRowPadX8 = 32;
constexpr uint32_t kMaxTxBytes = (1u << 20) - 1;  // an mbarrier phase's transaction-count limit
}  // namespace persistent

struct PersistentDevice {
  int sms = 0;             // the grid: one CTA per SM
  int smem_optin = 0;      // shared memory one CTA may have
  bool sm90_code = false;  // an sm_90+ device and every kernel given was built for it
};
// Queried once per (device, first kernel); raises the kernels' shared-memory limit to the
// device's opt-in maximum where they can run. Thread-safe.
const PersistentDevice& persistent_device(int device, std::initializer_list<const void*> kernels,
                                          const char* op);

// A norm / gate vector of n F32 or BF16 elements on the device.
bool persistent_param_ok(const Tensor& t, int64_t n);
// BF16 rows (activations, KV cache) the kernels read and write with 16-byte accesses.
bool persistent_rows_ok(const Tensor& t);
// A weight of `dtype` (BF16, or F8E4M3 with its scale) the bulk copies can read row by row.
bool persistent_weight_ok(const Tensor& w, DType dtype);

// The layout every persistent kernel starts with (bytes): two mbarriers, inv_rms of up to
// kMaxRows x rows, the item product's cross-warp partials and reduced tile, then `x_rows`
// normalized x rows of `x_pitch` bytes; `next` is the first free (128-aligned) byte after them.
struct PersistentBase {
  int off_rms, off_red, off_sum, off_x;
  size_t next;
};
PersistentBase persistent_base(int x_rows, int x_pitch);
inline size_t align128(size_t v) { return (v + 127) & ~size_t{127}; }

// One launch of `grid` CTAs of 256 threads, cooperative (every CTA resident: a kernel with grid
// barriers needs it) or not, as a programmatic dependent when `pdl`; args: the kernel's one
// argument. Throws kCudaError naming `op` on failure.
void launch_persistent(const void* kernel, const void* args, int grid, size_t smem,
                       cudaStream_t stream, bool pdl, const char* op, bool cooperative);

}  // namespace frt::cuda
