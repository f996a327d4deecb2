// CUDA image ops.
//  - resize_pad_normalize: openpi's resize_with_pad_torch on a u8 [H,W,3] image with the CPU
//    twin's exact float expressions (src/backend/cpu/cpu_vision_ops.cpp): the size/pad
//    arithmetic runs on the host in the same double code, every device product/sum uses
//    __fmul_rn/__fadd_rn (never fused into an FMA, matching the CPU's separately rounded x86
//    SSE ops): pixels are normalized to x / 255 * 2 - 1 first, then interpolated and clamped to
//    [-1, 1] (openpi's float branch). An F32 output is bit-exact with the CPU twin.
//  - patch_embed: im2col of the [H,W,3] image into an fp32 scratch [N, 3*P*P] (column order
//    c*P*P + ky*P + kx, the OIHW weight's flattening), one fp32 cuBLASLt GEMM against the
//    F32 conv weight [W, 3, P, P] into a second scratch area, then out = (acc + b) + pos.
// Covered by tests/gpu/test_cuda_ops.cpp (CudaOps.ResizePadNormalize, CudaOps.PatchEmbed).
#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_launch.cuh"

namespace frt {

namespace {
using cuda::Mat;

struct Tap {
  int i0, i1;
  float l0, l1;
};

// PyTorch's area_pixel_compute_source_index (align_corners=False), as the CPU twin computes it.
__device__ Tap source_tap(int dst, int in_size, int out_size) {
  const float scale = __fdiv_rn(static_cast<float>(in_size), static_cast<float>(out_size));
  const float src =
      fmaxf(__fsub_rn(__fmul_rn(scale, __fadd_rn(static_cast<float>(dst), 0.5f)), 0.5f), 0.f);
  const int i0 = min(static_cast<int>(src), in_size - 1);  // src >= 0: truncation = floor
  const int i1 = min(i0 + 1, in_size - 1);
  const float l1 = __fsub_rn(src, static_cast<float>(i0));
  return {i0, i1, __fsub_rn(1.f, l1), l1};
}

// One thread per output pixel (3 channels).
__global__ void resize_pad_normalize_kernel(Mat out, const uint8_t* src, int H, int W, int OH,
                                            int OW, int rh, int rw, int pad_top, int pad_left) {
  cuda::pdl_begin();
  const int64_t total = static_cast<int64_t>(OH) * OW;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int y = static_cast<int>(i / OW), x = static_cast<int>(i % OW);
    const int ry = y - pad_top, rx = x - pad_left;
    if (ry < 0 || ry >= rh || rx < 0 || rx >= rw) {
      for (int c = 0; c < 3; ++c) cuda::store(out, i, c, -1.f);  // the float branch pads with -1
      continue;
    }
    const Tap ty = source_tap(ry, H, rh), tx = source_tap(rx, W, rw);
    for (int c = 0; c < 3; ++c) {
      // openpi's model path: normalize the u8 pixel first (x / 255 * 2 - 1 in fp32), then
      // bilinear on floats, clamp to [-1, 1], no rounding. Unfused ops mirror the CPU twin.
      auto px = [&](int yy, int xx) {
        const float u = static_cast<float>(src[(static_cast<int64_t>(yy) * W + xx) * 3 + c]);
        return __fsub_rn(__fmul_rn(__fdiv_rn(u, 255.f), 2.f), 1.f);
      };
      const float top = __fadd_rn(__fmul_rn(tx.l0, px(ty.i0, tx.i0)), __fmul_rn(tx.l1, px(ty.i0, tx.i1)));
      const float bot = __fadd_rn(__fmul_rn(tx.l0, px(ty.i1, tx.i0)), __fmul_rn(tx.l1, px(ty.i1, tx.i1)));
      const float v = __fadd_rn(__fmul_rn(ty.l0, top), __fmul_rn(ty.l1, bot));
      cuda::store(out, i, c, fminf(fmaxf(v, -1.f), 1.f));
    }
  }
}

// cols[n, (c*P + ky)*P + kx] = img[py*P + ky, px*P + kx, c], n = py * gw + px.
__global__ void im2col_kernel(float* cols, Mat img, int64_t N, int64_t gw, int64_t W, int64_t P) {
  cuda::pdl_begin();
  const int64_t pe = 3 * P * P, total = N * pe;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = i / pe, e = i % pe;
    const int64_t c = e / (P * P), ky = (e / P) % P, kx = e % P;
    const int64_t py = n / gw, px = n % gw;
    cols[i] = cuda::load(img, 0, ((py * P + ky) * W + px * P + kx) * 3 + c);
  }
}

// out[n, c] = (acc[n, c] + b[c]) + pos[n, c] (conv + bias, then + position, as the CPU twin).
__global__ void patch_epilogue_kernel(Mat out, const float* acc, Mat b, Mat pos, int64_t N,
                                      int64_t width) {
  cuda::pdl_begin();
  const int64_t total = N * width;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = i / width, c = i % width;
    cuda::store(out, n, c, __fadd_rn(__fadd_rn(acc[i], cuda::load(b, 0, c)), cuda::load(pos, n, c)));
  }
}
}  // namespace

void CudaBackend::resize_pad_normalize(Tensor out, Tensor src_u8) {
  const char* op = "resize_pad_normalize";
  cuda::check_nd(op, "src_u8", src_u8, 3, {DType::kU8});
  cuda::check_nd(op, "out", out, 3, {DType::kBF16, DType::kF32});
  if (src_u8.dim(2) != 3)
    throw_error(Status::kInternal, op, ": operand 'src_u8': expected a contiguous [H, W, 3] u8 "
                "image, got ", src_u8.shape_str());
  if (out.dim(2) != 3)
    throw_error(Status::kInternal, op, ": operand 'out': expected a contiguous [H, W, 3] image, "
                "got ", out.shape_str());
  const int64_t H64 = src_u8.dim(0), W64 = src_u8.dim(1), OH64 = out.dim(0), OW64 = out.dim(1);
  cuda::check_arg(H64 > 0 && W64 > 0 && OH64 > 0 && OW64 > 0, op, "empty image");
  cuda::check_arg(H64 < (1 << 20) && W64 < (1 << 20) && OH64 < (1 << 20) && OW64 < (1 << 20),
                  op, "image side of 2^20 pixels or more");
  const int H = static_cast<int>(H64), W = static_cast<int>(W64);
  const int OH = static_cast<int>(OH64), OW = static_cast<int>(OW64);
  // openpi: ratio = max(W / out_w, H / out_h) in float64; resized = int(H / ratio) x int(W / ratio).
  const double ratio = std::max(static_cast<double>(W) / OW, static_cast<double>(H) / OH);
  const int rh = static_cast<int>(H / ratio), rw = static_cast<int>(W / ratio);
  if (rh < 1 || rw < 1)
    throw_error(Status::kInvalidArgument, op, ": a ", H, "x", W, " image resized to fit ", OH,
                "x", OW, " would be ", rh, "x", rw, " pixels; expected an aspect ratio that "
                "leaves at least one row and column");
  const int pad_top = (OH - rh) / 2, pad_left = (OW - rw) / 2;  // extra pixel bottom / right
  Mat o = cuda::mat_of(out);
  o.ld = 3;  // pixel-major rows of 3 channels
  cuda::launch(*this, op, resize_pad_normalize_kernel, cuda::grid_for(OH64 * OW64), cuda::kThreads,
               0, o, src_u8.as<const uint8_t>(), H, W, OH, OW, rh, rw, pad_top, pad_left);
}

void CudaBackend::patch_embed(Tensor out, Tensor img, Tensor w, Tensor b, Tensor pos) {
  const char* op = "patch_embed";
  cuda::check_nd(op, "w", w, 4, {DType::kF32, DType::kBF16});
  if (w.dim(1) != 3 || w.dim(2) != w.dim(3) || w.dim(2) < 1)
    throw_error(Status::kInternal, op, ": operand 'w': expected a contiguous [W, 3, P, P] "
                "(PyTorch OIHW) conv weight, got ", w.shape_str());
  const int64_t width = w.dim(0), P = w.dim(2), pe = 3 * P * P;
  cuda::check_nd(op, "img", img, 3, {DType::kBF16, DType::kF32});
  if (img.dim(2) != 3 || img.dim(0) % P != 0 || img.dim(1) % P != 0)
    throw_error(Status::kInternal, op, ": operand 'img': expected a contiguous [H, W, 3] image "
                "with H and W multiples of ", P, ", got ", img.shape_str());
  const int64_t W = img.dim(1), gw = W / P, N = (img.dim(0) / P) * gw;
  cuda::check_matrix(op, "out", out, N, width, {DType::kBF16, DType::kF32});
  cuda::check_vector(op, "b", b, width, {DType::kF32, DType::kBF16});
  cuda::check_matrix(op, "pos", pos, N, width, {DType::kF32, DType::kBF16});
  if (N == 0 || width == 0) return;

  // Scratch: im2col [N, pe] in w's dtype family (f32 here), then the fp32 GEMM output [N, width].
  const size_t cols_bytes = (static_cast<size_t>(N * pe) * sizeof(float) + 255) / 256 * 256;
  const size_t acc_bytes = static_cast<size_t>(N * width) * sizeof(float);
  char* base = static_cast<char*>(scratch(cols_bytes + acc_bytes, op));
  float* cols = reinterpret_cast<float*>(base);
  float* acc = reinterpret_cast<float*>(base + cols_bytes);

  Mat im = cuda::mat_of(img);
  im.ld = 0;  // addressed as one flat row
  cuda::launch(*this, op, im2col_kernel, cuda::grid_for(N * pe), cuda::kThreads, 0, cols, im, N,
               gw, W, P);

  Gemm g;
  g.M = N;
  g.N = width;
  g.K = pe;
  g.x = cols;
  g.ldx = pe;
  g.xt = DType::kF32;
  g.w = w.data;
  g.ldw = pe;
  g.wt = w.dtype;
  g.y = acc;
  g.ldy = width;
  g.yt = DType::kF32;
  if (!gemm_lt(op, g)) gemm_fallback(op, g, nullptr, Activation::kNone);

  cuda::launch(*this, op, patch_epilogue_kernel, cuda::grid_for(N * width), cuda::kThreads, 0,
               cuda::mat_of(out), acc, cuda::mat_of(b), cuda::mat_of(pos), N, width);
}

}  // namespace frt
