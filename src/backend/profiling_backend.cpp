// ProfilingBackend: synchronize, run the op, synchronize, add the wall time to (stage, op).
#include "backend/profiling_backend.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace frt {

template <typename Fn>
void ProfilingBackend::timed(const std::string& op, Fn&& fn) {
  inner_->synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  inner_->synchronize();
  const auto t1 = std::chrono::steady_clock::now();
  Stat& s = stats_[{stage_, op}];
  s.calls += 1;
  s.ms += std::chrono::duration<double, std::milli>(t1 - t0).count();
}

std::string ProfilingBackend::report() const {
  double total = 0;
  std::map<std::string, double> per_stage;
  for (const auto& [key, s] : stats_) {
    total += s.ms;
    per_stage[key.first] += s.ms;
  }
  std::vector<std::pair<std::pair<std::string, std::string>, Stat>> rows(stats_.begin(),
                                                                         stats_.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-10s %-22s %7s %10s %6s\n", "stage", "op", "calls", "ms",
                "share");
  out += line;
  for (const auto& [key, s] : rows) {
    std::snprintf(line, sizeof line, "%-10s %-22s %7d %10.3f %5.1f%%\n", key.first.c_str(),
                  key.second.c_str(), s.calls, s.ms, total > 0 ? 100.0 * s.ms / total : 0.0);
    out += line;
  }
  for (const auto& [stage, ms] : per_stage) {
    std::snprintf(line, sizeof line, "stage %-10s %10.3f ms %5.1f%%\n", stage.c_str(), ms,
                  total > 0 ? 100.0 * ms / total : 0.0);
    out += line;
  }
  std::snprintf(line, sizeof line, "total (ops, each synchronized) %.3f ms\n", total);
  out += line;
  return out;
}

void ProfilingBackend::linear(Tensor y, Tensor x, Tensor w, const Tensor* bias, Activation act,
                              bool accumulate) {
  timed(x.rows() <= 64 ? "linear(M<=64)" : "linear", [&] {
    inner_->linear(y, x, w, bias, act, accumulate);
  });
}
void ProfilingBackend::fused_linear(Tensor y, Tensor x, Tensor w, const LinearPrologue& pro,
                                    const Tensor* gate, bool accumulate, Tensor staged,
                                    Tensor product) {
  timed(x.rows() <= 64 ? "fused_linear(M<=64)" : "fused_linear", [&] {
    inner_->fused_linear(y, x, w, pro, gate, accumulate, staged, product);
  });
}
void ProfilingBackend::expert_attention(Tensor x, const ExpertAttention& a) {
  timed("expert_attention", [&] { inner_->expert_attention(x, a); });
}
void ProfilingBackend::expert_mlp(Tensor x, Tensor gate_up_w, Tensor down_w,
                                  const LinearPrologue& pro, const Tensor* gate, Tensor staged,
                                  Tensor gate_up, Tensor h, Tensor product) {
  timed("expert_mlp", [&] {
    inner_->expert_mlp(x, gate_up_w, down_w, pro, gate, staged, gate_up, h, product);
  });
}
void ProfilingBackend::layer_norm(Tensor y, Tensor x, Tensor w, Tensor b, float eps) {
  timed("layer_norm", [&] { inner_->layer_norm(y, x, w, b, eps); });
}
void ProfilingBackend::add_rms_norm(Tensor x, const Tensor* delta, Tensor y, Tensor scale,
                                    float eps) {
  timed("add_rms_norm", [&] { inner_->add_rms_norm(x, delta, y, scale, eps); });
}
void ProfilingBackend::add_ada_rms_norm(Tensor x, const Tensor* delta, const Tensor* gate,
                                        Tensor y, Tensor mod_scale, Tensor mod_shift, float eps) {
  timed("add_ada_rms_norm",
        [&] { inner_->add_ada_rms_norm(x, delta, gate, y, mod_scale, mod_shift, eps); });
}
void ProfilingBackend::gated_add(Tensor x, Tensor delta, Tensor gate) {
  timed("gated_add", [&] { inner_->gated_add(x, delta, gate); });
}
void ProfilingBackend::geglu(Tensor y, Tensor gate_up) {
  timed("geglu", [&] { inner_->geglu(y, gate_up); });
}
void ProfilingBackend::activation(Tensor y, Tensor x, Activation act) {
  timed("activation", [&] { inner_->activation(y, x, act); });
}
void ProfilingBackend::qkv_split_rope(Tensor q, Tensor k, Tensor v, Tensor qkv, int num_q_heads,
                                      int num_kv_heads, int head_dim, int pos_offset,
                                const Tensor* pos_base, float theta) {
  timed("qkv_split_rope", [&] {
    inner_->qkv_split_rope(q, k, v, qkv, num_q_heads, num_kv_heads, head_dim, pos_offset, pos_base,
                           theta);
  });
}
void ProfilingBackend::attention(Tensor out, Tensor q, Tensor k, Tensor v,
                                 const AttentionParams& p) {
  timed("attention", [&] { inner_->attention(out, q, k, v, p); });
}
void ProfilingBackend::patch_embed(Tensor out, Tensor img, Tensor w, Tensor b, Tensor pos) {
  timed("patch_embed", [&] { inner_->patch_embed(out, img, w, b, pos); });
}
void ProfilingBackend::resize_pad_normalize(Tensor out, Tensor src_u8) {
  timed("resize_pad_normalize", [&] { inner_->resize_pad_normalize(out, src_u8); });
}
void ProfilingBackend::embed_gather(Tensor out, Tensor table, Tensor ids, float scale) {
  timed("embed_gather", [&] { inner_->embed_gather(out, table, ids, scale); });
}
void ProfilingBackend::time_embedding(Tensor out, float t, float min_period, float max_period) {
  timed("time_embedding", [&] { inner_->time_embedding(out, t, min_period, max_period); });
}
void ProfilingBackend::euler_update(Tensor x, Tensor v, float dt) {
  timed("euler_update", [&] { inner_->euler_update(x, v, dt); });
}

}  // namespace frt
