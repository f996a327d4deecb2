// CPU image ops: resize_pad_normalize (openpi's model path: u8 -> x/255*2-1, then
// resize_with_pad_torch's float branch) and patch_embed (SigLIP's conv PxP / stride P as im2col + sgemm, + bias + position
// embedding). Covered by tests/cpp/test_cpu_ops.cpp (cases in tests/cpp/op_cases_vision.cpp).
#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_check.h"
#include "core/status.h"

namespace frt {

namespace {
// One axis of PyTorch's bilinear interpolation with align_corners=False
// (area_pixel_compute_source_index): src = scale * (dst + 0.5) - 0.5 clamped at 0, with
// scale = in / out in fp32 as torch computes it for a given output size.
struct Tap {
  int i0, i1;
  float l0, l1;
};

Tap source_tap(int dst, int in_size, int out_size) {
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  const float src = std::max(scale * (static_cast<float>(dst) + 0.5f) - 0.5f, 0.f);
  const int i0 = std::min(static_cast<int>(src), in_size - 1);  // src >= 0: truncation = floor
  const int i1 = std::min(i0 + 1, in_size - 1);
  const float l1 = src - static_cast<float>(i0);
  return {i0, i1, 1.f - l1, l1};
}
}  // namespace

void CpuBackend::resize_pad_normalize(Tensor out, Tensor src_u8) {
  const char* op = "resize_pad_normalize";
  cpu::check_tensor(op, "src_u8", src_u8, DType::kU8);
  cpu::check_tensor(op, "out", out, DType::kF32);
  if (src_u8.ndim != 3 || src_u8.dim(2) != 3 || !src_u8.contiguous())
    throw_error(Status::kInternal, op,
                ": operand 'src_u8': expected a contiguous [H, W, 3] u8 "
                "image, got ",
                src_u8.shape_str());
  if (out.ndim != 3 || out.dim(2) != 3 || !out.contiguous())
    throw_error(Status::kInternal, op,
                ": operand 'out': expected a contiguous [H, W, 3] image, "
                "got ",
                out.shape_str());
  const int H = static_cast<int>(src_u8.dim(0)), W = static_cast<int>(src_u8.dim(1));
  const int OH = static_cast<int>(out.dim(0)), OW = static_cast<int>(out.dim(1));
  cpu::check_arg(H > 0 && W > 0 && OH > 0 && OW > 0, op, "empty image");
  // openpi: ratio = max(W / out_w, H / out_h) in float64; resized = int(H / ratio) x int(W /
  // ratio).
  const double ratio = std::max(static_cast<double>(W) / OW, static_cast<double>(H) / OH);
  const int rh = static_cast<int>(H / ratio), rw = static_cast<int>(W / ratio);
  if (rh < 1 || rw < 1)
    throw_error(Status::kInvalidArgument, op, ": a ", H, "x", W, " image resized to fit ", OH, "x",
                OW, " would be ", rh, "x", rw,
                " pixels; expected an aspect ratio that "
                "leaves at least one row and column");
  const int pad_top = (OH - rh) / 2, pad_left = (OW - rw) / 2;  // extra pixel bottom / right
  const uint8_t* s = src_u8.as<const uint8_t>();
  float* o = out.as<float>();
  // openpi's Observation.from_dict: fp32 x / 255 * 2 - 1, before any resize.
  auto px = [&](int yy, int xx, int c) {
    return static_cast<float>(s[(static_cast<int64_t>(yy) * W + xx) * 3 + c]) / 255.f * 2.f - 1.f;
  };
  if (H == OH && W == OW) {  // preprocess_observation_pytorch skips the resize
    for (int64_t i = 0; i < static_cast<int64_t>(H) * W * 3; ++i)
      o[i] = static_cast<float>(s[i]) / 255.f * 2.f - 1.f;
    return;
  }

#pragma omp parallel for schedule(static)
  for (int y = 0; y < OH; ++y) {
    float* orow = o + static_cast<int64_t>(y) * OW * 3;
    const int ry = y - pad_top;
    if (ry < 0 || ry >= rh) {
      std::fill(orow, orow + OW * 3, -1.f);  // padding value of the float branch
      continue;
    }
    const Tap ty = source_tap(ry, H, rh);
    for (int x = 0; x < OW; ++x) {
      const int rx = x - pad_left;
      if (rx < 0 || rx >= rw) {
        std::fill(orow + x * 3, orow + x * 3 + 3, -1.f);
        continue;
      }
      const Tap tx = source_tap(rx, W, rw);
      for (int c = 0; c < 3; ++c) {
        // F.interpolate's fp32 bilinear, then clamp(-1, 1); no rounding.
        const float v = ty.l0 * (tx.l0 * px(ty.i0, tx.i0, c) + tx.l1 * px(ty.i0, tx.i1, c)) +
                        ty.l1 * (tx.l0 * px(ty.i1, tx.i0, c) + tx.l1 * px(ty.i1, tx.i1, c));
        orow[x * 3 + c] = std::clamp(v, -1.f, 1.f);
      }
    }
  }
}

void CpuBackend::patch_embed(Tensor out, Tensor img, Tensor w, Tensor b, Tensor pos) {
  const char* op = "patch_embed";
  cpu::check_tensor(op, "img", img, DType::kF32);
  cpu::check_tensor(op, "w", w, DType::kF32);
  if (w.ndim != 4 || w.dim(1) != 3 || w.dim(2) != w.dim(3) || !w.contiguous())
    throw_error(Status::kInternal, op,
                ": operand 'w': expected a contiguous [W, 3, P, P] "
                "(PyTorch OIHW) conv weight, got ",
                w.shape_str());
  const int64_t width = w.dim(0), P = w.dim(2), patch_elems = 3 * P * P;
  if (img.ndim != 3 || img.dim(2) != 3 || !img.contiguous() || img.dim(0) % P != 0 ||
      img.dim(1) % P != 0)
    throw_error(Status::kInternal, op,
                ": operand 'img': expected a contiguous [H, W, 3] image "
                "with H and W multiples of ",
                P, ", got ", img.shape_str());
  const int64_t H = img.dim(0), W = img.dim(1), gw = W / P, N = (H / P) * gw;
  cpu::check_matrix(op, "out", out, N, width);
  cpu::check_vector(op, "b", b, width);
  cpu::check_matrix(op, "pos", pos, N, width);
  if (N == 0) return;

  // im2col: row n = py * gw + px (PyTorch's flatten(2).transpose(1, 2) order), column
  // c * P * P + ky * P + kx (the OIHW weight's flattening).
  float* cols = scratch(static_cast<size_t>(N * patch_elems));
  const float* im = img.as<const float>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const int64_t py = n / gw, px = n % gw;
    float* row = cols + n * patch_elems;
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t ky = 0; ky < P; ++ky)
        for (int64_t kx = 0; kx < P; ++kx)
          row[(c * P + ky) * P + kx] = im[((py * P + ky) * W + px * P + kx) * 3 + c];
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(N), static_cast<int>(width),
              static_cast<int>(patch_elems), 1.f, cols, static_cast<int>(patch_elems),
              w.as<const float>(), static_cast<int>(patch_elems), 0.f, out.as<float>(),
              static_cast<int>(out.ld()));
  const float* bp = b.as<const float>();
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    float* o = out.as<float>() + n * out.ld();
    const float* pr = pos.as<const float>() + n * pos.ld();
    for (int64_t c = 0; c < width; ++c) o[c] = (o[c] + bp[c]) + pr[c];  // conv + bias, then + pos
  }
}

}  // namespace frt
