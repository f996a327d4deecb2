// CPU attention: out[Sq, Hq*D] = softmax(q k^T * scale + mask) v with MQA/GQA head mapping
// (q head h reads kv head h / (Hq / Hkv)) and the blind_rows mask (query rows [0, blind_rows)
// do not see the last Sq - blind_rows keys). Plain loops, OpenMP over (head, query); softmax
// subtracts the row max; scores, the denominator and the weighted sum of v are in double.
// batch > 1: each stacked sequence is attended on its own (AttentionParams::batch).
// Covered by tests/cpp/test_cpu_ops.cpp (ATTENTION cases in tests/cpp/op_cases_attention.cpp).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_check.h"

namespace frt {

namespace {
constexpr int kMaxHeadDim = 1024;

// In double: with logits in the hundreds, an fp32 dot's rounding alone moves the softmax
// weights by ~1e-5.
double dot(const float* a, const float* b, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}
}  // namespace

void CpuBackend::attention(Tensor out, Tensor q, Tensor k, Tensor v, const AttentionParams& p) {
  const char* op = "attention";
  cpu::check_arg(p.num_q_heads > 0 && p.num_kv_heads > 0 && p.head_dim > 0, op,
                 "head counts and head_dim must be positive");
  cpu::check_arg(p.num_q_heads % p.num_kv_heads == 0, op,
                 "num_q_heads must be a multiple of num_kv_heads");
  cpu::check_arg(p.head_dim <= kMaxHeadDim, op, "head_dim above 1024 is not supported");
  cpu::check_arg(std::isfinite(p.scale) && p.scale != 0.f, op, "scale must be finite, non-zero");
  cpu::check_tensor(op, "q", q, DType::kF32);
  cpu::check_tensor(op, "k", k, DType::kF32);
  cpu::check_arg(p.batch >= 1 && q.rows() % p.batch == 0 && k.rows() % p.batch == 0, op,
                 "batch must be >= 1 and divide the rows of q and k (equal-length sequences)");
  if (p.batch > 1) {  // each sequence on its own (the definition of batch)
    const int64_t q_cols = int64_t{p.num_q_heads} * p.head_dim;
    const int64_t kv_cols = int64_t{p.num_kv_heads} * p.head_dim;
    cpu::check_matrix(op, "k", k, k.rows(), kv_cols);
    cpu::check_matrix(op, "v", v, k.rows(), kv_cols);
    cpu::check_matrix(op, "out", out, q.rows(), q_cols);
    attention_per_sequence(*this, out, q, k, v, p);
    return;
  }
  const int64_t D = p.head_dim, Sq = q.rows(), Skv = k.rows();
  const int64_t q_cols = p.num_q_heads * D, kv_cols = p.num_kv_heads * D;
  cpu::check_matrix(op, "q", q, Sq, q_cols);
  cpu::check_matrix(op, "k", k, Skv, kv_cols);
  cpu::check_matrix(op, "v", v, Skv, kv_cols);
  cpu::check_matrix(op, "out", out, Sq, q_cols);
  cpu::check_arg(p.blind_rows >= 0 && p.blind_rows <= Sq, op, "blind_rows outside [0, Sq]");
  const int64_t hidden = p.blind_rows > 0 ? Sq - p.blind_rows : 0;  // keys blind rows skip
  cpu::check_arg(Skv >= 1 && Skv - hidden >= 1, op,
                 "a query row would see no key (Skv < Sq - blind_rows + 1)");
  // Device-resident key range: keys [gap_begin, gap_end) are masked.
  int64_t gap_begin = 0, gap_end = 0;
  if (p.key_valid.data) {
    cpu::check_tensor(op, "key_valid", p.key_valid, DType::kI32);
    cpu::check_arg(p.key_valid.numel() == 1, op, "key_valid must hold one i32");
    gap_begin = *p.key_valid.as<const int32_t>();
    gap_end = p.key_gap_end;
    cpu::check_arg(0 <= gap_begin && gap_begin <= gap_end && gap_end <= Skv, op,
                   "key_valid[0] and key_gap_end outside 0 <= valid <= gap_end <= Skv");
    cpu::check_arg(gap_begin >= 1 || gap_end < Skv - hidden, op, "a query row would see no key");
  }
  if (Sq == 0) return;

  const int group = p.num_q_heads / p.num_kv_heads;
  const int threads = std::max(1, omp_get_max_threads());
  double* scores_all = scratch_f64(static_cast<size_t>(threads) * static_cast<size_t>(Skv));

#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
  for (int h = 0; h < p.num_q_heads; ++h) {
    for (int64_t i = 0; i < Sq; ++i) {
      double* scores = scores_all + static_cast<size_t>(omp_get_thread_num()) * Skv;
      const int64_t kv_off = static_cast<int64_t>(h / group) * D;
      const float* qi = q.as<const float>() + i * q.ld() + h * D;
      const int64_t n_keys = i < p.blind_rows ? Skv - hidden : Skv;
      double row_max = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < n_keys; ++j) {
        if (j >= gap_begin && j < gap_end) continue;  // masked key: weight exactly 0
        scores[j] = dot(qi, k.as<const float>() + j * k.ld() + kv_off, D) * p.scale;
        row_max = std::max(row_max, scores[j]);
      }
      double acc[kMaxHeadDim];
      std::fill(acc, acc + D, 0.0);
      double denom = 0;
      for (int64_t j = 0; j < n_keys; ++j) {
        if (j >= gap_begin && j < gap_end) continue;
        const double w = std::exp(scores[j] - row_max);
        denom += w;
        const float* vj = v.as<const float>() + j * v.ld() + kv_off;
        for (int64_t d = 0; d < D; ++d) acc[d] += w * vj[d];
      }
      float* oi = out.as<float>() + i * out.ld() + h * D;
      for (int64_t d = 0; d < D; ++d) oi[d] = static_cast<float>(acc[d] / denom);
    }
  }
}

}  // namespace frt
