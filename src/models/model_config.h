// Model configuration of the Pi0 family (Pi0.5, Pi0): dimensions (detected from the checkpoint's
// tensor shapes, or a preset for synthetic checkpoints), the weight table (checkpoint name,
// shape, which part of the model it belongs to) and the load options the checkpoint cannot
// carry (max prompt length, state-in-prompt, normalization, norm-stats asset).
// Tests: tests/cpp/test_model_config.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace frt {

class SafetensorsCheckpoint;

enum class Arch { kPi05, kPi0 };
const char* arch_name(Arch a);  // "pi05" / "pi0"

struct VisionDims {  // SigLIP So400m/14 at 224
  int width = 1152, layers = 27, heads = 16, head_dim = 72, mlp = 4304;
  int patch = 14, image = 224;
  int num_patches() const { return (image / patch) * (image / patch); }
};

struct GemmaDims {
  int width = 2048, layers = 18, heads = 8, kv_heads = 1, head_dim = 256, mlp = 16384;
};

struct ModelDims {
  Arch arch = Arch::kPi05;
  VisionDims vision;
  GemmaDims llm;                                      // PaliGemma's Gemma 2B
  GemmaDims expert{1024, 18, 8, 1, 256, 4096};        // Gemma 300M action expert
  int vocab = 257152;
  int action_dim = 32;
  int state_dim = 32;  // pi0 state_proj input
};

// Openpi's full-size dims and the tiny synthetic dims (same architecture, small widths/layers).
ModelDims preset_dims(Arch arch, bool tiny);

// Which part a parameter belongs to (for `inspect` and parameter counts).
enum class Part { kVision, kProjector, kLlm, kEmbedding, kExpert, kHeads, kUnused };
const char* part_name(Part p);

struct WeightSpec {
  std::string name;             // full checkpoint key
  std::vector<int64_t> shape;   // as stored: Linear (out, in)
  Part part;
  bool optional = false;        // e.g. the unused expert lm_head
};

// Every tensor the architecture has, in the openpi PyTorch export's naming.
std::vector<WeightSpec> weight_table(const ModelDims& dims);

// The token-embedding table's key: openpi stores the tied table as paligemma.lm_head.weight;
// other exporters write ...language_model.embed_tokens.weight. Returns whichever exists.
std::string embedding_key(const SafetensorsCheckpoint& ckpt);

// Detects pi05 vs pi0 and the dims from the keys/shapes (+ config.json's "flashrt" block for
// the synthetic tiny vision heads). Throws kInvalidArgument for an unknown layout, listing what
// was expected. `requested`: "pi05", "pi0" or "auto"/"" — a mismatch throws naming both.
ModelDims detect_dims(const SafetensorsCheckpoint& ckpt, const std::string& checkpoint_dir,
                      const std::string& requested);

// What the checkpoint cannot say: openpi defaults per arch, overridable at load.
struct ModelOptions {
  int num_views = 2;
  int num_steps = 10;
  int action_horizon = 50;
  int max_token_len = 0;         // 0 → 200 (pi05) / 48 (pi0)
  int discrete_state_input = -1; // -1 → pi05: 1, pi0: 0
  int normalization = 0;         // frt_normalization_t
  std::string norm_stats_asset;  // "" → the only asset dir
  std::string tokenizer_path;    // "" → search
  std::string default_prompt;
  uint64_t seed = 0;
};
// Fills the defaults for `arch` and validates ranges (throws kInvalidArgument naming the option).
ModelOptions resolve_options(const ModelOptions& in, Arch arch);

}  // namespace frt
