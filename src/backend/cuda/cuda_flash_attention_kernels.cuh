// The two flash-attention kernels (mma.sync.m16n8k16 bf16, fp32 accumulation), one CTA per
// (64 M rows, sequence x kv head, key split); M row m = query row * group + head in group, so
// the MQA heads share every K/V tile a CTA loads. Both stage Q and two stages of K/V tiles in shared memory
// with 16-byte cp.async (zero fill for padded head dims and keys past the end: those rows are
// never read) and run per key tile: wait for tile t, barrier (all warps are done with tile
// t-1, so its stage is free), start loading tile t+1 into it, S = Q K_t^T, online softmax,
// O += P V_t. One barrier per tile lets warps drift apart, overlapping one warp's softmax with
// another's mma.
//  - narrow (head_dim <= 80, SigLIP 72): 4 warps x 16 rows, Q fragments in registers, 64-key
//    tiles, rows padded by 16 bytes (conflict-free ldmatrix).
//  - wide (head_dim <= 256, Gemma 256): 8 warps = 4 row groups x 2 column halves. O of 16 rows x
//    256 would need 128 registers per thread, so each warp of a pair owns 128 columns: it computes
//    S over its half of head_dim, the pair adds the halves through shared memory (fp32; both warps
//    then hold bit-identical S and run the same softmax), and each accumulates P V for its
//    columns. 112 KB of shared memory, 32-key tiles; rows are 512 bytes with 16-byte chunks
//    XOR-swizzled by (row & 7).
// Key tiles: the visible tiles of tile_span (tiles entirely inside the device-resident key gap
// are never loaded), dealt out to the key splits in equal shares.
// Epilogue: splits == 1 writes O / l as bf16 through shared memory (16-byte stores); else the
// fp32 partials for flash_combine_kernel. Covered by tests/gpu/test_cuda_flash_attention.cpp.
#pragma once

#include "backend/cuda/cuda_flash_attention_common.cuh"

namespace frt::cuda::fa {

// ============================================================ narrow: head_dim <= 80
struct Narrow {
  static constexpr int kWarps = 4, kThreads = 128;
  static constexpr int kDPad = 80, kBlockN = 64;
  static constexpr int kStride = kDPad + 8;  // elements; 176 bytes: 8 rows -> 8 bank groups
  static constexpr int kChunks = kDPad / 8;  // 16-byte chunks per row
  static constexpr int kKSteps = kDPad / 16;
  static constexpr int kNTiles = kBlockN / 8;
  static constexpr int kDTiles = kDPad / 8;
  static constexpr int kLoadCols = 16, kLoadRows = kThreads / kLoadCols;  // copy layout
  static constexpr uint32_t kTileBytes = kBlockN * kStride * 2;
  static constexpr uint32_t kQBytes = kBlockM * kStride * 2;
  static constexpr size_t kSmem = kQBytes + 4 * size_t{kTileBytes};
};

__global__ void __launch_bounds__(Narrow::kThreads, 2) flash_narrow_kernel(const FlashArgs a) {
  using C = Narrow;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  const uint32_t sq = smem_addr(smem_raw), sk = sq + C::kQBytes, sv = sk + 2 * C::kTileBytes;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
  const int m0 = blockIdx.x * kBlockM, y = blockIdx.y, split = blockIdx.z;
  const SeqOperands sop = seq_operands(a, y);
  const int kvh = sop.kvh;
  // The key gap is a predict input (AttentionParams::key_valid: written before the predict's
  // kernels, never by one), so it is read before waiting: one L2 round trip off the path.
  const TileSpan span = tile_span<C::kBlockN>(a, split);
  pdl_wait();  // q/k/v come from earlier kernels (cuda_launch.cuh)

  // Copy layout: thread (c_ld, r_ld) copies chunk c_ld of rows r_ld + kLoadRows * i. Lanes past
  // kChunks copy nothing (they would overrun the row); chunks past head_dim are zero-filled.
  const int c_ld = tid % C::kLoadCols, r_ld = tid / C::kLoadCols;
  const bool c_lane = c_ld < C::kChunks, c_ok = c_lane && c_ld * 8 < a.d;
  const uint32_t dst0 = (r_ld * C::kStride + c_ld * 8) * 2;
  constexpr uint32_t kPassBytes = C::kLoadRows * C::kStride * 2;
  if (c_lane) {
#pragma unroll
    for (int it = 0; it < kBlockM / C::kLoadRows; ++it) {
      const int m = m0 + r_ld + it * C::kLoadRows;
      const bool ok = c_ok && m < a.m_total;
      const bf16* src = a.q;
      if (ok) {
        const int row = a.group.div(m), head = kvh * a.group.d + (m - row * a.group.d);
        src = sop.q + row * a.ldq + static_cast<int64_t>(head) * a.d + c_ld * 8;
      }
      cp_async_16(sq + dst0 + it * kPassBytes, src, ok);
    }
  }
  // K/V tile `tile` into a stage. Keys past Skv or in the gap are zero-filled: a masked
  // padding row contributes exactly nothing (0 * garbage could be NaN).
  const bf16* const kb = sop.k + c_ld * 8;
  const bf16* const vb = sop.v + c_ld * 8;
  auto load_kv = [&](int tile, uint32_t stage) {
    if (!c_lane) return;
#pragma unroll
    for (int it = 0; it < C::kBlockN / C::kLoadRows; ++it) {
      const int key = tile * C::kBlockN + r_ld + it * C::kLoadRows;
      const bool ok = c_ok && key < a.skv && !in_gap(span, key);
      cp_async_16(sk + stage + dst0 + it * kPassBytes, ok ? kb + key * a.ldk : a.k, ok);
      cp_async_16(sv + stage + dst0 + it * kPassBytes, ok ? vb + key * a.ldv : a.v, ok);
    }
  };
  if (span.first < span.last) load_kv(span.tile(span.first), 0);
  cp_async_commit();  // group: Q + the first tile
  pdl_launch_dependents();  // the combine / next kernel may get ready

  const int lim[2] = {row_key_limit(a, m0 + warp * 16 + g),
                      row_key_limit(a, m0 + warp * 16 + g + 8)};
  const int lim_min = min(lim[0], lim[1]);
  const bool warp_active = m0 + warp * 16 < a.m_total;  // warp-uniform
  // ldmatrix lane addresses. A (Q): rows l%8 + 8((l/8)%2), cols 8(l/16). B = K^T: keys
  // l%8 + 8(l/16), dims 8((l/8)%2). B = V (trans): keys l%8 + 8((l/8)%2), dims 8(l/16).
  const uint32_t q_addr =
      sq + ((warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * C::kStride + (lane >> 4) * 8) * 2;
  const uint32_t k_addr =
      sk + (((lane & 7) + (lane >> 4) * 8) * C::kStride + ((lane >> 3) & 1) * 8) * 2;
  const uint32_t v_addr =
      sv + (((lane & 7) + ((lane >> 3) & 1) * 8) * C::kStride + (lane >> 4) * 8) * 2;
  constexpr uint32_t kRow16 = 16 * C::kStride * 2;

  uint32_t qf[C::kKSteps][4];
  float o[C::kDTiles][4];
#pragma unroll
  for (int i = 0; i < C::kDTiles; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f};

  for (int i = span.first; i < span.last; ++i) {
    const int t = i - span.first;  // stage parity
    const uint32_t stage = (t & 1) * C::kTileBytes;
    cp_async_wait<0>();  // (Q and) tile t landed
    __syncthreads();     // ... for every thread; every warp is done with tile t-1's stage
    if (i + 1 < span.last) {
      load_kv(span.tile(i + 1), ((t + 1) & 1) * C::kTileBytes);
      cp_async_commit();
    }
    if (warp_active) {
      float s[C::kNTiles][4];
      if (t == 0) {
#pragma unroll
        for (int ks = 0; ks < C::kKSteps; ++ks) ldmatrix_x4(qf[ks], q_addr + ks * 32);
      }
#pragma unroll
      for (int j = 0; j < C::kNTiles; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < C::kKSteps; ++ks) {
#pragma unroll
        for (int p = 0; p < C::kNTiles / 2; ++p) {
          uint32_t b[4];
          ldmatrix_x4(b, k_addr + stage + p * kRow16 + ks * 32);
          mma_bf16_16816(s[2 * p], qf[ks], b[0], b[1]);
          mma_bf16_16816(s[2 * p + 1], qf[ks], b[2], b[3]);
        }
      }
      softmax_step(s, o, m_run, l_run, lim, lim_min, span.tile(i) * C::kBlockN, t4,
                   a.scale_log2, span);
#pragma unroll
      for (int kk = 0; kk < C::kBlockN / 16; ++kk) {
        const uint32_t pf[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]),
                                pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                                pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int dp = 0; dp < C::kDTiles / 2; ++dp) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, v_addr + stage + kk * kRow16 + dp * 32);
          mma_bf16_16816(o[2 * dp], pf, b[0], b[1]);
          mma_bf16_16816(o[2 * dp + 1], pf, b[2], b[3]);
        }
      }
    }
  }
  cp_async_wait<0>();
  if (!warp_active) return;  // no barrier below
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 1);
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 2);
  }
  if (a.splits > 1) {
    write_partial(a, o, m_run, l_run, y, split, m0 + warp * 16, 0, true, g, t4);
    return;
  }
  // O / l as bf16 into this warp's own Q rows (no other warp reads them), then 16-byte stores.
  const float inv0 = l_run[0] > 0.f ? 1.f / l_run[0] : 0.f;
  const float inv1 = l_run[1] > 0.f ? 1.f / l_run[1] : 0.f;
  bf16* const so = reinterpret_cast<bf16*>(smem_raw) + warp * 16 * C::kStride;
  __syncwarp();
#pragma unroll
  for (int i = 0; i < C::kDTiles; ++i) {
    const int col = i * 8 + 2 * t4;
    *reinterpret_cast<uint32_t*>(so + g * C::kStride + col) =
        pack_bf16x2(o[i][0] * inv0, o[i][1] * inv0);
    *reinterpret_cast<uint32_t*>(so + (g + 8) * C::kStride + col) =
        pack_bf16x2(o[i][2] * inv1, o[i][3] * inv1);
  }
  __syncwarp();
  const int c = lane % C::kLoadCols;
  if (c * 8 >= a.d) return;
#pragma unroll
  for (int r = lane / C::kLoadCols; r < 16; r += 32 / C::kLoadCols) {
    const int m = m0 + warp * 16 + r;
    if (m >= a.m_total) break;
    const int row = a.group.div(m), head = kvh * a.group.d + (m - row * a.group.d);
    bf16* const dst = sop.out + row * a.ldo + static_cast<int64_t>(head) * a.d + c * 8;
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(so + r * C::kStride + c * 8);
  }
}

// ============================================================ wide: head_dim <= 256
struct Wide {
  static constexpr int kWarps = 8, kThreads = 256;
  // No 2-CTA register cap: at <= 128 registers ptxas rematerializes indices and parameters every
  // tile and prefetches no fragments; one CTA of ~170 registers per SM ran each tile ~12% faster
  // on an H100 (bench_attention_cuda, split count 1).
  static constexpr int kMinBlocks = 1;
  static constexpr int kDPad = 256, kBlockN = 32;
  static constexpr int kKSteps = 8;   // k16 steps over one column half
  static constexpr int kNTiles = 4;   // n8 tiles of S (32 keys)
  static constexpr int kOTiles = 16;  // n8 tiles of O per column half
  static constexpr uint32_t kRowBytes = 512;
  static constexpr uint32_t kTileBytes = kBlockN * kRowBytes;
  static constexpr uint32_t kQBytes = kBlockM * kRowBytes;
  static constexpr uint32_t kXBytes = kWarps * 32 * 16 * 4;  // S halves: 16 floats per lane
  static constexpr size_t kSmem = kQBytes + 4 * size_t{kTileBytes} + kXBytes + 128;  // 112 KB
};
// Byte offset of 16-byte chunk c of row r: chunks XOR-swizzled by r & 7, so the 8 rows an
// ldmatrix phase reads (same logical chunk) hit 8 different bank groups.
__device__ __forceinline__ uint32_t swz(int r, int c) {
  return r * Wide::kRowBytes + ((c ^ (r & 7)) << 4);
}

__global__ void __launch_bounds__(Wide::kThreads, Wide::kMinBlocks)
    flash_wide_kernel(const FlashArgs a) {
  using C = Wide;
  extern __shared__ __align__(128) unsigned char smem_dyn[];
  // 128-byte aligned base (the swizzled addressing below relies on it; kSmem has the slack).
  const uint32_t sq = (smem_addr(smem_dyn) + 127) & ~127u;
  unsigned char* const smem_raw = smem_dyn + (sq - smem_addr(smem_dyn));
  const uint32_t sk = sq + C::kQBytes, sv = sk + 2 * C::kTileBytes;
  float4* const sx = reinterpret_cast<float4*>(smem_raw + C::kQBytes + 4 * C::kTileBytes);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t4 = lane & 3;
  const int wm = warp >> 1, h = warp & 1;  // row group, column half
  const int m0 = blockIdx.x * kBlockM, y = blockIdx.y, split = blockIdx.z;
  const SeqOperands sop = seq_operands(a, y);
  const int kvh = sop.kvh;
  // The key gap is a predict input (AttentionParams::key_valid: written before the predict's
  // kernels, never by one), so it is read before waiting: one L2 round trip off the path.
  const TileSpan span = tile_span<C::kBlockN>(a, split);
  pdl_wait();  // q/k/v come from earlier kernels (cuda_launch.cuh)

  // Copy layout: thread (c_ld, r_ld) copies chunk c_ld of rows r_ld + 8 i (r & 7 fixed, so the
  // swizzled destination just advances by 8 rows). Chunks past head_dim are zero-filled.
  const int c_ld = tid & 31, r_ld = tid >> 5;
  const bool c_ok = c_ld * 8 < a.d;
  const uint32_t dst0 = swz(r_ld, c_ld);
  constexpr uint32_t kPassBytes = 8 * C::kRowBytes;
#pragma unroll
  for (int it = 0; it < kBlockM / 8; ++it) {
    const int m = m0 + r_ld + it * 8;
    const bool ok = c_ok && m < a.m_total;
    const bf16* src = a.q;
    if (ok) {
      const int row = a.group.div(m), head = kvh * a.group.d + (m - row * a.group.d);
      src = sop.q + row * a.ldq + static_cast<int64_t>(head) * a.d + c_ld * 8;
    }
    cp_async_16(sq + dst0 + it * kPassBytes, src, ok);
  }
  // K/V tile `tile` into a stage; keys past Skv or in the gap are zero-filled (as narrow).
  const bf16* const kb = sop.k + c_ld * 8;
  const bf16* const vb = sop.v + c_ld * 8;
  auto load_kv = [&](int tile, uint32_t stage) {
#pragma unroll
    for (int it = 0; it < C::kBlockN / 8; ++it) {
      const int key = tile * C::kBlockN + r_ld + it * 8;
      const bool ok = c_ok && key < a.skv && !in_gap(span, key);
      cp_async_16(sk + stage + dst0 + it * kPassBytes, ok ? kb + key * a.ldk : a.k, ok);
      cp_async_16(sv + stage + dst0 + it * kPassBytes, ok ? vb + key * a.ldv : a.v, ok);
    }
  };
  if (span.first < span.last) load_kv(span.tile(span.first), 0);
  cp_async_commit();  // group: Q + the first tile
  pdl_launch_dependents();  // the combine / next kernel may get ready

  const int lim[2] = {row_key_limit(a, m0 + wm * 16 + g),
                      row_key_limit(a, m0 + wm * 16 + g + 8)};
  const int lim_min = min(lim[0], lim[1]);
  const bool warp_active = m0 + wm * 16 < a.m_total;  // same for both warps of a pair
  // ldmatrix lane addresses at k-step 0. Every lane row has row & 7 == lane & 7, and the column
  // half h is chunks 16 h .. 16 h + 15. Chunk 16 h + 2 ks + b (b = 0/1 per lane) then sits at
  //   (lane0(b) ^ ((ks & 3) << 5)) + (ks >> 2) * 128,
  //   lane0(b) = row + 256 h + ((b ^ (lane & 7)) << 4)
  // because rows are 128-byte aligned (bits 4..6 of lane0 are exactly b ^ (lane & 7)).
  const int x7 = lane & 7;
  const uint32_t q_lane0 = sq + (wm * 16 + x7 + ((lane >> 3) & 1) * 8) * C::kRowBytes + h * 256 +
                           (((lane >> 4) ^ x7) << 4);
  const uint32_t k_lane0 = sk + (x7 + (lane >> 4) * 8) * C::kRowBytes + h * 256 +
                           ((((lane >> 3) & 1) ^ x7) << 4);
  const uint32_t v_lane0 = sv + (x7 + ((lane >> 3) & 1) * 8) * C::kRowBytes + h * 256 +
                           (((lane >> 4) ^ x7) << 4);
  constexpr uint32_t kRow16 = 16 * C::kRowBytes;

  float o[C::kOTiles][4];
#pragma unroll
  for (int i = 0; i < C::kOTiles; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f};

  for (int i = span.first; i < span.last; ++i) {
    const int t = i - span.first;  // stage parity
    const uint32_t stage = (t & 1) * C::kTileBytes;
    cp_async_wait<0>();  // (Q and) tile t landed
    __syncthreads();     // ... for every thread; every warp is done with tile t-1 (and with sx)
    if (i + 1 < span.last) {
      load_kv(span.tile(i + 1), ((t + 1) & 1) * C::kTileBytes);
      cp_async_commit();
    }
    if (warp_active) {
      float s[C::kNTiles][4];
#pragma unroll
      for (int j = 0; j < C::kNTiles; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
      const uint32_t k_base = k_lane0 + stage;
#pragma unroll
      for (int ks = 0; ks < C::kKSteps; ++ks) {
        const uint32_t kx = ((ks & 3) << 5), ky = (ks >> 2) * 128;
        uint32_t af[4];
        ldmatrix_x4(af, (q_lane0 ^ kx) + ky);
#pragma unroll
        for (int p = 0; p < C::kNTiles / 2; ++p) {
          uint32_t b[4];
          ldmatrix_x4(b, (k_base ^ kx) + ky + p * kRow16);
          mma_bf16_16816(s[2 * p], af, b[0], b[1]);
          mma_bf16_16816(s[2 * p + 1], af, b[2], b[3]);
        }
      }
      // S = (this half's partial) + (the partner's): fp32 adds commute, so both warps of the
      // pair hold the same bits and make the same softmax decisions.
#pragma unroll
      for (int j = 0; j < C::kNTiles; ++j)
        sx[(warp * C::kNTiles + j) * 32 + lane] = make_float4(s[j][0], s[j][1], s[j][2], s[j][3]);
      switch (wm) {  // barrier ids 1..4, compile-time so ptxas reserves only 5
        case 0: named_barrier_sync<1, 64>(); break;
        case 1: named_barrier_sync<2, 64>(); break;
        case 2: named_barrier_sync<3, 64>(); break;
        default: named_barrier_sync<4, 64>(); break;
      }
#pragma unroll
      for (int j = 0; j < C::kNTiles; ++j) {
        const float4 v = sx[((warp ^ 1) * C::kNTiles + j) * 32 + lane];
        s[j][0] += v.x;
        s[j][1] += v.y;
        s[j][2] += v.z;
        s[j][3] += v.w;
      }
      softmax_step(s, o, m_run, l_run, lim, lim_min, span.tile(i) * C::kBlockN, t4,
                   a.scale_log2, span);
      const uint32_t v_base = v_lane0 + stage;
#pragma unroll
      for (int kk = 0; kk < C::kBlockN / 16; ++kk) {
        const uint32_t pf[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]),
                                pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                                pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int dp = 0; dp < C::kOTiles / 2; ++dp) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, (v_base ^ ((dp & 3) << 5)) + (dp >> 2) * 128 + kk * kRow16);
          mma_bf16_16816(o[2 * dp], pf, b[0], b[1]);
          mma_bf16_16816(o[2 * dp + 1], pf, b[2], b[3]);
        }
      }
    }
  }
  cp_async_wait<0>();
  if (!warp_active) return;  // no CTA-wide barrier below
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 1);
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 2);
  }
  if (a.splits > 1) {
    write_partial(a, o, m_run, l_run, y, split, m0 + wm * 16, h * 128, h == 0, g, t4);
    return;
  }
  // O / l as bf16 into this warp's rows and column half of the Q tile (read by no other warp),
  // then 16-byte stores of the half rows.
  const float inv0 = l_run[0] > 0.f ? 1.f / l_run[0] : 0.f;
  const float inv1 = l_run[1] > 0.f ? 1.f / l_run[1] : 0.f;
  __syncwarp();
#pragma unroll
  for (int i = 0; i < C::kOTiles; ++i) {
    const int r = wm * 16 + g, c = h * 16 + i;  // (r + 8) & 7 == r & 7
    *reinterpret_cast<uint32_t*>(smem_raw + swz(r, c) + t4 * 4) =
        pack_bf16x2(o[i][0] * inv0, o[i][1] * inv0);
    *reinterpret_cast<uint32_t*>(smem_raw + swz(r + 8, c) + t4 * 4) =
        pack_bf16x2(o[i][2] * inv1, o[i][3] * inv1);
  }
  __syncwarp();
  const int c = h * 16 + (lane & 15);
  if (c * 8 >= a.d) return;
#pragma unroll
  for (int pass = 0; pass < 8; ++pass) {
    const int r = wm * 16 + (lane >> 4) + 2 * pass, m = m0 + r;
    if (m >= a.m_total) break;
    const int row = a.group.div(m), head = kvh * a.group.d + (m - row * a.group.d);
    bf16* const dst = sop.out + row * a.ldo + static_cast<int64_t>(head) * a.d + c * 8;
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(smem_raw + swz(r, c));
  }
}

}  // namespace frt::cuda::fa
