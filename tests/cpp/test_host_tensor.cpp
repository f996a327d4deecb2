// HostTensor allocation modes and max_abs (the FP8 weight scale's amax): plain values, the
// multi-threaded path of large inputs, and non-finite values reported as +inf.
// Run: flashrt_tests --gtest_filter='HostTensor*:MaxAbs*'
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/tensor.h"

using frt::DType;
using frt::HostInit;
using frt::HostTensor;
using frt::max_abs;

TEST(HostTensor, ZeroedByDefault) {
  HostTensor t(DType::kF32, {3, 5});
  for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(t.as<float>()[i], 0.f);
}

TEST(HostTensor, UninitializedStillZeroesTheAlignmentTail) {
  // 3 floats = 12 bytes in a 64-byte block: bytes [12, 64) are defined (zero) either way.
  HostTensor t(DType::kF32, {3}, HostInit::kNone);
  const auto* bytes = static_cast<const uint8_t*>(t.data());
  for (int i = 12; i < 64; ++i) EXPECT_EQ(bytes[i], 0) << "byte " << i;
}

TEST(MaxAbs, SmallInputs) {
  EXPECT_EQ(max_abs(nullptr, 0), 0.f);
  const std::vector<float> v = {0.5f, -3.25f, 2.f, -0.f};
  EXPECT_EQ(max_abs(v.data(), v.size()), 3.25f);
}

TEST(MaxAbs, LargeInputTakesTheParallelPath) {
  std::vector<float> v(3u << 20);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(static_cast<float>(i)) * 0.75f;
  v[2'000'001] = -7.5f;  // the maximum sits in a later thread's share
  EXPECT_EQ(max_abs(v.data(), v.size()), 7.5f);
}

TEST(MaxAbs, NonFiniteValuesGiveInfinity) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> v(3u << 20, 1.f);
  v[123] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(max_abs(v.data(), v.size()), inf);
  const std::vector<float> small = {1.f, -inf};
  EXPECT_EQ(max_abs(small.data(), small.size()), inf);
  const std::vector<float> nan_only = {std::numeric_limits<float>::quiet_NaN()};
  EXPECT_EQ(max_abs(nan_only.data(), nan_only.size()), inf);
}
