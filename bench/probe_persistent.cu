// Probe of the H100 facts a persistent "megakernel" design rests on: launch cost of kernel chains
// (plain vs PDL), HBM streaming through a PDL chain, grid-barrier cost, bulk-copy streaming across
// grid barriers and cluster occupancy. CUDA runtime + std only; CMake builds it, or by hand:
//   nvcc -std=c++20 -O3 -arch=sm_90a -o probe_persistent bench/probe_persistent.cu
// Prints `probe <name> <value> <unit>  # <explanation>` per fact (MB = MiB, GB/s = 1e9 B/s);
// graphs: median of 20 replays after 3 warm-ups; persistent kernels: of 10 launches after 1.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

constexpr int kThreads = 256;
constexpr int kLaunches = 1000;                                 // launches per graph (chains)
constexpr int kWarmup = 3, kReplays = 20, kTimedLaunches = 10;  // graph replays; single launches
constexpr int kBarriers = 2000, kPhases = 400;
constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kRingBytes = 160 * kMiB;  // > 3x the 50 MB L2: each ring buffer comes from HBM
constexpr uint32_t kBuf = 96 * 1024;       // one of the two shared-memory stage buffers
constexpr int kBarrierSmem = 120 * 1024;   // two don't fit one SM: 1 CTA per SM
constexpr int kClusterSmem = 100 * 1024;

void check(cudaError_t e, const char* call, int line) {
  if (e == cudaSuccess) return;
  std::fprintf(stderr, "probe_persistent:%d: %s failed: %s (%s)\n", line, call, cudaGetErrorName(e),
               cudaGetErrorString(e));
  std::exit(1);
}
#define CK(call) check((call), #call, __LINE__)  // any CUDA error ends the run (exit 1)

// Word i of the ring holds hash32(i): non-zero data, and the bulk-copy probe can check its reads.
__host__ __device__ __forceinline__ uint32_t hash32(uint32_t x) {
  x = (x ^ (x >> 16)) * 0x7feb352dU;
  x = (x ^ (x >> 15)) * 0x846ca68bU;
  return x ^ (x >> 16);
}

// sm_90 instructions (griddepcontrol, mbarrier tx counts, bulk copies) only exist there: other
// archs compile empty kernel bodies so a multi-arch build still compiles (it can't run the probe).
#if __CUDA_ARCH__ >= 900
#define DEV __device__ __forceinline__
constexpr uint32_t kChunk = 32 * 1024;  // bytes per bulk copy
DEV size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
// clang-format off
DEV void pdl_trigger() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
DEV void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
DEV void pdl_trigger_wait() { pdl_trigger(); pdl_wait(); }
DEV unsigned ld_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
DEV uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
DEV void mbar_init(uint32_t bar) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" :: "r"(bar) : "memory");
}
DEV void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;"
               :: "r"(bar), "r"(bytes) : "memory");
}
DEV void mbar_wait(uint32_t bar, uint32_t parity) {
  for (uint32_t done = 0; !done;)
    asm volatile("{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
                 "selp.u32 %0, 1, 0, p;\n\t}" : "=r"(done) : "r"(bar), "r"(parity) : "memory");
}
// 1D bulk copy global -> this CTA's shared memory; completion counted in bytes on `bar`.
DEV void bulk_g2s(uint32_t dst, const void* src, uint32_t n, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes"
               " [%0], [%1], %2, [%3];" :: "r"(dst), "l"(src), "r"(n), "r"(bar) : "memory");
}
// clang-format on

// Grid barrier: arrival counter + generation word. The generation is read BEFORE arriving, so
// the last arriver's increment can't be missed, and it changes only once all CTAs arrived, so
// it can't come back to my_gen while a CTA still waits (no ABA). Needs all CTAs co-resident.
template <bool kSleep>
DEV void grid_sync(unsigned* count, unsigned* gen) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned my_gen = ld_acquire(gen);
    __threadfence();  // the CTA's writes (gathered by __syncthreads) before the arrival
    if (atomicAdd(count, 1u) == gridDim.x - 1) {
      atomicExch(count, 0u);  // nobody arrives again before seeing the new generation
      __threadfence();        // acquires every arrival's writes; releases them with the reset
      atomicAdd(gen, 1u);
    } else {
      while (ld_acquire(gen) == my_gen)
        if constexpr (kSleep) __nanosleep(32);
    }
  }
  __syncthreads();
}

DEV uint32_t block_xor(uint32_t v) {  // every thread gets the CTA's XOR
  __shared__ uint32_t warp_acc[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v ^= __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) warp_acc[threadIdx.x >> 5] = v;
  __syncthreads();
  v = 0;
  for (int w = 0; w < kThreads / 32; ++w) v ^= warp_acc[w];
  return v;
}
#endif  // __CUDA_ARCH__ >= 900

__global__ void fill_kernel(uint32_t* p, size_t n) {
  const size_t stride = size_t{gridDim.x} * blockDim.x;
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n; i += stride)
    p[i] = hash32(static_cast<uint32_t>(i));
}

template <bool kPdl>
__global__ void __launch_bounds__(kThreads) empty_kernel(uint32_t* out, int i) {
#if __CUDA_ARCH__ >= 900
  if constexpr (kPdl) pdl_trigger_wait();
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<uint32_t>(i);
#endif
}

// Each CTA XORs a contiguous slice of src, 8 x 16 B loads in flight per thread.
template <bool kPdl>
__global__ void __launch_bounds__(kThreads)
    stream_kernel(const uint4* __restrict__ src, size_t n16, uint32_t* __restrict__ out) {
#if __CUDA_ARCH__ >= 900
  if constexpr (kPdl) pdl_trigger();
  const size_t per = (n16 + gridDim.x - 1) / gridDim.x;
  const size_t begin = per * blockIdx.x, end = min_sz(begin + per, n16);
  uint32_t acc = 0;
  for (size_t base = begin; base < end; base += 8 * kThreads) {
    uint4 v[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const size_t k = base + j * kThreads + threadIdx.x;
      v[j] = k < end ? __ldg(src + k) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) acc ^= v[j].x ^ v[j].y ^ v[j].z ^ v[j].w;
  }
  acc = block_xor(acc);
  if constexpr (kPdl) pdl_wait();  // the loads don't depend on the previous launch; the write does
  if (threadIdx.x == 0) out[blockIdx.x] = acc;
#endif
}

// `iters` grid barriers. check: each phase every CTA stamps its slot (double-buffered by phase
// parity, so a fast CTA's next stamp can't race CTA 0's check), CTA 0 verifies after the barrier.
template <bool kSleep>
__global__ void __launch_bounds__(kThreads)
    barrier_kernel(unsigned* bar, int iters, bool check, unsigned* slots, unsigned* errors) {
#if __CUDA_ARCH__ >= 900
  const unsigned C = gridDim.x;
  for (int p = 0; p < iters; ++p) {
    if (check && threadIdx.x == 0) slots[(p & 1) * C + blockIdx.x] = p;
    grid_sync<kSleep>(bar, bar + 32);
    if (check && blockIdx.x == 0)
      for (unsigned i = threadIdx.x; i < C; i += blockDim.x)
        if (slots[(p & 1) * C + i] != static_cast<unsigned>(p)) atomicAdd(errors, 1u);
  }
#endif
}

// Persistent streaming: phase p bulk-copies this CTA's slice of ring buffer p % nbuf into shared
// memory (pieces of <= kBuf, alternating between the two stages), thread 0 reads 3 words of each
// piece, then a grid barrier. kBefore: the next phase's first piece is issued before the barrier
// (overlapping it), else after it. Only thread 0 touches the stages and mbarriers.
template <bool kBefore>
__global__ void __launch_bounds__(kThreads, 1)
    persist_kernel(const uint8_t* __restrict__ ring, size_t buf_bytes, int nbuf, int phases,
                   unsigned* bar, uint32_t* out, unsigned* errors) {
#if __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) uint8_t stage[];  // 2 x kBuf
  __shared__ __align__(8) uint64_t mbar[2];
  const size_t per = (buf_bytes / gridDim.x) & ~size_t{15}, off = per * blockIdx.x;
  const size_t mine = blockIdx.x == gridDim.x - 1 ? buf_bytes - off : per;  // last: the rest
  const int np = static_cast<int>((mine + kBuf - 1) / kBuf);                // pieces per phase
  uint32_t acc = 0, bad = 0;
  // Piece g (counted over all phases) goes to stage g & 1; its ring offset and size:
  auto piece = [&](int g) {
    const size_t p = g / np, j = g % np;
    return make_ulonglong2(p % nbuf * buf_bytes + off + j * kBuf, min_sz(kBuf, mine - j * kBuf));
  };
  auto issue = [&](int g) {
    const auto [src, bytes] = piece(g);
    const uint32_t b = smem_u32(&mbar[g & 1]), dst = smem_u32(stage + (g & 1) * kBuf);
    // Our earlier generic-proxy reads of this stage come before the async-proxy writes.
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    mbar_expect_tx(b, bytes);
    for (uint32_t c = 0; c < bytes; c += kChunk)
      bulk_g2s(dst + c, ring + src + c, bytes - c < kChunk ? bytes - c : kChunk, b);
  };
  auto consume = [&](int g) {
    const auto [src, bytes] = piece(g);
    mbar_wait(smem_u32(&mbar[g & 1]), (g >> 1) & 1);  // the stage's (g >> 1)-th use
    const uint32_t* w = reinterpret_cast<const uint32_t*>(stage + (g & 1) * kBuf);
    const uint32_t n = bytes / 4, idx[3] = {0, n / 2, n - 1};
    for (uint32_t k : idx) {
      acc ^= w[k];
      bad += w[k] != hash32(static_cast<uint32_t>(src / 4) + k);
    }
  };
  if (threadIdx.x == 0) {
    for (uint64_t& m : mbar) mbar_init(smem_u32(&m));
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");  // seen by the copy unit
    issue(0);
  }
  for (int p = 0; p < phases; ++p) {
    if (threadIdx.x == 0) {
      for (int j = 0; j < np; ++j) {
        const int g = p * np + j;
        // Piece g + 1 goes to the other stage, whose last piece (g - 1) is consumed.
        if (j + 1 < np || (kBefore && p + 1 < phases)) issue(g + 1);
        consume(g);
      }
    }
    grid_sync<false>(bar, bar + 32);
    if (!kBefore && threadIdx.x == 0 && p + 1 < phases) issue((p + 1) * np);
  }
  if (threadIdx.x == 0) {  // every issued piece was consumed: no copy is in flight at exit
    out[blockIdx.x] = acc;
    if (bad) atomicAdd(errors, bad);
  }
#endif
}

__global__ void __launch_bounds__(kThreads) cluster_kernel(uint32_t* out) {
#if __CUDA_ARCH__ >= 900
  if (threadIdx.x == 0) out[blockIdx.x % 4096] = blockIdx.x;
#endif
}

// cudaLaunchKernelEx config with the attributes asked for (cfg points into attr: don't copy).
struct Launch {
  cudaLaunchConfig_t cfg;
  cudaLaunchAttribute attr[3]{};
  Launch(int grid, int smem, cudaStream_t s, bool pdl, bool coop = false, unsigned cluster = 0)
      : cfg{dim3(grid), dim3(kThreads), static_cast<size_t>(smem), s, attr, 0} {
    if (pdl)
      add(cudaLaunchAttributeProgrammaticStreamSerialization)
          .programmaticStreamSerializationAllowed = 1;
    if (coop) add(cudaLaunchAttributeCooperative).cooperative = 1;
    if (cluster) add(cudaLaunchAttributeClusterDimension).clusterDim = {cluster, 1, 1};
  }
  cudaLaunchAttributeValue& add(cudaLaunchAttributeID id) {
    attr[cfg.numAttrs].id = id;
    return attr[cfg.numAttrs++].val;
  }
};

// Median (upper, as the other benches report) of `reps` timed runs of enqueue() after `warm`
// untimed ones, in us.
template <class F>
double time_us(cudaStream_t s, int warm, int reps, F&& enqueue) {
  cudaEvent_t e0, e1;
  for (cudaEvent_t* e : {&e0, &e1}) CK(cudaEventCreate(e));
  std::vector<double> ms;
  for (int r = 0; r < warm + reps; ++r) {
    CK(cudaEventRecord(e0, s));
    enqueue();
    CK(cudaEventRecord(e1, s));
    CK(cudaEventSynchronize(e1));
    float t = 0;
    CK(cudaEventElapsedTime(&t, e0, e1));
    if (r >= warm) ms.push_back(t);
  }
  for (cudaEvent_t e : {e0, e1}) CK(cudaEventDestroy(e));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2] * 1000.0;
}

// Captures launch(i) for i < launches into one graph; median replay time in us per launch.
template <class F>
double graph_us(cudaStream_t s, int launches, F&& launch) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < launches; ++i) launch(i);
  CK(cudaStreamEndCapture(s, &graph));
  CK(cudaGraphInstantiate(&exec, graph, 0));
  const double us = time_us(s, kWarmup, kReplays, [&] { CK(cudaGraphLaunch(exec, s)); });
  CK(cudaGraphExecDestroy(exec));
  CK(cudaGraphDestroy(graph));
  return us / launches;
}

// Cooperative launches need every CTA resident at once; returns the CTAs per SM that fit.
int require_coresident(const void* fn, int ctas, int smem, int sms) {
  int per_sm = 0;
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, kThreads, smem));
  if (per_sm * sms >= ctas) return per_sm;
  std::fprintf(stderr, "probe_persistent: %d CTAs can't be co-resident (%d/SM)\n", ctas, per_sm);
  std::exit(1);
}

// Concatenates strings and integers.
std::string str(const std::string& s) { return s; }
std::string str(long long v) { return std::to_string(v); }
template <class... A>
std::string cat(const A&... a) {
  return (std::string() + ... + str(a));
}

// One result line: `probe <name> <value> <unit>  # <why...>`.
template <class... A>
void probe(const std::string& name, const std::string& value, const char* unit, const A&... why) {
  std::printf("probe %s %s %s  # %s\n", name.c_str(), value.c_str(), unit, cat(why...).c_str());
}
std::string fixed(double v, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace

int main() {
  CK(cudaSetDevice(0));
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  int clock_khz = 0;
  CK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
  std::string name = prop.name;
  std::replace(name.begin(), name.end(), ' ', '_');
  const int sms = prop.multiProcessorCount;
  probe("device", name, cat("sm_", prop.major, prop.minor).c_str(), "name, compute capability");
  probe("device_sms", cat(sms), "SMs", "multiprocessors");
  probe("device_l2", fixed(prop.l2CacheSize / double(kMiB), 1), "MiB", "L2 cache size");
  probe("device_clock", cat(clock_khz / 1000), "MHz", "peak SM clock (cudaDevAttrClockRate)");
  if (prop.major < 9) {
    std::fprintf(stderr, "probe_persistent: needs sm_90 or newer (griddepcontrol, bulk copies)\n");
    return 1;
  }
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  uint8_t* ring = nullptr;
  unsigned* small = nullptr;
  CK(cudaMalloc(&ring, kRingBytes));
  CK(cudaMalloc(&small, 8192 * sizeof(unsigned)));
  // Per-CTA outputs, barrier (count at [0], generation at [32]: own lines), [0] barrier-check
  // and [1] bulk-copy-check error counts, barrier-check slots (0xff..: no phase number).
  unsigned *out = small, *bar = small + 4096, *errors = bar + 64, *slots = errors + 64;
  CK(cudaMemsetAsync(small, 0, 8192 * sizeof(unsigned), s));
  CK(cudaMemsetAsync(slots, 0xff, 4 * sms * sizeof(unsigned), s));
  fill_kernel<<<4 * sms, kThreads, 0, s>>>(reinterpret_cast<uint32_t*>(ring), kRingBytes / 4);
  CK(cudaGetLastError());
  CK(cudaStreamSynchronize(s));

  // 1. Launch cost of a chain of trivial kernels.
  for (bool pdl : {false, true}) {
    const double us = graph_us(s, kLaunches, [&](int i) {
      Launch l(sms, 0, s, pdl);
      CK(cudaLaunchKernelEx(&l.cfg, pdl ? empty_kernel<true> : empty_kernel<false>, out, i));
    });
    probe(cat("chain_empty_", pdl ? "pdl" : "plain"), fixed(us, 3), "us",
          "per launch, graph of 1000, 1 CTA/SM x 256 thr", pdl ? ", trigger + wait" : "");
  }

  // 2. HBM streaming through a chain of launches: launch i reads ring buffer i % nbuf.
  for (int mb : {4, 16}) {
    const size_t bytes = mb * kMiB;
    const int nbuf = static_cast<int>(kRingBytes / bytes);
    for (bool pdl : {false, true}) {
      const double us = graph_us(s, kLaunches, [&](int i) {
        const uint4* src = reinterpret_cast<const uint4*>(ring + (i % nbuf) * bytes);
        Launch l(2 * sms, 0, s, pdl);
        const auto fn = pdl ? stream_kernel<true> : stream_kernel<false>;
        CK(cudaLaunchKernelEx(&l.cfg, fn, src, bytes / 16, out));
      });
      const std::string n = cat("chain_stream_", pdl ? "pdl_" : "plain_", mb, "MB");
      probe(n, fixed(us, 3), "us", "per launch, graph of 1000, ring of ", nbuf, ", 2 CTA/SM",
            pdl ? ", loads before griddepcontrol.wait" : "");
      probe(n + "_bw", fixed(bytes / us / 1e3, 0), "GB/s", "read bandwidth of ", n);
    }
  }

  // 3. Grid barrier cost at 1 and 2 CTAs per SM, spinning with and without __nanosleep(32).
  for (auto fn : {barrier_kernel<false>, barrier_kernel<true>})
    CK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, kBarrierSmem));
  for (int per_sm : {1, 2}) {
    const int ctas = per_sm * sms, smem = per_sm == 1 ? kBarrierSmem : 0;
    for (bool sleep : {false, true}) {
      const auto fn = sleep ? barrier_kernel<true> : barrier_kernel<false>;
      const int fit = require_coresident(reinterpret_cast<const void*>(fn), ctas, smem, sms);
      Launch l(ctas, smem, s, false, true);
      CK(cudaLaunchKernelEx(&l.cfg, fn, bar, kBarriers, true, slots, errors));  // checked, untimed
      const double us = time_us(s, 1, kTimedLaunches, [&] {
        CK(cudaLaunchKernelEx(&l.cfg, fn, bar, kBarriers, false, slots, errors));
      });
      probe(cat("grid_barrier_", ctas, "cta", sleep ? "_sleep32" : ""), fixed(us / kBarriers, 3),
            "us", "per barrier, 2000 in 1 launch, ", smem / 1024, " KB smem, ", fit, " CTA/SM fit");
    }
  }
  unsigned errs[2];
  CK(cudaMemcpy(errs, errors, sizeof errs, cudaMemcpyDeviceToHost));
  probe("grid_barrier_check", cat(errs[0]), "errors", "slot mismatches (must be 0)");

  // 4. Bulk-copy streaming across grid barriers, 1 CTA per SM.
  constexpr int kStageSmem = 2 * kBuf;
  for (auto fn : {persist_kernel<false>, persist_kernel<true>})
    CK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, kStageSmem));
  require_coresident(reinterpret_cast<const void*>(persist_kernel<true>), sms, kStageSmem, sms);
  for (int mb : {4, 16}) {
    const size_t bytes = mb * kMiB;
    const int nbuf = static_cast<int>(kRingBytes / bytes);
    for (bool before : {false, true}) {
      const auto fn = before ? persist_kernel<true> : persist_kernel<false>;
      Launch l(sms, kStageSmem, s, false, true);
      const double us = time_us(s, 1, kTimedLaunches, [&] {
        CK(cudaLaunchKernelEx(&l.cfg, fn, ring, bytes, nbuf, kPhases, bar, out, errors + 1));
      });
      const char* v = before ? "before" : "after";
      const std::string n = cat("persistent_stream_", mb, "MB_", v);
      probe(n, fixed(us / kPhases, 3), "us", "per phase: cp.async.bulk ring of ", nbuf,
            " + grid barrier, next copy issued ", v, " it");
      probe(n + "_bw", fixed(bytes / (us / kPhases) / 1e3, 0), "GB/s", "bytes / time per phase");
    }
  }
  CK(cudaMemcpy(errs, errors, sizeof errs, cudaMemcpyDeviceToHost));
  probe("persistent_stream_check", cat(errs[1]), "errors",
        "copied words unlike the source (must be 0)");

  // 5. Cluster occupancy at 256 threads + 100 KB smem; cooperative launches with clusters.
  CK(cudaFuncSetAttribute(cluster_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                          kClusterSmem));
  int max_clusters[9] = {};
  for (int n : {1, 2, 4, 8}) {  // n <= 8 is portable: no NonPortableClusterSizeAllowed needed
    Launch l(n * sms, kClusterSmem, s, false, false, n);
    CK(cudaOccupancyMaxActiveClusters(&max_clusters[n], cluster_kernel, &l.cfg));
    probe(cat("max_active_clusters_", n), cat(max_clusters[n]), "clusters", "of ", n,
          " CTAs, 256 thr + 100 KB smem each");
  }
  for (int n : {2, 8}) {
    Launch l(max_clusters[n] * n, kClusterSmem, s, false, true, n);
    cudaError_t e = cudaLaunchKernelEx(&l.cfg, cluster_kernel, out);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s);
    if (e != cudaSuccess) (void)cudaGetLastError();  // a refusal is a result, not a failure
    probe(cat("cooperative_cluster_launch_", n), e == cudaSuccess ? "ok" : cudaGetErrorName(e),
          "status", "grid ", max_clusters[n] * n, ": ", cudaGetErrorString(e));
  }

  CK(cudaDeviceSynchronize());  // the process exit frees the buffers
  return 0;
}
