// CUDA attention: out[Sq, Hq*D] = softmax(q k^T * scale + mask) v, MQA/GQA (q head h reads kv
// head h / (Hq / Hkv)), blind_rows mask (query rows [0, blind_rows) do not see the last
// Sq - blind_rows keys). q/k/v/out may be column slices of fused buffers (any row stride).
//
// Correct-first kernel (fp32 CUDA cores, no tensor cores): one block of 4 warps per (16 query
// rows, q head); each warp owns 4 query rows. Keys go through shared memory 32 at a time (one
// key per lane for the scores, K rows padded to an odd stride: no bank conflicts), with an
// online softmax in fp32 (running max, rescaled partial sums) and the output accumulated in
// registers, 8 values per lane per row (head_dim <= 256). head_dim is a run-time value.
// The fast version (next step) uses mma/wgmma and shares K/V tiles across the MQA group.
// Device-resident key gap (AttentionParams::key_valid): keys [key_valid[0], key_gap_end) are
// masked; the block reads the device value when it starts and skips key tiles entirely inside
// the gap (masked keys of partly covered tiles load as zeros and get weight 0).
// batch > 1 (stacked equal-length sequences): the flash kernels take them in one launch; this
// kernel runs them one after another.
// Covered by tests/gpu/test_cuda_ops.cpp (CudaOps.Attention) and
// tests/gpu/test_cuda_device_lengths.cpp (key gap).
#include <cmath>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_launch.cuh"

namespace frt {

namespace {
using cuda::Mat;

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kBlockRows = kWarps * kRowsPerWarp;  // query rows per block
constexpr int kTileKeys = 32;                       // keys per shared-memory tile (one per lane)
constexpr int kMaxHeadDim = 256;
constexpr int kPerLane = kMaxHeadDim / 32;          // output values per lane per row

__host__ __device__ constexpr int k_stride(int D) { return D + 1 - (D & 1); }  // odd: no conflicts

__host__ __device__ constexpr size_t smem_bytes(int D) {
  return sizeof(float) * (static_cast<size_t>(kBlockRows) * D +
                          static_cast<size_t>(kTileKeys) * k_stride(D) +
                          static_cast<size_t>(kTileKeys) * D);
}

__global__ void __launch_bounds__(kWarps * 32)
    attention_kernel(Mat out, Mat q, Mat k, Mat v, int Sq, int Skv, int group, int D,
                     float scale, int blind_rows, int hidden, const int* key_valid,
                     int gap_end) {
  cuda::pdl_begin();
  extern __shared__ float smem[];
  const int ks_stride = k_stride(D);
  float* qs = smem;                               // [kBlockRows][D]
  float* ks = qs + kBlockRows * D;                // [kTileKeys][ks_stride]
  float* vs = ks + kTileKeys * ks_stride;         // [kTileKeys][D]
  const int h = blockIdx.y, kvh = h / group;
  const int row0 = blockIdx.x * kBlockRows;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t q_col = static_cast<int64_t>(h) * D, kv_col = static_cast<int64_t>(kvh) * D;

  for (int i = tid; i < kBlockRows * D; i += blockDim.x) {
    const int r = i / D, d = i % D, row = row0 + r;
    qs[i] = row < Sq ? cuda::load(q, row, q_col + d) : 0.f;
  }

  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kPerLane];
  int n_keys[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int row = row0 + warp * kRowsPerWarp + r;
    m[r] = -INFINITY;
    l[r] = 0.f;
    n_keys[r] = row < blind_rows ? Skv - hidden : Skv;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) acc[r][i] = 0.f;
  }
  const float* qw = qs + warp * kRowsPerWarp * D;
  const int gap_begin = key_valid ? min(max(*key_valid, 0), gap_end) : gap_end;

  for (int kt = 0; kt < Skv; kt += kTileKeys) {
    // A tile entirely inside the gap: skipped (uniform over the block).
    if (kt >= gap_begin && min(kt + kTileKeys, Skv) <= gap_end) continue;
    __syncthreads();  // q is loaded / the previous tile is consumed
    for (int i = tid; i < kTileKeys * D; i += blockDim.x) {
      const int j = i / D, d = i % D, key = kt + j;
      const bool ok = key < Skv && !(key >= gap_begin && key < gap_end);
      ks[j * ks_stride + d] = ok ? cuda::load(k, key, kv_col + d) : 0.f;
      vs[j * D + d] = ok ? cuda::load(v, key, kv_col + d) : 0.f;
    }
    __syncthreads();

    // Scores of this lane's key for the warp's rows.
    float s[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) s[r] = 0.f;
    const float* krow = ks + lane * ks_stride;
    for (int d = 0; d < D; ++d) {
      const float kd = krow[d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) s[r] = fmaf(qw[r * D + d], kd, s[r]);
    }
    const int key = kt + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const bool masked = key >= n_keys[r] || (key >= gap_begin && key < gap_end);
      const float sc = masked ? -INFINITY : s[r] * scale;
      const float m_new = fmaxf(m[r], cuda::warp_max(sc));
      float p = 0.f, corr = 1.f;
      if (m_new != -INFINITY) {  // at least one visible key so far
        p = expf(sc - m_new);    // 0 for masked keys
        corr = expf(m[r] - m_new);
      }
      m[r] = m_new;
      l[r] = l[r] * corr + p;  // per-lane partial sum; summed over the warp at the end
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) acc[r][i] *= corr;
      s[r] = p;
    }

    // acc += p_j * v_j for the tile's keys (p of key j lives in lane j).
    const int valid = Skv - kt < kTileKeys ? Skv - kt : kTileKeys;
    for (int j = 0; j < valid; ++j) {
      float pj[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) pj[r] = __shfl_sync(0xffffffffu, s[r], j);
      const float* vrow = vs + j * D;
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) {
        const int d = lane + 32 * i;
        if (d < D) {
          const float vv = vrow[d];
#pragma unroll
          for (int r = 0; r < kRowsPerWarp; ++r) acc[r][i] = fmaf(pj[r], vv, acc[r][i]);
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const float denom = cuda::warp_sum(l[r]);
    const int row = row0 + warp * kRowsPerWarp + r;
    if (row >= Sq) continue;
    const float inv = 1.f / denom;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < D) cuda::store(out, row, q_col + d, acc[r][i] * inv);
    }
  }
}
}  // namespace

int cuda_attention_setup(int device_index) {
  const char* op = "attention setup";
  int optin = 0;
  FRT_CUDA_CHECK(op, cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                            device_index));
  int max_d = kMaxHeadDim;
  while (max_d > 0 && smem_bytes(max_d) > static_cast<size_t>(optin)) --max_d;
  if (max_d > 0)
    FRT_CUDA_CHECK(op, cudaFuncSetAttribute(attention_kernel,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(smem_bytes(max_d))));
  return max_d;
}

void CudaBackend::attention(Tensor out, Tensor q, Tensor k, Tensor v, const AttentionParams& p) {
  const char* op = "attention";
  cuda::check_arg(p.num_q_heads > 0 && p.num_kv_heads > 0 && p.head_dim > 0, op,
                  "head counts and head_dim must be positive");
  cuda::check_arg(p.num_q_heads % p.num_kv_heads == 0, op,
                  "num_q_heads must be a multiple of num_kv_heads");
  cuda::check_arg(p.num_q_heads <= 65535, op, "more than 65535 query heads");
  if (p.head_dim > attn_max_head_dim_)
    throw_error(Status::kNotSupported, op, ": head_dim ", p.head_dim,
                " is not supported by the CUDA attention kernel; expected 1 <= head_dim <= ",
                attn_max_head_dim_, " (SigLIP 72, Gemma 256)");
  cuda::check_arg(std::isfinite(p.scale) && p.scale != 0.f, op, "scale must be finite, non-zero");
  const int64_t D = p.head_dim, Sq = q.rows(), Skv = k.rows();
  const int64_t q_cols = p.num_q_heads * D, kv_cols = p.num_kv_heads * D;
  cuda::check_matrix(op, "q", q, Sq, q_cols, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "k", k, Skv, kv_cols, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "v", v, Skv, kv_cols, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "out", out, Sq, q_cols, {DType::kBF16, DType::kF32});
  cuda::check_arg(Sq < (int64_t{1} << 30) && Skv < (int64_t{1} << 30), op,
                  "sequence longer than 2^30");
  cuda::check_arg(p.batch >= 1 && Sq % p.batch == 0 && Skv % p.batch == 0, op,
                  "batch must be >= 1 and divide the rows of q and k (equal-length sequences)");
  // The masks apply within each of the batch sequences.
  const int64_t sq = Sq / p.batch, skv = Skv / p.batch;
  cuda::check_arg(p.blind_rows >= 0 && p.blind_rows <= sq, op, "blind_rows outside [0, Sq]");
  const int64_t hidden = p.blind_rows > 0 ? sq - p.blind_rows : 0;
  cuda::check_arg(skv >= 1 && skv - hidden >= 1, op,
                  "a query row would see no key (Skv < Sq - blind_rows + 1)");
  if (p.key_valid.data) {
    cuda::check_vector(op, "key_valid", p.key_valid, 1, {DType::kI32});
    cuda::check_arg(p.key_gap_end >= 0 && p.key_gap_end <= skv, op,
                    "key_gap_end outside [0, Skv]");
  }
  if (Sq == 0) return;
  if (attention_flash(out, q, k, v, p)) return;  // tensor cores (cuda_flash_attention.cu)
  if (p.batch > 1) {  // this kernel takes one sequence: each on its own
    attention_per_sequence(*this, out, q, k, v, p);
    return;
  }

  const dim3 grid(static_cast<unsigned>((Sq + kBlockRows - 1) / kBlockRows),
                  static_cast<unsigned>(p.num_q_heads));
  cuda::launch(*this, op, attention_kernel, grid, dim3(kWarps * 32), smem_bytes(p.head_dim),
      cuda::mat_of(out), cuda::mat_of(q), cuda::mat_of(k), cuda::mat_of(v),
      static_cast<int>(Sq), static_cast<int>(Skv), p.num_q_heads / p.num_kv_heads, p.head_dim,
      p.scale, p.blind_rows, static_cast<int>(hidden),
      p.key_valid.data ? p.key_valid.as<const int32_t>() : nullptr,
      p.key_valid.data ? p.key_gap_end : 0);
}

}  // namespace frt
