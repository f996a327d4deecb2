// CUDA backend entry points and memory: device discovery (cuda_available, make_cuda_backend),
// the op-table hook (cuda_op_implemented), construction of the stream / cuBLASLt handle / fixed
// scratch, alloc, upload_weight (f32 host weights -> bf16, fp8 or f32 device buffers), copies and
// the device error flag. Every allocation happens here, at load time; ops never allocate.
// Covered by tests/gpu/test_cuda_ops.cpp (CudaBackendMemory.* and every op case).
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_fp8.h"
#include "core/status.h"

namespace frt {

namespace {
constexpr int kMinMajor = 8;  // Ampere: bf16 tensor cores, cp.async, large shared memory

// An empty kernel: cudaFuncGetAttributes on it fails when this binary has no code the device
// can run (no matching SASS and no PTX it can JIT).
__global__ void probe_kernel() {}

std::string describe(const cudaDeviceProp& prop, int index) {
  return "device " + std::to_string(index) + " " + prop.name + " (sm_" +
         std::to_string(prop.major) + std::to_string(prop.minor) + ")";
}

// Whether device `index` can run this backend; `why` says what it is or why not.
bool usable_device(int index, std::string* why) {
  cudaDeviceProp prop{};
  cudaError_t err = cudaGetDeviceProperties(&prop, index);
  if (err != cudaSuccess) {
    *why = "device " + std::to_string(index) + ": cudaGetDeviceProperties failed: " +
           cudaGetErrorString(err);
    return false;
  }
  if (prop.major < kMinMajor) {
    *why = describe(prop, index) + " has compute capability " + std::to_string(prop.major) + "." +
           std::to_string(prop.minor) + "; the CUDA backend needs 8.0 or newer (Ampere+)";
    return false;
  }
  int previous = 0;
  cudaGetDevice(&previous);
  cudaFuncAttributes attr{};
  err = cudaSetDevice(index);
  if (err == cudaSuccess) err = cudaFuncGetAttributes(&attr, probe_kernel);
  cudaSetDevice(previous);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    *why = describe(prop, index) + ": this build has no kernel image for it (" +
           cudaGetErrorString(err) + "); rebuild with -DFLASHRT_CUDA_ARCHS including sm_" +
           std::to_string(prop.major) + std::to_string(prop.minor);
    return false;
  }
  *why = "found " + describe(prop, index);
  return true;
}

// Bytes a view spans in memory, from its first element to the end of its last row.
size_t span_bytes(const Tensor& t) {
  if (t.numel() == 0) return 0;
  const int64_t elems = (t.rows() - 1) * t.ld() + t.cols();
  return static_cast<size_t>(elems) * dtype_size(t.dtype);
}

void check_copy(const char* where, const Tensor& t, size_t bytes) {
  if (t.device != Device::kCuda)
    throw_error(Status::kInternal, where, ": expected a CUDA device tensor, got a host tensor");
  if (!t.contiguous() && t.rows() > 1)
    throw_error(Status::kInternal, where, ": tensor ", t.shape_str(), " is a strided view (ld ",
                t.ld(), "); copy it row by row");
  if (bytes > span_bytes(t))
    throw_error(Status::kInternal, where, ": ", bytes, " bytes do not fit tensor ",
                t.shape_str(), " ", dtype_name(t.dtype), " (", t.nbytes(), " bytes)");
  if (bytes > 0 && t.data == nullptr)
    throw_error(Status::kInternal, where, ": null device pointer");
}

__global__ void f32_to_bf16_kernel(const float* src, __nv_bfloat16* dst, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}
}  // namespace

bool cuda_available(std::string* why_not) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  std::string why;
  bool ok = false;
  if (err != cudaSuccess) {
    cudaGetLastError();
    why = std::string("no usable CUDA device: cudaGetDeviceCount failed: ") +
          cudaGetErrorString(err);
  } else if (count == 0) {
    why = "no CUDA device found";
  } else {
    std::string reasons;
    for (int i = 0; i < count && !ok; ++i) {
      std::string r;
      ok = usable_device(i, &r);
      if (ok) why = r;
      else reasons += (reasons.empty() ? "" : "; ") + r;
    }
    if (!ok) why = reasons;
  }
  if (why_not) *why_not = why;
  return ok;
}

std::unique_ptr<Backend> make_cuda_backend(int device_index, Precision precision) {
  if (precision == Precision::kFP8) {
    std::string why;
    if (!cuda_supports_fp8(device_index, &why))
      throw_error(Status::kNotSupported, "FP8 (use_fp8=True): ", why,
                  "; load with use_fp8=False (bf16) on this GPU");
  }
  return std::make_unique<CudaBackend>(device_index, precision);
}

bool cuda_supports_fp8(int device_index, std::string* why_not) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device_index) != cudaSuccess) {
    cudaGetLastError();
    if (why_not) *why_not = "no CUDA device " + std::to_string(device_index);
    return false;
  }
  const int cc = prop.major * 10 + prop.minor;
  if (cc < 89) {
    if (why_not)
      *why_not = std::string(prop.name) + " (sm_" + std::to_string(cc) +
                 ") has no FP8 tensor cores (sm_89 or newer needed)";
    return false;
  }
  if (why_not) *why_not = std::string(prop.name) + " supports FP8";
  return true;
}

// The ops of src/backend/ops.def this backend implements (tests/cpp/test_op_table.cpp checks
// every op has one in a CUDA build).
bool cuda_op_implemented(const char* name) {
  static const char* const kOps[] = {
      "linear",         "fused_linear", "expert_mlp", "expert_attention", "layer_norm",   "add_rms_norm",         "add_ada_rms_norm",
      "gated_add",      "geglu",        "activation",   "qkv_split_rope",       "attention",
      "patch_embed",    "resize_pad_normalize",         "embed_gather",         "time_embedding",
      "euler_update"};
  if (!name) return false;
  for (const char* op : kOps)
    if (std::strcmp(op, name) == 0) return true;
  return false;
}

CudaBackend::CudaBackend(int device_index, Precision precision)
    : device_(device_index), precision_(precision) {
  const char* op = "make_cuda_backend";
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || device_index < 0 || device_index >= count) {
    cudaGetLastError();
    throw_error(Status::kNotSupported, "CUDA backend (device ", device_index, "): ",
                err != cudaSuccess ? std::string("cudaGetDeviceCount failed: ") +
                                         cudaGetErrorString(err)
                                   : "expected a device index in [0, " + std::to_string(count) +
                                         ")",
                "; use hardware='cpu'");
  }
  std::string why;
  if (!usable_device(device_index, &why))
    throw_error(Status::kNotSupported, "CUDA backend: ", why, "; use hardware='cpu'");
  try {
    FRT_CUDA_CHECK(op, cudaSetDevice(device_index));
    FRT_CUDA_CHECK(op, cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    FRT_CUDA_CHECK(op, cudaStreamCreateWithFlags(&body_stream_, cudaStreamNonBlocking));
    FRT_CUBLAS_CHECK(op, cublasLtCreate(&lt_));
    lt_workspace_ = device_malloc(kLtWorkspaceBytes, "cuBLASLt workspace", false);
    scratch_ = device_malloc(kScratchBytes, "op scratch", false);
    error_flag_ = static_cast<int*>(device_malloc(4 * sizeof(int), "device error flag", false));
    FRT_CUDA_CHECK(op, cudaMemsetAsync(error_flag_, 0, 4 * sizeof(int), stream_));
    attn_max_head_dim_ = cuda_attention_setup(device_index);
    if (precision_ == Precision::kFP8) {  // FP8 GEMM input buffer and calibrate-mode scalars
      fp8_x_ = device_malloc(kFp8XBytes, "fp8 GEMM input", false);
      fp8_dyn_ = static_cast<float*>(device_malloc(16 * sizeof(float), "fp8 dynamic scale", false));
      FRT_CUDA_CHECK(op, cudaMemsetAsync(fp8_dyn_, 0, 16 * sizeof(float), stream_));
    }
    FRT_CUDA_CHECK(op, cudaStreamSynchronize(stream_));
  } catch (...) {
    release();
    throw;
  }
}

CudaBackend::~CudaBackend() { release(); }

void CudaBackend::release() noexcept {
  // No throwing here: errors of a dying backend have nowhere to go.
  cudaSetDevice(device_);
  if (stream_) cudaStreamSynchronize(stream_);
  for (auto& [key, plan] : plans_) {
    if (plan.desc) cublasLtMatmulDescDestroy(plan.desc);
    if (plan.a) cublasLtMatrixLayoutDestroy(plan.a);
    if (plan.b) cublasLtMatrixLayoutDestroy(plan.b);
    if (plan.c) cublasLtMatrixLayoutDestroy(plan.c);
  }
  plans_.clear();
  tuner_.release();
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
  graphs_.clear();
  if (graph_start_) cudaEventDestroy(graph_start_);
  if (graph_stop_) cudaEventDestroy(graph_stop_);
  for (auto& [key, marks] : graph_marks_)
    for (StageMark& m : marks) cudaEventDestroy(m.event);
  graph_marks_.clear();
  for (StageMark& m : capture_marks_) cudaEventDestroy(m.event);
  capture_marks_.clear();
  for (void* p : buffers_) cudaFree(p);
  buffers_.clear();
  if (lt_) cublasLtDestroy(lt_);
  lt_ = nullptr;
  if (stream_) cudaStreamDestroy(stream_);
  stream_ = nullptr;
  if (body_stream_) cudaStreamDestroy(body_stream_);
  body_stream_ = nullptr;
  cudaGetLastError();
}

void* CudaBackend::device_malloc(size_t bytes, const char* what, bool counted) {
  const char* op = "cuda alloc";
  FRT_CUDA_CHECK(op, cudaSetDevice(device_));
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, std::max<size_t>(bytes, 1));
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw_error(Status::kOutOfMemory, op, " '", what ? what : "?", "': cudaMalloc of ",
                bytes >> 20, " MiB failed: out of device memory (", free_b >> 20, " MiB free of ",
                total_b >> 20, " MiB, ", bytes_ >> 20, " MiB held by this backend); use fewer "
                "views / a shorter prompt, or a GPU with more memory");
  }
  if (err != cudaSuccess) cuda::throw_cuda(op, "cudaMalloc", err);
  buffers_.push_back(p);
  if (counted) bytes_ += bytes;
  return p;
}

void* CudaBackend::scratch(size_t bytes, const char* op) const {
  if (bytes > kScratchBytes)
    throw_error(Status::kInternal, op, ": needs ", bytes, " bytes of scratch; the backend holds ",
                kScratchBytes);
  return scratch_;
}

Tensor CudaBackend::alloc(DType dtype, std::initializer_list<int64_t> shape, const char* what) {
  const char* name = what ? what : "?";
  if (shape.size() > static_cast<size_t>(kMaxDims))
    throw_error(Status::kInternal, "cuda alloc '", name, "': ", shape.size(), " dims; at most ",
                kMaxDims);
  for (int64_t d : shape)
    if (d < 0) throw_error(Status::kInternal, "cuda alloc '", name, "': negative dim ", d);
  Tensor t = make_view(nullptr, dtype, Device::kCuda, std::vector<int64_t>(shape));
  t.data = device_malloc(t.nbytes(), name, true);
  // Zero-initialized, in stream order: everything later on the stream sees the zeros.
  if (t.nbytes()) FRT_CUDA_CHECK("cuda alloc", cudaMemsetAsync(t.data, 0, t.nbytes(), stream_));
  return t;
}

Tensor CudaBackend::upload_weight(HostTensor&& w, const std::string& name, WeightUse use) {
  const char* op = "cuda upload_weight";
  if (w.data() == nullptr)
    throw_error(Status::kInternal, op, " '", name, "': empty host tensor");
  if (w.dtype() == DType::kBF16 || w.dtype() == DType::kF16) {
    HostTensor wide(DType::kF32, w.shape(), HostInit::kNone);
    convert_to_f32(w.data(), w.dtype(), wide.as<float>(), static_cast<size_t>(w.numel()));
    w = std::move(wide);
  }
  if (w.dtype() != DType::kF32)
    throw_error(Status::kInternal, op, " '", name, "': expected a float weight, got ",
                dtype_name(w.dtype()));
  const std::vector<int64_t>& shape = w.shape();
  if (shape.size() > static_cast<size_t>(kMaxDims))
    throw_error(Status::kInternal, op, " '", name, "': ", shape.size(), " dims; at most ",
                kMaxDims);
  // Parameters stay f32 (they are small and feed fp32 arithmetic); GEMM weights and gathered
  // tables become bf16 unless they are a single row or column (read as vectors); in FP8 mode
  // kGemm matrices become E4M3 with a per-tensor scale (kGemmPrecise and tables stay bf16).
  const bool matrix = shape.size() == 2 && shape[0] > 1 && shape[1] > 1;
  const bool to_fp8 = precision_ == Precision::kFP8 && use == WeightUse::kGemm && matrix;
  const bool to_bf16 = use != WeightUse::kParam && matrix && !to_fp8;
  const DType dt = to_fp8 ? DType::kF8E4M3 : to_bf16 ? DType::kBF16 : DType::kF32;
  Tensor t = make_view(nullptr, dt, Device::kCuda, shape);
  t.data = device_malloc(t.nbytes(), name.c_str(), true);
  const int64_t n = w.numel();
  float w_scale = 1.f;
  if (to_fp8) {  // w_scale = amax / 448 over the f32 weight (1 for an all-zero weight)
    const float amax = max_abs(w.as<const float>(), static_cast<size_t>(n));
    if (!std::isfinite(amax))
      throw_error(Status::kInvalidArgument, op, " '", name, "': non-finite value in an FP8 weight");
    if (amax > 0.f) w_scale = amax / kE4M3Max;
  }
  if (n > 0 && dt == DType::kF32) {
    FRT_CUDA_CHECK(op, cudaMemcpyAsync(t.data, w.data(), w.nbytes(), cudaMemcpyHostToDevice,
                                       stream_));
  } else if (n > 0) {
    // f32 chunks through the scratch, rounded to bf16 / fp8 (nearest-even) on the device.
    const int64_t chunk = static_cast<int64_t>(kScratchBytes / sizeof(float));
    float* stage = static_cast<float*>(scratch_);
    for (int64_t off = 0; off < n; off += chunk) {
      const int64_t m = std::min(chunk, n - off);
      FRT_CUDA_CHECK(op, cudaMemcpyAsync(stage, w.as<const float>() + off, m * sizeof(float),
                                         cudaMemcpyHostToDevice, stream_));
      if (to_fp8) {
        quantize_e4m3_flat(stream_, stage, static_cast<uint8_t*>(t.data) + off, m, w_scale);
      } else {
        f32_to_bf16_kernel<<<cuda::grid_for(m), cuda::kThreads, 0, stream_>>>(
            stage, static_cast<__nv_bfloat16*>(t.data) + off, m);
        FRT_CUDA_LAUNCH_CHECK(op);
      }
    }
  }
  if (to_fp8) t.quant = new_quant_site(name, w_scale);
  // A bf16 twin of every F32 vector parameter (biases): cuBLASLt's bias epilogue wants the
  // output's type for bf16 GEMMs and bf16 for FP8 ones.
  if (dt == DType::kF32 && use == WeightUse::kParam && shape.size() == 1 && n > 0) {
    void* twin = device_malloc(static_cast<size_t>(n) * 2, (name + " (bf16 twin)").c_str(), true);
    f32_to_bf16_kernel<<<cuda::grid_for(n), cuda::kThreads, 0, stream_>>>(
        static_cast<const float*>(t.data), static_cast<__nv_bfloat16*>(twin), n);
    FRT_CUDA_LAUNCH_CHECK(op);
    bias_bf16_[reinterpret_cast<uintptr_t>(t.data)] = {t.nbytes(), twin};
  }
  // Load time: wait, so a failure is reported against this weight and `w` can be freed.
  FRT_CUDA_CHECK(op, cudaStreamSynchronize(stream_));
  return t;
}

const void* CudaBackend::bias_bf16_twin(const Tensor& bias) const {
  const uintptr_t a = reinterpret_cast<uintptr_t>(bias.data);
  auto it = bias_bf16_.upper_bound(a);
  if (it == bias_bf16_.begin()) return nullptr;
  --it;
  const uintptr_t off = a - it->first;
  if (off + bias.nbytes() > it->second.first || off % sizeof(float) != 0) return nullptr;
  return static_cast<const char*>(it->second.second) + off / 2;
}

void CudaBackend::copy_to_device(Tensor dst, const void* host_src, size_t bytes) {
  const char* op = "cuda copy_to_device";
  check_copy(op, dst, bytes);
  if (bytes)
    FRT_CUDA_CHECK(op, cudaMemcpyAsync(dst.data, host_src, bytes, cudaMemcpyHostToDevice,
                                       stream_));
}

void CudaBackend::copy_to_host(void* host_dst, Tensor src, size_t bytes) {
  const char* op = "cuda copy_to_host";
  check_copy(op, src, bytes);
  if (bytes)
    FRT_CUDA_CHECK(op, cudaMemcpyAsync(host_dst, src.data, bytes, cudaMemcpyDeviceToHost,
                                       stream_));
  FRT_CUDA_CHECK(op, cudaStreamSynchronize(stream_));
  raise_device_errors();
}

void CudaBackend::synchronize() {
  FRT_CUDA_CHECK("cuda synchronize", cudaStreamSynchronize(stream_));
  raise_device_errors();
}

void CudaBackend::raise_device_errors() {
  const char* op = "cuda synchronize";
  int flag[4] = {0, 0, 0, 0};
  FRT_CUDA_CHECK(op, cudaMemcpyAsync(flag, error_flag_, sizeof(flag), cudaMemcpyDeviceToHost,
                                     stream_));
  FRT_CUDA_CHECK(op, cudaStreamSynchronize(stream_));
  if (flag[0] == kDeviceErrorNone) return;
  FRT_CUDA_CHECK(op, cudaMemsetAsync(error_flag_, 0, sizeof(flag), stream_));
  FRT_CUDA_CHECK(op, cudaStreamSynchronize(stream_));
  if (flag[0] == kDeviceErrorEmbedId)
    throw_error(Status::kInvalidArgument, "embed_gather: ids[", flag[1], "] = ", flag[2],
                " is outside the embedding table's ", flag[3], " rows; expected 0 <= id < ",
                flag[3], " (tokenizer and checkpoint vocabularies differ?)");
  throw_error(Status::kInternal, op, ": unknown device error code ", flag[0]);
}

size_t CudaBackend::device_bytes_in_use() const {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return total_b - free_b;
}

}  // namespace frt
