// RoPE arithmetic and the [q | k | v] column split, shared by the CUDA kernels that rotate q / k
// (qkv_split_rope in cuda_rope.cu, the skinny GEMM's qkv-split epilogue in
// cuda_skinny_gemm.cuh), so they agree with each other and with the CPU twin
// (src/backend/cpu/cpu_rope.cpp): inv_freq_i = theta^(-2i/D) evaluated in double and rounded to
// fp32 on the host, the angle pos * inv_freq_i in fp32, its cos / sin in double and rounded.
// Covered by tests/gpu/test_cuda_ops.cpp (CudaOps.QkvSplitRope) and
// tests/gpu/test_cuda_expert_attention.cpp (QkvRopeFusionIsBitIdentical).
#pragma once

#include <cmath>
#include <cstdint>

namespace frt::cuda {

constexpr double kInvPi = 0.318309886183790671537767526745028724;  // 1 / pi

// inv_freq of rotation pair i of a head of head_dim (host: exactly the CPU twin's expression).
inline float rope_inv_freq(float theta, int i, int head_dim) {
  const double e = static_cast<double>(2 * i) / static_cast<double>(head_dim);
  return static_cast<float>(1.0 / std::pow(static_cast<double>(theta), e));
}

#ifdef __CUDACC__
// cos/sin of the fp32 angle pos * inv_freq, in double as sincospi(angle / pi): the argument
// error (~1e-16 relative) is far below the final fp32 rounding, and sincospi needs no
// large-argument reduction (double sin/cos would keep a local-memory stack frame for it).
__device__ __forceinline__ void rope_cos_sin(float pos, float inv_freq, float* c_out,
                                             float* s_out) {
  const float angle = __fmul_rn(pos, inv_freq);
  double s, c;
  sincospi(static_cast<double>(angle) * kInvPi, &s, &c);
  *c_out = static_cast<float>(c);
  *s_out = static_cast<float>(s);
}

// Row r's position as the CPU twin forms it: pos_offset + pos_base[0] (device, or 0 when null)
// + r as an integer, then one rounding to float.
__device__ __forceinline__ float rope_position(int pos_offset, const int* pos_base, int64_t r) {
  const int64_t base = pos_base ? static_cast<int64_t>(*pos_base) : 0;
  return static_cast<float>(static_cast<int64_t>(pos_offset) + base + r);
}

// A rotation pair (x1 at i, x2 at i + D/2) -> x1 cos - x2 sin, x2 cos + x1 sin, with unfused
// fp32 products (so F32 outputs match the CPU twin exactly).
__device__ __forceinline__ void rope_rotate(float x1, float x2, float c, float s, float& o1,
                                            float& o2) {
  o1 = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
  o2 = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
}

// Column c of a fused [q | k | v] row: returns the output it belongs to (q, k or v) and makes c
// its column there (T: the kernel's matrix handle, I: its column index type).
template <typename T, typename I>
__device__ __forceinline__ const T& qkv_split_target(const T& q, const T& k, const T& v, I q_cols,
                                                     I kv_cols, I& c) {
  if (c < q_cols) return q;
  c -= q_cols;
  if (c < kv_cols) return k;
  c -= kv_cols;
  return v;
}
#endif

}  // namespace frt::cuda
