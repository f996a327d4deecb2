// Benchmark of the Pi0.5 action expert's skinny GEMMs: the skinny weight-streaming kernel
// (src/backend/cuda/cuda_skinny_gemm.cu, run through skinny_gemm()) against cuBLASLt (linear()
// with routing off; the f32-input action_in falls to the plain fallback kernel there).
// Per case (qkv 1024->2560, o 2048->1024, gate_up 1024->8192, down 4096->1024, action in/out,
// at M = 10, 32, 50, 64):
//  1. check: skinny vs cuBLASLt on the same random inputs (cosine, max abs error);
//  2. time: each path (skinny with and without programmatic dependent launch, cuBLASLt) as a
//     CUDA graph of 200 launches rotating over >= 4 weight copies (and
//     >= 160 MB of them, so L2 never serves weights), replayed 20 times; per-launch us = replay
//     time / 200 (median and min), weight GB/s = N*K*2 bytes / us, and % of the device-to-device
//     copy bandwidth measured here (1 GiB cudaMemcpyAsync, bytes read + written).
//  3. the 72 GEMMs of one denoising step (18 layers, each with its own weights, 0.6 GB) as one
//     graph at M = 10 and 50: time per step for all-skinny, all-cuBLASLt and linear() as it
//     routes today (skinny_gemm_would_handle).
// Prints a table and one CSV line per case ("csv,..." / "csv_step,...").
// Run: build/bench_linear_cuda [--only NAME M]  (exits 0 with a note when no usable GPU is
// present; --only runs one case, e.g. under ncu)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_skinny_gemm.h"
#include "bench_cuda_common.h"
#include "core/status.h"
#include "core/tensor.h"

namespace {
namespace bench = frt::bench;
using frt::Activation;
using frt::DType;

constexpr int kLaunchesPerGraph = 200;
constexpr int kReplays = 20;

struct Shape {
  const char* name;
  int64_t K, N;
  DType xt, yt;
  bool bias;
};

void* device_random(size_t n, DType dtype, float r, uint64_t seed) {
  const std::vector<uint8_t> host = bench::random_bytes(n, dtype, r, seed);
  void* p = nullptr;
  BENCH_CHECK(cudaMalloc(&p, host.size()));
  BENCH_CHECK(cudaMemcpy(p, host.data(), host.size(), cudaMemcpyHostToDevice));
  return p;
}

frt::Tensor view(void* p, DType dtype, int64_t rows, int64_t cols) {
  return frt::make_view(p, dtype, frt::Device::kCuda, {rows, cols});
}

struct Timing {
  double median_us = 0, min_us = 0;
};

// `launch(i)` issues launch i of the rotation; captured `launches` times into one graph and
// replayed (3 eager launches first, 1 untimed replay, kReplays timed); returns the time per launch.
template <typename Fn>
Timing time_graph(cudaStream_t stream, int launches, Fn&& launch) {
  const std::vector<double> us =
      bench::time_graph_replays(stream, {launches, 3, 1, 0, kReplays}, launch);
  return {bench::median(us), *std::min_element(us.begin(), us.end())};
}

std::vector<float> to_host_f32(const void* p, DType dtype, size_t n) {
  std::vector<uint8_t> bytes(n * frt::dtype_size(dtype));
  BENCH_CHECK(cudaMemcpy(bytes.data(), p, bytes.size(), cudaMemcpyDeviceToHost));
  std::vector<float> out(n);
  frt::convert_to_f32(bytes.data(), dtype, out.data(), n);
  return out;
}

void run_case(frt::CudaBackend& be, const Shape& s, int64_t M, double copy_gbps) {
  const int64_t K = s.K, N = s.N;
  const size_t w_bytes = static_cast<size_t>(N * K) * 2;
  const int copies = bench::rotation_copies(w_bytes);
  const float wr = 2.f / std::sqrt(static_cast<float>(K));
  char* w_all = nullptr;
  BENCH_CHECK(cudaMalloc(&w_all, w_bytes * copies));
  {
    const std::vector<uint8_t> host =
        bench::random_bytes(static_cast<size_t>(N * K), DType::kBF16, wr, 1);
    BENCH_CHECK(cudaMemcpy(w_all, host.data(), w_bytes, cudaMemcpyHostToDevice));
    for (int c = 1; c < copies; ++c)
      BENCH_CHECK(cudaMemcpy(w_all + c * w_bytes, w_all, w_bytes, cudaMemcpyDeviceToDevice));
  }
  void* x = device_random(static_cast<size_t>(M * K), s.xt, 1.f, 2);
  void* bias = s.bias ? device_random(static_cast<size_t>(N), DType::kF32, 0.5f, 3) : nullptr;
  void *y_sk = nullptr, *y_lt = nullptr;
  const size_t y_bytes = static_cast<size_t>(M * N) * frt::dtype_size(s.yt);
  BENCH_CHECK(cudaMalloc(&y_sk, y_bytes));
  BENCH_CHECK(cudaMalloc(&y_lt, y_bytes));
  // NaN poison: an unwritten element fails the check.
  BENCH_CHECK(cudaMemset(y_sk, 0xFF, y_bytes));
  BENCH_CHECK(cudaMemset(y_lt, 0xFF, y_bytes));

  const frt::Tensor xt = view(x, s.xt, M, K);
  const frt::Tensor bt = bias ? view(bias, DType::kF32, 1, N) : frt::Tensor{};
  const frt::Tensor* bp = bias ? &bt : nullptr;
  auto w_copy = [&](int i) { return view(w_all + (i % copies) * w_bytes, DType::kBF16, N, K); };
  const frt::Tensor ysk = view(y_sk, s.yt, M, N), ylt = view(y_lt, s.yt, M, N);

  // 1. check skinny (run directly) against cuBLASLt (linear() with routing off) on copy 0.
  be.set_skinny_gemm_enabled(true);
  const bool routed = frt::skinny_gemm_would_handle(be, ysk, xt, w_copy(0), bp);
  frt::skinny_gemm(be, ysk, xt, w_copy(0), bp, Activation::kNone, false);
  be.set_skinny_gemm_enabled(false);
  be.linear(ylt, xt, w_copy(0), bp, Activation::kNone, false);
  be.synchronize();
  const std::vector<float> a = to_host_f32(y_sk, s.yt, M * N), b = to_host_f32(y_lt, s.yt, M * N);
  const bench::Agreement ag = bench::agreement(a, b);
  const double cos = ag.cos, max_abs = ag.max_abs, max_ref = ag.max_ref;
  const bool finite = ag.finite;
  const bool ok = finite && cos >= 0.999 && max_abs <= 2e-2 * max_ref;

  // 2. time both paths.
  auto timed = [&](bool skinny, bool pdl = true) {
    be.set_skinny_gemm_enabled(false);
    be.set_skinny_gemm_pdl(pdl);
    return time_graph(be.stream(), kLaunchesPerGraph, [&](int i) {
      if (skinny)
        frt::skinny_gemm(be, ysk, xt, w_copy(i), bp, Activation::kNone, false);
      else
        be.linear(ylt, xt, w_copy(i), bp, Activation::kNone, false);
    });
  };
  const Timing sk = timed(true), sk_nopdl = timed(true, false), lt = timed(false);
  be.set_skinny_gemm_enabled(true);
  be.set_skinny_gemm_pdl(true);

  const double gbps_sk = static_cast<double>(w_bytes) / (sk.median_us * 1e-6) / 1e9;
  const double gbps_lt = static_cast<double>(w_bytes) / (lt.median_us * 1e-6) / 1e9;
  std::printf(
      "%-10s M=%-3lld K=%-5lld N=%-5lld | skinny %7.2f us (min %7.2f) %7.0f GB/s %5.1f%% "
      "(no PDL %7.2f) | cublasLt %7.2f us %7.0f GB/s | x%5.1f | cos=%.6f max_abs=%.3g%s%s\n",
      s.name, static_cast<long long>(M), static_cast<long long>(K), static_cast<long long>(N),
      sk.median_us, sk.min_us, gbps_sk, 100.0 * gbps_sk / copy_gbps, sk_nopdl.median_us,
      lt.median_us, gbps_lt, lt.median_us / sk.median_us, cos, max_abs, ok ? "" : "  CHECK FAILED",
      routed ? "  [linear() routes here]" : "");
  std::printf("           plan: %s; %d weight copies\n",
              frt::skinny_gemm_plan(be, M, N, K, s.xt).c_str(), copies);
  std::printf("csv,%s,%lld,%lld,%lld,%.3f,%.3f,%.1f,%.1f,%.3f,%.3f,%.1f,%.7f,%.4g,%d,%d\n", s.name,
              static_cast<long long>(M), static_cast<long long>(K), static_cast<long long>(N),
              sk.median_us, sk.min_us, gbps_sk, 100.0 * gbps_sk / copy_gbps, sk_nopdl.median_us,
              lt.median_us, gbps_lt, cos, max_abs, ok ? 1 : 0, routed ? 1 : 0);
  std::fflush(stdout);

  BENCH_CHECK(cudaFree(w_all));
  BENCH_CHECK(cudaFree(x));
  if (bias) BENCH_CHECK(cudaFree(bias));
  BENCH_CHECK(cudaFree(y_sk));
  BENCH_CHECK(cudaFree(y_lt));
}
// The 72 GEMMs of one denoising step (18 layers x qkv, o, gate_up, down, each layer with its own
// weights: the 0.6 GB the expert really streams per step) as one graph, skinny vs cuBLASLt.
void run_expert_step(frt::CudaBackend& be, int64_t M, double copy_gbps) {
  struct Gemm {
    int64_t K, N;
  };
  const Gemm gemms[4] = {{1024, 2560}, {2048, 1024}, {1024, 8192}, {4096, 1024}};
  constexpr int kLayers = 18;
  char* w[4];
  void *x[4], *y[4];
  size_t bytes[4], total = 0;
  for (int g = 0; g < 4; ++g) {
    const int64_t K = gemms[g].K, N = gemms[g].N;
    bytes[g] = static_cast<size_t>(N * K) * 2;
    total += kLayers * bytes[g];
    BENCH_CHECK(cudaMalloc(&w[g], kLayers * bytes[g]));
    const std::vector<uint8_t> host = bench::random_bytes(static_cast<size_t>(N * K), DType::kBF16,
                                                          2.f / std::sqrt(1.f * K), 10 + g);
    for (int l = 0; l < kLayers; ++l)
      BENCH_CHECK(cudaMemcpy(w[g] + l * bytes[g], host.data(), bytes[g], cudaMemcpyHostToDevice));
    x[g] = device_random(static_cast<size_t>(M * K), DType::kBF16, 1.f, 20 + g);
    BENCH_CHECK(cudaMalloc(&y[g], static_cast<size_t>(M * N) * 2));
  }
  int variant = 0;  // 0: cuBLASLt, 1: skinny, 2: skinny without PDL, 3: linear() as routed
  auto launch = [&](int i) {
    const int l = (i / 4) % kLayers, g = i % 4;
    const int64_t K = gemms[g].K, N = gemms[g].N;
    const frt::Tensor yt = view(y[g], DType::kBF16, M, N), xt = view(x[g], DType::kBF16, M, K);
    const frt::Tensor wt = view(w[g] + l * bytes[g], DType::kBF16, N, K);
    if (variant == 1 || variant == 2)
      frt::skinny_gemm(be, yt, xt, wt, nullptr, Activation::kNone, false);
    else
      be.linear(yt, xt, wt, nullptr, Activation::kNone, false);
  };
  double step_us[4];
  for (variant = 0; variant < 4; ++variant) {
    be.set_skinny_gemm_enabled(variant == 3);
    be.set_skinny_gemm_pdl(variant != 2);
    step_us[variant] = time_graph(be.stream(), 4 * kLayers, launch).median_us * 4 * kLayers;
  }
  be.set_skinny_gemm_enabled(true);
  be.set_skinny_gemm_pdl(true);
  const double gbps = static_cast<double>(total) / (step_us[1] * 1e-6) / 1e9;
  std::printf(
      "expert step GEMMs (18 layers x 4, %.2f GB of weights) M=%-3lld | skinny %8.1f us "
      "%6.0f GB/s %5.1f%% (no PDL %8.1f us) | cublasLt %8.1f us | linear() as routed %8.1f us\n",
      total / 1e9, static_cast<long long>(M), step_us[1], gbps, 100.0 * gbps / copy_gbps,
      step_us[2], step_us[0], step_us[3]);
  std::printf("csv_step,%lld,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f\n", static_cast<long long>(M),
              step_us[1], gbps, 100.0 * gbps / copy_gbps, step_us[2], step_us[0], step_us[3]);
  std::fflush(stdout);
  for (int g = 0; g < 4; ++g) {
    BENCH_CHECK(cudaFree(w[g]));
    BENCH_CHECK(cudaFree(x[g]));
    BENCH_CHECK(cudaFree(y[g]));
  }
}
}  // namespace

int main(int argc, char** argv) {
  // --only NAME M: one case (for profilers: ncu ./bench_linear_cuda --only qkv 10).
  const std::string only = argc >= 4 && std::string(argv[1]) == "--only" ? argv[2] : "";
  const int64_t only_m = only.empty() ? 0 : std::atoll(argv[3]);
  std::string why;
  if (!frt::cuda_available(&why)) {
    std::printf("bench_linear_cuda: no usable GPU (%s); nothing timed\n", why.c_str());
    return 0;
  }
  try {
    std::unique_ptr<frt::Backend> owner = frt::make_cuda_backend(0);
    auto& be = dynamic_cast<frt::CudaBackend&>(*owner);
    cudaDeviceProp prop{};
    BENCH_CHECK(cudaGetDeviceProperties(&prop, be.device_index()));
    const double copy_gbps = bench::copy_bandwidth(be.stream(), 12);
    std::printf("device: %s, %d SMs, L2 %d MB; copy bandwidth (read + write) %.0f GB/s\n",
                prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, copy_gbps);
    std::printf(
        "per launch: median of %d graph replays of %d launches; GB/s = weight bytes / "
        "time; %% = of the copy bandwidth\n",
        kReplays, kLaunchesPerGraph);
    std::printf(
        "csv,shape,M,K,N,skinny_us,skinny_min_us,skinny_GBps,skinny_pct_copy,skinny_no_pdl_us,"
        "cublaslt_us,cublaslt_GBps,cos,max_abs,check_ok,routed\n");
    const std::vector<Shape> shapes = {
        {"qkv", 1024, 2560, DType::kBF16, DType::kBF16, false},
        {"o_proj", 2048, 1024, DType::kBF16, DType::kBF16, false},
        {"gate_up", 1024, 8192, DType::kBF16, DType::kBF16, false},
        {"down", 4096, 1024, DType::kBF16, DType::kBF16, false},
        {"action_in", 32, 1024, DType::kF32, DType::kBF16, true},
        {"action_out", 1024, 32, DType::kBF16, DType::kF32, true},
    };
    if (!only.empty()) {
      for (const Shape& s : shapes)
        if (only == s.name) run_case(be, s, only_m, copy_gbps);
      return 0;
    }
    for (const Shape& s : shapes)
      for (int64_t M : {10, 32, 50, 64}) run_case(be, s, M, copy_gbps);
    std::printf(
        "csv_step,M,skinny_us,skinny_GBps,skinny_pct_copy,skinny_no_pdl_us,cublaslt_us,routed_"
        "us\n");
    for (int64_t M : {10, 50}) run_expert_step(be, M, copy_gbps);
  } catch (const frt::Error& e) {
    std::fprintf(stderr, "bench_linear_cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}
