// Benchmark of fused_linear (src/backend/cuda/cuda_fused_linear.cu) at the action expert's four
// GEMMs: one fused launch (skinny kernel with the norm / GeGLU prologue and the gated residual
// in its epilogue) against the unfused composition the expert ran before (norm or geglu kernel,
// linear() as it routes, gated_add), for bf16 and FP8 weights, at M = 10 (horizon 10) and 11
// (Pi0: + the state token).
//  qkv      1024 -> 2560  adaRMS prologue
//  o        2048 -> 1024  gated residual
//  gate_up  1024 -> 8192  adaRMS prologue
//  down     4096 -> 1024  GeGLU prologue + gated residual
// Per case: 1. check: fused vs unfused outputs (cosine, max abs error; the unfused path rounds
// its intermediates to bf16 once more); 2. time: a CUDA graph of 100 calls of each path rotating
// over weight copies (>= 160 MB, so L2 never serves weights), 20 timed replays; us per call.
// One CSV line per case ("csv,..."). --sweep adds, at M = 10, the skinny kernel run directly
// (fused, and plain as linear() would run it) under every forced plan (skinny_gemm_force_plan:
// warps along k x k-split), one "sweep,..." line each.
// Run: build/bench_fused_linear_cuda [--sweep]  (exits 0 with a note when no usable GPU)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
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
using frt::DType;
using frt::LinearPrologue;
using frt::Tensor;
using Kind = LinearPrologue::Kind;

struct Shape {
  const char* name;
  int64_t K, N;
  Kind pro;
  bool gate;
};

void run_case(frt::CudaBackend& be, const Shape& s, int64_t M, const char* prec, bool sweep) {
  const int64_t K = s.K, N = s.N, xc = s.pro == Kind::kGeglu ? 2 * K : K;
  bench::RandomTensors rnd(7);
  // Weights: one upload (bf16 or FP8 by the backend's precision), copies share its QuantInfo.
  const Tensor w0 = bench::upload_random_weight(be, N, K, 1, std::string(s.name) + ".weight");
  const int copies = bench::rotation_copies(w0.nbytes());
  const std::vector<Tensor> w = bench::with_copies(be, w0, copies);
  const Tensor x = rnd(be, DType::kBF16, M, xc, -2.f, 2.f, "x");
  LinearPrologue pro;
  pro.kind = s.pro;
  if (s.pro == Kind::kAdaRmsNorm || s.pro == Kind::kRmsNorm) {
    pro.scale = rnd(be, DType::kF32, 1, K, -0.5f, 0.5f, "scale");
    pro.shift = rnd(be, DType::kF32, 1, K, -0.5f, 0.5f, "shift");
  }
  const Tensor gate = rnd(be, DType::kF32, 1, N, -1.f, 1.f, "gate");
  const Tensor y0 = rnd(be, DType::kBF16, M, N, -1.f, 1.f, "y0");
  const Tensor y_f = be.alloc(DType::kBF16, {M, N}, "y fused");
  const Tensor y_u = be.alloc(DType::kBF16, {M, N}, "y unfused");
  const Tensor staged = be.alloc(DType::kBF16, {M, K}, "staged");
  const Tensor product = be.alloc(DType::kBF16, {M, N}, "product");
  const Tensor* gp = s.gate ? &gate : nullptr;
  const bool acc = s.gate;
  const size_t yb = y0.nbytes();

  // The expert's call as the model makes it (M <= 16: one fused launch).
  auto fused = [&](const Tensor& wi, const Tensor& y) {
    be.fused_linear(y, x, wi, pro, gp, acc, staged, product);
  };
  // The composition the expert ran before: norm / geglu kernel, linear() with its own routing
  // (skinny where it measured faster than cuBLASLt), gated_add.
  auto unfused = [&](const Tensor& wi, const Tensor& y) {
    Tensor src = x;
    if (s.pro == Kind::kAdaRmsNorm) {
      be.add_ada_rms_norm(x, nullptr, nullptr, staged, pro.scale, pro.shift, pro.eps);
      src = staged;
    } else if (s.pro == Kind::kGeglu) {
      be.geglu(staged, x);
      src = staged;
    }
    if (!gp) {
      be.linear(y, src, wi, nullptr, frt::Activation::kNone, acc);
      return;
    }
    be.linear(product, src, wi, nullptr, frt::Activation::kNone, false);
    be.gated_add(y, product, *gp);
  };

  // 1. check.
  BENCH_CHECK(cudaMemcpy(y_f.data, y0.data, yb, cudaMemcpyDeviceToDevice));
  BENCH_CHECK(cudaMemcpy(y_u.data, y0.data, yb, cudaMemcpyDeviceToDevice));
  be.reset_linear_stats();
  fused(w[0], y_f);
  const bool fused_one_launch = be.linear_stats().skinny == 1 && be.linear_stats().lt == 0;
  unfused(w[0], y_u);
  be.synchronize();
  const std::vector<float> a = bench::read_f32(be, y_f), b = bench::read_f32(be, y_u);
  const bench::Agreement ag = bench::agreement(a, b);
  const double cos = ag.cos, max_abs = ag.max_abs, max_ref = ag.max_ref;
  const bool ok = std::isfinite(cos) && cos >= 0.999 && max_abs <= 3e-2 * max_ref;

  // 2. time (y accumulates over the replays for gated cases: values stay bounded, |gate| < 1).
  auto timed = [&](bool fuse) {
    const std::vector<double> us =
        bench::time_graph_replays(be.stream(), bench::kRotatedCalls, [&](int i) {
          if (fuse)
            fused(w[i % copies], y_f);
          else
            unfused(w[i % copies], y_u);
        });
    return bench::median(us);
  };
  const double f_us = timed(true), u_us = timed(false);

  std::printf(
      "%-4s %-8s M=%-3lld K=%-5lld N=%-5lld | fused %7.2f us%s | unfused %7.2f us | x%5.2f | "
      "cos=%.6f max_abs=%.3g%s\n",
      prec, s.name, static_cast<long long>(M), static_cast<long long>(K), static_cast<long long>(N),
      f_us, fused_one_launch ? " (1 launch)" : " (NOT fused)", u_us, u_us / f_us, cos, max_abs,
      ok ? "" : "  CHECK FAILED");
  std::printf("csv,%s,%s,%lld,%lld,%lld,%.3f,%.3f,%.7f,%.4g,%d,%d\n", prec, s.name,
              static_cast<long long>(M), static_cast<long long>(K), static_cast<long long>(N), f_us,
              u_us, cos, max_abs, ok ? 1 : 0, fused_one_launch ? 1 : 0);
  std::fflush(stdout);
  if (!sweep) return;

  // 3. --sweep: the skinny kernel run directly, fused (this case's prologue / gate) and plain
  // (its GEMM alone on the staged input, as linear() would run it), for each forced plan
  // (warps along k x k-split); 0 0 = the plan's own choice.
  const Tensor plain_x = s.pro == Kind::kGeglu ? staged : x;
  for (int wk : {0, 1, 2})
    for (int cl : {0, 1, 2, 4, 8}) {
      if ((wk == 0) != (cl == 0)) continue;
      frt::skinny_gemm_force_plan(wk, cl);
      auto sweep_time = [&](bool fuse) {
        const std::vector<double> us =
            bench::time_graph_replays(be.stream(), bench::kRotatedCalls, [&](int i) {
              if (fuse)
                frt::skinny_gemm_fused(be, y_f, x, w[i % copies], pro, gp, acc);
              else
                frt::skinny_gemm(be, product, plain_x, w[i % copies], nullptr,
                                 frt::Activation::kNone, false);
            });
        return bench::median(us);
      };
      const double fu = sweep_time(true), pl = sweep_time(false);
      std::printf("sweep,%s,%s,M=%lld,wk=%d,cluster=%d,fused_us=%.3f,plain_us=%.3f  [%s]\n", prec,
                  s.name, static_cast<long long>(M), wk, cl, fu, pl,
                  frt::skinny_gemm_plan(be, M, N, K, DType::kBF16, w0.dtype).c_str());
      std::fflush(stdout);
    }
  frt::skinny_gemm_force_plan(0, 0);
}
}  // namespace

int main(int argc, char** argv) {
  // --sweep: also time the skinny kernel (fused and plain) under each forced plan, at M = 10.
  const bool sweep = argc >= 2 && std::string(argv[1]) == "--sweep";
  std::string why;
  if (!frt::cuda_available(&why)) {
    std::printf("bench_fused_linear_cuda: no usable GPU (%s); nothing timed\n", why.c_str());
    return 0;
  }
  const std::vector<Shape> shapes = {{"qkv", 1024, 2560, Kind::kAdaRmsNorm, false},
                                     {"o", 2048, 1024, Kind::kNone, true},
                                     {"gate_up", 1024, 8192, Kind::kAdaRmsNorm, false},
                                     {"down", 4096, 1024, Kind::kGeglu, true}};
  try {
    std::printf("csv,precision,shape,M,K,N,fused_us,unfused_us,cos,max_abs,check_ok,one_launch\n");
    bench::for_each_precision([&](frt::CudaBackend& be, const char* prec) {
      for (const Shape& s : shapes)
        for (int64_t M : {10, 11}) run_case(be, s, M, prec, sweep && M == 10);
    });
  } catch (const frt::Error& e) {
    std::fprintf(stderr, "bench_fused_linear_cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}
