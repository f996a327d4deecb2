// make_policy: the model class for a checkpoint's architecture.
#include "models/policy.h"

#include "models/pi0.h"
#include "models/pi05.h"

#include "core/status.h"

namespace frt {

Pi0FamilyModel::Pi0FamilyModel(Backend& be, const SafetensorsCheckpoint& ckpt,
                               const ModelDims& dims, const ModelOptions& opts,
                               int extra_suffix_rows)
    : be_(be), dims_(dims), opts_(opts) {
  w_ = load_pi0_weights(be, ckpt, dims, opts.num_steps);
  ws_ = make_workspace(be, dims, opts.num_views, opts.max_token_len,
                       opts.action_horizon + extra_suffix_rows);
  schedule_ = flow_schedule(opts.num_steps);
}

void Pi0FamilyModel::finish_step(int step, int suffix_rows, int first_action_row,
                                 const ExpertNorm& final_norm, ModelInputs& in,
                                 Dumps& dumps) {
  constexpr float kRmsEps = 1e-6f;
  const int H = static_cast<int>(in.x.rows());
  expert_norm(be_, ws_, suffix_rows, final_norm, kRmsEps);
  Tensor v = ws_.velocity.row_slice(0, H);
  be_.linear(v, ws_.sn.row_slice(first_action_row, H), w_.action_out_w, &w_.action_out_b,
             Activation::kNone, false);
  if (step == 0) dumps.record("velocity.0", v);
  be_.euler_update(in.x, v, -1.0f / static_cast<float>(opts_.num_steps));
}

std::unique_ptr<PolicyModel> make_policy(Backend& be, const SafetensorsCheckpoint& ckpt,
                                         const ModelDims& dims, const ModelOptions& opts) {
  if (dims.arch == Arch::kPi05) return std::make_unique<Pi05Model>(be, ckpt, dims, opts);
  return std::make_unique<Pi0Model>(be, ckpt, dims, opts);
}

}  // namespace frt
