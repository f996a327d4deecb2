// CUDA linear: y[M,N] (=|+=) act(x[M,K] . w[N,K]^T + bias[N]).
//  - few rows (skinny_gemm_would_handle): the weight-streaming kernel, bf16 or fp8 weights;
//  - F8E4M3 weights otherwise: linear_fp8 (cuda_fp8.cu) quantizes x and runs an FP8 GEMM, then
//    the same epilogue choice as below;
//  - otherwise one cuBLASLt GEMM with bias / GELU in its epilogue (CUBLASLT_EPILOGUE_BIAS,
//    GELU_BIAS, GELU; fp32 before the one rounding) and beta = 1 for the residual add. The bias
//    goes in as stored when cuBLASLt takes that type, else as the bf16 twin made at upload;
//  - what the epilogue cannot express (SiLU, an activation with accumulate, a bias with neither
//    type taken): the GEMM writes fp32 rows into the scratch (in row chunks that fit it), then
//    linear_epilogue_kernel applies bias, activation and the residual add in fp32 and rounds
//    once into y;
//  - x and w of different dtypes (the f32 action input), or no cuBLASLt algorithm: the plain
//    fallback kernel of cuda_gemm.cu.
// Covered by tests/gpu/test_cuda_ops.cpp (CudaOps.Linear), tests/gpu/test_cuda_fp8.cpp.
#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_fp8.h"
#include "backend/cuda/cuda_skinny_gemm.h"

namespace frt {

namespace {
using cuda::Mat;

// y[r, c] (=|+=) act(acc[r, c] + bias[c]) for rows x N of a packed fp32 accumulator.
__global__ void linear_epilogue_kernel(Mat y, const float* acc, Mat bias, int act,
                                       int accumulate, int64_t rows, int64_t N) {
  cuda::pdl_begin();
  const int64_t total = rows * N;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / N, c = i % N;
    float v = cuda::apply_act(act, acc[i] + cuda::load_vec(bias, c, 0.f));
    if (accumulate) v += cuda::load(y, r, c);
    cuda::store(y, r, c, v);
  }
}

const char* row_ptr(const void* base, int64_t row, int64_t ld, DType t) {
  return static_cast<const char*>(base) + row * ld * static_cast<int64_t>(dtype_size(t));
}
}  // namespace

void CudaBackend::linear(Tensor y, Tensor x, Tensor w, const Tensor* bias, Activation act,
                         bool accumulate) {
  const char* op = "linear";
  const int64_t M = x.rows(), K = x.cols(), N = w.rows();
  cuda::check_matrix(op, "x", x, M, K, {DType::kBF16, DType::kF32, DType::kF8E4M3});
  cuda::check_matrix(op, "w", w, N, K, {DType::kBF16, DType::kF32, DType::kF8E4M3});
  // An F8E4M3 x is gemm_input(x, w): quantized with w's site scale (linear_fp8 takes it as is).
  cuda::check_arg(x.dtype != DType::kF8E4M3 || (w.quant && x.quant == w.quant), op,
                  "an F8E4M3 x must be gemm_input(x, w) for this very weight");
  cuda::check_matrix(op, "y", y, M, N, {DType::kBF16, DType::kF32});
  if (bias) cuda::check_vector(op, "bias", *bias, N, {DType::kF32, DType::kBF16});
  cuda::check_arg(act == Activation::kNone || act == Activation::kGeluTanh ||
                      act == Activation::kSilu,
                  op, "unknown activation");
  cuda::check_arg(y.data != x.data && y.data != w.data, op, "y must not alias x or w");
  cuda::check_arg(w.dtype != DType::kF8E4M3 || w.quant != nullptr, op,
                  "F8E4M3 weight without QuantInfo (not made by upload_weight)");
  if (M == 0 || N == 0) return;
  if (x.dtype != DType::kF8E4M3 && skinny_gemm_would_handle(*this, y, x, w, bias)) {
    // few rows: the weight-streaming kernel
    ++linear_stats_.skinny;
    // Calibration measures every FP8 site, whichever path runs it (x stays bf16 here).
    if (w.dtype == DType::kF8E4M3 && quant_mode_ == QuantMode::kCalibrate)
      amax_into(stream_, pdl_enabled_, x, w.quant->x_amax);
    skinny_gemm(*this, y, x, w, bias, act, accumulate);
    return;
  }
  if (w.dtype == DType::kF8E4M3) {
    linear_fp8(y, x, w, bias, act, accumulate);
    return;
  }

  Gemm g;
  g.M = M;
  g.N = N;
  g.K = K;
  g.x = x.data;
  g.ldx = x.ld();
  g.xt = x.dtype;
  g.w = w.data;
  g.ldw = w.ld();
  g.wt = w.dtype;
  g.y = y.data;
  g.ldy = y.ld();
  g.yt = y.dtype;
  g.accumulate = accumulate;
  if (x.dtype != w.dtype || K == 0) {
    ++linear_stats_.fallback;
    gemm_fallback(op, g, bias, act);
    return;
  }
  gemm_with_epilogue(op, g, bias, act);
}

void CudaBackend::gemm_with_epilogue(const char* op, const Gemm& g, const Tensor* bias,
                                     Activation act) {
  // 1. One GEMM, epilogue fused: the bias as stored, else its bf16 twin.
  const bool fusable = act == Activation::kNone || (act == Activation::kGeluTanh && !g.accumulate);
  if (fusable && (lt_epilogue_enabled_ || (!bias && act == Activation::kNone))) {
    Gemm f = g;
    f.act = act;
    if (bias) {
      f.bias = bias->data;
      f.bias_t = bias->dtype;
    }
    bool done = gemm_lt(op, f);
    const void* twin = bias && bias->dtype == DType::kF32 ? bias_bf16_twin(*bias) : nullptr;
    if (!done && twin) {
      f.bias = twin;
      f.bias_t = DType::kBF16;
      done = gemm_lt(op, f);
    }
    if (done) {
      ++linear_stats_.lt;
      return;
    }
  }

  // 2. fp32 GEMM output staged in the scratch, as many rows at a time as fit, then the epilogue.
  const int64_t M = g.M, N = g.N;
  const int64_t fit = static_cast<int64_t>(kScratchBytes / (static_cast<size_t>(N) * sizeof(float)));
  cuda::check_arg(fit >= 1, op, "N too large for the epilogue scratch");
  const int64_t chunk = std::min(M, fit);
  float* acc = static_cast<float*>(scratch(static_cast<size_t>(chunk * N) * sizeof(float), op));
  const Mat bm = cuda::mat_of(bias);
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t rows = std::min(chunk, M - r0);
    Gemm part = g;
    part.M = rows;
    part.x = row_ptr(g.x, r0, g.ldx, g.xt);
    part.y = const_cast<char*>(row_ptr(g.y, r0, g.ldy, g.yt));
    Gemm staged = part;
    staged.y = acc;
    staged.ldy = N;
    staged.yt = DType::kF32;
    staged.accumulate = false;
    if (!gemm_lt(op, staged)) {
      // Writes y directly with the full epilogue (FP8 operands times their scales).
      ++linear_stats_.fallback;
      gemm_fallback(op, part, bias, act);
      continue;
    }
    ++linear_stats_.lt_scratch;
    Mat ym;
    ym.p = part.y;
    ym.ld = g.ldy;
    ym.type = g.yt == DType::kBF16 ? cuda::kElemBF16 : cuda::kElemF32;
    cuda::launch(*this, op, linear_epilogue_kernel, cuda::grid_for(rows * N), cuda::kThreads, 0,
                 ym, acc, bm, static_cast<int>(act), g.accumulate ? 1 : 0, rows, N);
  }
}

}  // namespace frt
