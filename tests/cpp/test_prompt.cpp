// Tests of src/io/prompt.{h,cpp}: openpi's prompt cleaning, np.digitize state bins (edges,
// out-of-range, infinities, NaN), the pi05 and plain formats as golden strings, the token ids
// (BOS, the separately encoded "\n"), and truncation with its warning. Uses a tiny tokenizer
// trained by train_tiny_tokenizer() (its settings are tested in test_tokenizer.cpp).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/status.h"
#include "io/prompt.h"
#include "io/tokenizer.h"

namespace fs = std::filesystem;

namespace {

class PromptTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("frt_prompt_" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    const std::string p = (*dir_ / "paligemma_tokenizer.model").string();
    frt::train_tiny_tokenizer(p, 1024);
    tok_ = new frt::Tokenizer(p);
  }
  static void TearDownTestSuite() {
    delete tok_;
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }
  static fs::path* dir_;
  static frt::Tokenizer* tok_;
};
fs::path* PromptTest::dir_ = nullptr;
frt::Tokenizer* PromptTest::tok_ = nullptr;

struct Captured {
  std::vector<std::pair<int, std::string>> messages;
};
void capture(int level, const char* msg, void* user) {
  static_cast<Captured*>(user)->messages.emplace_back(level, msg);
}

}  // namespace

TEST(PromptClean, LikePythonStripThenReplace) {
  EXPECT_EQ(frt::clean_prompt("  pick_up the\nred block \t\r\n"), "pick up the red block");
  // strip() runs before the replacements: '_' at the ends survives as a space.
  EXPECT_EQ(frt::clean_prompt("_grasp_"), " grasp ");
  EXPECT_EQ(frt::clean_prompt("a\n\nb"), "a  b");
  // "\r" and "\t" inside are kept (only '\n' is replaced).
  EXPECT_EQ(frt::clean_prompt("a\rb\tc"), "a\rb\tc");
  // Python's str.strip() removes Unicode whitespace too: U+3000, U+00A0, U+2003, U+0085, U+001F.
  EXPECT_EQ(frt::clean_prompt("\xe3\x80\x80\xc2\xa0open it\xe2\x80\x83\xc2\x85\x1f"), "open it");
  // ...but not other characters, e.g. U+200B (zero width space is not isspace()).
  EXPECT_EQ(frt::clean_prompt("\xe2\x80\x8bx"), "\xe2\x80\x8bx");
  EXPECT_EQ(frt::clean_prompt(" \n\t "), "");
  EXPECT_EQ(frt::clean_prompt(""), "");
  EXPECT_EQ(frt::clean_prompt(" caf\xc3\xa9 "), "caf\xc3\xa9");  // multi-byte chars kept
  try {
    frt::clean_prompt("ok \xc3(");
    ADD_FAILURE() << "invalid UTF-8 accepted";
  } catch (const frt::Error& e) {
    EXPECT_EQ(e.status(), frt::Status::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("byte 3"), std::string::npos) << e.what();
  }
}

TEST(PromptState, DigitizeMatchesNumpyByHand) {
  // Edges are k/128 - 1 for k = 0..255; bin = (number of edges <= x) - 1.
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    float x;
    int bin;
  };
  const Case cases[] = {
      {-1.0f, 0},  // exactly on the first edge
      {std::nextafter(-1.0f, -2.0f), -1},
      {-2.0f, -1},
      {-inf, -1},
      {-0.99f, 1},     // (x + 1) * 128 = 1.28
      {0.0f, 128},     // on edge k = 128
      {-1e-30f, 127},  // just below an edge: (x + 1) in double would round to 1
      {1e-30f, 128},
      {0.0078125f, 129},  // 1/128: on edge k = 129
      {0.0078124f, 128},
      {0.3f, 166},  // 1.3 * 128 = 166.4
      {0.5f, 192},
      {-0.5f, 64},
      {0.99f, 254},       // 1.99 * 128 = 254.72
      {0.9921875f, 255},  // last edge, 1 - 1/128
      {std::nextafter(0.9921875f, 0.0f), 254},
      {1.0f, 255},
      {7.5f, 255},
      {inf, 255},
  };
  std::vector<float> xs;
  for (const Case& c : cases) xs.push_back(c.x);
  const std::vector<int> bins = frt::discretize_state(xs);
  ASSERT_EQ(bins.size(), xs.size());
  for (size_t i = 0; i < xs.size(); ++i) EXPECT_EQ(bins[i], cases[i].bin) << "x = " << xs[i];
  EXPECT_TRUE(frt::discretize_state({}).empty());
}

TEST(PromptState, NaNNamesTheIndex) {
  try {
    frt::discretize_state({0.1f, -0.2f, std::nanf(""), 0.4f});
    ADD_FAILURE() << "NaN accepted";
  } catch (const frt::Error& e) {
    EXPECT_EQ(e.status(), frt::Status::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("state[2]"), std::string::npos) << e.what();
  }
}

TEST(PromptFormat, GoldenStrings) {
  const std::vector<float> state = {0.0f, -1.5f, 0.999f, 0.5f, -0.25f};
  EXPECT_EQ(frt::format_prompt(" pick_up the\nbowl ", &state, true),
            "Task: pick up the bowl, State: 128 -1 255 192 96;\nAction: ");
  EXPECT_EQ(frt::format_prompt(" pick_up the\nbowl ", nullptr, false), "pick up the bowl\n");
  // Without discrete_state_input the state is ignored, as openpi's TokenizePrompt does.
  EXPECT_EQ(frt::format_prompt("close it", &state, false), "close it\n");
  // An empty state still gives the format (openpi joins an empty list to "").
  const std::vector<float> none;
  EXPECT_EQ(frt::format_prompt("x", &none, true), "Task: x, State: ;\nAction: ");
  try {
    frt::format_prompt("x", nullptr, true);
    ADD_FAILURE() << "missing state accepted";
  } catch (const frt::Error& e) {
    EXPECT_EQ(e.status(), frt::Status::kInvalidArgument);
  }
}

TEST_F(PromptTest, Pi05IdsAreBosThenOneEncode) {
  const std::vector<float> state = {0.25f, -0.75f, 1.2f};
  const frt::TokenizedPrompt tp =
      frt::tokenize_prompt(*tok_, "put_the bowl on the plate\n", &state, true, 200);
  const std::string golden = "Task: put the bowl on the plate, State: 160 32 255;\nAction: ";
  ASSERT_FALSE(tp.ids.empty());
  EXPECT_EQ(tp.ids[0], 2);  // BOS
  EXPECT_EQ(tp.ids, concat({2}, tok_->encode(golden)));
  EXPECT_EQ(tok_->decode(std::vector<int32_t>(tp.ids.begin() + 1, tp.ids.end())), golden);
  EXPECT_FALSE(tp.truncated);
  EXPECT_EQ(tp.untruncated_length, static_cast<int32_t>(tp.ids.size()));
}

TEST_F(PromptTest, PlainFormatEncodesNewlineSeparately) {
  const frt::TokenizedPrompt tp = frt::tokenize_prompt(*tok_, "  stack_it;  ", nullptr, false, 48);
  const auto body = tok_->encode("stack it;");
  const auto nl = tok_->encode("\n");
  ASSERT_EQ(nl.size(), 1u);
  EXPECT_EQ(tp.ids, concat(concat({2}, body), nl));
  EXPECT_EQ(tok_->id_to_piece(tp.ids.back()), "\n");
  // Encoding "stack it;\n" at once would merge ";\n" into one piece (the corpus has it), so
  // this checks that openpi's two encodes are kept apart.
  EXPECT_NE(tp.ids, concat({2}, tok_->encode("stack it;\n")));
  // An empty prompt still gives BOS + "\n".
  EXPECT_EQ(frt::tokenize_prompt(*tok_, " ", nullptr, false, 48).ids, concat({2}, nl));
}

TEST_F(PromptTest, TruncationWarnsWithLengthsAndOption) {
  const std::string prompt =
      "pick up the black bowl between the plate and the ramekin and place it on the plate";
  const std::vector<float> state = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
  const frt::TokenizedPrompt full = frt::tokenize_prompt(*tok_, prompt, &state, true, 1000);
  const int32_t n = static_cast<int32_t>(full.ids.size());
  ASSERT_GT(n, 20);

  Captured cap;
  frt::set_log_callback(&capture, &cap, frt::LogLevel::kInfo);
  const frt::TokenizedPrompt cut = frt::tokenize_prompt(*tok_, prompt, &state, true, 13);
  const frt::TokenizedPrompt exact = frt::tokenize_prompt(*tok_, prompt, &state, true, n);
  frt::set_log_callback(nullptr, nullptr, frt::LogLevel::kInfo);

  EXPECT_TRUE(cut.truncated);
  EXPECT_EQ(cut.untruncated_length, n);
  EXPECT_EQ(cut.ids, std::vector<int32_t>(full.ids.begin(), full.ids.begin() + 13));
  EXPECT_FALSE(exact.truncated);  // exactly max_len: no truncation, no warning
  EXPECT_EQ(exact.ids, full.ids);
  ASSERT_EQ(cap.messages.size(), 1u);
  EXPECT_EQ(cap.messages[0].first, static_cast<int>(frt::LogLevel::kWarning));
  const std::string& msg = cap.messages[0].second;
  for (const std::string& part : {std::to_string(n) + " tokens", std::string("max_token_len 13"),
                                  std::string("raise the max_token_len")})
    EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' missing in: " << msg;
}

TEST_F(PromptTest, BadArguments) {
  EXPECT_THROW(frt::tokenize_prompt(*tok_, "x", nullptr, false, 0), frt::Error);
  EXPECT_THROW(frt::tokenize_prompt(*tok_, "x", nullptr, true, 10), frt::Error);
  const std::vector<float> nan_state = {0.f, std::nanf("")};
  EXPECT_THROW(frt::tokenize_prompt(*tok_, "x", &nan_state, true, 10), frt::Error);
  // The NaN does not matter when the state is not part of the prompt.
  EXPECT_NO_THROW(frt::tokenize_prompt(*tok_, "x", &nan_state, false, 10));
}
