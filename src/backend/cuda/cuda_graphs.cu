// Whole-predict CUDA graphs: the body (every op of one predict) is captured once per key on the
// backend's stream and replayed afterwards, so a predict costs one graph launch instead of
// ~1,500 kernel launches. Replays are bracketed by events for last_graph_ms(), and the model's
// stage boundaries (stage()) are event nodes inside the graph, so stage_report() splits the
// replay time into vision / prefix / denoise as it really runs (no synchronization in between).
// run_bucketed under capture puts a switch node (CUDA 12.8+ conditional graph nodes) into the
// graph: a kernel reads the device length and sets the switch, each option's body is captured
// into its own child graph, so a replay runs only the body for the current length.
// Covered by scripts/device/check_graphs.py (replay vs eager, every prompt length through one
// graph) and tests/gpu/test_cuda_bucketed.cpp.
#include <cstdio>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "core/log.h"

namespace frt {

namespace {
constexpr int kMaxBuckets = 16;
struct BucketRows {
  int n;
  int rows[kMaxBuckets];
};

// Sets the switch of run_bucketed's conditional node to bucket_index() of the device length.
// Launched without PDL: it reads what the previous kernel may still write.
__global__ void select_bucket_kernel(cudaGraphConditionalHandle handle, const int* valid,
                                     BucketRows opts) {
  cudaGraphSetConditional(handle, static_cast<unsigned>(bucket_index(opts.rows, opts.n, *valid)));
}

// A kernel node after the switch, so that the next op's PDL launch follows a kernel node.
__global__ void bucket_join_kernel() {}
}  // namespace

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
      capturing_ = true;
      try {
        body();
      } catch (...) {
        capturing_ = false;
        cudaStreamEndCapture(stream_, &graph);  // leave the stream usable
        if (graph) cudaGraphDestroy(graph);
        throw;
      }
      capturing_ = false;
      err = cudaStreamEndCapture(stream_, &graph);
    }
    tuner_.release();  // GEMM plans are made: their timing buffers are not needed any more
    std::vector<StageMark> marks;
    marks.swap(capture_marks_);
    if (err == cudaSuccess) err = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (err != cudaSuccess) {
      for (StageMark& m : marks) cudaEventDestroy(m.event);
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
    graph_marks_[key] = std::move(marks);
    // Every capture is logged: a capture per predict would mean a launch parameter depends on
    // the inputs (scripts/device/check_graphs.py counts these lines).
    const cuda::GemmTuner::Totals& t = tuner_.totals();
    log_info("CUDA graph captured for input layout '", key, "' (", graphs_.size(),
             " graph(s) held; cuBLASLt plans tuned so far: ", t.plans, ", ", t.changed,
             " off the heuristic's first, their calls ", static_cast<int>(t.first_us), " -> ",
             static_cast<int>(t.chosen_us), " us)");
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
  auto marks = graph_marks_.find(key);
  replay_marks_ = marks == graph_marks_.end() ? nullptr : &marks->second;
}

void CudaBackend::run_bucketed(const Tensor& valid, int valid_host,
                               const std::vector<int>& row_options,
                               const std::function<void(int rows)>& body) {
  const char* op = "run_bucketed";
  cuda::check_arg(!row_options.empty() && row_options.size() <= kMaxBuckets, op,
                  "1 to 16 row options");
  for (size_t i = 1; i < row_options.size(); ++i)
    cuda::check_arg(row_options[i - 1] < row_options[i], op, "row options must ascend");
  cuda::check_vector(op, "valid", valid, 1, {DType::kI32});
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  FRT_CUDA_CHECK(op, cudaStreamIsCapturing(stream_, &status));
  if (status != cudaStreamCaptureStatusActive) return body(bucket_rows(row_options, valid_host));

  // Under capture: select kernel -> switch node (body i captured into its i-th graph) -> join.
  cudaGraph_t graph = nullptr;
  const cudaGraphNode_t* deps = nullptr;
  const cudaGraphEdgeData* edges = nullptr;
  size_t num_deps = 0;
  FRT_CUDA_CHECK(op, cudaStreamGetCaptureInfo(stream_, &status, nullptr, &graph, nullptr, nullptr,
                                              nullptr));
  cudaGraphConditionalHandle handle;
  FRT_CUDA_CHECK(op, cudaGraphConditionalHandleCreate(&handle, graph, 0, 0));
  BucketRows opts{};
  opts.n = static_cast<int>(row_options.size());
  for (int i = 0; i < opts.n; ++i) opts.rows[i] = row_options[i];
  select_bucket_kernel<<<1, 1, 0, stream_>>>(handle, static_cast<const int*>(valid.data), opts);
  FRT_CUDA_CHECK(op, cudaGetLastError());
  FRT_CUDA_CHECK(op, cudaStreamGetCaptureInfo(stream_, &status, nullptr, &graph, &deps, &edges,
                                              &num_deps));
  cudaGraphNodeParams params{};
  params.type = cudaGraphNodeTypeConditional;
  params.conditional.handle = handle;
  params.conditional.type = cudaGraphCondTypeSwitch;
  params.conditional.size = static_cast<unsigned>(opts.n);
  cudaGraphNode_t node = nullptr;
  FRT_CUDA_CHECK(op, cudaGraphAddNode(&node, graph, deps, edges, num_deps, &params));
  FRT_CUDA_CHECK(op, cudaStreamUpdateCaptureDependencies(stream_, &node, nullptr, 1,
                                                         cudaStreamSetCaptureDependencies));
  const cudaStream_t parent = stream_;
  for (int i = 0; i < opts.n; ++i) {
    FRT_CUDA_CHECK(op, cudaStreamBeginCaptureToGraph(body_stream_, params.conditional.phGraph_out[i],
                                                     nullptr, nullptr, 0,
                                                     cudaStreamCaptureModeThreadLocal));
    stream_ = body_stream_;
    try {
      body(row_options[i]);
    } catch (...) {
      stream_ = parent;
      cudaGraph_t ignored = nullptr;
      cudaStreamEndCapture(body_stream_, &ignored);
      throw;
    }
    stream_ = parent;
    cudaGraph_t captured = nullptr;
    FRT_CUDA_CHECK(op, cudaStreamEndCapture(body_stream_, &captured));
  }
  bucket_join_kernel<<<1, 1, 0, stream_>>>();
  FRT_CUDA_CHECK(op, cudaGetLastError());
}

void CudaBackend::stage(const char* name) {
  if (!capturing_) return;
  // An external event node: recorded when the replay reaches this point of the graph.
  StageMark m{name, nullptr};
  FRT_CUDA_CHECK("stage", cudaEventCreate(&m.event));
  capture_marks_.push_back(m);
  FRT_CUDA_CHECK("stage", cudaEventRecordWithFlags(m.event, stream_, cudaEventRecordExternal));
}

std::string CudaBackend::stage_report() {
  if (stage_ms_.empty()) return {};
  std::string out = "graph replay by stage (mean over replays):";
  for (const auto& [name, total] : stage_ms_) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), " %s %.3f ms", name.c_str(),
                  total.first / static_cast<double>(total.second));
    out += buf;
  }
  return out;
}

float CudaBackend::last_graph_ms() {
  if (!graph_timed_) return -1.f;
  float ms = -1.f;
  FRT_CUDA_CHECK("last_graph_ms", cudaEventSynchronize(graph_stop_));
  FRT_CUDA_CHECK("last_graph_ms", cudaEventElapsedTime(&ms, graph_start_, graph_stop_));
  if (replay_marks_) {
    // Stage i runs from its mark to the next one (the last to the replay's end).
    const std::vector<StageMark>& marks = *replay_marks_;
    for (size_t i = 0; i < marks.size(); ++i) {
      float part = 0.f;
      cudaEvent_t end = i + 1 < marks.size() ? marks[i + 1].event : graph_stop_;
      FRT_CUDA_CHECK("last_graph_ms", cudaEventElapsedTime(&part, marks[i].event, end));
      auto& total = stage_ms_[marks[i].name];
      total.first += part;
      total.second += 1;
    }
    replay_marks_ = nullptr;  // counted once per replay
  }
  return ms;
}

}  // namespace frt
