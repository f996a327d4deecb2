// CPU backend tests: every registered op case (tests/cpp/op_cases_*.cpp) run on CpuBackend and
// compared with the float64 references (tests/cpp/op_reference.cpp), plus the entry checks'
// errors and the backend's memory functions.
//   flashrt_tests --gtest_filter='CpuOps*'             all op cases
//   flashrt_tests --gtest_filter='*ATTENTION*'        one op (case names carry the parameters)
//   flashrt_tests --gtest_list_tests                  every case
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/status.h"
#include "op_case.h"
#include "tolerances.h"

namespace frt::test {
namespace {

class CpuOps : public ::testing::TestWithParam<OpCase> {};

TEST_P(CpuOps, MatchesReference) {
  const OpCase& oc = GetParam();
  CpuBackend be;
  CaseContext ctx(be, oc.seed());
  oc.fn(ctx);
  const CaseResult r = ctx.finish(tolerance_for(oc.op, be.activation_dtype()));
  EXPECT_TRUE(r.ok) << oc.name << " (seed " << oc.seed() << ")\n" << r.report;
}

INSTANTIATE_TEST_SUITE_P(, CpuOps, ::testing::ValuesIn(all_op_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) {
                           return gtest_name(info.param.name);
                         });

// Runs `fn`, expecting an frt::Error with `status` whose message contains every one of `parts`.
template <typename Fn>
void expect_error(Fn fn, Status status, std::initializer_list<const char*> parts) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), status) << e.what();
    for (const char* p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
          << "message '" << e.what() << "' lacks '" << p << "'";
  }
}

TEST(CpuOpErrors, LinearWrongWeightShapeNamesOperandAndShapes) {
  CpuBackend be;
  Tensor x = be.alloc(DType::kF32, {4, 8}, "x");
  Tensor w = be.alloc(DType::kF32, {6, 7}, "w");
  Tensor y = be.alloc(DType::kF32, {4, 6}, "y");
  expect_error([&] { be.linear(y, x, w, nullptr, Activation::kNone, false); }, Status::kInternal,
               {"linear", "'w'", "[6, 8]", "[6, 7]"});
}

TEST(CpuOpErrors, WrongDtypeIsRefused) {
  CpuBackend be;
  Tensor x = be.alloc(DType::kBF16, {4, 8}, "x");
  Tensor y = be.alloc(DType::kF32, {4, 8}, "y");
  expect_error([&] { be.activation(y, x, Activation::kSilu); }, Status::kInternal,
               {"activation", "'x'", "F32", "BF16"});
}

TEST(CpuOpErrors, AttentionHeadMismatch) {
  CpuBackend be;
  Tensor q = be.alloc(DType::kF32, {3, 16}, "q");
  Tensor kv = be.alloc(DType::kF32, {5, 8}, "kv");
  Tensor out = be.alloc(DType::kF32, {3, 16}, "out");
  const AttentionParams p{3, 2, 4, 0.5f, 0};  // 3 q heads over 2 kv heads
  expect_error([&] { be.attention(out, q, kv, kv, p); }, Status::kInternal,
               {"attention", "multiple"});
  const AttentionParams p2{4, 2, 4, 0.5f, 0};
  Tensor k_bad = be.alloc(DType::kF32, {5, 12}, "k");
  expect_error([&] { be.attention(out, q, k_bad, kv, p2); }, Status::kInternal,
               {"attention", "'k'", "[5, 8]", "[5, 12]"});
  AttentionParams p3 = p2;  // 3 query rows and 5 keys are not 2 equal-length sequences
  p3.batch = 2;
  expect_error([&] { be.attention(out, q, kv, kv, p3); }, Status::kInternal,
               {"attention", "batch", "divide"});
  p3.batch = 0;
  expect_error([&] { be.attention(out, q, kv, kv, p3); }, Status::kInternal,
               {"attention", "batch"});
}

TEST(CpuOpErrors, EmbedGatherIdOutOfRangeNamesIdAndRows) {
  CpuBackend be;
  Tensor table = be.alloc(DType::kF32, {10, 4}, "table");
  Tensor ids = be.alloc(DType::kI32, {3}, "ids");
  Tensor out = be.alloc(DType::kF32, {3, 4}, "out");
  const int32_t bad[3] = {1, 10, 2};
  be.copy_to_device(ids, bad, sizeof(bad));
  expect_error([&] { be.embed_gather(out, table, ids, 1.f); }, Status::kInvalidArgument,
               {"embed_gather", "ids[1] = 10", "10 rows"});
  const int32_t negative[3] = {0, 0, -1};
  be.copy_to_device(ids, negative, sizeof(negative));
  expect_error([&] { be.embed_gather(out, table, ids, 1.f); }, Status::kInvalidArgument,
               {"ids[2] = -1"});
}

TEST(CpuBackendMemory, AllocIsZeroedAlignedAndCounted) {
  CpuBackend be;
  EXPECT_STREQ(be.name(), "cpu");
  EXPECT_EQ(be.device(), Device::kCpu);
  EXPECT_EQ(be.activation_dtype(), DType::kF32);
  Tensor a = be.alloc(DType::kF32, {3, 5}, "a");
  Tensor b = be.alloc(DType::kU8, {7}, "b");
  EXPECT_EQ(a.shape_str(), "[3, 5]");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data) % 64, 0u);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(a.as<float>()[i], 0.f);
  EXPECT_EQ(be.bytes_allocated(), 3u * 5u * 4u + 7u);
}

TEST(CpuBackendMemory, UploadWeightKeepsF32BufferAndWidensBf16) {
  CpuBackend be;
  HostTensor w(DType::kF32, {2, 3});
  for (int i = 0; i < 6; ++i) w.as<float>()[i] = 0.5f * static_cast<float>(i + 1);
  void* original = w.data();
  Tensor t = be.upload_weight(std::move(w), "w", WeightUse::kGemm);
  EXPECT_EQ(t.data, original);  // no copy
  EXPECT_EQ(t.dtype, DType::kF32);
  EXPECT_EQ(t.as<float>()[5], 3.f);

  HostTensor h(DType::kBF16, {4});
  const float vals[4] = {1.5f, -2.f, 0.125f, 3.f};
  for (int i = 0; i < 4; ++i) h.as<uint16_t>()[i] = f32_to_bf16(vals[i]);
  Tensor tb = be.upload_weight(std::move(h), "wb", WeightUse::kParam);
  ASSERT_EQ(tb.dtype, DType::kF32);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(tb.as<float>()[i], vals[i]);
  EXPECT_EQ(be.bytes_allocated(), 6u * 4u + 4u * 4u);
}

TEST(CpuBackendMemory, CopiesRoundTripAndRefuseOversizeOrStrided) {
  CpuBackend be;
  Tensor t = be.alloc(DType::kF32, {2, 4}, "t");
  const float src[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  be.copy_to_device(t, src, sizeof(src));
  float back[8] = {};
  be.copy_to_host(back, t, sizeof(back));
  EXPECT_EQ(std::memcmp(src, back, sizeof(src)), 0);
  be.synchronize();
  expect_error([&] { be.copy_to_device(t, src, 64); }, Status::kInternal, {"64 bytes"});
  expect_error([&] { be.copy_to_host(back, t.col_slice(1, 2), 16); }, Status::kInternal,
               {"strided"});
  // One row of a strided view is contiguous: allowed.
  float row[2] = {};
  be.copy_to_host(row, t.col_slice(1, 2).row_slice(1, 1), sizeof(row));
  EXPECT_EQ(row[0], 6.f);
  EXPECT_EQ(row[1], 7.f);
}

TEST(CpuBackendFactory, MakesCpuBackend) {
  std::unique_ptr<Backend> be = make_cpu_backend();
  ASSERT_NE(be, nullptr);
  EXPECT_STREQ(be->name(), "cpu");
}

#ifndef FLASHRT_WITH_CUDA
TEST(CpuBackendFactory, CudaIsAbsentInThisBuild) {
  std::string why;
  EXPECT_FALSE(cuda_available(&why));
  EXPECT_NE(why.find("FLASHRT_CUDA=OFF"), std::string::npos) << why;
  expect_error([] { make_cuda_backend(0); }, Status::kNotSupported, {"rebuild", "nvcc"});
}
#endif

}  // namespace
}  // namespace frt::test
