// Pi0.5 predict, top to bottom as in openpi's PI0Pytorch.sample_actions (pi05 = True).
#include "models/pi05.h"

#include <cmath>

#include "core/status.h"

namespace frt {

namespace {
// The adaRMS (scale, shift, gate) rows precomputed at load for step s and norm site i.
ExpertNorm ada_norm(const Tensor& mod, int step, int site, int sites, int width) {
  const int64_t base = (static_cast<int64_t>(step) * sites + site) * 3;
  Tensor all = mod.reshape({mod.numel() / width, width});
  ExpertNorm n;
  n.ada = true;
  n.scale = all.row_slice(base + 0, 1);
  n.shift = all.row_slice(base + 1, 1);
  n.gate = all.row_slice(base + 2, 1);
  return n;
}
}  // namespace

Pi05Model::Pi05Model(Backend& be, const SafetensorsCheckpoint& ckpt, const ModelDims& dims,
                     const ModelOptions& opts)
    : Pi0FamilyModel(be, ckpt, dims, opts, 0) {
  FRT_CHECK(dims.arch == Arch::kPi05, "Pi05Model needs a pi05 checkpoint");
}

void Pi05Model::predict(ModelInputs& in, Dumps& dumps) {
  const ModelDims& d = dims_;
  const int H = static_cast<int>(in.x.rows());
  FRT_CHECK(H <= ws_.max_suffix, "horizon ", H, " > workspace ", ws_.max_suffix);
  FRT_CHECK(in.num_tokens >= 1 && in.num_tokens <= in.token_ids.numel(), "token count");

  // 1-2. Image tokens + text tokens, prefix pass → every layer's K (after RoPE) and V.
  const PrefixLayout pre = encode_prefix(be_, w_, d, ws_, in, dumps);

  be_.stage("denoise");
  // 3. Flow matching: x = noise, t = 1 → 0 in num_steps Euler steps of the expert.
  const GemmaDims& e = d.expert;
  const int sites = 2 * e.layers + 1;
  for (size_t s = 0; s < schedule_.size(); ++s) {
    const int step = static_cast<int>(s);
    be_.linear(ws_.sx.row_slice(0, H), in.x, w_.action_in_w, &w_.action_in_b, Activation::kNone,
               false);
    std::vector<ExpertNorm> norms;
    for (int i = 0; i < sites; ++i) norms.push_back(ada_norm(w_.adarms_mod, step, i, sites, e.width));
    for (int l = 0; l < e.layers; ++l)
      expert_layer(be_, w_.expert[l], e, ws_, l, pre, H, norms[2 * l], norms[2 * l + 1], 0);
    finish_step(step, H, 0, norms[sites - 1], in, dumps);
  }
  dumps.record("actions_normalized", in.x);
}

}  // namespace frt
