// SHA-256 against the FIPS 180-4 / NIST example vectors, padding boundaries (values from Python's
// hashlib) and streaming in random chunks.
// Run: flashrt_tests --gtest_filter='Sha256*'
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/sha256.h"

using frt::Sha256;
using frt::sha256_hex;

namespace {

// Bytes (i * 37 + 11) mod 256: not all one value, so a wrong byte order or offset shows.
std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 37 + 11) % 256);
  return s;
}

}  // namespace

TEST(Sha256, NistVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjk"
                       "lmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256, OneMillionA) {
  const std::string expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), expected);
  // The same message fed in odd-sized pieces (1000 x 1000 would align with nothing).
  Sha256 h;
  const std::string piece(997, 'a');
  size_t left = 1000000;
  while (left > 0) {
    const size_t n = std::min(left, piece.size());
    h.update(piece.data(), n);
    left -= n;
  }
  EXPECT_EQ(Sha256::to_hex(h.finish()), expected);
}

// Lengths around the 55/56-byte point where the length field no longer fits in the last block.
TEST(Sha256, PaddingBoundaries) {
  const std::vector<std::pair<size_t, std::string>> cases = {
      {55, "2900465fcb533e05a158fd2b3be0e5e3b03740d83060aa3580e0d98a96bf2384"},
      {56, "31454ff48ef36af2f08fd511bdc37d9d5855ac23e992e5ff5445cb6b7674a674"},
      {57, "bcc0a5d3791b985b7550e04ca660a6c63a589ba1edd2283c8e110e5b515df124"},
      {63, "5f6401b96532c36de4e65beec0409b69b1d181864c8009b7a04f43e5d56350d1"},
      {64, "94eb5de4943613fd048dc93393ab06877405faa39c11f53e9386083339833e7e"},
      {65, "fc518669b6eb4b4dd91827ecacef86689c725bd5bab888fd3b26dbb196eec954"},
      {119, "b0dc41b1a384e2f1203f0351b38fbeaafceef577ce1191d5bfc25da39f721eae"},
      {120, "5df24dd802ac26132ce608dcb5f09841eef039ee0f152acf98d26d17fe4e88e6"},
      {128, "0aedd4856f8eba0963627336ad5144a9a7dbe12498e6066f0165fc97d8ddee4c"},
      {300, "9b854f0a59eabeac0b0ecaee1f5cd7ab3bfbc93e9b33e2a89ac338b237f300f2"},
  };
  for (const auto& [n, hex] : cases) EXPECT_EQ(sha256_hex(pattern(n)), hex) << "length " << n;
}

// Any split of a message into update() calls gives the one-shot digest; finish() resets.
TEST(Sha256, StreamingRandomSplits) {
  const std::string msg = pattern(300);
  const std::string expected = "9b854f0a59eabeac0b0ecaee1f5cd7ab3bfbc93e9b33e2a89ac338b237f300f2";
  std::mt19937 rng(7);
  Sha256 h;
  for (int trial = 0; trial < 50; ++trial) {
    size_t pos = 0;
    while (pos < msg.size()) {
      const size_t n = std::min(msg.size() - pos, static_cast<size_t>(rng() % 90));
      h.update(msg.data() + pos, n);
      pos += n;
    }
    ASSERT_EQ(Sha256::to_hex(h.finish()), expected) << "trial " << trial;
  }
  EXPECT_EQ(Sha256::to_hex(h.finish()), sha256_hex(""));  // reset after finish
}
