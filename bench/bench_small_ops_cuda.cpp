// Times the small CUDA kernels of the Pi0.5 action expert and the prefix at the model's shapes:
// rms norms (10 x 1024, 712 x 2048), layer_norm (256 x 1152), qkv_split_rope (10 / 712 rows x
// 2560, pos_base), geglu (10 x 4096, 562 x 16384), gated_add (10 x 1024) and attention (the
// expert's 10 rows over [padded prefix ; suffix] with a device key gap, the prefix with its
// padding masked). Each case is one CUDA graph of 20 back-to-back calls, 3 warm-up replays, 50
// timed replays (CUDA events); the median per call is printed in us with its bytes (inputs read
// once + outputs written once) as a share of 3.0 TB/s, plus one CSV line per case.
// Inputs stay in L2 between calls (as in the model, where the previous kernel just wrote them),
// except the prefix geglu (55 MB). Ops a build does not support (key_valid / pos_base before
// the device-length change) fall back to the same op without them, marked "(no device len)".
// Run: build/bench_small_ops_cuda [filter-substring]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/status.h"
#include "core/tensor.h"
#include "bench_cuda_common.h"

namespace {
using namespace frt;

constexpr int kCallsPerGraph = 20;
constexpr int kWarmupReplays = 3;
constexpr int kTimedReplays = 50;
constexpr double kHbmBytesPerUs = 3.0e6;  // H100 SXM copy bandwidth, roughly

bench::RandomTensors random_t(7);  // random_t(be, dtype, rows, cols, lo, hi, what)

Tensor device_int(Backend& be, int32_t v, const char* what) {
  Tensor t = be.alloc(DType::kI32, {1}, what);
  be.copy_to_device(t, &v, sizeof(v));
  return t;
}

// Median us per call of `op`, timed over graph replays (one eager call first: lazy setup
// outside the capture).
double time_op(CudaBackend& be, const std::function<void()>& op) {
  return bench::median(bench::time_graph_replays(
      be.stream(), {kCallsPerGraph, 1, kWarmupReplays, 0, kTimedReplays}, [&](int) { op(); }));
}

struct Case {
  std::string name;
  double bytes;
  std::function<void()> with_len, without_len;  // without_len: empty if no device length
};

}  // namespace

int main(int argc, char** argv) {
  std::string why;
  if (!cuda_available(&why)) {
    std::printf("SKIPPED: %s\n", why.c_str());
    return 0;
  }
  const std::string filter = argc > 1 ? argv[1] : "";
  auto be_owner = make_cuda_backend(0);
  auto& be = dynamic_cast<CudaBackend&>(*be_owner);
  constexpr DType B = DType::kBF16, F = DType::kF32;
  std::vector<Case> cases;

  // ---- norms
  {
    Tensor x = random_t(be, B, 10, 1024, -2, 2, "x"), d = random_t(be, B, 10, 1024, -1, 1, "d");
    Tensor y = random_t(be, B, 10, 1024, -1, 1, "y"), sc = random_t(be, F, 1, 1024, 0, 2, "s");
    Tensor sh = random_t(be, F, 1, 1024, -1, 1, "sh"), g = random_t(be, F, 1, 1024, -1, 1, "g");
    cases.push_back({"add_rms_norm 10x1024 (no delta)", 10 * 1024 * 4.0 + 4096,
                     [=, &be] { be.add_rms_norm(x, nullptr, y, sc, 1e-6f); }, {}});
    cases.push_back({"add_ada_rms_norm 10x1024 (delta, gate)", 10 * 1024 * 8.0 + 3 * 4096,
                     [=, &be] { be.add_ada_rms_norm(x, &d, &g, y, sc, sh, 1e-6f); }, {}});
    Tensor xp = random_t(be, B, 712, 2048, -2, 2, "xp"), dp = random_t(be, B, 712, 2048, -1, 1, "dp");
    Tensor yp = random_t(be, B, 712, 2048, -1, 1, "yp"), sp = random_t(be, F, 1, 2048, 0, 2, "sp");
    cases.push_back({"add_rms_norm 712x2048 (delta)", 712 * 2048 * 8.0,
                     [=, &be] { be.add_rms_norm(xp, &dp, yp, sp, 1e-6f); }, {}});
    Tensor xl = random_t(be, B, 256, 1152, -2, 2, "xl"), yl = random_t(be, B, 256, 1152, -1, 1, "yl");
    Tensor wl = random_t(be, F, 1, 1152, 0, 2, "wl"), bl = random_t(be, F, 1, 1152, -1, 1, "bl");
    cases.push_back({"layer_norm 256x1152", 256 * 1152 * 4.0,
                     [=, &be] { be.layer_norm(yl, xl, wl, bl, 1e-6f); }, {}});
  }
  // ---- rope, geglu, gated_add
  {
    Tensor pb = device_int(be, 563, "pos_base");
    for (int S : {10, 712}) {
      Tensor qkv = random_t(be, B, S, 2560, -2, 2, "qkv"), q = random_t(be, B, S, 2048, -1, 1, "q");
      Tensor k = random_t(be, B, S, 256, -1, 1, "k"), v = random_t(be, B, S, 256, -1, 1, "v");
      cases.push_back({"qkv_split_rope " + std::to_string(S) + "x2560 (8/1 x 256)", S * 2560 * 4.0,
                       [=, &be] { be.qkv_split_rope(q, k, v, qkv, 8, 1, 256, 0, &pb, 10000.f); },
                       [=, &be] { be.qkv_split_rope(q, k, v, qkv, 8, 1, 256, 563, nullptr, 10000.f); }});
    }
    for (auto [S, Fw] : {std::pair{10, 4096}, std::pair{562, 16384}}) {
      Tensor gu = random_t(be, B, S, 2 * Fw, -2, 2, "gu"), y = random_t(be, B, S, Fw, -1, 1, "y");
      cases.push_back({"geglu " + std::to_string(S) + "x2x" + std::to_string(Fw), S * Fw * 6.0,
                       [=, &be] { be.geglu(y, gu); }, {}});
    }
    Tensor x = random_t(be, B, 10, 1024, -2, 2, "x"), d = random_t(be, B, 10, 1024, -1, 1, "d");
    Tensor g = random_t(be, F, 1, 1024, -1, 1, "g");
    cases.push_back({"gated_add 10x1024", 10 * 1024 * 6.0 + 4096,
                     [=, &be] { be.gated_add(x, d, g); }, {}});
  }
  // ---- attention with a device key gap (valid 560 of a 712-row padded prefix)
  {
    Tensor valid = device_int(be, 560, "valid");
    Tensor kc = random_t(be, B, 722, 256, -1, 1, "k"), vc = random_t(be, B, 722, 256, -1, 1, "v");
    Tensor qs = random_t(be, B, 10, 2048, -2, 2, "qs"), os = random_t(be, B, 10, 2048, -1, 1, "os");
    AttentionParams pg{8, 1, 256, 0.0625f, 0};
    pg.key_valid = valid;
    pg.key_gap_end = 712;
    const AttentionParams p0{8, 1, 256, 0.0625f, 0};
    cases.push_back({"attention expert 10 rows, Skv 722 gap [560,712)", 570 * 512 * 2.0 + 10 * 4096 * 2,
                     [=, &be] { be.attention(os, qs, kc, vc, pg); },
                     [=, &be] { be.attention(os, qs, kc, vc, p0); }});
    cases.push_back({"attention expert 10 rows, Skv 570 (exact length)", 570 * 512 * 2.0 + 10 * 4096 * 2,
                     [=, &be] {
                       be.attention(os, qs, kc.row_slice(0, 570), vc.row_slice(0, 570), p0);
                     }, {}});
    Tensor qp = random_t(be, B, 712, 2048, -2, 2, "qp"), op = random_t(be, B, 712, 2048, -1, 1, "op");
    AttentionParams pp = pg;
    pp.key_gap_end = 712;
    cases.push_back({"attention prefix 712 rows, gap [560,712)", 712 * 512 * 2.0 + 712 * 4096 * 2,
                     [=, &be] {
                       be.attention(op, qp, kc.row_slice(0, 712), vc.row_slice(0, 712), pp);
                     },
                     [=, &be] {
                       be.attention(op, qp, kc.row_slice(0, 712), vc.row_slice(0, 712), p0);
                     }});
  }

  std::printf("%-52s %10s %8s\n", "case", "median us", "% HBM");
  std::vector<std::string> csv;
  for (const Case& c : cases) {
    if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
    std::function<void()> op = c.with_len;
    std::string note;
    try {
      op();
      be.synchronize();
    } catch (const Error& e) {
      if (!c.without_len) throw;
      op = c.without_len;
      note = " (no device len)";
    }
    const double us = time_op(be, op);
    const double pct = 100.0 * c.bytes / kHbmBytesPerUs / us;
    std::printf("%-52s %10.2f %7.1f%%%s\n", c.name.c_str(), us, pct, note.c_str());
    char line[256];
    std::snprintf(line, sizeof line, "CSV,%s%s,%.3f,%.0f", c.name.c_str(), note.c_str(), us,
                  c.bytes);
    csv.push_back(line);
  }
  for (const auto& l : csv) std::printf("%s\n", l.c_str());
  return 0;
}
