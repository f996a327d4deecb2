// GEMMs of the CUDA backend: cuBLASLt plans (descriptors + the fastest of the heuristic's
// candidate algorithms, timed at the plan's first call by GemmTuner; one plan per shape /
// dtypes / row strides / pointer alignment / epilogue, cached) and a
// plain CUDA-core fallback kernel with the full linear epilogue for what cuBLASLt does not take
// (mixed x/w dtypes such as the f32 action input, K = 0, no algorithm offered).
// Epilogues: CUBLASLT_EPILOGUE_BIAS / GELU_BIAS / GELU (cuBLASLt's GELU is the tanh form, applied
// in fp32 before the one rounding into y, like linear_epilogue_kernel). FP8 (E4M3 x E4M3): TN
// only, which row-major w[N,K] . x^T already is; A/B scale pointers point at device floats, so
// a captured graph reads the scales current at replay. Pointer attributes (bias, scales) are set
// on the cached descriptor at every call (host-side, before the enqueue).
// Row-major y[M,N] = x[M,K] . w[N,K]^T is column-major y^T[N,M] = w^T . x: cuBLASLt's A is w
// (K x N, ld = ldw, transposed), B is x (K x M, ld = ldx), C = D = y (N x M, ld = ldy).
// Covered by tests/gpu/test_cuda_ops.cpp (CudaOps.Linear, CudaOps.PatchEmbed).
#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_launch.cuh"
#include "core/log.h"

namespace frt {

namespace {
using cuda::Mat;

cudaDataType_t cuda_type(const char* op, DType t) {
  switch (t) {
    case DType::kF32: return CUDA_R_32F;
    case DType::kBF16: return CUDA_R_16BF;
    case DType::kF8E4M3: return CUDA_R_8F_E4M3;
    default: break;
  }
  throw_error(Status::kInternal, op, ": GEMM operand of dtype ", dtype_name(t),
              "; expected F32, BF16 or F8E4M3");
}

// Largest power of two (<= 256) dividing the address and the row pitch in bytes: the alignment
// every row of the operand really has.
int row_alignment(const void* p, int64_t ld, DType t) {
  const uint64_t addr = reinterpret_cast<uintptr_t>(p);
  const uint64_t pitch = static_cast<uint64_t>(ld) * dtype_size(t);
  int a = 256;
  while (a > 1 && (addr % a != 0 || pitch % a != 0)) a /= 2;
  return a;
}

Mat mat_raw(const void* p, int64_t ld, DType t) {
  Mat m;
  m.p = const_cast<void*>(p);
  m.ld = ld;
  m.type = t == DType::kBF16    ? cuda::kElemBF16
           : t == DType::kF8E4M3 ? cuda::kElemF8
                                 : cuda::kElemF32;
  return m;
}

// y[m,n] (=|+=) act(w_scale * sum_k x[m,k] w[n,k] + bias[n]); one thread per output, fp32 sum.
// w_scale / x_scale: FP8 operands' per-tensor scales (device), null = 1.
__global__ void gemm_naive_kernel(Mat y, Mat x, Mat w, const float* w_scale, const float* x_scale,
                                  Mat bias, int act, int accumulate, int64_t M, int64_t N,
                                  int64_t K) {
  cuda::pdl_begin();
  const float ws = (w_scale ? *w_scale : 1.f) * (x_scale ? *x_scale : 1.f);
  const int64_t total = M * N;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t m = i / N, n = i % N;
    float s = 0.f;
    for (int64_t k = 0; k < K; ++k) s = fmaf(cuda::load(x, m, k), cuda::load(w, n, k), s);
    s = cuda::apply_act(act, s * ws + cuda::load_vec(bias, n, 0.f));
    if (accumulate) s += cuda::load(y, m, n);
    cuda::store(y, m, n, s);
  }
}
}  // namespace

const CudaBackend::GemmPlan& CudaBackend::gemm_plan(const char* op, const GemmKey& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;

  GemmPlan plan;
  cublasLtMatmulPreference_t pref = nullptr;
  auto destroy = [&] {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (plan.desc) cublasLtMatmulDescDestroy(plan.desc);
    if (plan.a) cublasLtMatrixLayoutDestroy(plan.a);
    if (plan.b) cublasLtMatrixLayoutDestroy(plan.b);
    if (plan.c) cublasLtMatrixLayoutDestroy(plan.c);
    plan = GemmPlan{};
    pref = nullptr;
  };
  try {
    const cudaDataType_t wt = cuda_type(op, static_cast<DType>(key.wt));
    const cudaDataType_t xt = cuda_type(op, static_cast<DType>(key.xt));
    const cudaDataType_t yt = cuda_type(op, static_cast<DType>(key.yt));
    FRT_CUBLAS_CHECK(op, cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasLtEpilogue_t epi = static_cast<cublasLtEpilogue_t>(key.epilogue);
    if (epi != CUBLASLT_EPILOGUE_DEFAULT)
      FRT_CUBLAS_CHECK(op, cublasLtMatmulDescSetAttribute(
                               plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    if (key.bias_t >= 0) {
      const int32_t bt = cuda_type(op, static_cast<DType>(key.bias_t));
      FRT_CUBLAS_CHECK(op, cublasLtMatmulDescSetAttribute(
                               plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
      // The heuristic reads the bias pointer's alignment: a stand-in with the key's alignment.
      const void* fake = reinterpret_cast<const void*>(static_cast<uintptr_t>(key.align_bias));
      FRT_CUBLAS_CHECK(op, cublasLtMatmulDescSetAttribute(
                               plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &fake, sizeof(fake)));
    }
    if (wt == CUDA_R_8F_E4M3) {
      // Scales as device pointers (stand-ins here; set per call): the heuristic must know they
      // are there.
      const void* fake = reinterpret_cast<const void*>(uintptr_t{256});
      FRT_CUBLAS_CHECK(op, cublasLtMatmulDescSetAttribute(
                               plan.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &fake, sizeof(fake)));
      FRT_CUBLAS_CHECK(op, cublasLtMatmulDescSetAttribute(
                               plan.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &fake, sizeof(fake)));
    }
    const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
    FRT_CUBLAS_CHECK(op, cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA,
                                                        &trans_a, sizeof(trans_a)));
    FRT_CUBLAS_CHECK(op, cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB,
                                                        &trans_b, sizeof(trans_b)));
    FRT_CUBLAS_CHECK(op, cublasLtMatrixLayoutCreate(&plan.a, wt, key.K, key.N, key.ldw));
    FRT_CUBLAS_CHECK(op, cublasLtMatrixLayoutCreate(&plan.b, xt, key.K, key.M, key.ldx));
    FRT_CUBLAS_CHECK(op, cublasLtMatrixLayoutCreate(&plan.c, yt, key.N, key.M, key.ldy));

    FRT_CUBLAS_CHECK(op, cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = kLtWorkspaceBytes;
    FRT_CUBLAS_CHECK(op, cublasLtMatmulPreferenceSetAttribute(
                             pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    // Tell the heuristic how aligned the operands really are (slices of fused buffers can be
    // 2-byte aligned); the default assumes 256 bytes.
    const uint32_t al_a = key.align_w, al_b = key.align_x, al_c = key.align_y;
    FRT_CUBLAS_CHECK(op, cublasLtMatmulPreferenceSetAttribute(
                             pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
    FRT_CUBLAS_CHECK(op, cublasLtMatmulPreferenceSetAttribute(
                             pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
    FRT_CUBLAS_CHECK(op, cublasLtMatmulPreferenceSetAttribute(
                             pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c)));
    FRT_CUBLAS_CHECK(op, cublasLtMatmulPreferenceSetAttribute(
                             pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c)));

    // Candidates asked of the heuristic (all timed at the plan's first call, GemmTuner).
    constexpr int kLtCandidates = 8;
    cublasLtMatmulHeuristicResult_t results[kLtCandidates] = {};
    int count = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(
        lt_, plan.desc, plan.a, plan.b, plan.c, plan.c, pref, kLtCandidates, results, &count);
    cublasLtMatmulPreferenceDestroy(pref);
    pref = nullptr;
    // NOT_SUPPORTED / INVALID_VALUE (an epilogue / bias type / FP8 layout it refuses) / no
    // result: this combination has no cuBLASLt kernel; the caller's next option runs.
    if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED &&
        st != CUBLAS_STATUS_INVALID_VALUE)
      cuda::throw_cublas(op, "cublasLtMatmulAlgoGetHeuristic", st);
    // Every usable candidate, the heuristic's order kept: the plan's first call times them
    // (GemmTuner) once its real operands and scale / bias pointers exist.
    for (int i = 0; st == CUBLAS_STATUS_SUCCESS && i < count; ++i) {
      if (results[i].state != CUBLAS_STATUS_SUCCESS || results[i].workspaceSize > ws) continue;
      plan.candidates.push_back({results[i].algo, results[i].workspaceSize});
    }
    if (!plan.candidates.empty()) {
      plan.algo = plan.candidates[0].algo;
      plan.workspace = plan.candidates[0].workspace;
      plan.ok = true;
    }
    if (!plan.ok) destroy();
  } catch (...) {
    destroy();
    throw;
  }
  return plans_.emplace(key, plan).first->second;
}

bool CudaBackend::gemm_lt(const char* op, const Gemm& g) {
  if (g.M <= 0 || g.N <= 0 || g.K <= 0) return false;
  if (g.xt != g.wt) return false;
  const bool fp8 = g.wt == DType::kF8E4M3;
  // cuBLASLt applies the activation after adding C: only y = act(xw + b), never y + act(...).
  if (g.act != Activation::kNone && (g.accumulate || g.act != Activation::kGeluTanh)) return false;
  if (fp8 && (g.K % 16 != 0 || !g.a_scale || !g.b_scale)) return false;
  cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
  if (g.act == Activation::kGeluTanh)
    epi = g.bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
  else if (g.bias)
    epi = CUBLASLT_EPILOGUE_BIAS;
  GemmKey key{g.M,
              g.N,
              g.K,
              g.ldx,
              g.ldw,
              g.ldy,
              static_cast<int>(g.xt),
              static_cast<int>(g.wt),
              static_cast<int>(g.yt),
              g.accumulate ? 1 : 0,
              row_alignment(g.x, g.ldx, g.xt),
              row_alignment(g.w, g.ldw, g.wt),
              row_alignment(g.y, g.ldy, g.yt),
              static_cast<int>(epi),
              g.bias ? static_cast<int>(g.bias_t) : -1,
              g.bias ? row_alignment(g.bias, 0, g.bias_t) : 0};
  // (non-const: a plan cuBLASLt refuses at run time is switched off below)
  GemmPlan& plan = const_cast<GemmPlan&>(gemm_plan(op, key));
  if (!plan.ok) return false;
  if (g.bias)
    FRT_CUBLAS_CHECK(op, cublasLtMatmulDescSetAttribute(
                             plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)));
  if (fp8) {
    FRT_CUBLAS_CHECK(op, cublasLtMatmulDescSetAttribute(plan.desc,
                                                        CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
                                                        &g.a_scale, sizeof(g.a_scale)));
    FRT_CUBLAS_CHECK(op, cublasLtMatmulDescSetAttribute(plan.desc,
                                                        CUBLASLT_MATMUL_DESC_B_SCALE_POINTER,
                                                        &g.b_scale, sizeof(g.b_scale)));
  }
  const float alpha = 1.f, beta = g.accumulate ? 1.f : 0.f;
  if (!plan.candidates.empty()) {  // first call of this plan: keep the fastest candidate
    // One choice per (device, key) for the whole process: every backend runs the same
    // algorithm for the same key (two models in one process stay bit-identical).
    static std::mutex choices_mutex;
    static std::map<std::pair<int, GemmKey>, int> choices;
    std::unique_lock<std::mutex> lock(choices_mutex);
    const auto known = choices.find({device_, key});
    int pick = known != choices.end() ? known->second : -1;
    lock.unlock();
    if (pick < 0 || pick >= static_cast<int>(plan.candidates.size())) {
      const size_t d_bytes = static_cast<size_t>(g.ldy * (g.M - 1) + g.N) * dtype_size(g.yt);
      cuda::LtCall call{lt_, plan.desc, plan.a, plan.b, plan.c, g.w, g.x, g.y, beta, d_bytes};
      call.m = g.M, call.n = g.N, call.k = g.K;
      call.workspace = lt_workspace_;
      call.workspace_bytes = kLtWorkspaceBytes;
      pick = tuner_.pick(op, call, plan.candidates, stream_);
      if (pick >= 0) {
        lock.lock();
        choices[{device_, key}] = pick;
      } else {
        pick = 0;  // not timed: the heuristic's first, not kept for other backends
      }
    }
    plan.algo = plan.candidates[pick].algo;
    plan.workspace = plan.candidates[pick].workspace;
    plan.candidates.clear();
  }
  const cublasStatus_t st =
      cublasLtMatmul(lt_, plan.desc, &alpha, g.w, plan.a, g.x, plan.b, &beta, g.y, plan.c, g.y,
                     plan.c, &plan.algo, lt_workspace_, kLtWorkspaceBytes, stream_);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED) {  // refused what the heuristic offered: never again
    log_warning(op, ": cuBLASLt refused a ", dtype_name(g.wt), " GEMM (M=", g.M, ", N=", g.N,
                ", K=", g.K, ") its heuristic offered; using the next path for this shape");
    plan.ok = false;
    return false;
  }
  if (st != CUBLAS_STATUS_SUCCESS) cuda::throw_cublas(op, "cublasLtMatmul", st);
  return true;
}

void CudaBackend::gemm_fallback(const char* op, const Gemm& g, const Tensor* bias,
                                Activation act) {
  if (g.M <= 0 || g.N <= 0) return;
  const Mat y = mat_raw(g.y, g.ldy, g.yt), x = mat_raw(g.x, g.ldx, g.xt);
  const Mat w = mat_raw(g.w, g.ldw, g.wt), b = cuda::mat_of(bias);
  const float* ws = g.wt == DType::kF8E4M3 ? g.a_scale : nullptr;
  const float* xs = g.xt == DType::kF8E4M3 ? g.b_scale : nullptr;
  cuda::launch(*this, op, gemm_naive_kernel, cuda::grid_for(g.M * g.N), cuda::kThreads, 0, y, x, w,
               ws, xs, b, static_cast<int>(act), g.accumulate ? 1 : 0, g.M, g.N, g.K);
}

}  // namespace frt
