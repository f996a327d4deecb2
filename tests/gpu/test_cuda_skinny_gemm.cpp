// The skinny weight-streaming GEMM (src/backend/cuda/cuda_skinny_gemm.cu) through
// CudaBackend::linear against the CPU fp32 twin: every expert shape (qkv 1024->2560, o
// 2048->1024, gate_up 1024->8192, down 4096->1024, action in/out) at M = 1, 10, 17, 50, 64 with
// bias / activation / residual combos, F32 and BF16 x and y, strided x and y; odd sizes (K tails,
// N not a multiple of the tile, empty k-splits); F32 x keeping fp32 accuracy; what the kernel
// supports and what linear() routes to it; agreement with cuBLASLt; capture into a CUDA graph
// (replay == eager, bit for bit) with and without programmatic dependent launch. The kernel
// runs through skinny_gemm() directly, so every supported shape is covered whether or not
// linear() currently routes it there (tests/gpu/test_cuda_ops.cpp covers the routed calls).
// SKIPPED without a GPU.
// Run: build/flashrt_gpu_tests --gtest_filter='CudaSkinnyGemm.*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_skinny_gemm.h"
#include "cuda_twin.h"

namespace frt::gpu_test {
namespace {

constexpr DType kBF = DType::kBF16;
constexpr DType kF = DType::kF32;
using A = Activation;

struct SkinnyCase {
  int64_t M;
  DType xt = kBF, yt = kBF;
  int bias = 0;  // 0: none, 1: F32 vector, 2: BF16 vector
  Activation act = A::kNone;
  bool acc = false;
  int64_t x_ld = 0, x_col0 = 0, y_ld = 0, y_col0 = 0;
};

std::string case_label(const SkinnyCase& c) {
  std::ostringstream os;
  os << "y(M=" << c.M << ",x=" << dtype_name(c.xt) << ",y=" << dtype_name(c.yt) << ",bias="
     << (c.bias == 0   ? "none"
         : c.bias == 1 ? "F32"
                       : "BF16")
     << ",act=" << act_name(c.act) << ",acc=" << c.acc;
  if (c.x_ld) os << ",x_ld=" << c.x_ld << ",x_col0=" << c.x_col0;
  if (c.y_ld) os << ",y_ld=" << c.y_ld << ",y_col0=" << c.y_col0;
  os << ")";
  return os.str();
}

class CudaSkinnyGemm : public CudaOps {
 protected:
  CudaBackend& cuda() { return dynamic_cast<CudaBackend&>(gpu()); }

  // Cases sharing one weight w[N, K] (uploaded once): the CPU twin's linear against the skinny
  // kernel (supported = true; asserts the kernel takes the operands) or against linear()
  // (supported = false: operands the kernel must refuse), compared with `tol`.
  void run_shape(int64_t K, int64_t N, const std::vector<SkinnyCase>& cases, bool supported = true,
                 Tol tol = kBf16Tol) {
    std::ostringstream os;
    os << "SKINNY_LINEAR(K=" << K << ",N=" << N << ")";
    const std::string label = os.str();
    SCOPED_TRACE(label);
    TwinSet ts(cpu(), gpu(), label);
    const float wr = 2.f / std::sqrt(static_cast<float>(K));  // outputs of order 1
    WeightTwin w = ts.weight({N, K}, "linear.weight", -wr, wr);
    ASSERT_EQ(w.gpu.dtype, kBF);
    for (const SkinnyCase& c : cases) {
      const std::string name = case_label(c);
      SCOPED_TRACE(name);
      if (supported)
        std::printf("%s %s plan: %s\n", label.c_str(), name.c_str(),
                    skinny_gemm_plan(cuda(), c.M, N, K, c.xt).c_str());
      Twin& x = ts.matrix("x", c.M, K, c.xt, -1.f, 1.f, c.x_ld, c.x_col0);
      Twin& y = c.acc ? ts.matrix("y", c.M, N, c.yt, -1.f, 1.f, c.y_ld, c.y_col0)
                      : ts.output("y", c.M, N, c.yt, c.y_ld, c.y_col0);
      ts.mark_output(y);
      Twin* b = c.bias ? &ts.matrix("bias", 1, N, c.bias == 1 ? kF : kBF, -0.5f, 0.5f) : nullptr;
      const Tensor* bg = b ? &b->gpu : nullptr;
      ASSERT_EQ(skinny_gemm_supported(y.gpu, x.gpu, w.gpu, bg), supported);
      cpu().linear(y.cpu, x.cpu, w.cpu, b ? &b->cpu : nullptr, c.act, c.acc);
      if (supported)
        skinny_gemm(cuda(), y.gpu, x.gpu, w.gpu, bg, c.act, c.acc);
      else
        gpu().linear(y.gpu, x.gpu, w.gpu, bg, c.act, c.acc);
      gpu().synchronize();
      ts.compare(name, y, tol);
      ts.check_guards();
    }
  }
};

// The combos every expert shape cycles through (two per shape and row count).
std::vector<SkinnyCase> combos_for(int64_t M, int64_t K, int64_t N, int pick) {
  const std::vector<SkinnyCase> all = {
      {M},                                                      // plain
      {M, kBF, kBF, 1, A::kGeluTanh},                           // F32 bias + gelu
      {M, kBF, kBF, 2, A::kSilu, true},                         // BF16 bias + silu + residual
      {M, kBF, kF, 0, A::kNone, true},                          // residual into F32 y
      {M, kBF, kBF, 1, A::kNone, false, K + 64, 16, N + 3, 1},  // strided x and y
      {M, kF, kBF, 1, A::kGeluTanh, true},                      // F32 x, everything
  };
  const size_t n = all.size();
  return {all[pick % n], all[(pick + 3) % n]};
}

TEST_F(CudaSkinnyGemm, ExpertShapesEveryRowCount) {
  struct Shape {
    int64_t K, N;
  };
  const std::vector<Shape> shapes = {{1024, 2560}, {2048, 1024}, {1024, 8192}, {4096, 1024}};
  const std::vector<int64_t> rows = {1, 10, 17, 50, 64};
  for (size_t s = 0; s < shapes.size(); ++s) {
    std::vector<SkinnyCase> cases;
    for (size_t r = 0; r < rows.size(); ++r)
      for (const SkinnyCase& c :
           combos_for(rows[r], shapes[s].K, shapes[s].N, static_cast<int>(s + r)))
        cases.push_back(c);
    run_shape(shapes[s].K, shapes[s].N, cases);
  }
}

TEST_F(CudaSkinnyGemm, ActionProjections) {
  // action_in_proj: f32 noisy actions [H, 32] -> [H, 1024] + bias.
  run_shape(32, 1024, {{10, kF, kBF, 1}, {50, kF, kBF, 1}, {1, kF, kBF, 1}});
  // action_out_proj: [H, 1024] -> f32 velocity [H, 32] + bias (and a residual variant).
  run_shape(1024, 32, {{10, kBF, kF, 1}, {50, kBF, kF, 1}, {64, kBF, kF, 2, A::kNone, true}});
}

TEST_F(CudaSkinnyGemm, OddSizes) {
  // K tails inside a 32-k step, N not a multiple of the row tile, m-tiles partly used.
  run_shape(8, 3, {{1}, {64, kBF, kF, 1}});  // ([1, K] weights stay F32 on upload: N >= 2)
  run_shape(72, 37, {{3, kBF, kBF, 1, A::kGeluTanh}, {9, kBF, kF, 2, A::kSilu, true}});
  run_shape(264, 200, {{33, kBF, kBF, 2, A::kSilu, true}, {8, kF, kF, 1}});
  run_shape(136, 1000, {{64, kBF, kBF, 1, A::kGeluTanh, false, 0, 0, 1003, 3}, {16}});
  // K = 4104: odd chunk counts per k-split, a partial last split and empty splits.
  run_shape(4104, 96, {{17, kBF, kBF, 1}, {50, kBF, kF, 0, A::kNone, true}});
  // Deep K over few rows: many chunks per CTA.
  run_shape(8192, 64, {{50}, {2, kF, kBF, 2, A::kGeluTanh}});
  // x as a column slice of a wider buffer (16-byte aligned), y a slice with an odd stride.
  run_shape(2048, 1024,
            {{10, kBF, kBF, 0, A::kNone, true, 2560, 512, 1031, 7},
             {50, kF, kF, 1, A::kSilu, false, 2052, 4, 1024, 0}});
}

TEST_F(CudaSkinnyGemm, F32InputKeepsFp32Accuracy) {
  // x in F32 with values that are not bf16-exact: the hi+lo split keeps the product near fp32
  // (rounding x to bf16 would miss this tolerance by ~10x).
  const Tol tight{0.999999, 1e-4, false};
  for (int64_t M : {10, 50}) {
    std::ostringstream os;
    os << "SKINNY_F32_X(M=" << M << ",K=32,N=1024)";
    SCOPED_TRACE(os.str());
    TwinSet ts(cpu(), gpu(), os.str());
    WeightTwin w = ts.weight({1024, 32}, "action_in_proj.weight", -0.35f, 0.35f);
    std::mt19937 rng(static_cast<uint32_t>(M));
    std::uniform_real_distribution<float> dist(-3.f, 3.f);
    std::vector<float> xs(static_cast<size_t>(M * 32));
    for (float& v : xs) v = dist(rng);
    Twin& x = ts.nd("x", {M, 32}, kF, xs);
    Twin& b = ts.matrix("bias", 1, 1024, kF, -0.5f, 0.5f);
    Twin& y = ts.nd_output("y", {M, 1024}, kF);
    ASSERT_TRUE(skinny_gemm_supported(y.gpu, x.gpu, w.gpu, &b.gpu));
    cpu().linear(y.cpu, x.cpu, w.cpu, &b.cpu, A::kNone, false);
    skinny_gemm(cuda(), y.gpu, x.gpu, w.gpu, &b.gpu, A::kNone, false);
    ts.compare("y", y, tight);
    ts.check_guards();
  }
}

TEST_F(CudaSkinnyGemm, SupportedAndRouted) {
  // Outside the kernel's domain (linear() stays correct through cuBLASLt / the fallback):
  // M > 64, K not a multiple of 8, x rows not 16-byte aligned.
  run_shape(64, 32, {{65}}, false);
  run_shape(20, 7, {{5}}, false);
  run_shape(72, 40, {{33, kBF, kBF, 0, A::kNone, true, 217, 3, 41, 1}}, false);

  // What linear() routes to the kernel: the shapes where it measured faster than cuBLASLt
  // (M <= 16, at most 17 MB of bf16 weights: gate_up is in, measured in the model), and nothing
  // once the switch is off.
  struct Route {
    int64_t M, K, N;
    DType xt;
    bool routed;
  };
  const std::vector<Route> routes = {{10, 1024, 2560, kBF, true},  {10, 2048, 1024, kBF, true},
                                     {16, 4096, 1024, kBF, true},  {10, 32, 1024, kF, true},
                                     {10, 1024, 32, kBF, true},    {1, 1024, 2560, kBF, true},
                                     {10, 1024, 8192, kBF, true},  {10, 4096, 4096, kBF, false},
                                     {17, 1024, 2560, kBF, false},
                                     {50, 4096, 1024, kBF, false}, {64, 1024, 32, kBF, false}};
  for (const Route& rt : routes) {
    std::ostringstream os;
    os << "SKINNY_ROUTE(M=" << rt.M << ",K=" << rt.K << ",N=" << rt.N << ")";
    SCOPED_TRACE(os.str());
    TwinSet ts(cpu(), gpu(), os.str());
    WeightTwin w = ts.weight({rt.N, rt.K}, "w");
    Twin& x = ts.matrix("x", rt.M, rt.K, rt.xt);
    Twin& y = ts.output("y", rt.M, rt.N, kBF);
    EXPECT_TRUE(skinny_gemm_supported(y.gpu, x.gpu, w.gpu, nullptr));
    EXPECT_EQ(skinny_gemm_would_handle(cuda(), y.gpu, x.gpu, w.gpu, nullptr), rt.routed);
    cuda().set_skinny_gemm_enabled(false);
    EXPECT_FALSE(skinny_gemm_would_handle(cuda(), y.gpu, x.gpu, w.gpu, nullptr));
    cuda().set_skinny_gemm_enabled(true);
  }
}

TEST_F(CudaSkinnyGemm, AgreesWithCublasLt) {
  // Same inputs through both paths of linear(): skinny (routing on) vs cuBLASLt (off).
  TwinSet ts(cpu(), gpu(), "SKINNY_VS_CUBLASLT(M=50,K=4096,N=1024)");
  WeightTwin w = ts.weight({1024, 4096}, "down", -0.03f, 0.03f);
  Twin& x = ts.matrix("x", 50, 4096, kBF);
  Twin& y_lt = ts.output("y_cublaslt", 50, 1024, kF);
  Twin& y_sk = ts.output("y_skinny", 50, 1024, kF);
  cuda().set_skinny_gemm_enabled(false);
  gpu().linear(y_lt.gpu, x.gpu, w.gpu, nullptr, A::kNone, false);
  cuda().set_skinny_gemm_enabled(true);
  skinny_gemm(cuda(), y_sk.gpu, x.gpu, w.gpu, nullptr, A::kNone, false);
  const std::vector<float> lt = ts.read(y_lt, true), sk = ts.read(y_sk, true);
  double max_err = 0, max_ref = 0;
  for (size_t i = 0; i < lt.size(); ++i) {
    ASSERT_TRUE(std::isfinite(sk[i])) << "element " << i;
    max_err = std::max(max_err, static_cast<double>(std::fabs(lt[i] - sk[i])));
    max_ref = std::max(max_ref, static_cast<double>(std::fabs(lt[i])));
  }
  std::printf("SKINNY_VS_CUBLASLT max_abs=%g of max|ref| %g\n", max_err, max_ref);
  EXPECT_LE(max_err, 1e-4 * max_ref);  // both fp32 accumulations of the same bf16 products
}

// A chain of skinny GEMMs (the last one reads what the one before wrote), eager against the CPU
// twin, twice eager (bit-identical), and captured into a CUDA graph (replays bit-identical to
// eager); with and without programmatic dependent launch.
void graph_case(CudaBackend& cuda, Backend& cpu, bool pdl) {
  const std::string label = std::string("SKINNY_GRAPH(pdl=") + (pdl ? "1" : "0") + ")";
  SCOPED_TRACE(label);
  cuda.set_skinny_gemm_pdl(pdl);
  TwinSet ts(cpu, cuda, label);
  WeightTwin qkv = ts.weight({2560, 1024}, "qkv", -0.06f, 0.06f);
  WeightTwin down = ts.weight({1024, 4096}, "down", -0.03f, 0.03f);
  WeightTwin ain = ts.weight({1024, 32}, "action_in", -0.3f, 0.3f);
  WeightTwin aout = ts.weight({32, 1024}, "action_out", -0.06f, 0.06f);
  Twin& x = ts.matrix("x", 10, 1024, kBF);
  Twin& xd = ts.matrix("x_down", 50, 4096, kBF);
  Twin& act = ts.matrix("actions", 10, 32, kF);
  Twin& bias = ts.matrix("bias", 1, 2560, kF);
  Twin& h = ts.output("qkv_out", 10, 2560, kBF);
  Twin& r = ts.matrix("residual", 50, 1024, kBF);
  Twin& s = ts.output("suffix", 10, 1024, kBF);
  Twin& v = ts.output("velocity", 10, 32, kF);
  ts.mark_output(r);
  // CPU: the twin's linear; CUDA: the skinny kernel for every GEMM of the chain.
  auto run = [&](Backend& be, bool gpu) {
    auto op = [&](Twin& y, Twin& xx, WeightTwin& w, Twin* b, Activation a, bool acc) {
      if (gpu)
        skinny_gemm(cuda, y.gpu, xx.gpu, w.gpu, b ? &b->gpu : nullptr, a, acc);
      else
        be.linear(y.cpu, xx.cpu, w.cpu, b ? &b->cpu : nullptr, a, acc);
    };
    op(h, x, qkv, &bias, A::kGeluTanh, false);
    op(r, xd, down, nullptr, A::kNone, true);
    op(s, act, ain, nullptr, A::kSilu, false);
    op(v, s, aout, nullptr, A::kNone, false);
  };

  run(cpu, false);
  ts.gpu_reset();
  run(cuda, true);
  cuda.synchronize();
  for (Twin* out : {&h, &r, &s, &v}) ts.compare(out->what, *out, kBf16Tol);
  const auto eager = ts.gpu_snapshot();
  ts.gpu_reset();
  run(cuda, true);  // a second eager run: no dependence on scheduling
  cuda.synchronize();
  EXPECT_TRUE(ts.gpu_snapshot() == eager) << "two eager runs differ";

  ASSERT_NO_FATAL_FAILURE(expect_graph_matches_eager(
      ts, cuda, eager, "skinny linear failed under stream capture", [&] { run(cuda, true); }));
  cuda.set_skinny_gemm_pdl(true);
}

TEST_F(CudaSkinnyGemm, GraphReplayMatchesEagerBitForBit) {
  graph_case(cuda(), cpu(), true);
  graph_case(cuda(), cpu(), false);
}

}  // namespace
}  // namespace frt::gpu_test
