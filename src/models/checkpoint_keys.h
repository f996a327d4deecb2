// Key names of the openpi PyTorch export, in one place (used by the weight table, detection and
// the loader).
#pragma once

#include <string>

namespace frt::keys {

inline const std::string kPrefix = "paligemma_with_expert.";
inline const std::string kVision = kPrefix + "paligemma.model.vision_tower.vision_model.";
inline const std::string kLlm = kPrefix + "paligemma.model.language_model.";
inline const std::string kExpert = kPrefix + "gemma_expert.model.";
// openpi stores the tied token-embedding table once, under the LM head's name.
inline const std::string kTiedEmbedding = kPrefix + "paligemma.lm_head.weight";
inline const std::string kUntiedEmbedding = kLlm + "embed_tokens.weight";

// "<base>layers.<i>.<rest>"
inline std::string layer(const std::string& base, int i, const std::string& rest) {
  return base + "layers." + std::to_string(i) + "." + rest;
}

}  // namespace frt::keys
