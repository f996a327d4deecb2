// Host side of the persistent kernels: see cuda_persistent_launch.h.
#include <map>
#include <mutex>
#include <utility>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_persistent_launch.h"

namespace frt::cuda {

namespace {
using namespace persistent;
bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }
}  // namespace

const PersistentDevice& persistent_device(int device, std::initializer_list<const void*> kernels,
                                          const char* op) {
  static std::mutex mu;
  static std::map<std::pair<int, const void*>, PersistentDevice> cache;  // node-based
  std::lock_guard<std::mutex> lock(mu);
  const std::pair<int, const void*> key{device, kernels.size() ? *kernels.begin() : nullptr};
  const auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  PersistentDevice d;
  int major = 0;
  FRT_CUDA_CHECK(op, cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, device));
  FRT_CUDA_CHECK(op, cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  FRT_CUDA_CHECK(
      op, cudaDeviceGetAttribute(&d.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  d.sm90_code = major >= 9;
  for (const void* k : kernels) {
    cudaFuncAttributes attr{};
    FRT_CUDA_CHECK(op, cudaFuncGetAttributes(&attr, k));
    d.sm90_code = d.sm90_code && attr.ptxVersion >= 90;
  }
  if (d.sm90_code)
    for (const void* k : kernels)
      FRT_CUDA_CHECK(
          op, cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, d.smem_optin));
  return cache.emplace(key, d).first->second;
}

bool persistent_param_ok(const Tensor& t, int64_t n) {
  return t.data && t.device == Device::kCuda && t.numel() == n &&
         (t.dtype == DType::kF32 || t.dtype == DType::kBF16);
}

bool persistent_rows_ok(const Tensor& t) {
  return t.data && t.dtype == DType::kBF16 && t.device == Device::kCuda && aligned16(t.data) &&
         t.ld() % 8 == 0;
}

bool persistent_weight_ok(const Tensor& w, DType dtype) {
  return w.dtype == dtype && w.device == Device::kCuda && aligned16(w.data) && w.ld() % 16 == 0 &&
         (dtype != DType::kF8E4M3 || (w.quant && w.quant->w_scale));
}

PersistentBase persistent_base(int x_rows, int x_pitch) {
  PersistentBase b;
  size_t off = 16;  // two mbarriers
  b.off_rms = static_cast<int>(off);
  off = align128(off + kMaxRows * sizeof(float));
  b.off_red = static_cast<int>(off);
  off = align128(off + kThreads * 8 * sizeof(float));  // per lane: 2 n8 tiles x 4 floats
  b.off_sum = static_cast<int>(off);
  off = align128(off + 16 * kMaxRows * sizeof(float));  // 16 weight rows x the x rows
  b.off_x = static_cast<int>(off);
  b.next = align128(off + static_cast<size_t>(x_rows) * x_pitch);
  return b;
}

void launch_persistent(const void* kernel, const void* args, int grid, size_t smem,
                       cudaStream_t stream, bool pdl, const char* op, bool cooperative) {
  cudaLaunchAttribute attrs[2];
  int n = 0;
  if (cooperative) {
    attrs[n].id = cudaLaunchAttributeCooperative;
    attrs[n++].val.cooperative = 1;
  }
  if (pdl) {
    attrs[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attrs[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(grid));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = attrs;
  cfg.numAttrs = n;
  void* arg_ptrs[1] = {const_cast<void*>(args)};
  cudaError_t err = cudaLaunchKernelExC(&cfg, kernel, arg_ptrs);
  const cudaError_t last = cudaGetLastError();  // clears a launch error either way
  if (err == cudaSuccess) err = last;
  if (err != cudaSuccess) throw_cuda(op, "kernel launch", err);
}

}  // namespace frt::cuda
