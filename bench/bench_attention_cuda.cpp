// Times CUDA attention at Pi0.5's shapes: the tensor-core flash kernel (cuda_flash_attention.cu)
// against the correct-first CUDA-core kernel (cuda_attention.cu) it replaces. Per case: run both
// once on random non-zero bf16 inputs and compare them (cosine, max |new - old|, relative to
// max |old|); then time each inside a CUDA graph of 20 back-to-back calls, replayed 15 times
// (300 calls) after 3 warm-up replays, with CUDA events; report the median per call in us, the
// achieved TFLOP/s and its share of the device's dense bf16 tensor-core peak (SMs x clock x
// FLOP/clk/SM of the architecture), plus one CSV line per case.
// Inputs stay in L2 between calls (as in the model, where the previous kernel just wrote them).
// Run: build/bench_attention_cuda [--splits N]   (N > 0 forces N key splits on the flash path)
//      build/bench_attention_cuda --sweep          (flash time per forced split count)
//      build/bench_attention_cuda --profile        (one eager flash run per case, for ncu)
//      --no-pdl: launch the split combine step without programmatic dependent launch
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_flash_attention.h"
#include "core/status.h"
#include "core/tensor.h"
#include "bench_cuda_common.h"

namespace {
using namespace frt;

constexpr int kCallsPerGraph = 20;
constexpr int kWarmupReplays = 3;
constexpr int kTimedReplays = 15;

// One attention call of a case (views into buffers the case owns).
struct Call {
  Tensor out, q, k, v;
  AttentionParams p;
};

struct Case {
  std::string name;
  std::vector<Call> calls;  // one "case" = these calls in order (SigLIP: 2 views)
  double flops = 0;         // useful FLOPs of all calls (2 per multiply-add, real head_dim)
  double bytes = 0;         // q, k, v read once + out written once
};

bench::RandomTensors random_tensor(12345);

Tensor random_bf16(Backend& be, int64_t rows, int64_t cols, float range, const char* what) {
  return random_tensor(be, DType::kBF16, rows, cols, -range, range, what);
}

double attn_flops(int64_t sq, int64_t skv, int hq, int d) { return 4.0 * sq * skv * hq * d; }

Case siglip(Backend& be) {
  Case c;
  c.name = "siglip 2 views (256 x 16h x 72)";
  for (int view = 0; view < 2; ++view) {
    Tensor qkv = random_bf16(be, 256, 3 * 1152, 2.f, "qkv");
    Tensor out = be.alloc(DType::kBF16, {256, 1152}, "out");
    c.calls.push_back({out, qkv.col_slice(0, 1152), qkv.col_slice(1152, 1152),
                       qkv.col_slice(2304, 1152),
                       AttentionParams{16, 16, 72, 1.f / std::sqrt(72.f), 0}});
    c.flops += attn_flops(256, 256, 16, 72);
    c.bytes += 2.0 * (256 * 3456 + 256 * 1152);
  }
  return c;
}

// Prefix: q [P, 2048], k/v rows [0, P) of a [P_max + S_max, 256] cache. Suffix: q [H, 2048]
// over keys [0, P + H) of the same cache.
Case gemma(Backend& be, int64_t sq, int64_t skv, const char* kind) {
  Case c;
  c.name = std::string(kind) + " Sq=" + std::to_string(sq) + " keys=" + std::to_string(skv) +
           " (8h/1kv x 256)";
  Tensor q = random_bf16(be, sq, 2048, 2.f, "q");
  Tensor kc = random_bf16(be, 1200, 256, 1.f, "k_cache");
  Tensor vc = random_bf16(be, 1200, 256, 1.f, "v_cache");
  Tensor out = be.alloc(DType::kBF16, {sq, 2048}, "out");
  c.calls.push_back({out, q, kc.row_slice(0, skv), vc.row_slice(0, skv),
                     AttentionParams{8, 1, 256, 1.f / 16.f, 0}});
  c.flops = attn_flops(sq, skv, 8, 256);
  c.bytes = 2.0 * (2 * sq * 2048 + 2 * skv * 256);
  return c;
}

std::vector<float> to_host(Backend& be, const Tensor& t) {
  std::vector<uint16_t> h(static_cast<size_t>(t.numel()));
  be.copy_to_host(h.data(), t, h.size() * 2);
  std::vector<float> f(h.size());
  for (size_t i = 0; i < h.size(); ++i) f[i] = bf16_to_f32(h[i]);
  return f;
}

void run_once(Backend& be, const Case& c) {
  for (const Call& k : c.calls) be.attention(k.out, k.q, k.k, k.v, k.p);
}

// Median microseconds per case execution, timed over graph replays (no eager run first).
double time_case(CudaBackend& be, const Case& c) {
  return bench::median(bench::time_graph_replays(
      be.stream(), {kCallsPerGraph, 0, kWarmupReplays, 0, kTimedReplays},
      [&](int) { run_once(be, c); }));
}

// Dense bf16 tensor-core FLOP per clock per SM (mma with fp32 accumulation).
double flop_per_clk_per_sm(int major, int minor) {
  if (major == 9) return 4096;                 // H100 / H200
  if (major == 8 && minor == 0) return 2048;   // A100
  if (major == 8) return 1024;                 // sm_86 / sm_89 (fp32 accumulate)
  if (major >= 10) return major == 10 ? 8192 : 1024;  // B200 / consumer Blackwell (approx.)
  return 1024;
}
}  // namespace

int main(int argc, char** argv) {
  int force_splits = 0;
  bool sweep = false, profile = false, no_pdl = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--splits") == 0 && i + 1 < argc) force_splits = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--sweep") == 0) sweep = true;
    else if (std::strcmp(argv[i], "--profile") == 0) profile = true;
    else if (std::strcmp(argv[i], "--no-pdl") == 0) no_pdl = true;
  }
  std::string why;
  if (!cuda_available(&why)) {
    std::printf("bench_attention_cuda: no usable GPU (%s)\n", why.c_str());
    return 0;
  }
  try {
    std::unique_ptr<Backend> owner = make_cuda_backend(0);
    auto& be = dynamic_cast<CudaBackend&>(*owner);
    cudaDeviceProp prop{};
    BENCH_CHECK(cudaGetDeviceProperties(&prop, be.device_index()));
    int clock_khz = 0;
    BENCH_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, be.device_index()));
    const double peak = prop.multiProcessorCount * (clock_khz * 1e3) *
                        flop_per_clk_per_sm(prop.major, prop.minor) / 1e12;
    std::printf("device: %s (sm_%d%d, %d SMs, %.0f MHz): dense bf16 mma peak %.0f TFLOP/s\n",
                prop.name, prop.major, prop.minor, prop.multiProcessorCount, clock_khz / 1e3,
                peak);
    if (force_splits > 0) std::printf("flash path: --splits %d forced\n", force_splits);

    std::vector<Case> cases;
    cases.push_back(siglip(be));
    for (int64_t P : {562, 800}) cases.push_back(gemma(be, P, P, "prefix"));
    for (int64_t P : {562, 800})
      for (int64_t H : {10, 50}) cases.push_back(gemma(be, H, P + H, "suffix"));

    if (profile) {  // one eager flash run per case, for ncu
      for (const Case& c : cases) run_once(be, c);
      be.synchronize();
      return 0;
    }
    if (sweep) {  // flash time per forced split count (tuning the planner's cost model)
      std::printf("%-42s", "case \\ splits");
      const int ss[] = {1, 2, 3, 4, 6, 8, 12, 16, 20, 26, 32};
      for (int s : ss) std::printf(" %7d", s);
      std::printf("   planner\n");
      for (const Case& c : cases) {
        std::printf("%-42s", c.name.c_str());
        for (int s : ss) {
          set_flash_attention_override({false, s, no_pdl});
          std::printf(" %7.2f", time_case(be, c));
        }
        set_flash_attention_override({});
        run_once(be, c);
        std::printf("   %d\n", flash_attention_stats().last_splits);
      }
      return 0;
    }
    std::vector<std::string> csv;
    std::printf("\n%-42s %6s %9s %9s %7s %8s %8s %7s %10s %9s\n", "case", "splits", "new_us",
                "old_us", "speedup", "new_TF/s", "%peak", "GB/s", "cos", "max_abs");
    for (const Case& c : cases) {
      // Check: new vs old on the same inputs.
      set_flash_attention_override({false, force_splits, no_pdl});
      const uint64_t before = flash_attention_stats().launches;
      run_once(be, c);
      be.synchronize();
      const FlashAttentionStats st = flash_attention_stats();
      const bool took_flash = st.launches - before == c.calls.size();
      std::vector<std::vector<float>> got;
      for (const Call& k : c.calls) got.push_back(to_host(be, k.out));
      set_flash_attention_override({true, 0});
      run_once(be, c);
      be.synchronize();
      double dot = 0, ng = 0, nw = 0, max_abs = 0, max_ref = 0;
      bool finite = true;
      for (size_t i = 0; i < c.calls.size(); ++i) {
        const std::vector<float> want = to_host(be, c.calls[i].out);
        for (size_t j = 0; j < want.size(); ++j) {
          const double g = got[i][j], w = want[j];
          if (!std::isfinite(g) || !std::isfinite(w)) finite = false;
          dot += g * w;
          ng += g * g;
          nw += w * w;
          max_abs = std::max(max_abs, std::fabs(g - w));
          max_ref = std::max(max_ref, std::fabs(w));
        }
      }
      const double cos = dot / std::sqrt(ng * nw);
      const bool ok = took_flash && finite && cos >= 0.999 && max_abs <= 2e-2 * max_ref;

      set_flash_attention_override({true, 0});
      const double old_us = time_case(be, c);
      set_flash_attention_override({false, force_splits, no_pdl});
      const double new_us = time_case(be, c);
      set_flash_attention_override({});
      const double tflops = c.flops / (new_us * 1e-6) / 1e12;
      std::printf("%-42s %6d %9.2f %9.2f %7.1f %8.1f %7.1f%% %7.0f %10.6f %9.5f%s\n",
                  c.name.c_str(), st.last_splits, new_us, old_us, old_us / new_us, tflops,
                  100.0 * tflops / peak, c.bytes / (new_us * 1e-6) / 1e9, cos, max_abs,
                  ok ? "" : "  CHECK FAILED");
      char line[512];
      std::snprintf(line, sizeof line,
                    "csv,attention,\"%s\",%d,%.3f,%.3f,%.2f,%.2f,%.7f,%.6f,%.6f,%s",
                    c.name.c_str(), st.last_splits, new_us, old_us, tflops,
                    100.0 * tflops / peak, cos, max_abs, max_ref, ok ? "ok" : "FAILED");
      csv.push_back(line);
    }
    std::printf(
        "\ncsv,op,case,splits,new_us,old_us,new_tflops,pct_peak,cos,max_abs,max_ref,check\n");
    for (const std::string& l : csv) std::printf("%s\n", l.c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_attention_cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}
