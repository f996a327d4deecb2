// The action expert's layer and norms (shared by Pi0.5 and Pi0), written once against the
// Backend interface over the Workspace of blocks.h.
#pragma once

#include "backend/backend.h"
#include "core/tensor.h"
#include "models/blocks.h"
#include "models/model_config.h"
#include "models/weights.h"

namespace frt {

// Normalization of one expert norm site: adaRMS (Pi0.5: scale/shift rows) or (1 + w) RMSNorm.
struct ExpertNorm {
  Tensor scale, shift, gate;  // adaRMS; gate multiplies the residual branch this norm opens
  Tensor rms_scale;           // plain RMSNorm when adaRMS is not used
  bool ada = false;
};

// The norm as the prologue of the GEMM that consumes it (Backend::fused_linear).
LinearPrologue expert_prologue(const ExpertNorm& norm, float eps);
// The gate of the residual branch this norm opens (adaRMS), nullptr for plain RMSNorm.
const Tensor* expert_gate(const ExpertNorm& norm);

// Normalizes the suffix stream ws.sx[0:S) into ws.sn (the final norm before action_out_proj).
void expert_norm(Backend& be, Workspace& ws, int S, const ExpertNorm& norm, float eps);

// One expert layer over suffix rows [0, S) at positions [valid, valid + S), attending to the
// valid prefix and the suffix in the layer's KV cache (suffix K/V at rows [pre.rows, + S)). The
// norms run as prologues of the GEMMs after them and both residuals (gated by in.gate /
// post.gate for adaRMS) as epilogues of the o and down GEMMs: ws.sx holds the layer's output on
// return.
void expert_layer(Backend& be, const GemmaLayerWeights& lw, const GemmaDims& g, Workspace& ws,
                  int layer, const PrefixLayout& pre, int S, const ExpertNorm& in,
                  const ExpertNorm& post, int blind_rows);

}  // namespace frt
