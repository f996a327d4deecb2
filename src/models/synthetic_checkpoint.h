// Synthetic checkpoints in exactly the openpi PyTorch layout (model.safetensors, config.json,
// assets/<id>/norm_stats.json) with deterministic random weights at realistic scales, plus a
// SentencePiece tokenizer trained on the fly for the tiny size. Real weights cannot be
// downloaded here; tests, the demo and benchmarks use these.
// Tests: tests/cpp/test_synthetic_checkpoint.cpp.
#pragma once

#include <cstdint>
#include <string>

namespace frt {

// config: "pi05" | "pi0"; size: "tiny" | "full". Overwrites files of the same names in out_dir.
void make_synthetic_checkpoint(const std::string& out_dir, const std::string& config,
                               const std::string& size, uint64_t seed);

// The asset id written under assets/ (openpi names them after the dataset).
inline constexpr const char* kSyntheticAssetId = "synthetic_robot";

}  // namespace frt
