// Kernel launches of the CUDA backend with programmatic dependent launch (PDL, sm_90+): the
// device helpers pdl_wait() / pdl_launch_dependents() and the one host helper cuda::launch()
// that every op file's own kernels go through (the skinny GEMM keeps its own launch for its
// cluster attribute). A whole predict is one graph of ~2,000 small kernels; with PDL the next
// kernel's CTAs are scheduled and run their prologue while the previous kernel drains, which
// hides most of the gap between dependent kernels.
//
// The rule (every kernel launched through launch() must follow it):
//  - A kernel launched with PDL may start while the previous kernel on the stream still runs.
//    It must call pdl_wait() before ANY global memory read of activations (anything a kernel of
//    this predict may have written: KV cache, FP8 scales, scratch, every op output) and before
//    ANY global write or atomic (write-after-read: the previous kernel may still read what it
//    would overwrite; error flags included). Only reads of data no kernel writes during a predict
//    and pure index arithmetic may come before it: weights, constant tables, and the predict's
//    inputs that copy_to_device writes before its first kernel (a copy is never a programmatic
//    dependent: it waits for every earlier kernel, and the kernels after it wait for the copy),
//    such as the device lengths (AttentionParams::key_valid). In doubt: pdl_wait() is the first
//    statement.
//  - Every kernel launched with pdl = true must call pdl_wait() on every path that touches
//    global memory (a thread that returns before touching memory needs none); a kernel that
//    never calls it must be launched with pdl = false (launch() cannot check this).
//  - pdl_launch_dependents() may come anywhere, early is best (right after pdl_wait() is fine):
//    the next kernel is scheduled only once every CTA of this grid has issued it or exited, and
//    that kernel waits in its own pdl_wait() for this grid to complete and its writes to be
//    visible. So it never makes results visible early; it only lets the dependents' launch
//    overlap this kernel. Multi-wave grids are fine (dependents wait for the last wave's CTAs to
//    start) and completion is transitive (C waits for B, which waited for A).
// Without the launch attribute (pdl off, pre-sm_90 GPU, or code built for an older target) both
// helpers are no-ops and launches are stream-ordered as usual.
// Covered by every op test of tests/gpu/ (graph replay = eager, bit for bit); timed with PDL on
// and off by bench/bench_small_ops_cuda.cpp.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"

namespace frt::cuda {

// Blocks until every grid this one depends on has completed and its writes are visible.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel on the stream be scheduled once every CTA of this grid has called it.
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// The usual first statement of a kernel: wait for the previous kernel, then release the next.
__device__ __forceinline__ void pdl_begin() {
  pdl_wait();
  pdl_launch_dependents();
}

// Whether `kernel` may get the PDL attribute on the current device: the device is sm_90+ and the
// kernel's code was generated for sm_90+ (ptxVersion >= 90; PTX of an older target JIT-compiled
// here has no griddepcontrol). Cached per (device, kernel); thread-safe (cuda_launch.cu).
bool pdl_supported(const void* kernel, const char* op);

// Launches kernel<<<grid, block, smem, stream>>>(args...) through cudaLaunchKernelEx, as a
// programmatic dependent when `pdl` and pdl_supported(kernel); throws kCudaError
// "<op>: kernel launch failed: ..." on a bad configuration.
template <typename... KArgs, typename... Args>
void launch(cudaStream_t stream, bool pdl, const char* op, void (*kernel)(KArgs...), dim3 grid,
            dim3 block, size_t smem, Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = pdl && pdl_supported(reinterpret_cast<const void*>(kernel), op) ? 1 : 0;
  cudaError_t err = cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
  const cudaError_t last = cudaGetLastError();  // clears a launch error either way
  if (err == cudaSuccess) err = last;
  if (err != cudaSuccess) throw_cuda(op, "kernel launch", err);
}

// The same on the backend's stream, with PDL as the backend's switch says (set_pdl_enabled).
template <typename... KArgs, typename... Args>
void launch(const CudaBackend& be, const char* op, void (*kernel)(KArgs...), dim3 grid, dim3 block,
            size_t smem, Args&&... args) {
  launch(be.stream(), be.pdl_enabled(), op, kernel, grid, block, smem, std::forward<Args>(args)...);
}

}  // namespace frt::cuda
