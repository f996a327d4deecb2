// Op cases (see op_case.h) of fused_linear: every prologue (none, RMSNorm, adaRMS, GeGLU) with
// and without the gated residual, odd sizes, strided x / y, and the action expert's four GEMMs
// (qkv 1024->2560, o 2048->1024, gate_up 1024->8192, down 4096->1024) at horizon rows. staged /
// product are scratch: a fusing backend leaves them alone, the CPU twin writes them.
// Run by tests/cpp/test_cpu_ops.cpp.
#include <cmath>
#include <string>

#include "op_case.h"
#include "op_reference.h"

namespace frt::test {
namespace {

using Kind = LinearPrologue::Kind;

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kRmsNorm: return "rms";
    case Kind::kAdaRmsNorm: return "ada";
    case Kind::kGeglu: return "geglu";
    case Kind::kNone: break;
  }
  return "none";
}

// pad: extra elements per row of x and y (strided views). gate implies accumulate.
void fused_linear_case(int64_t M, int64_t N, int64_t K, Kind kind, bool gate, bool acc,
                       int64_t pad) {
  const std::string name = "FUSED_LINEAR(M=" + std::to_string(M) + ",N=" + std::to_string(N) +
                           ",K=" + std::to_string(K) + ",pro=" + kind_name(kind) +
                           ",gate=" + std::to_string(gate) + ",acc=" + std::to_string(acc) +
                           ",pad=" + std::to_string(pad) + ")";
  add_case("fused_linear", name, [=](CaseContext& c) {
    const int64_t xc = kind == Kind::kGeglu ? 2 * K : K;
    // Norm inputs off-center with a spread of row scales, so a wrong inverse RMS shows.
    std::vector<float> xv = kind == Kind::kGeglu ? c.random(M * xc, -3.f, 3.f)
                                                 : c.random(M * xc, -2.f, 2.5f);
    std::vector<float> wv = c.random(N * K), y0 = c.random(M * N), gv = c.random(N);
    std::vector<float> sv = kind == Kind::kRmsNorm ? c.random(K, 0.5f, 2.f) : c.random(K);
    std::vector<float> hv = c.random(K);
    Tensor x = c.input(xv, M, xc, xc + pad);
    Tensor w = c.weight(wv, {N, K}, "w");
    const LinearPrologue pro = c.prologue(kind, sv, hv, K);
    Tensor g = c.input(gv, 1, N);
    Tensor y = acc ? c.input(y0, M, N, N + pad) : c.output(M, N, N + pad);
    Tensor staged = kind == Kind::kNone ? Tensor{} : c.scratch(M, K);
    Tensor product = gate ? c.scratch(M, N) : Tensor{};
    c.be().fused_linear(y, x, w, pro, gate ? &g : nullptr, acc, staged, product);
    c.expect("y", y,
             ref::fused_linear(xv, wv, kind, sv, hv, pro.eps, gate ? &gv : nullptr, M, N, K,
                               acc ? &y0 : nullptr));
  });
}

}  // namespace

FRT_OP_CASES(fused_linear) {
  // Odd sizes, every prologue, strided views.
  fused_linear_case(3, 7, 24, Kind::kNone, false, false, 0);
  fused_linear_case(5, 9, 40, Kind::kNone, true, true, 3);
  fused_linear_case(7, 13, 33, Kind::kRmsNorm, false, false, 5);
  fused_linear_case(2, 11, 17, Kind::kRmsNorm, false, true, 0);
  fused_linear_case(6, 5, 48, Kind::kAdaRmsNorm, false, false, 2);
  fused_linear_case(4, 21, 16, Kind::kAdaRmsNorm, true, true, 1);
  fused_linear_case(3, 10, 19, Kind::kGeglu, false, false, 4);
  fused_linear_case(9, 6, 32, Kind::kGeglu, true, true, 0);
  // The expert layer (horizon 10; Pi0: 11 rows with the state token; 51 for horizon 50).
  fused_linear_case(10, 2560, 1024, Kind::kAdaRmsNorm, false, false, 0);  // qkv, Pi0.5
  fused_linear_case(11, 2560, 1024, Kind::kRmsNorm, false, false, 0);     // qkv, Pi0
  fused_linear_case(10, 1024, 2048, Kind::kNone, true, true, 0);          // o + gated residual
  fused_linear_case(11, 1024, 2048, Kind::kNone, false, true, 0);         // o + residual (Pi0)
  fused_linear_case(3, 8192, 1024, Kind::kAdaRmsNorm, false, false, 0);   // gate_up
  fused_linear_case(51, 1024, 4096, Kind::kGeglu, true, true, 0);         // down + gated residual
}

}  // namespace frt::test
