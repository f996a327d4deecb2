// make_plan (cuda_skinny_gemm_plan.h): the skinny GEMM's launch shape for a call, plus the
// plan hooks of cuda_skinny_gemm.h (skinny_gemm_force_plan, skinny_gemm_plan) that benchmarks
// and tests use to pin and print it. Host code only; .cu for the shared argument header.
#include <algorithm>
#include <atomic>
#include <sstream>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_skinny_gemm.h"
#include "backend/cuda/cuda_skinny_gemm_args.cuh"
#include "backend/cuda/cuda_skinny_gemm_plan.h"

namespace frt {

namespace skinny {
namespace {

// Shared memory of a CTA: the x stage, reused by the partial tile.
size_t smem_bytes(int mt, int wk, int var, int xs_log2) {
  const size_t mp = 8 * static_cast<size_t>(mt);
  const size_t stage = (var == kVarXf32 ? 2 : 1) * mp * ((size_t{2} << xs_log2) + 64);
  const size_t part = static_cast<size_t>(wk) * mp * (kTileRows / wk + 4) * sizeof(float);
  return std::max(stage, part);
}

// Largest dynamic shared memory a CTA may ask for: two CTAs per SM, at most 72 KB each.
constexpr int kSmemCap = 72 * 1024;
// inv_rms of the norm prologues: one float per x row, after the stage / partial-tile area.
constexpr int kRmsBytes = static_cast<int>(kSkinnyMaxRows * sizeof(float));

struct DeviceShape {
  int sms = 0, major = 0, smem_per_cta = 0;  // smem_per_cta: what a CTA may use (2 per SM)
};

// SM count, compute-capability major and per-CTA shared memory of a device, queried once.
DeviceShape device_shape(int device) {
  const char* op = "linear (skinny)";
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cache[kMaxDevices][3];  // sms == 0: not yet queried
  const bool cached = device >= 0 && device < kMaxDevices;
  DeviceShape d;
  if (cached && cache[device][0].load(std::memory_order_acquire) > 0) {
    d.sms = cache[device][0].load(std::memory_order_relaxed);
    d.major = cache[device][1].load(std::memory_order_relaxed);
    d.smem_per_cta = cache[device][2].load(std::memory_order_relaxed);
    return d;
  }
  int per_sm = 0, optin = 0;
  FRT_CUDA_CHECK(op, cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, device));
  FRT_CUDA_CHECK(op, cudaDeviceGetAttribute(&d.major, cudaDevAttrComputeCapabilityMajor, device));
  FRT_CUDA_CHECK(
      op, cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device));
  FRT_CUDA_CHECK(op,
                 cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  d.smem_per_cta = std::min({kSmemCap, optin, per_sm / 2 - 1024});
  if (cached) {
    cache[device][1].store(d.major, std::memory_order_relaxed);
    cache[device][2].store(d.smem_per_cta, std::memory_order_relaxed);
    cache[device][0].store(d.sms, std::memory_order_release);  // last: marks the entry valid
  }
  return d;
}

int log2_floor(int64_t v) {
  int l = 0;
  while ((int64_t{2} << l) <= v) ++l;
  return l;
}

std::atomic<int> g_force_wk{0}, g_force_cluster{0};  // skinny_gemm_force_plan

int log2_ceil(int64_t v) {
  int l = 0;
  while ((int64_t{1} << l) < v) ++l;
  return l;
}

// The push reduction's receive area (MT <= 2 with a cluster, where it fits): one float per
// (rank, k slot, tile row, m) past everything else, 16-byte aligned.
Plan with_receive_area(Plan p, const DeviceShape& dev) {
  if (p.mt > 2 || p.cluster < 2) return p;
  const size_t off = (p.smem + 15) & ~size_t{15};
  const size_t bytes = static_cast<size_t>(p.wk) * 8 * p.mt * (kTileRows / p.wk) * sizeof(float);
  if (off + bytes > static_cast<size_t>(dev.smem_per_cta)) return p;
  p.recv_off = off;
  p.smem = off + bytes;
  return p;
}

}  // namespace

// Tile and split for a shape: enough CTAs to keep every SM streaming (about two per SM), rows
// per CTA as large as that allows (x is re-read once per row block), k-splits only as deep as
// needed and at least one weight batch each; x staged for the CTA's whole k-range when it fits.
// pro (a Prologue): norms stage whole x rows once when they fit (norm_full; else the stage
// leaves room for inv_rms).
// Wide weights (64-row blocks alone about fill the SMs, gate_up's N = 8192): 64 rows per CTA
// over the whole K, no split: each CTA streams one contiguous block. Measured (H100, M = 10,
// gate_up bf16 plain): 8.8 us against 12.5 for 128 rows x 4-way split (256 CTAs), 10.0 for a
// 2-way split; shorter row runs per CTA cost DRAM efficiency there.
Plan make_plan(const CudaBackend& be, int64_t M, int64_t N, int64_t K, int var, int pro) {
  const DeviceShape dev = device_shape(be.device_index());
  Plan p;
  p.mt = m_tiles_for(M);
  p.u = steps_for(p.mt, var);
  const int64_t wide_blocks = (N + kTileRows - 1) / kTileRows;
  const bool arch_clusters = dev.major >= 9;
  p.wk = wide_blocks * (arch_clusters ? kMaxCluster : 1) >= dev.sms ? 1 : 2;
  const bool wide = 2 * wide_blocks >= dev.sms - dev.sms / 8;
  if (wide) p.wk = 2;
  if (const int f = g_force_wk.load(std::memory_order_relaxed); f == 1 || f == 2) p.wk = f;
  // (kernel_has_clusters also raises the kernels' shared-memory limit: call it on every device)
  const bool built_for_clusters = kernel_has_clusters(p.mt, p.wk, var, dev.smem_per_cta);
  const bool clusters = arch_clusters && built_for_clusters;
  p.clusters = clusters;
  const int max_split = clusters ? kMaxCluster : 1;
  p.rows = kTileRows / p.wk;
  p.batch_k = step_k(var) * p.u * p.wk;
  p.blocks_n = (N + p.rows - 1) / p.rows;
  while (!wide && p.cluster < max_split &&
         p.blocks_n * 2 * p.cluster <= 2 * static_cast<int64_t>(dev.sms) &&
         K >= 2 * static_cast<int64_t>(p.cluster) * p.batch_k)
    p.cluster *= 2;
  if (const int f = g_force_cluster.load(std::memory_order_relaxed); f >= 1)
    p.cluster = std::min(f, max_split);
  const int64_t per_split = (K + p.cluster - 1) / p.cluster;
  p.ks = (per_split + p.batch_k - 1) / p.batch_k * p.batch_k;
  const bool norm = pro == kProRms || pro == kProAda;
  const int min_xs = log2_floor(p.batch_k) + 1;  // at least two batches (the loop takes pairs)
  if (norm) {  // whole rows, if they fit with inv_rms and scale / shift of the k-range
    const int xs = std::max(min_xs, log2_ceil(K));
    const size_t area = smem_bytes(p.mt, p.wk, var, xs);
    const size_t need = area + kRmsBytes + 2 * sizeof(float) * static_cast<size_t>(p.ks);
    if (need <= static_cast<size_t>(dev.smem_per_cta)) {
      p.norm_full = true;
      p.xs_log2 = xs;
      p.rms_off = area;
      p.pro_off = area + kRmsBytes;
      p.smem = need;
      return with_receive_area(p, dev);
    }
  }
  // x stage: a power of two >= two batches, covering ks if the shared memory allows.
  const int64_t planes_mp = (var == kVarXf32 ? 2 : 1) * 8 * static_cast<int64_t>(p.mt);
  const int64_t room = dev.smem_per_cta - (norm ? kRmsBytes : 0) - 64 * planes_mp;
  p.xs_log2 = min_xs;
  while ((int64_t{1} << p.xs_log2) < p.ks && (int64_t{2} << p.xs_log2) * 2 * planes_mp <= room)
    ++p.xs_log2;
  p.smem = p.rms_off = p.pro_off = smem_bytes(p.mt, p.wk, var, p.xs_log2);
  if (norm) p.smem += kRmsBytes;
  return with_receive_area(p, dev);
}

}  // namespace skinny

void skinny_gemm_force_plan(int wk, int cluster) {
  skinny::g_force_wk.store(wk, std::memory_order_relaxed);
  skinny::g_force_cluster.store(cluster, std::memory_order_relaxed);
}

std::string skinny_gemm_plan(const CudaBackend& be, int64_t M, int64_t N, int64_t K, DType x_dtype,
                             DType w_dtype) {
  const skinny::Plan p =
      skinny::make_plan(be, M, N, K, skinny::variant_of(x_dtype, w_dtype), skinny::kProNone);
  std::ostringstream os;
  os << "m_tiles=" << p.mt << " steps/batch=" << p.u << " rows/cta=" << p.rows
     << " k_split=" << p.cluster << (p.cluster > 1 ? " (cluster)" : "")
     << " ctas=" << p.blocks_n * p.cluster << " k/cta=" << p.ks << " k/batch=" << p.batch_k
     << " x_stage_k=" << (1 << p.xs_log2) << " smem=" << p.smem;
  return os.str();
}

}  // namespace frt
