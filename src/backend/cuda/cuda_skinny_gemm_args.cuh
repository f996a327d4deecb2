// The skinny GEMM's kernel arguments and its one launch function, shared by the kernel's file
// (cuda_skinny_gemm.cu: the kernel, the plan, the launch) and the entry points that check and
// route calls to it (cuda_skinny_gemm_route.cu). Included by .cu files only.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_skinny_gemm.h"
#include "core/tensor.h"

namespace frt {
class CudaBackend;

namespace skinny {
using cuda::Mat;

// skinny_gemm_qkv_rope's epilogue (cuda_skinny_gemm.cuh, store_qkv_split): y is not written;
// output column c of [q | k | v] goes to q, k or v, RoPE-rotated for c < rope_cols.
struct QkvSplit {
  Mat q, k, v;
  int q_cols, kv_cols, head_dim;
  int rope_cols;  // (Hq + Hkv) head_dim with RoPE, 0 without
  int pos_offset;
  const int* pos_base;                  // device, or null
  float inv_freq[kSkinnyMaxRopePairs];  // theta^(-2i/D), the host's (CPU twin's) values
};

struct SkinnyArgs {
  const void* w;         // [N, K] BF16 or F8E4M3, row stride ldw (elements)
  const float* w_scale;  // F8E4M3: the per-tensor scale (device), else null
  int64_t ldw;
  const void* x;  // [M, K] BF16 or F32, row stride ldx
  int64_t ldx;
  Mat y;     // [M, N]
  Mat bias;  // [N] or absent
  int act, accumulate;
  int M, N, K;
  int ks;       // k per CTA (the cluster's split of K), a multiple of the batch k
  int xs_log2;  // log2 of the k width of one x stage (>= the batch k)
  int cluster;  // CTAs per cluster along grid x (the k-splits); 1 = no cluster
  // fused_linear (cuda_fused_linear.cu): the prologue applied to x as it is staged and the gate
  // of the epilogue. pro: a Prologue (kProNone for linear()).
  int pro;
  Mat pro_scale, pro_shift;  // [K] (norm prologues)
  float eps;
  int x_up;        // kProGeglu: column of x where the up half starts (= K), else 0
  int rms_off;     // norm prologues: byte offset of inv_rms[M] in shared memory (past the stage
                   // area and the partial tile that reuses it)
  int pro_off;     // norm_full: byte offset in shared memory of the staged scale (shift at + 4 ks)
  int norm_full;   // norm prologue with whole x rows in one stage (k 0 .. K, the CTA's k-range
                   // at column kb): one cp.async round trip; 0: rows too long, read from L2
  Mat gate;        // [N] or absent: y (+)= gate[n] * ...
  // Cluster partials pushed to their owner (MT <= 2, cluster > 1): byte offset in shared memory
  // of the receive area [rank][k slot][owned row][m] (0: the partials are pulled instead).
  int recv_off;
  QkvSplit split;  // the qkv-split / RoPE epilogue: read by the SPLIT kernels only
};

// LinearPrologue::Kind, as the kernel's runtime switch.
enum Prologue : int { kProNone = 0, kProRms = 1, kProAda = 2, kProGeglu = 3 };

// One launch: linear()'s GEMM (pro kNone, gate null, split null), fused_linear's (x: the whole
// GeGLU input [M, 2K] for kGeglu), or the qkv projection with the split / RoPE epilogue (y unused
// then). Operands already checked by the caller.
void launch(CudaBackend& be, const char* op, Tensor y, Tensor x, Tensor w, const Tensor* bias,
            Activation act, bool accumulate, const LinearPrologue& pro, const Tensor* gate,
            const QkvSplit* split);

}  // namespace skinny
}  // namespace frt
