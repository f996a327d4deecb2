// make_policy: the model class for a checkpoint's architecture.
#include "models/policy.h"

#include "models/pi0.h"
#include "models/pi05.h"

namespace frt {

std::unique_ptr<PolicyModel> make_policy(Backend& be, const SafetensorsCheckpoint& ckpt,
                                         const ModelDims& dims, const ModelOptions& opts) {
  if (dims.arch == Arch::kPi05) return std::make_unique<Pi05Model>(be, ckpt, dims, opts);
  return std::make_unique<Pi0Model>(be, ckpt, dims, opts);
}

}  // namespace frt
