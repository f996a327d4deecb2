// Pi0 (openpi `pi0`): the same SigLIP + Gemma 2B prefix as Pi0.5 (shared blocks), and an action
// expert whose suffix is [state token ; action tokens]: the state enters through state_proj, the
// flow time is mixed into each action token by action_time_mlp_in/out (SiLU), the expert norms
// are plain (1 + w) RMSNorms, and the state token does not see the action tokens.
// Tests: tests/python/test_reference_parity_pi0.py (against tests/reference/).
#pragma once

#include "models/policy.h"

namespace frt {

class Pi0Model final : public Pi0FamilyModel {
 public:
  Pi0Model(Backend& be, const SafetensorsCheckpoint& ckpt, const ModelDims& dims,
           const ModelOptions& opts);
  void predict(ModelInputs& inputs, Dumps& dumps) override;
};

}  // namespace frt
