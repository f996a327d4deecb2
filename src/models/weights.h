// The Pi0-family weights as the backend holds them, after the load-time transforms:
//  - SigLIP q/k/v fused into one [3W, W] projection (+ bias) so one GEMM produces all three;
//  - Gemma q/k/v fused into [(H + 2 KV) * hd, W]; gate/up fused into [2 * mlp, W] (GeGLU reads
//    the two halves of one GEMM output);
//  - RMSNorm weights folded to (1 + w) once;
//  - Pi0.5: the time MLP and every adaRMS modulation depend only on the fixed time schedule, so
//    they are evaluated once at load (on the CPU reference backend, in fp32) and only the
//    resulting scale/shift/gate vectors are kept (see precompute_adarms in weights.cpp);
//  - Pi0: action_time_mlp_in acts on concat(action_emb, time_emb); its time half is a constant
//    per Euler step, so W_t · time_emb(t_s) + b is precomputed per step (a bias row) and only
//    the action half W_a [W, W] stays a GEMM weight.
// Tests: tests/python/test_reference_parity.py (end to end), tests/cpp/test_model_config.cpp.
#pragma once

#include <vector>

#include "backend/backend.h"
#include "models/model_config.h"

namespace frt {

class SafetensorsCheckpoint;

struct SiglipLayerWeights {
  Tensor ln1_w, ln1_b, qkv_w, qkv_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
};

struct GemmaLayerWeights {
  Tensor input_scale;  // (1 + w) [W]; empty for adaRMS layers
  Tensor qkv_w;        // [(H + 2 KV) * hd, W]
  Tensor o_w;          // [W, H * hd]
  Tensor post_scale;   // (1 + w) [W]; empty for adaRMS layers
  Tensor gate_up_w;    // [2 * mlp, W]
  Tensor down_w;       // [W, mlp]
};

struct Pi0Weights {
  // Vision tower + projector.
  Tensor patch_w, patch_b, pos_emb;
  std::vector<SiglipLayerWeights> vision;
  Tensor post_ln_w, post_ln_b, proj_w, proj_b;
  // Language model (prefix) and embedding table [vocab, W].
  Tensor embed;
  std::vector<GemmaLayerWeights> llm;
  // Action expert.
  std::vector<GemmaLayerWeights> expert;
  Tensor expert_final_scale;  // pi0: (1 + w); pi05: empty (adaRMS)
  Tensor action_in_w, action_in_b, action_out_w, action_out_b;
  // Pi0.5: precomputed adaRMS modulation, [num_steps, 2 * layers + 1, 3, W_expert]: for each
  // step, (input norm, post-attention norm) per layer then the final norm; each as
  // (scale, shift, gate) rows.
  Tensor adarms_mod;
  // Pi0: state_proj; action_time_mlp_in split into the action half [W, W] and per-step biases
  // [num_steps, W] (time half + bias, precomputed); action_time_mlp_out.
  Tensor state_w, state_b, action_time_in_w, action_time_step_bias, action_time_out_w,
      action_time_out_b;
};

// The time values t_s of the Euler schedule, as openpi computes them in fp32
// (t = 1; while t >= -dt/2: ...; t += dt).
std::vector<float> flow_schedule(int num_steps);

// Loads, checks (shapes against the weight table; missing and unexpected keys reported) and
// transforms every weight, uploading to `backend`. `num_steps` fixes the adaRMS precompute.
Pi0Weights load_pi0_weights(Backend& backend, const SafetensorsCheckpoint& ckpt,
                            const ModelDims& dims, int num_steps);

}  // namespace frt
