// FP8 (E4M3) in the CUDA backend against exact emulations on the CPU fp32 twin:
//  - upload in FP8 mode: dtype, w_scale = amax / 448, bytes = f32_to_e4m3(w / w_scale), QuantInfo
//    defaults, site names; kParam / kTable / kGemmPrecise unchanged;
//  - many-row FP8 GEMMs (quantized x, cuBLASLt FP8) at SigLIP / Gemma shapes vs the CPU linear on
//    the dequantized weight and the quantized-dequantized input, static (write_quant_scales) and
//    calibrate mode (x_amax == host amax, dynamic scale); bias, GELU, residual, F32 y;
//  - the skinny W8A16 kernel vs the CPU on the dequantized weight (x unquantized), every E4M3 byte;
//  - a captured graph picks up new scales without recapture;
//  - FP8 vs bf16 linear (cos reported);
//  - the bf16 path's cuBLASLt epilogue: GELU is the tanh form, fused bias matches the CPU.
// SKIPPED without a GPU with FP8 tensor cores (sm_89+).
// Run: build/flashrt_gpu_tests --gtest_filter='CudaFp8.*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_fp8.h"
#include "backend/cuda/cuda_skinny_gemm.h"
#include "cuda_twin.h"

namespace frt::gpu_test {
namespace {

constexpr DType kBF = DType::kBF16;
constexpr DType kF = DType::kF32;
using A = Activation;

// Emulations compute what the GPU computes up to fp32 summation order and the final rounding.
constexpr Tol kEmuTol{0.99999, 1e-2, false};

float q8(float v, float scale) { return e4m3_to_f32(f32_to_e4m3(v / scale)) * scale; }

float device_float(const float* p) {
  float v = 0.f;
  EXPECT_EQ(cudaMemcpy(&v, p, sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  return v;
}

class CudaFp8 : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!frt::cuda_available(&why)) GTEST_SKIP() << why;
    if (!frt::cuda_supports_fp8(0, &why)) GTEST_SKIP() << why;
    cpu_ = make_cpu_backend();
    gpu_ = make_cuda_backend(0, Precision::kFP8);
  }
  Backend& cpu() { return *cpu_; }
  Backend& gpu() { return *gpu_; }
  CudaBackend& cuda() { return dynamic_cast<CudaBackend&>(*gpu_); }

  // An FP8 weight [N, K] on the GPU and its dequantized twin (f32) on the CPU.
  WeightTwin fp8_weight(TwinSet& ts, int64_t N, int64_t K, const std::string& name) {
    const float r = 2.f / std::sqrt(static_cast<float>(K));
    WeightTwin w;
    w.values = ts.random(N * K, -r, r);
    float amax = 0.f;
    for (float v : w.values) amax = std::max(amax, std::fabs(v));
    const float ws = amax / kE4M3Max;
    HostTensor hg(kF, {N, K}), hc(kF, {N, K});
    std::memcpy(hg.data(), w.values.data(), hg.nbytes());
    float* c = hc.as<float>();
    for (int64_t i = 0; i < N * K; ++i) c[i] = q8(w.values[i], ws);
    w.gpu = gpu().upload_weight(std::move(hg), name, WeightUse::kGemm);
    w.cpu = cpu().upload_weight(std::move(hc), name, WeightUse::kGemm);
    EXPECT_EQ(w.gpu.dtype, DType::kF8E4M3);
    EXPECT_EQ(device_float(w.gpu.quant->w_scale), ws);
    return w;
  }

  // Applies f to every element of the CPU side of t's view (e.g. quantize-dequantize x).
  void map_cpu_view(Twin& t, const std::function<float(float)>& f) {
    std::vector<float> full(static_cast<size_t>(t.cpu_full.numel()));
    cpu().copy_to_host(full.data(), t.cpu_full, full.size() * sizeof(float));
    for (int64_t r = 0; r < t.rows; ++r)
      for (int64_t c = 0; c < t.cols; ++c) {
        float& v = full[t.off + r * t.ld + c];
        v = f(v);
      }
    cpu().copy_to_device(t.cpu_full, full.data(), full.size() * sizeof(float));
  }
  float view_amax(TwinSet& ts, const Twin& t) {
    float m = 0.f;
    for (float v : ts.read(t, false)) m = std::max(m, std::fabs(v));
    return m;
  }

  std::unique_ptr<Backend> cpu_, gpu_;
};

TEST_F(CudaFp8, UploadQuantizesGemmWeightsOnly) {
  const int64_t N = 48, K = 80;
  TwinSet ts(cpu(), gpu(), "FP8_UPLOAD");
  std::vector<float> v = ts.random(N * K, -3.f, 3.f);
  float amax = 0.f;
  for (float x : v) amax = std::max(amax, std::fabs(x));
  auto host = [&](std::vector<int64_t> shape) {
    HostTensor h(kF, shape);
    std::memcpy(h.data(), v.data(), h.nbytes());
    return h;
  };
  const int sites0 = gpu().quant_sites();
  Tensor w = gpu().upload_weight(host({N, K}), "layer.q", WeightUse::kGemm);
  ASSERT_EQ(w.dtype, DType::kF8E4M3);
  ASSERT_NE(w.quant, nullptr);
  const float ws = amax / kE4M3Max;
  EXPECT_EQ(device_float(w.quant->w_scale), ws);
  EXPECT_EQ(device_float(w.quant->x_scale), 1.f);
  EXPECT_EQ(device_float(w.quant->x_amax), 0.f);
  EXPECT_EQ(w.quant->site, sites0);
  EXPECT_EQ(gpu().quant_sites(), sites0 + 1);
  EXPECT_EQ(gpu().quant_site_names().back(), "layer.q");
  std::vector<uint8_t> bytes(static_cast<size_t>(N * K));
  gpu().copy_to_host(bytes.data(), w, bytes.size());
  int64_t bad = 0;
  for (int64_t i = 0; i < N * K; ++i) bad += bytes[i] != f32_to_e4m3(v[i] / ws);
  EXPECT_EQ(bad, 0) << "fp8 bytes differing from f32_to_e4m3(w / w_scale)";

  EXPECT_EQ(gpu().upload_weight(host({N, K}), "p", WeightUse::kGemmPrecise).dtype, kBF);
  EXPECT_EQ(gpu().upload_weight(host({N, K}), "t", WeightUse::kTable).dtype, kBF);
  EXPECT_EQ(gpu().upload_weight(host({N, K}), "pp", WeightUse::kParam).dtype, kF);
  EXPECT_EQ(gpu().upload_weight(host({N * K}), "b", WeightUse::kParam).dtype, kF);
  EXPECT_EQ(gpu().upload_weight(host({1, N * K}), "row", WeightUse::kGemm).dtype, kF);
  EXPECT_EQ(gpu().quant_sites(), sites0 + 1);
  std::unique_ptr<Backend> bf = make_cuda_backend(0);
  EXPECT_EQ(bf->upload_weight(host({N, K}), "q", WeightUse::kGemm).dtype, kBF);
  EXPECT_EQ(bf->quant_sites(), 0);
}

struct Fp8Case {
  int64_t M, N, K;
  int bias = 0;  // 0 none, 1 uploaded F32 (kParam), 2 BF16 vector
  Activation act = A::kNone;
  bool acc = false;
  DType yt = kBF;
  bool calibrate = false;
};

TEST_F(CudaFp8, ManyRowsMatchesEmulation) {
  const std::vector<Fp8Case> cases = {
      {256, 3456, 1152, 1},                       // SigLIP qkv + bias
      {256, 1152, 1152, 1, A::kNone, true},       // out_proj + bias + residual
      {562, 4304, 1152, 1, A::kGeluTanh},         // fc1 + bias + gelu
      {712, 1152, 4304, 2, A::kNone, true, kF},   // fc2 + bf16 bias + residual, F32 y
      {562, 2560, 2048},                          // Gemma qkv, plain
      {256, 1152, 1152, 0, A::kSilu, false, kBF, true},  // silu (scratch epilogue), calibrate
      {712, 2560, 2048, 1, A::kGeluTanh, false, kF, true},
      {100, 40, 72, 1, A::kNone, true, kBF, true},  // K % 16 != 0: fallback kernel
  };
  for (const Fp8Case& c : cases) {
    std::ostringstream os;
    os << "FP8_LINEAR(M=" << c.M << ",N=" << c.N << ",K=" << c.K << ",bias=" << c.bias
       << ",act=" << act_name(c.act) << ",acc=" << c.acc << ",y=" << dtype_name(c.yt)
       << (c.calibrate ? ",calibrate" : ",static") << ")";
    SCOPED_TRACE(os.str());
    TwinSet ts(cpu(), gpu(), os.str());
    WeightTwin w = fp8_weight(ts, c.N, c.K, "w");
    Twin& x = ts.matrix("x", c.M, c.K, kBF, -1.f, 1.f);
    Twin& y = c.acc ? ts.matrix("y", c.M, c.N, c.yt) : ts.output("y", c.M, c.N, c.yt);
    ts.mark_output(y);
    WeightTwin bw;
    Twin* bt = nullptr;
    if (c.bias == 1) bw = ts.weight({c.N}, "b", -0.5f, 0.5f, WeightUse::kParam);
    if (c.bias == 2) bt = &ts.matrix("b", 1, c.N, kBF, -0.5f, 0.5f);
    const Tensor* bc = c.bias == 1 ? &bw.cpu : bt ? &bt->cpu : nullptr;
    const Tensor* bg = c.bias == 1 ? &bw.gpu : bt ? &bt->gpu : nullptr;
    const float amax = view_amax(ts, x);
    std::vector<float> scales(static_cast<size_t>(gpu().quant_sites()), 1.f);
    float s = 0.8f / kE4M3Max;  // static: |x| > 0.8 saturates
    if (c.calibrate) {
      s = std::max(amax, kFp8AmaxFloor) / kE4M3Max;
      gpu().set_quant_mode(QuantMode::kCalibrate);
      gpu().reset_quant_amax();
    } else {
      scales[w.gpu.quant->site] = s;
      gpu().write_quant_scales(scales);
    }
    map_cpu_view(x, [s](float v) { return q8(v, s); });
    cpu().linear(y.cpu, x.cpu, w.cpu, bc, c.act, c.acc);
    cuda().reset_linear_stats();
    gpu().linear(y.gpu, x.gpu, w.gpu, bg, c.act, c.acc);
    gpu().synchronize();
    const auto& st = cuda().linear_stats();
    std::printf("%s path: lt=%lld lt_scratch=%lld fallback=%lld fp8=%lld skinny=%lld\n",
                os.str().c_str(), static_cast<long long>(st.lt),
                static_cast<long long>(st.lt_scratch), static_cast<long long>(st.fallback),
                static_cast<long long>(st.fp8_lt), static_cast<long long>(st.skinny));
    EXPECT_EQ(st.skinny, 0);
    EXPECT_EQ(st.fallback, c.K % 16 == 0 ? 0 : 1) << "the FP8 cuBLASLt GEMM did not run";
    if (c.calibrate) {
      EXPECT_EQ(gpu().read_quant_amax()[w.gpu.quant->site], amax);
      gpu().set_quant_mode(QuantMode::kStatic);
    }
    ts.compare("y", y, kEmuTol);
    ts.check_guards();
  }
}

TEST_F(CudaFp8, SkinnyW8A16MatchesDequantizedWeight) {
  struct Shape {
    int64_t N, K;
  };
  const std::vector<Shape> shapes = {{2560, 1024}, {1024, 2048}, {8192, 1024}, {1024, 4096}};
  const std::vector<int64_t> rows = {1, 10, 11, 16, 50, 51};
  int pick = 0;
  for (const Shape& sh : shapes) {
    std::ostringstream os;
    os << "FP8_SKINNY(N=" << sh.N << ",K=" << sh.K << ")";
    TwinSet ts(cpu(), gpu(), os.str());
    WeightTwin w = fp8_weight(ts, sh.N, sh.K, "w");
    WeightTwin b = ts.weight({sh.N}, "b", -0.5f, 0.5f, WeightUse::kParam);
    for (int64_t M : rows) {
      const int v = pick++ % 4;
      const Activation act = v == 1 ? A::kGeluTanh : v == 2 ? A::kSilu : A::kNone;
      const bool acc = v == 2 || v == 3;
      const DType yt = v == 3 ? kF : kBF;
      std::ostringstream cs;
      cs << "y(M=" << M << ",act=" << act_name(act) << ",acc=" << acc << ",y=" << dtype_name(yt)
         << ")";
      SCOPED_TRACE(os.str() + cs.str());
      Twin& x = ts.matrix("x", M, sh.K, kBF, -1.f, 1.f);
      Twin& y = acc ? ts.matrix("y", M, sh.N, yt) : ts.output("y", M, sh.N, yt);
      ts.mark_output(y);
      const Tensor* bc = v != 0 ? &b.cpu : nullptr;
      const Tensor* bg = v != 0 ? &b.gpu : nullptr;
      ASSERT_TRUE(skinny_gemm_supported(y.gpu, x.gpu, w.gpu, bg));
      std::printf("%s %s plan: %s\n", os.str().c_str(), cs.str().c_str(),
                  skinny_gemm_plan(cuda(), M, sh.N, sh.K, kBF, DType::kF8E4M3).c_str());
      cpu().linear(y.cpu, x.cpu, w.cpu, bc, act, acc);
      skinny_gemm(cuda(), y.gpu, x.gpu, w.gpu, bg, act, acc);
      gpu().synchronize();
      ts.compare(cs.str(), y, kEmuTol);
    }
    ts.check_guards();
  }
}

TEST_F(CudaFp8, SkinnyDequantizesEveryByte) {
  // w[n, k] = the E4M3 value of byte (k + 7 n) % 256 (NaN bytes -> 0) times 2^-3 with amax 448 *
  // 2^-3, so w_scale = 2^-3 and the fp8 bytes are exactly those; x = one-hot columns: y = w^T
  // entries, exact in f32.
  const int64_t N = 40, K = 256, M = 16;
  TwinSet ts(cpu(), gpu(), "FP8_EVERY_BYTE");
  std::vector<float> wv(static_cast<size_t>(N * K));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const int b = static_cast<int>((k + 7 * n) % 256);
      wv[n * K + k] = (b & 0x7F) == 0x7F ? 0.f : e4m3_to_f32(static_cast<uint8_t>(b)) * 0.125f;
    }
  wv[3] = 448.f * 0.125f;  // amax
  HostTensor hg(kF, {N, K}), hc(kF, {N, K});
  std::memcpy(hg.data(), wv.data(), hg.nbytes());
  std::memcpy(hc.data(), wv.data(), hc.nbytes());
  Tensor wg = gpu().upload_weight(std::move(hg), "w", WeightUse::kGemm);
  Tensor wc = cpu().upload_weight(std::move(hc), "w", WeightUse::kGemm);
  std::vector<float> xv(static_cast<size_t>(M * K), 0.f);
  for (int64_t m = 0; m < M; ++m) xv[m * K + (m * 17) % K] = 1.f;
  Twin& x = ts.nd("x", {M, K}, kBF, xv);
  Twin& y = ts.nd_output("y", {M, N}, kF);
  cpu().linear(y.cpu, x.cpu, wc, nullptr, A::kNone, false);
  skinny_gemm(cuda(), y.gpu, x.gpu, wg, nullptr, A::kNone, false);
  ts.compare("y", y, kExact);
  // Every byte once more through a dense x (sums of all 256 values per row).
  Twin& x2 = ts.matrix("x2", M, K, kBF);
  Twin& y2 = ts.output("y2", M, N, kF);
  cpu().linear(y2.cpu, x2.cpu, wc, nullptr, A::kNone, false);
  skinny_gemm(cuda(), y2.gpu, x2.gpu, wg, nullptr, A::kNone, false);
  ts.compare("y2", y2, kF32Tol);
  ts.check_guards();
}

TEST_F(CudaFp8, GraphPicksUpNewScalesWithoutRecapture) {
  for (int64_t M : {256, 10}) {  // cuBLASLt FP8 path (x scale), skinny path (w scale only)
    std::ostringstream os;
    os << "FP8_GRAPH(M=" << M << ")";
    SCOPED_TRACE(os.str());
    TwinSet ts(cpu(), gpu(), os.str());
    WeightTwin w = fp8_weight(ts, 1152, 1152, "w");
    Twin& x = ts.matrix("x", M, 1152, kBF);
    Twin& y = ts.output("y", M, 1152, kBF);
    std::vector<float> scales(static_cast<size_t>(gpu().quant_sites()), 1.f);
    scales[w.gpu.quant->site] = 1.f / kE4M3Max;
    gpu().write_quant_scales(scales);
    cudaStream_t st = cuda().stream();
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    gpu().linear(y.gpu, x.gpu, w.gpu, nullptr, A::kNone, false);  // warm-up: plans outside
    gpu().synchronize();
    ASSERT_EQ(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    gpu().linear(y.gpu, x.gpu, w.gpu, nullptr, A::kNone, false);
    ASSERT_EQ(cudaStreamEndCapture(st, &graph), cudaSuccess);
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    const std::vector<float> before = ts.read(y, true);
    // New scale: |x| > 0.25 saturates now (M = 256). The skinny path ignores x_scale: same y.
    const float s = 0.25f / kE4M3Max;
    scales[w.gpu.quant->site] = s;
    gpu().write_quant_scales(scales);
    ASSERT_EQ(cudaGraphLaunch(exec, st), cudaSuccess);
    gpu().synchronize();
    if (M > 16) map_cpu_view(x, [s](float v) { return q8(v, s); });
    cpu().linear(y.cpu, x.cpu, w.cpu, nullptr, A::kNone, false);
    ts.compare("y after new scale", y, kEmuTol);
    const std::vector<float> after = ts.read(y, true);
    EXPECT_EQ(before != after, M > 16) << "replay did not follow the new x_scale";
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
}

TEST_F(CudaFp8, CloseToBf16Linear) {
  std::unique_ptr<Backend> bf = make_cuda_backend(0);
  for (int64_t M : {10, 50, 256}) {
    const int64_t N = 2048, K = 2048;
    std::ostringstream os;
    os << "FP8_VS_BF16(M=" << M << ",N=" << N << ",K=" << K << ")";
    TwinSet a(*bf, gpu(), os.str());  // "cpu" side: the bf16 CUDA backend
    WeightTwin w = a.weight({N, K}, "w", -0.05f, 0.05f, WeightUse::kGemm);
    ASSERT_EQ(w.cpu.dtype, kBF);
    ASSERT_EQ(w.gpu.dtype, DType::kF8E4M3);
    Twin& x = a.matrix("x", M, K, kBF, -2.f, 2.f);
    Twin& y = a.output("y", M, N, kF);
    std::vector<float> scales(static_cast<size_t>(gpu().quant_sites()), 1.f);
    scales[w.gpu.quant->site] = view_amax(a, x) / kE4M3Max;
    gpu().write_quant_scales(scales);
    bf->linear(y.cpu, x.cpu, w.cpu, nullptr, A::kNone, false);
    gpu().linear(y.gpu, x.gpu, w.gpu, nullptr, A::kNone, false);
    a.compare("y", y, Tol{0.999, 0.1, false});  // prints cos / max abs: FP8 vs bf16
  }
}

// The bf16 path (BF16 backend) with cuBLASLt epilogues.
TEST_F(CudaFp8, Bf16LtEpilogueGeluIsTanhAndBiasFused) {
  std::unique_ptr<Backend> bf = make_cuda_backend(0);
  CudaBackend& cb = dynamic_cast<CudaBackend&>(*bf);
  cb.set_skinny_gemm_enabled(false);
  struct C {
    int64_t M, N, K;
    DType yt;
    Activation act;
    bool acc;
    Tol tol;
  };
  // F32 y over a short K: fp32 GEMM error ~1e-6, while erf-GELU differs from tanh-GELU by up to
  // ~5e-4: the tight tolerance tells them apart.
  const std::vector<C> cases = {{64, 96, 64, kF, A::kGeluTanh, false, {0.999999, 2e-5, false}},
                                {256, 3456, 1152, kBF, A::kNone, false, kBf16Tol},
                                {256, 4304, 1152, kBF, A::kGeluTanh, false, kBf16Tol},
                                {256, 1152, 4304, kBF, A::kNone, true, kBf16Tol},
                                {200, 1152, 1152, kF, A::kNone, true, kF32LongTol}};
  for (const C& c : cases) {
    std::ostringstream os;
    os << "BF16_LT_EPILOGUE(M=" << c.M << ",N=" << c.N << ",K=" << c.K << ",y="
       << dtype_name(c.yt) << ",act=" << act_name(c.act) << ",acc=" << c.acc << ")";
    SCOPED_TRACE(os.str());
    TwinSet ts(cpu(), *bf, os.str());
    const float wr = 2.f / std::sqrt(static_cast<float>(c.K));
    WeightTwin w = ts.weight({c.N, c.K}, "w", -wr, wr);
    WeightTwin b = ts.weight({c.N}, "b", -1.f, 1.f, WeightUse::kParam);
    Twin& x = ts.matrix("x", c.M, c.K, kBF, -1.5f, 1.5f);
    Twin& y = c.acc ? ts.matrix("y", c.M, c.N, c.yt) : ts.output("y", c.M, c.N, c.yt);
    ts.mark_output(y);
    cpu().linear(y.cpu, x.cpu, w.cpu, &b.cpu, c.act, c.acc);
    cb.reset_linear_stats();
    bf->linear(y.gpu, x.gpu, w.gpu, &b.gpu, c.act, c.acc);
    bf->synchronize();
    const auto& st = cb.linear_stats();
    std::printf("%s path: lt=%lld lt_scratch=%lld fallback=%lld\n", os.str().c_str(),
                static_cast<long long>(st.lt), static_cast<long long>(st.lt_scratch),
                static_cast<long long>(st.fallback));
    EXPECT_EQ(st.lt, 1) << "bias / GELU not fused into the cuBLASLt epilogue";
    ts.compare("y", y, c.tol);
    ts.check_guards();
  }
}

}  // namespace
}  // namespace frt::gpu_test
