// HTTP JSON predict request parsing and reply formatting (see http_json.h).
// Tests: tests/python/test_server_http.py, tests/python/test_server_bad_inputs.py.
#include "server/http_json.h"

#include <stb_image.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/status.h"
#include "io/image.h"

namespace frt::server {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& message) { throw RequestError(400, message); }

const char* kKeys[] = {"prompt", "images", "image_shape", "state", "noise"};

std::string kind(const json& j) { return j.type_name(); }

// Numbers of a JSON array (nested one level for noise); NaN cannot be written in JSON, but
// 1e999 parses to inf, so finiteness is still checked by the callers.
std::vector<double> json_numbers(const json& j, const std::string& what, bool allow_rows) {
  if (!j.is_array()) bad(what + " must be an array of numbers, got " + kind(j));
  std::vector<double> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const json& e = j[i];
    const std::string name = what + "[" + std::to_string(i) + "]";
    if (e.is_number()) {
      out.push_back(e.get<double>());
    } else if (allow_rows && e.is_array()) {
      for (size_t k = 0; k < e.size(); ++k) {
        if (!e[k].is_number())
          bad(name + "[" + std::to_string(k) + "] must be a number, got " + kind(e[k]));
        out.push_back(e[k].get<double>());
      }
    } else {
      bad(name + " must be a number, got " + kind(e));
    }
  }
  return out;
}

ImageBuffer decode_view(const std::vector<uint8_t>& bytes, const std::string& what,
                        const std::vector<int64_t>& shape) {
  ImageBuffer img;
  if (!shape.empty()) {  // raw HxWx3 uint8
    const uint64_t need = static_cast<uint64_t>(shape[0]) * shape[1] * 3;
    if (bytes.size() != need)
      bad(what + ": " + std::to_string(bytes.size()) + " raw bytes; image_shape [" +
          std::to_string(shape[0]) + ", " + std::to_string(shape[1]) + ", 3] needs " +
          std::to_string(need));
    img.height = static_cast<int32_t>(shape[0]);
    img.width = static_cast<int32_t>(shape[1]);
    img.u8 = bytes;
    return img;
  }
  // A file: check the header's size before decoding so a small PNG cannot claim gigabytes.
  int w = 0, h = 0, comp = 0;
  if (bytes.empty() || bytes.size() > static_cast<size_t>(INT32_MAX) ||
      !stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &comp))
    bad(what + ": not a PNG, JPEG or BMP image (" + std::to_string(bytes.size()) +
        " bytes); send an encoded image, or raw HxWx3 uint8 bytes with \"image_shape\"");
  check_image_size(h, w, what);
  try {
    ImageU8 decoded = decode_image(bytes.data(), bytes.size(), what);
    img.height = decoded.height;
    img.width = decoded.width;
    img.u8 = std::move(decoded.pixels);
  } catch (const frt::Error& e) {
    bad(what + ": " + e.what());
  }
  return img;
}

}  // namespace

std::vector<uint8_t> decode_base64(std::string_view text, const std::string& what) {
  if (text.substr(0, 5) == "data:") {  // data URL: keep what follows ";base64,"
    const size_t comma = text.find(',');
    if (comma == std::string_view::npos ||
        text.substr(0, comma).find(";base64") == std::string_view::npos)
      bad(what + ": a data URL must be base64 (\"data:image/png;base64,...\")");
    text.remove_prefix(comma + 1);
  }
  // Symbol values; kSkip: line breaks of wrapped `base64` output, kPad '=', kBad the rest.
  enum : int8_t { kBad = -1, kSkip = -2, kPad = -3 };
  static const auto table = [] {
    std::array<int8_t, 256> t;
    t.fill(kBad);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(alphabet[i])] = static_cast<int8_t>(i);
    t['\n'] = t['\r'] = kSkip;
    t['='] = kPad;
    return t;
  }();
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  std::vector<uint8_t> out(n / 4 * 3 + 3);
  size_t o = 0, i = 0, symbols = 0;
  // Fast path: whole groups of 4 valid symbols (the common, unwrapped case).
  while (i + 4 <= n) {
    const int a = table[p[i]], b = table[p[i + 1]], c = table[p[i + 2]], d = table[p[i + 3]];
    if ((a | b | c | d) < 0) break;
    const uint32_t v = (uint32_t(a) << 18) | (uint32_t(b) << 12) | (uint32_t(c) << 6) | uint32_t(d);
    out[o++] = uint8_t(v >> 16), out[o++] = uint8_t(v >> 8), out[o++] = uint8_t(v);
    i += 4, symbols += 4;
  }
  // Slow path: the tail, padding, line breaks and errors.
  uint32_t acc = 0;
  int bits = 0, pad = 0;
  for (; i < n; ++i) {
    const int v = table[p[i]];
    if (v == kSkip) continue;
    if (v == kPad) {
      ++pad;
      continue;
    }
    if (v == kBad) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "0x%02x", p[i]);
      bad(what + ": invalid base64 character " + buf + " at position " + std::to_string(i));
    }
    if (pad > 0)
      bad(what + ": invalid base64: data after '=' padding at position " + std::to_string(i));
    ++symbols;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = static_cast<uint8_t>((acc >> bits) & 0xff);
    }
  }
  if (symbols % 4 == 1 || pad > 2 || (pad > 0 && (symbols + pad) % 4 != 0))
    bad(what + ": invalid base64: " + std::to_string(symbols) + " symbols and " +
        std::to_string(pad) + " '=' do not make whole bytes (truncated?)");
  out.resize(o);
  return out;
}

InferenceInput parse_predict_json(std::string_view body, const ModelShape& model) {
  json j;
  try {
    j = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {  // syntax errors, and numbers like 1e999 (overflow)
    bad(std::string("bad JSON: ") + e.what());
  }
  if (!j.is_object()) bad("the body must be a JSON object, got " + kind(j));
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (const char* k : kKeys) known = known || key == k;
    if (!known)
      bad("unknown key '" + key + "'; expected prompt, images, image_shape, state, noise");
  }
  InferenceInput in;
  if (j.contains("prompt") && !j["prompt"].is_null()) {
    if (!j["prompt"].is_string()) bad("prompt must be a string, got " + kind(j["prompt"]));
    in.prompt = checked_prompt(j["prompt"].get<std::string>(), "prompt");
  }
  std::vector<int64_t> shape;
  if (j.contains("image_shape") && !j["image_shape"].is_null()) {
    const json& s = j["image_shape"];
    if (!s.is_array() || s.size() != 3 || !s[0].is_number_integer() || !s[1].is_number_integer() ||
        !s[2].is_number_integer())
      bad("image_shape must be [height, width, 3] integers, got " + s.dump().substr(0, 80));
    if (s[2].get<int64_t>() != 3)
      bad("image_shape [H, W, C] has C = " + std::to_string(s[2].get<int64_t>()) +
          "; expected 3 (RGB)");
    shape = {s[0].get<int64_t>(), s[1].get<int64_t>()};
    check_image_size(shape[0], shape[1], "image_shape");
  }
  if (!j.contains("images")) bad("missing key 'images' (a list of base64 images)");
  const json& images = j["images"];
  if (!images.is_array()) bad("images must be a list of base64 strings, got " + kind(images));
  if (images.empty() || static_cast<int>(images.size()) > model.num_views)
    bad("images has " + std::to_string(images.size()) + " entries; this model takes 1.." +
        std::to_string(model.num_views) + " (base, left wrist, right wrist; null = absent)");
  bool any = false;
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string what = "images[" + std::to_string(i) + "]";
    if (images[i].is_null()) {
      in.images.emplace_back();
      continue;
    }
    if (!images[i].is_string())
      bad(what + " must be a base64 string or null, got " + kind(images[i]));
    const std::string& text = images[i].get_ref<const std::string&>();
    in.images.push_back(decode_view(decode_base64(text, what), what, shape));
    any = true;
  }
  if (!any) bad("every image is null; at least the base camera is needed");
  if (j.contains("state") && !j["state"].is_null())
    in.state = checked_state(json_numbers(j["state"], "state", false), "state", model);
  if (j.contains("noise") && !j["noise"].is_null())
    in.noise = checked_noise(json_numbers(j["noise"], "noise", true), "noise", model);
  return in;
}

std::string predict_reply_json(const std::vector<double>& actions, int horizon, int dims,
                               double latency_ms, double queue_ms, double infer_ms) {
  // Written by hand: a 50x32 chunk through nlohmann's DOM costs more than the rest of the reply.
  std::string s = "{\"actions\":[";
  char buf[32];
  for (int h = 0; h < horizon; ++h) {
    s += h ? ",[" : "[";
    for (int d = 0; d < dims; ++d) {
      std::snprintf(buf, sizeof(buf), d ? ",%.9g" : "%.9g",
                    actions[static_cast<size_t>(h) * dims + d]);
      s += buf;
    }
    s += ']';
  }
  s += "],\"shape\":[" + std::to_string(horizon) + "," + std::to_string(dims) + "]";
  std::snprintf(buf, sizeof(buf), ",\"latency_ms\":%.4f", latency_ms);
  s += buf;
  std::snprintf(buf, sizeof(buf), ",\"queue_ms\":%.4f", queue_ms);
  s += buf;
  std::snprintf(buf, sizeof(buf), ",\"infer_ms\":%.4f}", infer_ms);
  s += buf;
  return s;
}

std::string error_json(int status, const std::string& message) {
  return json{{"error", message}, {"status", status}}.dump(-1, ' ', false,
                                                           json::error_handler_t::replace);
}

}  // namespace frt::server
