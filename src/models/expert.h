// The action expert's layer and norms (shared by Pi0.5 and Pi0), written once against the
// Backend interface over the Workspace of blocks.h.
#pragma once

#include "backend/backend.h"
#include "core/tensor.h"
#include "models/blocks.h"
#include "models/model_config.h"
#include "models/weights.h"

namespace frt {

// The residual update that the next norm must apply first: x += gate * delta (gate may be
// absent: plain residual).
struct PendingResidual {
  const Tensor* delta = nullptr;
  const Tensor* gate = nullptr;
};

// Normalization of one expert norm site: adaRMS (Pi0.5: scale/shift rows) or (1 + w) RMSNorm.
struct ExpertNorm {
  Tensor scale, shift, gate;  // adaRMS; gate multiplies the residual branch this norm opens
  Tensor rms_scale;           // plain RMSNorm when adaRMS is not used
  bool ada = false;
};

// Applies `pending` to the suffix stream ws.sx[0:S) and normalizes into ws.sn.
void expert_norm(Backend& be, Workspace& ws, int S, const PendingResidual& pending,
                 const ExpertNorm& norm, float eps);

// One expert layer over suffix rows [0, S) at positions [valid, valid + S), attending to the
// valid prefix and the suffix in the layer's KV cache (suffix K/V at rows [pre.rows, + S)).
// Leaves the MLP output in ws.so as the pending residual of the next norm (gated by post.gate for
// adaRMS).
void expert_layer(Backend& be, const GemmaLayerWeights& lw, const GemmaDims& g, Workspace& ws,
                  int layer, const PrefixLayout& pre, int S, const ExpertNorm& in,
                  const ExpertNorm& post, PendingResidual& pending, int blind_rows);

}  // namespace frt
