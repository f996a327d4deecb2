// CUDA expert_attention (src/backend/cuda/cuda_expert_ops.cu: the expert's attention half as its
// composition, the qkv projection and RoPE fused into one skinny launch for <= 16 rows) against
// the CPU twin (the fp32 composition: fused_linear, RoPE, attention, fused_linear) on random
// non-zero inputs, bf16 and FP8 (E4M3) weights, at the expert's shapes (width 1024, 8 q heads x
// 256, 1 kv head): Pi0.5 (adaRMS + gated residual, 10 rows) and Pi0 (RMSNorm, 11 rows, the state
// row blind to the actions) over a padded prefix with a device-resident valid length (and the
// key gap behind it), a short prefix (fewer keys than key tiles), and 17 rows (the plain
// composition). Checked: the path taken, q after RoPE, the suffix K/V rows written into the cache
// (the prefix rows untouched), the attention output, the change of x; the fused qkv + RoPE launch
// bit-identical to the two ops it replaces; graph replays equal to eager.
// Prints "EXPERT_ATTENTION(...) name: cos=... max_abs=..." per comparison. SKIPPED without a GPU.
// Run: build/flashrt_gpu_tests --gtest_filter='*CudaExpertAttention*'
#include <gtest/gtest.h>

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
constexpr int kW = 1024, kHq = 8, kHkv = 1, kD = 256;

struct AttnCase {
  int64_t M;
  int P, valid;  // padded prefix rows, valid prefix keys (device)
  Kind pro;
  bool gate;
  int blind;
};

class CudaExpertAttention : public CudaPrecisionTest {
 protected:
  // The qkv + RoPE fusion on (the backend's default; set so a changed default keeps the tests).
  void SetUp() override {
    CudaPrecisionTest::SetUp();
    if (gpu_) cuda().set_qkv_rope_fusion(true);
  }
  struct Operands {
    WeightTwin wqkv, wo;
    Twin *x, *scale, *shift, *gate, *kc, *vc, *valid, *staged, *qkv, *q, *attn, *product;
    ExpertAttention args(bool gpu, const AttnCase& c) const {
      auto t = [gpu](const Twin* tw) { return gpu ? tw->gpu : tw->cpu; };
      ExpertAttention a;
      a.qkv_w = gpu ? wqkv.gpu : wqkv.cpu;
      a.o_w = gpu ? wo.gpu : wo.cpu;
      a.pro.kind = c.pro;
      a.pro.scale = t(scale);
      if (c.pro == Kind::kAdaRmsNorm) a.pro.shift = t(shift);
      a.gate = c.gate ? (gpu ? &gate->gpu : &gate->cpu) : nullptr;
      a.k_cache = t(kc);
      a.v_cache = t(vc);
      a.prefix_rows = c.P;
      a.attn = AttentionParams{kHq, kHkv, kD, 1.f / 16.f, c.blind, t(valid), c.P};
      a.rope_theta = 10000.f;
      a.staged = t(staged);
      a.qkv = t(qkv);
      a.q = t(q);
      a.attn_out = t(attn);
      a.product = t(product);
      return a;
    }
  };
  Operands make(TwinSet& ts, const AttnCase& c) {
    Operands o;
    o.wqkv = gemm_weight(ts, (kHq + 2 * kHkv) * kD, kW, "qkv");
    o.wo = gemm_weight(ts, kW, kHq * kD, "o");
    o.x = &ts.matrix("x", c.M, kW, kBF, -1.5f, 2.5f);
    o.scale = c.pro == Kind::kRmsNorm ? &ts.matrix("scale", 1, kW, kF, 0.5f, 2.f)
                                      : &ts.matrix("scale", 1, kW, kF, -1.f, 1.f);
    o.shift = &ts.matrix("shift", 1, kW, kF, -0.5f, 0.5f);
    o.gate = &ts.matrix("gate", 1, kW, kF, -1.f, 1.f);
    // The whole cache random: prefix rows are read (valid ones) or must stay as they are; the
    // suffix rows are outputs (checked after the op; their random start is overwritten).
    o.kc = &ts.matrix("k_cache", c.P + c.M, kHkv * kD, kBF, -2.f, 2.f);
    o.vc = &ts.matrix("v_cache", c.P + c.M, kHkv * kD, kBF, -2.f, 2.f);
    o.valid = &ts.raw("valid", DType::kI32, {1}, &c.valid);
    o.staged = &ts.output("staged", c.M, kW, kBF);
    o.qkv = &ts.output("qkv", c.M, (kHq + 2 * kHkv) * kD, kBF);
    o.q = &ts.output("q", c.M, kHq * kD, kBF);
    o.attn = &ts.output("attn_out", c.M, kHq * kD, kBF);
    o.product = &ts.output("product", c.M, kW, kBF);
    for (Twin* t : {o.x, o.kc, o.vc}) ts.mark_output(*t);
    return o;
  }
  std::string label_of(const AttnCase& c) const {
    std::ostringstream os;
    os << "EXPERT_ATTENTION(" << (fp8() ? "fp8" : "bf16") << ",M=" << c.M << ",P=" << c.P
       << ",valid=" << c.valid << ",pro=" << (c.pro == Kind::kRmsNorm ? "rms" : "ada")
       << ",gate=" << c.gate << ",blind=" << c.blind << ")";
    return os.str();
  }

  void run(const AttnCase& c) {
    const std::string label = label_of(c);
    SCOPED_TRACE(label);
    TwinSet ts(*cpu_, *gpu_, label);
    Operands o = make(ts, c);
    const std::vector<float> x0 = ts.read(*o.x, false);
    cpu_->expert_attention(o.x->cpu, o.args(false, c));
    cuda().reset_linear_stats();
    gpu_->expert_attention(o.x->gpu, o.args(true, c));
    gpu_->synchronize();
    const bool few = c.M <= 16;  // the skinny kernel's rows: qkv + RoPE in one launch
    EXPECT_EQ(cuda().linear_stats().qkv_rope, few ? 1 : 0) << "path taken";
    // More rows with FP8 weights: cuBLASLt FP8 GEMMs quantize their input too (W8A8, not
    // emulated on the CPU side); few rows stream the FP8 weights with bf16 x (W8A16).
    const Tol tol = fp8() && !few ? Tol{0.995, 0.08, false} : kBf16Tol;
    ts.compare("q", *o.q, tol);
    ts.compare("k_cache", *o.kc, tol);
    ts.compare("v_cache", *o.vc, tol);
    ts.compare("attn_out", *o.attn, tol);
    expect_vectors_close(label + " x - x0", difference(ts.read(*o.x, false), x0),
                         difference(ts.read(*o.x, true), x0), tol.min_cos, tol.max_abs_rel);
    ts.check_guards();
  }
};

TEST_P(CudaExpertAttention, ExpertShapesAgainstCpu) {
  run({10, 712, 560, Kind::kAdaRmsNorm, true, 0});   // Pi0.5, 2 views, a short prompt
  run({11, 560, 530, Kind::kRmsNorm, false, 1});     // Pi0: the state row is blind
  run({10, 712, 712, Kind::kAdaRmsNorm, true, 0});   // no gap
  run({1, 40, 3, Kind::kRmsNorm, true, 0});          // fewer keys than key tiles
  run({16, 300, 290, Kind::kAdaRmsNorm, false, 0});  // 16 rows: the most the skinny kernel takes
  run({17, 300, 290, Kind::kAdaRmsNorm, true, 2});   // more rows: the plain composition
}

// The composition with the qkv projection and qkv_split_rope fused into one skinny launch
// (CudaBackend::set_qkv_rope_fusion) against the same composition unfused: q, the
// suffix K/V rows, the attention output and x bit-identical; the fused path taken for <= 16
// rows only.
TEST_P(CudaExpertAttention, QkvRopeFusionIsBitIdentical) {
  for (const AttnCase& c : {AttnCase{10, 712, 560, Kind::kAdaRmsNorm, true, 0},
                            AttnCase{11, 560, 530, Kind::kRmsNorm, false, 1},
                            AttnCase{1, 40, 3, Kind::kRmsNorm, true, 0},
                            AttnCase{17, 300, 290, Kind::kAdaRmsNorm, true, 2}}) {
    const std::string label = label_of(c) + "_QKV_ROPE";
    SCOPED_TRACE(label);
    TwinSet ts(*cpu_, *gpu_, label);
    Operands o = make(ts, c);
    auto run_gpu = [&](bool fuse) {
      ts.gpu_reset();
      cuda().set_qkv_rope_fusion(fuse);
      cuda().reset_linear_stats();
      gpu_->expert_attention(o.x->gpu, o.args(true, c));
      gpu_->synchronize();
      EXPECT_EQ(cuda().linear_stats().qkv_rope, fuse && c.M <= 16 ? 1 : 0) << "path taken";
      std::vector<std::vector<float>> r;
      for (const Twin* t : {o.q, o.kc, o.vc, o.attn, o.x}) r.push_back(ts.read(*t, true));
      return r;
    };
    const auto unfused = run_gpu(false), fused = run_gpu(true);
    const char* names[] = {"q", "k_cache", "v_cache", "attn_out", "x"};
    size_t total = 0;
    for (size_t i = 0; i < fused.size(); ++i) {
      size_t diff = 0;
      for (size_t j = 0; j < fused[i].size(); ++j)
        diff += std::memcmp(&fused[i][j], &unfused[i][j], sizeof(float)) != 0;
      EXPECT_EQ(diff, 0u) << names[i] << ": elements differing between fused and unfused";
      total += diff;
    }
    std::printf("%s: %zu elements of q / k / v / attn_out / x differ fused vs unfused\n",
                label.c_str(), total);
  }
  cuda().set_qkv_rope_fusion(true);
}

// Graph capture: replays equal the eager run bit for bit; repeated eager launches agree.
TEST_P(CudaExpertAttention, GraphReplayAndRepeatsMatchEager) {
  const AttnCase c{11, 560, 530, Kind::kRmsNorm, false, 1};
  TwinSet ts(*cpu_, *gpu_, label_of(c) + "_GRAPH");
  Operands o = make(ts, c);
  auto ops = [&] { gpu_->expert_attention(o.x->gpu, o.args(true, c)); };
  ASSERT_NO_FATAL_FAILURE(expect_repeats_and_graph_match_eager(
      ts, cuda(), 3, "expert_attention failed under capture", ops));
}

INSTANTIATE_TEST_SUITE_P(Weights, CudaExpertAttention, kPrecisions, precision_name);

}  // namespace
}  // namespace frt::gpu_test
