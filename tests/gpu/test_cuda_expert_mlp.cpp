// CUDA expert_mlp (src/backend/cuda/cuda_expert_ops.cu: the expert's MLP half as its composition
// of two fused_linear calls) against the CPU twin (the same composition in fp32) on random
// non-zero inputs, bf16 and FP8 (E4M3) weights: the expert's shapes (D 1024, F 4096) at M = 1, 8,
// 10 (adaRMS + gated residual, Pi0.5), 11 (RMSNorm, no gate, Pi0), 12 (strided x), 16, 51, plus
// small shapes. Checked per case: the change of x (the residual branch; x itself would hide
// errors under its own magnitude); CUDA-graph replays equal to the eager run bit for bit, and
// repeated launches identical. Prints "EXPERT_MLP(...) name: cos=... max_abs=..." per
// comparison. SKIPPED without a GPU. Run: build/flashrt_gpu_tests --gtest_filter='*CudaExpertMlp*'
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "cuda_twin.h"

namespace frt::gpu_test {
namespace {

constexpr DType kBF = DType::kBF16;
constexpr DType kF = DType::kF32;
using Kind = LinearPrologue::Kind;

struct MlpCase {
  int64_t M, D, F;
  Kind pro;
  bool gate;
  int64_t x_ld = 0;  // 0: packed
};

class CudaExpertMlp : public CudaPrecisionTest {
 protected:
  struct Operands {
    WeightTwin w1, w2;
    Twin *x, *scale, *shift, *gate, *staged, *gu, *h, *product;
    LinearPrologue pro(bool gpu, Kind kind) const {
      LinearPrologue p;
      p.kind = kind;
      p.scale = gpu ? scale->gpu : scale->cpu;
      if (kind == Kind::kAdaRmsNorm) p.shift = gpu ? shift->gpu : shift->cpu;
      return p;
    }
  };
  Operands make(TwinSet& ts, const MlpCase& c) {
    Operands o;
    o.w1 = gemm_weight(ts, 2 * c.F, c.D, "gate_up");
    o.w2 = gemm_weight(ts, c.D, c.F, "down");
    o.x = &ts.matrix("x", c.M, c.D, kBF, -1.5f, 2.5f, c.x_ld);  // off-center: RMS shows
    o.scale = c.pro == Kind::kRmsNorm ? &ts.matrix("scale", 1, c.D, kF, 0.5f, 2.f)
                                      : &ts.matrix("scale", 1, c.D, kF, -1.f, 1.f);
    o.shift = &ts.matrix("shift", 1, c.D, kF, -0.5f, 0.5f);
    o.gate = &ts.matrix("gate", 1, c.D, kF, -1.f, 1.f);
    o.staged = &ts.output("staged", c.M, c.D, kBF);
    o.gu = &ts.output("gate_up", c.M, 2 * c.F, kBF);
    o.h = &ts.output("h", c.M, c.F, kBF);
    o.product = &ts.output("product", c.M, c.D, kBF);
    ts.mark_output(*o.x);
    return o;
  }
  void run_gpu(const Operands& o, const MlpCase& c) {
    gpu_->expert_mlp(o.x->gpu, o.w1.gpu, o.w2.gpu, o.pro(true, c.pro),
                     c.gate ? &o.gate->gpu : nullptr, o.staged->gpu, o.gu->gpu, o.h->gpu,
                     o.product->gpu);
  }

  std::string label_of(const MlpCase& c) {
    std::ostringstream os;
    os << "EXPERT_MLP(" << (fp8() ? "fp8" : "bf16") << ",M=" << c.M << ",D=" << c.D << ",F=" << c.F
       << ",pro=" << (c.pro == Kind::kRmsNorm ? "rms" : "ada") << ",gate=" << c.gate;
    if (c.x_ld) os << ",x_ld=" << c.x_ld;
    os << ")";
    return os.str();
  }

  // CPU twin vs CUDA.
  void run(const MlpCase& c) {
    const std::string label = label_of(c);
    SCOPED_TRACE(label);
    TwinSet ts(*cpu_, *gpu_, label);
    Operands o = make(ts, c);
    const std::vector<float> x0 = ts.read(*o.x, false);
    cpu_->expert_mlp(o.x->cpu, o.w1.cpu, o.w2.cpu, o.pro(false, c.pro),
                     c.gate ? &o.gate->cpu : nullptr, o.staged->cpu, o.gu->cpu, o.h->cpu,
                     o.product->cpu);
    run_gpu(o, c);
    gpu_->synchronize();
    // FP8: at M > 16 gate_up runs as a cuBLASLt FP8 GEMM, which quantizes its input too (W8A8,
    // ~2^-4 per element, not emulated on the CPU side): a looser bound there.
    const Tol tol = fp8() ? Tol{0.995, 0.08, false} : kBf16Tol;
    const std::vector<float> want = ts.read(*o.x, false), got = ts.read(*o.x, true);
    expect_vectors_close(label + " x - x0", difference(want, x0), difference(got, x0), tol.min_cos,
                         tol.max_abs_rel);
    ts.check_guards();
  }
};

TEST_P(CudaExpertMlp, ExpertShapesAgainstCpu) {
  run({10, 1024, 4096, Kind::kAdaRmsNorm, true});  // Pi0.5, horizon 10
  run({11, 1024, 4096, Kind::kRmsNorm, false});    // Pi0: the state token + 10 actions
  run({1, 1024, 4096, Kind::kAdaRmsNorm, true});
  run({8, 1024, 4096, Kind::kRmsNorm, true});
  run({12, 1024, 4096, Kind::kAdaRmsNorm, false, 1040});  // strided x
  run({16, 1024, 4096, Kind::kAdaRmsNorm, true});
  run({51, 1024, 4096, Kind::kAdaRmsNorm, true});  // horizon 50
  run({10, 256, 512, Kind::kAdaRmsNorm, true});
  run({5, 200, 512, Kind::kRmsNorm, true});
}

// Graph capture: replays equal the eager run bit for bit (PDL on, as the model runs), and
// back-to-back eager launches from the same inputs agree bit for bit.
TEST_P(CudaExpertMlp, GraphReplayAndRepeatsMatchEager) {
  const MlpCase c{11, 1024, 4096, Kind::kRmsNorm, false};
  TwinSet ts(*cpu_, *gpu_, label_of(c) + "_GRAPH");
  Operands o = make(ts, c);
  auto ops = [&] { run_gpu(o, c); };
  ASSERT_NO_FATAL_FAILURE(
      expect_repeats_and_graph_match_eager(ts, cuda(), 3, "expert_mlp failed under capture", ops));
}

INSTANTIATE_TEST_SUITE_P(Weights, CudaExpertMlp, kPrecisions, precision_name);

}  // namespace
}  // namespace frt::gpu_test
