// CUDA qkv_split_rope: splits a fused QKV projection into q, k, v and applies rotate-half RoPE to
// q and k, with the CPU twin's arithmetic (src/backend/cpu/cpu_rope.cpp, after HF Gemma as
// patched by openpi): inv_freq_i = theta^(-2i/D) rounded to fp32, the angle pos * inv_freq_i in
// fp32, cos/sin of that angle evaluated in double (as sincospi) and rounded, and
// out = x * cos + rotate_half(x) * sin with unfused fp32 products (so f32 outputs match the CPU).
// One block per row: the row's cos/sin table is built once in shared memory, then the threads
// sweep q, k and v. k and v may be row slices of a KV cache (any row stride); qkv must not
// overlap the outputs.
// Covered by tests/gpu/test_cuda_ops.cpp (CudaOps.QkvSplitRope).
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_common.cuh"

namespace frt {

namespace {
using cuda::Mat;

constexpr int kMaxHeadDim = 1024;
constexpr double kInvPi = 0.318309886183790671537767526745028724;  // 1 / pi

__global__ void qkv_split_rope_kernel(Mat q, Mat k, Mat v, Mat qkv, int num_q_heads,
                                      int num_kv_heads, int D, int pos_offset, float theta) {
  __shared__ float cos_t[kMaxHeadDim / 2];
  __shared__ float sin_t[kMaxHeadDim / 2];
  const int64_t r = blockIdx.x;
  const int half = D / 2;
  const bool rope = theta != 0.f;
  if (rope) {
    const float pos = static_cast<float>(static_cast<int64_t>(pos_offset) + r);
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
      const double e = static_cast<double>(2 * i) / static_cast<double>(D);
      const float inv_freq = static_cast<float>(1.0 / pow(static_cast<double>(theta), e));
      const float angle = __fmul_rn(pos, inv_freq);
      // sin/cos(angle) in double as sincospi(angle / pi): the argument error (~1e-16 relative)
      // is far below the final fp32 rounding, and sincospi needs no large-argument reduction
      // (double sin/cos would keep a local-memory stack frame for it).
      double s, c;
      sincospi(static_cast<double>(angle) * kInvPi, &s, &c);
      cos_t[i] = static_cast<float>(c);
      sin_t[i] = static_cast<float>(s);
    }
  }
  __syncthreads();
  const int64_t q_cols = static_cast<int64_t>(num_q_heads) * D;
  const int64_t kv_cols = static_cast<int64_t>(num_kv_heads) * D;
  for (int64_t j = threadIdx.x; j < q_cols + 2 * kv_cols; j += blockDim.x) {
    float out;
    if (rope && j < q_cols + kv_cols) {
      // Column j of q (or of k, offset by q_cols) inside head h at index i.
      const int64_t base = j < q_cols ? 0 : q_cols;
      const int64_t head0 = base + ((j - base) / D) * D;
      const int i = static_cast<int>((j - base) % D);
      if (i < half) {
        const float x1 = cuda::load(qkv, r, head0 + i), x2 = cuda::load(qkv, r, head0 + half + i);
        out = __fsub_rn(__fmul_rn(x1, cos_t[i]), __fmul_rn(x2, sin_t[i]));
      } else {
        const int ii = i - half;
        const float x1 = cuda::load(qkv, r, head0 + ii), x2 = cuda::load(qkv, r, head0 + i);
        out = __fadd_rn(__fmul_rn(x2, cos_t[ii]), __fmul_rn(x1, sin_t[ii]));
      }
    } else {
      out = cuda::load(qkv, r, j);
    }
    if (j < q_cols)
      cuda::store(q, r, j, out);
    else if (j < q_cols + kv_cols)
      cuda::store(k, r, j - q_cols, out);
    else
      cuda::store(v, r, j - q_cols - kv_cols, out);
  }
}
}  // namespace

void CudaBackend::qkv_split_rope(Tensor q, Tensor k, Tensor v, Tensor qkv, int num_q_heads,
                                 int num_kv_heads, int head_dim, int pos_offset, float theta) {
  const char* op = "qkv_split_rope";
  cuda::check_arg(num_q_heads > 0 && num_kv_heads > 0 && head_dim > 0, op,
                  "head counts and head_dim must be positive");
  cuda::check_arg(head_dim <= kMaxHeadDim, op, "head_dim above 1024 is not supported");
  cuda::check_arg(theta == 0.f || head_dim % 2 == 0, op, "RoPE needs an even head_dim");
  cuda::check_arg(pos_offset >= 0, op, "pos_offset must be >= 0");
  const int64_t S = qkv.rows(), D = head_dim;
  const int64_t q_cols = num_q_heads * D, kv_cols = num_kv_heads * D;
  cuda::check_matrix(op, "qkv", qkv, S, q_cols + 2 * kv_cols, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "q", q, S, q_cols, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "k", k, S, kv_cols, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "v", v, S, kv_cols, {DType::kBF16, DType::kF32});
  cuda::check_arg(S < (int64_t{1} << 31) - 1, op, "more than 2^31 - 1 rows");
  if (S == 0) return;
  qkv_split_rope_kernel<<<static_cast<unsigned>(S), cuda::kThreads, 0, stream_>>>(
      cuda::mat_of(q), cuda::mat_of(k), cuda::mat_of(v), cuda::mat_of(qkv), num_q_heads,
      num_kv_heads, head_dim, pos_offset, theta);
  FRT_CUDA_LAUNCH_CHECK(op);
}

}  // namespace frt
