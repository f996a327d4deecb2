// Host side of the tensor-core flash attention (kernels: cuda_flash_attention_kernels.cuh):
// which calls take it (flash_attention_would_handle), the key-split planner, the launches, and
// the test/bench hooks. CudaBackend::attention calls attention_flash after its entry checks.
//
// Work layout: for one kv head the M dimension is every (query row, q head of its group) pair, so
// the 8 MQA heads of Gemma share each K/V tile. grid = (M tiles of 64, sequences x kv heads, key
// splits); stacked sequences (AttentionParams::batch, SigLIP's views) share one launch.
// Key splits (flash-decoding) fill the GPU when M is small (the expert suffix: 80-408 rows):
// each CTA writes fp32 partials (unnormalized O, running max, sum) to the backend scratch and
// flash_combine_kernel merges them. Both launch as programmatic dependents (sm_90+,
// cuda_launch.cuh), so each launch overlaps the previous kernel's tail. No allocation, no
// synchronization: graph-capturable.
// Device-resident key gap (AttentionParams::key_valid): the launch depends only on Skv and
// key_gap_end; each CTA reads the valid length and skips the key tiles inside the gap.
// Covered by tests/gpu/test_cuda_flash_attention.cpp; timed by bench/bench_attention_cuda.cpp.
#include <cuda_bf16.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_flash_attention.h"
#include "backend/cuda/cuda_flash_attention_kernels.cuh"

namespace frt {

namespace {
using cuda::fa::FlashArgs;
using cuda::fa::kBlockM;
using cuda::fa::kMaxSplits;
using cuda::fa::Narrow;
using cuda::fa::Wide;
using bf16 = __nv_bfloat16;
constexpr float kLog2e = 1.4426950408889634f;

// ---- per-device setup, done lazily (cudaFuncSetAttribute is legal under stream capture) ----
struct DeviceInfo {
  int sms = 0;
  int ctas_per_sm[2] = {0, 0};  // [Narrow, Wide]; 0: the kernel does not fit the device
};

template <class C>
int setup_config(void (*kernel)(FlashArgs), int smem_optin) {
  if (C::kSmem > static_cast<size_t>(smem_optin)) return 0;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(C::kSmem)) != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it, the fallback kernel runs instead
    return 0;
  }
  int n = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, C::kThreads, C::kSmem) !=
      cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

const DeviceInfo& device_info(int device) {
  static std::mutex mu;
  static std::map<int, DeviceInfo> infos;  // node-based: references stay valid
  std::lock_guard<std::mutex> lock(mu);
  const auto it = infos.find(device);
  if (it != infos.end()) return it->second;
  const char* op = "attention (flash setup)";
  DeviceInfo info;
  int optin = 0;
  FRT_CUDA_CHECK(op, cudaDeviceGetAttribute(&info.sms, cudaDevAttrMultiProcessorCount, device));
  FRT_CUDA_CHECK(op, cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                            device));
  info.ctas_per_sm[0] = setup_config<Narrow>(cuda::fa::flash_narrow_kernel, optin);
  info.ctas_per_sm[1] = setup_config<Wide>(cuda::fa::flash_wide_kernel, optin);
  return infos.emplace(device, info).first->second;
}

size_t align256(size_t n) { return (n + 255) & ~size_t{255}; }

// Scratch of the split path: partial O [grid y][split][m][d] f32, then max/sum [..][m][2].
size_t split_scratch_bytes(int64_t rows_all, int splits, int d) {
  return align256(static_cast<size_t>(rows_all) * splits * d * sizeof(float)) +
         static_cast<size_t>(rows_all) * splits * 2 * sizeof(float);
}

struct Plan {
  int splits = 1;
  int keys_per_split = 0;
};

// Key splits by a cost model fitted to H100 timings (bench_attention_cuda --sweep), in us: the
// busiest SM runs ceil(CTAs / SMs) CTAs one after another (a second resident CTA hides little:
// the kernels are issue/latency bound), each taking tiles-per-split x tile_us; a split adds the
// combine (fixed ~3 us with its launch, ~0.08 us per split, partials at ~5 MB/us) and must fit
// in one wave of resident CTAs (a second wave measured far worse than the model). Tiles per
// split are equal, so no split is empty. The plan sees only Skv (a device-resident key gap is
// not known here); the kernels deal the visible tiles out to the planned splits.
Plan plan_splits(int64_t m_tiles_all, int skv, int block_n, double tile_us, int d, int sms,
                 int64_t resident, int64_t rows_all, size_t scratch_cap, int forced) {
  const int kt = (skv + block_n - 1) / block_n;
  auto make = [&](int s) {
    const int tps = (kt + s - 1) / s;
    return Plan{(kt + tps - 1) / tps, tps * block_n};
  };
  const int max_s = std::min(kt, kMaxSplits);
  auto fits = [&](int s) { return s == 1 || split_scratch_bytes(rows_all, s, d) <= scratch_cap; };
  if (forced > 0) {
    int s = std::clamp(forced, 1, max_s);
    while (s > 1 && !fits(s)) --s;
    return make(s);
  }
  Plan best = make(1);
  double best_cost = 1e300;
  for (int s0 = 1; s0 <= max_s; ++s0) {
    const Plan pl = make(s0);
    if (pl.splits != s0 || !fits(pl.splits)) continue;
    if (pl.splits > 1 && m_tiles_all * pl.splits > resident) break;
    const int s = pl.splits, tps = pl.keys_per_split / block_n;
    const double per_sm = std::ceil(static_cast<double>(m_tiles_all) * s / sms);
    double cost = per_sm * tps * tile_us;
    if (s > 1)
      cost += 3.0 + 0.08 * s + static_cast<double>(split_scratch_bytes(rows_all, s, d)) / 5e6;
    if (cost < best_cost) {
      best_cost = cost;
      best = pl;
    }
  }
  return best;
}

bool operand_ok(const Tensor& t) {
  return t.dtype == DType::kBF16 && t.device == Device::kCuda && t.data != nullptr &&
         reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && t.ld() % 8 == 0;
}

std::atomic<bool> g_disable{false};
std::atomic<int> g_force_splits{0};
std::atomic<bool> g_no_pdl{false};
std::atomic<uint64_t> g_launches{0};
std::atomic<int> g_last_splits{0}, g_last_block_n{0}, g_last_d_pad{0};

// Both kernels are programmatic dependents (cuda_launch.cuh) when `pdl`: the split kernel's
// launch overlaps the previous kernel's tail, the combine grid gets scheduled while the split
// grid drains; captured graphs keep the programmatic edges.
template <class C>
void launch(const char* op, void (*kernel)(FlashArgs), const FlashArgs& a, int m_tiles,
            const DeviceInfo& info, cudaStream_t stream, bool pdl) {
  pdl = pdl && !g_no_pdl.load(std::memory_order_relaxed);
  const dim3 grid(static_cast<unsigned>(m_tiles),
                  static_cast<unsigned>(a.num_kv_heads * a.batch), static_cast<unsigned>(a.splits));
  cuda::launch(stream, pdl, op, kernel, grid, dim3(C::kThreads), C::kSmem, a);
  if (a.splits > 1) {
    using cuda::fa::kCombineThreads;
    const int64_t threads =
        static_cast<int64_t>(a.num_kv_heads) * a.batch * a.m_total * (a.d / 4);
    const int64_t blocks = std::min<int64_t>((threads + kCombineThreads - 1) / kCombineThreads,
                                             int64_t{info.sms} * 16);
    cuda::launch(stream, pdl, op, cuda::fa::flash_combine_kernel,
                 dim3(static_cast<unsigned>(blocks)), dim3(kCombineThreads), 0, a);
  }
  g_launches.fetch_add(1, std::memory_order_relaxed);
  g_last_splits.store(a.splits, std::memory_order_relaxed);
  g_last_block_n.store(C::kBlockN, std::memory_order_relaxed);
  g_last_d_pad.store(C::kDPad, std::memory_order_relaxed);
}
}  // namespace

bool flash_attention_would_handle(const Tensor& out, const Tensor& q, const Tensor& k,
                                  const Tensor& v, const AttentionParams& p) {
  if (!operand_ok(out) || !operand_ok(q) || !operand_ok(k) || !operand_ok(v)) return false;
  if (p.num_q_heads <= 0 || p.num_kv_heads <= 0 || p.num_q_heads % p.num_kv_heads != 0 ||
      p.batch < 1 || int64_t{p.num_kv_heads} * p.batch > 65535)
    return false;
  if (p.head_dim < 8 || p.head_dim > Wide::kDPad || p.head_dim % 8 != 0) return false;
  if (!std::isfinite(p.scale) || p.scale == 0.f) return false;
  const int64_t D = p.head_dim, group = p.num_q_heads / p.num_kv_heads;
  if (q.rows() % p.batch != 0 || k.rows() % p.batch != 0) return false;
  const int64_t Sq = q.rows() / p.batch, Skv = k.rows() / p.batch;  // one sequence's
  if (q.cols() != p.num_q_heads * D || out.cols() != q.cols() || out.rows() != q.rows() ||
      k.cols() != p.num_kv_heads * D || v.cols() != k.cols() || v.rows() != k.rows())
    return false;
  if (Sq < 1 || Skv < 1 || Skv > INT_MAX / 2 || Sq * group > INT_MAX / 2) return false;
  if (p.blind_rows < 0 || p.blind_rows > Sq) return false;
  const int64_t hidden = p.blind_rows > 0 ? Sq - p.blind_rows : 0;
  return Skv - hidden >= 1;
}

void set_flash_attention_override(const FlashAttentionOverride& o) {
  g_disable.store(o.disable, std::memory_order_relaxed);
  g_force_splits.store(o.splits, std::memory_order_relaxed);
  g_no_pdl.store(o.disable_pdl, std::memory_order_relaxed);
}

FlashAttentionStats flash_attention_stats() {
  FlashAttentionStats s;
  s.launches = g_launches.load(std::memory_order_relaxed);
  s.last_splits = g_last_splits.load(std::memory_order_relaxed);
  s.last_block_n = g_last_block_n.load(std::memory_order_relaxed);
  s.last_head_dim_pad = g_last_d_pad.load(std::memory_order_relaxed);
  return s;
}

bool CudaBackend::attention_flash(Tensor out, Tensor q, Tensor k, Tensor v,
                                  const AttentionParams& p) {
  const char* op = "attention";
  if (g_disable.load(std::memory_order_relaxed) || !flash_attention_would_handle(out, q, k, v, p))
    return false;
  const DeviceInfo& info = device_info(device_);
  const bool small = p.head_dim <= Narrow::kDPad;
  if (info.ctas_per_sm[small ? 0 : 1] == 0) return false;  // does not fit this device

  FlashArgs a{};
  a.q = static_cast<const bf16*>(q.data);
  a.k = static_cast<const bf16*>(k.data);
  a.v = static_cast<const bf16*>(v.data);
  a.out = static_cast<bf16*>(out.data);
  a.ldq = q.ld();
  a.ldk = k.ld();
  a.ldv = v.ld();
  a.ldo = out.ld();
  const int Sq = static_cast<int>(q.rows() / p.batch);  // one sequence's rows
  a.skv = static_cast<int>(k.rows() / p.batch);
  a.batch = p.batch;
  a.seq_q = Sq;
  a.d = p.head_dim;
  const int group = p.num_q_heads / p.num_kv_heads;
  a.group = cuda::fa::make_fast_div(group);
  a.m_total = Sq * group;
  a.num_kv_heads = p.num_kv_heads;
  a.blind_rows = p.blind_rows;
  a.blind_keys = a.skv - (p.blind_rows > 0 ? Sq - p.blind_rows : 0);
  a.scale_log2 = p.scale * kLog2e;

  const int m_tiles = (a.m_total + kBlockM - 1) / kBlockM;
  const int block_n = small ? Narrow::kBlockN : Wide::kBlockN;
  const double tile_us = small ? 1.7 : 1.5;  // one key tile of one CTA (H100, measured)
  const int64_t resident = int64_t{info.sms} * info.ctas_per_sm[small ? 0 : 1];
  const int64_t rows_all = static_cast<int64_t>(a.m_total) * a.num_kv_heads * a.batch;
  const Plan plan = plan_splits(static_cast<int64_t>(m_tiles) * a.num_kv_heads * a.batch, a.skv,
                                block_n, tile_us, a.d, info.sms, resident, rows_all,
                                kScratchBytes, g_force_splits.load(std::memory_order_relaxed));
  a.splits = plan.splits;
  if (p.key_valid.data) {  // checked by attention's entry: i32 [1] on the device
    a.key_valid = static_cast<const int*>(p.key_valid.data);
    a.gap_end = p.key_gap_end;
  }
  if (a.splits > 1) {
    char* s = static_cast<char*>(scratch(split_scratch_bytes(rows_all, a.splits, a.d), op));
    a.part_o = reinterpret_cast<float*>(s);
    a.part_ml = reinterpret_cast<float*>(
        s + align256(static_cast<size_t>(rows_all) * a.splits * a.d * sizeof(float)));
  }
  if (small)
    launch<Narrow>(op, cuda::fa::flash_narrow_kernel, a, m_tiles, info, stream_, pdl_enabled_);
  else
    launch<Wide>(op, cuda::fa::flash_wide_kernel, a, m_tiles, info, stream_, pdl_enabled_);
  return true;
}

}  // namespace frt
