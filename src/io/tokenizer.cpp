// The PaliGemma tokenizer: lookup of paligemma_tokenizer.model, a thin wrapper over
// sentencepiece::SentencePieceProcessor, and train_tiny_tokenizer() for synthetic checkpoints.
// Tests: tests/cpp/test_tokenizer.cpp.
#include "io/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <unordered_map>

#include "core/status.h"

namespace frt {
namespace fs = std::filesystem;

namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

bool is_file(const std::string& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// A path the user named (option or env var) must exist: falling through to another file would
// silently run with a tokenizer they did not ask for.
void require_named_file(const std::string& p, const std::string& what) {
  if (is_file(p)) return;
  std::error_code ec;
  const char* why = fs::is_directory(p, ec) ? "is a directory" : "does not exist";
  throw_error(Status::kNotFound, "tokenizer: ", what, " '", p, "' ", why,
              "; expected the PaliGemma SentencePiece file (", kTokenizerFileName,
              "). Fix the path, or unset it to search the default places");
}

std::string join_path(const std::string& dir, const std::string& rel) {
  return (fs::path(dir) / rel).string();
}

}  // namespace

std::vector<std::string> tokenizer_candidates(const std::string& explicit_path,
                                              const std::string& checkpoint_dir) {
  std::vector<std::string> out;
  if (!explicit_path.empty()) out.push_back(explicit_path);
  const std::string env = env_or_empty(kTokenizerEnvVar);
  if (!env.empty()) out.push_back(env);
  if (!checkpoint_dir.empty()) out.push_back(join_path(checkpoint_dir, kTokenizerFileName));
  const std::string home = env_or_empty("HOME");
  if (!home.empty()) {
    out.push_back(join_path(home, std::string(".cache/flash_rt/") + kTokenizerFileName));
    // Where openpi's download.maybe_download caches gs://big_vision/paligemma_tokenizer.model.
    out.push_back(join_path(home, std::string(".cache/openpi/big_vision/") + kTokenizerFileName));
  }
  return out;
}

std::string find_tokenizer(const std::string& explicit_path, const std::string& checkpoint_dir) {
  if (!explicit_path.empty()) {
    require_named_file(explicit_path, "tokenizer_path");
    return explicit_path;
  }
  const std::string env = env_or_empty(kTokenizerEnvVar);
  if (!env.empty()) {
    require_named_file(env, std::string("$") + kTokenizerEnvVar);
    return env;
  }
  const std::vector<std::string> places = tokenizer_candidates("", checkpoint_dir);
  for (const std::string& p : places)
    if (is_file(p)) return p;

  std::ostringstream msg;
  msg << "tokenizer: the PaliGemma tokenizer (" << kTokenizerFileName
      << ") was not found; looked in:\n";
  for (const std::string& p : places) msg << "  " << p << "\n";
  if (places.empty()) msg << "  (nowhere: no checkpoint directory and $HOME is unset)\n";
  msg << "(no tokenizer_path given; $" << kTokenizerEnvVar << " is not set"
      << (env_or_empty("HOME").empty() ? "; $HOME is not set" : "") << ")\n"
      << "It is the PaliGemma SentencePiece model that openpi downloads from "
         "gs://big_vision/paligemma_tokenizer.model (cached as "
         "~/.cache/openpi/big_vision/paligemma_tokenizer.model); `pip install sentencepiece` "
         "does NOT include it. Copy it to one of the places above, pass tokenizer_path, or set "
      << kTokenizerEnvVar << ". Synthetic checkpoints from `flashrt make-checkpoint` include one.";
  throw Error(Status::kNotFound, msg.str());
}

// ------------------------------------------------------------------------------------ Tokenizer

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

Tokenizer::Tokenizer(const std::string& model_path) : path_(model_path), impl_(new Impl) {
  if (!is_file(model_path))
    throw_error(Status::kNotFound, "tokenizer: '", model_path,
                "' does not exist or is not a file; expected ", kTokenizerFileName);
  std::ifstream f(model_path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (!f.good() && !f.eof())
    throw_error(Status::kIoError, "tokenizer: cannot read '", model_path, "'");
  if (bytes.empty())
    throw_error(Status::kIoError, "tokenizer: '", model_path,
                "' is empty; expected a SentencePiece model (", kTokenizerFileName, ")");
  const auto st = impl_->sp.LoadFromSerializedProto(bytes);
  if (!st.ok())
    throw_error(Status::kIoError, "tokenizer: '", model_path,
                "' is not a valid SentencePiece model (", st.ToString(), "); expected ",
                kTokenizerFileName, " as openpi uses it");
  if (impl_->sp.bos_id() < 0)
    throw_error(Status::kIoError, "tokenizer: '", model_path,
                "' defines no BOS piece; expected a PaliGemma-style model (bos_id 2)");
}

Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  const auto st = impl_->sp.Encode(text, &ids);
  if (!st.ok())
    throw_error(Status::kInvalidArgument, "tokenizer: cannot encode the text (", st.ToString(),
                ")");
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  const int32_t n = vocab_size();
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= n)
      throw_error(Status::kInvalidArgument, "tokenizer: decode: ids[", i, "] = ", ids[i],
                  "; expected 0 <= id < vocab size ", n);
  std::string out;
  const auto st = impl_->sp.Decode(std::vector<int>(ids.begin(), ids.end()), &out);
  if (!st.ok())
    throw_error(Status::kInvalidArgument, "tokenizer: cannot decode (", st.ToString(), ")");
  return out;
}

int32_t Tokenizer::bos_id() const { return impl_->sp.bos_id(); }
int32_t Tokenizer::eos_id() const { return impl_->sp.eos_id(); }
int32_t Tokenizer::vocab_size() const { return impl_->sp.GetPieceSize(); }

std::string Tokenizer::id_to_piece(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw_error(Status::kInvalidArgument, "tokenizer: id ", id, " out of range [0, ", vocab_size(),
                ")");
  return impl_->sp.IdToPiece(id);
}

// ------------------------------------------------------------------------- train_tiny_tokenizer

namespace {

class VectorSentences : public sentencepiece::SentenceIterator {
 public:
  explicit VectorSentences(const std::vector<std::string>& v) : v_(v) {}
  bool done() const override { return i_ >= v_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return v_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& v_;
  size_t i_ = 0;
};

}  // namespace

void train_tiny_tokenizer(const std::string& out_path, int vocab_size) {
  // 4 special pieces + 256 byte-fallback pieces + the corpus' characters must fit.
  constexpr int kMinVocab = 384;
  if (vocab_size < kMinVocab || vocab_size > 262144)
    throw_error(Status::kInvalidArgument, "train_tiny_tokenizer: vocab_size ", vocab_size,
                "; expected ", kMinVocab,
                " .. 262144 (4 special + 256 byte pieces + the "
                "corpus characters must fit)");
  // Settings chosen to behave like PaliGemma's (Gemma's) tokenizer where it matters here:
  //  - ids pad 0, eos 1, bos 2, unk 3 and Gemma's piece names;
  //  - BPE with byte fallback: any UTF-8 text encodes without <unk>;
  //  - identity normalization, no dummy prefix, whitespace kept: Gemma's normalizer spec.
  //    With the default nmt_nfkc rule "\n" would become a space, and ";\nAction: " would
  //    lose the newline that openpi's prompt formats rely on;
  //  - digits split one per piece, as Gemma does;
  //  - one thread, no sampling or shuffling: the same bytes every run.
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab_size)},
      {"character_coverage", "1.0"},
      {"byte_fallback", "true"},
      {"split_digits", "true"},
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"normalization_rule_name", "identity"},
      {"pad_id", "0"},
      {"eos_id", "1"},
      {"bos_id", "2"},
      {"unk_id", "3"},
      {"pad_piece", "<pad>"},
      {"eos_piece", "<eos>"},
      {"bos_piece", "<bos>"},
      {"unk_piece", "<unk>"},
      {"hard_vocab_limit", "false"},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"num_threads", "1"},
      {"minloglevel", "2"},
  };
  const std::vector<std::string> corpus = detail::tiny_tokenizer_corpus();
  VectorSentences it(corpus);
  std::string proto;
  const auto st = sentencepiece::SentencePieceTrainer::Train(args, &it, &proto);
  if (!st.ok())
    throw_error(Status::kInternal, "train_tiny_tokenizer: sentencepiece training failed (",
                st.ToString(), ") for vocab_size ", vocab_size);

  sentencepiece::SentencePieceProcessor check;
  FRT_CHECK(check.LoadFromSerializedProto(proto).ok(), "the trained model does not load");
  FRT_CHECK(check.GetPieceSize() <= vocab_size, "trained ", check.GetPieceSize(),
            " pieces for vocab_size ", vocab_size);

  // Write next to the target, then rename: a reader never sees half a model.
  const std::string tmp = out_path + ".tmp" + std::to_string(getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw_error(Status::kIoError, "train_tiny_tokenizer: cannot write '", tmp, "'");
    f.write(proto.data(), static_cast<std::streamsize>(proto.size()));
    if (!f) throw_error(Status::kIoError, "train_tiny_tokenizer: write to '", tmp, "' failed");
  }
  std::error_code ec;
  fs::rename(tmp, out_path, ec);
  if (ec)
    throw_error(Status::kIoError, "train_tiny_tokenizer: cannot rename '", tmp, "' to '", out_path,
                "' (", ec.message(), ")");
}

}  // namespace frt
