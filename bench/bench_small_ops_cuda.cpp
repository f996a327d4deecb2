// Times the small CUDA kernels of the Pi0.5 action expert and the prefix at the model's shapes:
// rms norms (10 x 1024, 712 x 2048), layer_norm (256 x 1152), qkv_split_rope (10 / 712 rows x
// 2560, pos_base), geglu (10 x 4096, 562 x 16384), gated_add (10 x 1024), attention (the
// expert's 10 rows over [padded prefix ; suffix] with a device key gap, the prefix with its
// padding masked), activation, euler_update, embed_gather, time_embedding, resize_pad_normalize,
// patch_embed, linear's scratch epilogue (SiLU), and one whole expert layer (norm, skinny GEMMs,
// RoPE, attention, GeGLU, gated residual: 10 ops per call). Each case is one CUDA graph of
// 20 back-to-back calls, 3 warm-up replays, 50 timed replays (CUDA events); the median per call
// is printed in us with programmatic dependent launch on and off (CudaBackend::set_pdl_enabled;
// the skinny GEMM's own PDL switch stays on) and its bytes (inputs read once + outputs written
// once) as a share of 3.0 TB/s with PDL on, plus one CSV line per case.
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
  // ---- the other elementwise ops, vision, linear's scratch epilogue
  {
    Tensor x = random_t(be, B, 10, 1024, -2, 2, "x"), y = random_t(be, B, 10, 1024, -1, 1, "y");
    cases.push_back({"activation silu 10x1024", 10 * 1024 * 4.0,
                     [=, &be] { be.activation(y, x, Activation::kSilu); }, {}});
    Tensor xa = random_t(be, F, 10, 32, -1, 1, "xa"), va = random_t(be, F, 10, 32, -1, 1, "va");
    cases.push_back({"euler_update 10x32 f32", 10 * 32 * 12.0,
                     [=, &be] { be.euler_update(xa, va, -0.1f); }, {}});
    Tensor table = random_t(be, B, 4096, 2048, -1, 1, "table");
    Tensor ids = be.alloc(DType::kI32, {200}, "ids");  // zeros: row 0, valid
    Tensor emb = random_t(be, B, 200, 2048, -1, 1, "emb");
    cases.push_back({"embed_gather 200 x 2048", 200 * 2048 * 4.0,
                     [=, &be] { be.embed_gather(emb, table, ids, 45.25f); }, {}});
    Tensor te = random_t(be, F, 1, 1024, -1, 1, "te");
    cases.push_back({"time_embedding 1024", 1024 * 4.0,
                     [=, &be] { be.time_embedding(te, 0.5f, 4e-3f, 4.0f); }, {}});
    Tensor raw = be.alloc(DType::kU8, {480, 640, 3}, "raw");
    Tensor img = be.alloc(B, {224, 224, 3}, "img");
    cases.push_back({"resize_pad_normalize 480x640 -> 224", 480 * 640 * 3.0 + 224 * 224 * 6.0,
                     [=, &be] { be.resize_pad_normalize(img, raw); }, {}});
    Tensor pw = be.alloc(F, {1152, 3, 14, 14}, "patch w"), pb = be.alloc(F, {1152}, "patch b");
    Tensor pos = random_t(be, F, 256, 1152, -1, 1, "pos");
    Tensor pe = random_t(be, B, 256, 1152, -1, 1, "pe");
    cases.push_back({"patch_embed 224 -> 256x1152 (im2col, GEMM, epilogue)",
                     224 * 224 * 6.0 + 1152 * 588 * 4.0 + 256 * 1152 * 6.0,
                     [=, &be] { be.patch_embed(pe, img, pw, pb, pos); }, {}});
    Tensor xs = random_t(be, B, 256, 1152, -1, 1, "xs");
    Tensor ws = random_t(be, B, 1152, 1152, -1, 1, "ws");
    Tensor ys = random_t(be, B, 256, 1152, -1, 1, "ys");
    cases.push_back({"linear 256x1152x1152 SiLU (scratch epilogue)",
                     256 * 1152 * 4.0 + 1152 * 1152 * 2.0,
                     [=, &be] { be.linear(ys, xs, ws, nullptr, Activation::kSilu, false); }, {}});
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

  // ---- one expert layer (10 rows), as models/expert.cpp runs it, on fixed buffers
  {
    Tensor x = random_t(be, B, 10, 1024, -2, 2, "x"), xn = random_t(be, B, 10, 1024, -1, 1, "xn");
    Tensor sc = random_t(be, F, 1, 1024, 0, 2, "s"), sh = random_t(be, F, 1, 1024, -1, 1, "sh");
    Tensor g = random_t(be, F, 1, 1024, -1, 1, "g"), d = random_t(be, B, 10, 1024, -1, 1, "d");
    Tensor wqkv = random_t(be, B, 2560, 1024, -0.03f, 0.03f, "wqkv");
    Tensor wo = random_t(be, B, 1024, 2048, -0.03f, 0.03f, "wo");
    Tensor wgu = random_t(be, B, 8192, 1024, -0.03f, 0.03f, "wgu");
    Tensor wd = random_t(be, B, 1024, 4096, -0.03f, 0.03f, "wd");
    Tensor qkv = random_t(be, B, 10, 2560, -1, 1, "qkv"), q = random_t(be, B, 10, 2048, -1, 1, "q");
    Tensor kc = random_t(be, B, 722, 256, -1, 1, "kc"), vc = random_t(be, B, 722, 256, -1, 1, "vc");
    Tensor o = random_t(be, B, 10, 2048, -1, 1, "o"), gu = random_t(be, B, 10, 8192, -1, 1, "gu");
    Tensor h = random_t(be, B, 10, 4096, -1, 1, "h");
    Tensor valid = device_int(be, 560, "valid"), pb = device_int(be, 560, "pos_base");
    AttentionParams p{8, 1, 256, 0.0625f, 0};
    p.key_valid = valid;
    p.key_gap_end = 712;
    const double w_bytes = (2560.0 + 2048 + 8192 + 4096) * 1024 * 2;
    cases.push_back({"expert layer 10 rows (10 ops)", w_bytes + 570 * 512 * 2.0, [=, &be] {
                       be.add_ada_rms_norm(x, nullptr, nullptr, xn, sc, sh, 1e-6f);
                       be.linear(qkv, xn, wqkv, nullptr, Activation::kNone, false);
                       be.qkv_split_rope(q, kc.row_slice(712, 10), vc.row_slice(712, 10), qkv, 8,
                                         1, 256, 0, &pb, 10000.f);
                       be.attention(o, q, kc, vc, p);
                       be.linear(d, o, wo, nullptr, Activation::kNone, false);
                       be.add_ada_rms_norm(x, &d, &g, xn, sc, sh, 1e-6f);
                       be.linear(gu, xn, wgu, nullptr, Activation::kNone, false);
                       be.geglu(h, gu);
                       be.linear(d, h, wd, nullptr, Activation::kNone, false);
                       be.gated_add(x, d, g);
                     }, {}});
  }

  std::printf("%-56s %9s %9s %7s %8s\n", "case", "PDL us", "no-PDL us", "saved", "% HBM");
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
    be.set_pdl_enabled(true);
    const double us = time_op(be, op);
    be.set_pdl_enabled(false);
    const double us_off = time_op(be, op);
    be.set_pdl_enabled(true);
    const double pct = 100.0 * c.bytes / kHbmBytesPerUs / us;
    std::printf("%-56s %9.2f %9.2f %7.2f %7.1f%%%s\n", c.name.c_str(), us, us_off, us_off - us,
                pct, note.c_str());
    char line[320];
    std::snprintf(line, sizeof line, "CSV,%s%s,%.3f,%.3f,%.0f", c.name.c_str(), note.c_str(), us,
                  us_off, c.bytes);
    csv.push_back(line);
  }
  std::printf("CSV,case,pdl_us,no_pdl_us,bytes\n");
  for (const auto& l : csv) std::printf("%s\n", l.c_str());
  return 0;
}
