// Pi0.5 (openpi `pi05`): SigLIP + Gemma 2B prefix with the state in the prompt, and a Gemma 300M
// action expert conditioned on the flow-matching time through adaRMS. One predict =
// vision per view → prefix KV cache → num_steps Euler steps of the expert.
// Tests: tests/python/test_reference_parity.py (against tests/reference/pi05_reference.py).
#pragma once

#include "models/policy.h"

namespace frt {

class Pi05Model final : public Pi0FamilyModel {
 public:
  Pi05Model(Backend& be, const SafetensorsCheckpoint& ckpt, const ModelDims& dims,
            const ModelOptions& opts);
  void predict(ModelInputs& inputs, Dumps& dumps) override;
};

}  // namespace frt
