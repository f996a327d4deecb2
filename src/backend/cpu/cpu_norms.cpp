// CPU norms: layer_norm (SigLIP), add_rms_norm (Gemma, scale = 1 + w folded at load) and
// add_ada_rms_norm (Pi0.5 expert, gated residual). Row statistics accumulate in double; each
// output is computed in double and rounded once. Covered by tests/cpp/test_cpu_ops.cpp
// (LAYER_NORM, ADD_RMS_NORM, ADD_ADA_RMS_NORM cases in tests/cpp/op_cases_dense.cpp).
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_check.h"

namespace frt {

namespace {
// 1 / sqrt(mean(x^2) + eps) of one row.
double inv_rms(const float* x, int64_t n, float eps) {
  double ss = 0;
  for (int64_t c = 0; c < n; ++c) ss += static_cast<double>(x[c]) * x[c];
  return 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
}
}  // namespace

void CpuBackend::layer_norm(Tensor y, Tensor x, Tensor w, Tensor b, float eps) {
  const char* op = "layer_norm";
  cpu::check_tensor(op, "x", x, DType::kF32);
  const int64_t M = x.rows(), D = x.cols();
  cpu::check_matrix(op, "y", y, M, D);
  cpu::check_vector(op, "w", w, D);
  cpu::check_vector(op, "b", b, D);
  const float* wp = w.as<const float>();
  const float* bp = b.as<const float>();
#pragma omp parallel for schedule(static) if (M * D > (1 << 15))
  for (int64_t r = 0; r < M; ++r) {
    const float* xr = x.as<const float>() + r * x.ld();
    float* yr = y.as<float>() + r * y.ld();
    double sum = 0;
    for (int64_t c = 0; c < D; ++c) sum += xr[c];
    const double mean = sum / static_cast<double>(D);
    double var = 0;  // two passes: no cancellation from E[x^2] - E[x]^2
    for (int64_t c = 0; c < D; ++c) {
      const double d = xr[c] - mean;
      var += d * d;
    }
    const double inv = 1.0 / std::sqrt(var / static_cast<double>(D) + eps);
    for (int64_t c = 0; c < D; ++c)
      yr[c] = static_cast<float>((xr[c] - mean) * inv * wp[c] + bp[c]);
  }
}

void CpuBackend::add_rms_norm(Tensor x, const Tensor* delta, Tensor y, Tensor scale, float eps) {
  const char* op = "add_rms_norm";
  cpu::check_tensor(op, "x", x, DType::kF32);
  const int64_t M = x.rows(), D = x.cols();
  if (delta) cpu::check_matrix(op, "delta", *delta, M, D);
  cpu::check_matrix(op, "y", y, M, D);
  cpu::check_vector(op, "scale", scale, D);
  const float* sp = scale.as<const float>();
#pragma omp parallel for schedule(static) if (M * D > (1 << 15))
  for (int64_t r = 0; r < M; ++r) {
    float* xr = x.as<float>() + r * x.ld();
    float* yr = y.as<float>() + r * y.ld();
    if (delta) {
      const float* dr = delta->as<const float>() + r * delta->ld();
      for (int64_t c = 0; c < D; ++c) xr[c] += dr[c];
    }
    const double inv = inv_rms(xr, D, eps);
    for (int64_t c = 0; c < D; ++c) yr[c] = static_cast<float>(xr[c] * inv * sp[c]);
  }
}

void CpuBackend::add_ada_rms_norm(Tensor x, const Tensor* delta, const Tensor* gate, Tensor y,
                                  Tensor mod_scale, Tensor mod_shift, float eps) {
  const char* op = "add_ada_rms_norm";
  cpu::check_tensor(op, "x", x, DType::kF32);
  const int64_t M = x.rows(), D = x.cols();
  if (delta) cpu::check_matrix(op, "delta", *delta, M, D);
  if (gate) {
    cpu::check_arg(delta != nullptr, op, "a gate without a delta");
    cpu::check_vector(op, "gate", *gate, D);
  }
  cpu::check_matrix(op, "y", y, M, D);
  cpu::check_vector(op, "mod_scale", mod_scale, D);
  cpu::check_vector(op, "mod_shift", mod_shift, D);
  const float* gp = gate ? gate->as<const float>() : nullptr;
  const float* msc = mod_scale.as<const float>();
  const float* msh = mod_shift.as<const float>();
#pragma omp parallel for schedule(static) if (M * D > (1 << 15))
  for (int64_t r = 0; r < M; ++r) {
    float* xr = x.as<float>() + r * x.ld();
    float* yr = y.as<float>() + r * y.ld();
    if (delta) {
      const float* dr = delta->as<const float>() + r * delta->ld();
      for (int64_t c = 0; c < D; ++c)
        xr[c] = static_cast<float>(xr[c] + (gp ? static_cast<double>(gp[c]) * dr[c] : dr[c]));
    }
    const double inv = inv_rms(xr, D, eps);
    for (int64_t c = 0; c < D; ++c)
      yr[c] = static_cast<float>(xr[c] * inv * (1.0 + msc[c]) + msh[c]);
  }
}

}  // namespace frt
