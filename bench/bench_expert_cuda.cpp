// Benchmark of the action expert's two halves as the ops the model calls, at the expert's shapes,
// bf16 and FP8 weights, M = 10 (Pi0.5: adaRMS, gated residual) and 11 (Pi0: RMSNorm, the state
// row blind to the actions). expert_attention (cuda_expert_ops.cu): norm + qkv with the q / k / v
// split and RoPE in the skinny kernel's epilogue (one launch), flash attention over a 2-view
// prefix (712 rows, 560 valid) + the suffix (split + combine), skinny o + gated residual; next to
// it the same with the qkv projection and the RoPE kernel unfused (set_qkv_rope_fusion; the
// backend's default is fused).
// expert_mlp: the norm kernel + the skinny gate_up GEMM (bf16, or FP8 weights with bf16 x), skinny
// down with the GeGLU prologue and the gated residual. Per case: 1. check (attention): fused vs unfused change of x,
// which must agree bit for bit; 2. time: a CUDA graph of 100 calls rotating over weight copies
// (>= 160 MB, so L2 never serves weights), 20 timed replays, us per call, next to the
// weight-streaming floor at the measured device copy bandwidth. One "csv,..." line per case.
// Run: build/bench_expert_cuda  (exits 0 with a note when no usable GPU)
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
#include "bench_cuda_common.h"
#include "core/status.h"
#include "core/tensor.h"

namespace {
namespace bench = frt::bench;
using frt::DType;
using frt::LinearPrologue;
using frt::Tensor;
using Kind = LinearPrologue::Kind;

constexpr int64_t kD = 1024, kF = 4096;

// One op on x (updated in place); expert_attention with its qkv projection and RoPE fused into
// one skinny launch and unfused (set_qkv_rope_fusion): the change of x each makes from x0 (max
// abs difference between them: 0 expected) and the graph-replay time per call of each (x
// accumulates over the replays; |gate| < 1 and the norm keep values bounded).
struct OpTiming {
  double us = 0, unfused_us = 0;
  float max_diff = 0;  // |fused - unfused| over the change of x
};
template <typename Call>
OpTiming time_op(frt::CudaBackend& be, const Tensor& x, const Tensor& x0, Call&& call,
                 bool qkv_rope) {
  OpTiming t;
  auto delta = [&](bool fuse) {
    be.set_qkv_rope_fusion(fuse);
    BENCH_CHECK(cudaMemcpy(x.data, x0.data, x0.nbytes(), cudaMemcpyDeviceToDevice));
    call(0);
    be.synchronize();
    return bench::read_f32(be, x);
  };
  auto timed = [&](bool fuse) {
    be.set_qkv_rope_fusion(fuse);
    BENCH_CHECK(cudaMemcpy(x.data, x0.data, x0.nbytes(), cudaMemcpyDeviceToDevice));
    return bench::median(bench::time_graph_replays(be.stream(), bench::kRotatedCalls, call));
  };
  if (qkv_rope) {
    const std::vector<float> a = delta(true), b = delta(false);
    for (size_t i = 0; i < a.size(); ++i) t.max_diff = std::max(t.max_diff, std::fabs(a[i] - b[i]));
    t.unfused_us = timed(false);
  }
  t.us = timed(qkv_rope);
  be.set_qkv_rope_fusion(true);  // the backend's default again
  return t;
}

// Norm parameters of the expert's width.
LinearPrologue norm_of(frt::CudaBackend& be, bench::RandomTensors& rnd, Kind kind) {
  LinearPrologue pro;
  pro.kind = kind;
  const bool rms = kind == Kind::kRmsNorm;
  pro.scale = rnd(be, DType::kF32, 1, kD, rms ? 0.5f : -0.5f, rms ? 1.5f : 0.5f, "scale");
  if (!rms) pro.shift = rnd(be, DType::kF32, 1, kD, -0.5f, 0.5f, "shift");
  return pro;
}

void report(const char* op, const char* prec, Kind kind, bool gated, int64_t M, const OpTiming& t,
            size_t weight_bytes, double copy_gbs) {
  const double floor_us = static_cast<double>(weight_bytes) / (copy_gbs * 1e3);
  const char* name = kind == Kind::kRmsNorm ? "rms" : "ada";
  const bool ok = t.max_diff == 0.f;
  std::printf("%s %s %s gate=%d M=%-3lld | %s%7.2f us", op, prec, name, gated ? 1 : 0,
              static_cast<long long>(M), t.unfused_us > 0 ? "qkv + RoPE fused " : "", t.us);
  if (t.unfused_us > 0)
    std::printf(" (qkv + RoPE unfused %.2f us, fused vs unfused max diff %.3g%s)", t.unfused_us,
                t.max_diff, ok ? "" : "  CHECK FAILED");
  std::printf(" | weights %.1f MB, floor %.2f us at %.0f GB/s\n", weight_bytes / 1e6, floor_us,
              copy_gbs);
  std::printf("csv,%s,%s,%s,%d,%lld,%.3f,%.3f,%.3f,%.4g,%d\n", op, prec, name, gated ? 1 : 0,
              static_cast<long long>(M), t.us, t.unfused_us, floor_us, t.max_diff, ok ? 1 : 0);
  std::fflush(stdout);
}

// expert_mlp: gate_up 1024 -> 8192, down 4096 -> 1024.
void run_mlp(frt::CudaBackend& be, const char* prec, int64_t M, Kind kind, bool gated,
             double copy_gbs) {
  bench::RandomTensors rnd(11);
  const Tensor w1_0 = bench::upload_random_weight(be, 2 * kF, kD, 1, "gate_up"),
               w2_0 = bench::upload_random_weight(be, kD, kF, 2, "down");
  const size_t pair = w1_0.nbytes() + w2_0.nbytes();
  const int copies = bench::rotation_copies(pair);
  const std::vector<Tensor> w1 = bench::with_copies(be, w1_0, copies),
                            w2 = bench::with_copies(be, w2_0, copies);
  const LinearPrologue pro = norm_of(be, rnd, kind);
  const Tensor gate = rnd(be, DType::kF32, 1, kD, -1.f, 1.f, "gate");
  const Tensor* gp = gated ? &gate : nullptr;
  const Tensor x0 = rnd(be, DType::kBF16, M, kD, -2.f, 2.f, "x0");
  const Tensor x = be.alloc(DType::kBF16, {M, kD}, "x");
  const Tensor staged = be.alloc(DType::kBF16, {M, kD}, "staged");
  const Tensor gu = be.alloc(DType::kBF16, {M, 2 * kF}, "gate_up out");
  const Tensor h = be.alloc(DType::kBF16, {M, kF}, "h");
  const Tensor product = be.alloc(DType::kBF16, {M, kD}, "product");
  auto call = [&](int i) {
    be.expert_mlp(x, w1[i % copies], w2[i % copies], pro, gp, staged, gu, h, product);
  };
  const OpTiming t = time_op(be, x, x0, call, false);
  report("expert_mlp", prec, kind, gated, M, t, pair, copy_gbs);
}

// expert_attention: width 1024, 8 q heads x 256, 1 kv head, P = 712 prefix rows of which 560
// are valid (2 views, a short prompt).
void run_attention(frt::CudaBackend& be, const char* prec, int64_t M, Kind kind, bool gated,
                   int blind, double copy_gbs) {
  constexpr int kHq = 8, kHd = 256, kP = 712;
  bench::RandomTensors rnd(13);
  const Tensor wq0 = bench::upload_random_weight(be, (kHq + 2) * kHd, kD, 3, "qkv");
  const Tensor wo0 = bench::upload_random_weight(be, kD, kHq * kHd, 4, "o");
  const size_t pair = wq0.nbytes() + wo0.nbytes();
  const int copies = bench::rotation_copies(pair);
  const std::vector<Tensor> wq = bench::with_copies(be, wq0, copies),
                            wo = bench::with_copies(be, wo0, copies);
  frt::ExpertAttention e;
  e.pro = norm_of(be, rnd, kind);
  const Tensor gate = rnd(be, DType::kF32, 1, kD, -1.f, 1.f, "gate");
  e.gate = gated ? &gate : nullptr;
  e.k_cache = rnd(be, DType::kBF16, kP + M, kHd, -2.f, 2.f, "k_cache");
  e.v_cache = rnd(be, DType::kBF16, kP + M, kHd, -2.f, 2.f, "v_cache");
  e.prefix_rows = kP;
  const Tensor valid = be.alloc(DType::kI32, {1}, "valid");
  const int32_t nv = 560;
  be.copy_to_device(valid, &nv, sizeof(nv));
  e.attn = frt::AttentionParams{kHq, 1, kHd, 1.f / 16.f, blind, valid, kP};
  e.staged = be.alloc(DType::kBF16, {M, kD}, "staged");
  e.qkv = be.alloc(DType::kBF16, {M, (kHq + 2) * kHd}, "qkv");
  e.q = be.alloc(DType::kBF16, {M, kHq * kHd}, "q");
  e.attn_out = be.alloc(DType::kBF16, {M, kHq * kHd}, "attn_out");
  e.product = be.alloc(DType::kBF16, {M, kD}, "product");
  const Tensor x0 = rnd(be, DType::kBF16, M, kD, -2.f, 2.f, "x0");
  const Tensor x = be.alloc(DType::kBF16, {M, kD}, "x");
  auto call = [&](int i) {
    frt::ExpertAttention ei = e;
    ei.qkv_w = wq[i % copies];
    ei.o_w = wo[i % copies];
    be.expert_attention(x, ei);
  };
  const OpTiming t = time_op(be, x, x0, call, true);
  report("expert_attention", prec, kind, gated, M, t, pair, copy_gbs);
}
}  // namespace

int main() {
  std::string why;
  if (!frt::cuda_available(&why)) {
    std::printf("bench_expert_cuda: no usable GPU (%s); nothing timed\n", why.c_str());
    return 0;
  }
  try {
    std::printf(
        "csv,op,precision,pro,gate,M,us,qkv_rope_unfused_us,floor_us,fused_vs_unfused_max_diff,"
        "check_ok\n");
    double copy_gbs = 0;
    bench::for_each_precision([&](frt::CudaBackend& be, const char* prec) {
      if (copy_gbs == 0) copy_gbs = bench::copy_bandwidth(be.stream(), 20);
      run_attention(be, prec, 10, Kind::kAdaRmsNorm, true, 0, copy_gbs);  // Pi0.5
      run_attention(be, prec, 11, Kind::kRmsNorm, false, 1, copy_gbs);    // Pi0
      run_mlp(be, prec, 10, Kind::kAdaRmsNorm, true, copy_gbs);           // Pi0.5
      run_mlp(be, prec, 11, Kind::kRmsNorm, false, copy_gbs);             // Pi0
    });
  } catch (const frt::Error& e) {
    std::fprintf(stderr, "bench_expert_cuda: %s\n", e.what());
    return 1;
  }
  return 0;
}
