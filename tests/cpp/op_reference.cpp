// Naive float64 references of the backend ops (see op_reference.h). Deliberately the most
// direct loops of each formula: no blocking, no shared code with src/backend/cpu. Exercised by
// tests/cpp/test_cpu_ops.cpp through the cases in tests/cpp/op_cases_*.cpp.
#include "op_reference.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace frt::ref {

double gelu_tanh(double x) {
  const double k = std::sqrt(2.0 / std::numbers::pi);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

double activate(Activation act, double x) {
  if (act == Activation::kGeluTanh) return gelu_tanh(x);
  if (act == Activation::kSilu) return silu(x);
  return x;
}

D linear(const F& x, const F& w, const F* bias, int64_t M, int64_t N, int64_t K, Activation act,
         const F* y0) {
  D y(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = bias ? (*bias)[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(x[m * K + k]) * w[n * K + k];
      y[m * N + n] = activate(act, s) + (y0 ? (*y0)[m * N + n] : 0.0);
    }
  return y;
}

D fused_linear(const F& x, const F& w, LinearPrologue::Kind pro, const F& scale, const F& shift,
               double eps, const F* gate, int64_t M, int64_t N, int64_t K, const F* y0) {
  using Kind = LinearPrologue::Kind;
  const int64_t xc = pro == Kind::kGeglu ? 2 * K : K;
  D a(static_cast<size_t>(M * K));  // pro(x), float64
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x.data() + m * xc;
    double ms = 0;
    for (int64_t k = 0; k < K; ++k) ms += static_cast<double>(xr[k]) * xr[k];
    const double inv = 1.0 / std::sqrt(ms / static_cast<double>(K) + eps);
    for (int64_t k = 0; k < K; ++k) {
      double v = xr[k];
      if (pro == Kind::kRmsNorm) v = xr[k] * inv * scale[k];
      if (pro == Kind::kAdaRmsNorm) v = xr[k] * inv * (1.0 + scale[k]) + shift[k];
      if (pro == Kind::kGeglu) v = gelu_tanh(xr[k]) * xr[K + k];
      a[m * K + k] = v;
    }
  }
  D y(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += a[m * K + k] * w[n * K + k];
      y[m * N + n] = (gate ? (*gate)[n] : 1.0) * s + (y0 ? (*y0)[m * N + n] : 0.0);
    }
  return y;
}

D layer_norm(const F& x, const F& w, const F& b, int64_t M, int64_t cols, double eps) {
  D y(x.size());
  for (int64_t m = 0; m < M; ++m) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c) mean += x[m * cols + c];
    mean /= static_cast<double>(cols);
    for (int64_t c = 0; c < cols; ++c) var += std::pow(x[m * cols + c] - mean, 2);
    var /= static_cast<double>(cols);
    for (int64_t c = 0; c < cols; ++c)
      y[m * cols + c] = (x[m * cols + c] - mean) / std::sqrt(var + eps) * w[c] + b[c];
  }
  return y;
}

namespace {
// y = x / sqrt(mean(x^2) + eps) per row of a packed float64 matrix.
D rms_normalize(const D& x, int64_t M, int64_t cols, double eps) {
  D y(x.size());
  for (int64_t m = 0; m < M; ++m) {
    double ms = 0;
    for (int64_t c = 0; c < cols; ++c) ms += x[m * cols + c] * x[m * cols + c];
    ms /= static_cast<double>(cols);
    for (int64_t c = 0; c < cols; ++c) y[m * cols + c] = x[m * cols + c] / std::sqrt(ms + eps);
  }
  return y;
}
}  // namespace

NormOut add_rms_norm(const F& x, const F* delta, const F& scale, int64_t M, int64_t cols,
                     double eps) {
  NormOut out;
  out.x.resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) out.x[i] = x[i] + (delta ? (*delta)[i] : 0.0);
  out.y = rms_normalize(out.x, M, cols, eps);
  for (size_t i = 0; i < x.size(); ++i) out.y[i] *= scale[i % cols];
  return out;
}

NormOut add_ada_rms_norm(const F& x, const F* delta, const F* gate, const F& mod_scale,
                         const F& mod_shift, int64_t M, int64_t cols, double eps) {
  NormOut out;
  out.x.resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double g = gate ? (*gate)[i % cols] : 1.0;
    out.x[i] = x[i] + (delta ? g * (*delta)[i] : 0.0);
  }
  out.y = rms_normalize(out.x, M, cols, eps);
  for (size_t i = 0; i < x.size(); ++i)
    out.y[i] = out.y[i] * (1.0 + mod_scale[i % cols]) + mod_shift[i % cols];
  return out;
}

D gated_add(const F& x, const F& delta, const F& gate, int64_t M, int64_t cols) {
  D y(x.size());
  for (int64_t i = 0; i < M * cols; ++i)
    y[i] = x[i] + static_cast<double>(gate[i % cols]) * delta[i];
  return y;
}

D geglu(const F& gate_up, int64_t S, int64_t Fdim) {
  D y(static_cast<size_t>(S * Fdim));
  for (int64_t s = 0; s < S; ++s)
    for (int64_t f = 0; f < Fdim; ++f)
      y[s * Fdim + f] = gelu_tanh(gate_up[s * 2 * Fdim + f]) * gate_up[s * 2 * Fdim + Fdim + f];
  return y;
}

D activation(const F& x, Activation act) {
  D y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = activate(act, x[i]);
  return y;
}

QkvOut qkv_split_rope(const F& qkv, int64_t S, int Hq, int Hkv, int head_dim, int pos_offset,
                      double theta, int pos_base) {
  const int64_t Dh = head_dim, width = (Hq + 2 * Hkv) * Dh;
  QkvOut out;
  out.q.resize(static_cast<size_t>(S * Hq * Dh));
  out.k.resize(static_cast<size_t>(S * Hkv * Dh));
  out.v.resize(out.k.size());
  for (int64_t s = 0; s < S; ++s) {
    // One head: value j of the rotated head = x[j] cos(a_j) + rotate_half(x)[j] sin(a_j), where
    // a_j uses frequency index j mod D/2 and rotate_half(x) = [-x[D/2:], x[:D/2]].
    auto rope = [&](const float* x, double* o) {
      for (int64_t j = 0; j < Dh; ++j) {
        if (theta == 0) {
          o[j] = x[j];
          continue;
        }
        const int64_t i = j % (Dh / 2);
        const float inv_freq = static_cast<float>(std::pow(theta, -2.0 * i / Dh));
        const double angle = static_cast<float>(static_cast<float>(pos_offset + pos_base + s) * inv_freq);
        const double rot = j < Dh / 2 ? -static_cast<double>(x[j + Dh / 2]) : x[j - Dh / 2];
        o[j] = x[j] * std::cos(angle) + rot * std::sin(angle);
      }
    };
    const float* row = qkv.data() + s * width;
    for (int h = 0; h < Hq; ++h) rope(row + h * Dh, out.q.data() + (s * Hq + h) * Dh);
    for (int h = 0; h < Hkv; ++h) {
      rope(row + (Hq + h) * Dh, out.k.data() + (s * Hkv + h) * Dh);
      for (int64_t j = 0; j < Dh; ++j) out.v[(s * Hkv + h) * Dh + j] = row[(Hq + Hkv + h) * Dh + j];
    }
  }
  return out;
}

D attention(const F& q, const F& k, const F& v, int64_t Sq, int64_t Skv, const AttentionParams& p,
            int64_t gap_begin, int64_t gap_end) {
  const int64_t Dh = p.head_dim, qw = p.num_q_heads * Dh, kw = p.num_kv_heads * Dh;
  const int64_t first_hidden_key = Skv - (Sq - p.blind_rows);
  D out(static_cast<size_t>(Sq * qw));
  std::vector<double> logits(static_cast<size_t>(Skv));
  for (int h = 0; h < p.num_q_heads; ++h) {
    const int kvh = h / (p.num_q_heads / p.num_kv_heads);
    for (int64_t i = 0; i < Sq; ++i) {
      double mx = -INFINITY;
      for (int64_t j = 0; j < Skv; ++j) {
        const bool masked = (p.blind_rows > 0 && i < p.blind_rows && j >= first_hidden_key) ||
                            (j >= gap_begin && j < gap_end);
        double s = 0;
        for (int64_t d = 0; d < Dh; ++d)
          s += static_cast<double>(q[i * qw + h * Dh + d]) * k[j * kw + kvh * Dh + d];
        logits[j] = masked ? -INFINITY : s * p.scale;
        mx = std::max(mx, logits[j]);
      }
      double z = 0;
      for (int64_t j = 0; j < Skv; ++j) z += std::exp(logits[j] - mx);
      for (int64_t d = 0; d < Dh; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < Skv; ++j)
          acc += std::exp(logits[j] - mx) / z * v[j * kw + kvh * Dh + d];
        out[i * qw + h * Dh + d] = acc;
      }
    }
  }
  return out;
}

D patch_embed(const F& img, int64_t H, int64_t W, const F& w, int64_t width, int64_t P, const F& b,
              const F& pos) {
  const int64_t gh = H / P, gw = W / P;
  D out(static_cast<size_t>(gh * gw * width));
  for (int64_t py = 0; py < gh; ++py)
    for (int64_t px = 0; px < gw; ++px)
      for (int64_t o = 0; o < width; ++o) {
        const int64_t n = py * gw + px;
        double s = b[o];
        for (int64_t c = 0; c < 3; ++c)
          for (int64_t ky = 0; ky < P; ++ky)
            for (int64_t kx = 0; kx < P; ++kx)
              s += static_cast<double>(w[((o * 3 + c) * P + ky) * P + kx]) *
                   img[((py * P + ky) * W + (px * P + kx)) * 3 + c];
        out[n * width + o] = s + pos[n * width + o];
      }
  return out;
}

D resize_pad_normalize(const std::vector<uint8_t>& src, int H, int W, int OH, int OW) {
  const double ratio = std::max(static_cast<double>(W) / OW, static_cast<double>(H) / OH);
  const int rh = static_cast<int>(H / ratio), rw = static_cast<int>(W / ratio);
  const int top = (OH - rh) / 2, left = (OW - rw) / 2;
  // torch area_pixel_compute_source_index, align_corners=False, scale = in / out. The source
  // coordinate is an fp32 value in torch (and in openpi's model), so it is formed in fp32 here
  // too; everything after it is fp64.
  auto source = [](int dst, int in, int out_size, int* i0, int* i1, double* l1) {
    const float scale = static_cast<float>(in) / static_cast<float>(out_size);
    const double src = std::max(scale * (static_cast<float>(dst) + 0.5f) - 0.5f, 0.0f);
    *i0 = static_cast<int>(std::floor(src));
    *i1 = std::min(*i0 + 1, in - 1);
    *l1 = src - *i0;
  };
  D out(static_cast<size_t>(OH) * OW * 3, -1.0);  // padding value of the float branch
  for (int y = 0; y < rh; ++y) {
    int y0, y1, x0, x1;
    double ly, lx;
    source(y, H, rh, &y0, &y1, &ly);
    for (int x = 0; x < rw; ++x) {
      source(x, W, rw, &x0, &x1, &lx);
      for (int c = 0; c < 3; ++c) {
        // Normalize first (openpi's model path), then bilinear on floats, clamp, no rounding.
        auto px = [&](int yy, int xx) {
          return static_cast<double>(src[(yy * W + xx) * 3 + c]) / 255.0 * 2.0 - 1.0;
        };
        const double v = (1 - ly) * (1 - lx) * px(y0, x0) + (1 - ly) * lx * px(y0, x1) +
                         ly * (1 - lx) * px(y1, x0) + ly * lx * px(y1, x1);
        out[((static_cast<size_t>(y) + top) * OW + x + left) * 3 + c] = std::clamp(v, -1.0, 1.0);
      }
    }
  }
  return out;
}

D embed_gather(const F& table, int64_t cols, const std::vector<int32_t>& ids, double scale) {
  D out;
  for (int32_t id : ids)
    for (int64_t c = 0; c < cols; ++c) out.push_back(table[id * cols + c] * scale);
  return out;
}

D time_embedding(int64_t dim, double t, double min_period, double max_period) {
  const int64_t half = dim / 2;
  D out(static_cast<size_t>(dim));
  for (int64_t i = 0; i < half; ++i) {
    const double fraction = half > 1 ? static_cast<double>(i) / (half - 1) : 0.0;
    const double period = min_period * std::pow(max_period / min_period, fraction);
    const double angle = 2.0 * std::numbers::pi * t / period;
    out[i] = std::sin(angle);
    out[half + i] = std::cos(angle);
  }
  return out;
}

D euler_update(const F& x, const F& v, double dt) {
  D out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] + dt * v[i];
  return out;
}

}  // namespace frt::ref
