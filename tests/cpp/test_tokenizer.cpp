// Tests of src/io/tokenizer.{h,cpp} and src/io/tiny_tokenizer_corpus.cpp: the lookup order of
// paligemma_tokenizer.model (explicit path, env var, checkpoint dir, two $HOME caches), the
// not-found message, loading errors, and the tiny trained tokenizer (settings, round trip,
// determinism, speed).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cpp/test_util.h"
#include "core/status.h"
#include "io/tokenizer.h"

namespace fs = std::filesystem;

namespace {

void write_file(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f << bytes;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Saves HOME and the tokenizer env var, restores them afterwards: other tests share the process.
class TokenizerLookup : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"HOME", frt::kTokenizerEnvVar}) {
      const char* v = std::getenv(name);
      saved_.push_back({name, v ? std::optional<std::string>(v) : std::nullopt});
    }
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    root_ = frt::test::fresh_test_dir("tok_" + test);
    home_ = root_ / "home";
    ckpt_ = root_ / "ckpt";
    fs::create_directories(home_);
    fs::create_directories(ckpt_);
    setenv("HOME", home_.c_str(), 1);
    unsetenv(frt::kTokenizerEnvVar);
  }
  void TearDown() override {
    for (auto& [name, v] : saved_) {
      if (v)
        setenv(name.c_str(), v->c_str(), 1);
      else
        unsetenv(name.c_str());
    }
    fs::remove_all(root_);
  }
  fs::path flash_cache() const { return home_ / ".cache/flash_rt/paligemma_tokenizer.model"; }
  fs::path openpi_cache() const {
    return home_ / ".cache/openpi/big_vision/paligemma_tokenizer.model";
  }
  fs::path in_ckpt() const { return ckpt_ / "paligemma_tokenizer.model"; }

  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
  fs::path root_, home_, ckpt_;
};

frt::Error catch_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const frt::Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected an frt::Error";
  return frt::Error(frt::Status::kOk, "");
}

}  // namespace

TEST_F(TokenizerLookup, CandidatesInDocumentedOrder) {
  const fs::path env_file = root_ / "env.model";
  setenv(frt::kTokenizerEnvVar, env_file.c_str(), 1);
  const auto c = frt::tokenizer_candidates("/x/explicit.model", ckpt_.string());
  const std::vector<std::string> expected = {"/x/explicit.model", env_file.string(),
                                             in_ckpt().string(), flash_cache().string(),
                                             openpi_cache().string()};
  EXPECT_EQ(c, expected);
  // Places that do not apply are left out.
  unsetenv(frt::kTokenizerEnvVar);
  const auto c2 = frt::tokenizer_candidates("", "");
  EXPECT_EQ(c2, (std::vector<std::string>{flash_cache().string(), openpi_cache().string()}));
}

TEST_F(TokenizerLookup, EachPlaceWinsOverTheOnesAfterIt) {
  // Fill the places from the last to the first; each new one must take over.
  write_file(openpi_cache(), "a");
  EXPECT_EQ(frt::find_tokenizer("", ckpt_.string()), openpi_cache().string());
  write_file(flash_cache(), "b");
  EXPECT_EQ(frt::find_tokenizer("", ckpt_.string()), flash_cache().string());
  write_file(in_ckpt(), "c");
  EXPECT_EQ(frt::find_tokenizer("", ckpt_.string()), in_ckpt().string());
  const fs::path env_file = root_ / "env.model";
  write_file(env_file, "d");
  setenv(frt::kTokenizerEnvVar, env_file.c_str(), 1);
  EXPECT_EQ(frt::find_tokenizer("", ckpt_.string()), env_file.string());
  const fs::path explicit_file = root_ / "explicit.model";
  write_file(explicit_file, "e");
  EXPECT_EQ(frt::find_tokenizer(explicit_file.string(), ckpt_.string()), explicit_file.string());
}

TEST_F(TokenizerLookup, MissingExplicitPathIsAnErrorNotAFallThrough) {
  write_file(in_ckpt(), "c");  // a fallback exists, but the user named another file
  const std::string missing = (root_ / "nope.model").string();
  frt::Error e = catch_error([&] { frt::find_tokenizer(missing, ckpt_.string()); });
  EXPECT_EQ(e.status(), frt::Status::kNotFound);
  EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("tokenizer_path"), std::string::npos) << e.what();
  // A directory is not the model file either.
  e = catch_error([&] { frt::find_tokenizer(ckpt_.string(), ""); });
  EXPECT_EQ(e.status(), frt::Status::kNotFound);
  EXPECT_NE(std::string(e.what()).find("directory"), std::string::npos) << e.what();
}

TEST_F(TokenizerLookup, MissingEnvPathIsAnError) {
  write_file(in_ckpt(), "c");
  const std::string missing = (root_ / "env_missing.model").string();
  setenv(frt::kTokenizerEnvVar, missing.c_str(), 1);
  frt::Error e = catch_error([&] { frt::find_tokenizer("", ckpt_.string()); });
  EXPECT_EQ(e.status(), frt::Status::kNotFound);
  EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find(frt::kTokenizerEnvVar), std::string::npos) << e.what();
}

TEST_F(TokenizerLookup, NotFoundListsEveryPlaceAndHowToGetIt) {
  frt::Error e = catch_error([&] { frt::find_tokenizer("", ckpt_.string()); });
  EXPECT_EQ(e.status(), frt::Status::kNotFound);
  const std::string msg = e.what();
  for (const fs::path& p : {in_ckpt(), flash_cache(), openpi_cache()})
    EXPECT_NE(msg.find("\n  " + p.string() + "\n"), std::string::npos)
        << "place " << p << " not on a line of its own in:\n"
        << msg;
  for (const char* hint : {"gs://big_vision/paligemma_tokenizer.model", "pip install sentencepiece",
                           "FLASH_RT_PALIGEMMA_TOKENIZER", "tokenizer_path", "make-checkpoint"})
    EXPECT_NE(msg.find(hint), std::string::npos) << "missing '" << hint << "' in:\n" << msg;
}

TEST_F(TokenizerLookup, LoadErrorsNameTheFile) {
  const std::string missing = (root_ / "missing.model").string();
  frt::Error e = catch_error([&] { frt::Tokenizer t(missing); });
  EXPECT_EQ(e.status(), frt::Status::kNotFound);
  EXPECT_NE(std::string(e.what()).find(missing), std::string::npos);

  const fs::path garbage = root_ / "garbage.model";
  static const char kGarbage[] = "\x89PNG\r\n\x1a\n not a sentencepiece model \xff\xfe";
  write_file(garbage, std::string(kGarbage, sizeof(kGarbage) - 1));
  e = catch_error([&] { frt::Tokenizer t(garbage.string()); });
  EXPECT_EQ(e.status(), frt::Status::kIoError);
  EXPECT_NE(std::string(e.what()).find(garbage.string()), std::string::npos) << e.what();

  const fs::path empty = root_ / "empty.model";
  write_file(empty, "");
  e = catch_error([&] { frt::Tokenizer t(empty.string()); });
  EXPECT_EQ(e.status(), frt::Status::kIoError);
  EXPECT_NE(std::string(e.what()).find(empty.string()), std::string::npos) << e.what();
}

// ------------------------------------------------------------------------------ tiny tokenizer

TEST(TinyTokenizer, PaliGemmaLikeSettings) {
  const fs::path dir = frt::test::fresh_test_dir("tok_tiny_settings");
  const fs::path p = dir / "paligemma_tokenizer.model";
  const auto t0 = std::chrono::steady_clock::now();
  frt::train_tiny_tokenizer(p.string(), 1024);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 2.0) << "training the tiny tokenizer should be quick";
  EXPECT_FALSE(fs::exists(p.string() + ".tmp" + std::to_string(getpid())));

  frt::Tokenizer tok(p.string());
  EXPECT_LE(tok.vocab_size(), 1024);
  EXPECT_GT(tok.vocab_size(), 4 + 256 + 100);  // specials + bytes + learned pieces
  // PaliGemma's ids: pad 0, eos 1, bos 2, unk 3.
  EXPECT_EQ(tok.bos_id(), 2);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.id_to_piece(0), "<pad>");
  EXPECT_EQ(tok.id_to_piece(3), "<unk>");

  // Digits are split one per piece.
  const auto d = tok.encode("255");
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(tok.id_to_piece(d[0]), "2");
  EXPECT_EQ(tok.id_to_piece(d[2]), "5");
  // No dummy prefix (Gemma): the first piece of "Task" carries no "▁".
  const auto t = tok.encode("Task");
  ASSERT_FALSE(t.empty());
  EXPECT_NE(tok.id_to_piece(t[0]).rfind("\xe2\x96\x81", 0), 0u) << tok.id_to_piece(t[0]);
  // "\n" alone is one piece that decodes back to "\n" (not a space as nmt_nfkc would make it).
  const auto nl = tok.encode("\n");
  ASSERT_EQ(nl.size(), 1u);
  EXPECT_EQ(tok.decode(nl), "\n");
  // Common words of the corpus are whole pieces.
  EXPECT_EQ(tok.encode("pick up the bowl").size(), 4u);
  fs::remove_all(dir);
}

TEST(TinyTokenizer, RoundTripWithoutUnknowns) {
  const fs::path dir = frt::test::fresh_test_dir("tok_tiny_roundtrip");
  const fs::path p = dir / "tok.model";
  frt::train_tiny_tokenizer(p.string(), 1024);
  frt::Tokenizer tok(p.string());
  const std::vector<std::string> texts = {
      "Task: pick up the red block and put it in the bowl, State: 0 -1 255 17;\nAction: ",
      "  two leading spaces,  two inner, trailing  ",
      "line one\nline two\n\n\ttab",
      "Gr\xc3\xbc\xc3\x9f"
      "e \xe6\x9c\xba\xe5\x99\xa8\xe4\xba\xba \xf0\x9f\xa4\x96",  // ü ß 机器人 🤖
      "zzqx never seen WORDS 0123456789",
  };
  for (const std::string& s : texts) {
    const auto ids = tok.encode(s);
    EXPECT_EQ(tok.decode(ids), s);
    for (int32_t id : ids) {
      EXPECT_NE(id, 3) << "byte fallback should avoid <unk> in: " << s;
      EXPECT_NE(id, tok.bos_id());
    }
  }
  EXPECT_THROW(tok.decode({5, tok.vocab_size()}), frt::Error);
  EXPECT_THROW(tok.decode({-1}), frt::Error);
  fs::remove_all(dir);
}

TEST(TinyTokenizer, DeterministicBytes) {
  const fs::path dir = frt::test::fresh_test_dir("tok_tiny_det");
  frt::train_tiny_tokenizer((dir / "a.model").string(), 1024);
  frt::train_tiny_tokenizer((dir / "b.model").string(), 1024);
  frt::train_tiny_tokenizer((dir / "c.model").string(), 600);
  const std::string a = read_bytes(dir / "a.model"), b = read_bytes(dir / "b.model"),
                    c = read_bytes(dir / "c.model");
  ASSERT_GT(a.size(), 1000u);
  EXPECT_TRUE(a == b) << "two trainings gave different files";
  EXPECT_FALSE(a == c) << "a different vocab_size must change the model";
  frt::Tokenizer small((dir / "c.model").string());
  EXPECT_LE(small.vocab_size(), 600);
  fs::remove_all(dir);
}

TEST(TinyTokenizer, RejectsTooSmallVocab) {
  const fs::path dir = frt::test::fresh_test_dir("tok_tiny_small");
  EXPECT_THROW(frt::train_tiny_tokenizer((dir / "x.model").string(), 100), frt::Error);
  EXPECT_FALSE(fs::exists(dir / "x.model"));
  fs::remove_all(dir);
}

TEST(TinyTokenizer, UnwritablePathIsAnIoError) {
  frt::Error e =
      catch_error([] { frt::train_tiny_tokenizer("/nonexistent_dir_frt/sub/tok.model", 1024); });
  EXPECT_EQ(e.status(), frt::Status::kIoError);
}
