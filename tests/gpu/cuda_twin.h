// Twin buffers for the CUDA op tests: every operand exists on the CPU reference backend (f32)
// and on the CUDA backend (its own dtype, usually bf16) with the same values — random inputs
// are rounded to bf16 first, so the comparison measures kernel error, not input rounding.
// Buffers carry guard rows / elements around the view an op sees; outputs start as NaN on both
// sides. compare() prints "LABEL name: cos=... max_abs=... worst_index=..." and fails the test
// past the tolerance; check_guards() fails when a CUDA op wrote outside its outputs' views.
// Also the pieces several tests repeat: AttnShape (an attention case's geometry, label and
// params) and CapturedGraph / expect_graph_matches_eager (capture ops into a CUDA graph on the
// backend's stream, replay, compare with an eager run bit for bit).
// Used by tests/gpu/test_cuda_*.cpp. Header-only (the GPU test binary globs test_*.cpp only).
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/status.h"
#include "core/tensor.h"

namespace frt::gpu_test {

// ---- tolerances, in one place ----
struct Tol {
  double min_cos;        // cosine(got, want) >= min_cos
  double max_abs_rel;    // max |got - want| <= max_abs_rel * max |want|
  bool round_want_bf16;  // compare against the reference rounded to bf16 (exact bf16 stages)
};
// bf16 storage / bf16 GEMM operands: ~8 mantissa bits per stored value.
inline constexpr Tol kBf16Tol{0.999, 2e-2, false};
// f32 outputs computed in fp32 from identical inputs (order of sums may differ).
inline constexpr Tol kF32Tol{0.999999, 1e-5, false};
// f32 outputs of long fp32 reductions with exp / reordered sums (attention) vs the fp64 CPU.
inline constexpr Tol kF32LongTol{0.99999, 1e-4, false};
// Bit-exact f32 stages (resize's integer stage, euler update).
inline constexpr Tol kExact{1.0, 0.0, false};
// Bit-exact up to the final rounding to bf16.
inline constexpr Tol kExactBf16{1.0, 0.0, true};

inline float round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

inline uint64_t seed_of(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return h;
}

struct Twin {
  std::string what;
  Tensor cpu_full, gpu_full;                    // 1-D allocations
  Tensor cpu, gpu;                              // the views ops receive
  int64_t off = 0, rows = 0, cols = 0, ld = 0;  // the view inside the full buffer, in elements
  std::vector<uint8_t> gpu_init;                // gpu_full's bytes as uploaded
  bool output = false;                          // the view may change
};

struct WeightTwin {
  Tensor cpu, gpu;
  std::vector<float> values;
};

class TwinSet {
 public:
  TwinSet(Backend& cpu, Backend& gpu, const std::string& label)
      : cpu_(cpu), gpu_(gpu), label_(label), rng_(seed_of(label)) {}

  const std::string& label() const { return label_; }

  // Uniform in [lo, hi), rounded to bf16, never exactly 0.
  std::vector<float> random(int64_t n, float lo = -1.f, float hi = 1.f) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) {
      do x = round_bf16(dist(rng_));
      while (x == 0.f);
    }
    return v;
  }
  int random_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  // A [rows, cols] input at column col0 of rows with stride ld (0: cols), between guard rows.
  Twin& matrix(const std::string& what, int64_t rows, int64_t cols, DType gpu_dtype,
               float lo = -1.f, float hi = 1.f, int64_t ld = 0, int64_t col0 = 0) {
    const int64_t lde = ld ? ld : cols;
    return make(what, rows, cols, lde, lde + col0, (rows + 2) * lde, gpu_dtype,
                random((rows + 2) * lde, lo, hi), false, {});
  }
  // An output: NaN everywhere on both sides (an op must write every element it owns).
  Twin& output(const std::string& what, int64_t rows, int64_t cols, DType gpu_dtype, int64_t ld = 0,
               int64_t col0 = 0) {
    const int64_t lde = ld ? ld : cols;
    Twin& t = make(what, rows, cols, lde, lde + col0, (rows + 2) * lde, gpu_dtype,
                   std::vector<float>((rows + 2) * lde, std::nanf("")), false, {});
    t.output = true;
    return t;
  }
  // A contiguous n-D input with `values` (numel), 64 guard elements on each side.
  Twin& nd(const std::string& what, const std::vector<int64_t>& shape, DType gpu_dtype,
           const std::vector<float>& values) {
    const int64_t n = static_cast<int64_t>(values.size());
    std::vector<float> full = random(n + 128);
    std::copy(values.begin(), values.end(), full.begin() + 64);
    return make(what, 1, n, n, 64, n + 128, gpu_dtype, full, false, shape);
  }
  Twin& nd_output(const std::string& what, const std::vector<int64_t>& shape, DType gpu_dtype) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    Twin& t = make(what, 1, n, n, 64, n + 128, gpu_dtype,
                   std::vector<float>(n + 128, std::nanf("")), false, shape);
    t.output = true;
    return t;
  }
  // Integer data (u8 images, i32 ids): the same bytes on both sides, no guards.
  Twin& raw(const std::string& what, DType dtype, const std::vector<int64_t>& shape,
            const void* bytes) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    Twin t;
    t.what = what;
    t.rows = 1;
    t.cols = t.ld = n;
    t.cpu_full = cpu_.alloc(dtype, {n}, what.c_str());
    t.gpu_full = gpu_.alloc(dtype, {n}, what.c_str());
    const size_t nb = static_cast<size_t>(n) * dtype_size(dtype);
    cpu_.copy_to_device(t.cpu_full, bytes, nb);
    gpu_.copy_to_device(t.gpu_full, bytes, nb);
    t.gpu_init.assign(static_cast<const uint8_t*>(bytes), static_cast<const uint8_t*>(bytes) + nb);
    t.cpu = make_view(t.cpu_full.data, dtype, t.cpu_full.device, shape);
    t.gpu = make_view(t.gpu_full.data, dtype, t.gpu_full.device, shape);
    twins_.push_back(std::move(t));
    return twins_.back();
  }
  // A weight through upload_weight on both backends (values bf16-exact, so dtype choice is free).
  // An FP8 GEMM weight [N, K] (the CUDA backend must be kFP8: it stores E4M3 with a per-tensor
  // scale) and, on the CPU side, the values it dequantizes to, so the CPU twin computes with what
  // the kernels read.
  WeightTwin weight_fp8(int64_t N, int64_t K, const std::string& name, float lo, float hi) {
    WeightTwin w;
    w.values = random(N * K, lo, hi);
    float amax = 0.f;
    for (float v : w.values) amax = std::max(amax, std::fabs(v));
    const float ws = amax / kE4M3Max;
    HostTensor hg(DType::kF32, {N, K}), hc(DType::kF32, {N, K});
    std::memcpy(hg.data(), w.values.data(), hg.nbytes());
    float* c = hc.as<float>();
    for (int64_t i = 0; i < N * K; ++i) c[i] = e4m3_to_f32(f32_to_e4m3(w.values[i] / ws)) * ws;
    w.gpu = gpu_.upload_weight(std::move(hg), name, WeightUse::kGemm);
    w.cpu = cpu_.upload_weight(std::move(hc), name, WeightUse::kGemm);
    EXPECT_EQ(w.gpu.dtype, DType::kF8E4M3) << name << ": expected an FP8 (kFP8) CUDA backend";
    return w;
  }
  WeightTwin weight(const std::vector<int64_t>& shape, const std::string& name, float lo = -1.f,
                    float hi = 1.f, WeightUse use = WeightUse::kGemm) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    WeightTwin w;
    w.values = random(n, lo, hi);
    HostTensor hc(DType::kF32, shape), hg(DType::kF32, shape);
    std::memcpy(hc.data(), w.values.data(), hc.nbytes());
    std::memcpy(hg.data(), w.values.data(), hg.nbytes());
    w.cpu = cpu_.upload_weight(std::move(hc), name, use);
    w.gpu = gpu_.upload_weight(std::move(hg), name, use);
    return w;
  }
  void mark_output(Twin& t) { t.output = true; }

  // Every CUDA buffer's bytes (graph-capture test: compare two runs of the same ops).
  std::vector<std::vector<uint8_t>> gpu_snapshot() {
    std::vector<std::vector<uint8_t>> all;
    for (const Twin& t : twins_) {
      all.emplace_back(t.gpu_full.nbytes());
      gpu_.copy_to_host(all.back().data(), t.gpu_full, all.back().size());
    }
    return all;
  }
  // Puts every CUDA buffer back to its uploaded bytes (inputs and NaN-poisoned outputs).
  void gpu_reset() {
    for (const Twin& t : twins_)
      gpu_.copy_to_device(t.gpu_full, t.gpu_init.data(), t.gpu_init.size());
    gpu_.synchronize();
  }

  // The view's rows x cols as f32 (packed), from the CPU (gpu = false) or the CUDA side.
  std::vector<float> read(const Twin& t, bool gpu) {
    Backend& be = gpu ? gpu_ : cpu_;
    const Tensor& full = gpu ? t.gpu_full : t.cpu_full;
    std::vector<uint8_t> bytes(full.nbytes());
    be.copy_to_host(bytes.data(), full, bytes.size());
    std::vector<float> all(static_cast<size_t>(full.numel()));
    convert_to_f32(bytes.data(), full.dtype, all.data(), all.size());
    std::vector<float> out(static_cast<size_t>(t.rows * t.cols));
    for (int64_t r = 0; r < t.rows; ++r)
      for (int64_t c = 0; c < t.cols; ++c) out[r * t.cols + c] = all[t.off + r * t.ld + c];
    return out;
  }

  // Compares the CUDA view with the CPU view; prints one line; fails the test past `tol`.
  bool compare(const std::string& name, const Twin& t, Tol tol) {
    const std::vector<float> want = read(t, false), got = read(t, true);
    double dot = 0, nw = 0, ng = 0, max_abs = 0, max_ref = 0;
    int64_t worst = 0, first_bad = -1, nonfinite = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      const double w = tol.round_want_bf16 ? round_bf16(want[i]) : want[i], g = got[i];
      if (!std::isfinite(w) || !std::isfinite(g)) {
        if (nonfinite++ == 0) first_bad = static_cast<int64_t>(i);
        continue;
      }
      dot += w * g;
      nw += w * w;
      ng += g * g;
      max_ref = std::max(max_ref, std::fabs(w));
      const double e = std::fabs(w - g);
      if (e > max_abs) {
        max_abs = e;
        worst = static_cast<int64_t>(i);
      }
    }
    if (first_bad >= 0) worst = first_bad;  // report the first NaN/inf instead
    const double cos = nw == 0 && ng == 0 ? 1.0 : dot / std::sqrt(nw * ng);
    const bool ok = nonfinite == 0 && !want.empty() && cos >= tol.min_cos - 1e-12 &&
                    max_abs <= tol.max_abs_rel * max_ref;
    std::ostringstream os;
    os << label_ << " " << name << ": cos=" << cos << " max_abs=" << max_abs << " ("
       << (max_ref > 0 ? max_abs / max_ref : 0.0) << " of max|ref| " << max_ref
       << ") worst_index=" << worst << " [row " << worst / std::max<int64_t>(t.cols, 1) << ", col "
       << worst % std::max<int64_t>(t.cols, 1) << "] got=" << (want.empty() ? 0.f : got[worst])
       << " want=" << (want.empty() ? 0.f : want[worst]) << " nonfinite=" << nonfinite
       << (ok ? "" : "  FAIL");
    std::printf("%s\n", os.str().c_str());
    std::fflush(stdout);
    if (!ok) ADD_FAILURE() << os.str();
    return ok;
  }

  // Every CUDA buffer's bytes outside the output views are as uploaded.
  void check_guards() {
    for (const Twin& t : twins_) {
      std::vector<uint8_t> now(t.gpu_full.nbytes());
      gpu_.copy_to_host(now.data(), t.gpu_full, now.size());
      const size_t es = dtype_size(t.gpu_full.dtype);
      int64_t bad = 0, first = -1;
      for (int64_t e = 0; e < t.gpu_full.numel(); ++e) {
        const int64_t rel = e - t.off;
        const bool in_view = rel >= 0 && rel / t.ld < t.rows && rel % t.ld < t.cols;
        if (t.output && in_view) continue;
        if (std::memcmp(now.data() + e * es, t.gpu_init.data() + e * es, es) != 0) {
          if (bad++ == 0) first = e;
        }
      }
      if (bad)
        ADD_FAILURE() << label_ << ": " << bad << " element(s) of CUDA buffer '" << t.what
                      << "' changed outside the op's outputs (first at element " << first
                      << " of the allocation, view offset " << t.off << ", ld " << t.ld << ")";
    }
  }

 private:
  Twin& make(const std::string& what, int64_t rows, int64_t cols, int64_t ld, int64_t off,
             int64_t total, DType gpu_dtype, const std::vector<float>& full_values, bool output,
             const std::vector<int64_t>& nd_shape) {
    Twin t;
    t.what = what;
    t.rows = rows;
    t.cols = cols;
    t.ld = ld;
    t.off = off;
    t.output = output;
    t.cpu_full = cpu_.alloc(DType::kF32, {total}, what.c_str());
    t.gpu_full = gpu_.alloc(gpu_dtype, {total}, what.c_str());
    cpu_.copy_to_device(t.cpu_full, full_values.data(), full_values.size() * sizeof(float));
    t.gpu_init = encode(full_values, gpu_dtype);
    gpu_.copy_to_device(t.gpu_full, t.gpu_init.data(), t.gpu_init.size());
    t.cpu = view(t.cpu_full, off, rows, cols, ld, nd_shape);
    t.gpu = view(t.gpu_full, off, rows, cols, ld, nd_shape);
    twins_.push_back(std::move(t));
    return twins_.back();
  }

  static Tensor view(const Tensor& full, int64_t off, int64_t rows, int64_t cols, int64_t ld,
                     const std::vector<int64_t>& nd_shape) {
    void* p = static_cast<char*>(full.data) + off * static_cast<int64_t>(dtype_size(full.dtype));
    if (!nd_shape.empty()) return make_view(p, full.dtype, full.device, nd_shape);
    Tensor v = make_view(p, full.dtype, full.device, {rows, cols});
    if (ld != cols) v.row_stride = ld;
    return v;
  }

  static std::vector<uint8_t> encode(const std::vector<float>& values, DType dtype) {
    std::vector<uint8_t> out(values.size() * dtype_size(dtype));
    for (size_t i = 0; i < values.size(); ++i) {
      if (dtype == DType::kF32) {
        std::memcpy(out.data() + 4 * i, &values[i], 4);
      } else if (dtype == DType::kBF16) {
        const uint16_t h = f32_to_bf16(values[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      } else {
        throw_error(Status::kInternal, "cuda_twin: cannot encode floats as ", dtype_name(dtype));
      }
    }
    return out;
  }

  Backend& cpu_;
  Backend& gpu_;
  std::string label_;
  std::mt19937_64 rng_;
  std::deque<Twin> twins_;  // stable references
};

// Fixture: skips without a usable GPU; a CPU reference and a CUDA backend per test.
class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!frt::cuda_available(&why)) GTEST_SKIP() << why;
    cpu_ = make_cpu_backend();
    gpu_ = make_cuda_backend(0);
  }
  Backend& cpu() { return *cpu_; }
  Backend& gpu() { return *gpu_; }

  std::unique_ptr<Backend> cpu_, gpu_;
};

// ---- attention cases ----
// The geometry of one attention call: Sq query rows over Skv keys, hq query / hkv kv heads of
// head_dim d, the first `blind` query rows not seeing the last `blind` keys. The base of the
// attention tests' case structs (aggregates: {Sq, Skv, hq, hkv, d, blind, <case fields>...}).
struct AttnShape {
  int64_t Sq, Skv;
  int hq, hkv, d, blind;

  int64_t q_cols() const { return int64_t{hq} * d; }
  int64_t kv_cols() const { return int64_t{hkv} * d; }
  // Softmax scale 1 / sqrt(head_dim), as the models use.
  AttentionParams params() const {
    return {hq, hkv, d, 1.f / std::sqrt(static_cast<float>(d)), blind};
  }
  // "Sq=..,Skv=..,hq=..,hkv=..,d=..,blind_rows=..": the head of every case label (labels seed
  // the twins' random inputs, so this text must not change).
  std::string label() const {
    std::ostringstream os;
    os << "Sq=" << Sq << ",Skv=" << Skv << ",hq=" << hq << ",hkv=" << hkv << ",d=" << d
       << ",blind_rows=" << blind;
    return os.str();
  }
};

// ---- graph capture: replay == eager, bit for bit ----
using Snapshot = std::vector<std::vector<uint8_t>>;  // TwinSet::gpu_snapshot()

// A CUDA graph captured from ops issued on a CudaBackend's stream; destroyed with the object.
// Its methods report through gtest assertions: call them inside ASSERT_NO_FATAL_FAILURE so a
// failed capture or launch ends the test as an ASSERT in its body would.
class CapturedGraph {
 public:
  CapturedGraph() = default;
  CapturedGraph(const CapturedGraph&) = delete;
  CapturedGraph& operator=(const CapturedGraph&) = delete;
  ~CapturedGraph() {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (graph_) cudaGraphDestroy(graph_);
  }

  // Captures ops() and instantiates the graph. An op that throws under capture (an allocation
  // or a sync inside an op) fails the test with "<failure>: <what>", the capture ended first so
  // the stream is usable again.
  template <typename Ops>
  void capture(CudaBackend& be, const char* failure, Ops&& ops) {
    stream_ = be.stream();
    ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), cudaSuccess);
    try {
      ops();
    } catch (const Error& e) {
      cudaStreamEndCapture(stream_, &graph_);
      FAIL() << failure << ": " << e.what();
    }
    ASSERT_EQ(cudaStreamEndCapture(stream_, &graph_), cudaSuccess);
    ASSERT_EQ(cudaGraphInstantiate(&exec_, graph_, 0), cudaSuccess);
  }

  // Replays the graph once, waits, and stores every CUDA buffer of `ts` in `out`.
  void replay(TwinSet& ts, Backend& gpu, Snapshot* out) {
    ASSERT_EQ(cudaGraphLaunch(exec_, stream_), cudaSuccess);
    gpu.synchronize();
    *out = ts.gpu_snapshot();
  }

 private:
  cudaStream_t stream_ = nullptr;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

// Every buffer of a replay equals the eager run's ("buffer i differs between the eager run and
// <replay>" otherwise).
inline void expect_same_buffers(const Snapshot& graphed, const Snapshot& eager,
                                const std::string& replay) {
  ASSERT_EQ(graphed.size(), eager.size());
  for (size_t i = 0; i < eager.size(); ++i)
    EXPECT_TRUE(graphed[i] == eager[i]) << "buffer " << i << " differs between the eager run "
                                        << "and " << replay;
}

// Captures ops() once, then twice: resets every CUDA buffer of `ts` to its uploaded bytes,
// replays and expects the buffers equal to `eager` (ops() run eagerly from reset buffers).
// Call inside ASSERT_NO_FATAL_FAILURE.
template <typename Ops>
void expect_graph_matches_eager(TwinSet& ts, CudaBackend& be, const Snapshot& eager,
                                const char* failure, Ops&& ops) {
  CapturedGraph graph;
  ASSERT_NO_FATAL_FAILURE(graph.capture(be, failure, ops));
  for (int replay = 0; replay < 2; ++replay) {
    ts.gpu_reset();
    Snapshot graphed;
    ASSERT_NO_FATAL_FAILURE(graph.replay(ts, be, &graphed));
    ASSERT_NO_FATAL_FAILURE(
        expect_same_buffers(graphed, eager, "graph replay " + std::to_string(replay)));
  }
}

// cos / max-abs of two equal-length vectors (a reference and a result that are not twin
// buffers: differences, a second CUDA path), printed as one "label: cos=..." line; a test
// failure past the bounds.
inline void expect_vectors_close(const std::string& label, const std::vector<float>& want,
                                 const std::vector<float>& got, double min_cos,
                                 double max_abs_rel) {
  double dot = 0, nw = 0, ng = 0, max_abs = 0, max_ref = 0;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    const double w = want[i], g = got[i];
    dot += w * g;
    nw += w * w;
    ng += g * g;
    max_ref = std::max(max_ref, std::fabs(w));
    max_abs = std::max(max_abs, std::fabs(w - g));
  }
  const double cos = nw == 0 && ng == 0 ? 1.0 : dot / std::sqrt(nw * ng);
  const bool ok = want.size() == got.size() && std::isfinite(cos) && cos >= min_cos &&
                  max_abs <= max_abs_rel * max_ref;
  std::printf("%s: cos=%.7f max_abs=%.4g (%.3g of max|ref| %.4g)%s\n", label.c_str(), cos, max_abs,
              max_ref > 0 ? max_abs / max_ref : 0.0, max_ref, ok ? "" : "  FAIL");
  std::fflush(stdout);
  EXPECT_TRUE(ok) << label << ": cos " << cos << " max_abs " << max_abs << " of " << max_ref;
}
// a - b elementwise (the change an in-place op made: compare it, not the whole buffer).
inline std::vector<float> difference(std::vector<float> a, const std::vector<float>& b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) a[i] -= b[i];
  return a;
}

// `ops` (on the CUDA side of ts) run eagerly once, then `repeats` more times from the uploaded
// state, each bit-identical to the first run, then captured into a graph whose replays match it
// too (no state carried across launches, no scheduling-dependent sums). Call inside
// ASSERT_NO_FATAL_FAILURE.
template <typename Ops>
void expect_repeats_and_graph_match_eager(TwinSet& ts, CudaBackend& be, int repeats,
                                          const char* failure, Ops&& ops) {
  ts.gpu_reset();
  ops();
  be.synchronize();
  const Snapshot eager = ts.gpu_snapshot();
  for (int i = 0; i < repeats; ++i) {
    ts.gpu_reset();
    ops();
    be.synchronize();
    ASSERT_NO_FATAL_FAILURE(
        expect_same_buffers(ts.gpu_snapshot(), eager, "eager repeat " + std::to_string(i)));
  }
  ASSERT_NO_FATAL_FAILURE(expect_graph_matches_eager(ts, be, eager, failure, ops));
}

// Fixture of the tests parameterized by the CUDA backend's precision (bf16 or FP8 weights):
// the CPU twin and the CUDA backend, SKIPPED without a GPU (FP8 also without FP8 tensor cores),
// and GEMM weights as that backend stores them. Instantiate with kPrecisions / precision_name.
class CudaPrecisionTest : public ::testing::TestWithParam<Precision> {
 protected:
  void SetUp() override {
    std::string why;
    if (!frt::cuda_available(&why)) GTEST_SKIP() << why;
    if (fp8() && !frt::cuda_supports_fp8(0, &why)) GTEST_SKIP() << why;
    cpu_ = make_cpu_backend();
    gpu_ = make_cuda_backend(0, GetParam());
  }
  bool fp8() const { return GetParam() == Precision::kFP8; }
  CudaBackend& cuda() { return dynamic_cast<CudaBackend&>(*gpu_); }
  // w [N, K] on both sides, values of order 2/sqrt(K): bf16-exact, or (FP8) the device's E4M3
  // weight with its dequantized values on the CPU, so the CPU twin computes what the kernels do.
  WeightTwin gemm_weight(TwinSet& ts, int64_t N, int64_t K, const std::string& name) {
    const float r = 2.f / std::sqrt(static_cast<float>(K));
    return fp8() ? ts.weight_fp8(N, K, name, -r, r) : ts.weight({N, K}, name, -r, r);
  }
  std::unique_ptr<Backend> cpu_, gpu_;
};
inline const auto kPrecisions = ::testing::Values(Precision::kBF16, Precision::kFP8);
inline std::string precision_name(const ::testing::TestParamInfo<Precision>& i) {
  return i.param == Precision::kFP8 ? "FP8" : "BF16";
}

inline const char* act_name(Activation a) {
  switch (a) {
    case Activation::kGeluTanh: return "gelu";
    case Activation::kSilu: return "silu";
    case Activation::kNone: break;
  }
  return "none";
}

}  // namespace frt::gpu_test
