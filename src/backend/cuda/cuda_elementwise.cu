// CUDA elementwise ops: gated_add, geglu, activation, embed_gather, time_embedding and
// euler_update. Grid-stride loops, fp32 arithmetic, one rounding into the output dtype.
// embed_gather cannot throw from the device: an out-of-range id sets the backend's device error
// flag (reported as kInvalidArgument by the next synchronize / copy_to_host) and its row is
// written as zeros. time_embedding and euler_update follow the CPU twin's arithmetic (double
// sinusoids, unfused x + dt * v) so their f32 results match it.
// gated_add and geglu have a fast path (widths % 8 == 0, 16-byte aligned rows): one thread per 8
// consecutive elements with 16-byte loads and stores and 32-bit indexing (one division per 8
// elements instead of per element); the prefix geglu is HBM bound (docs/cuda_backend.md).
// Every kernel starts with cuda::pdl_begin() (programmatic dependent launch, cuda_launch.cuh).
// Covered by tests/gpu/test_cuda_ops.cpp (CudaOps.GatedAdd, .Geglu, .Activation, .EmbedGather,
// .TimeEmbedding, .EulerUpdate); gated_add / geglu timed by bench/bench_small_ops_cuda.cpp.
#include <charconv>
#include <cstdint>
#include <cmath>
#include <cstdlib>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/cuda_launch.cuh"

namespace frt {

namespace {
using cuda::Mat;

#define FRT_GRID_STRIDE(i, total)                                                         \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (total); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__global__ void gated_add_kernel(Mat x, Mat delta, Mat gate, int64_t M, int64_t D) {
  cuda::pdl_begin();
  FRT_GRID_STRIDE(i, M * D) {
    const int64_t r = i / D, c = i % D;
    cuda::store(x, r, c, cuda::load(x, r, c) + cuda::load(gate, 0, c) * cuda::load(delta, r, c));
  }
}

__global__ void geglu_kernel(Mat y, Mat gate_up, int64_t S, int64_t F) {
  cuda::pdl_begin();
  FRT_GRID_STRIDE(i, S * F) {
    const int64_t r = i / F, c = i % F;
    cuda::store(y, r, c, cuda::gelu_tanh(cuda::load(gate_up, r, c)) * cuda::load(gate_up, r, F + c));
  }
}

// Fast paths: chunk i = 8 elements (row i / w8, columns 8 (i % w8) ..), n8 = rows * w8 < 2^31.
#define FRT_GRID_STRIDE32(i, total)                                               \
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (total); i += gridDim.x * blockDim.x)

__global__ void gated_add_vec8_kernel(Mat x, Mat delta, Mat gate, int n8, int w8) {
  cuda::pdl_begin();
  FRT_GRID_STRIDE32(i, n8) {
    const int r = i / w8, c = (i - r * w8) * 8;
    float xv[8], dv[8], gv[8];
    cuda::load8(x, r, c, xv);
    cuda::load8(delta, r, c, dv);
    cuda::load8(gate, 0, c, gv);
#pragma unroll
    for (int e = 0; e < 8; ++e) xv[e] = xv[e] + gv[e] * dv[e];
    cuda::store8(x, r, c, xv);
  }
}

__global__ void geglu_vec8_kernel(Mat y, Mat gate_up, int n8, int w8) {
  cuda::pdl_begin();
  const int F = w8 * 8;
  FRT_GRID_STRIDE32(i, n8) {
    const int r = i / w8, c = (i - r * w8) * 8;
    float g[8], u[8];
    cuda::load8(gate_up, r, c, g);
    cuda::load8(gate_up, r, F + c, u);
#pragma unroll
    for (int e = 0; e < 8; ++e) g[e] = cuda::gelu_tanh(g[e]) * u[e];
    cuda::store8(y, r, c, g);
  }
}
#undef FRT_GRID_STRIDE32

// Each element is read before it is written by the same thread: y may alias x.
__global__ void activation_kernel(Mat y, Mat x, int act, int64_t M, int64_t D) {
  cuda::pdl_begin();
  FRT_GRID_STRIDE(i, M * D) {
    const int64_t r = i / D, c = i % D;
    cuda::store(y, r, c, cuda::apply_act(act, cuda::load(x, r, c)));
  }
}

// One block per token.
__global__ void embed_gather_kernel(Mat out, Mat table, const int32_t* ids, int64_t V, int64_t D,
                                    float scale, int* error_flag) {
  cuda::pdl_begin();
  const int64_t t = blockIdx.x;
  const int32_t id = ids[t];
  const bool bad = id < 0 || id >= V;
  if (bad && threadIdx.x == 0 && atomicCAS(error_flag, kDeviceErrorNone, kDeviceErrorEmbedId) ==
                                     kDeviceErrorNone) {
    error_flag[1] = static_cast<int>(t);
    error_flag[2] = id;
    error_flag[3] = static_cast<int>(V < 0x7fffffff ? V : 0x7fffffff);
  }
  for (int64_t c = threadIdx.x; c < D; c += blockDim.x)
    cuda::store(out, t, c, bad ? 0.f : cuda::load(table, id, c) * scale);
}

// out[i] = sin(angle_i), out[half + i] = cos(angle_i), angle_i = 1/period_i * 2 pi * t, in double.
__global__ void time_embedding_kernel(Mat out, int64_t half, double t, double lo, double hi) {
  cuda::pdl_begin();
  FRT_GRID_STRIDE(i, half) {
    const double fraction = half > 1 ? static_cast<double>(i) / static_cast<double>(half - 1) : 0.0;
    const double period = lo * pow(hi / lo, fraction);
    // angle / pi = 2 t / period: sincospi needs no large-argument reduction (no local memory).
    double s, c;
    sincospi(1.0 / period * 2.0 * t, &s, &c);
    cuda::store(out, 0, i, static_cast<float>(s));
    cuda::store(out, 0, half + i, static_cast<float>(c));
  }
}

// x + dt * v with separate roundings (__fmul_rn/__fadd_rn are never fused into an FMA).
__global__ void euler_update_kernel(Mat x, Mat v, float dt, int64_t M, int64_t D) {
  cuda::pdl_begin();
  FRT_GRID_STRIDE(i, M * D) {
    const int64_t r = i / D, c = i % D;
    cuda::store(x, r, c, __fadd_rn(cuda::load(x, r, c), __fmul_rn(dt, cuda::load(v, r, c))));
  }
}

#undef FRT_GRID_STRIDE

// The double a caller meant by a float literal: the shortest decimal that rounds to `f`, read
// back as a double (4e-3f -> 0.004), as the CPU reference does.
double intended_double(float f) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf) - 1, f);
  *res.ptr = '\0';
  return std::strtod(buf, nullptr);
}
}  // namespace

void CudaBackend::gated_add(Tensor x, Tensor delta, Tensor gate) {
  const char* op = "gated_add";
  const int64_t M = x.rows(), D = x.cols();
  cuda::check_matrix(op, "x", x, M, D, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "delta", delta, M, D, {DType::kBF16, DType::kF32});
  cuda::check_vector(op, "gate", gate, D, {DType::kF32, DType::kBF16});
  if (M * D == 0) return;
  if (D % 8 == 0 && M * D / 8 < INT32_MAX && cuda::vec8_ok(x) && cuda::vec8_ok(delta) &&
      cuda::vec8_ok_vector(&gate)) {
    const int n8 = static_cast<int>(M * D / 8);
    cuda::launch(*this, op, gated_add_vec8_kernel, cuda::grid_for(n8), cuda::kThreads, 0,
                 cuda::mat_of(x), cuda::mat_of(delta), cuda::mat_of(gate), n8,
                 static_cast<int>(D / 8));
    return;
  }
  cuda::launch(*this, op, gated_add_kernel, cuda::grid_for(M * D), cuda::kThreads, 0,
               cuda::mat_of(x), cuda::mat_of(delta), cuda::mat_of(gate), M, D);
}

void CudaBackend::geglu(Tensor y, Tensor gate_up) {
  const char* op = "geglu";
  const int64_t S = gate_up.rows(), F = gate_up.cols() / 2;
  cuda::check_matrix(op, "gate_up", gate_up, S, 2 * F, {DType::kBF16, DType::kF32});
  cuda::check_arg(gate_up.cols() % 2 == 0, op, "gate_up has an odd number of columns");
  // y may be an FP8 GEMM input from gemm_input(): GeGLU then quantizes as it stores.
  cuda::check_matrix(op, "y", y, S, F, {DType::kBF16, DType::kF32, DType::kF8E4M3});
  if (S * F == 0) return;
  // Small operands (the expert's 10 x 4096: 1.57 us scalar vs 1.88 us vec8 on an H100) keep one
  // element per thread: 8 serial tanhf per thread cost more latency than the wide loads save.
  if (F % 8 == 0 && S * F >= (1 << 20) && S * F / 8 < INT32_MAX && cuda::vec8_ok_out(y) &&
      cuda::vec8_ok(gate_up)) {
    const int n8 = static_cast<int>(S * F / 8);
    cuda::launch(*this, op, geglu_vec8_kernel, cuda::grid_for(n8), cuda::kThreads, 0,
                 cuda::mat_out(y), cuda::mat_of(gate_up), n8, static_cast<int>(F / 8));
    return;
  }
  cuda::launch(*this, op, geglu_kernel, cuda::grid_for(S * F), cuda::kThreads, 0,
               cuda::mat_out(y), cuda::mat_of(gate_up), S, F);
}

void CudaBackend::activation(Tensor y, Tensor x, Activation act) {
  const char* op = "activation";
  const int64_t M = x.rows(), D = x.cols();
  cuda::check_matrix(op, "x", x, M, D, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "y", y, M, D, {DType::kBF16, DType::kF32});
  cuda::check_arg(act == Activation::kNone || act == Activation::kGeluTanh ||
                      act == Activation::kSilu,
                  op, "unknown activation");
  if (M * D == 0) return;
  cuda::launch(*this, op, activation_kernel, cuda::grid_for(M * D), cuda::kThreads, 0,
               cuda::mat_of(y), cuda::mat_of(x), static_cast<int>(act), M, D);
}

void CudaBackend::embed_gather(Tensor out, Tensor table, Tensor ids, float scale) {
  const char* op = "embed_gather";
  const int64_t T = ids.numel(), V = table.rows(), D = table.cols();
  cuda::check_vector(op, "ids", ids, T, {DType::kI32});
  cuda::check_matrix(op, "table", table, V, D, {DType::kBF16, DType::kF32});
  cuda::check_matrix(op, "out", out, T, D, {DType::kBF16, DType::kF32});
  cuda::check_arg(T < (int64_t{1} << 31) - 1, op, "more than 2^31 - 1 ids");
  if (T == 0) return;
  cuda::launch(*this, op, embed_gather_kernel, static_cast<unsigned>(T), cuda::kThreads, 0,
               cuda::mat_of(out), cuda::mat_of(table), ids.as<const int32_t>(), V, D, scale,
               error_flag_);
}

void CudaBackend::time_embedding(Tensor out, float t, float min_period, float max_period) {
  const char* op = "time_embedding";
  const int64_t D = out.numel();
  cuda::check_vector(op, "out", out, D, {DType::kF32, DType::kBF16});
  cuda::check_arg(D >= 2 && D % 2 == 0, op, "out needs an even number of elements (>= 2)");
  cuda::check_arg(min_period > 0 && max_period > 0, op, "periods must be positive");
  const int64_t half = D / 2;
  cuda::launch(*this, op, time_embedding_kernel, cuda::grid_for(half), cuda::kThreads, 0,
               cuda::mat_of(out), half, static_cast<double>(t), intended_double(min_period),
               intended_double(max_period));
}

void CudaBackend::euler_update(Tensor x, Tensor v, float dt) {
  const char* op = "euler_update";
  const int64_t M = x.rows(), D = x.cols();
  cuda::check_matrix(op, "x", x, M, D, {DType::kF32, DType::kBF16});
  cuda::check_matrix(op, "v", v, M, D, {DType::kF32, DType::kBF16});
  if (M * D == 0) return;
  cuda::launch(*this, op, euler_update_kernel, cuda::grid_for(M * D), cuda::kThreads, 0,
               cuda::mat_of(x), cuda::mat_of(v), dt, M, D);
}

}  // namespace frt
