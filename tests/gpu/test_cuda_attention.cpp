// CUDA qkv_split_rope and attention against the CPU fp32 reference: tiny odd sizes (head_dim
// 16, tiles and row blocks crossed, blind_rows), SigLIP (16 heads x 72, q/k/v column slices of
// the fused qkv buffer), the Gemma prefix (8 q heads / 1 kv head x 256) and the expert's suffix
// attention over [prefix ; suffix] rows of a KV cache, with blind_rows = 0 (Pi0.5) and 1 (Pi0).
// Each case prints "OP(params) out: cos=... max_abs=... worst_index=...". SKIPPED without a GPU.
// Run: build/flashrt_gpu_tests --gtest_filter='CudaOps.QkvSplitRope*:CudaOps.Attention*'
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

// ---------------------------------------------------------------- qkv_split_rope
struct RopeCase {
  int64_t S;
  int hq, hkv, d, pos_offset;
  float theta;
  int64_t cache_rows;  // k/v are rows [pos_offset, pos_offset + S) of a [cache_rows, hkv*d] cache
  DType out = kBF;
  int64_t qkv_ld = 0;
};

TEST_F(CudaOps, QkvSplitRope) {
  const std::vector<RopeCase> cases = {
      {600, 8, 1, 256, 0, 10000.f, 650},         // Gemma prefix: positions 0..599
      {10, 8, 1, 256, 600, 10000.f, 650},        // expert suffix after a 600-token prefix
      {256, 16, 16, 72, 0, 0.f, 256},            // no RoPE: plain split
      {7, 3, 1, 16, 5, 10000.f, 20, kBF, 90},    // odd, strided qkv
      {9, 2, 2, 16, 3, 10000.f, 12, kF},         // f32 outputs: CPU arithmetic mirrored
  };
  for (const RopeCase& c : cases) {
    std::ostringstream os;
    os << "QKV_SPLIT_ROPE(S=" << c.S << ",hq=" << c.hq << ",hkv=" << c.hkv << ",d=" << c.d
       << ",pos=" << c.pos_offset << ",theta=" << c.theta << ",out=" << dtype_name(c.out)
       << ",qkv_ld=" << c.qkv_ld << ")";
    SCOPED_TRACE(os.str());
    TwinSet ts(cpu(), gpu(), os.str());
    const int64_t qc = int64_t{c.hq} * c.d, kvc = int64_t{c.hkv} * c.d;
    Twin& qkv = ts.matrix("qkv", c.S, qc + 2 * kvc, kBF, -2.f, 2.f, c.qkv_ld);
    Twin& q = ts.output("q", c.S, qc, c.out);
    // The caches hold earlier rows (random) that the op must leave alone.
    Twin& kc = ts.matrix("k_cache", c.cache_rows, kvc, c.out);
    Twin& vc = ts.matrix("v_cache", c.cache_rows, kvc, c.out);
    ts.mark_output(kc);
    ts.mark_output(vc);
    const int64_t r0 = c.theta != 0.f ? c.pos_offset : 0;
    cpu().qkv_split_rope(q.cpu, kc.cpu.row_slice(r0, c.S), vc.cpu.row_slice(r0, c.S), qkv.cpu,
                         c.hq, c.hkv, c.d, c.pos_offset, nullptr, c.theta);
    gpu().qkv_split_rope(q.gpu, kc.gpu.row_slice(r0, c.S), vc.gpu.row_slice(r0, c.S), qkv.gpu,
                         c.hq, c.hkv, c.d, c.pos_offset, nullptr, c.theta);
    const Tol tol = c.out == kF ? kF32Tol : kBf16Tol;
    ts.compare("q", q, tol);
    ts.compare("k_cache", kc, tol);
    ts.compare("v_cache", vc, tol);
    ts.check_guards();
  }
}

// ---------------------------------------------------------------- attention
struct AttnCase : AttnShape {
  bool fused;           // q, k, v are column slices of one [S, (hq + 2 hkv) d] buffer (Sq == Skv)
  int64_t kv_rows = 0;  // > Skv: k/v are the first Skv rows of a longer KV cache
  DType out = kBF;
  float q_range = 2.f;  // larger q: peakier softmax
};

std::string attn_label(const AttnCase& c) {
  std::ostringstream os;
  os << "ATTENTION(" << c.label() << ",fused=" << c.fused
     << ",out=" << dtype_name(c.out) << ",q_range=" << c.q_range << ")";
  return os.str();
}

void run_attention(Backend& cpu, Backend& gpu, const AttnCase& c) {
  const std::string label = attn_label(c);
  SCOPED_TRACE(label);
  TwinSet ts(cpu, gpu, label);
  const int64_t qc = c.q_cols(), kvc = c.kv_cols();
  const AttentionParams p = c.params();
  Twin& out = ts.output("out", c.Sq, qc, c.out);
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
  cpu.attention(out.cpu, qv[0], kv[0], vv[0], p);
  gpu.attention(out.gpu, qv[1], kv[1], vv[1], p);
  ts.compare("out", out, c.out == kF ? kF32LongTol : kBf16Tol);
  ts.check_guards();
}

TEST_F(CudaOps, AttentionSmall) {
  const std::vector<AttnCase> cases = {
      {7, 7, 4, 2, 16, 0, false},                // GQA, one tile
      {7, 12, 4, 2, 16, 1, false},               // blind_rows = 1: row 0 skips the last 6 keys
      {17, 45, 2, 1, 72, 3, false},              // crosses a row block and a key tile
      {33, 33, 3, 3, 16, 0, true},               // fused strided q/k/v
      {16, 64, 1, 1, 256, 0, false, 0, kF},      // f32 output
      {5, 100, 2, 1, 40, 2, false, 130, kBF, 6.f},  // peaky softmax, KV rows of a longer cache
      {1, 1, 1, 1, 16, 0, false},                // single key
  };
  for (const AttnCase& c : cases) run_attention(cpu(), gpu(), c);
}

TEST_F(CudaOps, AttentionSiglip) {
  run_attention(cpu(), gpu(), {256, 256, 16, 16, 72, 0, true});
}

TEST_F(CudaOps, AttentionGemmaPrefix) {
  run_attention(cpu(), gpu(), {600, 600, 8, 1, 256, 0, false, 650});
}

TEST_F(CudaOps, AttentionExpertSuffix) {
  // Pi0.5: 10 action rows over [prefix 600 ; suffix 10]; Pi0: state + 50 actions, blind_rows 1.
  run_attention(cpu(), gpu(), {10, 610, 8, 1, 256, 0, false, 650});
  run_attention(cpu(), gpu(), {51, 651, 8, 1, 256, 1, false, 700});
  run_attention(cpu(), gpu(), {51, 651, 8, 1, 256, 1, false, 700, kBF, 6.f});
}

TEST_F(CudaOps, AttentionRejectsUnsupportedHeadDim) {
  Tensor q = gpu().alloc(kBF, {4, 512}, "q"), k = gpu().alloc(kBF, {4, 512}, "k");
  Tensor v = gpu().alloc(kBF, {4, 512}, "v"), o = gpu().alloc(kBF, {4, 512}, "o");
  try {
    gpu().attention(o, q, k, v, AttentionParams{1, 1, 512, 0.04f, 0});
    FAIL() << "head_dim 512 was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kNotSupported) << e.what();
    EXPECT_NE(std::string(e.what()).find("head_dim 512"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace frt::gpu_test
