// Checks and conversions of single request values, shared by the websocket mapping
// (observation_mapping) and the HTTP JSON route (http_json): images (HxWx3 or 3xHxW, uint8 or
// float in [0, 1], size limits), state (finite, the norm stats' length), noise (horizon x
// action_dim, finite) and prompt (UTF-8, at most 64 KiB). Each failure is a RequestError(400)
// whose message starts with the offending key.
// Tests: tests/python/test_server_bad_inputs.py, tests/python/test_server_openpi.py.
#include "server/input_checks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace frt::server {
namespace {

[[noreturn]] void bad(const std::string& message) { throw RequestError(400, message); }

}  // namespace

void check_image_size(int64_t h, int64_t w, const std::string& what) {
  if (h < 1 || w < 1)
    bad(what + ": image is " + std::to_string(h) + "x" + std::to_string(w) +
        "; expected at least 1x1");
  if (h * w > 2048 * 2048)
    bad(what + ": image is " + std::to_string(h) + "x" + std::to_string(w) +
        " pixels; at most 2048*2048 are accepted (the model sees 224x224): downscale it first");
}

ImageBuffer image_from_ndarray(const NdArray& a, const std::string& what, FloatImages floats) {
  std::string shape = "(";
  for (size_t d = 0; d < a.shape.size(); ++d) shape += (d ? ", " : "") + std::to_string(a.shape[d]);
  shape += a.shape.size() == 1 ? ",)" : ")";
  if (a.shape.size() != 3 || (a.shape[2] != 3 && a.shape[0] != 3))
    bad(what + ": image shape " + shape + "; expected (H, W, 3) RGB or (3, H, W)" +
        (a.shape.size() == 2 ? " (grayscale needs 3 channels)" : "") +
        (a.shape.size() == 4 ? " (one image, not a batch)" : ""));
  const bool chw = a.shape[2] != 3;
  const int64_t H = chw ? a.shape[1] : a.shape[0], W = chw ? a.shape[2] : a.shape[1];
  check_image_size(H, W, what);
  const bool is_u8 = a.kind == 'u' && a.itemsize == 1;
  if (!is_u8 && a.kind != 'f')
    bad(what + ": dtype " + a.dtype + "; expected uint8 (|u1) or float32/float64 in [0, 1]");
  ImageBuffer img;
  img.height = static_cast<int32_t>(H);
  img.width = static_cast<int32_t>(W);
  const size_t n = static_cast<size_t>(H * W * 3);
  // Source index of HWC element (y, x, c).
  auto src = [&](int64_t y, int64_t x, int64_t c) {
    return chw ? (c * H + y) * W + x : (y * W + x) * 3 + c;
  };
  if (is_u8) {
    img.u8.resize(n);
    const auto* p = reinterpret_cast<const uint8_t*>(a.data);
    if (!chw)
      std::copy(p, p + n, img.u8.begin());
    else
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x)
          for (int64_t c = 0; c < 3; ++c)
            img.u8[static_cast<size_t>((y * W + x) * 3 + c)] = p[src(y, x, c)];
    return img;
  }
  img.f32.resize(n);
  double lo = INFINITY, hi = -INFINITY;
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < 3; ++c) {
        const double v = element(a, src(y, x, c));
        if (!std::isfinite(v))
          bad(what + ": image holds a non-finite value (" + std::to_string(v) + ")");
        lo = std::min(lo, v), hi = std::max(hi, v);
        img.f32[static_cast<size_t>((y * W + x) * 3 + c)] = static_cast<float>(v);
      }
  if (lo < 0.0 || hi > 1.0) {
    char buf[200];
    std::snprintf(buf, sizeof(buf),
                  ": float image values span [%g, %g]; expected [0, 1] (send uint8 for 0..255; "
                  "[-1, 1] images: (x + 1) / 2)",
                  lo, hi);
    bad(what + buf);
  }
  if (floats == FloatImages::kOpenpiTruncate) {
    // openpi's _parse_image: (255 * image).astype(np.uint8), in the array's own precision
    // (float32 stays float32), truncating toward zero.
    img.u8.resize(n);
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        for (int64_t c = 0; c < 3; ++c) {
          const size_t o = static_cast<size_t>((y * W + x) * 3 + c);
          const double v = element(a, src(y, x, c));
          img.u8[o] = a.itemsize == 4 ? static_cast<uint8_t>(255.0f * static_cast<float>(v))
                                      : static_cast<uint8_t>(255.0 * v);
        }
    img.f32.clear();
  }
  return img;
}

std::vector<float> checked_state(const std::vector<double>& v, const std::string& what,
                                 const ModelShape& model) {
  if (model.state_dim > 0 && static_cast<int>(v.size()) != model.state_dim)
    bad(what + " has " + std::to_string(v.size()) +
        " values; this model's state norm stats cover " + std::to_string(model.state_dim) +
        ", so expected " + std::to_string(model.state_dim));
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i]) || std::fabs(v[i]) > 3.4e38) {
      char num[32];
      std::snprintf(num, sizeof(num), "%g", v[i]);
      bad(what + "[" + std::to_string(i) + "] is " + num +
          "; every state value must be finite (and fit float32)");
    }
    out[i] = static_cast<float>(v[i]);
  }
  return out;
}

std::vector<float> checked_noise(const std::vector<double>& v, const std::string& what,
                                 const ModelShape& model) {
  const size_t need = static_cast<size_t>(model.action_horizon) * model.action_dim;
  if (v.size() != need)
    bad(what + " has " + std::to_string(v.size()) +
        " values; expected action_horizon x action_dim = " + std::to_string(model.action_horizon) +
        "x" + std::to_string(model.action_dim) + " = " + std::to_string(need));
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i]) || std::fabs(v[i]) > 3.4e38)
      bad(what + "[" + std::to_string(i) +
          "] is not finite; noise must be finite standard-normal values");
    out[i] = static_cast<float>(v[i]);
  }
  return out;
}

size_t utf8_sequence(const std::string& s, size_t i) {
  const auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = at(i);
  if (c < 0x80) return 1;
  // Second-byte range per lead byte (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF)
    n = 2;
  else if (c == 0xE0)
    n = 3, lo = 0xA0;
  else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
    n = 3;
  else if (c == 0xED)
    n = 3, hi = 0x9F;
  else if (c == 0xF0)
    n = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3)
    n = 4;
  else if (c == 0xF4)
    n = 4, hi = 0x8F;
  if (n == 0 || i + n > s.size() || at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if ((at(i + k) & 0xC0) != 0x80) return 0;
  return n;
}

std::string utf8_clean(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence(s, i);
    if (n > 0) {
      out.append(s, i, n);
      i += n;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned char>(s[i]));
      out += buf;
      ++i;
    }
  }
  return out;
}

std::string checked_prompt(const std::string& s, const std::string& what) {
  if (s.size() > 65536)
    bad(what + " is " + std::to_string(s.size()) + " bytes; at most 65536 are accepted");
  for (size_t i = 0; i < s.size();) {  // the tokenizer expects text
    const size_t n = utf8_sequence(s, i);
    if (n == 0) bad(what + " is not valid UTF-8 (byte " + std::to_string(i) + ")");
    i += n;
  }
  return s;
}

}  // namespace frt::server
