// E4M3 weights -> bf16 MMA operands in registers, exactly, for the W8A16 skinny GEMM
// (cuda_skinny_gemm.cu), and the order of x that matches it. Bit moves put the E4M3 sign,
// exponent and mantissa into bf16 fields with an exponent bias of 127 instead of 7, i.e. the
// value times 2^-120 (E4M3 subnormals land on bf16 subnormals, exactly); one bf16x2 multiply by
// 2^120 (exact: a power of two, subnormals supported) restores it. Integer ops + one FMA per two
// weights: no F2F conversions, whose rate would cap a weight stream.
// Covered by tests/gpu/test_cuda_fp8.cpp and tests/gpu/test_cuda_skinny_gemm.cpp.
#pragma once

#include <cstdint>

namespace frt::cuda {

__device__ __forceinline__ uint32_t bf16x2_times_2p120(uint32_t v) {
  uint32_t r;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(v), "r"(0x7B807B80u), "r"(0x80008000u));
  return r;
}
// 4 E4M3 bytes (k 0..3) -> two bf16x2 words: even = (k0, k2), odd = (k1, k3).
__device__ __forceinline__ void dequant_e4m3x4(uint32_t q, uint32_t& even, uint32_t& odd) {
  const uint32_t o = (q & 0x80008000u) | ((q & 0x7F007F00u) >> 4);  // bytes 1, 3
  const uint32_t s = q << 8;                                        // bytes 0, 2
  const uint32_t e = (s & 0x80008000u) | ((s & 0x7F007F00u) >> 4);
  even = bf16x2_times_2p120(e);
  odd = bf16x2_times_2p120(o);
}
// 16 E4M3 bytes (k0..k0+15 of one weight row) -> 8 bf16x2 words: d[2j] holds k 4j and 4j+2,
// d[2j+1] k 4j+1 and 4j+3 (x staged through permute_x8 matches).
__device__ __forceinline__ void dequant_e4m3x16(const uint4& v, uint32_t (&d)[8]) {
  const uint32_t q[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) dequant_e4m3x4(q[j], d[2 * j], d[2 * j + 1]);
}
// 8 bf16 of x (k 0..7) -> the order the dequantization produces: (0,2) (1,3) (4,6) (5,7).
__device__ __forceinline__ uint4 permute_x8(const uint4& v) {
  return make_uint4(__byte_perm(v.x, v.y, 0x5410), __byte_perm(v.x, v.y, 0x7632),
                    __byte_perm(v.z, v.w, 0x5410), __byte_perm(v.z, v.w, 0x7632));
}

}  // namespace frt::cuda
