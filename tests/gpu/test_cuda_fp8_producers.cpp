// FP8 producer fusion (Backend::gemm_input): before a many-row FP8 GEMM, the RMS norms and GeGLU
// write its quantized input directly and the GEMM skips its quantize pass. The GEMM's result must
// equal, bit for bit, the two-pass path (bf16 output, then the GEMM's own quantize pass, itself
// checked against an exact emulation in test_cuda_fp8.cpp), at the Gemma prefix's shapes; where
// no fusion applies (bf16 backend, calibrate mode, the skinny kernel's few rows) gemm_input
// returns x itself.
// SKIPPED without a GPU with FP8 tensor cores (sm_89+).
// Run: build/flashrt_gpu_tests --gtest_filter='CudaFp8Producers.*'
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_fp8.h"
#include "cuda_twin.h"

namespace frt::gpu_test {
namespace {

constexpr DType kBF = DType::kBF16;
constexpr DType kF = DType::kF32;
using A = Activation;

class CudaFp8Producers : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!frt::cuda_available(&why)) GTEST_SKIP() << why;
    if (!frt::cuda_supports_fp8(0, &why)) GTEST_SKIP() << why;
    cpu_ = make_cpu_backend();
    gpu_ = make_cuda_backend(0, Precision::kFP8);
  }
  Backend& gpu() { return *gpu_; }

  // A static x scale for w's site: inputs here stay within about [-4, 4].
  void set_scale(const Tensor& w, float amax) {
    std::vector<float> scales(static_cast<size_t>(gpu().quant_sites()), 1.f);
    scales[w.quant->site] = amax / kE4M3Max;
    gpu().write_quant_scales(scales);
  }

  // Runs `produce(out)` then linear(y, out, w) twice: into a bf16 buffer (the GEMM quantizes) and
  // into gemm_input(buffer, w) (the producer quantizes); the two y must be identical.
  void expect_fused_equals_two_pass(TwinSet& ts, const WeightTwin& w, Twin& staged, int64_t M,
                                    const std::function<void(Tensor)>& produce, bool accumulate) {
    const int64_t N = w.gpu.rows();
    Twin& y1 = accumulate ? ts.matrix("y1", M, N, kBF) : ts.output("y1", M, N, kBF);
    Twin& y2 = ts.output("y2", M, N, kBF);
    if (accumulate) gpu().copy_to_device(y2.gpu_full, y1.gpu_init.data(), y1.gpu_init.size());
    produce(staged.gpu);
    gpu().linear(y1.gpu, staged.gpu, w.gpu, nullptr, A::kNone, accumulate);
    const Tensor q = gpu().gemm_input(staged.gpu, w.gpu);
    ASSERT_EQ(q.dtype, DType::kF8E4M3) << "gemm_input did not fuse at M = " << M;
    ASSERT_EQ(q.quant, w.gpu.quant);
    produce(q);
    gpu().linear(y2.gpu, q, w.gpu, nullptr, A::kNone, accumulate);
    gpu().synchronize();
    const std::vector<float> a = ts.read(y1, true), b = ts.read(y2, true);
    double dot = 0, na = 0, nb = 0;
    size_t differ = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      dot += double(a[i]) * b[i], na += double(a[i]) * a[i], nb += double(b[i]) * b[i];
      differ += a[i] != b[i] && !(std::isnan(a[i]) && std::isnan(b[i]));
    }
    std::printf("[ %s ] fused vs two-pass: %zu of %zu outputs differ, cos=%.9f\n",
                ts.label().c_str(), differ, a.size(), dot / std::sqrt(na * nb + 1e-300));
    EXPECT_EQ(differ, 0u);
  }

  std::unique_ptr<Backend> cpu_, gpu_;
};

TEST_F(CudaFp8Producers, RmsNormsThenGemmEqualTwoPass) {
  constexpr int64_t M = 200, D = 2048, N = 2560;  // prefix rows (a padded prompt), qkv
  for (bool ada : {false, true}) {
    std::ostringstream os;
    os << "FP8_NORM_GEMM(" << (ada ? "ada" : "rms") << ")";
    TwinSet ts(*cpu_, gpu(), os.str());
    const float r = 2.f / std::sqrt(static_cast<float>(D));
    WeightTwin w = ts.weight({N, D}, "w", -r, r);
    ASSERT_EQ(w.gpu.dtype, DType::kF8E4M3);
    set_scale(w.gpu, 4.f);
    Twin& x = ts.matrix("x", M, D, kBF, -2.f, 2.f);
    Twin& scale = ts.matrix("scale", 1, D, kF, 0.5f, 1.5f);
    Twin& shift = ts.matrix("shift", 1, D, kF, -0.5f, 0.5f);
    Twin& n = ts.output("n", M, D, kBF);
    expect_fused_equals_two_pass(
        ts, w, n, M,
        [&](Tensor out) {
          if (ada)
            gpu().add_ada_rms_norm(x.gpu, nullptr, nullptr, out, scale.gpu, shift.gpu, 1e-6f);
          else
            gpu().add_rms_norm(x.gpu, nullptr, out, scale.gpu, 1e-6f);
        },
        false);
  }
}

TEST_F(CudaFp8Producers, GegluThenGemmEqualsTwoPass) {
  constexpr int64_t M = 200, F = 4096, N = 1024;  // a down projection with the residual add
  TwinSet ts(*cpu_, gpu(), "FP8_GEGLU_GEMM");
  const float r = 2.f / std::sqrt(static_cast<float>(F));
  WeightTwin w = ts.weight({N, F}, "w", -r, r);
  set_scale(w.gpu, 3.f);
  Twin& gu = ts.matrix("gate_up", M, 2 * F, kBF, -2.f, 2.f);
  Twin& h = ts.output("h", M, F, kBF);
  expect_fused_equals_two_pass(ts, w, h, M, [&](Tensor out) { gpu().geglu(out, gu.gpu); }, true);
}

TEST_F(CudaFp8Producers, NoFusionWhereTheGemmDoesNotQuantize) {
  TwinSet ts(*cpu_, gpu(), "FP8_GEMM_INPUT_IDENTITY");
  WeightTwin w = ts.weight({1024, 2048}, "w", -0.05f, 0.05f);
  Twin& many = ts.output("many", 200, 2048, kBF);
  Twin& few = ts.output("few", 10, 2048, kBF);  // the skinny kernel (W8A16): x stays bf16
  EXPECT_EQ(gpu().gemm_input(few.gpu, w.gpu).data, few.gpu.data);
  EXPECT_EQ(gpu().gemm_input(many.gpu, w.gpu).dtype, DType::kF8E4M3);
  gpu().set_quant_mode(QuantMode::kCalibrate);  // calibration measures the bf16 input
  EXPECT_EQ(gpu().gemm_input(many.gpu, w.gpu).data, many.gpu.data);
  gpu().set_quant_mode(QuantMode::kStatic);
  std::unique_ptr<Backend> bf16 = make_cuda_backend(0, Precision::kBF16);
  const Tensor x = bf16->alloc(kBF, {200, 2048}, "x");
  HostTensor hw(kF, {1024, 2048});
  for (int64_t i = 0; i < hw.numel(); ++i) hw.as<float>()[i] = 0.01f * static_cast<float>(i % 7 + 1);
  const Tensor wbf = bf16->upload_weight(std::move(hw), "w", WeightUse::kGemm);
  EXPECT_EQ(bf16->gemm_input(x, wbf).data, x.data);
  EXPECT_EQ(bf16->gemm_input(x, wbf).dtype, kBF);
}

}  // namespace
}  // namespace frt::gpu_test
