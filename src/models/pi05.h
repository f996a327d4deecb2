// Pi0.5 (openpi `pi05`): SigLIP + Gemma 2B prefix with the state in the prompt, and a Gemma 300M
// action expert conditioned on the flow-matching time through adaRMS. One predict =
// vision per view → prefix KV cache → num_steps Euler steps of the expert.
// Tests: tests/python/test_reference_parity.py (against tests/reference/pi05_reference.py).
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "models/blocks.h"
#include "models/model_config.h"
#include "models/weights.h"

namespace frt {

class SafetensorsCheckpoint;

// Device-side inputs of one predict (the engine validates and uploads them).
struct ModelInputs {
  std::vector<Tensor> views;  // per image slot: raw u8 [H, W, 3]; data == nullptr → masked view
  Tensor token_ids;           // i32 [num_tokens], valid tokens only (BOS first)
  int num_tokens = 0;
  Tensor x;                   // f32 [horizon, action_dim]: the noise in, the actions out
  Tensor state;               // f32 [state_dim]: Pi0 only (Pi0.5 has it in the prompt)
};

class Pi05Model {
 public:
  Pi05Model(Backend& be, const SafetensorsCheckpoint& ckpt, const ModelDims& dims,
            const ModelOptions& opts);
  // Runs the whole predict; on return inputs.x holds the normalized actions.
  void predict(ModelInputs& inputs, Dumps& dumps);

  const ModelDims& dims() const { return dims_; }
  int max_tokens() const { return opts_.max_token_len; }

 private:
  Backend& be_;
  ModelDims dims_;
  ModelOptions opts_;
  Pi0Weights w_;
  Workspace ws_;
  std::vector<float> schedule_;  // t of each Euler step
};

}  // namespace frt
