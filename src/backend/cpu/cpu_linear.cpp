// CPU linear: y[M,N] (=|+=) act(x[M,K] . w[N,K]^T + bias[N]) through OpenBLAS sgemm, with the
// bias / activation / accumulate epilogue as plain loops. Covered by tests/cpp/test_cpu_ops.cpp
// (LINEAR cases in tests/cpp/op_cases_dense.cpp).
#include <cblas.h>

#include <climits>

#include "backend/cpu/cpu_activation.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_check.h"

namespace frt {

void CpuBackend::linear(Tensor y, Tensor x, Tensor w, const Tensor* bias, Activation act,
                        bool accumulate) {
  const char* op = "linear";
  cpu::check_tensor(op, "x", x, DType::kF32);
  cpu::check_tensor(op, "w", w, DType::kF32);
  const int64_t M = x.rows(), K = x.cols(), N = w.rows();
  cpu::check_matrix(op, "x", x, M, K);
  cpu::check_matrix(op, "w", w, N, K);
  cpu::check_matrix(op, "y", y, M, N);
  if (bias) cpu::check_vector(op, "bias", *bias, N);
  cpu::check_arg(M < INT_MAX && N < INT_MAX && K < INT_MAX && x.ld() < INT_MAX &&
                     w.ld() < INT_MAX && y.ld() < INT_MAX,
                 op, "dimensions exceed the BLAS int range");
  if (M == 0 || N == 0) return;

  const float* b = bias ? bias->as<const float>() : nullptr;
  // act(..) must be applied before the residual add: with both, the product goes to scratch.
  const bool via_scratch = accumulate && act != Activation::kNone;
  float* dst = via_scratch ? scratch(static_cast<size_t>(M * N)) : y.as<float>();
  const int64_t ld_dst = via_scratch ? N : y.ld();
  const float beta = (accumulate && !via_scratch) ? 1.f : 0.f;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(N),
              static_cast<int>(K), 1.f, x.as<const float>(), static_cast<int>(x.ld()),
              w.as<const float>(), static_cast<int>(w.ld()), beta, dst, static_cast<int>(ld_dst));

  if (!via_scratch && !b && act == Activation::kNone) return;
  float* out = y.as<float>();
  const int64_t ldy = y.ld();
#pragma omp parallel for schedule(static) if (M * N > (1 << 16))
  for (int64_t r = 0; r < M; ++r) {
    float* d = dst + r * ld_dst;
    float* o = out + r * ldy;
    for (int64_t c = 0; c < N; ++c) {
      const float v = cpu::apply_activation(act, b ? d[c] + b[c] : d[c]);
      if (via_scratch)
        o[c] += v;
      else
        o[c] = v;
    }
  }
}

}  // namespace frt
