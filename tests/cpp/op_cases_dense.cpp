// Op cases (see op_case.h) of linear, layer_norm, add_rms_norm, add_ada_rms_norm, gated_add,
// geglu and activation: odd sizes, strided views, and the real SigLIP / Gemma / expert widths
// (with few rows, for speed). Run by tests/cpp/test_cpu_ops.cpp.
#include <string>

#include "op_case.h"
#include "op_reference.h"

namespace frt::test {
namespace {

const char* act_name(Activation a) {
  return a == Activation::kGeluTanh ? "gelu" : a == Activation::kSilu ? "silu" : "none";
}

// pad: extra elements per row of x and y (strided views).
void linear_case(int64_t M, int64_t N, int64_t K, bool bias, Activation act, bool acc,
                 int64_t pad) {
  const std::string name = "LINEAR(M=" + std::to_string(M) + ",N=" + std::to_string(N) +
                           ",K=" + std::to_string(K) + ",bias=" + std::to_string(bias) +
                           ",act=" + act_name(act) + ",acc=" + std::to_string(acc) +
                           ",pad=" + std::to_string(pad) + ")";
  add_case("linear", name, [=](CaseContext& c) {
    std::vector<float> xv = c.random(M * K), wv = c.random(N * K), bv = c.random(N);
    std::vector<float> y0 = c.random(M * N);
    Tensor x = c.input(xv, M, K, K + pad);
    Tensor w = c.weight(wv, {N, K}, "w");
    Tensor b = c.weight(bv, {N}, "bias");
    Tensor y = acc ? c.input(y0, M, N, N + pad) : c.output(M, N, N + pad);
    c.be().linear(y, x, w, bias ? &b : nullptr, act, acc);
    c.expect("y", y, ref::linear(xv, wv, bias ? &bv : nullptr, M, N, K, act, acc ? &y0 : nullptr));
  });
}

void layer_norm_case(int64_t rows, int64_t d, int64_t pad) {
  add_case("layer_norm",
           "LAYER_NORM(d=" + std::to_string(d) + ",rows=" + std::to_string(rows) +
               ",pad=" + std::to_string(pad) + ")",
           [=](CaseContext& c) {
             // Offset values: the mean is far from 0, so a missing subtraction shows.
             std::vector<float> xv = c.random(rows * d, 0.5f, 3.f);
             std::vector<float> wv = c.random(d), bv = c.random(d);
             Tensor x = c.input(xv, rows, d, d + pad);
             Tensor w = c.weight(wv, {d}, "w"), b = c.weight(bv, {d}, "b");
             Tensor y = c.output(rows, d, d + pad);
             c.be().layer_norm(y, x, w, b, 1e-6f);
             c.expect("y", y, ref::layer_norm(xv, wv, bv, rows, d, 1e-6f));
           });
}

void rms_norm_case(int64_t rows, int64_t d, bool delta, int64_t pad) {
  add_case("add_rms_norm",
           "ADD_RMS_NORM(d=" + std::to_string(d) + ",rows=" + std::to_string(rows) +
               ",delta=" + std::to_string(delta) + ",pad=" + std::to_string(pad) + ")",
           [=](CaseContext& c) {
             std::vector<float> xv = c.random(rows * d), dv = c.random(rows * d);
             std::vector<float> sv = c.random(d, 0.5f, 2.f);  // (1 + w), folded at load
             Tensor x = c.input(xv, rows, d, d + pad);
             Tensor dt = c.input(dv, rows, d, d + pad);
             Tensor s = c.weight(sv, {d}, "scale");
             Tensor y = c.output(rows, d, d + pad);
             c.be().add_rms_norm(x, delta ? &dt : nullptr, y, s, 1e-6f);
             ref::NormOut r = ref::add_rms_norm(xv, delta ? &dv : nullptr, sv, rows, d, 1e-6f);
             if (delta) c.expect("x", x, r.x);
             c.expect("y", y, r.y);
           });
}

void ada_rms_norm_case(int64_t rows, int64_t d, bool delta, bool gate, int64_t pad) {
  add_case("add_ada_rms_norm",
           "ADD_ADA_RMS_NORM(d=" + std::to_string(d) + ",rows=" + std::to_string(rows) +
               ",delta=" + std::to_string(delta) + ",gate=" + std::to_string(gate) +
               ",pad=" + std::to_string(pad) + ")",
           [=](CaseContext& c) {
             std::vector<float> xv = c.random(rows * d), dv = c.random(rows * d);
             std::vector<float> gv = c.random(d), scv = c.random(d), shv = c.random(d);
             Tensor x = c.input(xv, rows, d, d + pad);
             Tensor dt = c.input(dv, rows, d, d + pad);
             Tensor g = c.input(gv, 1, d), sc = c.input(scv, 1, d), sh = c.input(shv, 1, d);
             Tensor y = c.output(rows, d, d + pad);
             c.be().add_ada_rms_norm(x, delta ? &dt : nullptr, gate ? &g : nullptr, y, sc, sh,
                                     1e-6f);
             ref::NormOut r = ref::add_ada_rms_norm(xv, delta ? &dv : nullptr, gate ? &gv : nullptr,
                                                    scv, shv, rows, d, 1e-6f);
             if (delta) c.expect("x", x, r.x);
             c.expect("y", y, r.y);
           });
}

void gated_add_case(int64_t rows, int64_t d, int64_t pad) {
  add_case("gated_add",
           "GATED_ADD(d=" + std::to_string(d) + ",rows=" + std::to_string(rows) +
               ",pad=" + std::to_string(pad) + ")",
           [=](CaseContext& c) {
             std::vector<float> xv = c.random(rows * d), dv = c.random(rows * d);
             std::vector<float> gv = c.random(d);
             Tensor x = c.input(xv, rows, d, d + pad);
             Tensor dt = c.input(dv, rows, d, d + pad);
             Tensor g = c.input(gv, 1, d);
             c.be().gated_add(x, dt, g);
             c.expect("x", x, ref::gated_add(xv, dv, gv, rows, d));
           });
}

void geglu_case(int64_t S, int64_t F, int64_t pad) {
  add_case("geglu",
           "GEGLU(S=" + std::to_string(S) + ",F=" + std::to_string(F) +
               ",pad=" + std::to_string(pad) + ")",
           [=](CaseContext& c) {
             std::vector<float> gu = c.random(S * 2 * F, -4.f, 4.f);
             Tensor in = c.input(gu, S, 2 * F, 2 * F + pad);
             Tensor y = c.output(S, F, F + pad);
             c.be().geglu(y, in);
             c.expect("y", y, ref::geglu(gu, S, F));
           });
}

// in_place: y is x (the contract allows aliasing).
void activation_case(Activation act, int64_t rows, int64_t d, bool in_place, int64_t pad) {
  add_case("activation",
           std::string("ACTIVATION(act=") + act_name(act) + ",d=" + std::to_string(d) +
               ",rows=" + std::to_string(rows) + ",in_place=" + std::to_string(in_place) +
               ",pad=" + std::to_string(pad) + ")",
           [=](CaseContext& c) {
             std::vector<float> xv = c.random(rows * d, -8.f, 8.f);
             Tensor x = c.input(xv, rows, d, d + pad);
             Tensor y = in_place ? x : c.output(rows, d, d + pad);
             c.be().activation(y, x, act);
             c.expect("y", y, ref::activation(xv, act));
           });
}

}  // namespace

FRT_OP_CASES(dense) {
  const Activation kNone = Activation::kNone, kGelu = Activation::kGeluTanh,
                   kSilu = Activation::kSilu;
  linear_case(33, 65, 47, true, kGelu, false, 0);
  linear_case(7, 5, 129, true, kSilu, true, 3);  // activation + accumulate (via scratch)
  linear_case(17, 31, 19, false, kNone, true, 5);
  linear_case(1, 3, 1, true, kNone, false, 0);
  linear_case(16, 4304, 1152, true, kGelu, false, 0);   // SigLIP fc1
  linear_case(3, 1152, 4304, true, kNone, true, 0);     // SigLIP fc2 + residual
  linear_case(4, 32768, 2048, false, kNone, false, 0);  // Gemma gate_up (2 x 16384)
  linear_case(5, 2048, 16384, false, kNone, true, 0);   // Gemma down + residual
  linear_case(10, 2560, 1024, false, kNone, false, 0);  // expert qkv (8 + 2) x 256

  layer_norm_case(5, 7, 2);
  layer_norm_case(256, 1152, 0);     // SigLIP
  rms_norm_case(33, 2048, true, 0);  // Gemma
  rms_norm_case(3, 17, false, 4);
  rms_norm_case(2, 1024, true, 1);
  ada_rms_norm_case(11, 1024, true, true, 0);  // expert, gated residual
  ada_rms_norm_case(5, 33, true, false, 3);
  ada_rms_norm_case(2, 9, false, false, 0);
  gated_add_case(11, 1024, 0);
  gated_add_case(3, 5, 2);
  geglu_case(4, 16384, 0);  // Gemma MLP
  geglu_case(7, 33, 5);
  geglu_case(3, 4096, 0);  // expert MLP
  activation_case(kGelu, 3, 1000, false, 0);
  activation_case(kSilu, 5, 17, false, 3);
  activation_case(kNone, 2, 7, false, 1);
  activation_case(kSilu, 4, 1024, true, 0);
  activation_case(kGelu, 3, 9, true, 2);
}

}  // namespace frt::test
