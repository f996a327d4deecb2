// Device-resident lengths on CUDA against the CPU twin: attention's key gap
// (AttentionParams::key_valid / key_gap_end: keys [valid, gap_end) masked, valid read on the
// device) on every CUDA attention path (flash narrow / wide, forced key splits including splits
// that fall entirely inside the gap, the CUDA-core fallback), and qkv_split_rope's pos_base.
// Shapes are the model's: Pi0.5 prefix self-attention over a padded 712-row prefix
// (gap_end = Skv), the expert over [padded prefix ; suffix] (gap_end = 712, blind_rows 0 / 1),
// SigLIP-sized narrow heads. Graph tests capture once with one device value, write another into
// the device int, replay, and expect the eager result for the new value bit for bit.
// Each case prints "KEY_GAP(...) out: cos=... max_abs=...". SKIPPED without a GPU.
// Run: build/flashrt_gpu_tests --gtest_filter='DeviceLengths.*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
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

class DeviceLengths : public CudaOps {
 protected:
  void TearDown() override { set_flash_attention_override({}); }
};

struct GapCase : AttnShape {
  int gap_end, valid;
  int splits = 0;        // > 0: forced key splits on the flash path
  bool fallback = false; // run the CUDA-core kernel (flash path switched off)
  DType out = kBF;
  float q_range = 2.f;
};

std::string label_of(const GapCase& c) {
  std::ostringstream os;
  os << "KEY_GAP(" << c.label() << ",gap_end=" << c.gap_end << ",valid=" << c.valid
     << ",splits=" << c.splits << ",fallback=" << c.fallback << ",out=" << dtype_name(c.out)
     << ")";
  return os.str();
}

void run_gap_case(Backend& cpu, Backend& gpu, const GapCase& c) {
  const std::string label = label_of(c);
  SCOPED_TRACE(label);
  TwinSet ts(cpu, gpu, label);
  const int64_t qc = c.q_cols(), kvc = c.kv_cols();
  Twin& q = ts.matrix("q", c.Sq, qc, kBF, -c.q_range, c.q_range);
  Twin& k = ts.matrix("k", c.Skv, kvc, kBF);
  Twin& v = ts.matrix("v", c.Skv, kvc, kBF);
  Twin& out = ts.output("out", c.Sq, qc, c.out);
  const int32_t valid = c.valid;
  Twin& kv = ts.raw("key_valid", DType::kI32, {1}, &valid);
  AttentionParams p = c.params();
  p.key_gap_end = c.gap_end;
  AttentionParams pc = p, pg = p;
  pc.key_valid = kv.cpu;
  pg.key_valid = kv.gpu;
  set_flash_attention_override({c.fallback, c.splits});
  const FlashAttentionStats before = flash_attention_stats();
  cpu.attention(out.cpu, q.cpu, k.cpu, v.cpu, pc);
  gpu.attention(out.gpu, q.gpu, k.gpu, v.gpu, pg);
  gpu.synchronize();
  const bool flash = !c.fallback && c.out == kBF;
  EXPECT_EQ(flash_attention_stats().launches - before.launches, flash ? 1u : 0u);
  ts.compare("out", out, c.out == kF ? kF32LongTol : kBf16Tol);
  ts.check_guards();
}

// Prefix self-attention over a padded prefix: gap_end = Skv (the padding rows are masked keys).
TEST_F(DeviceLengths, PrefixKeyGap) {
  for (int valid : {712, 1, 64, 530, 545, 600})  // no gap, one key, tile-aligned, typical
    run_gap_case(cpu(), gpu(), {712, 712, 8, 1, 256, 0, 712, valid});
  run_gap_case(cpu(), gpu(), {712, 712, 8, 1, 256, 0, 712, 560, 3});  // split prefix
}

// The expert over [padded prefix ; suffix]: the gap is [valid, 712), the suffix keys follow.
TEST_F(DeviceLengths, ExpertKeyGap) {
  for (int valid : {712, 1, 530, 576, 600}) {
    run_gap_case(cpu(), gpu(), {10, 722, 8, 1, 256, 0, 712, valid});      // Pi0.5
    run_gap_case(cpu(), gpu(), {51, 763, 8, 1, 256, 1, 712, valid});      // Pi0: blind state row
  }
  run_gap_case(cpu(), gpu(), {10, 722, 8, 1, 256, 0, 712, 560, 0, false, kBF, 6.f});  // peaky
}

// Forced splits: with a short valid prefix whole splits land in the gap (neutral partials); the
// maximum split count gives every split one visible tile or none.
TEST_F(DeviceLengths, ExpertKeyGapSplits) {
  for (int splits : {2, 8, 23, 64}) {
    run_gap_case(cpu(), gpu(), {10, 722, 8, 1, 256, 0, 712, 100, splits});
    run_gap_case(cpu(), gpu(), {51, 763, 8, 1, 256, 1, 712, 1, splits});
    run_gap_case(cpu(), gpu(), {10, 722, 8, 1, 256, 0, 712, 712, splits});
  }
}

// The narrow kernel (head_dim <= 80) and the CUDA-core fallback (f32 output, flash switched off).
TEST_F(DeviceLengths, NarrowAndFallback) {
  run_gap_case(cpu(), gpu(), {256, 256, 16, 16, 72, 0, 256, 100});
  run_gap_case(cpu(), gpu(), {256, 256, 16, 16, 72, 0, 256, 256});
  run_gap_case(cpu(), gpu(), {40, 240, 4, 1, 72, 1, 200, 70, 4});  // split, blind, gap < Skv
  run_gap_case(cpu(), gpu(), {40, 240, 4, 1, 72, 0, 200, 1, 3});
  for (int valid : {1, 33, 530, 712}) {
    run_gap_case(cpu(), gpu(), {10, 722, 8, 1, 256, 0, 712, valid, 0, true});
    run_gap_case(cpu(), gpu(), {51, 763, 8, 1, 256, 1, 712, valid, 0, false, kF});
  }
  run_gap_case(cpu(), gpu(), {300, 300, 8, 1, 256, 0, 300, 77, 0, true});
}

// ---------------------------------------------------------------- qkv_split_rope pos_base
struct RopeCase {
  int64_t S;
  int hq, hkv, d, pos_offset, base;
  DType out = kBF;
};

TEST_F(DeviceLengths, RopePosBase) {
  const std::vector<RopeCase> cases = {
      {10, 8, 1, 256, 0, 563},      // expert rows after a 563-token prompt (fast path)
      {10, 8, 1, 256, 712, 0},      // base 0, static offset
      {712, 8, 1, 256, 0, 0},       // prefix
      {9, 2, 2, 16, 3, 40, kF},     // f32 outputs, fast path
      {5, 2, 1, 24, 2, 17},         // head_dim 24: the generic kernel
      {5, 2, 1, 24, 2, 17, kF},
  };
  for (const RopeCase& c : cases) {
    std::ostringstream os;
    os << "QKV_SPLIT_ROPE_POS_BASE(S=" << c.S << ",hq=" << c.hq << ",hkv=" << c.hkv
       << ",d=" << c.d << ",pos=" << c.pos_offset << ",base=" << c.base
       << ",out=" << dtype_name(c.out) << ")";
    SCOPED_TRACE(os.str());
    TwinSet ts(cpu(), gpu(), os.str());
    const int64_t qc = int64_t{c.hq} * c.d, kvc = int64_t{c.hkv} * c.d;
    Twin& qkv = ts.matrix("qkv", c.S, qc + 2 * kvc, kBF, -2.f, 2.f);
    Twin& q = ts.output("q", c.S, qc, c.out);
    Twin& k = ts.output("k", c.S, kvc, c.out);
    Twin& v = ts.output("v", c.S, kvc, c.out);
    const int32_t base = c.base;
    Twin& pb = ts.raw("pos_base", DType::kI32, {1}, &base);
    cpu().qkv_split_rope(q.cpu, k.cpu, v.cpu, qkv.cpu, c.hq, c.hkv, c.d, c.pos_offset, &pb.cpu,
                         10000.f);
    gpu().qkv_split_rope(q.gpu, k.gpu, v.gpu, qkv.gpu, c.hq, c.hkv, c.d, c.pos_offset, &pb.gpu,
                         10000.f);
    const Tol tol = c.out == kF ? kF32Tol : kBf16Tol;
    ts.compare("q", q, tol);
    ts.compare("k", k, tol);
    ts.compare("v", v, tol);
    ts.check_guards();
  }
}

// ---------------------------------------------------------------- graph capture
// Captures `ops` once with the device ints at `a`, then for each value set: writes it into the
// device ints, replays, and compares with an eager run of the same ops at that value (bit for
// bit) and with the CPU twin (tolerance).
TEST_F(DeviceLengths, OneGraphServesEveryLength) {
  auto* cuda_be = dynamic_cast<CudaBackend*>(&gpu());
  ASSERT_NE(cuda_be, nullptr);
  TwinSet ts(cpu(), gpu(), "DEVICE_LENGTHS_GRAPH");
  const int P = 712, H = 10;
  Twin& q_pre = ts.matrix("prefix_q", P, 2048, kBF);
  Twin& kc = ts.matrix("k_cache", P + H, 256, kBF);
  Twin& vc = ts.matrix("v_cache", P + H, 256, kBF);
  Twin& o_pre = ts.output("prefix_out", P, 2048, kBF);
  Twin& qkv = ts.matrix("suffix_qkv", H, 2560, kBF, -2.f, 2.f);
  Twin& q_suf = ts.output("suffix_q", H, 2048, kBF);
  Twin& k_suf = ts.output("suffix_k", H, 256, kBF);
  Twin& v_suf = ts.output("suffix_v", H, 256, kBF);
  Twin& o_suf = ts.output("suffix_out", H, 2048, kBF);
  Twin& o_split = ts.output("suffix_out_split", H, 2048, kBF);
  const int32_t init = 600;
  Twin& valid = ts.raw("valid", DType::kI32, {1}, &init);
  auto run = [&](Backend& be, bool gpu_side) {
    const Tensor& vt = gpu_side ? valid.gpu : valid.cpu;
    auto pick = [&](Twin& t) -> Tensor { return gpu_side ? t.gpu : t.cpu; };
    AttentionParams pp{8, 1, 256, 0.0625f, 0};
    pp.key_valid = vt;
    pp.key_gap_end = P;
    be.attention(pick(o_pre), pick(q_pre), pick(kc).row_slice(0, P), pick(vc).row_slice(0, P),
                 pp);
    be.qkv_split_rope(pick(q_suf), pick(k_suf), pick(v_suf), pick(qkv), 8, 1, 256, 0, &vt,
                      10000.f);
    AttentionParams ps = pp;
    be.attention(pick(o_suf), pick(q_suf), pick(kc), pick(vc), ps);
    if (gpu_side) set_flash_attention_override({false, 8});
    be.attention(pick(o_split), pick(q_suf), pick(kc), pick(vc), ps);
    if (gpu_side) set_flash_attention_override({});
  };
  auto set_valid = [&](int32_t n) {
    cpu().copy_to_device(valid.cpu, &n, sizeof(n));
    gpu().copy_to_device(valid.gpu, &n, sizeof(n));
    gpu().synchronize();
  };
  const std::vector<int32_t> values = {530, 712, 1, 577};
  std::vector<Snapshot> eager;
  for (int32_t n : values) {
    ts.gpu_reset();
    set_valid(n);
    run(gpu(), true);
    gpu().synchronize();
    eager.push_back(ts.gpu_snapshot());
  }

  ts.gpu_reset();  // valid = 600 while capturing
  CapturedGraph graph;
  ASSERT_NO_FATAL_FAILURE(graph.capture(*cuda_be, "device-length ops failed under stream capture",
                                        [&] { run(gpu(), true); }));
  for (size_t vi = 0; vi < values.size(); ++vi) {
    ts.gpu_reset();
    set_valid(values[vi]);
    Snapshot graphed;
    ASSERT_NO_FATAL_FAILURE(graph.replay(ts, gpu(), &graphed));
    ASSERT_NO_FATAL_FAILURE(expect_same_buffers(
        graphed, eager[vi], "the replay at valid = " + std::to_string(values[vi])));
    // The replay is also right, not just repeatable.
    run(cpu(), false);
    for (Twin* t : {&o_pre, &q_suf, &k_suf, &v_suf, &o_suf, &o_split})
      ts.compare(t->what + " valid=" + std::to_string(values[vi]), *t, kBf16Tol);
  }
}

}  // namespace
}  // namespace frt::gpu_test
