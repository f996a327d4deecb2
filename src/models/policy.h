// The models of the Pi0 family behind one interface, so the engine does not care which runs.
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "models/blocks.h"
#include "models/expert.h"
#include "models/model_config.h"
#include "models/weights.h"

namespace frt {

class SafetensorsCheckpoint;

class PolicyModel {
 public:
  virtual ~PolicyModel() = default;
  // Runs the whole predict; on return inputs.x holds the normalized actions.
  virtual void predict(ModelInputs& inputs, Dumps& dumps) = 0;
};

// What Pi0.5 and Pi0 both hold (weights, buffers, the Euler schedule) and the end of an Euler
// step they share. Subclasses differ only in the suffix (src/models/pi05.cpp, pi0.cpp).
class Pi0FamilyModel : public PolicyModel {
 protected:
  // suffix_rows: suffix tokens per step beyond the action horizon (Pi0's state token: 1).
  Pi0FamilyModel(Backend& be, const SafetensorsCheckpoint& ckpt, const ModelDims& dims,
                 const ModelOptions& opts, int extra_suffix_rows);
  // Final expert norm over the suffix, action_out_proj over the H action rows starting at
  // `first_action_row`, then x += dt * v (the velocity of step 0 is dumped).
  void finish_step(int step, int suffix_rows, int first_action_row, const ExpertNorm& final_norm,
                   ModelInputs& in, Dumps& dumps);

  Backend& be_;
  ModelDims dims_;
  ModelOptions opts_;
  Pi0Weights w_;
  Workspace ws_;
  std::vector<float> schedule_;  // t of each Euler step
};

// Pi05Model or Pi0Model by dims.arch; weights are loaded onto `be`.
std::unique_ptr<PolicyModel> make_policy(Backend& be, const SafetensorsCheckpoint& ckpt,
                                         const ModelDims& dims, const ModelOptions& opts);

}  // namespace frt
