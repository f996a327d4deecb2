// CUDA norms: layer_norm (SigLIP), add_rms_norm (Gemma; scale = 1 + w folded at load) and
// add_ada_rms_norm (Pi0.5 expert, gated residual). One block of 256 threads per row, fp32 row
// statistics through warp shuffles + shared memory, the layer norm's variance in two passes.
// The residual update is written back in x's dtype and the norm reads x as stored, so y is the
// norm of exactly the residual the next layer sees.
// Covered by tests/gpu/test_cuda_ops.cpp (CudaOps.LayerNorm, CudaOps.AddRmsNorm,
// CudaOps.AddAdaRmsNorm).
#include <cmath>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_common.cuh"

namespace frt {

namespace {
using cuda::Mat;

__global__ void layer_norm_kernel(Mat y, Mat x, Mat w, Mat b, int64_t D, float eps) {
  __shared__ float red[32];
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

void launch_rms(const char* op, cudaStream_t stream, Mat x, Mat delta, Mat gate, Mat y,
                Mat scale, float mul, Mat shift, int64_t M, int64_t D, float eps) {
  rms_norm_kernel<<<static_cast<unsigned>(M), cuda::kThreads, 0, stream>>>(x, delta, gate, y,
                                                                          scale, mul, shift, D,
                                                                          eps);
  FRT_CUDA_LAUNCH_CHECK(op);
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
  layer_norm_kernel<<<static_cast<unsigned>(M), cuda::kThreads, 0, stream_>>>(
      cuda::mat_of(y), cuda::mat_of(x), cuda::mat_of(w), cuda::mat_of(b), D, eps);
  FRT_CUDA_LAUNCH_CHECK(op);
}

void CudaBackend::add_rms_norm(Tensor x, const Tensor* delta, Tensor y, Tensor scale, float eps) {
  const char* op = "add_rms_norm";
  const int64_t M = x.rows(), D = x.cols();
  cuda::check_matrix(op, "x", x, M, D, {DType::kBF16, DType::kF32});
  if (delta) cuda::check_matrix(op, "delta", *delta, M, D, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "y", y, M, D, {DType::kBF16, DType::kF32});
  cuda::check_vector(op, "scale", scale, D, {DType::kF32, DType::kBF16});
  check_rows(op, M, D);
  if (M == 0) return;
  launch_rms(op, stream_, cuda::mat_of(x), cuda::mat_of(delta), Mat{}, cuda::mat_of(y),
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
  cuda::check_matrix(op, "y", y, M, D, {DType::kBF16, DType::kF32});
  cuda::check_vector(op, "mod_scale", mod_scale, D, {DType::kF32, DType::kBF16});
  cuda::check_vector(op, "mod_shift", mod_shift, D, {DType::kF32, DType::kBF16});
  check_rows(op, M, D);
  if (M == 0) return;
  launch_rms(op, stream_, cuda::mat_of(x), cuda::mat_of(delta), cuda::mat_of(gate),
             cuda::mat_of(y), cuda::mat_of(mod_scale), 1.f, cuda::mat_of(mod_shift), M, D, eps);
}

}  // namespace frt
