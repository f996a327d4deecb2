// The tensor-core flash-attention path of CUDA attention (src/backend/cuda/
// cuda_flash_attention.cu) against the CPU fp32 reference: SigLIP (16 heads x 72, q/k/v column
// slices of the fused qkv buffer), the Gemma prefix (8 q heads / 1 kv head x 256, k/v rows of a
// longer KV cache) and the expert suffix (H query rows over P + H keys, blind_rows 0 and 1), odd
// sizes (P = 1, 15, 257, 563; H = 1, 10, 51), a strided output, forced key splits (the combine
// step, including splits that blind rows see no key of), routing (which calls take the flash
// kernel, checked through flash_attention_stats), stacked sequences (AttentionParams::batch) and
// CUDA-graph capture (replay == eager, bit for bit). Each case prints
// "FLASH_ATTENTION(...) out: cos=... max_abs=...". SKIPPED without a GPU.
// Run: build/flashrt_gpu_tests --gtest_filter='FlashAttention.*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_flash_attention.h"
#include "cuda_twin.h"

namespace frt::gpu_test {
namespace {

constexpr DType kBF = DType::kBF16;
constexpr DType kF = DType::kF32;

class FlashAttention : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!frt::cuda_available(&why)) GTEST_SKIP() << why;
    cpu_ = make_cpu_backend();
    gpu_ = make_cuda_backend(0);
  }
  void TearDown() override { set_flash_attention_override({}); }
  Backend& cpu() { return *cpu_; }
  Backend& gpu() { return *gpu_; }
  std::unique_ptr<Backend> cpu_, gpu_;
};

struct Case : AttnShape {
  bool fused;           // q, k, v: column slices of one [S, (hq + 2 hkv) d] buffer (Sq == Skv)
  int64_t kv_rows = 0;  // > Skv: k/v are the first Skv rows of a longer KV cache
  int splits = 0;       // > 0: forced key splits
  float q_range = 2.f;  // larger: peakier softmax
  bool strided_out = false;  // out is a column slice of a wider buffer
  DType out = kBF;
  int batch = 1;  // AttentionParams::batch: Sq / Skv rows hold `batch` stacked sequences
};

std::string label_of(const Case& c) {
  std::ostringstream os;
  os << "FLASH_ATTENTION(" << c.label() << ",fused=" << c.fused
     << ",kv_rows=" << c.kv_rows << ",splits=" << c.splits << ",q_range=" << c.q_range
     << ",strided_out=" << c.strided_out << ",out=" << dtype_name(c.out)
     << (c.batch > 1 ? ",batch=" + std::to_string(c.batch) : std::string()) << ")";
  return os.str();
}

// Runs one case on both backends, compares, checks guards and whether the flash kernel ran.
void run_case(Backend& cpu, Backend& gpu, const Case& c, bool expect_flash = true) {
  const std::string label = label_of(c);
  SCOPED_TRACE(label);
  TwinSet ts(cpu, gpu, label);
  const int64_t qc = c.q_cols(), kvc = c.kv_cols();
  AttentionParams p = c.params();
  p.batch = c.batch;
  Twin& out = c.strided_out ? ts.output("out", c.Sq, qc, c.out, qc + 24, 8)
                            : ts.output("out", c.Sq, qc, c.out);
  Tensor qv[2], kv[2], vv[2];  // [cpu, gpu]
  if (c.fused) {
    Twin& qkv = ts.matrix("qkv", c.Sq, qc + 2 * kvc, kBF, -c.q_range, c.q_range);
    for (int s = 0; s < 2; ++s) {
      const Tensor& t = s ? qkv.gpu : qkv.cpu;
      qv[s] = t.col_slice(0, qc);
      kv[s] = t.col_slice(qc, kvc);
      vv[s] = t.col_slice(qc + kvc, kvc);
    }
  } else {
    const int64_t rows = c.kv_rows ? c.kv_rows : c.Skv;
    Twin& q = ts.matrix("q", c.Sq, qc, kBF, -c.q_range, c.q_range);
    Twin& k = ts.matrix("k_cache", rows, kvc, kBF);
    Twin& v = ts.matrix("v_cache", rows, kvc, kBF);
    for (int s = 0; s < 2; ++s) {
      qv[s] = s ? q.gpu : q.cpu;
      kv[s] = (s ? k.gpu : k.cpu).row_slice(0, c.Skv);
      vv[s] = (s ? v.gpu : v.cpu).row_slice(0, c.Skv);
    }
  }
  EXPECT_EQ(flash_attention_would_handle(out.gpu, qv[1], kv[1], vv[1], p), expect_flash);
  set_flash_attention_override({false, c.splits});
  const FlashAttentionStats before = flash_attention_stats();
  cpu.attention(out.cpu, qv[0], kv[0], vv[0], p);
  gpu.attention(out.gpu, qv[1], kv[1], vv[1], p);
  gpu.synchronize();
  const FlashAttentionStats after = flash_attention_stats();
  EXPECT_EQ(after.launches - before.launches, expect_flash ? 1u : 0u)
      << "the call did not take the expected path";
  if (expect_flash && c.splits > 1 && c.Skv / c.batch > 64)
    EXPECT_GT(after.last_splits, 1) << "forced splits did not split";
  ts.compare("out", out, c.out == kF ? kF32LongTol : kBf16Tol);
  ts.check_guards();
}

TEST_F(FlashAttention, Siglip) {
  run_case(cpu(), gpu(), {256, 256, 16, 16, 72, 0, true});                  // one view
  run_case(cpu(), gpu(), {256, 256, 16, 16, 72, 0, true, 0, 0, 6.f});       // peaky softmax
  run_case(cpu(), gpu(), {256, 256, 16, 16, 72, 0, true, 0, 3, 2.f, true}); // split, strided out
}

// Every view's SigLIP attention in one launch (AttentionParams::batch), against the CPU twin;
// the one-launch claim is checked by the launch counter. Also the Gemma shapes stacked, with
// forced key splits (the combine maps grid y back to sequence and kv head).
TEST_F(FlashAttention, StackedSequencesInOneLaunch) {
  Case two_views{512, 512, 16, 16, 72, 0, true};
  two_views.batch = 2;
  run_case(cpu(), gpu(), two_views);
  Case three_views{768, 768, 16, 16, 72, 0, true, 0, 0, 6.f, true};
  three_views.batch = 3;
  run_case(cpu(), gpu(), three_views);
  Case suffixes{20, 620, 8, 1, 256, 1, false, 700, 4};  // 2 x (10 rows over 310 keys), blind
  suffixes.batch = 2;
  run_case(cpu(), gpu(), suffixes);
  Case gqa{66, 66, 4, 2, 40, 0, false, 0, 3};  // 3 x 22 rows, GQA, split
  gqa.batch = 3;
  run_case(cpu(), gpu(), gqa);
}

TEST_F(FlashAttention, SiglipOddSizes) {
  run_case(cpu(), gpu(), {15, 15, 16, 16, 72, 0, true});
  run_case(cpu(), gpu(), {257, 257, 16, 16, 72, 0, true});
  run_case(cpu(), gpu(), {1, 1, 16, 16, 72, 0, true});
  run_case(cpu(), gpu(), {33, 33, 4, 2, 40, 0, true});       // GQA, d 40 (pads to 80)
  run_case(cpu(), gpu(), {70, 130, 3, 1, 16, 2, false, 140});  // d 16, blind rows, MQA
}

TEST_F(FlashAttention, GemmaPrefix) {
  for (int64_t P : {1, 15, 257, 563}) run_case(cpu(), gpu(), {P, P, 8, 1, 256, 0, false, P + 60});
  run_case(cpu(), gpu(), {800, 800, 8, 1, 256, 0, false, 850, 0, 6.f});
}

TEST_F(FlashAttention, GemmaPrefixForcedSplits) {
  run_case(cpu(), gpu(), {257, 257, 8, 1, 256, 0, false, 300, 3});
  run_case(cpu(), gpu(), {563, 563, 8, 1, 256, 0, false, 600, 2, 2.f, true});
  run_case(cpu(), gpu(), {100, 100, 8, 1, 256, 0, true, 0, 4});  // fused strided q/k/v
}

TEST_F(FlashAttention, ExpertSuffix) {
  for (int blind : {0, 1}) {
    for (int64_t H : {1, 10, 51}) {
      if (blind && H == 1) continue;  // one row: blind_rows 1 hides nothing
      run_case(cpu(), gpu(), {H, 600 + H, 8, 1, 256, blind, false, 1200});
      run_case(cpu(), gpu(), {H, 300 + H, 8, 1, 256, blind, false, 400, 0, 6.f});
    }
  }
  run_case(cpu(), gpu(), {51, 1051, 8, 1, 256, 1, false, 1100, 0, 2.f, true});
  run_case(cpu(), gpu(), {1, 2, 8, 1, 256, 1, false, 2});
}

// Splits past the blind rows' last key: those rows see no key of the last splits.
TEST_F(FlashAttention, ExpertSuffixBlindRowsEmptySplits) {
  run_case(cpu(), gpu(), {51, 151, 8, 1, 256, 1, false, 160, 5});
  run_case(cpu(), gpu(), {51, 151, 8, 1, 256, 1, false, 160, 64, 6.f});
  run_case(cpu(), gpu(), {40, 200, 4, 1, 72, 1, false, 210, 4});  // small-head config split
}

TEST_F(FlashAttention, RoutingFallsBackWhereUnsupported) {
  run_case(cpu(), gpu(), {16, 64, 1, 1, 256, 0, false, 0, 0, 2.f, false, kF}, false);  // f32 out
  run_case(cpu(), gpu(), {9, 20, 2, 1, 12, 0, false}, false);  // head_dim 12: not a multiple of 8
  Tensor q = gpu().alloc(kBF, {4, 2048}, "q"), k = gpu().alloc(kBF, {8, 256}, "k");
  Tensor v = gpu().alloc(kBF, {8, 256}, "v"), o = gpu().alloc(kBF, {4, 2048}, "o");
  const AttentionParams p{8, 1, 256, 0.0625f, 0};
  EXPECT_TRUE(flash_attention_would_handle(o, q, k, v, p));
  // Views the 16-byte loads cannot take: a row stride that is not a multiple of 8 elements, a
  // data pointer off 16-byte alignment.
  Tensor wide = gpu().alloc(kBF, {8, 260}, "wide");
  EXPECT_FALSE(flash_attention_would_handle(o, q, wide.col_slice(0, 256), v, p));
  Tensor wide8 = gpu().alloc(kBF, {8, 264}, "wide8");
  EXPECT_TRUE(flash_attention_would_handle(o, q, wide8.col_slice(8, 256), v, p));
  EXPECT_FALSE(flash_attention_would_handle(o, q, wide8.col_slice(4, 256), v, p));
  // The override switches the flash path off for a shape it would take.
  set_flash_attention_override({true, 0});
  const uint64_t before = flash_attention_stats().launches;
  gpu().attention(o, q, k, v, p);
  gpu().synchronize();
  EXPECT_EQ(flash_attention_stats().launches, before);
}

// The three model shapes inside one captured graph, the suffix with forced key splits (the
// combine step, a programmatic dependent launch on sm_90+): replay == eager, bit for bit.
TEST_F(FlashAttention, CapturesIntoCudaGraph) {
  auto* cuda_be = dynamic_cast<CudaBackend*>(&gpu());
  ASSERT_NE(cuda_be, nullptr);
  TwinSet ts(cpu(), gpu(), "FLASH_GRAPH_CAPTURE");
  Twin& qkv = ts.matrix("qkv", 256, 3 * 1152, kBF);
  Twin& o1 = ts.output("siglip_out", 256, 1152, kBF);
  Twin& q2 = ts.matrix("prefix_q", 300, 2048, kBF);
  Twin& kc = ts.matrix("k_cache", 320, 256, kBF);
  Twin& vc = ts.matrix("v_cache", 320, 256, kBF);
  Twin& o2 = ts.output("prefix_out", 300, 2048, kBF);
  Twin& q3 = ts.matrix("suffix_q", 20, 2048, kBF);
  Twin& o3 = ts.output("suffix_out", 20, 2048, kBF);
  auto run = [&] {
    Backend& g = gpu();
    g.attention(o1.gpu, qkv.gpu.col_slice(0, 1152), qkv.gpu.col_slice(1152, 1152),
                qkv.gpu.col_slice(2304, 1152), AttentionParams{16, 16, 72, 0.1178511f, 0});
    g.attention(o2.gpu, q2.gpu, kc.gpu.row_slice(0, 300), vc.gpu.row_slice(0, 300),
                AttentionParams{8, 1, 256, 0.0625f, 0});
    set_flash_attention_override({false, 4});
    g.attention(o3.gpu, q3.gpu, kc.gpu.row_slice(0, 320), vc.gpu.row_slice(0, 320),
                AttentionParams{8, 1, 256, 0.0625f, 1});
    set_flash_attention_override({});
  };
  set_flash_attention_override({false, 0});
  const uint64_t before = flash_attention_stats().launches;
  ts.gpu_reset();
  run();
  gpu().synchronize();
  ASSERT_EQ(flash_attention_stats().launches - before, 3u);
  ASSERT_EQ(flash_attention_stats().last_splits, 4);  // the suffix ran split + combine
  const auto eager = ts.gpu_snapshot();

  ts.gpu_reset();
  ASSERT_NO_FATAL_FAILURE(expect_graph_matches_eager(
      ts, *cuda_be, eager, "flash attention failed under stream capture", run));
  // The replayed results are also right (not just repeatable).
  cpu().attention(o1.cpu, qkv.cpu.col_slice(0, 1152), qkv.cpu.col_slice(1152, 1152),
                  qkv.cpu.col_slice(2304, 1152), AttentionParams{16, 16, 72, 0.1178511f, 0});
  cpu().attention(o2.cpu, q2.cpu, kc.cpu.row_slice(0, 300), vc.cpu.row_slice(0, 300),
                  AttentionParams{8, 1, 256, 0.0625f, 0});
  cpu().attention(o3.cpu, q3.cpu, kc.cpu.row_slice(0, 320), vc.cpu.row_slice(0, 320),
                  AttentionParams{8, 1, 256, 0.0625f, 1});
  ts.compare("siglip_out", o1, kBf16Tol);
  ts.compare("prefix_out", o2, kBf16Tol);
  ts.compare("suffix_out", o3, kBf16Tol);
}

}  // namespace
}  // namespace frt::gpu_test
