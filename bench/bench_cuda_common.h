// Helpers shared by the standalone CUDA micro-benchmarks (bench/*_cuda.cpp): a CUDA error check
// that exits, the median, the device-to-device copy bandwidth that weight-streaming kernels are
// measured against, graph timing (capture N launches into one CUDA graph, replay it, time the
// replays with events) and random inputs. Header-only: CMakeLists.txt builds every
// bench/*_cuda.cpp as its own executable and has no library for benches to share.
// Each bench keeps its own measurement protocol (warm-ups, replays, launches per graph): the
// parameters below say what it is, so numbers stay comparable with earlier runs of that bench.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/tensor.h"

namespace frt::bench {

// A failed CUDA call ends the bench: a partial timing table is worse than none.
inline void check_cuda(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return;
  std::fprintf(stderr, "%s:%d: %s failed: %s\n", file, line, call, cudaGetErrorString(e));
  std::exit(1);
}
#define BENCH_CHECK(call) ::frt::bench::check_cuda((call), #call, __FILE__, __LINE__)

// Upper median (v[n / 2] of the sorted samples): what every bench has always reported.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Device-to-device copy bandwidth in GB/s (bytes read plus bytes written): the roofline that
// weight-streaming GEMMs are reported against. Copies 1 GiB `iterations` times on `stream`; the
// first two copies are warm-ups, the median of the rest counts.
inline double copy_bandwidth(cudaStream_t stream, int iterations) {
  const size_t bytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  BENCH_CHECK(cudaMalloc(&a, bytes));
  BENCH_CHECK(cudaMalloc(&b, bytes));
  BENCH_CHECK(cudaMemsetAsync(a, 1, bytes, stream));
  cudaEvent_t e0, e1;
  BENCH_CHECK(cudaEventCreate(&e0));
  BENCH_CHECK(cudaEventCreate(&e1));
  std::vector<double> ms;
  for (int i = 0; i < iterations; ++i) {
    BENCH_CHECK(cudaEventRecord(e0, stream));
    BENCH_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream));
    BENCH_CHECK(cudaEventRecord(e1, stream));
    BENCH_CHECK(cudaEventSynchronize(e1));
    float t = 0;
    BENCH_CHECK(cudaEventElapsedTime(&t, e0, e1));
    if (i >= 2) ms.push_back(t);
  }
  BENCH_CHECK(cudaEventDestroy(e0));
  BENCH_CHECK(cudaEventDestroy(e1));
  BENCH_CHECK(cudaFree(a));
  BENCH_CHECK(cudaFree(b));
  return 2.0 * static_cast<double>(bytes) / (median(ms) * 1e-3) / 1e9;
}

// Weight rotation: a benchmark that calls a GEMM over and over cycles through copies of its
// weights totalling more than 3x the 50 MB L2, so no call is served from L2.
constexpr size_t kMinRotationBytes = size_t{160} << 20;
inline int rotation_copies(size_t bytes_per_copy) {
  return static_cast<int>(
      std::max<size_t>(4, (kMinRotationBytes + bytes_per_copy - 1) / bytes_per_copy));
}

// A device tensor's values as f32 (host copy).
inline std::vector<float> read_f32(Backend& be, const Tensor& t) {
  std::vector<uint8_t> bytes(t.nbytes());
  be.copy_to_host(bytes.data(), t, bytes.size());
  std::vector<float> out(static_cast<size_t>(t.numel()));
  convert_to_f32(bytes.data(), t.dtype, out.data(), out.size());
  return out;
}

// How closely `got` follows `ref` (same length): cosine, max abs difference, max |ref|, and
// whether every value was finite.
struct Agreement {
  double cos = 0, max_abs = 0, max_ref = 0;
  bool finite = true;
};
inline Agreement agreement(const std::vector<float>& got, const std::vector<float>& ref) {
  Agreement a;
  double dot = 0, ng = 0, nr = 0;
  for (size_t i = 0; i < got.size() && i < ref.size(); ++i) {
    a.finite = a.finite && std::isfinite(got[i]) && std::isfinite(ref[i]);
    dot += static_cast<double>(got[i]) * ref[i];
    ng += static_cast<double>(got[i]) * got[i];
    nr += static_cast<double>(ref[i]) * ref[i];
    a.max_abs = std::max(a.max_abs, static_cast<double>(std::fabs(got[i] - ref[i])));
    a.max_ref = std::max(a.max_ref, static_cast<double>(std::fabs(ref[i])));
  }
  a.cos = dot / std::sqrt(ng * nr);
  return a;
}

// How a graph is timed. Launch overhead is what the model avoids by replaying graphs, so the
// benches time graph replays too; per-launch time = replay time / launches_per_graph.
struct GraphTiming {
  int launches_per_graph;  // launch(i), i = 0 .. n-1, captured into one graph
  int eager_launches;      // launch(i), i < n, run eagerly before capture (lazy setup, module
                           // load and plans stay out of the graph), then a stream sync
  int warmup_replays;      // untimed replays, issued back to back before the timed ones
  int discarded_replays;   // replays timed like the rest and then dropped
  int timed_replays;       // replays whose times are returned
};

// The expert-op benchmarks' timing: graphs of 100 calls cycling over the weight rotation, 3
// eager calls first, 1 warm-up replay, 20 timed replays.
inline constexpr GraphTiming kRotatedCalls{100, 3, 1, 0, 20};

// Microseconds per launch of each timed replay of a graph of `t.launches_per_graph` calls of
// `launch(i)` on `stream` (the stream the launches are issued on). Each replay: event, graph
// launch, event, event sync.
template <typename Launch>
std::vector<double> time_graph_replays(cudaStream_t stream, const GraphTiming& t, Launch&& launch) {
  for (int i = 0; i < t.eager_launches; ++i) launch(i);
  if (t.eager_launches > 0) BENCH_CHECK(cudaStreamSynchronize(stream));
  cudaGraph_t graph = nullptr;
  BENCH_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < t.launches_per_graph; ++i) launch(i);
  BENCH_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  BENCH_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  for (int i = 0; i < t.warmup_replays; ++i) BENCH_CHECK(cudaGraphLaunch(exec, stream));
  cudaEvent_t e0, e1;
  BENCH_CHECK(cudaEventCreate(&e0));
  BENCH_CHECK(cudaEventCreate(&e1));
  std::vector<double> us;
  for (int r = 0; r < t.discarded_replays + t.timed_replays; ++r) {
    BENCH_CHECK(cudaEventRecord(e0, stream));
    BENCH_CHECK(cudaGraphLaunch(exec, stream));
    BENCH_CHECK(cudaEventRecord(e1, stream));
    BENCH_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    BENCH_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    if (r >= t.discarded_replays) us.push_back(1e3 * ms / t.launches_per_graph);
  }
  BENCH_CHECK(cudaGetLastError());
  BENCH_CHECK(cudaEventDestroy(e0));
  BENCH_CHECK(cudaEventDestroy(e1));
  BENCH_CHECK(cudaGraphExecDestroy(exec));
  BENCH_CHECK(cudaGraphDestroy(graph));
  return us;
}

// Uniform in [-r, r], never 0, as raw values of `dtype` (F32 or BF16), from a seeded xorshift:
// fast enough for 100s of MB of weights, and the same values for a seed on every run.
inline std::vector<uint8_t> random_bytes(size_t n, DType dtype, float r, uint64_t seed) {
  std::vector<uint8_t> out(n * dtype_size(dtype));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    float v = (static_cast<float>(s >> 40) / 16777216.f * 2.f - 1.f) * r;
    if (v == 0.f) v = r * 0.5f;
    if (dtype == DType::kF32) {
      std::memcpy(out.data() + 4 * i, &v, 4);
    } else {
      const uint16_t h = f32_to_bf16(v);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

// Backend tensors of uniform random values from one std::mt19937_64 stream (a bench's inputs
// depend on the order it makes them in). BF16 values are never 0 after rounding (a zero input
// hides errors in the kernels under test); F32 values are drawn as they come.
class RandomTensors {
 public:
  explicit RandomTensors(uint64_t seed) : rng_(seed) {}
  Tensor operator()(Backend& be, DType dt, int64_t rows, int64_t cols, float lo, float hi,
                    const char* what) {
    Tensor t = be.alloc(dt, {rows, cols}, what);
    std::uniform_real_distribution<float> dist(lo, hi);
    const size_t n = static_cast<size_t>(rows * cols);
    if (dt == DType::kBF16) {
      std::vector<uint16_t> h(n);
      for (uint16_t& x : h) {
        do x = f32_to_bf16(dist(rng_));
        while (bf16_to_f32(x) == 0.f);
      }
      be.copy_to_device(t, h.data(), n * 2);
    } else {
      std::vector<float> h(n);
      for (float& x : h) x = dist(rng_);
      be.copy_to_device(t, h.data(), n * 4);
    }
    return t;
  }

 private:
  std::mt19937_64 rng_;
};

// A GEMM weight [rows, cols] uploaded from random f32 values in [-2/sqrt(cols), 2/sqrt(cols)]
// (outputs of order 1), stored as the backend stores GEMM weights (bf16, or FP8 with a scale).
inline Tensor upload_random_weight(Backend& be, int64_t rows, int64_t cols, uint64_t seed,
                                   const std::string& name) {
  const float r = 2.f / std::sqrt(static_cast<float>(cols));
  const std::vector<uint8_t> b =
      random_bytes(static_cast<size_t>(rows * cols), DType::kF32, r, seed);
  HostTensor h(DType::kF32, {rows, cols});
  std::memcpy(h.data(), b.data(), b.size());
  return be.upload_weight(std::move(h), name, WeightUse::kGemm);
}
// w0 followed by copies - 1 device copies of it (sharing its FP8 scale): the weight rotation.
inline std::vector<Tensor> with_copies(Backend& be, const Tensor& w0, int copies) {
  std::vector<Tensor> all{w0};
  for (int c = 1; c < copies; ++c) {
    Tensor t = be.alloc(w0.dtype, {w0.rows(), w0.cols()}, "weight copy");
    t.quant = w0.quant;
    BENCH_CHECK(cudaMemcpy(t.data, w0.data, w0.nbytes(), cudaMemcpyDeviceToDevice));
    all.push_back(t);
  }
  return all;
}

// fn(backend, "bf16" | "fp8") for each weight precision the GPU runs (FP8 needs sm_89+: else a
// "fp8: skipped" line); a backend per precision, freed before the next (each holds its weights).
template <typename Fn>
void for_each_precision(Fn&& fn) {
  for (Precision p : {Precision::kBF16, Precision::kFP8}) {
    std::string why;
    if (p == Precision::kFP8 && !cuda_supports_fp8(0, &why)) {
      std::printf("fp8: skipped (%s)\n", why.c_str());
      continue;
    }
    std::unique_ptr<Backend> owner = make_cuda_backend(0, p);
    fn(dynamic_cast<CudaBackend&>(*owner), p == Precision::kFP8 ? "fp8" : "bf16");
  }
}

}  // namespace frt::bench
