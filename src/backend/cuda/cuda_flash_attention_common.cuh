// Device pieces shared by the flash-attention kernels (cuda_flash_attention_kernels.cuh): the
// launch arguments, a division-free `m / group`, the per-tile online-softmax step on a warp's S
// fragment, the split partial writer and the kernel that combines key splits.
// Numerics: scores in the log2 domain (s * scale * log2 e, then 2^x), running max and sum per row
// in fp32; the running max moves only when a score exceeds it by more than 2^8, so
// p = 2^(s - m) <= 256 (exact in fp32, same relative precision in bf16) and O / l is unchanged
// (both carry the same stale max) while most tiles skip rescaling O.
// Covered by tests/gpu/test_cuda_flash_attention.cpp.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_mma.cuh"

namespace frt::cuda::fa {

using bf16 = __nv_bfloat16;

constexpr int kBlockM = 64;  // M rows per CTA (4 groups of 16)
constexpr int kMaxSplits = 64;
constexpr float kRescaleThreshold = 8.f;

// n / d for 0 <= n < 2^31 without a division instruction (Granlund-Montgomery, round-up
// multiplier): q = (umulhi(n, mul) + n) >> shift. d = 1 and powers of two are exact shifts.
struct FastDiv {
  int d = 1;
  uint32_t mul = 1, shift = 0;
  __device__ __forceinline__ int div(int n) const {
    return static_cast<int>((__umulhi(static_cast<uint32_t>(n), mul) + static_cast<uint32_t>(n)) >>
                            shift);
  }
};
inline FastDiv make_fast_div(int d) {
  FastDiv f;
  f.d = d;
  while ((1u << f.shift) < static_cast<uint32_t>(d)) ++f.shift;
  f.mul = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << f.shift) - d)) / d + 1);
  return f;
}

struct FlashArgs {
  const bf16* q;
  const bf16* k;
  const bf16* v;
  bf16* out;
  int64_t ldq, ldk, ldv, ldo;  // row strides, elements
  int skv, d, m_total, num_kv_heads;
  FastDiv group;               // q heads per kv head; M row m = row * group + head_in_group
  int blind_rows, blind_keys;  // rows < blind_rows see keys [0, blind_keys)
  float scale_log2;            // scale * log2(e)
  int splits;                  // key splits: CTAs along grid z share the visible key tiles
  // Device-resident key gap (AttentionParams::key_valid): keys [*key_valid, gap_end) are masked.
  // key_valid == nullptr: no gap. Read by every CTA when it starts (never by the host).
  const int* key_valid;
  int gap_end;
  float* part_o;               // [y][split][m][d]  (splits > 1; y = grid y, below)
  float* part_ml;              // [y][split][m][2]: running max (log2 units), sum
  // Stacked sequences (AttentionParams::batch): grid y = batch * num_kv_heads, y = sequence *
  // num_kv_heads + kv head. Sequence b's rows start at b * seq_q (q, out) and b * skv (k, v);
  // skv and m_total above are one sequence's.
  int batch, seq_q;
};

// Grid y's sequence and kv head.
struct SeqHead {
  int seq, kvh;
};
__device__ __forceinline__ SeqHead seq_head(const FlashArgs& a, int y) {
  const int b = y / a.num_kv_heads;
  return SeqHead{b, y - b * a.num_kv_heads};
}

// A CTA's operands: its sequence's q / out rows, and k / v at its kv head's columns of the
// sequence's first key row.
struct SeqOperands {
  int kvh;
  const bf16* q;
  bf16* out;
  const bf16* k;
  const bf16* v;
};
__device__ __forceinline__ SeqOperands seq_operands(const FlashArgs& a, int y) {
  const SeqHead sh = seq_head(a, y);
  const int64_t q_row0 = static_cast<int64_t>(sh.seq) * a.seq_q;
  const int64_t kv_row0 = static_cast<int64_t>(sh.seq) * a.skv;
  const int64_t kv_col = static_cast<int64_t>(sh.kvh) * a.d;
  return SeqOperands{sh.kvh, a.q + q_row0 * a.ldq, a.out + q_row0 * a.ldo,
                     a.k + kv_row0 * a.ldk + kv_col, a.v + kv_row0 * a.ldv + kv_col};
}

// Key limit of M row m: Skv, and Skv - hidden for blind rows.
__device__ __forceinline__ int row_key_limit(const FlashArgs& a, int m) {
  if (m < a.m_total && a.group.div(m) < a.blind_rows) return a.blind_keys;
  return a.skv;
}

// The key tiles a CTA runs. The visible tiles are every tile of [0, Skv) but those entirely
// inside the gap [gap_begin, gap_end), listed in order: tile(i) = i for i < skip_at, else
// i + skip. They are dealt out in equal contiguous shares to the splits (split s gets list
// entries [first, last)), so the work follows the valid length read on the device while the
// launch depends only on Skv and gap_end. A split may get no tile (everything it would have
// held is in the gap): it writes a neutral partial (max -inf, sum 0) that the combine skips.
struct TileSpan {
  int gap_begin, gap_end;  // masked keys (gap_begin == gap_end: none)
  int skip_at, skip;       // tile(i) = i < skip_at ? i : i + skip
  int first, last;         // this split's list entries
  __device__ __forceinline__ int tile(int i) const { return i < skip_at ? i : i + skip; }
};
template <int kBlockN>
__device__ __forceinline__ TileSpan tile_span(const FlashArgs& a, int split) {
  TileSpan t;
  t.gap_end = a.gap_end;
  t.gap_begin = a.key_valid ? min(max(__ldg(a.key_valid), 0), a.gap_end) : a.gap_end;
  const int n_tiles = (a.skv + kBlockN - 1) / kBlockN;
  t.skip_at = (t.gap_begin + kBlockN - 1) / kBlockN;  // first tile starting inside the gap
  const int end_tile = t.gap_end >= a.skv ? n_tiles : t.gap_end / kBlockN;  // ... past its end
  t.skip = max(0, end_tile - t.skip_at);
  const int visible = n_tiles - t.skip;
  t.first = static_cast<int>(static_cast<int64_t>(split) * visible / a.splits);
  t.last = static_cast<int>(static_cast<int64_t>(split + 1) * visible / a.splits);
  return t;
}

// Whether key `key` of a partly masked tile is in the gap.
__device__ __forceinline__ bool in_gap(const TileSpan& t, int key) {
  return key >= t.gap_begin && key < t.gap_end;
}

// One key tile's online-softmax step for a warp: s holds S for rows g / g + 8 (c0,c1 / c2,c3)
// and keys key0 + 8 j + 2 t4 + {0, 1}. Scales, masks keys >= lim[r] and keys in the gap, moves
// the running max when needed (rescaling l and the kOT O tiles), and leaves P = 2^(s - m) in s.
template <int kNT, int kOT>
__device__ __forceinline__ void softmax_step(float (&s)[kNT][4], float (&o)[kOT][4],
                                             float (&m_run)[2], float (&l_run)[2],
                                             const int (&lim)[2], int lim_min, int key0, int t4,
                                             float scale_log2, const TileSpan& span) {
#pragma unroll
  for (int j = 0; j < kNT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) s[j][e] *= scale_log2;
  const bool gap = key0 < span.gap_end && key0 + 8 * kNT > span.gap_begin;  // warp-uniform
  if (key0 + 8 * kNT > lim_min || gap) {
#pragma unroll
    for (int j = 0; j < kNT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = key0 + 8 * j + 2 * t4 + (e & 1);
        if (key >= lim[e >> 1] || in_gap(span, key)) s[j][e] = -INFINITY;
      }
  }
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int j = 0; j < kNT; ++j) {
    mx[0] = fmaxf(mx[0], fmaxf(s[j][0], s[j][1]));
    mx[1] = fmaxf(mx[1], fmaxf(s[j][2], s[j][3]));
  }
  bool move[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {  // the 4 lanes of a quad share a row
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    move[r] = mx[r] > m_run[r] + kRescaleThreshold;  // first visible key: -inf + 8 = -inf
  }
  if (__any_sync(0xffffffffu, move[0] || move[1])) {
    float corr[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      corr[r] = move[r] ? ex2(m_run[r] - mx[r]) : 1.f;  // m_run = -inf: 0 (O and l are 0)
      if (move[r]) m_run[r] = mx[r];
      l_run[r] *= corr[r];
    }
#pragma unroll
    for (int i = 0; i < kOT; ++i) {
      o[i][0] *= corr[0];
      o[i][1] *= corr[0];
      o[i][2] *= corr[1];
      o[i][3] *= corr[1];
    }
  }
  // m_run is -inf only while every key so far was masked: then s is -inf too and p = 0.
  const float m0 = m_run[0] == -INFINITY ? 0.f : m_run[0];
  const float m1 = m_run[1] == -INFINITY ? 0.f : m_run[1];
#pragma unroll
  for (int j = 0; j < kNT; ++j) {
    s[j][0] = ex2(s[j][0] - m0);
    s[j][1] = ex2(s[j][1] - m0);
    s[j][2] = ex2(s[j][2] - m1);
    s[j][3] = ex2(s[j][3] - m1);
    l_run[0] += s[j][0] + s[j][1];  // this lane's part of the row sum
    l_run[1] += s[j][2] + s[j][3];
  }
}

// Split path: a warp's unnormalized O (kOT n8 tiles from column col0) and, if write_ml, its
// running max and (quad-reduced) sum, for M rows m_row0 + g and + 8 of grid y.
template <int kOT>
__device__ __forceinline__ void write_partial(const FlashArgs& a, const float (&o)[kOT][4],
                                              const float (&m_run)[2], const float (&l_run)[2],
                                              int y, int split, int m_row0, int col0,
                                              bool write_ml, int g, int t4) {
  const size_t base = (static_cast<size_t>(y) * a.splits + split) * a.m_total;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int m = m_row0 + g + 8 * r;
    if (m >= a.m_total) continue;
    float* const po = a.part_o + (base + m) * a.d;
#pragma unroll
    for (int i = 0; i < kOT; ++i) {
      const int col = col0 + i * 8 + 2 * t4;
      if (col < a.d)
        *reinterpret_cast<float2*>(po + col) = make_float2(o[i][2 * r], o[i][2 * r + 1]);
    }
    if (write_ml && t4 == 0)
      *reinterpret_cast<float2*>(a.part_ml + (base + m) * 2) = make_float2(m_run[r], l_run[r]);
  }
}

// out = sum_s 2^(m_s - M) O_s / sum_s 2^(m_s - M) l_s with M = max_s m_s, one thread per 4
// columns of a row, online over batches of kCombineBatch splits whose loads are all in flight
// together (the partials are L2-resident; latency, not bandwidth, is the cost).
constexpr int kCombineThreads = 256;
constexpr int kCombineBatch = 16;
__global__ void __launch_bounds__(kCombineThreads) flash_combine_kernel(const FlashArgs a) {
  pdl_begin();  // the split kernel is complete
  const int c4 = a.d / 4;
  const int64_t total = static_cast<int64_t>(a.num_kv_heads) * a.batch * a.m_total * c4;
  const int64_t step_ml = static_cast<int64_t>(a.m_total) * 2;
  const int64_t step_o = static_cast<int64_t>(a.m_total) * a.d;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % c4);
    const int64_t rest = i / c4;
    const int m = static_cast<int>(rest % a.m_total), y = static_cast<int>(rest / a.m_total);
    const int64_t base = static_cast<int64_t>(y) * a.splits * a.m_total + m;
    const float* const pml = a.part_ml + base * 2;
    const float* const po = a.part_o + base * a.d + c * 4;
    float mx = -INFINITY, l = 0.f;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int s0 = 0; s0 < a.splits; s0 += kCombineBatch) {
      float2 ml[kCombineBatch];
      float4 ov[kCombineBatch];
#pragma unroll
      for (int u = 0; u < kCombineBatch; ++u) {
        ml[u] = make_float2(-INFINITY, 0.f);
        ov[u] = make_float4(0.f, 0.f, 0.f, 0.f);
        if (s0 + u < a.splits) {
          ml[u] = __ldg(reinterpret_cast<const float2*>(pml + (s0 + u) * step_ml));
          ov[u] = __ldg(reinterpret_cast<const float4*>(po + (s0 + u) * step_o));
        }
      }
      float nmx = mx;
#pragma unroll
      for (int u = 0; u < kCombineBatch; ++u) nmx = fmaxf(nmx, ml[u].x);
      if (nmx == -INFINITY) continue;  // no split so far saw a key of this row
      const float corr = ex2(mx - nmx);  // mx = -inf: 0 (acc and l are 0)
      l *= corr;
      acc.x *= corr;
      acc.y *= corr;
      acc.z *= corr;
      acc.w *= corr;
#pragma unroll
      for (int u = 0; u < kCombineBatch; ++u) {
        const float w = ex2(ml[u].x - nmx);  // a split the row saw no key of: 0
        l += w * ml[u].y;
        acc.x += w * ov[u].x;
        acc.y += w * ov[u].y;
        acc.z += w * ov[u].z;
        acc.w += w * ov[u].w;
      }
      mx = nmx;
    }
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const SeqHead sh = seq_head(a, y);
    const int row = a.group.div(m), head = sh.kvh * a.group.d + (m - row * a.group.d);
    const int64_t out_row = static_cast<int64_t>(sh.seq) * a.seq_q + row;
    uint2 packed;
    packed.x = pack_bf16x2(acc.x * inv, acc.y * inv);
    packed.y = pack_bf16x2(acc.z * inv, acc.w * inv);
    *reinterpret_cast<uint2*>(a.out + out_row * a.ldo + static_cast<int64_t>(head) * a.d +
                              c * 4) = packed;
  }
}

}  // namespace frt::cuda::fa
