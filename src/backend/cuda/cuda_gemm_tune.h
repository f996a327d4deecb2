// Load-time choice among cuBLASLt's candidate algorithms for one GEMM plan: every candidate the
// heuristic offers is timed on the call's own operands (CUDA events, back-to-back runs), its
// output written to the tuner's own buffer, and the fastest is kept for the plan's life. The
// heuristic's first choice is not the fastest for the model's wave-quantized shapes (M of a few
// hundred rows, N of 1-4 k); a plan is made once, at the first (eager) predict or while a graph
// is captured, so the timing never runs in the hot path.
// Under stream capture the candidates run on a side stream in relaxed capture mode (nothing is
// recorded into the graph; the operands hold the warm-up run's values); their output buffers
// are kept until release() (cudaFree would synchronize the device mid-capture). The timings
// vary a little between processes, so two processes may keep different algorithms for a plan
// (results then differ within bf16 rounding, as between GPUs); within a process the choice is
// fixed per plan key (CudaBackend::gemm_lt keeps the choices process-wide).
// Covered by tests/gpu/test_cuda_ops.cpp (CudaLinear.TunedPlansEagerAndUnderCapture).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace frt::cuda {

// One cublasLtMatmul minus its algorithm: D = alpha * A.B + beta * C with D in the tuner's
// buffer (layout c_layout, d_bytes long); scale / bias pointers are already set on desc.
struct LtCall {
  cublasLtHandle_t lt = nullptr;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c_layout = nullptr;
  const void* a_ptr = nullptr;
  const void* b_ptr = nullptr;
  const void* c_ptr = nullptr;  // beta = 1: the call's real C (read only); else unused
  float beta = 0.f;
  size_t d_bytes = 0;
  int64_t m = 0, n = 0, k = 0;  // the GEMM's shape, for the tuner's debug log
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

struct LtCandidate {
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
};

// "algo 31 tile 20 stages 12 split 2 cluster 4": a candidate's configuration, for the log.
std::string describe(const cublasLtMatmulAlgo_t& algo);

class GemmTuner {
 public:
  GemmTuner() = default;
  GemmTuner(const GemmTuner&) = delete;
  GemmTuner& operator=(const GemmTuner&) = delete;
  ~GemmTuner() { release(); }

  // Index into `cands` of the fastest candidate on `stream`'s device; -1 (nothing timed: run
  // the heuristic's first) when tuning is off, there is one candidate, or the timing itself
  // fails (reported once as a warning: tuning is an optimization, never a reason to fail a
  // predict).
  int pick(const char* op, const LtCall& call, const std::vector<LtCandidate>& cands,
           cudaStream_t stream);
  // Frees the output buffers, the side stream and the events. Never while a capture is open.
  void release() noexcept;

  void set_enabled(bool on) { enabled_ = on; }
  bool enabled() const { return enabled_; }
  // Plans tuned so far and the sum of their per-call times: heuristic's first vs chosen (us).
  struct Totals {
    int plans = 0, changed = 0;
    double first_us = 0, chosen_us = 0;
  };
  const Totals& totals() const { return totals_; }

 private:
  static constexpr int kReps = 5;  // timed back-to-back runs per candidate (after one warm-up)
  // A buffer of at least `bytes` (a new one when the current is too small); null on failure.
  void* out_buffer(size_t bytes);
  // Mean us of kReps runs of candidate c on s, < 0 when cuBLASLt refuses it.
  float time_candidate(const LtCall& call, const LtCandidate& c, void* d, cudaStream_t s);

  bool enabled_ = true;
  bool warned_ = false;
  std::vector<void*> buffers_;  // the last one is current; older ones wait for release()
  size_t current_bytes_ = 0;
  cudaStream_t side_ = nullptr;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
  Totals totals_;
};

}  // namespace frt::cuda
