// Prompt formatting and tokenization exactly as openpi does it (src/openpi/models/tokenizer.py,
// PaligemmaTokenizer.tokenize, called by transforms.py TokenizePrompt):
//  - cleaning: Python str.strip() (Unicode whitespace), then '_' → ' ', then '\n' → ' ';
//  - pi05 with discrete state: "Task: {clean}, State: {bins};\nAction: " where bins are
//    digitize(state, linspace(-1, 1, 257)[:-1]) - 1 of the normalized state, space separated,
//    encoded in one piece with BOS;
//  - otherwise (pi0, or pi05_libero with discrete_state_input off): encode(clean) with BOS, then
//    encode("\n") appended (two separate encodes, as openpi does);
//  - truncated to max_len with a warning through the logger. No padding here.
// Tests: tests/cpp/test_prompt.cpp, tests/python/test_prompt_matches_python.py.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/tokenizer.h"

namespace frt {

// Throws kInvalidArgument if the prompt is not valid UTF-8 (openpi only ever sees Python str).
std::string clean_prompt(const std::string& text);
// The 256 bins of the normalized state: np.digitize semantics, so a value exactly on a bin edge
// belongs to the bin that starts there; values below -1 (and -inf) give -1, values >= 1 - 1/128
// (and +inf) give 255. NaN throws kInvalidArgument naming the index (openpi would give 255).
std::vector<int> discretize_state(const std::vector<float>& normalized_state);
// The text that is tokenized (after cleaning), for tests and `--verbose`. For the plain format
// it is clean + "\n", although the two parts are encoded separately.
std::string format_prompt(const std::string& prompt, const std::vector<float>* normalized_state,
                          bool discrete_state_input);

struct TokenizedPrompt {
  std::vector<int32_t> ids;  // valid tokens only (BOS first), length <= max_len
  bool truncated = false;
  int32_t untruncated_length = 0;
};
// discrete_state_input requires normalized_state (kInvalidArgument otherwise); without it the
// state is ignored, as openpi's TokenizePrompt does.
TokenizedPrompt tokenize_prompt(const Tokenizer& tok, const std::string& prompt,
                                const std::vector<float>* normalized_state,
                                bool discrete_state_input, int max_len);

}  // namespace frt
