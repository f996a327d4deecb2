// CUDA expert_mlp: the action expert's MLP half, x += [gate *] (geglu(norm(x) . gate_up^T) .
// down^T), as ONE persistent launch for few rows (backend.h). Unfused it is three dependent
// launches (norm, gate_up GEMM, down GEMM with the GeGLU prologue: ~18.6 us at M = 10 on an H100
// against ~7.5 us of weight streaming); here the launch chain shrinks to one kernel with one grid
// barrier, and every weight byte is requested at the kernel's first instruction:
//  - one CTA per SM (grid = SMs, co-resident: cooperative launch), 8 warps;
//  - work items: gate_up item j = feature rows [8j, 8j+8) of the gate half plus the same rows of
//    the up half (16 weight rows x D: the MMA's A tile, so a lane holds gate and up of the same
//    feature and GeGLU needs no exchange); down item j = output rows [8j, 8j+8) x F. CTA c owns
//    items c, c + G, c + 2G, ... of each phase;
//  - thread 0 issues bulk async copies (cp.async.bulk, one per weight row, into rows padded by
//    16 bytes: conflict-free ldmatrix) of ALL its gate_up and down rows before waiting for the
//    previous kernel (weights depend on nothing), completing on two mbarriers. The down rows
//    arrive while phase 1 computes;
//  - phase 1: x rows staged and normalized in shared memory (RMSNorm / adaRMS, the same fp32
//    math and bf16 rounding as the skinny kernel's norm prologue), then per item the 8 warps
//    split D, mma.sync m16n8k16 (A = weights, B = x rows, two n8 tiles for M <= 16), a fixed-order
//    reduction across warps in shared memory, and h = bf16(gelu_tanh(bf16(gate)) * bf16(up)) (the
//    unfused path's roundings) to global memory;
//  - grid barrier (a monotonic 64-bit arrival counter: no reset, wrap-free);
//  - phase 2: h staged in shared memory (over phase 1's weight area), per item the same split
//    MMA (A rows 8-15 zero), then x[:, item] = bf16(x + gate * sum) (one rounding, like the
//    skinny epilogue). Each x element is read and written by one thread.
// Bit-reproducible (no atomics in the arithmetic, fixed reduction orders); graph-capturable (no
// allocation, no host sync). Falls back to expert_mlp_composed where it does not apply: FP8
// weights, M > 16, shapes that do not split into 8 warps x 16 k, shared memory too small.
// Covered by tests/gpu/test_cuda_expert_mlp.cpp; timed by bench/bench_expert_cuda.cpp.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_persistent.cuh"
#include "backend/cuda/cuda_persistent_launch.h"

namespace frt {

namespace {
using cuda::Mat;
using bf16 = __nv_bfloat16;

using namespace cuda::persistent;  // kWarps, item_product, grid_barrier, ... (cuda_persistent.cuh)
constexpr int kItemRows = 8;       // features (gate_up) / outputs (down) per item

struct MlpArgs {
  bf16* x;  // [M, D], read (norm, residual) and written (residual)
  int64_t ldx;
  const unsigned char* w1;  // gate_up [2F, D], bf16 or E4M3 (W8)
  int64_t ldw1;             // elements
  const unsigned char* w2;  // down [D, F]
  int64_t ldw2;
  const float* w1_scale;  // W8: the per-tensor weight scales (device)
  const float* w2_scale;
  bf16* h;  // [M, F] phase 1 -> phase 2
  int64_t ldh;
  Mat scale, shift, gate;  // norm scale ((1 + w) or the adaRMS mod scale), adaRMS shift, gate
  int ada;
  float eps;
  int M, D, F;
  unsigned long long* sync;  // grid barrier arrivals (monotonic)
  // 0: both phases, one cooperative launch with the grid barrier between them; 1 / 2: that phase
  // alone, two launches chained by programmatic dependent launch (set_expert_mlp_chained).
  int phase;
  // Shared-memory layout (bytes): mbarriers, inv_rms, cross-warp partials, the reduced tile,
  // normalized x, phase-1 weights (then h), phase-2 weights.
  int off_rms, off_red, off_sum, off_x, off_w1, off_w2;
  int pw1, pw2;  // staged weight row pitches: D * es + kRowPad, F * es + kRowPad
  int px1, px2;  // staged x / h row pitches: 2 D + pad, 2 F + pad
};

template <bool W8>
__global__ void __launch_bounds__(kThreads, 1) expert_mlp_kernel(const MlpArgs a) {
#if FRT_PERSISTENT_SM90
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int kEs = W8 ? 1 : 2;  // bytes per weight
  const int tid = threadIdx.x;
  const int G = gridDim.x, cta = blockIdx.x;
  const uint32_t s0 = cuda::smem_addr(smem);
  const uint32_t bar1 = s0, bar2 = s0 + 8;
  const int my1 = a.phase != 2 ? owned_items(a.F / kItemRows) : 0;
  const int my2 = a.phase != 1 ? owned_items(a.D / kItemRows) : 0;
  init_weight_barriers(s0);
  if (tid == 0) {  // every weight row of this CTA, before waiting for the previous kernel
    const uint32_t row1 = kEs * a.D, row2 = kEs * a.F;
    mbar_expect_tx(bar1, my1 * 16u * row1);
    for (int i = 0; i < my1; ++i)  // an item's gate rows, then the matching up rows
      copy_row_pairs(s0 + a.off_w1 + i * 16 * a.pw1, a.pw1, a.w1, a.ldw1 * kEs,
                     static_cast<int64_t>(cta + G * i) * kItemRows, a.F, row1, bar1);
    mbar_expect_tx(bar2, my2 * 8u * row2);
    copy_row_items(s0 + a.off_w2, a.pw2, a.w2, a.ldw2 * kEs, my2, row2, bar2);
  }
  // x, the norm's parameters, the gate and the weight scales are read only after the previous
  // kernel completes; the next kernel may start its own weight prologue meanwhile.
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  const float w1_scale = W8 ? *a.w1_scale : 1.f, w2_scale = W8 ? *a.w2_scale : 1.f;

  // ---- phase 1: norm(x) in shared memory
  float* inv_rms = reinterpret_cast<float*>(smem + a.off_rms);
  float* red = reinterpret_cast<float*>(smem + a.off_red);
  float* sum = reinterpret_cast<float*>(smem + a.off_sum);
  if (a.phase != 2) {
    stage_norm_rows(smem + a.off_x, a.px1, a.x, a.ldx, a.M, a.D, a.scale, a.shift, a.ada != 0,
                    a.eps, inv_rms, W8);

    // ---- phase 1: h = geglu(gate_up items)
    mbar_wait(bar1, 0);
    for (int i = 0; i < my1; ++i) {
      const int item = cta + G * i;
      item_product<W8>(s0 + a.off_w1 + i * 16 * a.pw1, s0 + a.off_x, a.pw1, a.px1, a.D, a.M, false,
                       red, sum);
      if (tid < 8 * 16) {
        const int r = tid >> 4, m = tid & 15;
        if (m < a.M) {
          const float g = round_bf16(sum[r * 16 + m] * w1_scale);
          const float u = round_bf16(sum[(r + 8) * 16 + m] * w1_scale);
          a.h[m * a.ldh + item * kItemRows + r] = __float2bfloat16_rn(cuda::gelu_tanh(g) * u);
        }
      }
      // (the next item writes `red` only after item_product's barriers: nobody still reads it)
    }
  }
  if (a.phase == 0) grid_barrier(a.sync, static_cast<unsigned>(G));

  // ---- phase 2: x += gate * (h . down^T)
  if (my2 == 0) return;                                          // (phase 1 alone: no down items)
  stage_rows(smem + a.off_w1, a.px2, a.h, a.ldh, a.M, a.F, W8);  // h: written by other SMs
  mbar_wait(bar2, 0);
  residual_items<W8>(s0 + a.off_w2, a.pw2, s0 + a.off_w1, a.px2, a.F, a.M, cta, G, my2, w2_scale,
                     a.gate, a.x, a.ldx, red, sum);
#else
  __trap();  // the host routes here only for sm_90+ code on an sm_90+ GPU
#endif
}

struct Layout {
  size_t bytes = 0;
  cuda::PersistentBase base;
  int off_w1, off_w2, pw1, pw2, px1, px2;
};

// n1 / n2: gate_up / down items per CTA (0: that phase does not run); es: bytes per weight
// (2 bf16, 1 E4M3); pad_w: bytes after each staged weight row.
Layout layout_for(int M, int D, int F, size_t n1, size_t n2, int es, int pad_w) {
  Layout l;
  const int pad_x = es == 1 ? kRowPadX8 : kRowPad;
  l.pw1 = es * D + pad_w;
  l.pw2 = es * F + pad_w;
  l.px1 = 2 * D + pad_x;
  l.px2 = 2 * F + pad_x;
  l.base = cuda::persistent_base(n1 ? M : 0, l.px1);
  l.off_w1 = static_cast<int>(l.base.next);  // phase-1 weights, then h
  const size_t h_bytes = n2 ? static_cast<size_t>(M) * l.px2 : 0;
  const size_t off = cuda::align128(l.off_w1 + std::max(n1 * 16 * l.pw1, h_bytes));
  l.off_w2 = static_cast<int>(off);
  l.bytes = off + n2 * kItemRows * l.pw2;
  return l;
}
}  // namespace

bool CudaBackend::expert_mlp_fused(Tensor x, Tensor gate_up_w, Tensor down_w,
                                   const LinearPrologue& pro, const Tensor* gate, Tensor h) {
  using Kind = LinearPrologue::Kind;
  if (!expert_mlp_fusion_) return false;
  const int64_t M = x.rows(), D = x.cols(), F = down_w.cols();
  if (M < 1 || M > kMaxRows || D % (kWarps * 16) != 0 || F % (kWarps * 16) != 0) return false;
  if (D > 1 << 16 || F > 1 << 16) return false;
  if (!cuda::persistent_rows_ok(x) || !cuda::persistent_rows_ok(h)) return false;
  // Both weights bf16, or both E4M3 (W8A16: x stays bf16; calibration needs the unfused path,
  // which measures each FP8 site's input).
  const bool w8 = gate_up_w.dtype == DType::kF8E4M3;
  if (w8 && quant_mode_ == QuantMode::kCalibrate) return false;
  const DType wt = w8 ? DType::kF8E4M3 : DType::kBF16;
  if (!cuda::persistent_weight_ok(gate_up_w, wt) || !cuda::persistent_weight_ok(down_w, wt))
    return false;
  if (gate_up_w.rows() != 2 * F || gate_up_w.cols() != D || down_w.rows() != D) return false;
  if (h.rows() < M || h.cols() < F) return false;
  if (pro.kind != Kind::kRmsNorm && pro.kind != Kind::kAdaRmsNorm) return false;
  const bool ada = pro.kind == Kind::kAdaRmsNorm;
  if (!cuda::persistent_param_ok(pro.scale, D) || (ada && !cuda::persistent_param_ok(pro.shift, D)))
    return false;
  if (gate && !cuda::persistent_param_ok(*gate, D)) return false;
  const cuda::PersistentDevice& dev =
      cuda::persistent_device(device_,
                              {reinterpret_cast<const void*>(expert_mlp_kernel<false>),
                               reinterpret_cast<const void*>(expert_mlp_kernel<true>)},
                              "expert_mlp");
  if (!dev.sm90_code) return false;
  const int es = w8 ? 1 : 2, pad_w = expert_row_pad_ ? kRowPad : 0;
  const int items1 = static_cast<int>(F / kItemRows), items2 = static_cast<int>(D / kItemRows);
  // Persistent: one CTA per SM over both phases. Chained: phase 1 with two gate_up items per CTA
  // (two CTAs fit an SM, one wave), phase 2 with one down item per CTA.
  const bool chained = expert_mlp_chained_;
  const int g1 = chained ? (items1 + 1) / 2 : dev.sms;
  const int g2 = chained ? items2 : dev.sms;
  const size_t n1 = static_cast<size_t>((items1 + g1 - 1) / g1);
  const size_t n2 = static_cast<size_t>((items2 + g2 - 1) / g2);
  const int m = static_cast<int>(M), d = static_cast<int>(D), f = static_cast<int>(F);
  // The launch of phase 1 (persistent: both phases) and, chained, the launch of phase 2.
  const Layout l = layout_for(m, d, f, n1, chained ? 0 : n2, es, pad_w);
  const Layout l2 = chained ? layout_for(m, d, f, 0, n2, es, pad_w) : l;
  if (std::max(l.bytes, l2.bytes) > static_cast<size_t>(dev.smem_optin)) return false;
  if (n1 * 16 * es * D > kMaxTxBytes || n2 * kItemRows * es * F > kMaxTxBytes) return false;

  MlpArgs a{};
  a.x = static_cast<bf16*>(x.data);
  a.ldx = x.ld();
  a.w1 = static_cast<const unsigned char*>(gate_up_w.data);
  a.ldw1 = gate_up_w.ld();
  a.w2 = static_cast<const unsigned char*>(down_w.data);
  a.ldw2 = down_w.ld();
  if (w8) {
    a.w1_scale = gate_up_w.quant->w_scale;
    a.w2_scale = down_w.quant->w_scale;
  }
  a.h = static_cast<bf16*>(h.data);
  a.ldh = h.ld();
  a.scale = cuda::mat_of(pro.scale);
  if (ada) a.shift = cuda::mat_of(pro.shift);
  if (gate) a.gate = cuda::mat_of(*gate);
  a.ada = ada ? 1 : 0;
  a.eps = pro.eps;
  a.M = static_cast<int>(M);
  a.D = static_cast<int>(D);
  a.F = static_cast<int>(F);
  a.sync = grid_sync_;
  const void* kernel = w8 ? reinterpret_cast<const void*>(expert_mlp_kernel<true>)
                          : reinterpret_cast<const void*>(expert_mlp_kernel<false>);
  auto set_layout = [&a](const Layout& lay) {
    a.off_rms = lay.base.off_rms;
    a.off_red = lay.base.off_red;
    a.off_sum = lay.base.off_sum;
    a.off_x = lay.base.off_x;
    a.off_w1 = lay.off_w1;
    a.off_w2 = lay.off_w2;
    a.pw1 = lay.pw1;
    a.pw2 = lay.pw2;
    a.px1 = lay.px1;
    a.px2 = lay.px2;
  };
  set_layout(l);
  if (!chained) {
    a.phase = 0;
    cuda::launch_persistent(kernel, &a, g1, l.bytes, stream_, pdl_enabled_, "expert_mlp", true);
  } else {
    a.phase = 1;
    cuda::launch_persistent(kernel, &a, g1, l.bytes, stream_, pdl_enabled_, "expert_mlp", false);
    a.phase = 2;
    set_layout(l2);
    cuda::launch_persistent(kernel, &a, g2, l2.bytes, stream_, pdl_enabled_, "expert_mlp", false);
  }
  ++linear_stats_.expert_mlp;
  return true;
}

void CudaBackend::expert_mlp(Tensor x, Tensor gate_up_w, Tensor down_w, const LinearPrologue& pro,
                             const Tensor* gate, Tensor staged, Tensor gate_up, Tensor h,
                             Tensor product) {
  const char* op = "expert_mlp";
  const int64_t M = x.rows(), D = x.cols(), F = down_w.cols();
  cuda::check_matrix(op, "x", x, M, D, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "gate_up_w", gate_up_w, 2 * F, D,
                     {DType::kBF16, DType::kF32, DType::kF8E4M3});
  cuda::check_matrix(op, "down_w", down_w, D, F, {DType::kBF16, DType::kF32, DType::kF8E4M3});
  cuda::check_matrix(op, "h", h, M, F, {DType::kBF16, DType::kF32});
  if (M > 0 && expert_mlp_fused(x, gate_up_w, down_w, pro, gate, h)) return;
  expert_mlp_composed(*this, x, gate_up_w, down_w, pro, gate, staged, gate_up, h, product);
}

}  // namespace frt
