// Building blocks shared by Pi0.5 and Pi0, written once against the Backend interface:
// the SigLIP encoder of one view, the Gemma prefix pass that fills the KV cache, and one action
// expert layer. Buffers are allocated once (Workspace) for the largest shapes the loaded
// configuration allows; the blocks take row counts and use row slices of them.
// Every intermediate that tests compare has a stable name (see Dumps).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"
#include "models/model_config.h"
#include "models/weights.h"

namespace frt {

// Named intermediates of the last predict, copied to host f32 when enabled
// ("image.0", "vision_tokens.0", "prefix_embeddings", "prefix_k.3", "velocity.0", ...).
class Dumps {
 public:
  void bind(Backend* be) { be_ = be; }
  void set_enabled(bool on) { enabled_ = on; if (!on) store_.clear(); }
  bool enabled() const { return enabled_; }
  void clear() { store_.clear(); }
  void record(const std::string& name, Tensor t);  // no-op when disabled
  void record_host(const std::string& name, HostTensor&& t) {
    if (enabled_) store_[name] = std::move(t);
  }
  const HostTensor* find(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  Backend* be_ = nullptr;
  bool enabled_ = false;
  std::map<std::string, HostTensor> store_;
};

// Device-side inputs of one predict (the engine validates and uploads them).
// The prompt is padded to its maximum length (max_token_len) and its valid length lives in
// device memory (prefix_len), so one captured graph serves every prompt: ops read the length
// when they run (attention masks the padding, RoPE places the suffix after the valid prefix).
struct ModelInputs {
  std::vector<Tensor> views;  // per image slot: raw u8 [H, W, 3]; data == nullptr → masked view
  Tensor token_ids;           // i32 [max_tokens]: the valid tokens (BOS first), then padding 0
  int num_tokens = 0;         // valid tokens (host copy: dumps only, never a launch parameter)
  Tensor prefix_len;          // i32 [1]: image tokens of the present views + num_tokens
  Tensor x;                   // f32 [horizon, action_dim]: the noise in, the actions out
  Tensor state;               // f32 [1, action_dim]: normalized, zero-padded (Pi0 only)
};

struct Workspace {
  // vision: every view's patches stacked (rows [view * num_patches, ...)); one image buffer
  Tensor image;      // [224, 224, 3]
  Tensor vis_x, vis_n, vis_qkv, vis_attn, vis_h;
  // prefix
  Tensor prefix_x, prefix_n, prefix_qkv, prefix_q, prefix_attn, prefix_gu, prefix_h;
  // KV cache per layer: [max_prefix + max_suffix, KV * hd] holding [prefix ; suffix]
  std::vector<Tensor> k_cache, v_cache;
  // expert (suffix)
  Tensor sx, sn, sqkv, sq, sattn, so, sgu, sh;
  Tensor velocity;  // [max_suffix, action_dim]
  int max_prefix = 0, max_suffix = 0;
};

Workspace make_workspace(Backend& be, const ModelDims& d, int num_views, int max_tokens,
                         int max_suffix);

// The present views of `in` (raw u8 [H, W, 3] each; masked views skipped) → their projected
// tokens, stacked in slot order into `out` [present views * num_patches, llm width]. The GEMMs
// run over every view's rows at once; attention stays per view.
void encode_views(Backend& be, const Pi0Weights& w, const ModelDims& d, Workspace& ws,
                  const ModelInputs& in, Tensor out, Dumps& dumps);

// Where the prefix sits in the KV cache: rows [0, rows) hold [image tokens ; prompt padded to
// its maximum]; only [0, *valid) are real (valid lives on the device, valid_host is its host
// copy for dumps). The expert's rows follow at [rows, rows + S).
struct PrefixLayout {
  int rows = 0;
  Tensor valid;  // i32 [1]
  int valid_host = 0;
};

// Valid prefix rows of `in`: the image tokens of the present views + the valid prompt tokens (the
// value the engine uploads into in.prefix_len; the model's dumps use it too).
int valid_prefix_rows(const ModelDims& d, const ModelInputs& in);

// Steps 1-2 of every Pi0-family predict: the image tokens of each present view (masked views
// are dropped, not computed), the text embeddings × sqrt(width) (openpi's fp32 constant) of the
// padded prompt, then the prefix pass.
PrefixLayout encode_prefix(Backend& be, const Pi0Weights& w, const ModelDims& d, Workspace& ws,
                           const ModelInputs& in, Dumps& dumps);

// Prefix pass over ws.prefix_x rows [0, rows), rows <= pre.rows (>= the valid rows when it runs;
// a graph capture also records the options below this call's length): fills
// k_cache/v_cache rows [0, rows) of every layer, attention masking the padding among them (rows
// [rows, pre.rows) keep whatever they held: masked keys). The last layer's attention output and
// MLP are skipped: nothing reads them.
void prefix_pass(Backend& be, const Pi0Weights& w, const ModelDims& d, Workspace& ws,
                 const PrefixLayout& pre, int rows, Dumps& dumps);

// The row counts encode_prefix lets the prefix pass run over: image rows + every multiple of
// kPrefixBucketTokens below max_tokens, then image rows + max_tokens.
inline constexpr int kPrefixBucketTokens = 32;
std::vector<int> prefix_row_options(int image_rows, int max_tokens);

}  // namespace frt
