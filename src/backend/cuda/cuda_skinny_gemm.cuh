// Device helpers of the skinny weight-streaming GEMM (cuda_skinny_gemm.cu): streaming loads,
// cp.async, the bf16 MMA, the F32-x hi/lo split, the FP8 (E4M3) -> bf16 register dequantization,
// the cluster barrier / distributed-shared-memory accessors (sm_90+), fused_linear's
// prologues (norm / GeGLU applied to x while it is staged) and the pushed-partials reduction.
// Included by cuda_skinny_gemm.cu only (inside its anonymous namespace, after SkinnyArgs and
// the block shape).
// Covered by tests/gpu/test_cuda_skinny_gemm.cpp, tests/gpu/test_cuda_fp8.cpp and
// tests/gpu/test_cuda_fused_linear.cpp.
#pragma once

// 16 bytes of weights if `pred`, else zeros: one predicated load (no branch), not kept in L1,
// 256-byte L2 prefetch (rows are read in 64*U-byte runs). volatile: never hoisted above the
// bounds check that `pred` carries.
__device__ __forceinline__ uint4 ldg_stream(const void* p, bool pred) {
  uint4 v;
  asm volatile(
      "{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %5, 0;\n\t"
      "mov.b32 %0, 0;\n\tmov.b32 %1, 0;\n\tmov.b32 %2, 0;\n\tmov.b32 %3, 0;\n\t"
      "@p ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];\n\t}"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p), "r"(static_cast<int>(pred)));
  return v;
}

// 16 bytes global -> shared without registers (cp.async, L2 only); zeros when !pred (nothing
// is read then, but the source must still be a valid address).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool pred) {
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src),
               "r"(pred ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.commit_group;\n\tcp.async.wait_group 0;" ::: "memory");
}

// d[4] += A[16x16] . B[16x8], bf16 in, fp32 accumulate (PTX fragment layout).
__device__ __forceinline__ void mma_bf16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  return *reinterpret_cast<const uint32_t*>(&v);
}

// f = hi + lo with hi = bf16(f), lo = bf16(f - hi): 8 floats -> two 16-byte bf16 vectors.
__device__ __forceinline__ void split_bf16(const float (&f)[8], uint4& hi, uint4& lo) {
  float h[8], l[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    h[i] = __bfloat162float(__float2bfloat16_rn(f[i]));
    l[i] = f[i] - h[i];  // exact in fp32
  }
  hi = make_uint4(pack_bf16(h[0], h[1]), pack_bf16(h[2], h[3]), pack_bf16(h[4], h[5]),
                  pack_bf16(h[6], h[7]));
  lo = make_uint4(pack_bf16(l[0], l[1]), pack_bf16(l[2], l[3]), pack_bf16(l[4], l[5]),
                  pack_bf16(l[6], l[7]));
}

#if FRT_SKINNY_CLUSTERS
// Cluster barrier halves. arrive has release semantics (this CTA's earlier shared-memory
// writes and reads are ordered before it), wait has acquire semantics.
__device__ __forceinline__ void cluster_arrive() {
  asm volatile("barrier.cluster.arrive.aligned;" ::: "memory");
}
__device__ __forceinline__ void cluster_wait() {
  asm volatile("barrier.cluster.wait.aligned;" ::: "memory");
}
// The shared::cluster address of `smem_addr` (a shared-window address) in CTA `rank`.
__device__ __forceinline__ uint32_t map_rank(uint32_t smem_addr, int rank) {
  uint32_t r;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(r) : "r"(smem_addr), "r"(rank));
  return r;
}
// Stores a float at shared::cluster address `addr` (another CTA's shared memory): no round
// trip, ordered before the next barrier.cluster.arrive (release).
__device__ __forceinline__ void st_cluster(uint32_t addr, float v) {
  asm volatile("st.shared::cluster.f32 [%0], %1;" ::"r"(addr), "f"(v) : "memory");
}
__device__ __forceinline__ float ld_cluster(uint32_t addr) {
  float v;
  asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(addr) : "memory");
  return v;
}
#endif

// E4M3 -> bf16 register dequantization and the matching x order: cuda_e4m3_dequant.cuh.
using cuda::dequant_e4m3x16;
using cuda::permute_x8;

// ---- fused_linear prologues (SkinnyArgs::pro) ----

// 8 bf16 (one 16-byte vector) -> fp32, exactly.
__device__ __forceinline__ void unpack_bf16x8(const uint4& v, float (&f)[8]) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    f[2 * j] = __uint_as_float(w[j] << 16);
    f[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
  }
}

// Fallback for norm rows too long for shared memory (SkinnyArgs::norm_full == 0):
// inv[m] = 1 / sqrt(mean(x[m, 0:K)^2) + eps) for m < M, warp w taking rows w, w + 8, ..; fp32
// sums of squares of the bf16 x read from global memory (L2). Every CTA computes all rows.
__device__ __forceinline__ void row_inv_rms(float* inv, const __nv_bfloat16* x, int64_t ldx, int M,
                                            int K, float eps) {
  const int lane = threadIdx.x & 31;
  for (int m = threadIdx.x >> 5; m < M; m += kWarps) {
    const __nv_bfloat16* row = x + m * ldx;
    float ss = 0.f;
    for (int k = 8 * lane; k < K; k += 8 * 32) {
      float f[8];
      unpack_bf16x8(__ldg(reinterpret_cast<const uint4*>(row + k)), f);
#pragma unroll
      for (int e = 0; e < 8; ++e) ss += f[e] * f[e];
    }
    ss = cuda::warp_sum(ss);
    if (lane == 0) inv[m] = 1.f / sqrtf(ss / static_cast<float>(K) + eps);
  }
}

// The same from whole x rows staged in shared memory (row m at xs + m * pitch bytes): one fixed
// summation order, so every CTA of a launch gets the same factors.
__device__ __forceinline__ void row_inv_rms_smem(float* inv, const unsigned char* xs, int pitch,
                                                 int M, int K, float eps) {
  const int lane = threadIdx.x & 31;
  for (int m = threadIdx.x >> 5; m < M; m += kWarps) {
    float ss = 0.f;
    for (int k = 8 * lane; k < K; k += 8 * 32) {
      float f[8];
      unpack_bf16x8(*reinterpret_cast<const uint4*>(xs + m * pitch + 2 * k), f);
#pragma unroll
      for (int e = 0; e < 8; ++e) ss += f[e] * f[e];
    }
    ss = cuda::warp_sum(ss);
    if (lane == 0) inv[m] = 1.f / sqrtf(ss / static_cast<float>(K) + eps);
  }
}

// 8 fp32 -> 8 bf16 (one 16-byte vector), round to nearest.
__device__ __forceinline__ uint4 pack_bf16x8(const float (&f)[8]) {
  return make_uint4(pack_bf16(f[0], f[1]), pack_bf16(f[2], f[3]), pack_bf16(f[4], f[5]),
                    pack_bf16(f[6], f[7]));
}

// Element i of a norm parameter vector (F32 or BF16, cuda::ElemType `type`) staged at p.
__device__ __forceinline__ float smem_param(const unsigned char* p, int type, int i) {
  return type == cuda::kElemBF16 ? __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(p)[i])
                                 : reinterpret_cast<const float*>(p)[i];
}

// bf16(gelu_tanh(g) * u) of 8 gate / up values (the unfused geglu's arithmetic).
__device__ __forceinline__ uint4 geglu_x8(const uint4& gv, const uint4& uv) {
  float f[8], u[8];
  unpack_bf16x8(gv, f);
  unpack_bf16x8(uv, u);
#pragma unroll
  for (int e = 0; e < 8; ++e) f[e] = cuda::gelu_tanh(f[e]) * u[e];
  return pack_bf16x8(f);
}

// Fallback staging of a norm prologue from global memory (rows too long for shared memory):
// pro(x)[m, k .. k+8) as 8 bf16 (fp32 math, one rounding, like the unfused norm writing bf16):
// kProRms x * inv * scale; kProAda x * inv * (1 + scale) + shift. xrow: row m of x.
__device__ __forceinline__ uint4 norm_x8_global(const SkinnyArgs& a, const __nv_bfloat16* xrow,
                                                int k, float inv) {
  float f[8];
  unpack_bf16x8(__ldg(reinterpret_cast<const uint4*>(xrow + k)), f);
  const bool ada = a.pro == kProAda;
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const float sc = cuda::load(a.pro_scale, 0, k + e);
    f[e] = ada ? f[e] * inv * (1.f + sc) + cuda::load(a.pro_shift, 0, k + e) : f[e] * inv * sc;
  }
  return pack_bf16x8(f);
}

// The rest of a whole-row norm stage (SkinnyArgs::norm_full) once the x rows' cp.async are
// issued (row m at smem + m * pitch, k 0 .. K): cp.async the scale (and shift, at + 4 ks bytes)
// of the CTA's k-range [kb, ke) to pro_off, wait, inv_rms from the staged rows, then rows < M
// of [kb, ke) normalized in place (x * inv * scale, or x * inv * (1 + scale) + shift; fp32, one
// bf16 rounding; W8: permuted for the dequant order). Rows past M stay zero. Whole CTA.
template <bool W8>
__device__ __forceinline__ void finish_norm_stage(const SkinnyArgs& a, unsigned char* smem,
                                                  int pitch, int kb, int ke, float* inv_rms) {
  const int nk = ke - kb;  // a multiple of 8; the parameters are 16-byte aligned
  unsigned char* scale_s = smem + a.pro_off;
  unsigned char* shift_s = scale_s + 4 * a.ks;
  auto stage_param = [&](const Mat& v, unsigned char* dst) {
    const int es = v.type == cuda::kElemBF16 ? 2 : 4, nv = nk * es / 16;
    const unsigned char* src = static_cast<const unsigned char*>(v.p) + kb * es;
    for (int j = threadIdx.x; j < nv; j += kThreads) cp_async16(dst + 16 * j, src + 16 * j, true);
  };
  const bool ada = a.pro == kProAda;
  stage_param(a.pro_scale, scale_s);
  if (ada) stage_param(a.pro_shift, shift_s);
  cp_async_wait_all();
  __syncthreads();
  row_inv_rms_smem(inv_rms, smem, pitch, a.M, a.K, a.eps);
  __syncthreads();
  const int nc = nk / 8;
  for (int i = threadIdx.x; i < a.M * nc; i += kThreads) {
    const int m = i / nc, c = i - m * nc;
    uint4* p = reinterpret_cast<uint4*>(smem + m * pitch + 2 * (kb + 8 * c));
    float f[8];
    unpack_bf16x8(*p, f);
    const float inv = inv_rms[m];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const float sc = smem_param(scale_s, a.pro_scale.type, 8 * c + e);
      f[e] = ada ? f[e] * inv * (1.f + sc) + smem_param(shift_s, a.pro_shift.type, 8 * c + e)
                 : f[e] * inv * sc;
    }
    uint4 v = pack_bf16x8(f);
    if constexpr (W8) v = permute_x8(v);
    *p = v;
  }
}

// ---- skinny_gemm_qkv_rope's epilogue (SkinnyArgs::split) ----

// The weight row behind tile row n. With the split epilogue, rows below rope_cols are taken in
// rotation-pair order: tile rows 2i, 2i + 1 of a head are its rows i and i + D/2, so the two
// values RoPE rotates together land in adjacent lanes of the epilogue. Also the output column.
__device__ __forceinline__ int weight_row(const SkinnyArgs& a, int n) {
  if (n >= a.split.rope_cols) return n;
  const int d = a.split.head_dim, head = n / d, j = n - head * d;
  return head * d + (j >> 1) + (j & 1) * (d >> 1);
}

// Output (m, tile row n) = v, the fp32 GEMM result: rounded to bf16 as the qkv buffer of the
// unfused path holds it, rotated with its pair's value (the neighbouring lane: the whole warp
// calls this together) using qkv_split_rope's arithmetic, and stored into q, k or v.
// active: whether this lane stores (every lane of the warp calls, for the shuffle).
// pos_base: *s.pos_base when the caller loaded it already (push_reduce_epilogue), else -1.
__device__ __forceinline__ void store_qkv_split(const QkvSplit& s, int m, int n, float v,
                                                bool active = true, int pos_base = -1) {
  v = __bfloat162float(__float2bfloat16_rn(v));
  const float partner = __shfl_xor_sync(0xffffffffu, v, 1);
  if (!active) return;
  int c = n;
  if (n < s.rope_cols) {
    const int d = s.head_dim, head = n / d, j = n - head * d, i = j >> 1;
    float cs, sn, o1, o2;
    const float pos = pos_base >= 0 ? cuda::rope_position(s.pos_offset, &pos_base, m)
                                    : cuda::rope_position(s.pos_offset, s.pos_base, m);
    cuda::rope_cos_sin(pos, s.inv_freq[i], &cs, &sn);
    const bool first = (j & 1) == 0;  // this lane holds x1 (row i), its partner x2 (i + D/2)
    cuda::rope_rotate(first ? v : partner, first ? partner : v, cs, sn, o1, o2);
    v = first ? o1 : o2;
    c = head * d + i + (first ? 0 : d >> 1);
  }
  const Mat& dst = cuda::qkv_split_target(s.q, s.k, s.v, s.q_cols, s.kv_cols, c);  // c: its column
  cuda::store(dst, m, c, v);
}

#if FRT_SKINNY_CLUSTERS
// Reduce + epilogue with the partials pushed (SkinnyArgs::recv_off): rank q owns tile rows
// [q R/C, (q + 1) R/C) of the cluster's R x M tile; every CTA stores each of its partials
// straight into the owner's receive area [rank][k slot][m][owned row] (remote stores, no round
// trip), one cluster barrier publishes them, and each owner sums its outputs from its own shared
// memory in the pull path's fixed (rank, k slot) order: the same bits, without up to 16
// dependent distributed-shared-memory loads per output. The receive area is not the x stage, so
// no barrier is needed before the stores.
template <int MT, int WK, bool W8, bool SPLIT, int kRows, int MP>
__device__ __forceinline__ void push_reduce_epilogue(const SkinnyArgs& a, const float (&acc)[MT][4],
                                                     int n_base, int wn, int wq, int g, int t) {
  const int q_self = static_cast<int>(blockIdx.x);  // cluster rank (cluster = grid x)
  const int ro_sh = (__ffs(kRows) - 1) - (__ffs(a.cluster) - 1), ro = 1 << ro_sh;
  extern __shared__ __align__(16) unsigned char smem[];  // the kernel's dynamic shared memory
  float* const recv = reinterpret_cast<float*>(smem + a.recv_off);
  const uint32_t recv_s = static_cast<uint32_t>(__cvta_generic_to_shared(recv));
#pragma unroll
  for (int j = 0; j < MT; ++j) {
    if (8 * j >= a.M) continue;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = wn * 16 + g + 8 * h, owner = r >> ro_sh, rl = r & (ro - 1);
#pragma unroll
      for (int b = 0; b < 2; ++b) {
        const int m = 8 * j + 2 * t + b;
        const uint32_t off = recv_s + 4u * (((q_self * WK + wq) * MP + m) * ro + rl);
        st_cluster(map_rank(off, owner), acc[j][2 * h + b]);
      }
    }
  }
  // The epilogue's operands that do not depend on the sums (scale, bias, gate, the residual y,
  // the RoPE position base) are loaded before the barrier: their round trip overlaps it instead
  // of following it. A thread's outputs: e = tid + i kThreads, i < kMaxIters (M <= 8 MT, ro <=
  // kRows / 2).
  constexpr int kMaxIters = (8 * MT * (kRows / 2) + kThreads - 1) / kThreads;
  const int outs = a.M << ro_sh;
  const float w_scale = W8 ? *a.w_scale : 1.f;
  const int pos_base = SPLIT && a.split.pos_base ? *a.split.pos_base : 0;
  float pre_bias[kMaxIters], pre_gate[kMaxIters], pre_y[kMaxIters];
#pragma unroll
  for (int i = 0; i < kMaxIters; ++i) {
    const int e = i * kThreads + static_cast<int>(threadIdx.x);
    const int m = e >> ro_sh, n = n_base + q_self * ro + (e & (ro - 1));
    const bool live = e < outs && n < a.N;
    pre_bias[i] = live ? cuda::load_vec(a.bias, n, 0.f) : 0.f;
    pre_gate[i] = !SPLIT && live ? cuda::load_vec(a.gate, n, 1.f) : 1.f;
    pre_y[i] = !SPLIT && live && a.accumulate ? cuda::load(a.y, m, n) : 0.f;
  }
  cluster_arrive();
  cluster_wait();
#pragma unroll
  for (int i = 0; i < kMaxIters; ++i) {  // uniform trip count: SPLIT's shuffle
    const int e = i * kThreads + static_cast<int>(threadIdx.x);
    if (i * kThreads >= outs) break;
    const bool on = e < outs;
    const int m = on ? e >> ro_sh : 0, rl = e & (ro - 1);
    float s = 0.f;
    for (int q = 0; q < a.cluster; ++q) {
#pragma unroll
      for (int k = 0; k < WK; ++k) s += recv[((q * WK + k) * MP + m) * ro + rl];
    }
    const int n = n_base + q_self * ro + rl;
    const bool live = on && n < a.N;
    float v = cuda::apply_act(a.act, (W8 ? s * w_scale : s) + pre_bias[i]);
    if constexpr (SPLIT) {
      store_qkv_split(a.split, m, n, v, live, pos_base);
      continue;
    }
    if (!live) continue;
    v *= pre_gate[i];  // the gated residual of fused_linear (1 without a gate)
    if (a.accumulate) v += pre_y[i];
    cuda::store(a.y, m, n, v);
  }
}
#endif
