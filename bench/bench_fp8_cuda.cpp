// Benchmark of the FP8 GEMM paths of the CUDA backend against bf16 (an FP8 backend; bf16 weights
// are uploaded as kGemmPrecise, which stays bf16):
//  1. skinny (the action expert, M = 10, 11, 50, 51; qkv [2560,1024], o [1024,2048], gate_up
//     [8192,1024], down [1024,4096]): bf16 skinny kernel, fp8 W8A16 skinny kernel, fp8 through
//     quantize + cuBLASLt FP8 (routing off), bf16 cuBLASLt. Weight GB/s and % of the device copy
//     bandwidth (1 GiB D2D, read + write);
//  2. many rows (SigLIP [3456,1152] [1152,1152] [4304,1152] [1152,4304], Gemma prefix
//     [2560,2048] [2048,2048] [32768,2048] [2048,16384] at M = 256, 562, 712): bf16 cuBLASLt vs
//     fp8 (quantize + FP8 GEMM), TFLOP/s; and SigLIP's bias / bias+GELU GEMMs with the cuBLASLt
//     epilogue vs the fp32-scratch epilogue kernel.
// Each case: a check first (cosine of the fast path vs the reference path), then a CUDA graph
// of L launches (rotating over weight copies >= 160 MB for the skinny cases, so L2 never serves
// weights) replayed 15 times; per-launch time = median replay / L. One "csv," line per case.
// Run: build/bench_fp8_cuda  (exits 0 with a note when no FP8-capable GPU is present)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_skinny_gemm.h"
#include "core/tensor.h"
#include "bench_cuda_common.h"

namespace {
namespace bench = frt::bench;
using frt::Activation;
using frt::DType;
using frt::Tensor;

// The bench's protocol: 3 eager launches, then of 17 timed replays the first 2 are dropped.
// Microseconds per launch (median): `launch(i)` captured L times into one graph, replayed.
double time_graph(cudaStream_t stream, int L, const std::function<void(int)>& launch) {
  return bench::median(bench::time_graph_replays(stream, {L, 3, 0, 2, 15}, launch));
}

frt::HostTensor host_random(std::vector<int64_t> shape, float r, uint64_t seed) {
  frt::HostTensor h(DType::kF32, shape);
  const std::vector<uint8_t> b =
      bench::random_bytes(static_cast<size_t>(h.numel()), DType::kF32, r, seed);
  std::memcpy(h.data(), b.data(), b.size());
  return h;
}

// Cosine between two device tensors of the same shape (any float dtype).
double cosine(frt::Backend& be, const Tensor& a, const Tensor& b) {
  const size_t n = static_cast<size_t>(a.numel());
  std::vector<uint8_t> ba(a.nbytes()), bb(b.nbytes());
  be.copy_to_host(ba.data(), a, ba.size());
  be.copy_to_host(bb.data(), b, bb.size());
  std::vector<float> fa(n), fb(n);
  frt::convert_to_f32(ba.data(), a.dtype, fa.data(), n);
  frt::convert_to_f32(bb.data(), b.dtype, fb.data(), n);
  double d = 0, na = 0, nb = 0;
  for (size_t i = 0; i < n; ++i) {
    d += double(fa[i]) * fb[i];
    na += double(fa[i]) * fa[i];
    nb += double(fb[i]) * fb[i];
  }
  return d / std::sqrt(na * nb);
}

// Copies of an uploaded weight (same QuantInfo) until `min_bytes` are covered.
std::vector<Tensor> rotation(frt::Backend& be, const Tensor& w, size_t min_bytes) {
  std::vector<Tensor> out{w};
  while (out.size() * w.nbytes() < min_bytes) {
    Tensor c = be.alloc(w.dtype, {w.rows(), w.cols()}, "bench weight copy");
    BENCH_CHECK(cudaMemcpy(c.data, w.data, w.nbytes(), cudaMemcpyDeviceToDevice));
    c.quant = w.quant;
    out.push_back(c);
  }
  return out;
}

void x_random(frt::Backend& be, const Tensor& x, uint64_t seed) {
  const std::vector<uint8_t> b =
      bench::random_bytes(static_cast<size_t>(x.numel()), DType::kBF16, 1.f, seed);
  be.copy_to_device(x, b.data(), b.size());
}
}  // namespace

int main() {
  std::string why;
  if (!frt::cuda_available(&why) || !frt::cuda_supports_fp8(0, &why)) {
    std::printf("bench_fp8_cuda: skipped: %s\n", why.c_str());
    return 0;
  }
  std::unique_ptr<frt::Backend> be = frt::make_cuda_backend(0, frt::Precision::kFP8);
  frt::CudaBackend& cb = dynamic_cast<frt::CudaBackend&>(*be);
  const cudaStream_t st = cb.stream();
  const double copy_gbs = bench::copy_bandwidth(st, 10);
  std::printf("device copy bandwidth (read + write): %.0f GB/s\n\n", copy_gbs);

  // ---- 1. skinny
  struct Sk {
    const char* name;
    int64_t N, K;
  };
  const std::vector<Sk> sk = {{"qkv", 2560, 1024}, {"o", 1024, 2048}, {"gate_up", 8192, 1024},
                              {"down", 1024, 4096}};
  std::printf("%-8s %3s | %-26s | %-26s | %-26s | %-10s | cos(fp8sk,bf16)\n", "shape", "M",
              "bf16 skinny us GB/s %", "fp8 skinny us GB/s %", "fp8 lt (q+gemm) us GB/s", "bf16 lt us");
  for (const Sk& s : sk) {
    const Tensor w16 = be->upload_weight(host_random({s.N, s.K}, 0.05f, 1), "w16",
                                         frt::WeightUse::kGemmPrecise);
    const Tensor w8 = be->upload_weight(host_random({s.N, s.K}, 0.05f, 1), "w8",
                                        frt::WeightUse::kGemm);
    const std::vector<Tensor> r16 = rotation(*be, w16, size_t{160} << 20);
    const std::vector<Tensor> r8 = rotation(*be, w8, size_t{160} << 20);
    for (int64_t M : {10, 11, 50, 51}) {
      const Tensor x = be->alloc(DType::kBF16, {M, s.K}, "x");
      const Tensor y = be->alloc(DType::kBF16, {M, s.N}, "y");
      const Tensor y2 = be->alloc(DType::kBF16, {M, s.N}, "y2");
      x_random(*be, x, 7);
      std::vector<float> sc(static_cast<size_t>(be->quant_sites()), 1.f / 448.f);
      be->write_quant_scales(sc);
      frt::skinny_gemm(cb, y, x, w8, nullptr, Activation::kNone, false);
      frt::skinny_gemm(cb, y2, x, w16, nullptr, Activation::kNone, false);
      const double cs = cosine(*be, y, y2);
      const int L = 200;
      const double t16 = time_graph(st, L, [&](int i) {
        frt::skinny_gemm(cb, y, x, r16[i % r16.size()], nullptr, Activation::kNone, false);
      });
      const double t8 = time_graph(st, L, [&](int i) {
        frt::skinny_gemm(cb, y, x, r8[i % r8.size()], nullptr, Activation::kNone, false);
      });
      const double t8route = time_graph(st, L, [&](int i) {  // what linear() picks
        be->linear(y, x, r8[i % r8.size()], nullptr, Activation::kNone, false);
      });
      cb.set_skinny_gemm_enabled(false);
      const double t8lt = time_graph(st, L, [&](int i) {
        be->linear(y, x, r8[i % r8.size()], nullptr, Activation::kNone, false);
      });
      const double t16lt = time_graph(st, L, [&](int i) {
        be->linear(y, x, r16[i % r16.size()], nullptr, Activation::kNone, false);
      });
      cb.set_skinny_gemm_enabled(true);
      const double b16 = double(s.N * s.K * 2), b8 = double(s.N * s.K);
      auto gbs = [](double bytes, double us) { return bytes / (us * 1e-6) / 1e9; };
      std::printf("%-8s %3lld | %6.2f %6.0f %5.1f%%       | %6.2f %6.0f %5.1f%%       | %6.2f %6.0f"
                  "               | %6.2f     | %.6f\n",
                  s.name, static_cast<long long>(M), t16, gbs(b16, t16),
                  100 * gbs(b16, t16) / copy_gbs, t8, gbs(b8, t8), 100 * gbs(b8, t8) / copy_gbs,
                  t8lt, gbs(b8, t8lt), t16lt, cs);
      std::printf("csv,skinny,%s,%lld,%lld,%lld,%.3f,%.3f,%.3f,%.3f,%.3f,%.6f\n", s.name,
                  static_cast<long long>(M), static_cast<long long>(s.N),
                  static_cast<long long>(s.K), t16, t8, t8lt, t16lt, t8route, cs);
      std::printf("  fp8 linear() as routed: %.2f us\n", t8route);
      std::printf("  fp8 plan: %s\n",
                  frt::skinny_gemm_plan(cb, M, s.N, s.K, DType::kBF16, DType::kF8E4M3).c_str());
    }
  }

  // ---- 2. many rows
  struct Mr {
    const char* name;
    int64_t N, K;
    bool bias_gelu;  // also time bias (+GELU) with the cuBLASLt epilogue vs the scratch kernel
  };
  const std::vector<Mr> mr = {{"siglip_qkv", 3456, 1152, true}, {"siglip_o", 1152, 1152, true},
                              {"siglip_fc1", 4304, 1152, true}, {"siglip_fc2", 1152, 4304, true},
                              {"gemma_qkv", 2560, 2048, false}, {"gemma_o", 2048, 2048, false},
                              {"gemma_gate_up", 32768, 2048, false},
                              {"gemma_down", 2048, 16384, false}};
  std::printf("\n%-14s %4s | %-16s | %-16s | %-7s | %s\n", "shape", "M", "bf16 lt us TF/s",
              "fp8 q+gemm us TF/s", "speedup", "cos(fp8,bf16) | bias(+gelu) lt-epi / scratch us");
  for (const Mr& s : mr) {
    const Tensor w16 = be->upload_weight(host_random({s.N, s.K}, 0.05f, 3), "w16",
                                         frt::WeightUse::kGemmPrecise);
    const Tensor w8 = be->upload_weight(host_random({s.N, s.K}, 0.05f, 3), "w8",
                                        frt::WeightUse::kGemm);
    const Tensor b = be->upload_weight(host_random({s.N}, 0.5f, 5), "b",
                                       frt::WeightUse::kParam);
    for (int64_t M : {256, 562, 712}) {
      const Tensor x = be->alloc(DType::kBF16, {M, s.K}, "x");
      const Tensor y = be->alloc(DType::kBF16, {M, s.N}, "y");
      const Tensor y2 = be->alloc(DType::kBF16, {M, s.N}, "y2");
      x_random(*be, x, 9);
      std::vector<float> sc(static_cast<size_t>(be->quant_sites()), 1.f / 448.f);
      be->write_quant_scales(sc);
      be->linear(y, x, w8, nullptr, Activation::kNone, false);
      be->linear(y2, x, w16, nullptr, Activation::kNone, false);
      const double cs = cosine(*be, y, y2);
      const int L = 30;
      const double t16 = time_graph(st, L, [&](int) {
        be->linear(y, x, w16, nullptr, Activation::kNone, false);
      });
      const double t8 = time_graph(st, L, [&](int) {
        be->linear(y, x, w8, nullptr, Activation::kNone, false);
      });
      const double flop = 2.0 * M * s.N * s.K;
      std::printf("%-14s %4lld | %7.2f %7.1f  | %7.2f %7.1f  | %6.2fx | %.6f", s.name,
                  static_cast<long long>(M), t16, flop / t16 / 1e6, t8, flop / t8 / 1e6, t16 / t8,
                  cs);
      double te = 0, ts = 0, tg = 0, tgs = 0;
      if (s.bias_gelu) {
        auto run = [&](Activation act, bool epi) {
          cb.set_lt_epilogue_enabled(epi);
          const double t = time_graph(st, L, [&](int) { be->linear(y, x, w16, &b, act, false); });
          cb.set_lt_epilogue_enabled(true);
          return t;
        };
        te = run(Activation::kNone, true);
        ts = run(Activation::kNone, false);
        tg = run(Activation::kGeluTanh, true);
        tgs = run(Activation::kGeluTanh, false);
        std::printf(" | bias %.2f / %.2f  gelu %.2f / %.2f", te, ts, tg, tgs);
      }
      std::printf("\n");
      std::printf("csv,many,%s,%lld,%lld,%lld,%.3f,%.3f,%.6f,%.3f,%.3f,%.3f,%.3f\n", s.name,
                  static_cast<long long>(M), static_cast<long long>(s.N),
                  static_cast<long long>(s.K), t16, t8, cs, te, ts, tg, tgs);
    }
  }
  cb.reset_linear_stats();
  {  // which path a biased bf16 / fp8 GEMM takes (bias uploaded as kParam)
    const Tensor w16 = be->upload_weight(host_random({1152, 1152}, 0.05f, 3), "w16",
                                         frt::WeightUse::kGemmPrecise);
    const Tensor w8 = be->upload_weight(host_random({1152, 1152}, 0.05f, 3), "w8",
                                        frt::WeightUse::kGemm);
    const Tensor b = be->upload_weight(host_random({1152}, 0.5f, 5), "b",
                                       frt::WeightUse::kParam);
    const Tensor x = be->alloc(DType::kBF16, {256, 1152}, "x");
    const Tensor y = be->alloc(DType::kBF16, {256, 1152}, "y");
    const Tensor yf = be->alloc(DType::kF32, {256, 1152}, "yf");
    for (const Tensor* w : {&w16, &w8})
      for (const Tensor* out : {&y, &yf})
        for (Activation a : {Activation::kNone, Activation::kGeluTanh}) {
          cb.reset_linear_stats();
          be->linear(*out, x, *w, &b, a, false);
          const auto& s = cb.linear_stats();
          std::printf("path w=%s y=%s act=%d: lt=%lld lt_scratch=%lld fallback=%lld\n",
                      frt::dtype_name(w->dtype), frt::dtype_name(out->dtype), int(a),
                      (long long)s.lt, (long long)s.lt_scratch, (long long)s.fallback);
        }
    be->synchronize();
  }
  return 0;
}
