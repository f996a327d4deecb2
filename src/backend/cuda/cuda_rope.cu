// CUDA qkv_split_rope: splits a fused QKV projection into q, k, v and applies rotate-half RoPE to
// q and k, with the CPU twin's arithmetic (src/backend/cpu/cpu_rope.cpp, after HF Gemma as
// patched by openpi): inv_freq_i = theta^(-2i/D) rounded to fp32, the angle pos * inv_freq_i in
// fp32, cos/sin of that angle evaluated in double (as sincospi) and rounded, and
// out = x * cos + rotate_half(x) * sin with unfused fp32 products (so f32 outputs match the CPU).
// Positions are pos_offset + row, plus pos_base[0] read on the device when given (one captured
// graph serves every prompt length). k and v may be row slices of a KV cache (any row stride);
// qkv must not overlap the outputs.
// Fast path (head_dim % 16 == 0, 16-byte aligned rows, the model's case): one block per row, one
// thread per (head, 8 rotation pairs) with 16-byte loads issued before the row's cos/sin table is
// built in shared memory (so the table's double sincospi overlaps the loads); inv_freq is
// computed once on the host (the CPU twin's double expression) and passed by value. Otherwise a
// generic kernel: the table, then the threads sweep q, k and v one element at a time.
// Covered by tests/gpu/test_cuda_ops.cpp (CudaOps.QkvSplitRope) and
// tests/gpu/test_cuda_device_lengths.cpp (pos_base); timed by bench/bench_small_ops_cuda.cpp.
#include <algorithm>
#include <cmath>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_rope.cuh"

namespace frt {

namespace {
using cuda::Mat;

constexpr int kMaxHeadDim = 1024;

struct RopeFreq {
  float inv[kMaxHeadDim / 2];  // theta^(-2i/D) rounded to fp32 (host, as the CPU twin)
};

// Fast path. Item it < n_rope: rotation pairs 8 ci .. 8 ci + 7 of head it / hc (q heads, then k
// heads; hc = D / 16); then 8-column copies (v; or q, k, v without RoPE).
__global__ void qkv_rope_vec8_kernel(Mat q, Mat k, Mat v, Mat qkv, int num_q_heads,
                                     int num_kv_heads, int D, int pos_offset,
                                     const int* pos_base, bool rope, const RopeFreq f) {
  cuda::pdl_begin();
  __shared__ float cos_t[kMaxHeadDim / 2];
  __shared__ float sin_t[kMaxHeadDim / 2];
  const int64_t r = blockIdx.x;
  const int half = D / 2, hc = D / 16;
  const int q_cols = num_q_heads * D, kv_cols = num_kv_heads * D;
  const int n_rope = rope ? (num_q_heads + num_kv_heads) * hc : 0;
  const int copy0 = rope ? q_cols + kv_cols : 0;  // first copied column
  const int n_items = n_rope + (q_cols + 2 * kv_cols - copy0) / 8;
  auto load_item = [&](int it, float (&a)[8], float (&b)[8]) {
    if (it < n_rope) {
      const int head = it / hc, c0 = head * D + (it - head * hc) * 8;
      cuda::load8(qkv, r, c0, a);
      cuda::load8(qkv, r, c0 + half, b);
    } else {
      cuda::load8(qkv, r, copy0 + (it - n_rope) * 8, a);
    }
  };
  auto store_item = [&](int it, float (&a)[8], float (&b)[8]) {
    if (it < n_rope) {
      const int head = it / hc, i0 = (it - head * hc) * 8;
      float o1[8], o2[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float c = cos_t[i0 + e], s = sin_t[i0 + e];
        cuda::rope_rotate(a[e], b[e], c, s, o1[e], o2[e]);
      }
      const bool is_q = head < num_q_heads;
      const Mat& dst = is_q ? q : k;
      const int c0 = (is_q ? head : head - num_q_heads) * D + i0;
      cuda::store8(dst, r, c0, o1);
      cuda::store8(dst, r, c0 + half, o2);
    } else {
      int c = copy0 + (it - n_rope) * 8;
      const Mat& dst = cuda::qkv_split_target(q, k, v, q_cols, kv_cols, c);
      cuda::store8(dst, r, c, a);
    }
  };
  float a[8], b[8];
  const int it0 = threadIdx.x;
  if (it0 < n_items) load_item(it0, a, b);  // in flight while the table is built
  if (rope) {
    const float pos = cuda::rope_position(pos_offset, pos_base, r);
    for (int i = threadIdx.x; i < half; i += blockDim.x)
      cuda::rope_cos_sin(pos, f.inv[i], &cos_t[i], &sin_t[i]);
  }
  __syncthreads();
  if (it0 < n_items) store_item(it0, a, b);
  for (int it = it0 + blockDim.x; it < n_items; it += blockDim.x) {
    load_item(it, a, b);
    store_item(it, a, b);
  }
}

__global__ void qkv_split_rope_kernel(Mat q, Mat k, Mat v, Mat qkv, int num_q_heads,
                                      int num_kv_heads, int D, int pos_offset,
                                      const int* pos_base, float theta) {
  cuda::pdl_begin();
  __shared__ float cos_t[kMaxHeadDim / 2];
  __shared__ float sin_t[kMaxHeadDim / 2];
  const int64_t r = blockIdx.x;
  const int half = D / 2;
  const bool rope = theta != 0.f;
  if (rope) {
    const float pos = cuda::rope_position(pos_offset, pos_base, r);
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
      const double e = static_cast<double>(2 * i) / static_cast<double>(D);
      const float inv_freq = static_cast<float>(1.0 / pow(static_cast<double>(theta), e));
      cuda::rope_cos_sin(pos, inv_freq, &cos_t[i], &sin_t[i]);
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
        float unused;
        cuda::rope_rotate(x1, x2, cos_t[i], sin_t[i], out, unused);
      } else {
        const int ii = i - half;
        const float x1 = cuda::load(qkv, r, head0 + ii), x2 = cuda::load(qkv, r, head0 + i);
        float unused;
        cuda::rope_rotate(x1, x2, cos_t[ii], sin_t[ii], unused, out);
      }
    } else {
      out = cuda::load(qkv, r, j);
    }
    int64_t c = j;
    const Mat& dst = cuda::qkv_split_target(q, k, v, q_cols, kv_cols, c);
    cuda::store(dst, r, c, out);
  }
}
}  // namespace

void CudaBackend::qkv_split_rope(Tensor q, Tensor k, Tensor v, Tensor qkv, int num_q_heads,
                                 int num_kv_heads, int head_dim, int pos_offset,
                                 const Tensor* pos_base, float theta) {
  const char* op = "qkv_split_rope";
  cuda::check_arg(num_q_heads > 0 && num_kv_heads > 0 && head_dim > 0, op,
                  "head counts and head_dim must be positive");
  cuda::check_arg(head_dim <= kMaxHeadDim, op, "head_dim above 1024 is not supported");
  cuda::check_arg(theta == 0.f || head_dim % 2 == 0, op, "RoPE needs an even head_dim");
  cuda::check_arg(pos_offset >= 0, op, "pos_offset must be >= 0");
  if (pos_base) cuda::check_vector(op, "pos_base", *pos_base, 1, {DType::kI32});
  const int* base = pos_base ? pos_base->as<const int32_t>() : nullptr;
  const int64_t S = qkv.rows(), D = head_dim;
  const int64_t q_cols = num_q_heads * D, kv_cols = num_kv_heads * D;
  cuda::check_matrix(op, "qkv", qkv, S, q_cols + 2 * kv_cols, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "q", q, S, q_cols, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "k", k, S, kv_cols, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "v", v, S, kv_cols, {DType::kBF16, DType::kF32});
  cuda::check_arg(S < (int64_t{1} << 31) - 1, op, "more than 2^31 - 1 rows");
  if (S == 0) return;
  const bool rope = theta != 0.f;
  if (head_dim % (rope ? 16 : 8) == 0 && cuda::vec8_ok(q) && cuda::vec8_ok(k) &&
      cuda::vec8_ok(v) && cuda::vec8_ok(qkv)) {
    RopeFreq f{};
    for (int i = 0; i < head_dim / 2 && rope; ++i) f.inv[i] = cuda::rope_inv_freq(theta, i, head_dim);
    const int64_t items = rope ? (q_cols + kv_cols) / 16 + kv_cols / 8 : (q_cols + 2 * kv_cols) / 8;
    int64_t threads = std::max<int64_t>(items, rope ? head_dim / 2 : 1);
    threads = std::min<int64_t>((threads + 31) / 32 * 32, 1024);
    cuda::launch(*this, op, qkv_rope_vec8_kernel, static_cast<unsigned>(S),
                 static_cast<unsigned>(threads), 0, cuda::mat_of(q), cuda::mat_of(k),
                 cuda::mat_of(v), cuda::mat_of(qkv), num_q_heads, num_kv_heads, head_dim,
                 pos_offset, base, rope, f);
    return;
  }
  cuda::launch(*this, op, qkv_split_rope_kernel, static_cast<unsigned>(S), cuda::kThreads, 0,
               cuda::mat_of(q), cuda::mat_of(k), cuda::mat_of(v), cuda::mat_of(qkv), num_q_heads,
               num_kv_heads, head_dim, pos_offset, base, theta);
}

}  // namespace frt
