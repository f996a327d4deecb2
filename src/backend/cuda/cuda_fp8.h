// FP8 (OCP E4M3) pieces of the CUDA backend that other CUDA files call: the activation quantizer
// (a clean function, so a producer such as a norm or GeGLU kernel can later write fp8 itself),
// the input amax used by calibration, and the upload-time weight quantizer. linear_fp8 and the
// calibration methods of CudaBackend live in cuda_fp8.cu with the kernels.
// Scales are per tensor: real = fp8 value * scale; q = saturate_e4m3(x / scale), round to
// nearest even (= f32_to_e4m3(x / scale) on the host).
// Covered by tests/gpu/test_cuda_fp8.cpp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/tensor.h"

namespace frt {

// Calibrate mode's dynamic scale: max(amax, kFp8AmaxFloor) / 448 (an all-zero input gets a tiny
// scale instead of 0 / 0).
inline constexpr float kFp8AmaxFloor = 1e-12f;

// Where a quantization takes its scale from (all device pointers).
struct Fp8Scale {
  const float* scale = nullptr;  // static: use *scale
  const float* amax = nullptr;   // dynamic (non-null): scale = max(*amax, floor) / 448 ...
  float* scale_out = nullptr;    // ... written here (the GEMM's B scale) ...
  float* site_amax = nullptr;    // ... and *amax folded into this site's calibration amax
};

// q[r, c] (row stride ldq bytes) = e4m3(x[r, c] / scale) for the M x K matrix x (BF16 or F32,
// any row stride). One launch on `stream` (a programmatic dependent if `pdl`, see
// cuda_launch.cuh); no allocation (capturable).
void quantize_e4m3(cudaStream_t stream, bool pdl, const Tensor& x, void* q, int64_t ldq,
                   const Fp8Scale& s);

// *out = max(*out, max |x|) (atomic on the float bits; *out >= 0). One launch on `stream`
// (PDL as quantize_e4m3).
void amax_into(cudaStream_t stream, bool pdl, const Tensor& x, float* out);

// dst[i] = e4m3(src[i] / scale) for n floats on the device (upload_weight's chunks).
void quantize_e4m3_flat(cudaStream_t stream, const float* src, uint8_t* dst, int64_t n, float scale);

}  // namespace frt
