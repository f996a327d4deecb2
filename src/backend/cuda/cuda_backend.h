// The CUDA backend: bf16 activations, bf16 GEMM weights (FP8 E4M3 with per-tensor scales in
// Precision::kFP8, see cuda_fp8.cu), fp32 arithmetic everywhere. One device,
// one stream; every op is an asynchronous launch on that stream (no allocation, no
// synchronization), so a whole predict can be captured into a CUDA graph. Memory comes from
// alloc()/upload_weight() at load time plus fixed buffers made by the constructor (scratch for
// GEMM epilogues and im2col, the cuBLASLt workspace, a device error flag).
// Ops are spread over cuda_*.cu by op family (kernel -> launcher -> entry in each file);
// cuda_gemm.cu holds the cuBLASLt plans and the fallback GEMM shared by linear and patch_embed.
// Covered by tests/gpu/test_cuda_ops.cpp (each op against the CPU reference backend).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_gemm_tune.h"
#include "core/tensor.h"

namespace frt {

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device_index, Precision precision);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return "cuda"; }
  Device device() const override { return Device::kCuda; }
  DType activation_dtype() const override { return DType::kBF16; }

  // ---- memory (cuda_backend.cu) ----
  Tensor alloc(DType dtype, std::initializer_list<int64_t> shape, const char* what) override;
  // 2-D matrices with both dims > 1 of a GEMM / table use become BF16; in FP8 mode kGemm
  // weights become F8E4M3 with a per-tensor scale and a QuantInfo (one FP8 site each, see
  // cuda_fp8.cu); everything else (kParam, vectors) stays F32. 1-D kParam weights also get a bf16
  // twin (the bias type cuBLASLt's epilogues take).
  Tensor upload_weight(HostTensor&& w, const std::string& name, WeightUse use) override;
  Precision precision() const override { return precision_; }
  // FP8 calibration (cuda_fp8.cu).
  int quant_sites() const override { return static_cast<int>(quant_.size()); }
  void set_quant_mode(QuantMode mode) override { quant_mode_ = mode; }
  QuantMode quant_mode() const { return quant_mode_; }
  void reset_quant_amax() override;
  std::vector<float> read_quant_amax() override;
  void write_quant_scales(const std::vector<float>& x_scales) override;
  std::vector<std::string> quant_site_names() const override { return quant_names_; }
  void copy_to_device(Tensor dst, const void* host_src, size_t bytes) override;
  void copy_to_host(void* host_dst, Tensor src, size_t bytes) override;
  void synchronize() override;
  // CUDA graphs (cuda_graphs.cu): capture per key on first use, replay after.
  // FP8 producer fusion (cuda_fp8.cu): an F8E4M3 view of fp8_x_ for the GEMMs linear_fp8 runs.
  Tensor gemm_input(Tensor x, Tensor w) override;
  void run_graph(const std::string& key, const std::function<void()>& body) override;
  // Under stream capture: a switch node with one captured body per option (cuda_graphs.cu).
  void run_bucketed(const Tensor& valid, int valid_host, const std::vector<int>& row_options,
                    const std::function<void(int rows)>& body) override;
  float last_graph_ms() override;
  // Stage boundaries become event nodes of the captured graph (cuda_graphs.cu).
  void stage(const char* name) override;
  std::string stage_report() override;
  void reset_stage_report() override { stage_ms_.clear(); }
  size_t bytes_allocated() const override { return bytes_; }
  size_t device_bytes_in_use() const override;

  // ---- ops ----
  // cuda_linear.cu
  void linear(Tensor y, Tensor x, Tensor w, const Tensor* bias, Activation act,
              bool accumulate) override;
  // cuda_fused_linear.cu
  void fused_linear(Tensor y, Tensor x, Tensor w, const LinearPrologue& pro, const Tensor* gate,
                    bool accumulate, Tensor staged, Tensor product) override;
  // cuda_expert_ops.cu (the two halves of an action expert layer)
  void expert_attention(Tensor x, const ExpertAttention& a) override;
  void expert_mlp(Tensor x, Tensor gate_up_w, Tensor down_w, const LinearPrologue& pro,
                  const Tensor* gate, Tensor staged, Tensor gate_up, Tensor h,
                  Tensor product) override;
  // cuda_norms.cu
  void layer_norm(Tensor y, Tensor x, Tensor w, Tensor b, float eps) override;
  void add_rms_norm(Tensor x, const Tensor* delta, Tensor y, Tensor scale, float eps) override;
  void add_ada_rms_norm(Tensor x, const Tensor* delta, const Tensor* gate, Tensor y,
                        Tensor mod_scale, Tensor mod_shift, float eps) override;
  // cuda_elementwise.cu
  void gated_add(Tensor x, Tensor delta, Tensor gate) override;
  void geglu(Tensor y, Tensor gate_up) override;
  void activation(Tensor y, Tensor x, Activation act) override;
  void embed_gather(Tensor out, Tensor table, Tensor ids, float scale) override;
  void time_embedding(Tensor out, float t, float min_period, float max_period) override;
  void euler_update(Tensor x, Tensor v, float dt) override;
  // cuda_rope.cu
  void qkv_split_rope(Tensor q, Tensor k, Tensor v, Tensor qkv, int num_q_heads, int num_kv_heads,
                      int head_dim, int pos_offset, const Tensor* pos_base, float theta) override;
  // cuda_attention.cu
  void attention(Tensor out, Tensor q, Tensor k, Tensor v, const AttentionParams& p) override;
  // cuda_vision.cu
  void patch_embed(Tensor out, Tensor img, Tensor w, Tensor b, Tensor pos) override;
  void resize_pad_normalize(Tensor out, Tensor src_u8) override;

  // The stream every op runs on (graph capture wraps it).
  cudaStream_t stream() const { return stream_; }
  int device_index() const { return device_; }

  // Routing of linear() to the skinny weight-streaming GEMM (cuda_skinny_gemm.cu, few x rows):
  // on by default; benchmarks and tests turn it off to run cuBLASLt through the same linear().
  void set_skinny_gemm_enabled(bool on) { skinny_gemm_enabled_ = on; }
  bool skinny_gemm_enabled() const { return skinny_gemm_enabled_; }
  // Whether skinny GEMMs launch with programmatic dependent launch (sm_90+: their weight loads
  // overlap the previous kernel's tail). On by default; benchmarks compare both.
  void set_skinny_gemm_pdl(bool on) { skinny_gemm_pdl_ = on; }
  bool skinny_gemm_pdl() const { return skinny_gemm_pdl_; }
  // Whether the other kernels (norms, RoPE, elementwise, attention, vision, FP8 quantize, GEMM
  // fallback / epilogue) launch with programmatic dependent launch on sm_90+ (cuda_launch.cuh).
  // On by default; benchmarks compare both. Read at launch: graphs captured before keep theirs.
  void set_pdl_enabled(bool on) { pdl_enabled_ = on; }
  bool pdl_enabled() const { return pdl_enabled_; }
  // Whether linear() may fuse bias / GELU into cuBLASLt epilogues (on by default); off: the GEMM
  // writes fp32 scratch and linear_epilogue_kernel finishes (benchmarks compare both).
  void set_lt_epilogue_enabled(bool on) { lt_epilogue_enabled_ = on; }
  bool lt_epilogue_enabled() const { return lt_epilogue_enabled_; }
  // Whether expert_attention runs its qkv projection and qkv_split_rope as one skinny launch
  // (the split / RoPE in the GEMM's epilogue, bit-identical to the two ops) where the skinny
  // kernel takes the projection. On by default (measured ~1.8 us faster per expert layer on the
  // H100, docs/performance_history.md session 8); tests and benchmarks switch it to compare the two.
  void set_qkv_rope_fusion(bool on) { qkv_rope_fusion_ = on; }
  // Whether a cuBLASLt plan's first call times the heuristic's candidate algorithms and keeps
  // the fastest (cuda_gemm_tune.h); on by default, off: the heuristic's first (tests compare).
  void set_gemm_tuning(bool on) { tuner_.set_enabled(on); }
  const cuda::GemmTuner::Totals& gemm_tuning_totals() const { return tuner_.totals(); }
  // Which path linear() calls took (counted on the host at enqueue; tests and benchmarks read it).
  struct LinearStats {
    int64_t skinny = 0;      // weight-streaming kernel (bf16 or fp8 weights)
    int64_t lt = 0;          // one cuBLASLt GEMM, bias/activation fused in its epilogue if any
    int64_t lt_scratch = 0;  // cuBLASLt into fp32 scratch + linear_epilogue_kernel
    int64_t fallback = 0;    // plain CUDA-core kernel
    int64_t fp8_lt = 0;      // of `lt` + `lt_scratch`: FP8 x FP8 GEMMs (x quantized first)
    int64_t qkv_rope = 0;  // of `skinny`: qkv projections with the split / RoPE epilogue
  };
  const LinearStats& linear_stats() const { return linear_stats_; }
  void reset_linear_stats() { linear_stats_ = LinearStats{}; }

  // One GEMM through cuBLASLt (cuda_gemm.cu): y[M,N] (=|+=) act(x[M,K] . w[N,K]^T + bias), all
  // row-major with row strides; x and w both BF16, both F32 or both F8E4M3 (then a_scale /
  // b_scale: device pointers to the per-tensor scales of w / x, read at run time), y F32 or BF16,
  // fp32 compute. bias (device vector of bias_t) and act (kNone / kGeluTanh) use cuBLASLt
  // epilogues; accumulate is beta = 1 (so act must be kNone when accumulating: cuBLASLt applies
  // it after the C term). Returns false (launching nothing) when cuBLASLt offers no algorithm;
  // the caller then uses the scratch epilogue or gemm_fallback.
  struct Gemm {
    int64_t M = 0, N = 0, K = 0;
    const void* x = nullptr;
    int64_t ldx = 0;
    DType xt = DType::kBF16;
    const void* w = nullptr;
    int64_t ldw = 0;
    DType wt = DType::kBF16;
    void* y = nullptr;
    int64_t ldy = 0;
    DType yt = DType::kBF16;
    bool accumulate = false;
    const void* bias = nullptr;  // epilogue bias [N] or null
    DType bias_t = DType::kF32;
    Activation act = Activation::kNone;
    const float* a_scale = nullptr;  // FP8: w's scale (device)
    const float* b_scale = nullptr;  // FP8: x's scale (device)
  };
  bool gemm_lt(const char* op, const Gemm& g);
  // A plain CUDA-core kernel for any dtypes (F32/BF16 y; F32/BF16/F8E4M3 x and w, FP8 ones times
  // *g.b_scale / *g.a_scale) with the full linear epilogue; bias may be null. Correct for every
  // shape and alignment (cuda_gemm.cu).
  void gemm_fallback(const char* op, const Gemm& g, const Tensor* bias, Activation act);
  // The bf16 twin of an uploaded F32 vector (or a view inside one), null if there is none.
  const void* bias_bf16_twin(const Tensor& bias) const;

 private:
  // Fixed load-time scratch (constructor): GEMM epilogue staging and patch_embed's im2col.
  static constexpr size_t kScratchBytes = size_t{64} << 20;
  static constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;

  void* scratch(size_t bytes, const char* op) const;
  // linear() with F8E4M3 weights and more rows than the skinny kernel takes (cuda_fp8.cu):
  // quantize x (static or dynamic scale; skipped when x is already the site's gemm_input()),
  // FP8 cuBLASLt GEMM with epilogue.
  void linear_fp8(Tensor y, Tensor x, Tensor w, const Tensor* bias, Activation act,
                  bool accumulate);
  // A GEMM with the full linear epilogue through cuBLASLt: fused epilogue where cuBLASLt takes
  // it, else fp32 scratch + linear_epilogue_kernel in row chunks, else gemm_fallback
  // (cuda_linear.cu). `g` holds operands and scales; bias / act / accumulate come separately.
  void gemm_with_epilogue(const char* op, const Gemm& g, const Tensor* bias, Activation act);
  // Makes the QuantInfo of an FP8 weight (device floats, load time; cuda_fp8.cu).
  const QuantInfo* new_quant_site(const std::string& name, float w_scale);
  // The tensor-core flash-attention path (cuda_flash_attention.cu): launches and returns true
  // when it takes the call (see flash_attention_would_handle), else returns false untouched.
  bool attention_flash(Tensor out, Tensor q, Tensor k, Tensor v, const AttentionParams& p);
  // expert_attention's qkv projection + qkv_split_rope as one skinny launch where it applies
  // (set_qkv_rope_fusion), else false untouched (cuda_expert_ops.cu).
  bool expert_qkv_rope(Tensor x, const ExpertAttention& a);
  // cudaMalloc that names `what` in its out-of-memory error; `counted`: part of bytes_allocated().
  void* device_malloc(size_t bytes, const char* what, bool counted);
  void release() noexcept;  // frees everything (destructor, failed constructor)
  // Reads and clears the device error flag (embed_gather's out-of-range ids); throws if set.
  // Only called where the stream is already synchronized.
  void raise_device_errors();

  struct GemmKey {
    int64_t M, N, K, ldx, ldw, ldy;
    int xt, wt, yt, beta, align_x, align_w, align_y;
    int epilogue, bias_t, align_bias;  // cublasLtEpilogue_t, bias dtype (-1: none), alignment
    bool operator<(const GemmKey& o) const {
      return std::tie(M, N, K, ldx, ldw, ldy, xt, wt, yt, beta, align_x, align_w, align_y, epilogue,
                      bias_t, align_bias) < std::tie(o.M, o.N, o.K, o.ldx, o.ldw, o.ldy, o.xt, o.wt,
                                                     o.yt, o.beta, o.align_x, o.align_w, o.align_y,
                                                     o.epilogue, o.bias_t, o.align_bias);
    }
  };
  struct GemmPlan {
    bool ok = false;  // false: cuBLASLt has no algorithm for this key (use the fallback)
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    size_t workspace = 0;
    std::vector<cuda::LtCandidate> candidates;  // until the first call has timed them
  };
  const GemmPlan& gemm_plan(const char* op, const GemmKey& key);

  int device_ = 0;
  Precision precision_ = Precision::kBF16;
  cudaStream_t stream_ = nullptr;
  // run_bucketed's bodies are captured on this stream (never used outside a capture), stream_
  // pointing at it meanwhile so every op records into the body graph.
  cudaStream_t body_stream_ = nullptr;
  std::map<std::string, cudaGraphExec_t> graphs_;
  std::set<std::string> eager_keys_;  // shapes whose capture failed: run eagerly
  cudaEvent_t graph_start_ = nullptr, graph_stop_ = nullptr;
  bool graph_timed_ = false;
  // Stage timing inside graphs: while capturing, stage() records an event node per boundary
  // (capture_marks_); each graph keeps its marks, and last_graph_ms() adds the replay's stage
  // times to stage_ms_ (name -> total ms, replays).
  struct StageMark {
    std::string name;
    cudaEvent_t event = nullptr;
  };
  bool capturing_ = false;
  std::vector<StageMark> capture_marks_;
  std::map<std::string, std::vector<StageMark>> graph_marks_;
  const std::vector<StageMark>* replay_marks_ = nullptr;
  std::map<std::string, std::pair<double, int64_t>> stage_ms_;
  cublasLtHandle_t lt_ = nullptr;
  void* lt_workspace_ = nullptr;
  void* scratch_ = nullptr;
  int* error_flag_ = nullptr;  // [4]: code, index, value, bound (see raise_device_errors)
  std::vector<void*> buffers_;  // every cudaMalloc, freed by the destructor
  std::map<GemmKey, GemmPlan> plans_;
  cuda::GemmTuner tuner_;  // its buffers are freed after each capture (run_graph)
  size_t bytes_ = 0;
  int attn_max_head_dim_ = 0;  // from cuda_attention_setup
  bool skinny_gemm_enabled_ = true;
  bool skinny_gemm_pdl_ = true;
  bool pdl_enabled_ = true;
  bool lt_epilogue_enabled_ = true;
  bool qkv_rope_fusion_ = true;
  LinearStats linear_stats_;
  // bf16 twins of uploaded F32 vectors: start address -> (bytes, twin) (load time).
  std::map<uintptr_t, std::pair<size_t, void*>> bias_bf16_;
  // FP8 (cuda_fp8.cu). quant_: one QuantInfo per quantized weight (stable addresses: Tensor::quant
  // points here); their floats live in blocks of kQuantBlock sites x kQuantStride floats
  // (w_scale at 0, x_scale at kXScale, x_amax at kXAmax: each 16-byte aligned, as cuBLASLt's FP8
  // kernels want their scale pointers), so calibration reads / writes a block with one strided
  // copy.
  static constexpr int kQuantBlock = 512;
  static constexpr int kQuantStride = 16, kXScale = 4, kXAmax = 8;
  static constexpr size_t kFp8XBytes = size_t{32} << 20;  // quantized-x buffer (row chunks)
  std::deque<QuantInfo> quant_;
  std::vector<std::string> quant_names_;
  std::vector<float*> quant_blocks_;
  QuantMode quant_mode_ = QuantMode::kStatic;
  void* fp8_x_ = nullptr;     // [kFp8XBytes] quantized GEMM input (FP8 mode only)
  float* fp8_dyn_ = nullptr;  // [16]: calibrate mode's amax [0] and scale [kXScale] of a GEMM
};

// Device-error codes written to error_flag_[0] by kernels.
constexpr int kDeviceErrorNone = 0;
constexpr int kDeviceErrorEmbedId = 1;

// Raises the attention kernel's dynamic shared-memory limit (cuda_attention.cu); called once by
// the constructor. Returns the largest head_dim the device can run.
int cuda_attention_setup(int device_index);

}  // namespace frt
