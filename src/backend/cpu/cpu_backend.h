// The CPU fp32 reference backend: plain loops (OpenMP over rows/heads), fp64 accumulation for
// long sums, OpenBLAS sgemm for the GEMMs. Its ops are spread over cpu_*.cpp by op family; each
// op checks shapes and dtypes at entry (cpu_check.h) and honors Tensor::ld() row strides.
// Covered by tests/cpp/test_cpu_ops.cpp (every op against the float64 references in
// tests/cpp/op_reference.cpp) and tests/cpp/test_op_table.cpp.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"

namespace frt {

class CpuBackend final : public Backend {
 public:
  CpuBackend() = default;
  ~CpuBackend() override = default;

  const char* name() const override { return "cpu"; }
  Device device() const override { return Device::kCpu; }
  DType activation_dtype() const override { return DType::kF32; }

  // ---- memory (cpu_backend.cpp) ----
  Tensor alloc(DType dtype, std::initializer_list<int64_t> shape, const char* what) override;
  Tensor upload_weight(HostTensor&& w, const std::string& name, WeightUse use) override;
  void copy_to_device(Tensor dst, const void* host_src, size_t bytes) override;
  void copy_to_host(void* host_dst, Tensor src, size_t bytes) override;
  void synchronize() override {}
  size_t bytes_allocated() const override { return bytes_; }

  // ---- ops ----
  // cpu_linear.cpp
  void linear(Tensor y, Tensor x, Tensor w, const Tensor* bias, Activation act,
              bool accumulate) override;
  // cpu_fused_linear.cpp
  void expert_attention(Tensor x, const ExpertAttention& a) override;
  void expert_mlp(Tensor x, Tensor gate_up_w, Tensor down_w, const LinearPrologue& pro,
                  const Tensor* gate, Tensor staged, Tensor gate_up, Tensor h,
                  Tensor product) override;
  void fused_linear(Tensor y, Tensor x, Tensor w, const LinearPrologue& pro, const Tensor* gate,
                    bool accumulate, Tensor staged, Tensor product) override;
  // cpu_norms.cpp
  void layer_norm(Tensor y, Tensor x, Tensor w, Tensor b, float eps) override;
  void add_rms_norm(Tensor x, const Tensor* delta, Tensor y, Tensor scale, float eps) override;
  void add_ada_rms_norm(Tensor x, const Tensor* delta, const Tensor* gate, Tensor y,
                        Tensor mod_scale, Tensor mod_shift, float eps) override;
  // cpu_elementwise.cpp
  void gated_add(Tensor x, Tensor delta, Tensor gate) override;
  void geglu(Tensor y, Tensor gate_up) override;
  void activation(Tensor y, Tensor x, Activation act) override;
  void embed_gather(Tensor out, Tensor table, Tensor ids, float scale) override;
  void time_embedding(Tensor out, float t, float min_period, float max_period) override;
  void euler_update(Tensor x, Tensor v, float dt) override;
  // cpu_rope.cpp
  void qkv_split_rope(Tensor q, Tensor k, Tensor v, Tensor qkv, int num_q_heads, int num_kv_heads,
                      int head_dim, int pos_offset,
                      const Tensor* pos_base, float theta) override;
  // cpu_attention.cpp
  void attention(Tensor out, Tensor q, Tensor k, Tensor v, const AttentionParams& p) override;
  // cpu_vision_ops.cpp
  void patch_embed(Tensor out, Tensor img, Tensor w, Tensor b, Tensor pos) override;
  void resize_pad_normalize(Tensor out, Tensor src_u8) override;

 private:
  // Working memory for ops that need a temporary (im2col, activation before accumulate,
  // attention scores). It grows on first use to the largest size seen and is then reused: the
  // CPU backend is never graph-captured, so this one-time growth is harmless.
  float* scratch(size_t count);
  double* scratch_f64(size_t count);

  std::vector<HostTensor> buffers_;  // alloc() and upload_weight() storage
  size_t bytes_ = 0;
  std::vector<float> scratch_;
  std::vector<double> scratch_f64_;
};

}  // namespace frt
