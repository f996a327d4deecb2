// The CUDA backend's non-op surface: availability and the factory, alloc (zeroed), copies and
// their checks, upload_weight's dtype per weight role (bf16 GEMM matrices, f32 vectors / 4-D /
// position embedding), entry checks of the ops (bad shapes throw kInternal naming the op), and
// capture of a chain of every op into one CUDA graph whose replay matches the eager run bit
// for bit (ops neither allocate nor synchronize). SKIPPED without a GPU.
// Run: build/flashrt_gpu_tests --gtest_filter='CudaOps.*:CudaAvailability.*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "cuda_twin.h"

namespace frt::gpu_test {
namespace {

constexpr DType kBF = DType::kBF16;
constexpr DType kF = DType::kF32;

template <typename Fn>
void expect_error(Status status, const std::string& needle, Fn&& fn) {
  try {
    fn();
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), status) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(CudaAvailability, FactoryAgreesWithAvailability) {
  std::string why;
  const bool ok = cuda_available(&why);
  EXPECT_FALSE(why.empty());
  if (!ok) {
    expect_error(Status::kNotSupported, "CUDA backend", [] { make_cuda_backend(0); });
    GTEST_SKIP() << why;
  }
  std::unique_ptr<Backend> be = make_cuda_backend(0);
  EXPECT_STREQ(be->name(), "cuda");
  EXPECT_EQ(be->device(), Device::kCuda);
  EXPECT_EQ(be->activation_dtype(), kBF);
  expect_error(Status::kNotSupported, "device index", [] { make_cuda_backend(-1); });
  expect_error(Status::kNotSupported, "device index", [] { make_cuda_backend(1000); });
}

TEST_F(CudaOps, UploadWeightKeepsDtypeByRole) {
  struct Case { std::vector<int64_t> shape; std::string name; WeightUse use; DType want; };
  const WeightUse G = WeightUse::kGemm, P = WeightUse::kParam;
  const std::vector<Case> cases = {
      {{4, 3}, "layers.0.mlp.fc1.weight", G, kBF},
      {{4, 3}, "action_in_proj.weight", WeightUse::kGemmPrecise, kBF},
      {{9, 3}, "embed_tokens", WeightUse::kTable, kBF},
      {{7}, "layers.0.mlp.fc1.bias", P, kF},
      {{1, 5}, "row", G, kF},
      {{5, 1}, "column", G, kF},
      {{6, 4}, "position_embedding", P, kF},
      {{2, 3, 2, 2}, "patch_embedding.weight", P, kF},
      {{2, 2, 3, 4}, "adarms_modulation", P, kF}};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-3.f, 3.f);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    HostTensor h(kF, c.shape);
    for (int64_t i = 0; i < h.numel(); ++i) h.as<float>()[i] = dist(rng);  // not bf16-exact
    std::vector<float> values(h.as<float>(), h.as<float>() + h.numel());
    const Tensor t = gpu().upload_weight(std::move(h), c.name, c.use);
    ASSERT_EQ(t.dtype, c.want);
    EXPECT_EQ(t.device, Device::kCuda);
    ASSERT_EQ(t.ndim, static_cast<int>(c.shape.size()));
    for (size_t d = 0; d < c.shape.size(); ++d) EXPECT_EQ(t.shape[d], c.shape[d]);
    std::vector<uint8_t> back(t.nbytes());
    gpu().copy_to_host(back.data(), t, back.size());
    for (size_t i = 0; i < values.size(); ++i) {
      if (c.want == kBF) {
        uint16_t got;
        std::memcpy(&got, back.data() + 2 * i, 2);
        ASSERT_EQ(got, f32_to_bf16(values[i])) << "element " << i << " (round to nearest even)";
      } else {
        float got;
        std::memcpy(&got, back.data() + 4 * i, 4);
        ASSERT_EQ(got, values[i]) << "element " << i;
      }
    }
  }
}

TEST_F(CudaOps, AllocZeroesAndCopiesRoundTrip) {
  const size_t before = gpu().bytes_allocated();
  Tensor t = gpu().alloc(kF, {3, 5}, "t");
  EXPECT_GE(gpu().bytes_allocated(), before + 60);
  std::vector<float> back(15, 1.f);
  gpu().copy_to_host(back.data(), t, 60);
  for (float v : back) EXPECT_EQ(v, 0.f) << "alloc() must zero its buffer";
  std::vector<float> vals(15);
  for (int i = 0; i < 15; ++i) vals[i] = 0.5f * i - 3.f;
  gpu().copy_to_device(t, vals.data(), 60);
  gpu().copy_to_host(back.data(), t, 60);
  EXPECT_EQ(back, vals);
  Tensor ids = gpu().alloc(DType::kI32, {4}, "ids");
  const int32_t iv[4] = {1, -2, 3, 400000};
  int32_t ib[4] = {};
  gpu().copy_to_device(ids, iv, sizeof(iv));
  gpu().copy_to_host(ib, ids, sizeof(ib));
  EXPECT_EQ(std::memcmp(iv, ib, sizeof(iv)), 0);
  Tensor empty = gpu().alloc(kBF, {0, 8}, "empty");
  EXPECT_EQ(empty.numel(), 0);
}

TEST_F(CudaOps, CopiesRejectBadViews) {
  Tensor t = gpu().alloc(kF, {4, 6}, "t");
  std::vector<float> buf(24);
  expect_error(Status::kInternal, "strided", [&] {
    gpu().copy_to_host(buf.data(), t.col_slice(1, 3), 12 * sizeof(float));
  });
  expect_error(Status::kInternal, "do not fit",
               [&] { gpu().copy_to_device(t, buf.data(), 25 * sizeof(float)); });
  Tensor host = make_view(buf.data(), kF, Device::kCpu, {24});
  expect_error(Status::kInternal, "host tensor",
               [&] { gpu().copy_to_device(host, buf.data(), 4); });
  // One row of a strided view is contiguous: allowed.
  EXPECT_NO_THROW(gpu().copy_to_host(buf.data(), t.col_slice(1, 3).row_slice(2, 1), 12));
}

TEST_F(CudaOps, OpsRejectBadOperands) {
  Tensor x = gpu().alloc(kBF, {4, 8}, "x"), y = gpu().alloc(kBF, {4, 6}, "y");
  Tensor w = gpu().alloc(kBF, {6, 9}, "w"), vec = gpu().alloc(kF, {8}, "vec");
  expect_error(Status::kInternal, "linear: operand 'w'",
               [&] { gpu().linear(y, x, w, nullptr, Activation::kNone, false); });
  Tensor host = make_view(x.data, kBF, Device::kCpu, {4, 8});
  expect_error(Status::kInternal, "layer_norm: operand 'x'",
               [&] { gpu().layer_norm(x, host, vec, vec, 1e-6f); });
  expect_error(Status::kInternal, "add_rms_norm: operand 'scale'",
               [&] { gpu().add_rms_norm(x, nullptr, x, gpu().alloc(kF, {7}, "s"), 1e-6f); });
  expect_error(Status::kInternal, "geglu",
               [&] { gpu().geglu(y, gpu().alloc(kBF, {4, 7}, "gu")); });
  expect_error(Status::kInternal, "multiple of num_kv_heads", [&] {
    gpu().attention(x, x, x, x, AttentionParams{3, 2, 2, 0.5f, 0});
  });
  expect_error(Status::kInternal, "qkv_split_rope: operand 'qkv'",
               [&] { gpu().qkv_split_rope(x, x, x, x, 1, 1, 8, 0, nullptr, 10000.f); });
  expect_error(Status::kInternal, "patch_embed: operand 'w'",
               [&] { gpu().patch_embed(y, gpu().alloc(kBF, {28, 28, 3}, "img"), w, vec, y); });
  expect_error(Status::kInternal, "euler_update: operand 'x'",
               [&] { gpu().euler_update(gpu().alloc(DType::kI32, {2, 2}, "i"), x, 0.1f); });
}

TEST_F(CudaOps, EveryOpCapturesIntoOneCudaGraph) {
  auto* cuda_be = dynamic_cast<CudaBackend*>(&gpu());
  ASSERT_NE(cuda_be, nullptr);
  TwinSet ts(cpu(), gpu(), "GRAPH_CAPTURE");
  const int64_t S = 20;
  std::vector<uint8_t> src(30 * 40 * 3);
  for (uint8_t& b : src) b = static_cast<uint8_t>(ts.random_int(0, 255));
  Twin& raw = ts.raw("src", DType::kU8, {30, 40, 3}, src.data());
  Twin& img = ts.nd_output("image", {28, 28, 3}, kBF);
  WeightTwin pw = ts.weight({16, 3, 14, 14}, "patch_embedding.weight", -0.1f, 0.1f);
  WeightTwin pb = ts.weight({16}, "patch_embedding.bias");
  WeightTwin pos = ts.weight({4, 16}, "position_embedding", -1.f, 1.f, WeightUse::kParam);
  Twin& patches = ts.output("patches", 4, 16, kBF);
  WeightTwin w = ts.weight({96, 64}, "w", -0.25f, 0.25f);
  Twin& x = ts.matrix("x", S, 64, kBF);
  Twin& bias = ts.matrix("bias", 1, 96, kF);
  Twin& h = ts.output("h", S, 96, kBF);
  Twin& act = ts.output("act", S, 96, kBF);
  Twin& ln_w = ts.matrix("ln_w", 1, 96, kF, 0.5f, 1.5f);
  Twin& ln_b = ts.matrix("ln_b", 1, 96, kF);
  Twin& n = ts.output("n", S, 96, kBF);
  Twin& scale = ts.matrix("scale", 1, 96, kF, 0.5f, 1.5f);
  Twin& n2 = ts.output("n2", S, 96, kBF);
  Twin& q = ts.output("q", S, 64, kBF);
  Twin& k = ts.output("k", S, 16, kBF);
  Twin& v = ts.output("v", S, 16, kBF);
  Twin& att = ts.output("attn", S, 64, kBF);
  Twin& gl = ts.output("geglu", S, 32, kBF);
  Twin& resid = ts.matrix("residual", S, 64, kBF);
  WeightTwin w2 = ts.weight({64, 32}, "w2", -0.3f, 0.3f);
  Twin& gx = ts.matrix("gated_x", S, 64, kBF);
  Twin& gate = ts.matrix("gate", 1, 64, kF);
  Twin& ada_x = ts.matrix("ada_x", S, 64, kBF);
  Twin& ada_y = ts.output("ada_y", S, 64, kBF);
  Twin& msc = ts.matrix("mod_scale", 1, 64, kF);
  Twin& msh = ts.matrix("mod_shift", 1, 64, kF);
  WeightTwin table = ts.weight({50, 64}, "embed_tokens");
  const std::vector<int32_t> id_values = {0, 49, 7, 7, 23};
  Twin& ids = ts.raw("ids", DType::kI32, {5}, id_values.data());
  Twin& emb = ts.output("emb", 5, 64, kBF);
  Twin& temb = ts.output("temb", 1, 64, kF);
  Twin& actions = ts.matrix("actions", 10, 32, kF);
  WeightTwin ain = ts.weight({64, 32}, "action_in_proj.weight");
  Twin& ain_b = ts.matrix("action_in_b", 1, 64, kF);
  Twin& sx = ts.output("suffix_x", 10, 64, kBF);
  Twin& vel = ts.matrix("velocity", 10, 32, kF);
  for (Twin* t : {&resid, &gx, &ada_x, &actions}) ts.mark_output(*t);

  auto run = [&] {
    Backend& g = gpu();
    g.resize_pad_normalize(img.gpu, raw.gpu);
    g.patch_embed(patches.gpu, img.gpu, pw.gpu, pb.gpu, pos.gpu);
    g.linear(h.gpu, x.gpu, w.gpu, &bias.gpu, Activation::kGeluTanh, false);
    g.activation(act.gpu, h.gpu, Activation::kSilu);
    g.layer_norm(n.gpu, h.gpu, ln_w.gpu, ln_b.gpu, 1e-6f);
    g.add_rms_norm(n.gpu, nullptr, n2.gpu, scale.gpu, 1e-6f);
    g.qkv_split_rope(q.gpu, k.gpu, v.gpu, n2.gpu, 4, 1, 16, 3, nullptr, 10000.f);
    g.attention(att.gpu, q.gpu, k.gpu, v.gpu, AttentionParams{4, 1, 16, 0.25f, 1});
    g.geglu(gl.gpu, att.gpu);
    g.linear(resid.gpu, gl.gpu, w2.gpu, nullptr, Activation::kNone, true);
    g.gated_add(gx.gpu, att.gpu, gate.gpu);
    g.add_ada_rms_norm(ada_x.gpu, &att.gpu, &gate.gpu, ada_y.gpu, msc.gpu, msh.gpu, 1e-6f);
    g.embed_gather(emb.gpu, table.gpu, ids.gpu, 8.f);
    g.time_embedding(temb.gpu, 0.7f, 4e-3f, 4.f);
    g.linear(sx.gpu, actions.gpu, ain.gpu, &ain_b.gpu, Activation::kNone, false);
    g.euler_update(actions.gpu, vel.gpu, -0.1f);
  };

  ts.gpu_reset();
  run();
  gpu().synchronize();
  const auto eager = ts.gpu_snapshot();

  ts.gpu_reset();
  ASSERT_NO_FATAL_FAILURE(expect_graph_matches_eager(
      ts, *cuda_be, eager, "an op failed under stream capture (allocation or sync inside an op?)",
      run));
}

}  // namespace
}  // namespace frt::gpu_test
