// Pi0 predict, top to bottom as in openpi's PI0Pytorch.sample_actions (pi05 = False).
#include "models/pi0.h"

#include "core/status.h"

namespace frt {

namespace {
ExpertNorm rms(const Tensor& scale) {
  ExpertNorm n;
  n.rms_scale = scale;
  return n;
}
}  // namespace

Pi0Model::Pi0Model(Backend& be, const SafetensorsCheckpoint& ckpt, const ModelDims& dims,
                   const ModelOptions& opts)
    : Pi0FamilyModel(be, ckpt, dims, opts, /*extra_suffix_rows=*/1) {  // + the state token
  FRT_CHECK(dims.arch == Arch::kPi0, "Pi0Model needs a pi0 checkpoint");
}

void Pi0Model::predict(ModelInputs& in, Dumps& dumps) {
  const ModelDims& d = dims_;
  const GemmaDims& e = d.expert;
  const int H = static_cast<int>(in.x.rows());
  const int S = H + 1;  // [state ; actions]
  FRT_CHECK(S <= ws_.max_suffix, "horizon ", H, " does not fit the workspace");
  FRT_CHECK(in.state.data != nullptr, "pi0 needs the state input");

  // 1-2. Image tokens + text tokens, prefix pass → every layer's K (after RoPE) and V.
  const PrefixLayout pre = encode_prefix(be_, w_, d, ws_, in, dumps);

  be_.stage("denoise");
  Tensor state_row = ws_.sx.row_slice(0, 1), action_rows = ws_.sx.row_slice(1, H);
  Tensor action_emb = ws_.so.row_slice(0, H), hidden = ws_.sn.row_slice(0, H);
  for (size_t s = 0; s < schedule_.size(); ++s) {
    // Suffix embeddings: state_proj(state); action_time_mlp_out(silu(W_a · action_in_proj(x) +
    // step bias)), the step bias holding the time half of action_time_mlp_in (weights.h).
    be_.linear(state_row, in.state, w_.state_w, &w_.state_b, Activation::kNone, false);
    be_.linear(action_emb, in.x, w_.action_in_w, &w_.action_in_b, Activation::kNone, false);
    const Tensor step_bias = w_.action_time_step_bias.row_slice(static_cast<int64_t>(s), 1);
    be_.linear(hidden, action_emb, w_.action_time_in_w, &step_bias, Activation::kSilu, false);
    be_.linear(action_rows, hidden, w_.action_time_out_w, &w_.action_time_out_b,
               Activation::kNone, false);

    // Expert layers over [prefix ; suffix]; the state row (blind_rows = 1) sees the prefix and
    // itself, the action rows see everything.
    for (int l = 0; l < e.layers; ++l) {
      const GemmaLayerWeights& lw = w_.expert[l];
      expert_layer(be_, lw, e, ws_, l, pre, S, rms(lw.input_scale), rms(lw.post_scale), 1);
    }
    finish_step(static_cast<int>(s), S, 1, rms(w_.expert_final_scale), in, dumps);
  }
  dumps.record("actions_normalized", in.x);
}

}  // namespace frt
