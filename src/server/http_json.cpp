// HTTP JSON predict request parsing and reply formatting (see http_json.h).
// Tests: tests/python/test_server_http.py, tests/python/test_server_bad_inputs.py.
#include "server/http_json.h"

#include <stb_image.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/status.h"
#include "io/image.h"

namespace frt::server {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& message) { throw RequestError(400, message); }

const char* kKeys[] = {"prompt", "images", "image_shape", "state", "noise"};

std::string kind(const json& j) { return j.type_name(); }

// A value for an error message: its JSON text (80 characters at most) when it nests no deeper
// than one level, else its type; nlohmann's dump() recurses, and a body nesting millions of
// arrays would overflow the stack and kill the server.
std::string preview(const json& j) {
  if (j.is_structured())
    for (const json& e : j)
      if (e.is_structured()) return "a nested " + kind(j);
  return j.dump(-1, ' ', false, json::error_handler_t::replace).substr(0, 80);
}

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

ImageBuffer decode_view(std::vector<uint8_t>&& bytes, const std::string& what,
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
    img.u8 = std::move(bytes);  // a copy here cost as much as the decoding
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

// ---- Fast, still strict, JSON parsing of bodies dominated by long base64 strings -----------
// nlohmann's lexer handles about 150 MB/s: 2.9 ms for the ~400 KB of a 2-view 224x224 raw
// request, 90% of the server's own cost. Almost all of it is spent on a few long strings whose
// bytes are plain printable ASCII without escapes, which need no decoding and are valid JSON
// strings as they stand. So: find such string *values* (memchr + one vectorizable pass),
// replace each by a short placeholder "\u0000<index>" in a copy of the remaining few KB, let
// nlohmann parse and validate that skeleton, and put the original strings back. The lexer
// sees the same token sequence (every byte before a replaced string is unchanged, and the
// replaced token was a complete valid string), so the skeleton parses iff the body does and
// gives the same document; on any error the original body is parsed again for nlohmann's own
// message and position. No string of a body with a "\u0000" escape can be told apart from a
// placeholder, so such bodies take the plain path.

constexpr size_t kLongString = 1024;  // shorter strings cost nlohmann little: leave them

// True when [p, p + n) holds only printable ASCII other than '\\' (no escapes, no control
// bytes, no UTF-8 to validate). Branch-free over the range so the compiler vectorizes it.
bool plain_ascii(const uint8_t* p, size_t n) {
  uint8_t odd = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t c = p[i];
    odd |= static_cast<uint8_t>((c < 0x20) | (c >= 0x80) | (c == '\\'));
  }
  return odd == 0;
}

// Index just past the closing quote of the string whose content starts at `i`, or npos when
// it is not terminated (invalid JSON: nlohmann will say so).
size_t string_end(std::string_view s, size_t i) {
  for (; i < s.size(); ++i) {
    if (s[i] == '\\') ++i;
    else if (s[i] == '"') return i + 1;
  }
  return std::string_view::npos;
}

// Restores the long strings cut out of the skeleton (placeholders: NUL + decimal index).
// Iterative: a body may nest arrays a million deep, which recursion would not survive.
void restore_strings(json& root, const std::vector<std::string_view>& cut) {
  std::vector<json*> todo{&root};
  while (!todo.empty()) {
    json& j = *todo.back();
    todo.pop_back();
    if (j.is_structured()) {
      for (auto& e : j) todo.push_back(&e);
    } else if (j.is_string()) {
      const std::string& t = j.get_ref<const std::string&>();
      if (t.size() < 2 || t[0] != '\0') continue;
      const size_t k = std::stoul(t.substr(1));
      if (k < cut.size()) j = std::string(cut[k]);
    }
  }
}

json parse_json(std::string_view body) {
  auto parse_plain = [&] {
    try {
      return json::parse(body.begin(), body.end());
    } catch (const json::exception& e) {  // syntax errors, and numbers like 1e999 (overflow)
      bad(std::string("bad JSON: ") + e.what());
    }
  };
  if (body.find("\\u0000") != std::string_view::npos) return parse_plain();
  std::string skeleton;
  std::vector<std::string_view> cut;
  size_t copied = 0, i = 0;
  while (true) {
    const void* q = std::memchr(body.data() + i, '"', body.size() - i);
    if (!q) break;
    const size_t open = static_cast<size_t>(static_cast<const char*>(q) - body.data());
    const void* c = std::memchr(body.data() + open + 1, '"', body.size() - open - 1);
    if (!c) break;  // unterminated: the plain parse reports it
    size_t close = static_cast<size_t>(static_cast<const char*>(c) - body.data());
    const size_t len = close - open - 1;
    const bool plain = plain_ascii(reinterpret_cast<const uint8_t*>(body.data()) + open + 1, len);
    if (!plain) {  // escapes (the quote found may be one), control bytes or UTF-8: skip it
      i = string_end(body, open + 1);
      if (i == std::string_view::npos) break;
      continue;
    }
    i = close + 1;
    size_t next = i;  // a key (followed by ':') stays, so error messages can name it
    while (next < body.size() && (body[next] == ' ' || body[next] == '\t' ||
                                  body[next] == '\n' || body[next] == '\r'))
      ++next;
    if (len < kLongString || (next < body.size() && body[next] == ':')) continue;
    if (skeleton.empty()) skeleton.reserve(4096);
    skeleton.append(body.substr(copied, open - copied));
    skeleton += "\"\\u0000" + std::to_string(cut.size()) + '"';
    cut.push_back(body.substr(open + 1, len));
    copied = i;
  }
  if (cut.empty()) return parse_plain();
  skeleton.append(body.substr(copied));
  json j;
  try {
    j = json::parse(skeleton);
  } catch (const json::exception&) {
    return parse_plain();  // the same error, reported at its place in the body
  }
  restore_strings(j, cut);
  return j;
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
  // The symbol tables again, each value pre-shifted to its place in a group's 24 bits and
  // every non-symbol with bit 31 set: one OR of four lookups decodes and checks a group
  // (1.8x the speed of combining the table above, 0.06 ms per 224x224x3 image).
  static const auto shifted = [] {
    std::array<std::array<uint32_t, 256>, 4> s;
    for (int k = 0; k < 4; ++k)
      for (int c = 0; c < 256; ++c)
        s[k][c] = table[c] >= 0 ? uint32_t(table[c]) << (18 - 6 * k) : 0x80000000u;
    return s;
  }();
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  std::vector<uint8_t> out(n / 4 * 3 + 3);
  uint8_t* dst = out.data();
  size_t o = 0, i = 0;
  // Fast path: whole groups of 4 valid symbols (the common, unwrapped case).
  while (i + 4 <= n) {
    const uint32_t v = shifted[0][p[i]] | shifted[1][p[i + 1]] | shifted[2][p[i + 2]] |
                       shifted[3][p[i + 3]];
    if (v & 0x80000000u) break;
    dst[o] = uint8_t(v >> 16), dst[o + 1] = uint8_t(v >> 8), dst[o + 2] = uint8_t(v);
    i += 4, o += 3;
  }
  size_t symbols = i;
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
  json j = parse_json(body);
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
      bad("image_shape must be [height, width, 3] integers, got " + preview(s));
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
