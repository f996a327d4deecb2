// Backend::run_bucketed on CUDA: outside capture it runs the body for the host's length; under
// capture (run_graph, the engine's path) it records one body per row option behind a switch node,
// and each replay must run exactly the body the device length picks: rows [0, bucket) equal to an
// eager run at that length bit for bit, rows past the bucket untouched. The body is the prefix
// pass's pattern at its real width (RMSNorm launched with PDL, then a cuBLASLt GEMM) over a
// variable number of rows. SKIPPED without a GPU.
// Run: build/flashrt_gpu_tests --gtest_filter='Bucketed.*'
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "cuda_twin.h"

namespace frt::gpu_test {
namespace {

constexpr DType kBF = DType::kBF16;

class Bucketed : public CudaOps {};

// Rows of a bf16 output buffer (as the snapshot holds it) that are not NaN; the outputs start
// as NaN, so this is where a body wrote.
int written_rows(const std::vector<uint8_t>& bytes, const Twin& t) {
  int rows = 0;
  for (int64_t r = 0; r < t.rows; ++r) {
    uint16_t v;
    std::memcpy(&v, bytes.data() + (t.off + r * t.ld) * 2, 2);
    const bool nan = (v & 0x7f80u) == 0x7f80u && (v & 0x7fu) != 0;
    if (nan) break;
    ++rows;
  }
  return rows;
}

TEST_F(Bucketed, EagerRunsTheHostsBucket) {
  const std::vector<int> options = {32, 64, 96, 128};
  int32_t valid = 70;
  TwinSet ts(cpu(), gpu(), "BUCKETED_EAGER");
  Twin& v = ts.raw("valid", DType::kI32, {1}, &valid);
  std::vector<int> seen;
  gpu().run_bucketed(v.gpu, valid, options, [&](int rows) { seen.push_back(rows); });
  cpu().run_bucketed(v.cpu, valid, options, [&](int rows) { seen.push_back(rows); });
  EXPECT_EQ(seen, (std::vector<int>{96, 96}));
  EXPECT_EQ(bucket_rows(options, 1), 32);
  EXPECT_EQ(bucket_rows(options, 64), 64);
  EXPECT_EQ(bucket_rows(options, 65), 96);
  EXPECT_EQ(bucket_rows(options, 500), 128);
}

TEST_F(Bucketed, OneGraphReplaysTheDevicesBucket) {
  const int kMax = 128, K = 2048, N = 256;
  const std::vector<int> options = {32, 64, 96, kMax};
  TwinSet ts(cpu(), gpu(), "BUCKETED_GRAPH");
  Twin& x = ts.matrix("x", kMax, K, kBF);
  Twin& n = ts.output("n", kMax, K, kBF);
  Twin& y = ts.output("y", kMax, N, kBF);
  Twin& w = ts.matrix("w", N, K, kBF, -0.05f, 0.05f);
  Twin& scale = ts.matrix("scale", 1, K, DType::kF32, 0.5f, 1.5f);
  int32_t init = 50;
  Twin& valid = ts.raw("valid", DType::kI32, {1}, &init);
  auto body = [&](int rows) {
    // x is read only, so every replay starts from the same input.
    gpu().add_rms_norm(x.gpu.row_slice(0, rows), nullptr, n.gpu.row_slice(0, rows),
                       scale.gpu.reshape({K}), 1e-6f);
    gpu().linear(y.gpu.row_slice(0, rows), n.gpu.row_slice(0, rows), w.gpu, nullptr,
                 Activation::kNone, false);
  };
  auto set_valid = [&](int32_t value) {
    gpu().copy_to_device(valid.gpu, &value, sizeof(value));
    gpu().synchronize();
  };
  const std::vector<int32_t> values = {50, 1, 32, 33, 128, 97, 64, 500};
  std::vector<Snapshot> eager;
  for (int32_t value : values) {
    ts.gpu_reset();
    set_valid(value);
    gpu().run_bucketed(valid.gpu, value, options, body);
    gpu().synchronize();
    eager.push_back(ts.gpu_snapshot());
  }
  // The engine's path: the first run_graph call runs eagerly and captures, later calls replay.
  const std::string key = "bucketed-test";
  ts.gpu_reset();
  set_valid(init);
  gpu().run_graph(key, [&] { gpu().run_bucketed(valid.gpu, init, options, body); });
  gpu().synchronize();
  for (size_t i = 0; i < values.size(); ++i) {
    const std::string label = "replay at valid = " + std::to_string(values[i]);
    SCOPED_TRACE(label);
    ts.gpu_reset();
    set_valid(values[i]);
    // A replay must not run the body on the host again: the device length alone picks it.
    gpu().run_graph(key, [&] { ADD_FAILURE() << "run_graph re-ran the body instead of replaying"; });
    ASSERT_GE(gpu().last_graph_ms(), 0.f) << "no graph replay (did the capture fail?)";
    const Snapshot graphed = ts.gpu_snapshot();
    ASSERT_NO_FATAL_FAILURE(expect_same_buffers(graphed, eager[i], label));
    const int want = bucket_rows(options, values[i]);
    // Snapshots hold the twins in creation order: x, n, y, w, scale, valid.
    EXPECT_EQ(written_rows(graphed[2], y), want);
    EXPECT_EQ(written_rows(graphed[1], n), want);
  }
}

}  // namespace
}  // namespace frt::gpu_test
