// The op test-case factory shared by every backend's op test: a case is a name with its
// parameters ("ADD_RMS_NORM(d=2048,rows=33)") and a function that, given a CaseContext (a
// Backend plus a seeded RNG), builds random non-zero inputs, runs the op and declares each
// output with its float64 expectation from tests/cpp/op_reference.h. finish() then downloads
// the outputs as f32, checks NaN/inf, the guard bytes around every buffer and the untouched
// inputs, and compares (cosine, max abs error, worst index) under tests/cpp/tolerances.h.
//
// Cases register themselves by op name (FRT_OP_CASES in tests/cpp/op_cases_*.cpp);
// tests/cpp/test_cpu_ops.cpp runs them on the CPU backend, tests/cpp/test_op_table.cpp checks
// every op of src/backend/ops.def has one, and a GPU test can run the same cases on CUDA.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "tolerances.h"

namespace frt::test {

class CaseContext;
using CaseFn = std::function<void(CaseContext&)>;

struct OpCase {
  std::string op;    // ops.def name, e.g. "add_rms_norm"
  std::string name;  // with parameters, e.g. "ADD_RMS_NORM(d=2048,rows=33)"
  CaseFn fn;
  uint64_t seed() const;  // derived from the name: stable and distinct per case
};
// gtest prints parameters with this (instead of a byte dump).
void PrintTo(const OpCase& c, std::ostream* os);

// Registry keyed by op name (filled during static initialization by FRT_OP_CASES blocks).
std::map<std::string, std::vector<OpCase>>& op_case_registry();
std::vector<OpCase> all_op_cases();  // flattened, op-name order
void add_case(const std::string& op, const std::string& name, CaseFn fn);
// "ADD_RMS_NORM(d=2048,rows=33)" -> "ADD_RMS_NORM_d2048_rows33" (a valid gtest name).
std::string gtest_name(const std::string& case_name);

// FRT_OP_CASES(tag) { add_case(...); ... } registers cases at static-init time.
#define FRT_OP_CASES(tag)                                                                          \
  static void frt_op_cases_##tag();                                                                \
  [[maybe_unused]] static const bool frt_op_cases_registered_##tag = (frt_op_cases_##tag(), true); \
  static void frt_op_cases_##tag()

struct CaseResult {
  bool ok = true;
  std::string report;  // one line per output and per problem found
};

class CaseContext {
 public:
  CaseContext(Backend& be, uint64_t seed) : be_(be), rng_(seed) {}
  Backend& be() { return be_; }
  DType act() const { return be_.activation_dtype(); }
  std::mt19937_64& rng() { return rng_; }

  // Uniform values in [lo, hi) (never exactly 0), and integers in [lo, hi].
  std::vector<float> random(int64_t n, float lo = -1.f, float hi = 1.f);
  int random_int(int lo, int hi);

  // A [rows, cols] buffer with row stride ld (0 = cols) inside guard bytes, in `dtype`
  // (default: the activation dtype). `values` (rows*cols, packed) is rounded in place to what
  // the dtype stores, so references see exactly the device's inputs.
  Tensor input(std::vector<float>& values, int64_t rows, int64_t cols, int64_t ld = 0);
  Tensor input(std::vector<float>& values, int64_t rows, int64_t cols, int64_t ld, DType dtype);
  // A contiguous n-D input (images) in the activation dtype.
  Tensor input_nd(std::vector<float>& values, const std::vector<int64_t>& shape);
  // Raw bytes of an integer tensor (i32 ids, u8 images), guarded.
  Tensor input_raw(DType dtype, const std::vector<int64_t>& shape, const void* data);
  // An output buffer whose every element starts as NaN (an op must write before it reads).
  Tensor output(int64_t rows, int64_t cols, int64_t ld = 0);
  Tensor output(int64_t rows, int64_t cols, int64_t ld, DType dtype);
  // Working memory an op may overwrite (fused_linear's staged / product buffers, which only a
  // backend that does not fuse writes): its view is not checked, its guard bytes are.
  Tensor scratch(int64_t rows, int64_t cols);
  // A weight through Backend::upload_weight; `values` is rounded to the returned dtype.
  Tensor weight(std::vector<float>& values, const std::vector<int64_t>& shape,
                const std::string& name, WeightUse use = WeightUse::kGemm);

  // fused_linear's prologue of `kind` over `width` columns with its parameters as the model
  // uploads them: RMSNorm's scale a weight (WeightUse::kParam), adaRMS's scale / shift
  // activations (they come from the time MLP); nothing for kNone / kGeglu. `scale` / `shift` are
  // rounded in place like every input.
  LinearPrologue prologue(LinearPrologue::Kind kind, std::vector<float>& scale,
                          std::vector<float>& shift, int64_t width);

  // Declares `t` (a tensor from input/output above, or a row/column slice of one) an output
  // expected to equal `want` (rows*cols, packed). Every byte outside the declared outputs (guard
  // bytes, inputs, the rest of a sliced buffer) must come back unchanged.
  void expect(const std::string& name, Tensor t, std::vector<double> want);

  // Synchronizes, downloads and checks everything.
  CaseResult finish(const Tolerance& tol);

 private:
  struct Buffer {
    std::string what;
    Tensor full;                 // the whole 1-D allocation
    std::vector<uint8_t> image;  // its bytes as uploaded (sentinels + data)
    Tensor view;
    bool scratch = false;  // the view may change freely
  };
  struct Expectation {
    std::string name;
    size_t buffer;
    int64_t offset;  // elements from the buffer view's start to this output's first element
    int64_t rows, cols, ld;
    std::vector<double> want;
  };
  Tensor guarded(DType dtype, const std::vector<int64_t>& shape, int64_t ld,
                 const void* packed_rows, const std::string& what);
  size_t find_buffer(const Tensor& t) const;

  Backend& be_;
  std::mt19937_64 rng_;
  std::vector<Buffer> buffers_;
  std::vector<Expectation> expected_;
};

}  // namespace frt::test
