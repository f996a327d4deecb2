// CPU fused_linear: the unfused composition of the existing CPU ops, which is what the op means
// (backend.h): pro(x) into `staged` (add_rms_norm / add_ada_rms_norm without delta, or geglu),
// linear into y (no gate) or into `product`, then gated_add(y, product, gate). Same arithmetic
// as the model ran before the CUDA backend fused these steps. Covered by
// tests/cpp/test_cpu_ops.cpp (FUSED_LINEAR cases in tests/cpp/op_cases_fused_linear.cpp).
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_check.h"

namespace frt {

void CpuBackend::fused_linear(Tensor y, Tensor x, Tensor w, const LinearPrologue& pro,
                              const Tensor* gate, bool accumulate, Tensor staged,
                              Tensor product) {
  const char* op = "fused_linear";
  using Kind = LinearPrologue::Kind;
  cpu::check_tensor(op, "x", x, DType::kF32);
  const int64_t M = x.rows(), K = w.cols(), N = w.rows();
  cpu::check_matrix(op, "x", x, M, pro.kind == Kind::kGeglu ? 2 * K : K);
  cpu::check_arg(!gate || accumulate, op, "a gate (gated residual) needs accumulate");
  if (pro.kind != Kind::kNone) cpu::check_matrix(op, "staged", staged, M, K);
  const Tensor src = stage_prologue(*this, x, pro, staged);
  if (!gate) {
    linear(y, src, w, nullptr, Activation::kNone, accumulate);
    return;
  }
  cpu::check_matrix(op, "product", product, M, N);
  linear(product, src, w, nullptr, Activation::kNone, false);
  gated_add(y, product, *gate);
}

// The compositions are the ops' definitions (backend.h): the CPU twin runs them as they are.
void CpuBackend::expert_attention(Tensor x, const ExpertAttention& a) {
  expert_attention_composed(*this, x, a);
}
void CpuBackend::expert_mlp(Tensor x, Tensor gate_up_w, Tensor down_w, const LinearPrologue& pro,
                            const Tensor* gate, Tensor staged, Tensor gate_up, Tensor h,
                            Tensor product) {
  expert_mlp_composed(*this, x, gate_up_w, down_w, pro, gate, staged, gate_up, h, product);
}

}  // namespace frt
