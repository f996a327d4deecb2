// CUDA image and small ops against the CPU reference: resize_pad_normalize (bit-exact with the
// CPU twin: f32 output exact, bf16 output = the CPU value rounded to bf16), patch_embed (real
// SigLIP 224x224 / 14 / 1152 and odd sizes), embed_gather (bit-exact up to bf16 rounding, and
// the out-of-range id error raised at synchronize), time_embedding and euler_update (exact).
// Each case prints "OP(params) out: cos=... max_abs=... worst_index=...". SKIPPED without a GPU.
// Run: build/flashrt_gpu_tests --gtest_filter='CudaOps.*'
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_twin.h"

namespace frt::gpu_test {
namespace {

constexpr DType kBF = DType::kBF16;
constexpr DType kF = DType::kF32;

TEST_F(CudaOps, ResizePadNormalize) {
  struct Case { int H, W, OH, OW; };
  for (const Case& c : std::vector<Case>{{480, 640, 224, 224}, {224, 224, 224, 224},
                                         {640, 480, 224, 224}, {100, 50, 224, 224},
                                         {37, 53, 224, 224}, {112, 112, 224, 224},
                                         {300, 301, 28, 28}, {720, 1280, 224, 224}}) {
    for (DType out_t : {kF, kBF}) {
      std::ostringstream os;
      os << "RESIZE_PAD_NORMALIZE(src=" << c.H << "x" << c.W << ",out=" << c.OH << "x" << c.OW
         << ",out_dtype=" << dtype_name(out_t) << ")";
      SCOPED_TRACE(os.str());
      TwinSet ts(cpu(), gpu(), os.str());
      std::vector<uint8_t> src(static_cast<size_t>(c.H) * c.W * 3);
      for (int y = 0; y < c.H; ++y)  // smooth gradient + noise: flat regions and sharp edges
        for (int x = 0; x < c.W; ++x)
          for (int ch = 0; ch < 3; ++ch) {
            const int smooth = (y * 255 / c.H + x * 255 / c.W + ch * 40) / 2;
            src[(static_cast<size_t>(y) * c.W + x) * 3 + ch] =
                static_cast<uint8_t>((x + y) % 3 == 0 ? ts.random_int(0, 255) : smooth);
          }
      Twin& in = ts.raw("src", DType::kU8, {c.H, c.W, 3}, src.data());
      Twin& out = ts.nd_output("out", {c.OH, c.OW, 3}, out_t);
      cpu().resize_pad_normalize(out.cpu, in.cpu);
      gpu().resize_pad_normalize(out.gpu, in.gpu);
      ts.compare("out", out, out_t == kF ? kExact : kExactBf16);
      ts.check_guards();
    }
  }
}

TEST_F(CudaOps, PatchEmbed) {
  struct Case { int64_t H, W, P, width; DType img_t, out_t; int64_t out_ld; };
  for (const Case& c : std::vector<Case>{{224, 224, 14, 1152, kBF, kBF, 0},
                                         {28, 42, 14, 20, kBF, kBF, 24},
                                         {8, 12, 4, 5, kF, kF, 0},
                                         {224, 224, 14, 1152, kBF, kF, 0}}) {
    std::ostringstream os;
    os << "PATCH_EMBED(H=" << c.H << ",W=" << c.W << ",P=" << c.P << ",width=" << c.width
       << ",img=" << dtype_name(c.img_t) << ",out=" << dtype_name(c.out_t)
       << ",out_ld=" << c.out_ld << ")";
    SCOPED_TRACE(os.str());
    TwinSet ts(cpu(), gpu(), os.str());
    const int64_t N = (c.H / c.P) * (c.W / c.P);
    Twin& img = ts.nd("img", {c.H, c.W, 3}, c.img_t, ts.random(c.H * c.W * 3));
    WeightTwin w = ts.weight({c.width, 3, c.P, c.P}, "patch_embedding.weight", -0.1f, 0.1f);
    WeightTwin b = ts.weight({c.width}, "patch_embedding.bias");
    WeightTwin pos = ts.weight({N, c.width}, "position_embedding", -1.f, 1.f, WeightUse::kParam);
    ASSERT_EQ(w.gpu.dtype, kF) << "the 4-D conv weight stays f32 on the device";
    ASSERT_EQ(pos.gpu.dtype, kF) << "the position embedding stays f32 on the device";
    Twin& out = ts.output("out", N, c.width, c.out_t, c.out_ld);
    cpu().patch_embed(out.cpu, img.cpu, w.cpu, b.cpu, pos.cpu);
    gpu().patch_embed(out.gpu, img.gpu, w.gpu, b.gpu, pos.gpu);
    ts.compare("out", out, c.out_t == kF ? kF32LongTol : kBf16Tol);
    ts.check_guards();
  }
}

TEST_F(CudaOps, EmbedGather) {
  struct Case { int64_t V, D, T; float scale; DType out_t; int64_t ld; };
  for (const Case& c : std::vector<Case>{{1000, 2048, 77, std::sqrt(2048.f), kBF, 0},
                                         {37, 45, 9, 0.5f, kBF, 50},
                                         {100, 64, 12, 3.f, kF, 0}}) {
    std::ostringstream os;
    os << "EMBED_GATHER(V=" << c.V << ",D=" << c.D << ",T=" << c.T << ",scale=" << c.scale
       << ",out=" << dtype_name(c.out_t) << ",ld=" << c.ld << ")";
    SCOPED_TRACE(os.str());
    TwinSet ts(cpu(), gpu(), os.str());
    WeightTwin table = ts.weight({c.V, c.D}, "embed_tokens");
    ASSERT_EQ(table.gpu.dtype, kBF);
    std::vector<int32_t> ids(static_cast<size_t>(c.T));
    for (int32_t& id : ids) id = ts.random_int(0, static_cast<int>(c.V - 1));
    ids.front() = 0;
    ids.back() = static_cast<int32_t>(c.V - 1);
    Twin& idt = ts.raw("ids", DType::kI32, {c.T}, ids.data());
    Twin& out = ts.output("out", c.T, c.D, c.out_t, c.ld);
    cpu().embed_gather(out.cpu, table.cpu, idt.cpu, c.scale);
    gpu().embed_gather(out.gpu, table.gpu, idt.gpu, c.scale);
    ts.compare("out", out, c.out_t == kF ? kExact : kExactBf16);
    ts.check_guards();
  }
}

TEST_F(CudaOps, EmbedGatherReportsOutOfRangeIdAtSynchronize) {
  TwinSet ts(cpu(), gpu(), "EMBED_GATHER(bad id)");
  WeightTwin table = ts.weight({10, 16}, "embed_tokens");
  const std::vector<int32_t> ids = {3, 10, 1};
  Twin& idt = ts.raw("ids", DType::kI32, {3}, ids.data());
  Tensor out = gpu().alloc(kBF, {3, 16}, "out");
  gpu().embed_gather(out, table.gpu, idt.gpu, 1.f);
  try {
    gpu().synchronize();
    FAIL() << "an out-of-range id was not reported";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find("ids[1] = 10"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(gpu().synchronize()) << "the error flag must be cleared once reported";
}

TEST_F(CudaOps, TimeEmbedding) {
  struct Case { int64_t D; float t; DType out_t; };
  for (const Case& c : std::vector<Case>{{1024, 1.f, kF}, {1024, 0.9f, kF}, {1024, 0.1f, kBF},
                                         {32, 0.5f, kF}, {2, 0.3f, kF}}) {
    std::ostringstream os;
    os << "TIME_EMBEDDING(D=" << c.D << ",t=" << c.t << ",out=" << dtype_name(c.out_t) << ")";
    SCOPED_TRACE(os.str());
    TwinSet ts(cpu(), gpu(), os.str());
    Twin& out = ts.output("out", 1, c.D, c.out_t);
    cpu().time_embedding(out.cpu, c.t, 4e-3f, 4.0f);
    gpu().time_embedding(out.gpu, c.t, 4e-3f, 4.0f);
    ts.compare("out", out, c.out_t == kF ? kF32Tol : kBf16Tol);
    ts.check_guards();
  }
}

TEST_F(CudaOps, EulerUpdate) {
  for (int64_t rows : {10, 50}) {
    const std::string label = "EULER_UPDATE(rows=" + std::to_string(rows) + ",d=32,dt=-0.1)";
    SCOPED_TRACE(label);
    TwinSet ts(cpu(), gpu(), label);
    Twin& x = ts.matrix("x", rows, 32, kF, -3.f, 3.f);
    ts.mark_output(x);
    Twin& v = ts.matrix("v", rows, 32, kF, -2.f, 2.f);
    cpu().euler_update(x.cpu, v.cpu, -0.1f);
    gpu().euler_update(x.gpu, v.gpu, -0.1f);
    ts.compare("x", x, kExact);
    ts.check_guards();
  }
}

}  // namespace
}  // namespace frt::gpu_test
