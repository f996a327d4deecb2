// Op cases (see op_case.h) of qkv_split_rope and attention: the Gemma prefix / expert suffix
// shapes (8 q heads, 1 kv head, head_dim 256, k/v as row slices of a KV cache, blind_rows=1),
// SigLIP (16 x 72, q/k/v as column slices of the fused QKV buffer) and small odd GQA shapes;
// the device-resident lengths: attention's key gap (key_valid / key_gap_end, masked rows hold
// large junk) and qkv_split_rope's pos_base.
// Run by tests/cpp/test_cpu_ops.cpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "op_case.h"
#include "op_reference.h"

namespace frt::test {
namespace {

// k/v land in rows [cache_row, cache_row + S) of a KV cache of cache_rows rows.
// pos_base >= 0: positions also add pos_base, passed as an i32 [1] backend tensor.
void rope_case(int64_t S, int Hq, int Hkv, int D, int pos, float theta, int64_t cache_rows,
               int64_t cache_row, int64_t pad, int pos_base = -1) {
  const std::string name =
      "QKV_SPLIT_ROPE(S=" + std::to_string(S) + ",Hq=" + std::to_string(Hq) +
      (pos_base >= 0 ? ",pos_base=" + std::to_string(pos_base) : std::string()) +
      ",Hkv=" + std::to_string(Hkv) + ",D=" + std::to_string(D) + ",pos=" + std::to_string(pos) +
      ",theta=" + std::to_string(static_cast<int>(theta)) + ",cache=" + std::to_string(cache_row) +
      "of" + std::to_string(cache_rows) + ",pad=" + std::to_string(pad) + ")";
  add_case("qkv_split_rope", name, [=](CaseContext& c) {
    const int64_t qw = int64_t{Hq} * D, kw = int64_t{Hkv} * D, width = qw + 2 * kw;
    std::vector<float> qkv_v = c.random(S * width);
    Tensor qkv = c.input(qkv_v, S, width, width + pad);
    Tensor q = c.output(S, qw, qw + pad);
    Tensor k_cache = c.output(cache_rows, kw), v_cache = c.output(cache_rows, kw);
    Tensor k = k_cache.row_slice(cache_row, S), v = v_cache.row_slice(cache_row, S);
    const int32_t base = pos_base;
    Tensor base_t = pos_base >= 0 ? c.input_raw(DType::kI32, {1}, &base) : Tensor{};
    c.be().qkv_split_rope(q, k, v, qkv, Hq, Hkv, D, pos, pos_base >= 0 ? &base_t : nullptr,
                          theta);
    ref::QkvOut r = ref::qkv_split_rope(qkv_v, S, Hq, Hkv, D, pos, theta, std::max(pos_base, 0));
    c.expect("q", q, r.q);
    c.expect("k", k, r.k);
    c.expect("v", v, r.v);
  });
}

enum class KvLayout { kSeparate, kFusedQkv, kCacheSlice };

void attention_case(int64_t Sq, int64_t Skv, int Hq, int Hkv, int D, int blind, KvLayout layout,
                    float amplitude) {
  const char* lay = layout == KvLayout::kFusedQkv     ? "fused_qkv"
                    : layout == KvLayout::kCacheSlice ? "cache_slice"
                                                      : "separate";
  const std::string name = "ATTENTION(Sq=" + std::to_string(Sq) + ",Skv=" + std::to_string(Skv) +
                           ",Hq=" + std::to_string(Hq) + ",Hkv=" + std::to_string(Hkv) +
                           ",D=" + std::to_string(D) + ",blind=" + std::to_string(blind) +
                           ",kv=" + lay + ",amp=" + std::to_string(static_cast<int>(amplitude)) +
                           ")";
  add_case("attention", name, [=](CaseContext& c) {
    const int64_t qw = int64_t{Hq} * D, kw = int64_t{Hkv} * D;
    const AttentionParams p{Hq, Hkv, D, 1.f / std::sqrt(static_cast<float>(D)), blind};
    std::vector<float> qv = c.random(Sq * qw, -amplitude, amplitude);
    std::vector<float> kv = c.random(Skv * kw, -amplitude, amplitude);
    std::vector<float> vv = c.random(Skv * kw);
    Tensor q, k, v;
    if (layout == KvLayout::kFusedQkv) {
      // SigLIP: one [S, q | k | v] buffer, the op reads column slices.
      std::vector<float> fused(static_cast<size_t>(Sq * (qw + 2 * kw)));
      for (int64_t r = 0; r < Sq; ++r)
        for (int64_t j = 0; j < qw + 2 * kw; ++j)
          fused[r * (qw + 2 * kw) + j] = j < qw        ? qv[r * qw + j]
                                         : j < qw + kw ? kv[r * kw + j - qw]
                                                       : vv[r * kw + j - qw - kw];
      Tensor all = c.input(fused, Sq, qw + 2 * kw);
      for (int64_t r = 0; r < Sq; ++r)  // read back the dtype-rounded values
        for (int64_t j = 0; j < qw + 2 * kw; ++j)
          (j < qw        ? qv[r * qw + j]
           : j < qw + kw ? kv[r * kw + j - qw]
                         : vv[r * kw + j - qw - kw]) = fused[r * (qw + 2 * kw) + j];
      q = all.col_slice(0, qw);
      k = all.col_slice(qw, kw);
      v = all.col_slice(qw + kw, kw);
    } else if (layout == KvLayout::kCacheSlice) {
      // Expert: keys [0, Skv) of a longer KV cache whose later rows hold garbage (guards).
      const int64_t extra = 7;
      std::vector<float> kc = kv, vc = vv;
      std::vector<float> junk = c.random(extra * kw, -50.f, 50.f);
      kc.insert(kc.end(), junk.begin(), junk.end());
      vc.insert(vc.end(), junk.begin(), junk.end());
      Tensor kt = c.input(kc, Skv + extra, kw), vt = c.input(vc, Skv + extra, kw);
      kv.assign(kc.begin(), kc.begin() + Skv * kw);
      vv.assign(vc.begin(), vc.begin() + Skv * kw);
      q = c.input(qv, Sq, qw);
      k = kt.row_slice(0, Skv);
      v = vt.row_slice(0, Skv);
    } else {
      q = c.input(qv, Sq, qw);
      k = c.input(kv, Skv, kw);
      v = c.input(vv, Skv, kw);
    }
    Tensor out = c.output(Sq, qw, qw + 3);
    c.be().attention(out, q, k, v, p);
    c.expect("out", out, ref::attention(qv, kv, vv, Sq, Skv, p));
  });
}

// Keys [valid, gap_end) masked through AttentionParams::key_valid (an i32 [1] backend tensor);
// the masked rows hold junk of +-50, so any weight they got would show.
void attention_gap_case(int64_t Sq, int64_t Skv, int Hq, int Hkv, int D, int blind, int valid,
                        int gap_end) {
  const std::string name = "ATTENTION_KEY_GAP(Sq=" + std::to_string(Sq) +
                           ",Skv=" + std::to_string(Skv) + ",Hq=" + std::to_string(Hq) +
                           ",Hkv=" + std::to_string(Hkv) + ",D=" + std::to_string(D) +
                           ",blind=" + std::to_string(blind) + ",valid=" + std::to_string(valid) +
                           ",gap_end=" + std::to_string(gap_end) + ")";
  add_case("attention", name, [=](CaseContext& c) {
    const int64_t qw = int64_t{Hq} * D, kw = int64_t{Hkv} * D;
    AttentionParams p{Hq, Hkv, D, 1.f / std::sqrt(static_cast<float>(D)), blind};
    std::vector<float> qv = c.random(Sq * qw);
    std::vector<float> kv = c.random(Skv * kw), vv = c.random(Skv * kw);
    for (int64_t j = valid; j < gap_end; ++j)
      for (int64_t d = 0; d < kw; ++d) {
        kv[j * kw + d] = 50.f;
        vv[j * kw + d] = (d & 1) ? 50.f : -50.f;
      }
    Tensor q = c.input(qv, Sq, qw), k = c.input(kv, Skv, kw), v = c.input(vv, Skv, kw);
    const int32_t valid_i = valid;
    p.key_valid = c.input_raw(DType::kI32, {1}, &valid_i);
    p.key_gap_end = gap_end;
    Tensor out = c.output(Sq, qw, qw + 3);
    c.be().attention(out, q, k, v, p);
    c.expect("out", out, ref::attention(qv, kv, vv, Sq, Skv, p, valid, gap_end));
  });
}

// `batch` sequences stacked in the rows (AttentionParams::batch; SigLIP's views): q / k / v are
// column slices of one fused buffer, and each block's expectation is the reference attention
// of that block alone.
void attention_batch_case(int batch, int64_t S, int Hq, int Hkv, int D, int blind) {
  const std::string name = "ATTENTION_BATCH(batch=" + std::to_string(batch) +
                           ",S=" + std::to_string(S) + ",Hq=" + std::to_string(Hq) +
                           ",Hkv=" + std::to_string(Hkv) + ",D=" + std::to_string(D) +
                           ",blind=" + std::to_string(blind) + ")";
  add_case("attention", name, [=](CaseContext& c) {
    const int64_t qw = int64_t{Hq} * D, kw = int64_t{Hkv} * D, width = qw + 2 * kw;
    const int64_t rows = batch * S;
    AttentionParams p{Hq, Hkv, D, 1.f / std::sqrt(static_cast<float>(D)), blind};
    p.batch = batch;
    std::vector<float> fused = c.random(rows * width);
    Tensor all = c.input(fused, rows, width);  // rounds `fused` to the backend's dtype
    Tensor out = c.output(rows, qw, qw + 5);
    c.be().attention(out, all.col_slice(0, qw), all.col_slice(qw, kw),
                     all.col_slice(qw + kw, kw), p);
    AttentionParams one = p;
    one.batch = 1;
    std::vector<double> want;
    for (int b = 0; b < batch; ++b) {
      std::vector<float> q, k, v;
      for (int64_t r = b * S; r < (b + 1) * S; ++r) {
        const float* row = fused.data() + r * width;
        q.insert(q.end(), row, row + qw);
        k.insert(k.end(), row + qw, row + qw + kw);
        v.insert(v.end(), row + qw + kw, row + width);
      }
      const std::vector<double> block = ref::attention(q, k, v, S, S, one);
      want.insert(want.end(), block.begin(), block.end());
    }
    c.expect("out", out, want);
  });
}

}  // namespace

FRT_OP_CASES(attention) {
  // Gemma prefix: K/V into the first rows of the layer's cache, positions from 0.
  rope_case(37, 8, 1, 256, 0, 10000.f, 60, 0, 0);
  // Expert suffix: K/V right after a 800-token prefix, positions continue from there.
  rope_case(11, 8, 1, 256, 800, 10000.f, 820, 800, 0);
  rope_case(256, 16, 16, 72, 0, 0.f, 256, 0, 0);  // SigLIP: split only, no RoPE
  rope_case(5, 4, 2, 6, 3, 100.f, 9, 2, 3);       // odd GQA, strided qkv and q
  rope_case(2, 1, 1, 8, 5000, 10000.f, 2, 0, 1);  // far positions

  attention_case(256, 256, 16, 16, 72, 0, KvLayout::kFusedQkv, 1.f);  // SigLIP
  attention_case(200, 200, 8, 1, 256, 0, KvLayout::kSeparate, 1.f);   // Gemma prefix
  attention_case(51, 351, 8, 1, 256, 1, KvLayout::kCacheSlice, 1.f);  // pi0 suffix
  attention_case(10, 310, 8, 1, 256, 0, KvLayout::kCacheSlice, 1.f);  // pi05 suffix
  attention_case(5, 9, 6, 3, 7, 2, KvLayout::kSeparate, 1.f);         // odd GQA, blind
  attention_case(4, 4, 2, 1, 4, 4, KvLayout::kSeparate, 1.f);         // blind = Sq: no mask
  attention_case(7, 13, 2, 2, 64, 0, KvLayout::kSeparate, 16.f);      // logits ~ +-250
  attention_batch_case(2, 256, 16, 16, 72, 0);                        // SigLIP, 2 views
  attention_batch_case(3, 9, 6, 3, 8, 2);                             // GQA, blind per block

  // Device-resident lengths.
  rope_case(10, 8, 1, 256, 0, 10000.f, 10, 0, 0, 563);  // expert rows after a 563-token prompt
  rope_case(3, 2, 1, 8, 4, 100.f, 3, 0, 1, 0);          // base 0
  attention_gap_case(90, 90, 8, 1, 32, 0, 61, 90);      // prefix: padding rows masked
  attention_gap_case(90, 90, 8, 1, 32, 0, 1, 90);       // one valid key
  attention_gap_case(90, 90, 8, 1, 32, 0, 90, 90);      // no gap
  attention_gap_case(10, 100, 8, 1, 32, 0, 40, 90);     // expert: [prefix ; suffix]
  attention_gap_case(11, 101, 4, 2, 16, 1, 0, 90);      // blind row, empty valid prefix
}

}  // namespace frt::test
