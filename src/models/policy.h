// The models of the Pi0 family behind one interface, so the engine does not care which runs.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "models/blocks.h"
#include "models/model_config.h"

namespace frt {

class SafetensorsCheckpoint;

class PolicyModel {
 public:
  virtual ~PolicyModel() = default;
  // Runs the whole predict; on return inputs.x holds the normalized actions.
  virtual void predict(ModelInputs& inputs, Dumps& dumps) = 0;
};

// Pi05Model or Pi0Model by dims.arch; weights are loaded onto `be`.
std::unique_ptr<PolicyModel> make_policy(Backend& be, const SafetensorsCheckpoint& ckpt,
                                         const ModelDims& dims, const ModelOptions& opts);

}  // namespace frt
