// Op cases (see op_case.h) of the action expert's two halves as ops: expert_attention (norm,
// qkv, RoPE at device-resident positions, attention over the valid prefix and the suffix in the
// KV cache with the key gap and blind rows, o, gated residual) and expert_mlp (norm, gate_up,
// GeGLU, down, gated residual), against float64 compositions of the per-op references.
// Run by tests/cpp/test_cpu_ops.cpp.
#include <cmath>
#include <string>

#include "op_case.h"
#include "op_reference.h"

namespace frt::test {
namespace {

using Kind = LinearPrologue::Kind;

const char* kind_name(Kind k) { return k == Kind::kRmsNorm ? "rms" : "ada"; }

std::vector<float> to_f(const std::vector<double>& d) { return {d.begin(), d.end()}; }

// expert_mlp: x[M, D] += [gate *] (geglu(pro(x) . w1[2F, D]^T) . w2[D, F]^T), pro = RMSNorm or
// adaRMS; the float64 reference composes the two GEMMs without intermediate rounding.
void expert_mlp_case(int64_t M, int64_t D, int64_t F, Kind kind, bool gate, int64_t pad) {
  const std::string name = "EXPERT_MLP(M=" + std::to_string(M) + ",D=" + std::to_string(D) +
                           ",F=" + std::to_string(F) + ",pro=" + kind_name(kind) +
                           ",gate=" + std::to_string(gate) + ",pad=" + std::to_string(pad) + ")";
  add_case("expert_mlp", name, [=](CaseContext& c) {
    std::vector<float> xv = c.random(M * D, -2.f, 2.5f);
    const float r1 = 2.f / std::sqrt(static_cast<float>(D)),
                r2 = 2.f / std::sqrt(static_cast<float>(F));
    std::vector<float> w1v = c.random(2 * F * D, -r1, r1), w2v = c.random(D * F, -r2, r2);
    std::vector<float> sv = kind == Kind::kRmsNorm ? c.random(D, 0.5f, 2.f) : c.random(D);
    std::vector<float> hv = c.random(D), gv = c.random(D);
    Tensor x = c.input(xv, M, D, D + pad);
    const std::vector<float> x0 = xv;  // as stored (input() rounds to the dtype)
    Tensor w1 = c.weight(w1v, {2 * F, D}, "gate_up");
    Tensor w2 = c.weight(w2v, {D, F}, "down");
    const LinearPrologue pro = c.prologue(kind, sv, hv, D);
    Tensor g = c.input(gv, 1, D);
    c.be().expert_mlp(x, w1, w2, pro, gate ? &g : nullptr, c.scratch(M, D), c.scratch(M, 2 * F),
                      c.scratch(M, F), c.scratch(M, D));
    const std::vector<double> gu =
        ref::fused_linear(xv, w1v, kind, sv, hv, pro.eps, nullptr, M, 2 * F, D, nullptr);
    std::vector<double> want(static_cast<size_t>(M * D));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < D; ++n) {
        double s = 0;
        for (int64_t f = 0; f < F; ++f)
          s += ref::gelu_tanh(gu[m * 2 * F + f]) * gu[m * 2 * F + F + f] * w2v[n * F + f];
        want[m * D + n] = x0[m * D + n] + (gate ? gv[n] : 1.0) * s;
      }
    c.expect("x", x, want);
  });
}

// expert_attention with W = width, Hq x D query heads, Hkv kv heads, P padded prefix rows of
// which `valid` are keys, S suffix rows.
void expert_attention_case(int64_t S, int64_t W, int Hq, int Hkv, int D, int P, int valid,
                           Kind kind, bool gate, int blind) {
  const std::string name =
      "EXPERT_ATTENTION(S=" + std::to_string(S) + ",W=" + std::to_string(W) +
      ",Hq=" + std::to_string(Hq) + ",Hkv=" + std::to_string(Hkv) + ",D=" + std::to_string(D) +
      ",P=" + std::to_string(P) + ",valid=" + std::to_string(valid) + ",pro=" + kind_name(kind) +
      ",gate=" + std::to_string(gate) + ",blind=" + std::to_string(blind) + ")";
  add_case("expert_attention", name, [=](CaseContext& c) {
    const int64_t QC = int64_t{Hq} * D, KC = int64_t{Hkv} * D, NQKV = QC + 2 * KC;
    std::vector<float> xv = c.random(S * W, -2.f, 2.5f);
    const float r1 = 2.f / std::sqrt(static_cast<float>(W));
    const float r2 = 2.f / std::sqrt(static_cast<float>(QC));
    std::vector<float> wqv = c.random(NQKV * W, -r1, r1), wov = c.random(W * QC, -r2, r2);
    std::vector<float> sv = kind == Kind::kRmsNorm ? c.random(W, 0.5f, 2.f) : c.random(W);
    std::vector<float> hv = c.random(W), gv = c.random(W);
    std::vector<float> kcv = c.random((P + S) * KC, -2.f, 2.f), vcv = c.random((P + S) * KC);
    Tensor x = c.input(xv, S, W);
    const std::vector<float> x0 = xv;  // as stored
    ExpertAttention a;
    a.qkv_w = c.weight(wqv, {NQKV, W}, "qkv");
    a.o_w = c.weight(wov, {W, QC}, "o");
    a.pro = c.prologue(kind, sv, hv, W);
    Tensor g = c.input(gv, 1, W);
    a.gate = gate ? &g : nullptr;
    a.k_cache = c.input(kcv, P + S, KC);
    a.v_cache = c.input(vcv, P + S, KC);
    a.prefix_rows = P;
    const int32_t vd = valid;
    a.attn = AttentionParams{Hq,    Hkv,
                             D,     1.f / std::sqrt(static_cast<float>(D)),
                             blind, c.input_raw(DType::kI32, {1}, &vd),
                             P};
    a.rope_theta = 10000.f;
    a.staged = c.scratch(S, W);
    a.qkv = c.scratch(S, NQKV);
    a.q = c.scratch(S, QC);
    a.attn_out = c.scratch(S, QC);
    a.product = c.scratch(S, W);
    c.be().expert_attention(x, a);

    // float64: qkv, RoPE at valid + row, the suffix K/V after the prefix, attention with the gap
    // [valid, P), o, residual.
    const std::vector<float> qkv =
        to_f(ref::fused_linear(xv, wqv, kind, sv, hv, a.pro.eps, nullptr, S, NQKV, W, nullptr));
    const ref::QkvOut r = ref::qkv_split_rope(qkv, S, Hq, Hkv, D, 0, 10000.0, valid);
    std::vector<float> kall = kcv, vall = vcv;
    for (int64_t s = 0; s < S; ++s)
      for (int64_t j = 0; j < KC; ++j) {
        kall[(P + s) * KC + j] = static_cast<float>(r.k[s * KC + j]);
        vall[(P + s) * KC + j] = static_cast<float>(r.v[s * KC + j]);
      }
    const std::vector<double> att =
        ref::attention(to_f(r.q), kall, vall, S, P + S, a.attn, valid, P);
    const std::vector<double> o =
        ref::linear(to_f(att), wov, nullptr, S, W, QC, Activation::kNone, nullptr);
    std::vector<double> want(static_cast<size_t>(S * W));
    for (int64_t s = 0; s < S; ++s)
      for (int64_t n = 0; n < W; ++n)
        want[s * W + n] = x0[s * W + n] + (gate ? gv[n] : 1.0) * o[s * W + n];
    std::vector<double> kwant(kall.begin(), kall.end()), vwant(vall.begin(), vall.end());
    c.expect("x", x, want);
    c.expect("k_cache", a.k_cache, kwant);
    c.expect("v_cache", a.v_cache, vwant);
  });
}

}  // namespace

FRT_OP_CASES(expert_mlp) {
  expert_mlp_case(3, 16, 8, Kind::kRmsNorm, false, 0);
  expert_mlp_case(5, 32, 24, Kind::kAdaRmsNorm, true, 3);
  // The expert (Pi0.5: adaRMS + gated residual at horizon 10; Pi0: RMSNorm, 11 rows; more rows
  // than the CUDA kernel takes).
  expert_mlp_case(10, 1024, 4096, Kind::kAdaRmsNorm, true, 0);
  expert_mlp_case(11, 1024, 4096, Kind::kRmsNorm, false, 0);
  expert_mlp_case(17, 1024, 4096, Kind::kAdaRmsNorm, true, 0);
}

FRT_OP_CASES(expert_attention) {
  expert_attention_case(3, 32, 2, 1, 8, 6, 4, Kind::kRmsNorm, false, 1);     // Pi0-like, blind row
  expert_attention_case(4, 64, 4, 2, 16, 9, 9, Kind::kAdaRmsNorm, true, 0);  // GQA, no gap
  // The expert (Pi0.5: adaRMS + gated residual, 2 views, a short prompt; Pi0: blind state row).
  expert_attention_case(10, 1024, 8, 1, 256, 712, 560, Kind::kAdaRmsNorm, true, 0);
  expert_attention_case(11, 1024, 8, 1, 256, 560, 530, Kind::kRmsNorm, false, 1);
}

}  // namespace frt::test
