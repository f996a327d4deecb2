// A Backend decorator that times every op (synchronizing before and after, so each op's time
// is its own; totals run slower than a real predict) and reports time per stage and per op.
// Used by `flashrt bench --profile` to show where a predict spends its time.
// Tests: tests/cpp/test_profiling_backend.cpp.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "backend/backend.h"

namespace frt {

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

  // Table: stage, op, calls, total ms, share; then per-stage totals.
  std::string report() const;
  void reset_stage_report() override {
    stats_.clear();
    inner_->reset_stage_report();
  }

  const char* name() const override { return inner_->name(); }
  Device device() const override { return inner_->device(); }
  DType activation_dtype() const override { return inner_->activation_dtype(); }
  Tensor alloc(DType dtype, std::initializer_list<int64_t> shape, const char* what) override {
    return inner_->alloc(dtype, shape, what);
  }
  Tensor upload_weight(HostTensor&& w, const std::string& name, WeightUse use) override {
    return inner_->upload_weight(std::move(w), name, use);
  }
  void copy_to_device(Tensor dst, const void* src, size_t bytes) override {
    inner_->copy_to_device(dst, src, bytes);
  }
  void copy_to_host(void* dst, Tensor src, size_t bytes) override {
    inner_->copy_to_host(dst, src, bytes);
  }
  void synchronize() override { inner_->synchronize(); }
  size_t bytes_allocated() const override { return inner_->bytes_allocated(); }
  size_t device_bytes_in_use() const override { return inner_->device_bytes_in_use(); }
  // Profiling runs eagerly: per-op timing needs a synchronize between ops.
  void stage(const char* name) override { stage_ = name; }
  Tensor gemm_input(Tensor x, Tensor w) override { return inner_->gemm_input(x, w); }
  Precision precision() const override { return inner_->precision(); }
  int quant_sites() const override { return inner_->quant_sites(); }
  void set_quant_mode(QuantMode mode) override { inner_->set_quant_mode(mode); }
  void reset_quant_amax() override { inner_->reset_quant_amax(); }
  std::vector<float> read_quant_amax() override { return inner_->read_quant_amax(); }
  void write_quant_scales(const std::vector<float>& s) override { inner_->write_quant_scales(s); }
  std::vector<std::string> quant_site_names() const override { return inner_->quant_site_names(); }

  void linear(Tensor y, Tensor x, Tensor w, const Tensor* bias, Activation act,
              bool accumulate) override;
  void fused_linear(Tensor y, Tensor x, Tensor w, const LinearPrologue& pro, const Tensor* gate,
                    bool accumulate, Tensor staged, Tensor product) override;
  void expert_attention(Tensor x, const ExpertAttention& a) override;
  void expert_mlp(Tensor x, Tensor gate_up_w, Tensor down_w, const LinearPrologue& pro,
                  const Tensor* gate, Tensor staged, Tensor gate_up, Tensor h,
                  Tensor product) override;
  void layer_norm(Tensor y, Tensor x, Tensor w, Tensor b, float eps) override;
  void add_rms_norm(Tensor x, const Tensor* delta, Tensor y, Tensor scale, float eps) override;
  void add_ada_rms_norm(Tensor x, const Tensor* delta, const Tensor* gate, Tensor y,
                        Tensor mod_scale, Tensor mod_shift, float eps) override;
  void gated_add(Tensor x, Tensor delta, Tensor gate) override;
  void geglu(Tensor y, Tensor gate_up) override;
  void activation(Tensor y, Tensor x, Activation act) override;
  void qkv_split_rope(Tensor q, Tensor k, Tensor v, Tensor qkv, int num_q_heads, int num_kv_heads,
                      int head_dim, int pos_offset,
                      const Tensor* pos_base, float theta) override;
  void attention(Tensor out, Tensor q, Tensor k, Tensor v, const AttentionParams& p) override;
  void patch_embed(Tensor out, Tensor img, Tensor w, Tensor b, Tensor pos) override;
  void resize_pad_normalize(Tensor out, Tensor src_u8) override;
  void embed_gather(Tensor out, Tensor table, Tensor ids, float scale) override;
  void time_embedding(Tensor out, float t, float min_period, float max_period) override;
  void euler_update(Tensor x, Tensor v, float dt) override;

 private:
  struct Stat {
    int calls = 0;
    double ms = 0;
  };
  template <typename Fn>
  void timed(const std::string& op, Fn&& fn);

  std::unique_ptr<Backend> inner_;
  std::string stage_ = "other";
  std::map<std::pair<std::string, std::string>, Stat> stats_;  // (stage, op)
};

}  // namespace frt
