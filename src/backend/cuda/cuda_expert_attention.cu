// CUDA expert_attention: the action expert's attention half (backend.h) as ONE persistent launch
// for few rows, the same scheme as expert_mlp (cuda_expert_mlp.cu, cuda_persistent.cuh): one CTA
// of 8 warps per SM, cooperative, every weight row requested with bulk async copies before the
// kernel waits for its predecessor, phases separated by grid barriers. Unfused it is five
// dependent launches (qkv with the norm prologue, RoPE, attention split + combine, o with the
// gated residual). Phases:
//  1. norm(x) staged in shared memory; qkv items = 8 rows of a head's first half + the 8 rows
//     they rotate with (d, d + D/2): the MMA's 16-row A tile, so RoPE is lane-local. Epilogue:
//     bf16(qkv) as the unfused GEMM stores it, RoPE (cuda_rope.cuh: the qkv_split_rope kernel's
//     arithmetic) at position valid + row, q to `q`, k / v into the cache rows [P, P + S).
//  2. attention partials: item (q head, key chunk) over the visible keys [0, valid) ++
//     [P, P + S) split in NC equal chunks; S = q K^T with the item product (K rows as the
//     "weights"), scale and masks (gap, blind rows), p = exp(s - max), O = p V on CUDA cores in
//     fp32; (O, max, sum) to the backend scratch.
//  3. combine: item (q head, row): the chunks' partials merged in a fixed order -> attn_out.
//  4. o items of 8 output rows x Hq D: x = bf16(x + gate * (attn_out . o^T)).
// Bit-reproducible (fixed orders, no atomics in the arithmetic); graph-capturable. Falls back to
// expert_attention_composed where it does not apply (more rows, other head shapes, FP8
// calibration, no sm_90 code, shared memory too small).
// Covered by tests/gpu/test_cuda_expert_attention.cpp; timed by bench/bench_expert_cuda.cpp.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_persistent.cuh"
#include "backend/cuda/cuda_persistent_launch.h"
#include "backend/cuda/cuda_rope.cuh"

namespace frt {

namespace {
using cuda::Mat;
using bf16 = __nv_bfloat16;
using namespace cuda::persistent;

constexpr int kHeadDim = 256;  // Gemma; the kernel's thread <-> dimension maps rely on it
constexpr int kHalf = kHeadDim / 2;
constexpr int kMaxChunks = 32;
constexpr int kOItemRows = 8;

struct AttnArgs {
  bf16* x;  // [M, W]
  int64_t ldx;
  const unsigned char* wqkv;  // [(Hq + 2 Hkv) D, W], bf16 or E4M3 (W8)
  int64_t ldwqkv;
  const unsigned char* wo;  // [W, Hq D]
  int64_t ldwo;
  const float* wqkv_scale;  // W8: per-tensor weight scales (device)
  const float* wo_scale;
  bf16* q;  // [M, Hq D] scratch (phase 1 -> 2)
  int64_t ldq;
  bf16* kc;  // this layer's K / V cache [P + M, Hkv D]
  bf16* vc;
  int64_t ldk, ldv;
  bf16* attn;  // [M, Hq D] (phase 3 -> 4)
  int64_t lda;
  float* part;  // [Hq][NC][M][D] unnormalized O, then [Hq][NC][M][2] (max, sum)
  Mat scale, shift, gate;
  int ada;
  float eps, attn_scale;
  const int* valid;  // device: valid prefix keys = the suffix's first position
  int M, W, Hq, Hkv, P, blind, nc, kc_max;  // kc_max: keys per chunk the layout holds
  unsigned long long* sync;
  // 0: all four phases, one cooperative launch with grid barriers between them; 1-4: that phase
  // alone, four launches chained by programmatic dependent launch (set_expert_attention_chained).
  int phase;
  int off_rms, off_red, off_sum, off_x, off_w1, off_w2;
  int off_qs, off_ks, off_vs, off_p;  // phase 2 (inside the phase-1 weight area)
  int pw1, pw2, px1, px2;
  float inv_freq[kHalf];
};

#if FRT_PERSISTENT_SM90
// Key index i of the visible list [0, valid) ++ [P, P + M) -> its cache row.
__device__ __forceinline__ int key_row(int i, int valid, int P) {
  return i < valid ? i : P + i - valid;
}
#endif

template <bool W8>
__global__ void __launch_bounds__(kThreads, 1) expert_attention_kernel(const AttnArgs a) {
#if FRT_PERSISTENT_SM90
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int kEs = W8 ? 1 : 2;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int G = gridDim.x, cta = blockIdx.x;
  const uint32_t s0 = cuda::smem_addr(smem);
  const uint32_t bar1 = s0, bar2 = s0 + 8;
  const int blocks = a.Hq + 2 * a.Hkv;  // head blocks of the qkv rows
  const bool all = a.phase == 0;
  const int my1 = all || a.phase == 1 ? owned_items(blocks * (kHalf / 8)) : 0;
  const int my4 = all || a.phase == 4 ? owned_items(a.W / kOItemRows) : 0;
  init_weight_barriers(s0);
  if (tid == 0) {  // all weight rows of this CTA, before waiting for the previous kernel
    const uint32_t row1 = kEs * a.W, row4 = kEs * a.Hq * kHeadDim;
    mbar_expect_tx(bar1, my1 * 16u * row1);
    for (int i = 0; i < my1; ++i) {  // rows d and d + D/2 of one head block
      const int item = cta + G * i, b = item / (kHalf / 8), j = item % (kHalf / 8);
      copy_row_pairs(s0 + a.off_w1 + i * 16 * a.pw1, a.pw1, a.wqkv, a.ldwqkv * kEs,
                     static_cast<int64_t>(b) * kHeadDim + 8 * j, kHalf, row1, bar1);
    }
    mbar_expect_tx(bar2, my4 * 8u * row4);
    copy_row_items(s0 + a.off_w2, a.pw2, a.wo, a.ldwo * kEs, my4, row4, bar2);
  }
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  const float wqkv_scale = W8 ? *a.wqkv_scale : 1.f, wo_scale = W8 ? *a.wo_scale : 1.f;
  const int valid = min(max(*a.valid, 0), a.P);

  float* inv_rms = reinterpret_cast<float*>(smem + a.off_rms);
  float* red = reinterpret_cast<float*>(smem + a.off_red);
  float* sum = reinterpret_cast<float*>(smem + a.off_sum);

  // ---- phase 1: norm, qkv, RoPE
  if (all || a.phase == 1) {
    stage_norm_rows(smem + a.off_x, a.px1, a.x, a.ldx, a.M, a.W, a.scale, a.shift, a.ada != 0,
                    a.eps, inv_rms, W8);
    mbar_wait(bar1, 0);
    for (int i = 0; i < my1; ++i) {
      const int item = cta + G * i, b = item / (kHalf / 8), j = item % (kHalf / 8);
      item_product<W8>(s0 + a.off_w1 + i * 16 * a.pw1, s0 + a.off_x, a.pw1, a.px1, a.W, a.M, false,
                       red, sum);
      if (tid < 8 * 16) {
        const int r = tid >> 4, m = tid & 15, d = 8 * j + r;
        if (m < a.M) {
          float x1 = round_bf16(sum[r * 16 + m] * wqkv_scale);
          float x2 = round_bf16(sum[(r + 8) * 16 + m] * wqkv_scale);
          if (b < a.Hq + a.Hkv) {  // q and k rotate; v does not
            float c, s;
            cuda::rope_cos_sin(static_cast<float>(valid + m), a.inv_freq[d], &c, &s);
            const float o1 = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
            const float o2 = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
            x1 = o1;
            x2 = o2;
          }
          bf16* dst;
          if (b < a.Hq)
            dst = a.q + m * a.ldq + b * kHeadDim;
          else if (b < a.Hq + a.Hkv)
            dst = a.kc + (a.P + m) * a.ldk + (b - a.Hq) * kHeadDim;
          else
            dst = a.vc + (a.P + m) * a.ldv + (b - a.Hq - a.Hkv) * kHeadDim;
          dst[d] = __float2bfloat16_rn(x1);
          dst[d + kHalf] = __float2bfloat16_rn(x2);
        }
      }
    }
  }
  if (all) grid_barrier(a.sync, static_cast<unsigned>(G));

  // ---- phase 2: attention partials, item (q head h, key chunk c)
  const int total = valid + a.M;  // visible keys
  const int group = a.Hq / a.Hkv;
  float* part_o = a.part;
  float* part_ml = a.part + static_cast<size_t>(a.Hq) * a.nc * a.M * kHeadDim;
  for (int item = cta; (all || a.phase == 2) && item < a.Hq * a.nc; item += G) {
    const int h = item / a.nc, c = item % a.nc, kvh = h / group;
    const int k0 = static_cast<int>(static_cast<int64_t>(c) * total / a.nc);
    const int k1 = static_cast<int>(static_cast<int64_t>(c + 1) * total / a.nc);
    const int n = k1 - k0;  // <= a.kc_max (host plan)
    constexpr int kRowBytes = 2 * kHeadDim + kRowPad;
    // q rows of head h, the chunk's K and V rows: 16-byte cp.async (L2: written this launch).
    for (int e = tid; e < a.M * (kHeadDim / 8); e += kThreads) {
      const int m = e / (kHeadDim / 8), cc = e % (kHeadDim / 8);
      cuda::cp_async_16(s0 + a.off_qs + m * kRowBytes + 16 * cc,
                        a.q + m * a.ldq + h * kHeadDim + 8 * cc, true);
    }
    for (int e = tid; e < n * (kHeadDim / 8); e += kThreads) {
      const int jj = e / (kHeadDim / 8), cc = e % (kHeadDim / 8);
      const int row = key_row(k0 + jj, valid, a.P);
      cuda::cp_async_16(s0 + a.off_ks + jj * kRowBytes + 16 * cc,
                        a.kc + row * a.ldk + kvh * kHeadDim + 8 * cc, true);
      cuda::cp_async_16(s0 + a.off_vs + jj * kRowBytes + 16 * cc,
                        a.vc + row * a.ldv + kvh * kHeadDim + 8 * cc, true);
    }
    cuda::cp_async_commit();
    cuda::cp_async_wait<0>();
    __syncthreads();
    // Scores of 16 keys at a time (keys past n: stale rows, masked below): p[m][key].
    float* p = reinterpret_cast<float*>(smem + a.off_p);  // [16][kc_max]
    for (int g0 = 0; g0 < n; g0 += 16) {
      item_product<false>(s0 + a.off_ks + g0 * kRowBytes, s0 + a.off_qs, kRowBytes, kRowBytes,
                          kHeadDim, a.M, false, red, sum);
      const int r = tid >> 4, m = tid & 15, jj = g0 + r, key = k0 + jj;
      // Row m < blind does not see the last M - blind suffix keys (Pi0's state token).
      const bool masked = jj >= n || (m < a.blind && key >= valid + a.blind);
      p[m * a.kc_max + jj] = masked ? -INFINITY : sum[r * 16 + m] * a.attn_scale;
    }
    __syncthreads();
    // Per row: max, p = exp(s - max), sum (warp per row).
    for (int m = warp; m < a.M; m += kWarps) {
      float mx = -INFINITY;
      for (int jj = lane; jj < n; jj += 32) mx = fmaxf(mx, p[m * a.kc_max + jj]);
      mx = cuda::warp_max(mx);
      float l = 0.f;
      for (int jj = lane; jj < n; jj += 32) {
        const float s = p[m * a.kc_max + jj];
        const float e = mx == -INFINITY ? 0.f : expf(s - mx);
        p[m * a.kc_max + jj] = e;
        l += e;
      }
      l = cuda::warp_sum(l);
      if (lane == 0) {
        float* ml = part_ml + ((static_cast<size_t>(h) * a.nc + c) * a.M + m) * 2;
        ml[0] = mx;
        ml[1] = l;
      }
    }
    __syncthreads();
    // O[m][d] = sum_j p[m][j] V[j][d]: thread d, fp32.
    {
      float o[kMaxRows];
#pragma unroll
      for (int m = 0; m < kMaxRows; ++m) o[m] = 0.f;
      const bf16* vs = reinterpret_cast<const bf16*>(smem + a.off_vs);
      for (int jj = 0; jj < n; ++jj) {
        const float v = __bfloat162float(vs[jj * (kRowBytes / 2) + tid]);
#pragma unroll
        for (int m = 0; m < kMaxRows; ++m)
          if (m < a.M) o[m] = fmaf(p[m * a.kc_max + jj], v, o[m]);
      }
      float* po = part_o + ((static_cast<size_t>(h) * a.nc + c) * a.M) * kHeadDim + tid;
#pragma unroll
      for (int m = 0; m < kMaxRows; ++m)
        if (m < a.M) po[m * kHeadDim] = o[m];
    }
    __syncthreads();  // the next item restages q / K / V / p
  }
  if (all) grid_barrier(a.sync, static_cast<unsigned>(G));

  // ---- phase 3: combine, item (q head h, row m); thread d
  for (int item = cta; (all || a.phase == 3) && item < a.Hq * a.M; item += G) {
    const int h = item / a.M, m = item % a.M;
    float mx = -INFINITY;
    for (int c = 0; c < a.nc; ++c)
      mx = fmaxf(mx, __ldcg(part_ml + ((static_cast<size_t>(h) * a.nc + c) * a.M + m) * 2));
    float num = 0.f, den = 0.f;
    for (int c = 0; c < a.nc; ++c) {
      const size_t base = (static_cast<size_t>(h) * a.nc + c) * a.M + m;
      const float mc = __ldcg(part_ml + base * 2), lc = __ldcg(part_ml + base * 2 + 1);
      const float w = mc == -INFINITY ? 0.f : expf(mc - mx);
      num = fmaf(w, __ldcg(part_o + base * kHeadDim + tid), num);
      den = fmaf(w, lc, den);
    }
    a.attn[m * a.lda + h * kHeadDim + tid] = __float2bfloat16_rn(num / den);
  }
  if (all) grid_barrier(a.sync, static_cast<unsigned>(G));

  // ---- phase 4: x += gate * (attn . o^T)
  if (my4 == 0) return;  // (also every launch of phases 1-3 alone)
  const int K4 = a.Hq * kHeadDim;
  stage_rows(smem + a.off_w1, a.px2, a.attn, a.lda, a.M, K4, W8);  // written by other SMs
  mbar_wait(bar2, 0);
  residual_items<W8>(s0 + a.off_w2, a.pw2, s0 + a.off_w1, a.px2, K4, a.M, cta, G, my4, wo_scale,
                     a.gate, a.x, a.ldx, red, sum);
#else
  __trap();  // the host routes here only for sm_90+ code on an sm_90+ GPU
#endif
}

}  // namespace

bool CudaBackend::expert_attention_fused(Tensor x, const ExpertAttention& e) {
  using Kind = LinearPrologue::Kind;
  if (!expert_attention_fusion_) return false;
  const AttentionParams& ap = e.attn;
  const int64_t M = x.rows(), W = x.cols();
  const int Hq = ap.num_q_heads, Hkv = ap.num_kv_heads, P = e.prefix_rows;
  if (M < 1 || M > kMaxRows || W % (kWarps * 16) != 0 || W > 1 << 16) return false;
  if (ap.head_dim != kHeadDim || Hkv < 1 || Hq < Hkv || Hq % Hkv != 0 || Hq > 64) return false;
  if ((Hq * kHeadDim) % (kWarps * 16) != 0) return false;
  if (!ap.key_valid.data || ap.key_valid.dtype != DType::kI32 || ap.key_gap_end != P) return false;
  if (ap.blind_rows < 0 || ap.blind_rows > M || !std::isfinite(ap.scale)) return false;
  const Tensor* rows_io[] = {&x, &e.q, &e.attn_out, &e.k_cache, &e.v_cache};
  for (const Tensor* t : rows_io)
    if (!cuda::persistent_rows_ok(*t)) return false;
  if (e.q.rows() < M || e.q.cols() < Hq * kHeadDim || e.attn_out.rows() < M ||
      e.attn_out.cols() < Hq * kHeadDim || e.k_cache.rows() < P + M || e.v_cache.rows() < P + M ||
      e.k_cache.cols() < Hkv * kHeadDim || e.v_cache.cols() < Hkv * kHeadDim)
    return false;
  const bool w8 = e.qkv_w.dtype == DType::kF8E4M3;
  if (w8 && quant_mode_ == QuantMode::kCalibrate) return false;
  const DType wt = w8 ? DType::kF8E4M3 : DType::kBF16;
  if (!cuda::persistent_weight_ok(e.qkv_w, wt) || !cuda::persistent_weight_ok(e.o_w, wt))
    return false;
  if (e.qkv_w.rows() != (Hq + 2 * Hkv) * kHeadDim || e.qkv_w.cols() != W || e.o_w.rows() != W ||
      e.o_w.cols() != Hq * kHeadDim)
    return false;
  if (e.pro.kind != Kind::kRmsNorm && e.pro.kind != Kind::kAdaRmsNorm) return false;
  const bool ada = e.pro.kind == Kind::kAdaRmsNorm;
  if (!cuda::persistent_param_ok(e.pro.scale, W) ||
      (ada && !cuda::persistent_param_ok(e.pro.shift, W)))
    return false;
  if (e.gate && !cuda::persistent_param_ok(*e.gate, W)) return false;
  const cuda::PersistentDevice& dev =
      cuda::persistent_device(device_,
                              {reinterpret_cast<const void*>(expert_attention_kernel<false>),
                               reinterpret_cast<const void*>(expert_attention_kernel<true>)},
                              "expert_attention");
  if (!dev.sm90_code) return false;

  // Plan: key chunks so every (head, chunk) item has a CTA; the layout holds the longest chunk.
  const int es = w8 ? 1 : 2;
  const int nc = std::clamp(dev.sms / Hq, 1, kMaxChunks);
  const int kc_max = static_cast<int>(((P + M + nc - 1) / nc + 15) / 16 * 16);
  const int K4 = Hq * kHeadDim;
  const int items1 = (Hq + 2 * Hkv) * (kHalf / 8), items4 = static_cast<int>(W / kOItemRows);
  AttnArgs a{};
  const int pad_w = expert_row_pad_ ? kRowPad : 0, pad_x = w8 ? kRowPadX8 : kRowPad;
  a.pw1 = static_cast<int>(es * W + pad_w);
  a.pw2 = es * K4 + pad_w;
  a.px1 = static_cast<int>(2 * W + pad_x);
  a.px2 = 2 * K4 + pad_x;
  // The layout of a launch running `phase` (0: all) over `grid` CTAs: only that phase's areas.
  auto layout = [&](int phase, int grid) {
    const bool all = phase == 0;
    const size_t n1 = all || phase == 1 ? static_cast<size_t>((items1 + grid - 1) / grid) : 0;
    const size_t n4 = all || phase == 4 ? static_cast<size_t>((items4 + grid - 1) / grid) : 0;
    const size_t row_bytes = 2 * kHeadDim + kRowPad;
    const cuda::PersistentBase base = cuda::persistent_base(n1 ? static_cast<int>(M) : 0, a.px1);
    a.off_rms = base.off_rms;
    a.off_red = base.off_red;
    a.off_sum = base.off_sum;
    a.off_x = base.off_x;
    a.off_w1 = static_cast<int>(base.next);  // phase-1 weights / phase 2's q, K, V, p / attn_out
    a.off_qs = a.off_w1;
    a.off_ks = static_cast<int>(cuda::align128(a.off_qs + M * row_bytes));
    a.off_vs = static_cast<int>(cuda::align128(a.off_ks + kc_max * row_bytes));
    a.off_p = static_cast<int>(cuda::align128(a.off_vs + kc_max * row_bytes));
    const size_t phase2 =
        all || phase == 2 ? a.off_p + 16 * static_cast<size_t>(kc_max) * sizeof(float) - a.off_w1
                          : 0;
    const size_t staged4 = n4 ? static_cast<size_t>(M) * a.px2 : 0;
    const size_t off = cuda::align128(base.next + std::max({n1 * 16 * a.pw1, phase2, staged4}));
    a.off_w2 = static_cast<int>(off);
    const bool tx_ok = n1 * 16 * es * W <= kMaxTxBytes && n4 * kOItemRows * es * K4 <= kMaxTxBytes;
    return tx_ok ? off + n4 * kOItemRows * a.pw2 : SIZE_MAX;
  };
  // Persistent: one CTA per SM through all phases. Chained: one launch per phase, one item per
  // CTA (small CTAs, so the next phase's CTAs can start their weight copies early).
  const int grids[5] = {dev.sms, items1, Hq * nc, Hq * static_cast<int>(M), items4};
  const int first = expert_attention_chained_ ? 1 : 0, last = expert_attention_chained_ ? 4 : 0;
  for (int ph = first; ph <= last; ++ph)
    if (layout(ph, grids[ph]) > static_cast<size_t>(dev.smem_optin)) return false;
  const size_t part_bytes = static_cast<size_t>(Hq) * nc * M * (kHeadDim + 2) * sizeof(float);

  a.x = static_cast<bf16*>(x.data);
  a.ldx = x.ld();
  a.wqkv = static_cast<const unsigned char*>(e.qkv_w.data);
  a.ldwqkv = e.qkv_w.ld();
  a.wo = static_cast<const unsigned char*>(e.o_w.data);
  a.ldwo = e.o_w.ld();
  if (w8) {
    a.wqkv_scale = e.qkv_w.quant->w_scale;
    a.wo_scale = e.o_w.quant->w_scale;
  }
  a.q = static_cast<bf16*>(e.q.data);
  a.ldq = e.q.ld();
  a.kc = static_cast<bf16*>(e.k_cache.data);
  a.vc = static_cast<bf16*>(e.v_cache.data);
  a.ldk = e.k_cache.ld();
  a.ldv = e.v_cache.ld();
  a.attn = static_cast<bf16*>(e.attn_out.data);
  a.lda = e.attn_out.ld();
  a.part = static_cast<float*>(scratch(part_bytes, "expert_attention"));
  a.scale = cuda::mat_of(e.pro.scale);
  if (ada) a.shift = cuda::mat_of(e.pro.shift);
  if (e.gate) a.gate = cuda::mat_of(*e.gate);
  a.ada = ada ? 1 : 0;
  a.eps = e.pro.eps;
  a.attn_scale = ap.scale;
  a.valid = ap.key_valid.as<const int32_t>();
  a.M = static_cast<int>(M);
  a.W = static_cast<int>(W);
  a.Hq = Hq;
  a.Hkv = Hkv;
  a.P = P;
  a.blind = ap.blind_rows;
  a.nc = nc;
  a.kc_max = kc_max;
  a.sync = grid_sync_;
  for (int i = 0; i < kHalf; ++i) a.inv_freq[i] = cuda::rope_inv_freq(e.rope_theta, i, kHeadDim);

  const void* kernel = w8 ? reinterpret_cast<const void*>(expert_attention_kernel<true>)
                          : reinterpret_cast<const void*>(expert_attention_kernel<false>);
  for (int ph = first; ph <= last; ++ph) {
    a.phase = ph;
    const size_t smem = layout(ph, grids[ph]);
    cuda::launch_persistent(kernel, &a, grids[ph], smem, stream_, pdl_enabled_, "expert_attention",
                            ph == 0);
  }
  ++linear_stats_.expert_attention;
  return true;
}

void CudaBackend::expert_attention(Tensor x, const ExpertAttention& e) {
  const char* op = "expert_attention";
  cuda::check_matrix(op, "x", x, x.rows(), x.cols(), {DType::kBF16, DType::kF32});
  if (x.rows() > 0 && expert_attention_fused(x, e)) return;
  expert_attention_composed(*this, x, e, [&] { return x.rows() > 0 && expert_qkv_rope(x, e); });
}

}  // namespace frt
