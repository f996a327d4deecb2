// Host side of cuda_launch.cuh: which kernels may be launched as programmatic dependents on
// which device, decided once per (device, kernel) and cached. Covered by tests/gpu/ (every op).
#include <map>
#include <mutex>
#include <utility>

#include "backend/cuda/cuda_launch.cuh"

namespace frt::cuda {

bool pdl_supported(const void* kernel, const char* op) {
  int device = 0;
  FRT_CUDA_CHECK(op, cudaGetDevice(&device));
  static std::mutex mu;
  static std::map<int, bool> device_ok;                          // device is sm_90+
  static std::map<std::pair<int, const void*>, bool> kernel_ok;  // + kernel code for sm_90+
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_pair(device, kernel);
  const auto it = kernel_ok.find(key);
  if (it != kernel_ok.end()) return it->second;
  auto dev = device_ok.find(device);
  if (dev == device_ok.end()) {
    int major = 0;
    FRT_CUDA_CHECK(op, cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    dev = device_ok.emplace(device, major >= 9).first;
  }
  bool ok = false;
  if (dev->second) {
    // griddepcontrol exists only in code generated for sm_90+ (the helpers compile to nothing
    // below): PTX of an older target JIT-compiled for this device must not become a dependent.
    cudaFuncAttributes attr{};
    FRT_CUDA_CHECK(op, cudaFuncGetAttributes(&attr, kernel));
    ok = attr.ptxVersion >= 90;
  }
  kernel_ok.emplace(key, ok);
  return ok;
}

}  // namespace frt::cuda
