// Device-side helpers shared by the CUDA op files: the Mat operand (pointer, row stride and an
// element type chosen at run time, so every op accepts F32 or BF16 for each operand), the
// activations in fp32, warp/block reductions and the launch-size helper. Correct-first: one
// uniform branch per element access; the fast kernels (next step) specialize on dtypes.
// Covered by tests/gpu/test_cuda_ops.cpp (every op).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/backend.h"
#include "core/status.h"
#include "core/tensor.h"

namespace frt::cuda {

// kElemF8: OCP E4M3. Read: unscaled (FP8 weights in the fallback GEMM). Written (an FP8 GEMM
// input from Backend::gemm_input, see mat_out): the value rounded to bf16, divided by *qscale.
enum ElemType : int { kElemF32 = 0, kElemBF16 = 1, kElemF8 = 2 };

// A matrix (or vector: row 0) operand as kernels see it. p == nullptr: absent (optional operand).
struct Mat {
  void* p = nullptr;
  int64_t ld = 0;  // elements between rows
  int type = kElemF32;
  const float* qscale = nullptr;  // kElemF8 outputs: the consuming GEMM site's x_scale (device)
};

// Host: the Mat of a checked F32/BF16 tensor (nullptr tensor pointer: an absent operand).
inline Mat mat_of(const Tensor& t) {
  Mat m;
  m.p = t.data;
  m.ld = t.ld();
  if (t.dtype == DType::kF32)
    m.type = kElemF32;
  else if (t.dtype == DType::kBF16)
    m.type = kElemBF16;
  else
    throw_error(Status::kInternal, "cuda: operand of dtype ", dtype_name(t.dtype),
                " where F32 or BF16 was expected");
  return m;
}
inline Mat mat_of(const Tensor* t) { return t ? mat_of(*t) : Mat{}; }

// Host: the Mat of an op's output that may also be an FP8 GEMM input made by gemm_input()
// (F8E4M3 with the consuming site's QuantInfo): producers then quantize as they store, exactly as
// the GEMM's own quantize pass would have (bf16 rounding, then / x_scale, E4M3 saturating).
inline Mat mat_out(const Tensor& t) {
  if (t.dtype != DType::kF8E4M3) return mat_of(t);
  if (!t.quant)
    throw_error(Status::kInternal, "cuda: an F8E4M3 output without QuantInfo (not from gemm_input)");
  Mat m;
  m.p = t.data;
  m.ld = t.ld();
  m.type = kElemF8;
  m.qscale = t.quant->x_scale;
  return m;
}

// The E4M3 byte of a value stored through an FP8 output Mat (see ElemType).
__device__ __forceinline__ uint8_t quantize_out(float v, const float* qscale) {
  const float b = __bfloat162float(__float2bfloat16_rn(v));
  return static_cast<uint8_t>(
      __nv_cvt_float_to_fp8(__fdiv_rn(b, *qscale), __NV_SATFINITE, __NV_E4M3));
}

__device__ __forceinline__ float load(const Mat& m, int64_t r, int64_t c) {
  const int64_t i = r * m.ld + c;
  if (m.type == kElemBF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(m.p)[i]);
  if (m.type == kElemF8) {
    __nv_fp8_e4m3 v;
    v.__x = static_cast<const __nv_fp8_storage_t*>(m.p)[i];
    return static_cast<float>(v);
  }
  return static_cast<const float*>(m.p)[i];
}

__device__ __forceinline__ void store(const Mat& m, int64_t r, int64_t c, float v) {
  const int64_t i = r * m.ld + c;
  if (m.type == kElemBF16)
    static_cast<__nv_bfloat16*>(m.p)[i] = __float2bfloat16_rn(v);
  else if (m.type == kElemF8)
    static_cast<uint8_t*>(m.p)[i] = quantize_out(v, m.qscale);
  else
    static_cast<float*>(m.p)[i] = v;
}

// The value `v` becomes once stored in `type` (the residual stream is re-read as stored).
__device__ __forceinline__ float as_stored(int type, float v) {
  return type == kElemBF16 ? __bfloat162float(__float2bfloat16_rn(v)) : v;
}

// Element i of an optional vector, `absent` when the operand is missing.
__device__ __forceinline__ float load_vec(const Mat& v, int64_t i, float absent) {
  return v.p ? load(v, 0, i) : absent;
}

// tanh approximation of GELU (PyTorch gelu(approximate="tanh")), in fp32.
__device__ __forceinline__ float gelu_tanh(float x) {
  const float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * x * (1.f + tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
}

__device__ __forceinline__ float silu(float x) { return x / (1.f + expf(-x)); }

__device__ __forceinline__ float apply_act(int act, float x) {
  if (act == static_cast<int>(Activation::kGeluTanh)) return gelu_tanh(x);
  if (act == static_cast<int>(Activation::kSilu)) return silu(x);
  return x;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block, returned to every thread. blockDim.x must be a multiple of 32 (<= 1024);
// `red` is __shared__ float[32]. Safe to call repeatedly with the same `red`.
__device__ __forceinline__ float block_sum(float v, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int num_warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // the previous call's readers are done with `red`
  if (lane == 0) red[warp] = v;
  __syncthreads();
  return warp_sum(lane < num_warps ? red[lane] : 0.f);
}

constexpr int kThreads = 256;  // block size of the elementwise and row kernels

// Blocks for a grid-stride loop over n elements (n > 0).
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
}

}  // namespace frt::cuda

// ---- 16-byte vector access (the fast row / elementwise kernels) ----
namespace frt::cuda {

// 8 consecutive elements of m at (r, c) into / from fp32 registers: one 16-byte load for BF16,
// two for F32. The caller guarantees c % 8 == 0, ld % 8 == 0 and a 16-byte aligned base
// (vec8_ok on the host); F8 operands are never loaded this way, only stored (vec8_ok_out).
__device__ __forceinline__ void load8(const Mat& m, int64_t r, int64_t c, float (&v)[8]) {
  const int64_t i = r * m.ld + c;
  if (m.type == kElemBF16) {
    const uint4 u = *reinterpret_cast<const uint4*>(static_cast<const __nv_bfloat16*>(m.p) + i);
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      v[2 * j] = __uint_as_float(w[j] << 16);
      v[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
    }
  } else {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(m.p) + i);
    const float4 a = p[0], b = p[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  }
}

__device__ __forceinline__ void store8(const Mat& m, int64_t r, int64_t c, const float (&v)[8]) {
  const int64_t i = r * m.ld + c;
  if (m.type == kElemBF16) {
    uint32_t w[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * j], v[2 * j + 1]);
      w[j] = *reinterpret_cast<const uint32_t*>(&h);
    }
    *reinterpret_cast<uint4*>(static_cast<__nv_bfloat16*>(m.p) + i) =
        make_uint4(w[0], w[1], w[2], w[3]);
  } else if (m.type == kElemF8) {  // one 8-byte store (vec8_ok_out: 8-byte aligned rows)
    uint32_t w[2] = {0u, 0u};
#pragma unroll
    for (int e = 0; e < 8; ++e) w[e / 4] |= uint32_t(quantize_out(v[e], m.qscale)) << (8 * (e % 4));
    *reinterpret_cast<uint2*>(static_cast<uint8_t*>(m.p) + i) = make_uint2(w[0], w[1]);
  } else {
    float4* p = reinterpret_cast<float4*>(static_cast<float*>(m.p) + i);
    p[0] = make_float4(v[0], v[1], v[2], v[3]);
    p[1] = make_float4(v[4], v[5], v[6], v[7]);
  }
}

// Host: whether load8/store8 may read `t` (absent operands pass): F32/BF16, 16-byte aligned
// data, a row stride that keeps every row 16-byte aligned.
inline bool vec8_ok(const Tensor* t) {
  if (!t || !t->data) return true;
  if (t->dtype != DType::kBF16 && t->dtype != DType::kF32) return false;
  return reinterpret_cast<uintptr_t>(t->data) % 16 == 0 && t->ld() % 8 == 0;
}
inline bool vec8_ok(const Tensor& t) { return vec8_ok(&t); }
// An output that store8 may write: as vec8_ok, or an FP8 gemm_input with 8-byte aligned rows.
inline bool vec8_ok_out(const Tensor& t) {
  if (t.dtype != DType::kF8E4M3) return vec8_ok(t);
  return reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && t.ld() % 8 == 0;
}
// A per-channel vector read as row 0 (its row stride does not matter).
inline bool vec8_ok_vector(const Tensor* t) {
  if (!t || !t->data) return true;
  return (t->dtype == DType::kBF16 || t->dtype == DType::kF32) &&
         reinterpret_cast<uintptr_t>(t->data) % 16 == 0;
}

}  // namespace frt::cuda
