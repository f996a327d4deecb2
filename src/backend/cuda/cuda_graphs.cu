// Whole-predict CUDA graphs: the body (every op of one predict) is captured once per key on the
// backend's stream and replayed afterwards, so a predict costs one graph launch instead of
// ~1,500 kernel launches. Replays are bracketed by events for last_graph_ms().
// Covered by tests/gpu/test_cuda_graphs.cpp and the engine's replay-vs-eager check.
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "core/log.h"

namespace frt {

void CudaBackend::run_graph(const std::string& key, const std::function<void()>& body) {
  const char* op = "run_graph";
  if (eager_keys_.count(key)) {  // capture failed before for this shape: stay correct, eager
    graph_timed_ = false;
    return body();
  }
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    // Warm-up outside the capture: first-use work (cuBLASLt algorithm choice, lazy module
    // loading) must not be recorded into the graph.
    body();
    FRT_CUDA_CHECK(op, cudaStreamSynchronize(stream_));
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    cudaError_t err = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
    if (err == cudaSuccess) {
      try {
        body();
      } catch (...) {
        cudaStreamEndCapture(stream_, &graph);  // leave the stream usable
        if (graph) cudaGraphDestroy(graph);
        throw;
      }
      err = cudaStreamEndCapture(stream_, &graph);
    }
    if (err == cudaSuccess) err = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (err != cudaSuccess) {
      // Graphs are an optimization: a shape that cannot be captured runs eagerly (the warm-up
      // above already produced this call's result), and says so once.
      cudaGetLastError();
      eager_keys_.insert(key);
      graph_timed_ = false;
      log_warning("CUDA graph capture failed (", cudaGetErrorString(err),
                  "); this input shape runs eagerly, which is slower but exact");
      return;
    }
    graphs_.emplace(key, exec);
    // Every capture is logged: a capture per predict would mean a launch parameter depends on
    // the inputs (scripts/device/check_graphs.py counts these lines).
    log_info("CUDA graph captured for input layout '", key, "' (", graphs_.size(),
             " graph(s) held)");
    graph_timed_ = false;
    return;  // the warm-up run above was this call's result
  }
  if (!graph_start_) {
    FRT_CUDA_CHECK(op, cudaEventCreate(&graph_start_));
    FRT_CUDA_CHECK(op, cudaEventCreate(&graph_stop_));
  }
  FRT_CUDA_CHECK(op, cudaEventRecord(graph_start_, stream_));
  FRT_CUDA_CHECK(op, cudaGraphLaunch(it->second, stream_));
  FRT_CUDA_CHECK(op, cudaEventRecord(graph_stop_, stream_));
  graph_timed_ = true;
}

float CudaBackend::last_graph_ms() {
  if (!graph_timed_) return -1.f;
  float ms = -1.f;
  FRT_CUDA_CHECK("last_graph_ms", cudaEventSynchronize(graph_stop_));
  FRT_CUDA_CHECK("last_graph_ms", cudaEventElapsedTime(&ms, graph_start_, graph_stop_));
  return ms;
}

}  // namespace frt
