// Naive float64 references of every backend op, written from the op contracts in
// src/backend/backend.h and the PyTorch/openpi code they follow — independent of the CPU
// backend's code (no shared helpers). Inputs are packed row-major f32 values exactly as the
// device saw them; outputs are packed float64. Used by the cases in tests/cpp/op_cases_*.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace frt::ref {

using F = std::vector<float>;
using D = std::vector<double>;

double gelu_tanh(double x);
double silu(double x);
double activate(Activation act, double x);

// act(x[M,K] w[N,K]^T + bias) (+ y0 when accumulating).
D linear(const F& x, const F& w, const F* bias, int64_t M, int64_t N, int64_t K, Activation act,
         const F* y0);
// [gate *] (pro(x) . w[N,K]^T) (+ y0 when accumulating). pro: LinearPrologue's kind with its
// scale / shift [K] (x [M, K]; kGeglu: x [M, 2K]); gate [N] or null.
D fused_linear(const F& x, const F& w, LinearPrologue::Kind pro, const F& scale, const F& shift,
               double eps, const F* gate, int64_t M, int64_t N, int64_t K, const F* y0);
D layer_norm(const F& x, const F& w, const F& b, int64_t M, int64_t cols, double eps);

struct NormOut {
  D x;  // the residual stream after the add
  D y;  // the normalized output
};
NormOut add_rms_norm(const F& x, const F* delta, const F& scale, int64_t M, int64_t cols,
                     double eps);
NormOut add_ada_rms_norm(const F& x, const F* delta, const F* gate, const F& mod_scale,
                         const F& mod_shift, int64_t M, int64_t cols, double eps);
D gated_add(const F& x, const F& delta, const F& gate, int64_t M, int64_t cols);
D geglu(const F& gate_up, int64_t S, int64_t Fdim);
D activation(const F& x, Activation act);

struct QkvOut {
  D q, k, v;
};
// Rotate-half RoPE per HF Gemma: inv_freq and the angle pos * inv_freq are fp32 quantities
// there (part of the semantics), cos/sin and the rotation are taken in float64 here.
// Positions pos_offset + pos_base + row (pos_base: the device-resident base, given by value).
QkvOut qkv_split_rope(const F& qkv, int64_t S, int Hq, int Hkv, int head_dim, int pos_offset,
                      double theta, int pos_base = 0);
// Keys [gap_begin, gap_end) are masked (the device-resident key gap, given by value; p.key_valid
// is ignored here).
D attention(const F& q, const F& k, const F& v, int64_t Sq, int64_t Skv, const AttentionParams& p,
            int64_t gap_begin = 0, int64_t gap_end = 0);
// img [H, W, 3] HWC, w [width, 3, P, P] (OIHW) -> [(H/P)*(W/P), width], + b + pos.
D patch_embed(const F& img, int64_t H, int64_t W, const F& w, int64_t width, int64_t P, const F& b,
              const F& pos);
// u8 [H, W, 3] -> [OH, OW, 3] in [-1, 1] (openpi resize_with_pad_torch + normalization).
D resize_pad_normalize(const std::vector<uint8_t>& src, int H, int W, int OH, int OW);
D embed_gather(const F& table, int64_t cols, const std::vector<int32_t>& ids, double scale);
// openpi create_sinusoidal_pos_embedding for one t (periods as the float64 the caller meant).
D time_embedding(int64_t dim, double t, double min_period, double max_period);
D euler_update(const F& x, const F& v, double dt);

}  // namespace frt::ref
