// RoPE arithmetic shared by the CUDA kernels that rotate q / k (qkv_split_rope in cuda_rope.cu,
// the skinny GEMM's qkv-split epilogue in cuda_skinny_gemm.cuh), so they agree with each other
// and with the CPU twin (src/backend/cpu/cpu_rope.cpp): inv_freq_i = theta^(-2i/D) evaluated in
// double and rounded to fp32 on the host, the angle pos * inv_freq_i in fp32, its cos / sin in
// double and rounded. Covered by tests/gpu/test_cuda_ops.cpp (CudaOps.QkvSplitRope).
#pragma once

#include <cmath>

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

#endif

}  // namespace frt::cuda
