// Op cases (see op_case.h) of patch_embed, resize_pad_normalize, embed_gather, time_embedding
// and euler_update. Run by tests/cpp/test_cpu_ops.cpp.
#include <cmath>
#include <string>

#include "op_case.h"
#include "op_reference.h"

namespace frt::test {
namespace {

void patch_embed_case(int64_t H, int64_t W, int64_t P, int64_t width, int64_t pad) {
  add_case("patch_embed",
           "PATCH_EMBED(H=" + std::to_string(H) + ",W=" + std::to_string(W) +
               ",P=" + std::to_string(P) + ",width=" + std::to_string(width) +
               ",pad=" + std::to_string(pad) + ")",
           [=](CaseContext& c) {
             const int64_t N = (H / P) * (W / P);
             std::vector<float> img = c.random(H * W * 3);
             std::vector<float> wv = c.random(width * 3 * P * P, -0.1f, 0.1f);
             std::vector<float> bv = c.random(width), pv = c.random(N * width);
             Tensor im = c.input_nd(img, {H, W, 3});
             Tensor w = c.weight(wv, {width, 3, P, P}, "patch_w");
             Tensor b = c.weight(bv, {width}, "patch_b");
             Tensor pos = c.weight(pv, {N, width}, "pos_emb");
             Tensor out = c.output(N, width, width + pad);
             c.be().patch_embed(out, im, w, b, pos);
             c.expect("out", out, ref::patch_embed(img, H, W, wv, width, P, bv, pv));
           });
}

void resize_case(int H, int W, int OH, int OW) {
  add_case("resize_pad_normalize",
           "RESIZE_PAD_NORMALIZE(src=" + std::to_string(H) + "x" + std::to_string(W) +
               ",out=" + std::to_string(OH) + "x" + std::to_string(OW) + ")",
           [=](CaseContext& c) {
             std::vector<uint8_t> src(static_cast<size_t>(H) * W * 3);
             // Smooth gradient + noise: both flat regions and sharp neighbours.
             for (int y = 0; y < H; ++y)
               for (int x = 0; x < W; ++x)
                 for (int ch = 0; ch < 3; ++ch) {
                   const int smooth = (y * 255 / H + x * 255 / W + ch * 40) / 2;
                   const int v = (x + y) % 3 == 0 ? c.random_int(0, 255) : smooth;
                   src[(static_cast<size_t>(y) * W + x) * 3 + ch] = static_cast<uint8_t>(v);
                 }
             Tensor in = c.input_raw(DType::kU8, {H, W, 3}, src.data());
             Tensor out = c.output(int64_t{OH} * OW, 3);
             c.be().resize_pad_normalize(out.reshape({OH, OW, 3}), in);
             c.expect("out", out, ref::resize_pad_normalize(src, H, W, OH, OW));
           });
}

void embed_gather_case(int64_t V, int64_t D, int64_t T, float scale, int64_t pad) {
  add_case("embed_gather",
           "EMBED_GATHER(V=" + std::to_string(V) + ",D=" + std::to_string(D) +
               ",T=" + std::to_string(T) + ",scale=" + std::to_string(scale) +
               ",pad=" + std::to_string(pad) + ")",
           [=](CaseContext& c) {
             std::vector<float> table = c.random(V * D);
             std::vector<int32_t> ids(static_cast<size_t>(T));
             for (int32_t& id : ids) id = c.random_int(0, static_cast<int>(V - 1));
             ids.front() = 0;  // both ends of the table
             ids.back() = static_cast<int32_t>(V - 1);
             Tensor tab = c.weight(table, {V, D}, "embed");
             Tensor idt = c.input_raw(DType::kI32, {T}, ids.data());
             Tensor out = c.output(T, D, D + pad);
             c.be().embed_gather(out, tab, idt, scale);
             c.expect("out", out, ref::embed_gather(table, D, ids, scale));
           });
}

// Periods as double literals (what openpi passes); the backend receives them as floats.
void time_embedding_case(int64_t D, float t, double min_period, double max_period) {
  add_case("time_embedding",
           "TIME_EMBEDDING(D=" + std::to_string(D) + ",t=" + std::to_string(t) +
               ",min=" + std::to_string(min_period) + ",max=" + std::to_string(max_period) + ")",
           [=](CaseContext& c) {
             Tensor out = c.output(1, D);
             c.be().time_embedding(out, t, static_cast<float>(min_period),
                                   static_cast<float>(max_period));
             c.expect("out", out, ref::time_embedding(D, t, min_period, max_period));
           });
}

// x and v are f32 in every backend (the action state).
void euler_case(int64_t rows, int64_t cols, float dt, int64_t pad) {
  add_case("euler_update",
           "EULER_UPDATE(rows=" + std::to_string(rows) + ",cols=" + std::to_string(cols) +
               ",dt=" + std::to_string(dt) + ",pad=" + std::to_string(pad) + ")",
           [=](CaseContext& c) {
             std::vector<float> xv = c.random(rows * cols, -3.f, 3.f), vv = c.random(rows * cols);
             Tensor x = c.input(xv, rows, cols, cols + pad, DType::kF32);
             Tensor v = c.input(vv, rows, cols, cols + pad, DType::kF32);
             c.be().euler_update(x, v, dt);
             c.expect("x", x, ref::euler_update(xv, vv, dt));
           });
}

}  // namespace

FRT_OP_CASES(misc) {
  patch_embed_case(224, 224, 14, 1152, 0);  // SigLIP So400m/14
  patch_embed_case(8, 12, 4, 5, 3);         // 2 x 3 patches, strided out
  resize_case(480, 640, 224, 224);          // landscape: pad top/bottom
  resize_case(224, 224, 224, 224);          // already the right size
  resize_case(100, 37, 224, 224);           // portrait upscale: pad left/right
  resize_case(31, 29, 224, 224);            // non-integer upscale
  resize_case(17, 300, 32, 40);             // rectangular output
  resize_case(448, 448, 224, 224);          // exact 2x down: exact .5 ties (half to even)
  resize_case(112, 112, 224, 224);          // exact 2x up
  embed_gather_case(1000, 2048, 13, std::sqrt(2048.f), 0);  // Gemma text embeddings
  embed_gather_case(5, 7, 3, 1.f, 2);
  time_embedding_case(1024, 1.0f, 4e-3, 4.0);  // Pi0.5 expert width, first step
  time_embedding_case(1024, 0.3f, 4e-3, 4.0);
  time_embedding_case(8, 0.37f, 0.5, 3.0);
  euler_case(50, 32, -0.1f, 0);  // action horizon x action dim
  euler_case(7, 3, 0.25f, 2);
}

}  // namespace frt::test
