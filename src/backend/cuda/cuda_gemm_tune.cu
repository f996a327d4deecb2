// GemmTuner (cuda_gemm_tune.h): times cuBLASLt's candidate algorithms of a plan once and keeps
// the fastest. Every CUDA error here is caught and turns tuning off for the plan (the heuristic's
// first candidate then runs, as before tuning existed).
#include "backend/cuda/cuda_gemm_tune.h"

#include <cstdint>
#include <string>

#include "core/log.h"

namespace frt::cuda {

namespace {
// Restores the thread's stream-capture mode on scope exit.
struct CaptureModeScope {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  bool active = false;
  void relax() {
    active = cudaThreadExchangeStreamCaptureMode(&mode) == cudaSuccess;
  }
  ~CaptureModeScope() {
    if (active) cudaThreadExchangeStreamCaptureMode(&mode);
  }
};
template <typename T>
T config(const cublasLtMatmulAlgo_t& algo, cublasLtMatmulAlgoConfigAttributes_t attr) {
  T v{};
  size_t written = 0;
  cublasLtMatmulAlgoConfigGetAttribute(&algo, attr, &v, sizeof(v), &written);
  return v;
}
}  // namespace

std::string describe(const cublasLtMatmulAlgo_t& algo) {
  return "algo " + std::to_string(config<int32_t>(algo, CUBLASLT_ALGO_CONFIG_ID)) + " tile " +
         std::to_string(config<uint32_t>(algo, CUBLASLT_ALGO_CONFIG_TILE_ID)) + " stages " +
         std::to_string(config<uint32_t>(algo, CUBLASLT_ALGO_CONFIG_STAGES_ID)) + " split " +
         std::to_string(config<int32_t>(algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM)) + " cluster " +
         std::to_string(config<uint16_t>(algo, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID));
}

void* GemmTuner::out_buffer(size_t bytes) {
  if (!buffers_.empty() && current_bytes_ >= bytes) return buffers_.back();
  const size_t want = (bytes + (size_t{1} << 20) - 1) & ~((size_t{1} << 20) - 1);  // MiB steps
  void* p = nullptr;
  if (cudaMalloc(&p, want) != cudaSuccess) return nullptr;
  buffers_.push_back(p);
  current_bytes_ = want;
  return p;
}

float GemmTuner::time_candidate(const LtCall& call, const LtCandidate& c, void* d,
                                cudaStream_t s) {
  const float alpha = 1.f;
  const void* c_ptr = call.beta != 0.f ? call.c_ptr : d;
  auto run = [&] {
    return cublasLtMatmul(call.lt, call.desc, &alpha, call.a_ptr, call.a, call.b_ptr, call.b,
                          &call.beta, c_ptr, call.c_layout, d, call.c_layout, &c.algo,
                          call.workspace, call.workspace_bytes, s);
  };
  if (run() != CUBLAS_STATUS_SUCCESS) return -1.f;  // warm-up; refused: not a candidate
  if (cudaEventRecord(start_, s) != cudaSuccess) return -1.f;
  for (int i = 0; i < kReps; ++i)
    if (run() != CUBLAS_STATUS_SUCCESS) return -1.f;
  float ms = 0.f;
  if (cudaEventRecord(stop_, s) != cudaSuccess || cudaEventSynchronize(stop_) != cudaSuccess ||
      cudaEventElapsedTime(&ms, start_, stop_) != cudaSuccess)
    return -1.f;
  return 1000.f * ms / kReps;
}

int GemmTuner::pick(const char* op, const LtCall& call, const std::vector<LtCandidate>& cands,
                    cudaStream_t stream) {
  if (!enabled_ || cands.size() < 2) return -1;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &status) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  const bool capturing = status != cudaStreamCaptureStatusNone;
  CaptureModeScope scope;
  if (capturing) scope.relax();  // side-stream work, events and cudaMalloc are allowed then
  bool ok = !capturing || scope.active;
  if (ok && capturing && !side_)
    ok = cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking) == cudaSuccess;
  if (ok && !start_) ok = cudaEventCreate(&start_) == cudaSuccess;
  if (ok && !stop_) ok = cudaEventCreate(&stop_) == cudaSuccess;
  void* d = ok ? out_buffer(call.d_bytes) : nullptr;
  // Not capturing: the stream itself orders the runs after the producers of the operands.
  const cudaStream_t s = capturing ? side_ : stream;
  int best = -1;
  float best_us = 0.f, first_us = -1.f;
  for (size_t i = 0; d && i < cands.size(); ++i) {
    if (cands[i].workspace > call.workspace_bytes) continue;
    const float us = time_candidate(call, cands[i], d, s);
    if (i == 0) first_us = us;
    if (us >= 0.f && (best < 0 || us < best_us)) best = static_cast<int>(i), best_us = us;
  }
  if (cudaGetLastError() != cudaSuccess || !d || best < 0) {
    if (!warned_)
      log_warning(op, ": timing cuBLASLt's candidate algorithms failed; keeping its heuristic's "
                      "first choice (correct, possibly slower)");
    warned_ = true;
    return -1;
  }
  log_debug(op, ": cuBLASLt M=", call.m, " N=", call.n, " K=", call.k, ": ", cands.size(),
            " candidates, heuristic's first ", first_us, " us, kept #", best, " ", best_us,
            " us (", describe(cands[static_cast<size_t>(best)].algo), ")");
  totals_.plans += 1;
  totals_.changed += best != 0 ? 1 : 0;
  totals_.first_us += first_us >= 0.f ? first_us : best_us;
  totals_.chosen_us += best_us;
  return best;
}

void GemmTuner::release() noexcept {
  for (void* p : buffers_) cudaFree(p);
  buffers_.clear();
  current_bytes_ = 0;
  if (side_) cudaStreamDestroy(side_);
  if (start_) cudaEventDestroy(start_);
  if (stop_) cudaEventDestroy(stop_);
  side_ = nullptr;
  start_ = stop_ = nullptr;
}

}  // namespace frt::cuda
