// CPU elementwise ops: gated_add, geglu, activation, embed_gather, time_embedding and
// euler_update. Covered by tests/cpp/test_cpu_ops.cpp (cases in tests/cpp/op_cases_dense.cpp
// and tests/cpp/op_cases_misc.cpp).
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numbers>

#include "backend/cpu/cpu_activation.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_check.h"
#include "core/status.h"

namespace frt {

namespace {
// The double a caller meant by a float literal: the shortest decimal that rounds to `f`, read
// back as a double (4e-3f -> 0.004, not 0.0040000001899...). openpi computes the time embedding
// from Python floats in float64; with periods down to 4e-3 the float's rounding error alone
// would move the angle by ~1e-4 rad.
double intended_double(float f) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf) - 1, f);
  *res.ptr = '\0';
  return std::strtod(buf, nullptr);
}
}  // namespace

void CpuBackend::gated_add(Tensor x, Tensor delta, Tensor gate) {
  const char* op = "gated_add";
  cpu::check_tensor(op, "x", x, DType::kF32);
  const int64_t M = x.rows(), D = x.cols();
  cpu::check_matrix(op, "delta", delta, M, D);
  cpu::check_vector(op, "gate", gate, D);
  const float* g = gate.as<const float>();
#pragma omp parallel for schedule(static) if (M * D > (1 << 16))
  for (int64_t r = 0; r < M; ++r) {
    float* xr = x.as<float>() + r * x.ld();
    const float* dr = delta.as<const float>() + r * delta.ld();
    for (int64_t c = 0; c < D; ++c)
      xr[c] = static_cast<float>(xr[c] + static_cast<double>(g[c]) * dr[c]);
  }
}

void CpuBackend::geglu(Tensor y, Tensor gate_up) {
  const char* op = "geglu";
  cpu::check_tensor(op, "gate_up", gate_up, DType::kF32);
  const int64_t S = gate_up.rows(), F = gate_up.cols() / 2;
  cpu::check_arg(gate_up.cols() % 2 == 0, op, "gate_up has an odd number of columns");
  cpu::check_matrix(op, "y", y, S, F);
#pragma omp parallel for schedule(static) if (S * F > (1 << 16))
  for (int64_t r = 0; r < S; ++r) {
    const float* gr = gate_up.as<const float>() + r * gate_up.ld();
    float* yr = y.as<float>() + r * y.ld();
    for (int64_t c = 0; c < F; ++c)
      yr[c] = static_cast<float>(static_cast<double>(cpu::gelu_tanh(gr[c])) * gr[F + c]);
  }
}

void CpuBackend::activation(Tensor y, Tensor x, Activation act) {
  const char* op = "activation";
  cpu::check_tensor(op, "x", x, DType::kF32);
  const int64_t M = x.rows(), D = x.cols();
  cpu::check_matrix(op, "y", y, M, D);
  // Element by element, reading before writing: y may alias x.
#pragma omp parallel for schedule(static) if (M * D > (1 << 16))
  for (int64_t r = 0; r < M; ++r) {
    const float* xr = x.as<const float>() + r * x.ld();
    float* yr = y.as<float>() + r * y.ld();
    for (int64_t c = 0; c < D; ++c) yr[c] = cpu::apply_activation(act, xr[c]);
  }
}

void CpuBackend::embed_gather(Tensor out, Tensor table, Tensor ids, float scale) {
  const char* op = "embed_gather";
  cpu::check_tensor(op, "table", table, DType::kF32);
  cpu::check_tensor(op, "ids", ids, DType::kI32);
  const int64_t T = ids.numel(), V = table.rows(), D = table.cols();
  cpu::check_vector(op, "ids", ids, T, DType::kI32);
  cpu::check_matrix(op, "table", table, V, D);
  cpu::check_matrix(op, "out", out, T, D);
  const int32_t* id = ids.as<const int32_t>();
  for (int64_t t = 0; t < T; ++t)  // validate all ids before writing anything
    if (id[t] < 0 || id[t] >= V)
      throw_error(Status::kInvalidArgument, op, ": ids[", t, "] = ", id[t],
                  " is outside the embedding table's ", V, " rows; expected 0 <= id < ", V,
                  " (tokenizer and checkpoint vocabularies differ?)");
  for (int64_t t = 0; t < T; ++t) {
    const float* src = table.as<const float>() + id[t] * table.ld();
    float* dst = out.as<float>() + t * out.ld();
    for (int64_t c = 0; c < D; ++c) dst[c] = src[c] * scale;
  }
}

void CpuBackend::time_embedding(Tensor out, float t, float min_period, float max_period) {
  const char* op = "time_embedding";
  cpu::check_tensor(op, "out", out, DType::kF32);
  const int64_t D = out.numel();
  cpu::check_vector(op, "out", out, D);
  cpu::check_arg(D >= 2 && D % 2 == 0, op, "out needs an even number of elements (>= 2)");
  cpu::check_arg(min_period > 0 && max_period > 0, op, "periods must be positive");
  const int64_t half = D / 2;
  const double lo = intended_double(min_period), hi = intended_double(max_period);
  const double time = t;  // openpi's t is float32, widened exactly
  float* o = out.as<float>();
  for (int64_t i = 0; i < half; ++i) {
    // fraction = linspace(0, 1, half); period = lo * (hi / lo)^fraction.
    const double fraction = half > 1 ? static_cast<double>(i) / static_cast<double>(half - 1) : 0;
    const double period = lo * std::pow(hi / lo, fraction);
    const double angle = 1.0 / period * 2.0 * std::numbers::pi * time;
    o[i] = static_cast<float>(std::sin(angle));
    o[half + i] = static_cast<float>(std::cos(angle));
  }
}

void CpuBackend::euler_update(Tensor x, Tensor v, float dt) {
  const char* op = "euler_update";
  cpu::check_tensor(op, "x", x, DType::kF32);
  const int64_t M = x.rows(), D = x.cols();
  cpu::check_matrix(op, "v", v, M, D);
  for (int64_t r = 0; r < M; ++r) {
    float* xr = x.as<float>() + r * x.ld();
    const float* vr = v.as<const float>() + r * v.ld();
    for (int64_t c = 0; c < D; ++c) xr[c] += dt * vr[c];  // fp32, as openpi's x_t + dt * v_t
  }
}

}  // namespace frt
