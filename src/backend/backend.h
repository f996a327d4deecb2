// The backend interface: every op the models need, implemented once per backend
// (src/backend/cpu: fp32 reference; src/backend/cuda: bf16/fp8 kernels). Model code
// (src/models/) is written once against this class.
//
// Contract for every op:
//  - Inputs and outputs are Tensor views on this backend's device, in the backend's activation
//    dtype (activation_dtype()) unless the op says otherwise; weights come from upload_weight().
//  - 2-D operands are "matrices": rows = numel / last dim, cols = last dim, row stride = ld().
//  - Ops never allocate or synchronize (the CUDA backend captures the whole predict as a graph);
//    memory comes from alloc() at load time.
//  - Shapes are checked at the entry: a mismatch throws frt::Error(kInternal) naming the op, the
//    operand, the expected and the actual shape.
//
// The op list itself lives in src/backend/ops.def (the op table): tests walk it and fail when an
// op lacks a CPU twin, a CUDA twin (when CUDA is compiled) or a test case.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace frt {

enum class Activation : uint8_t { kNone, kGeluTanh, kSilu };

// What a weight is for, so a backend can pick its storage format at upload.
enum class WeightUse : uint8_t {
  kGemm,         // a linear() weight [N, K]: FP8 in an FP8 backend, else the GEMM dtype
  kGemmPrecise,  // a linear() weight kept out of FP8 (SigLIP, action in/out, Pi0 state/time)
  kTable,        // a gathered table (token embeddings): GEMM dtype, never FP8
  kParam,        // norms, biases, position embeddings, conv weights, precomputed modulation
};

// GEMM precision of a backend. kFP8: kGemm weights are FP8 E4M3 (per-tensor scale); a GEMM with
// many rows quantizes its input with the calibrated static scale of its site (QuantInfo) and runs
// FP8 x FP8 on tensor cores; a GEMM with few rows (the action expert) streams the FP8 weight and
// keeps its input in bf16.
enum class Precision : uint8_t { kBF16, kFP8 };

// How an FP8 backend scales GEMM inputs. kStatic: x_scale of each site, read from device memory
// (the captured graph's mode). kCalibrate: each GEMM input is scaled by its own max |x| (dynamic,
// eager) and that max is folded into the site's x_amax, so one forward pass measures every site.
enum class QuantMode : uint8_t { kStatic, kCalibrate };

struct AttentionParams {
  int num_q_heads = 0;
  int num_kv_heads = 0;  // num_q_heads % num_kv_heads == 0 (MQA/GQA)
  int head_dim = 0;
  float scale = 0.f;  // usually 1/sqrt(head_dim)
  // Query rows [0, blind_rows) do not see the last (num_q_rows - blind_rows) keys: Pi0's state
  // token does not attend to the action tokens after it. 0 = every query sees every key.
  int blind_rows = 0;
  // A key range known only on the device, so one captured graph serves every prompt length:
  // when key_valid.data is set (i32 [1] in the backend's memory, read when the op runs), keys
  // with index in [key_valid[0], key_gap_end) are masked out; 0 <= key_valid[0] <= key_gap_end
  // <= Skv. The prefix masks its padding rows (key_gap_end = Skv); the expert masks the padding
  // between the valid prefix and its own rows (key_gap_end = padded prefix length).
  // key_valid is an input of the predict: written by copy_to_device before the ops that read
  // it, never by an op (the CUDA kernels read it before waiting on the kernels before them).
  Tensor key_valid;
  int key_gap_end = 0;
  // Independent sequences of equal length stacked in the rows: q / out hold `batch` blocks of
  // Sq / batch rows, k / v blocks of Skv / batch rows, and block b's queries see only block b's
  // keys (every mask above applies within each block). SigLIP runs every view's attention in
  // one call this way (one launch filling the GPU instead of one half-empty launch per view).
  int batch = 1;
};

// What fused_linear applies to the rows of x before its GEMM.
struct LinearPrologue {
  enum class Kind : uint8_t { kNone, kRmsNorm, kAdaRmsNorm, kGeglu };
  Kind kind = Kind::kNone;
  // kRmsNorm: scale = (1 + w) [K] (as add_rms_norm). kAdaRmsNorm: scale, shift = mod_scale,
  // mod_shift [K] (as add_ada_rms_norm: rms(x) * (1 + scale) + shift). Unused otherwise.
  Tensor scale, shift;
  float eps = 1e-6f;
  bool is_norm() const { return kind == Kind::kRmsNorm || kind == Kind::kAdaRmsNorm; }
};

// The action expert's attention half (Backend::expert_attention): x [S, W] -> norm -> qkv ->
// RoPE at positions attn.key_valid[0] + row -> attention over [valid prefix ; suffix] -> o ->
// (gated) residual into x.
struct ExpertAttention {
  Tensor qkv_w;  // [(Hq + 2 Hkv) D, W]
  Tensor o_w;    // [W, Hq D]
  LinearPrologue pro;            // the input norm (kRmsNorm or kAdaRmsNorm)
  const Tensor* gate = nullptr;  // adaRMS gate of the residual, nullptr = 1
  // This layer's cache [P + S, Hkv D]: prefix keys/values in rows [0, P) (valid ones in
  // [0, attn.key_valid[0])), the suffix's written to rows [P, P + S).
  Tensor k_cache, v_cache;
  int prefix_rows = 0;  // P (= attn.key_gap_end)
  AttentionParams attn;  // heads, head_dim, scale, blind_rows, key gap [valid, P) on the device
  float rope_theta = 10000.f;
  // The composition's buffers (activation dtype): norm output [S, W], qkv [S, (Hq + 2 Hkv) D],
  // q [S, Hq D], attention output [S, Hq D], o product [S, W]. A fusing backend may use q and
  // attn_out as its own scratch.
  Tensor staged, qkv, q, attn_out, product;
};

// run_bucketed's rule, one definition for the host and for the CUDA kernel that applies it at
// replay: the index of the smallest of rows[0..n) (ascending, n >= 1) >= valid, or n - 1 if none.
#ifdef __CUDACC__
__host__ __device__
#endif
constexpr int bucket_index(const int* rows, int n, int valid) {
  int i = 0;
  while (i + 1 < n && rows[i] < valid) ++i;
  return i;
}
inline int bucket_rows(const std::vector<int>& row_options, int valid) {
  const int n = static_cast<int>(row_options.size());
  return row_options[bucket_index(row_options.data(), n, valid)];
}

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;  // "cpu" / "cuda"
  virtual Device device() const = 0;
  virtual DType activation_dtype() const = 0;

  // ---- memory (load time only) ----
  // A zero-initialized buffer living as long as the backend.
  virtual Tensor alloc(DType dtype, std::initializer_list<int64_t> shape, const char* what) = 0;
  // Takes an f32 host weight (after load-time transforms) and returns it in the backend's weight
  // format for `use` (CPU: f32, keeps the buffer; CUDA: bf16 or FP8 on the device).
  virtual Tensor upload_weight(HostTensor&& w, const std::string& name, WeightUse use) = 0;
  virtual void copy_to_device(Tensor dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, Tensor src, size_t bytes) = 0;
  virtual void synchronize() = 0;
  virtual size_t bytes_allocated() const = 0;
  // Memory the whole device has in use now (CUDA: total - free, so the context, cuBLASLt and
  // every buffer count); 0 where that means nothing (CPU).
  virtual size_t device_bytes_in_use() const { return 0; }

  // ---- whole-predict execution ----
  // Runs `body` (a sequence of ops). A backend with graphs captures it on the first call for
  // `key` and replays the capture afterwards; `key` must name everything the body's launch
  // parameters depend on. The default runs the body eagerly.
  virtual void run_graph(const std::string& key, const std::function<void()>& body) { body(); }
  // Runs body(rows) once, rows = the smallest of `row_options` (ascending) >= valid[0] (the
  // largest if none is), where valid is an i32 [1] in the backend's memory, read when the op
  // runs, and valid_host is its value as the host knows it now. Lets a pass over a padded
  // sequence skip most of the padding without making the graph key depend on the length: a
  // capture records one body per option behind a switch that picks by valid[0] at each replay.
  // The default (eager backends) runs body(bucket_rows(row_options, valid_host)).
  virtual void run_bucketed(const Tensor& valid, int valid_host,
                            const std::vector<int>& row_options,
                            const std::function<void(int rows)>& body) {
    body(bucket_rows(row_options, valid_host));
  }
  // Where a producer op should write linear(y, x, w, ...)'s input x: `x` itself, or, where the
  // GEMM would quantize x first (an FP8 backend in QuantMode::kStatic, an FP8 weight, many rows),
  // an F8E4M3 view of the backend's quantized-input buffer carrying w's QuantInfo. The producers
  // that accept it (add_rms_norm, add_ada_rms_norm, geglu) then quantize as they store and the
  // GEMM skips its quantize pass. The view is valid until the next linear() with an FP8 weight,
  // so the producer must run right before its GEMM.
  virtual Tensor gemm_input(Tensor x, Tensor w) { return x; }
  // GPU time of the last run_graph replay in ms (valid after synchronize); < 0 if unknown.
  virtual float last_graph_ms() { return -1.f; }
  // Labels the ops that follow ("vision", "prefix", "denoise") for profilers; no-op by default.
  virtual void stage(const char* name) {}
  // Mean GPU time per stage over the graph replays so far ("vision 3.12 ms, ..."): a backend
  // with graphs marks the stage boundaries inside each capture; "" when it has nothing.
  virtual std::string stage_report() { return {}; }
  // Forgets what stage_report (and a profiling decorator's table) has counted so far, so a
  // report can leave out warm-up runs and their one-time work (GEMM tuning, calibration).
  virtual void reset_stage_report() {}

  // ---- FP8 calibration (backends with precision() == kFP8; the defaults have no sites) ----
  virtual Precision precision() const { return Precision::kBF16; }
  // Number of FP8 GEMM sites (= quantized weights, in upload order).
  virtual int quant_sites() const { return 0; }
  virtual void set_quant_mode(QuantMode mode) {}
  // Zeroes every site's x_amax / reads them (synchronizes) / writes every site's x_scale.
  virtual void reset_quant_amax() {}
  virtual std::vector<float> read_quant_amax() { return {}; }
  virtual void write_quant_scales(const std::vector<float>& x_scales) {}
  virtual std::vector<std::string> quant_site_names() const { return {}; }

  // ---- ops (see ops.def for the table) ----

  // y[M,N] (=|+=) act(x[M,K] · w[N,K]^T + bias[N]). accumulate: y += result (residual fused).
  // x may be gemm_input(·, w) (already quantized for w's site).
  virtual void linear(Tensor y, Tensor x, Tensor w, const Tensor* bias, Activation act,
                      bool accumulate) = 0;
  // The action expert's GEMMs with what surrounds them fused (few rows: launches dominate):
  // y[M,N] (=|+=) [gate[N] *] (pro(x) . w[N,K]^T). pro: kNone: x [M, K]; kRmsNorm / kAdaRmsNorm:
  // the norm of x [M, K] over each whole row (as add_rms_norm / add_ada_rms_norm without delta);
  // kGeglu: x is [M, 2K], pro(x) = gelu_tanh(x[:, :K]) * x[:, K:] (as geglu). gate (nullptr = 1)
  // is the adaRMS gate of a gated residual, so it requires accumulate: y += gate * product.
  // `staged` [M, K] and `product` [M, N] (activation dtype) are the buffers of the unfused
  // composition a backend falls back to (pro(x) into staged, the GEMM into product, then
  // y += gate * product; product may be empty when gate is null, staged when pro is kNone).
  virtual void fused_linear(Tensor y, Tensor x, Tensor w, const LinearPrologue& pro,
                            const Tensor* gate, bool accumulate, Tensor staged,
                            Tensor product) = 0;
  // The action expert's attention half in one op (few rows: a fusing backend runs it as one
  // launch): exactly fused_linear(qkv, x, qkv_w, pro) -> qkv_split_rope(q, suffix K/V rows of the
  // cache, positions from key_valid) -> attention over the cache rows [0, P + S) with the key
  // gap -> fused_linear(x, attn_out, o_w, none, gate, accumulate) (expert_attention_composed).
  virtual void expert_attention(Tensor x, const ExpertAttention& a) = 0;
  // The action expert's MLP half in one op (few rows: a fusing backend runs it as one launch):
  // x[M,D] += [gate[D] *] (geglu(pro(x) . gate_up_w[2F,D]^T) . down_w[D,F]^T), pro = kRmsNorm or
  // kAdaRmsNorm over D. Exactly fused_linear(gate_up, x, gate_up_w, pro, ...) then
  // fused_linear(x, gate_up, down_w, geglu, gate, true, ...): `staged` [M, D], `gate_up`
  // [M, 2F], `h` [M, F] and `product` [M, D] (activation dtype) are that composition's buffers
  // (expert_mlp_composed); a fusing backend may use `h` as its own scratch.
  virtual void expert_mlp(Tensor x, Tensor gate_up_w, Tensor down_w, const LinearPrologue& pro,
                          const Tensor* gate, Tensor staged, Tensor gate_up, Tensor h,
                          Tensor product) = 0;
  // y = (x - mean) / sqrt(var + eps) * w + b, per row.
  virtual void layer_norm(Tensor y, Tensor x, Tensor w, Tensor b, float eps) = 0;
  // If delta: x += delta (in place, the residual stream). Then y = x * rsqrt(mean(x^2) + eps) *
  // scale. `scale` already holds (1 + w): the fold happens at load. y may be a gemm_input() view.
  virtual void add_rms_norm(Tensor x, const Tensor* delta, Tensor y, Tensor scale, float eps) = 0;
  // adaRMS with the gated residual of Pi0.5's expert. If delta: x += gate[D] * delta (gate
  // nullptr means 1). Then y = rms(x) * (1 + mod_scale[D]) + mod_shift[D]. y may be a
  // gemm_input() view.
  virtual void add_ada_rms_norm(Tensor x, const Tensor* delta, const Tensor* gate, Tensor y,
                                Tensor mod_scale, Tensor mod_shift, float eps) = 0;
  // x += gate[D] * delta, per row (the last gated residual, before the final norm's input).
  virtual void gated_add(Tensor x, Tensor delta, Tensor gate) = 0;
  // y[S,F] = gelu_tanh(gate_up[:, :F]) * gate_up[:, F:2F]. y may be a gemm_input() view.
  virtual void geglu(Tensor y, Tensor gate_up) = 0;
  // y = act(x) elementwise (y may alias x).
  virtual void activation(Tensor y, Tensor x, Activation act) = 0;
  // Splits qkv[S, (Hq + 2 Hkv) * D] into q[S, Hq*D], k[S, Hkv*D], v[S, Hkv*D] and applies RoPE
  // (rotate-half, theta) to q and k at positions pos_offset + row, plus pos_base[0] when
  // pos_base is given (i32 [1] in the backend's memory, read when the op runs: the expert's
  // positions follow the prompt's length without a recapture). theta == 0: no RoPE. k and v may
  // be row slices of a KV cache.
  virtual void qkv_split_rope(Tensor q, Tensor k, Tensor v, Tensor qkv, int num_q_heads,
                              int num_kv_heads, int head_dim, int pos_offset,
                              const Tensor* pos_base, float theta) = 0;
  // out[Sq, Hq*D] = softmax(q k^T * scale + mask) v over keys [0, Skv) of k/v [Skv, Hkv*D].
  virtual void attention(Tensor out, Tensor q, Tensor k, Tensor v,
                         const AttentionParams& p) = 0;
  // SigLIP patch embedding: img[224,224,3] in [-1,1] → out[256, W] = conv14x14/stride14(img)
  // with w[W,3,14,14] + b[W] + pos[256,W].
  virtual void patch_embed(Tensor out, Tensor img, Tensor w, Tensor b, Tensor pos) = 0;
  // src: u8 [H,W,3] (device); out: [out_h, out_w, 3] (224x224) in [-1, 1], computed as openpi's
  // PyTorch model does (Observation.from_dict then resize_with_pad_torch's float branch):
  // x = u8/255*2-1 (fp32); if H, W already equal the output size, copy. Else ratio =
  // max(W/out_w, H/out_h), resized = int(H/ratio) x int(W/ratio), bilinear with half-pixel
  // centers exactly like F.interpolate(align_corners=False, no antialias): scale = (float)in/out,
  // src = max(scale*(dst+0.5)-0.5, 0), i0 = floor(src), i1 = min(i0+1, in-1), l1 = src-i0,
  // l0 = 1-l1, out = l0h*(l0w*x00 + l1w*x01) + l1h*(l0w*x10 + l1w*x11) in fp32; clamp to [-1, 1];
  // centered padding with -1 (the extra pixel goes bottom/right). No rounding to u8: bilinear
  // weights of exactly 0.5 are common and rounding would make ties precision-dependent.
  virtual void resize_pad_normalize(Tensor out, Tensor src_u8) = 0;
  // out[T, D] = table[ids[t], :] * scale. ids: i32 [T] on the device.
  virtual void embed_gather(Tensor out, Tensor table, Tensor ids, float scale) = 0;
  // out[1, D] = [sin(t*2π/period_i), cos(...)], period_i = min*(max/min)^(i/(D/2-1)).
  virtual void time_embedding(Tensor out, float t, float min_period, float max_period) = 0;
  // x += dt * v (f32 action state).
  virtual void euler_update(Tensor x, Tensor v, float dt) = 0;
};

// fused_linear's prologue as the ops it stands for: add_rms_norm / add_ada_rms_norm / geglu of x
// into `staged` (returned; [M, K], checked by those ops), or x itself for kNone. Used by the
// backends' unfused fused_linear paths. src/backend/composed_ops.cpp.
Tensor stage_prologue(Backend& be, Tensor x, const LinearPrologue& pro, Tensor staged);

// expert_mlp as the two fused_linear calls it stands for (the CPU twin, and what a backend runs
// where its fused kernel does not apply). src/backend/composed_ops.cpp.
void expert_mlp_composed(Backend& be, Tensor x, Tensor gate_up_w, Tensor down_w,
                         const LinearPrologue& pro, const Tensor* gate, Tensor staged,
                         Tensor gate_up, Tensor h, Tensor product);

// expert_attention as the four ops it stands for (the CPU twin, and the fallback of a fusing
// backend). src/backend/composed_ops.cpp. qkv_rope (optional): a backend's fused form of the
// first two, called after the arguments are checked; it returns true when it has written q and
// the suffix K/V rows of the cache as fused_linear + qkv_split_rope would, false to leave them
// to those two ops.
void expert_attention_composed(Backend& be, Tensor x, const ExpertAttention& a,
                               const std::function<bool()>& qkv_rope = {});

// attention with p.batch > 1 as one batch-1 attention per stacked sequence (the meaning of
// AttentionParams::batch: the CPU twin, and a backend kernel that takes one sequence). The
// caller has checked that batch divides the rows. src/backend/composed_ops.cpp.
void attention_per_sequence(Backend& be, Tensor out, Tensor q, Tensor k, Tensor v,
                            const AttentionParams& p);

// Factory: "cpu" always; "cuda" when compiled with CUDA and a GPU is present.
std::unique_ptr<Backend> make_cpu_backend();
// Throws kNotSupported if absent, or for kFP8 on a GPU without FP8 tensor cores (< sm_89).
std::unique_ptr<Backend> make_cuda_backend(int device_index,
                                           Precision precision = Precision::kBF16);
bool cuda_available(std::string* why_not);
// Whether device `device_index` has FP8 tensor cores (sm_89+); false without CUDA.
bool cuda_supports_fp8(int device_index, std::string* why_not);

}  // namespace frt
