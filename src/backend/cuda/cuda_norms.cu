// CUDA norms: layer_norm (SigLIP), add_rms_norm (Gemma; scale = 1 + w folded at load) and
// add_ada_rms_norm (Pi0.5 expert, gated residual). fp32 row statistics, the layer norm's
// variance in two passes. The residual update is written back in x's dtype and the norm reads x
// as stored, so y is the norm of exactly the residual the next layer sees.
// Fast path (rows of <= 2048 elements, D % 8 == 0, 16-byte aligned rows): one warp per row, the
// row held in registers (one read of x), 16-byte loads, warp-shuffle reductions and no block
// barrier; the expert's 10-row norms were latency bound in the old 256-thread-per-row kernel
// (docs/cuda_backend.md, "Small kernels"). Otherwise: one block of 256 threads per row.
// The RMS norms' y may be an FP8 GEMM input (Backend::gemm_input): quantized as it is stored.
// Covered by tests/gpu/test_cuda_ops.cpp (CudaOps.LayerNorm, CudaOps.AddRmsNorm,
// CudaOps.AddAdaRmsNorm); timed by bench/bench_small_ops_cuda.cpp.
#include <cmath>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_launch.cuh"

namespace frt {

namespace {
using cuda::Mat;

__global__ void layer_norm_kernel(Mat y, Mat x, Mat w, Mat b, int64_t D, float eps) {
  __shared__ float red[32];
  cuda::pdl_begin();
  const int64_t r = blockIdx.x;
  float s = 0.f;
  for (int64_t c = threadIdx.x; c < D; c += blockDim.x) s += cuda::load(x, r, c);
  const float mean = cuda::block_sum(s, red) / static_cast<float>(D);
  float v = 0.f;
  for (int64_t c = threadIdx.x; c < D; c += blockDim.x) {
    const float d = cuda::load(x, r, c) - mean;
    v += d * d;
  }
  const float inv = 1.f / sqrtf(cuda::block_sum(v, red) / static_cast<float>(D) + eps);
  for (int64_t c = threadIdx.x; c < D; c += blockDim.x)
    cuda::store(y, r, c, (cuda::load(x, r, c) - mean) * inv * cuda::load(w, 0, c) + cuda::load(b, 0, c));
}

// x += gate * delta (gate.p null: 1; delta.p null: no update); y = x * inv_rms * (mul + scale)
// + shift, with (mul, shift.p) = (0, null) for the plain RMS norm and (1, mod_shift) for adaRMS.
__global__ void rms_norm_kernel(Mat x, Mat delta, Mat gate, Mat y, Mat scale, float mul,
                                Mat shift, int64_t D, float eps) {
  __shared__ float red[32];
  cuda::pdl_begin();
  const int64_t r = blockIdx.x;
  float ss = 0.f;
  for (int64_t c = threadIdx.x; c < D; c += blockDim.x) {
    float v = cuda::load(x, r, c);
    if (delta.p) {
      v = cuda::as_stored(x.type, v + cuda::load_vec(gate, c, 1.f) * cuda::load(delta, r, c));
      cuda::store(x, r, c, v);  // each thread re-reads only the columns it wrote
    }
    ss += v * v;
  }
  const float inv = 1.f / sqrtf(cuda::block_sum(ss, red) / static_cast<float>(D) + eps);
  for (int64_t c = threadIdx.x; c < D; c += blockDim.x) {
    const float v = cuda::load(x, r, c) * inv * (mul + cuda::load(scale, 0, c));
    cuda::store(y, r, c, v + cuda::load_vec(shift, c, 0.f));
  }
}

// ---- fast path: one warp per row, kNch 8-element chunks per lane held in registers ----
constexpr int kWarpRowsPerBlock = 2;  // 64-thread blocks: the 10-row expert norms use 5 SMs
constexpr int kMaxWarpRowChunks = 8;  // D <= 32 lanes x 8 chunks x 8 = 2048

template <int kNch>
__global__ void __launch_bounds__(32 * kWarpRowsPerBlock)
    layer_norm_warp_kernel(Mat y, Mat x, Mat w, Mat b, int M, int D, float eps) {
  cuda::pdl_begin();
  const int lane = threadIdx.x & 31;
  const int r = blockIdx.x * kWarpRowsPerBlock + (threadIdx.x >> 5);
  if (r >= M) return;
  const int nch = D / 8;
  float v[kNch][8];
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < kNch; ++j) {
    const int c = lane + 32 * j;
    if (c < nch) cuda::load8(x, r, c * 8, v[j]);
  }
#pragma unroll
  for (int j = 0; j < kNch; ++j)
    if (lane + 32 * j < nch)
#pragma unroll
      for (int e = 0; e < 8; ++e) s += v[j][e];
  const float mean = cuda::warp_sum(s) / static_cast<float>(D);
  float var = 0.f;
#pragma unroll
  for (int j = 0; j < kNch; ++j)
    if (lane + 32 * j < nch)
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float d = v[j][e] - mean;
        var += d * d;
      }
  const float inv = 1.f / sqrtf(cuda::warp_sum(var) / static_cast<float>(D) + eps);
#pragma unroll
  for (int j = 0; j < kNch; ++j) {
    const int c = lane + 32 * j;
    if (c >= nch) continue;
    float wv[8], bv[8], o[8];
    cuda::load8(w, 0, c * 8, wv);
    cuda::load8(b, 0, c * 8, bv);
#pragma unroll
    for (int e = 0; e < 8; ++e) o[e] = (v[j][e] - mean) * inv * wv[e] + bv[e];
    cuda::store8(y, r, c * 8, o);
  }
}

// Same contract as rms_norm_kernel. All loads of a stage are issued before the first use (x, with
// scale and shift for short rows; then delta and gate) so a row costs about one memory latency
// per stage.
template <int kNch>
__global__ void __launch_bounds__(32 * kWarpRowsPerBlock)
    rms_norm_warp_kernel(Mat x, Mat delta, Mat gate, Mat y, Mat scale, float mul, Mat shift,
                         int M, int D, float eps) {
  cuda::pdl_begin();
  const int lane = threadIdx.x & 31;
  const int r = blockIdx.x * kWarpRowsPerBlock + (threadIdx.x >> 5);
  if (r >= M) return;
  const int nch = D / 8;
  // Rows of up to 1024 elements (the expert's latency-bound 10-row norms) load scale and shift
  // with x, in flight together instead of a second round trip after the sum; longer rows (the
  // prefix: many rows, throughput-bound) load them after it, where holding both spills.
  constexpr bool kEarly = kNch <= 4;
  constexpr int kPar = kEarly ? kNch : 1;
  float v[kNch][8], sc[kPar][8], sh[kPar][8];
  auto load_params = [&](int c, float(&s8)[8], float(&h8)[8]) {
    cuda::load8(scale, 0, c * 8, s8);
    if (shift.p) {
      cuda::load8(shift, 0, c * 8, h8);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) h8[e] = 0.f;
    }
  };
#pragma unroll
  for (int j = 0; j < kNch; ++j)
    if (lane + 32 * j < nch) cuda::load8(x, r, (lane + 32 * j) * 8, v[j]);
  if constexpr (kEarly) {
#pragma unroll
    for (int j = 0; j < kNch; ++j)
      if (lane + 32 * j < nch) load_params(lane + 32 * j, sc[j], sh[j]);
  }
  if (delta.p) {
    float dv[kNch][8], gv[kNch][8];
#pragma unroll
    for (int j = 0; j < kNch; ++j) {
      const int c = lane + 32 * j;
      if (c >= nch) continue;
      cuda::load8(delta, r, c * 8, dv[j]);
      if (gate.p) {
        cuda::load8(gate, 0, c * 8, gv[j]);
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) gv[j][e] = 1.f;
      }
    }
#pragma unroll
    for (int j = 0; j < kNch; ++j) {
      const int c = lane + 32 * j;
      if (c >= nch) continue;
#pragma unroll
      for (int e = 0; e < 8; ++e) v[j][e] = cuda::as_stored(x.type, v[j][e] + gv[j][e] * dv[j][e]);
      cuda::store8(x, r, c * 8, v[j]);
    }
  }
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < kNch; ++j)
    if (lane + 32 * j < nch)
#pragma unroll
      for (int e = 0; e < 8; ++e) ss += v[j][e] * v[j][e];
  const float inv = 1.f / sqrtf(cuda::warp_sum(ss) / static_cast<float>(D) + eps);
#pragma unroll
  for (int j = 0; j < kNch; ++j) {
    const int c = lane + 32 * j;
    if (c >= nch) continue;
    const int p = kEarly ? j : 0;
    if constexpr (!kEarly) load_params(c, sc[0], sh[0]);
    float o[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) o[e] = v[j][e] * inv * (mul + sc[p][e]) + sh[p][e];
    cuda::store8(y, r, c * 8, o);
  }
}

// Chunks per lane of the fast path for rows of D elements; 0: the block kernel runs.
int warp_row_chunks(int64_t D) {
  if (D % 8 != 0 || D > 32 * 8 * kMaxWarpRowChunks) return 0;
  const int64_t per_lane = (D / 8 + 31) / 32;
  int n = 1;
  while (n < per_lane) n *= 2;
  return n;
}

// The warp-per-row kernel<nch> (nch = 1, 2, 4 or 8 chunks per lane) over M rows.
#define FRT_WARP_ROW_LAUNCH(be, op, kernel, nch, M, ...)                                      \
  cuda::launch(be, op,                                                                      \
               (nch) == 1   ? kernel<1>                                                     \
               : (nch) == 2 ? kernel<2>                                                     \
               : (nch) == 4 ? kernel<4>                                                     \
                            : kernel<8>,                                                    \
               dim3((static_cast<unsigned>(M) + kWarpRowsPerBlock - 1) / kWarpRowsPerBlock), \
               dim3(32 * kWarpRowsPerBlock), 0, __VA_ARGS__)

void launch_rms(const CudaBackend& be, const char* op, bool vec8, Mat x, Mat delta, Mat gate,
                Mat y, Mat scale, float mul, Mat shift, int64_t M, int64_t D, float eps) {
  const int nch = vec8 ? warp_row_chunks(D) : 0;
  if (nch > 0) {
    FRT_WARP_ROW_LAUNCH(be, op, rms_norm_warp_kernel, nch, M, x, delta, gate, y, scale, mul,
                        shift, static_cast<int>(M), static_cast<int>(D), eps);
    return;
  }
  cuda::launch(be, op, rms_norm_kernel, dim3(static_cast<unsigned>(M)), dim3(cuda::kThreads), 0,
               x, delta, gate, y, scale, mul, shift, D, eps);
}

void check_rows(const char* op, int64_t M, int64_t D) {
  cuda::check_arg(M < (int64_t{1} << 31) - 1, op, "more than 2^31 - 1 rows");
  cuda::check_arg(D > 0 || M == 0, op, "rows of zero width");
}

}  // namespace

void CudaBackend::layer_norm(Tensor y, Tensor x, Tensor w, Tensor b, float eps) {
  const char* op = "layer_norm";
  const int64_t M = x.rows(), D = x.cols();
  cuda::check_matrix(op, "x", x, M, D, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "y", y, M, D, {DType::kBF16, DType::kF32});
  cuda::check_vector(op, "w", w, D, {DType::kF32, DType::kBF16});
  cuda::check_vector(op, "b", b, D, {DType::kF32, DType::kBF16});
  check_rows(op, M, D);
  if (M == 0) return;
  const int nch = cuda::vec8_ok(x) && cuda::vec8_ok(y) && cuda::vec8_ok_vector(&w) &&
                          cuda::vec8_ok_vector(&b)
                      ? warp_row_chunks(D)
                      : 0;
  if (nch > 0) {
    FRT_WARP_ROW_LAUNCH(*this, op, layer_norm_warp_kernel, nch, M, cuda::mat_of(y),
                        cuda::mat_of(x), cuda::mat_of(w), cuda::mat_of(b), static_cast<int>(M),
                        static_cast<int>(D), eps);
    return;
  }
  cuda::launch(*this, op, layer_norm_kernel, dim3(static_cast<unsigned>(M)), dim3(cuda::kThreads),
               0, cuda::mat_of(y), cuda::mat_of(x), cuda::mat_of(w), cuda::mat_of(b), D, eps);
}

void CudaBackend::add_rms_norm(Tensor x, const Tensor* delta, Tensor y, Tensor scale, float eps) {
  const char* op = "add_rms_norm";
  const int64_t M = x.rows(), D = x.cols();
  cuda::check_matrix(op, "x", x, M, D, {DType::kBF16, DType::kF32});
  if (delta) cuda::check_matrix(op, "delta", *delta, M, D, {DType::kBF16, DType::kF32});
  // y may be an FP8 GEMM input from gemm_input(): the norm then quantizes as it stores.
  cuda::check_matrix(op, "y", y, M, D, {DType::kBF16, DType::kF32, DType::kF8E4M3});
  cuda::check_vector(op, "scale", scale, D, {DType::kF32, DType::kBF16});
  check_rows(op, M, D);
  if (M == 0) return;
  const bool vec8 = cuda::vec8_ok(x) && cuda::vec8_ok(delta) && cuda::vec8_ok_out(y) &&
                    cuda::vec8_ok_vector(&scale);
  launch_rms(*this, op, vec8, cuda::mat_of(x), cuda::mat_of(delta), Mat{}, cuda::mat_out(y),
             cuda::mat_of(scale), 0.f, Mat{}, M, D, eps);
}

void CudaBackend::add_ada_rms_norm(Tensor x, const Tensor* delta, const Tensor* gate, Tensor y,
                                   Tensor mod_scale, Tensor mod_shift, float eps) {
  const char* op = "add_ada_rms_norm";
  const int64_t M = x.rows(), D = x.cols();
  cuda::check_matrix(op, "x", x, M, D, {DType::kBF16, DType::kF32});
  if (delta) cuda::check_matrix(op, "delta", *delta, M, D, {DType::kBF16, DType::kF32});
  if (gate) {
    cuda::check_arg(delta != nullptr, op, "a gate without a delta");
    cuda::check_vector(op, "gate", *gate, D, {DType::kF32, DType::kBF16});
  }
  cuda::check_matrix(op, "y", y, M, D, {DType::kBF16, DType::kF32, DType::kF8E4M3});
  cuda::check_vector(op, "mod_scale", mod_scale, D, {DType::kF32, DType::kBF16});
  cuda::check_vector(op, "mod_shift", mod_shift, D, {DType::kF32, DType::kBF16});
  check_rows(op, M, D);
  if (M == 0) return;
  const bool vec8 = cuda::vec8_ok(x) && cuda::vec8_ok(delta) && cuda::vec8_ok_out(y) &&
                    cuda::vec8_ok_vector(gate) && cuda::vec8_ok_vector(&mod_scale) &&
                    cuda::vec8_ok_vector(&mod_shift);
  launch_rms(*this, op, vec8, cuda::mat_of(x), cuda::mat_of(delta), cuda::mat_of(gate),
             cuda::mat_out(y), cuda::mat_of(mod_scale), 1.f, cuda::mat_of(mod_shift), M, D, eps);
}

}  // namespace frt
