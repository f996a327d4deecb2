// CPU qkv_split_rope: splits a fused QKV projection into q, k, v and applies rotate-half RoPE
// to q and k, following HF Gemma as patched by openpi
// (transformers_replace/models/gemma/modeling_gemma.py): inv_freq_i = theta^(-2i/D) and the
// angle pos * inv_freq_i are fp32, cos/sin of that fp32 angle, and for each head
// out = x * cos + rotate_half(x) * sin with rotate_half(x) = [-x2, x1] (x1, x2 = halves).
// Covered by tests/cpp/test_cpu_ops.cpp (QKV_SPLIT_ROPE cases in tests/cpp/op_cases_attention.cpp).
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_check.h"

namespace frt {

namespace {
constexpr int kMaxHeadDim = 1024;

// Rotates one head of `D` values from src into dst (dst may not alias src).
void rotate_head(float* dst, const float* src, const float* cos_t, const float* sin_t, int half) {
  for (int i = 0; i < half; ++i) {
    const float x1 = src[i], x2 = src[half + i];
    dst[i] = x1 * cos_t[i] - x2 * sin_t[i];
    dst[half + i] = x2 * cos_t[i] + x1 * sin_t[i];
  }
}
}  // namespace

void CpuBackend::qkv_split_rope(Tensor q, Tensor k, Tensor v, Tensor qkv, int num_q_heads,
                                int num_kv_heads, int head_dim, int pos_offset,
                                const Tensor* pos_base, float theta) {
  const char* op = "qkv_split_rope";
  cpu::check_arg(num_q_heads > 0 && num_kv_heads > 0 && head_dim > 0, op,
                 "head counts and head_dim must be positive");
  cpu::check_arg(head_dim <= kMaxHeadDim, op, "head_dim above 1024 is not supported");
  cpu::check_arg(theta == 0.f || head_dim % 2 == 0, op, "RoPE needs an even head_dim");
  int base = 0;
  if (pos_base) {
    cpu::check_tensor(op, "pos_base", *pos_base, DType::kI32);
    cpu::check_arg(pos_base->numel() == 1, op, "pos_base must hold one i32");
    base = *pos_base->as<const int32_t>();
  }
  cpu::check_arg(pos_offset >= 0 && base >= 0, op, "positions must be >= 0");
  cpu::check_tensor(op, "qkv", qkv, DType::kF32);
  const int64_t S = qkv.rows(), D = head_dim;
  const int64_t q_cols = num_q_heads * D, kv_cols = num_kv_heads * D;
  cpu::check_matrix(op, "qkv", qkv, S, q_cols + 2 * kv_cols);
  cpu::check_matrix(op, "q", q, S, q_cols);
  cpu::check_matrix(op, "k", k, S, kv_cols);
  cpu::check_matrix(op, "v", v, S, kv_cols);

  const int half = head_dim / 2;
  float inv_freq[kMaxHeadDim / 2];
  for (int i = 0; i < half && theta != 0.f; ++i) {
    // HF: 1 / theta^(arange(0, D, 2) / D) in fp32 (rounded once from double here).
    const double e = static_cast<double>(2 * i) / static_cast<double>(head_dim);
    inv_freq[i] = static_cast<float>(1.0 / std::pow(static_cast<double>(theta), e));
  }

#pragma omp parallel for schedule(static) if (S * (q_cols + kv_cols) > (1 << 15))
  for (int64_t r = 0; r < S; ++r) {
    const float* src = qkv.as<const float>() + r * qkv.ld();
    float* qr = q.as<float>() + r * q.ld();
    float* kr = k.as<float>() + r * k.ld();
    float* vr = v.as<float>() + r * v.ld();
    std::memcpy(vr, src + q_cols + kv_cols, static_cast<size_t>(kv_cols) * sizeof(float));
    if (theta == 0.f) {
      std::memcpy(qr, src, static_cast<size_t>(q_cols) * sizeof(float));
      std::memcpy(kr, src + q_cols, static_cast<size_t>(kv_cols) * sizeof(float));
      continue;
    }
    float cos_t[kMaxHeadDim / 2], sin_t[kMaxHeadDim / 2];
    const float pos = static_cast<float>(pos_offset + base + r);
    for (int i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];  // fp32 product, as HF's freqs
      cos_t[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin_t[i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
    for (int h = 0; h < num_q_heads; ++h) rotate_head(qr + h * D, src + h * D, cos_t, sin_t, half);
    for (int h = 0; h < num_kv_heads; ++h)
      rotate_head(kr + h * D, src + q_cols + h * D, cos_t, sin_t, half);
  }
}

}  // namespace frt
