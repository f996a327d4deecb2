// PaliGemma SentencePiece tokenizer (the real sentencepiece library) and the lookup of its model
// file. Lookup order: explicit path, $FLASH_RT_PALIGEMMA_TOKENIZER,
// <checkpoint>/paligemma_tokenizer.model, ~/.cache/flash_rt/paligemma_tokenizer.model,
// ~/.cache/openpi/big_vision/paligemma_tokenizer.model. Not found → kNotFound listing every
// place looked and how to obtain the file. An explicit path or an env value that does not exist
// is an error of its own (never silently skipped).
// Tests: tests/cpp/test_tokenizer.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace frt {

inline constexpr const char* kTokenizerFileName = "paligemma_tokenizer.model";
inline constexpr const char* kTokenizerEnvVar = "FLASH_RT_PALIGEMMA_TOKENIZER";

// Returns the first existing candidate; throws kNotFound with the full list otherwise.
std::string find_tokenizer(const std::string& explicit_path, const std::string& checkpoint_dir);
// The candidate list in lookup order (for messages and `inspect`). Places that do not apply
// (no explicit path, env unset, no checkpoint dir, $HOME unset) are left out.
std::vector<std::string> tokenizer_candidates(const std::string& explicit_path,
                                              const std::string& checkpoint_dir);

class Tokenizer {
 public:
  // Throws kNotFound if the file is missing, kIoError if it is not a valid SentencePiece model.
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  std::vector<int32_t> encode(const std::string& text) const;  // no BOS/EOS
  std::string decode(const std::vector<int32_t>& ids) const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  int32_t vocab_size() const;
  std::string id_to_piece(int32_t id) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Trains a small SentencePiece model (for tiny synthetic checkpoints) on a built-in robot-task
// corpus; writes <out_path>. The result has at most vocab_size pieces (checked), so
// vocab_size must be <= the checkpoint's embedding rows. Deterministic: the same bytes every run.
void train_tiny_tokenizer(const std::string& out_path, int vocab_size);

namespace detail {
// The built-in training sentences (src/io/tiny_tokenizer_corpus.cpp).
std::vector<std::string> tiny_tokenizer_corpus();
}  // namespace detail

}  // namespace frt
