// The CUDA backend: bf16 activations, bf16 GEMM weights, fp32 arithmetic everywhere. One device,
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
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"

namespace frt {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device_index);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return "cuda"; }
  Device device() const override { return Device::kCuda; }
  DType activation_dtype() const override { return DType::kBF16; }

  // ---- memory (cuda_backend.cu) ----
  Tensor alloc(DType dtype, std::initializer_list<int64_t> shape, const char* what) override;
  // 2-D matrices with both dims > 1 become BF16 (they feed GEMMs or gathers), except the
  // position embedding; everything else (vectors, the 4-D conv weight, the 4-D adaRMS
  // modulation) stays F32.
  Tensor upload_weight(HostTensor&& w, const std::string& name) override;
  void copy_to_device(Tensor dst, const void* host_src, size_t bytes) override;
  void copy_to_host(void* host_dst, Tensor src, size_t bytes) override;
  void synchronize() override;
  // CUDA graphs (cuda_graphs.cu): capture per key on first use, replay after.
  void run_graph(const std::string& key, const std::function<void()>& body) override;
  float last_graph_ms() override;
  size_t bytes_allocated() const override { return bytes_; }

  // ---- ops ----
  // cuda_linear.cu
  void linear(Tensor y, Tensor x, Tensor w, const Tensor* bias, Activation act,
              bool accumulate) override;
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
  void qkv_split_rope(Tensor q, Tensor k, Tensor v, Tensor qkv, int num_q_heads,
                      int num_kv_heads, int head_dim, int pos_offset, float theta) override;
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

  // One GEMM through cuBLASLt (cuda_gemm.cu): y[M,N] (=|+=) x[M,K] . w[N,K]^T, all row-major
  // with row strides; x and w both BF16 or both F32, y F32 or BF16, fp32 compute. Returns false
  // (launching nothing) when cuBLASLt offers no algorithm; the caller then uses gemm_fallback.
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
  };
  bool gemm_lt(const char* op, const Gemm& g);
  // A plain CUDA-core kernel for any dtypes (F32/BF16) with the full linear epilogue; bias may be
  // null. Correct for every shape and alignment (cuda_gemm.cu).
  void gemm_fallback(const char* op, const Gemm& g, const Tensor* bias, Activation act);

 private:
  // Fixed load-time scratch (constructor): GEMM epilogue staging and patch_embed's im2col.
  static constexpr size_t kScratchBytes = size_t{64} << 20;
  static constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;

  void* scratch(size_t bytes, const char* op) const;
  // The tensor-core flash-attention path (cuda_flash_attention.cu): launches and returns true
  // when it takes the call (see flash_attention_would_handle), else returns false untouched.
  bool attention_flash(Tensor out, Tensor q, Tensor k, Tensor v, const AttentionParams& p);
  // cudaMalloc that names `what` in its out-of-memory error; `counted`: part of bytes_allocated().
  void* device_malloc(size_t bytes, const char* what, bool counted);
  void release() noexcept;  // frees everything (destructor, failed constructor)
  // Reads and clears the device error flag (embed_gather's out-of-range ids); throws if set.
  // Only called where the stream is already synchronized.
  void raise_device_errors();

  struct GemmKey {
    int64_t M, N, K, ldx, ldw, ldy;
    int xt, wt, yt, beta, align_x, align_w, align_y;
    bool operator<(const GemmKey& o) const {
      return std::tie(M, N, K, ldx, ldw, ldy, xt, wt, yt, beta, align_x, align_w, align_y) <
             std::tie(o.M, o.N, o.K, o.ldx, o.ldw, o.ldy, o.xt, o.wt, o.yt, o.beta, o.align_x,
                      o.align_w, o.align_y);
    }
  };
  struct GemmPlan {
    bool ok = false;  // false: cuBLASLt has no algorithm for this key (use the fallback)
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    size_t workspace = 0;
  };
  const GemmPlan& gemm_plan(const char* op, const GemmKey& key);

  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  std::map<std::string, cudaGraphExec_t> graphs_;
  std::set<std::string> eager_keys_;  // shapes whose capture failed: run eagerly
  cudaEvent_t graph_start_ = nullptr, graph_stop_ = nullptr;
  bool graph_timed_ = false;
  cublasLtHandle_t lt_ = nullptr;
  void* lt_workspace_ = nullptr;
  void* scratch_ = nullptr;
  int* error_flag_ = nullptr;  // [4]: code, index, value, bound (see raise_device_errors)
  std::vector<void*> buffers_;  // every cudaMalloc, freed by the destructor
  std::map<GemmKey, GemmPlan> plans_;
  size_t bytes_ = 0;
  int attn_max_head_dim_ = 0;  // from cuda_attention_setup
  bool skinny_gemm_enabled_ = true;
  bool skinny_gemm_pdl_ = true;
};

// Device-error codes written to error_flag_[0] by kernels.
constexpr int kDeviceErrorNone = 0;
constexpr int kDeviceErrorEmbedId = 1;

// Raises the attention kernel's dynamic shared-memory limit (cuda_attention.cu); called once by
// the constructor. Returns the largest head_dim the device can run.
int cuda_attention_setup(int device_index);

}  // namespace frt
