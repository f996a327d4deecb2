// openpi's prompt formats and tokenization (models/tokenizer.py PaligemmaTokenizer.tokenize).
// Tests: tests/cpp/test_prompt.cpp, tests/python/test_prompt_matches_python.py.
#include "io/prompt.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "core/log.h"
#include "core/status.h"

namespace frt {
namespace {

// Decodes one UTF-8 code point at s[i]; returns its byte length, or 0 if the bytes there are not
// valid UTF-8 (overlong forms, surrogates and values above U+10FFFF included).
size_t utf8_decode(const std::string& s, size_t i, char32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t len;
  char32_t v, min;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    v = c & 0x1F;
    min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    v = c & 0x0F;
    min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    v = c & 0x07;
    min = 0x10000;
  } else {
    return 0;  // a continuation byte or 0xF8..0xFF cannot start a code point
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(i + k) & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return len;
}

// Python's str.isspace(), which str.strip() uses: bidi class WS/B/S or category Zs.
bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// linspace(-1, 1, 257)[:-1]: numpy computes -1 + k * (2/256); every value is k/128 - 1 exactly
// in binary floating point, so these doubles equal numpy's edges bit for bit.
const std::array<double, 256>& state_bin_edges() {
  static const std::array<double, 256> edges = [] {
    std::array<double, 256> e{};
    for (int k = 0; k < 256; ++k) e[k] = -1.0 + k * (2.0 / 256.0);
    return e;
  }();
  return edges;
}

std::string state_string(const std::vector<float>& normalized_state) {
  std::string s;
  const std::vector<int> bins = discretize_state(normalized_state);
  for (size_t i = 0; i < bins.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(bins[i]);
  }
  return s;
}

void require_state(const std::vector<float>* state) {
  if (!state)
    throw_error(Status::kInvalidArgument,
                "prompt: discrete_state_input is on (pi05 puts the robot state into the prompt), "
                "so a state is required; pass the state or turn discrete_state_input off");
}

}  // namespace

std::string clean_prompt(const std::string& text) {
  // Find the first and one-past-last non-whitespace code points (Python's strip()).
  size_t begin = text.size(), end = 0;
  for (size_t i = 0; i < text.size();) {
    char32_t cp;
    const size_t n = utf8_decode(text, i, &cp);
    if (n == 0)
      throw_error(Status::kInvalidArgument, "prompt: not valid UTF-8 at byte ", i,
                  "; expected UTF-8 text");
    if (!py_isspace(cp)) {
      begin = std::min(begin, i);
      end = i + n;
    }
    i += n;
  }
  if (begin >= end) return std::string();
  std::string out = text.substr(begin, end - begin);
  // '_' → ' ' then '\n' → ' ' (both single bytes; UTF-8 continuation bytes never match).
  for (char& c : out)
    if (c == '_' || c == '\n') c = ' ';
  return out;
}

std::vector<int> discretize_state(const std::vector<float>& normalized_state) {
  const auto& edges = state_bin_edges();
  std::vector<int> bins(normalized_state.size());
  for (size_t i = 0; i < normalized_state.size(); ++i) {
    const double x = normalized_state[i];
    if (std::isnan(x))
      throw_error(Status::kInvalidArgument, "prompt: normalized state[", i,
                  "] is NaN; expected a finite value (check the state input and the norm "
                  "stats' q01/q99 or mean/std for that dim)");
    // np.digitize(x, edges) with increasing edges and right=False counts the edges <= x.
    const auto n = std::upper_bound(edges.begin(), edges.end(), x) - edges.begin();
    bins[i] = static_cast<int>(n) - 1;
  }
  return bins;
}

std::string format_prompt(const std::string& prompt, const std::vector<float>* normalized_state,
                          bool discrete_state_input) {
  const std::string clean = clean_prompt(prompt);
  if (discrete_state_input) {
    require_state(normalized_state);
    return "Task: " + clean + ", State: " + state_string(*normalized_state) + ";\nAction: ";
  }
  return clean + "\n";
}

TokenizedPrompt tokenize_prompt(const Tokenizer& tok, const std::string& prompt,
                                const std::vector<float>* normalized_state,
                                bool discrete_state_input, int max_len) {
  if (max_len < 1)
    throw_error(Status::kInvalidArgument, "prompt: max_token_len is ", max_len, "; expected >= 1");
  TokenizedPrompt out;
  out.ids.push_back(tok.bos_id());
  if (discrete_state_input) {
    // pi05: the whole text in one encode with BOS (openpi: encode(full_prompt, add_bos=True)).
    const std::vector<int32_t> body =
        tok.encode(format_prompt(prompt, normalized_state, /*discrete_state_input=*/true));
    out.ids.insert(out.ids.end(), body.begin(), body.end());
  } else {
    // pi0 format: openpi encodes the cleaned text with BOS and then "\n" on its own (its
    // comment: the "\n" is the "start of answer" token). Encoding "clean\n" at once could
    // merge the newline into the last word's piece, so keep the two encodes apart.
    const std::vector<int32_t> body = tok.encode(clean_prompt(prompt));
    const std::vector<int32_t> nl = tok.encode("\n");
    out.ids.insert(out.ids.end(), body.begin(), body.end());
    out.ids.insert(out.ids.end(), nl.begin(), nl.end());
  }
  out.untruncated_length = static_cast<int32_t>(out.ids.size());
  if (out.untruncated_length > max_len) {
    log_warning("prompt: ", out.untruncated_length, " tokens exceed max_token_len ", max_len,
                "; truncated to ", max_len,
                " (the end of the prompt is dropped; raise the max_token_len option if this "
                "happens often)");
    out.ids.resize(static_cast<size_t>(max_len));
    out.truncated = true;
  }
  return out;
}

}  // namespace frt
