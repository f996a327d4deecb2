// FP8 GEMMs of the CUDA backend (precision kFP8), for linear() calls with many rows (SigLIP,
// the Gemma prefix; the expert's few rows go to the skinny kernel, W8A16):
//  1. x (BF16/F32) is quantized to E4M3 into a load-time buffer (fp8_x_, in row chunks), with
//     the site's static scale *x_scale (QuantMode::kStatic, what a captured graph runs), or in
//     kCalibrate mode with a dynamic scale max(amax(x), floor)/448 computed on the device first
//     (amax_into), folding amax(x) into the site's x_amax;
//  2. one cuBLASLt FP8 GEMM (E4M3 x E4M3, fp32 compute, BF16/F32 out) whose A / B scale pointers
//     are the device floats w_scale and x_scale, so new scales need no recapture; bias / GELU /
//     residual as in the bf16 path (gemm_with_epilogue, cuda_linear.cu).
// Producer fusion: gemm_input() hands the norm / GeGLU before such a GEMM an F8E4M3 view of
// fp8_x_ carrying the site's scale; they quantize as they store (cuda::mat_out) and step 1 is
// skipped: bit-identical to the two-pass result, one pass over x fewer.
// Also: the QuantInfo storage and the calibration methods (reset / read amax, write scales).
// Covered by tests/gpu/test_cuda_fp8.cpp; timed by bench/bench_fp8_cuda.cpp.
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_fp8.h"
#include "backend/cuda/cuda_skinny_gemm.h"

namespace frt {

namespace {
using cuda::Mat;

__device__ __forceinline__ uint8_t to_e4m3(float v) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
}

// *p = max(*p, v) for v >= 0: non-negative floats order like their int bits.
__device__ __forceinline__ void atomic_max_nonneg(float* p, float v) {
  atomicMax(reinterpret_cast<int*>(p), __float_as_int(v));
}

__device__ __forceinline__ float scale_of(const Fp8Scale& s) {
  return s.amax ? fmaxf(*s.amax, kFp8AmaxFloor) / kE4M3Max : *s.scale;
}

__device__ __forceinline__ void publish_scale(const Fp8Scale& s, float scale) {
  if (s.amax && blockIdx.x == 0 && threadIdx.x == 0) {
    *s.scale_out = scale;
    if (s.site_amax) atomic_max_nonneg(s.site_amax, *s.amax);
  }
}

// Any dtype / stride / K: one element per thread and step. __fdiv_rn: the host's x / scale.
__global__ void quantize_kernel(Mat x, uint8_t* q, int64_t ldq, int64_t M, int64_t K,
                                Fp8Scale s) {
  cuda::pdl_begin();
  const float scale = scale_of(s);
  publish_scale(s, scale);
  const int64_t total = M * K;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / K, c = i % K;
    q[r * ldq + c] = to_e4m3(__fdiv_rn(cuda::load(x, r, c), scale));
  }
}

// BF16 x with 16-byte aligned rows and K % 8 == 0: 8 elements per thread and step (one 16-byte
// load, one 8-byte store).
__global__ void quantize_bf16x8_kernel(const __nv_bfloat16* x, int64_t ldx, uint8_t* q,
                                       int64_t ldq, int64_t M, int64_t K, Fp8Scale s) {
  cuda::pdl_begin();
  const float scale = scale_of(s);
  publish_scale(s, scale);
  const int64_t kv = K / 8, total = M * kv;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / kv, c = (i % kv) * 8;
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(x + r * ldx + c));
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
    uint32_t out[2];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      uint32_t word = 0;
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float2 f = __bfloat1622float2(h[2 * j + e]);
        const float2 d = make_float2(__fdiv_rn(f.x, scale), __fdiv_rn(f.y, scale));
        const uint32_t pair = __nv_cvt_float2_to_fp8x2(d, __NV_SATFINITE, __NV_E4M3);
        word |= pair << (16 * e);
      }
      out[j] = word;
    }
    *reinterpret_cast<uint2*>(q + r * ldq + c) = make_uint2(out[0], out[1]);
  }
}

__global__ void amax_kernel(Mat x, int64_t M, int64_t K, float* out) {
  cuda::pdl_begin();
  __shared__ float red[32];
  float m = 0.f;
  const int64_t total = M * K;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    m = fmaxf(m, fabsf(cuda::load(x, i / K, i % K)));  // fmaxf drops NaN
  m = cuda::warp_max(m);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) red[warp] = m;
  __syncthreads();
  if (warp == 0) {
    m = cuda::warp_max(lane < static_cast<int>(blockDim.x >> 5) ? red[lane] : 0.f);
    if (lane == 0) atomic_max_nonneg(out, m);
  }
}

__global__ void quantize_flat_kernel(const float* src, uint8_t* dst, int64_t n, float scale) {
  cuda::pdl_begin();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = to_e4m3(__fdiv_rn(src[i], scale));
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }
}  // namespace

void quantize_e4m3(cudaStream_t stream, bool pdl, const Tensor& x, void* q, int64_t ldq,
                   const Fp8Scale& s) {
  const char* op = "linear (fp8 quantize)";
  const int64_t M = x.rows(), K = x.cols();
  if (M * K == 0) return;
  uint8_t* qb = static_cast<uint8_t*>(q);
  if (x.dtype == DType::kBF16 && K % 8 == 0 && x.ld() % 8 == 0 && ldq % 8 == 0 &&
      aligned16(x.data) && (reinterpret_cast<uintptr_t>(q) & 7) == 0) {
    cuda::launch(stream, pdl, op, quantize_bf16x8_kernel, cuda::grid_for(M * K / 8), cuda::kThreads,
                 0, static_cast<const __nv_bfloat16*>(x.data), x.ld(), qb, ldq, M, K, s);
  } else {
    cuda::launch(stream, pdl, op, quantize_kernel, cuda::grid_for(M * K), cuda::kThreads, 0,
                 cuda::mat_of(x), qb, ldq, M, K, s);
  }
}

void amax_into(cudaStream_t stream, bool pdl, const Tensor& x, float* out) {
  const int64_t M = x.rows(), K = x.cols();
  if (M * K == 0) return;
  const unsigned blocks = std::min<unsigned>(cuda::grid_for(M * K), 1024);
  cuda::launch(stream, pdl, "linear (fp8 amax)", amax_kernel, blocks, cuda::kThreads, 0,
               cuda::mat_of(x), M, K, out);
}

void quantize_e4m3_flat(cudaStream_t stream, const float* src, uint8_t* dst, int64_t n,
                        float scale) {
  if (n == 0) return;
  cuda::launch(stream, false, "cuda upload_weight (fp8)", quantize_flat_kernel, cuda::grid_for(n),
               cuda::kThreads, 0, src, dst, n, scale);  // load time: no PDL
}

void CudaBackend::linear_fp8(Tensor y, Tensor x, Tensor w, const Tensor* bias, Activation act,
                             bool accumulate) {
  const char* op = "linear (fp8)";
  const QuantInfo& qi = *w.quant;
  const int64_t M = x.rows(), K = x.cols(), N = w.rows();
  cuda::check_arg(fp8_x_ != nullptr && fp8_dyn_ != nullptr, op,
                  "F8E4M3 weight on a backend not made with Precision::kFP8");
  cuda::check_arg(K >= 1, op, "K = 0 with an FP8 weight");
  Fp8Scale s;
  s.scale = qi.x_scale;
  const float* x_scale = qi.x_scale;
  if (x.dtype == DType::kF8E4M3) {  // gemm_input(): the producer quantized it already
    cuda::check_arg(quant_mode_ == QuantMode::kStatic && x.data == fp8_x_ && x.ld() == K, op,
                    "a pre-quantized x outside static mode or not from gemm_input()");
    Gemm g;
    g.M = M;
    g.N = N;
    g.K = K;
    g.x = x.data;
    g.ldx = K;
    g.xt = DType::kF8E4M3;
    g.w = w.data;
    g.ldw = w.ld();
    g.wt = DType::kF8E4M3;
    g.y = y.data;
    g.ldy = y.ld();
    g.yt = y.dtype;
    g.accumulate = accumulate;
    g.a_scale = qi.w_scale;
    g.b_scale = x_scale;
    ++linear_stats_.fp8_lt;
    gemm_with_epilogue(op, g, bias, act);
    return;
  }
  if (quant_mode_ == QuantMode::kCalibrate) {  // dynamic: this input's own amax
    FRT_CUDA_CHECK(op, cudaMemsetAsync(fp8_dyn_, 0, sizeof(float), stream_));
    amax_into(stream_, pdl_enabled_, x, fp8_dyn_);
    s.amax = fp8_dyn_;
    s.scale_out = fp8_dyn_ + kXScale;  // 16-byte aligned, like every scale cuBLASLt reads
    s.site_amax = qi.x_amax;
    x_scale = fp8_dyn_ + kXScale;
  }
  // Quantized rows are K bytes apart (cuBLASLt wants 16-byte multiples: K % 16 == 0 in the
  // model; other K run the fallback kernel on the same quantized x).
  const int64_t ldq = K;
  const int64_t chunk = std::max<int64_t>(1, static_cast<int64_t>(kFp8XBytes) / ldq);
  cuda::check_arg(ldq <= static_cast<int64_t>(kFp8XBytes), op, "K too large for the FP8 buffer");
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t rows = std::min(chunk, M - r0);
    Tensor xc = x;  // rows [r0, r0 + rows) of x
    xc.data = static_cast<char*>(x.data) + r0 * x.ld() * static_cast<int64_t>(dtype_size(x.dtype));
    xc.shape[0] = rows;
    xc.ndim = 2;
    xc.shape[1] = K;
    xc.row_stride = x.ld();
    quantize_e4m3(stream_, pdl_enabled_, xc, fp8_x_, ldq, s);
    Gemm g;
    g.M = rows;
    g.N = N;
    g.K = K;
    g.x = fp8_x_;
    g.ldx = ldq;
    g.xt = DType::kF8E4M3;
    g.w = w.data;
    g.ldw = w.ld();
    g.wt = DType::kF8E4M3;
    g.y = static_cast<char*>(y.data) + r0 * y.ld() * static_cast<int64_t>(dtype_size(y.dtype));
    g.ldy = y.ld();
    g.yt = y.dtype;
    g.accumulate = accumulate;
    g.a_scale = qi.w_scale;
    g.b_scale = x_scale;
    ++linear_stats_.fp8_lt;
    gemm_with_epilogue(op, g, bias, act);
  }
}

// ---------------------------------------------------------------- producer fusion

Tensor CudaBackend::gemm_input(Tensor x, Tensor w) {
  // Only where linear() would run linear_fp8 with a static scale on x as one row chunk: FP8
  // weight, static mode, not the skinny kernel's rows, and the layout cuBLASLt takes as is.
  if (precision_ != Precision::kFP8 || quant_mode_ != QuantMode::kStatic || !fp8_x_ ||
      w.dtype != DType::kF8E4M3 || !w.quant || x.dtype != DType::kBF16 || x.cols() != w.cols())
    return x;
  const int64_t M = x.rows(), K = x.cols();
  if (K % 16 != 0 || M * K > static_cast<int64_t>(kFp8XBytes) ||
      skinny_gemm_would_handle(*this, x, x, w, nullptr))
    return x;
  Tensor q = make_view(fp8_x_, DType::kF8E4M3, Device::kCuda, {M, K});
  q.quant = w.quant;
  return q;
}

// ---------------------------------------------------------------- sites and calibration

const QuantInfo* CudaBackend::new_quant_site(const std::string& name, float w_scale) {
  const char* op = "cuda upload_weight (fp8)";
  const size_t i = quant_.size();
  if (i % kQuantBlock == 0) {  // a new block: x_scale 1, x_amax 0
    float* block = static_cast<float*>(
        device_malloc(kQuantBlock * kQuantStride * sizeof(float), "fp8 scales", true));
    std::vector<float> init(kQuantBlock * kQuantStride, 0.f);
    for (int j = 0; j < kQuantBlock; ++j) init[kQuantStride * j + kXScale] = 1.f;
    FRT_CUDA_CHECK(op, cudaMemcpyAsync(block, init.data(), init.size() * sizeof(float),
                                       cudaMemcpyHostToDevice, stream_));
    FRT_CUDA_CHECK(op, cudaStreamSynchronize(stream_));  // `init` dies here
    quant_blocks_.push_back(block);
  }
  float* f = quant_blocks_.back() + kQuantStride * (i % kQuantBlock);
  FRT_CUDA_CHECK(op, cudaMemcpyAsync(f, &w_scale, sizeof(float), cudaMemcpyHostToDevice, stream_));
  FRT_CUDA_CHECK(op, cudaStreamSynchronize(stream_));
  QuantInfo q;
  q.w_scale = f;
  q.x_scale = f + kXScale;
  q.x_amax = f + kXAmax;
  q.site = static_cast<int>(i);
  quant_.push_back(q);
  quant_names_.push_back(name);
  return &quant_.back();
}

void CudaBackend::reset_quant_amax() {
  const char* op = "reset_quant_amax";
  for (size_t b = 0; b < quant_blocks_.size(); ++b) {
    const size_t n = std::min<size_t>(kQuantBlock, quant_.size() - b * kQuantBlock);
    FRT_CUDA_CHECK(op, cudaMemset2DAsync(quant_blocks_[b] + kXAmax, kQuantStride * sizeof(float), 0,
                                         sizeof(float), n, stream_));
  }
  FRT_CUDA_CHECK(op, cudaStreamSynchronize(stream_));
}

std::vector<float> CudaBackend::read_quant_amax() {
  const char* op = "read_quant_amax";
  std::vector<float> out(quant_.size());
  for (size_t b = 0; b < quant_blocks_.size(); ++b) {
    const size_t n = std::min<size_t>(kQuantBlock, quant_.size() - b * kQuantBlock);
    FRT_CUDA_CHECK(op, cudaMemcpy2DAsync(out.data() + b * kQuantBlock, sizeof(float),
                                         quant_blocks_[b] + kXAmax, kQuantStride * sizeof(float),
                                         sizeof(float),
                                         n, cudaMemcpyDeviceToHost, stream_));
  }
  FRT_CUDA_CHECK(op, cudaStreamSynchronize(stream_));
  return out;
}

void CudaBackend::write_quant_scales(const std::vector<float>& x_scales) {
  const char* op = "write_quant_scales";
  if (x_scales.size() != quant_.size())
    throw_error(Status::kInvalidArgument, op, ": expected ", quant_.size(), " scales (one per FP8 "
                "site), got ", x_scales.size());
  for (size_t i = 0; i < x_scales.size(); ++i)
    if (!(x_scales[i] > 0.f) || !std::isfinite(x_scales[i]))
      throw_error(Status::kInvalidArgument, op, ": scale of site ", i, " (", quant_names_[i],
                  ") is ", x_scales[i], "; expected a finite value > 0");
  for (size_t b = 0; b < quant_blocks_.size(); ++b) {
    const size_t n = std::min<size_t>(kQuantBlock, quant_.size() - b * kQuantBlock);
    FRT_CUDA_CHECK(op, cudaMemcpy2DAsync(quant_blocks_[b] + kXScale, kQuantStride * sizeof(float),
                                         x_scales.data() + b * kQuantBlock, sizeof(float),
                                         sizeof(float), n, cudaMemcpyHostToDevice, stream_));
  }
  FRT_CUDA_CHECK(op, cudaStreamSynchronize(stream_));  // load time; x_scales may die after
}

}  // namespace frt
