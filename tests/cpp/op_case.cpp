// The op test-case factory (see op_case.h): registry, guarded device buffers, and the
// download / guard / NaN / tolerance checks of finish(). Exercised by tests/cpp/test_cpu_ops.cpp
// and tests/cpp/test_op_table.cpp.
#include "op_case.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <sstream>
#include <stdexcept>

#include "core/status.h"

namespace frt::test {

namespace {
constexpr size_t kMarginBytes = 256;  // guard bytes before and after every buffer (keeps alignment)

// Per-dtype guard element: NaN for float types, so an op that reads a guard poisons its output.
void sentinel(DType dtype, uint8_t* dst) {
  switch (dtype) {
    case DType::kF32: {
      const uint32_t v = 0x7fa5a5a5u;
      std::memcpy(dst, &v, 4);
      return;
    }
    case DType::kBF16: {
      const uint16_t v = 0x7fa5u;
      std::memcpy(dst, &v, 2);
      return;
    }
    case DType::kF16: {
      const uint16_t v = 0x7ea5u;
      std::memcpy(dst, &v, 2);
      return;
    }
    default:
      std::memset(dst, 0xa5, dtype_size(dtype));
      return;
  }
}

// f32 values -> bytes of `dtype`, rounding `values` in place to what the dtype stores.
std::vector<uint8_t> encode(std::vector<float>& values, DType dtype) {
  std::vector<uint8_t> out(values.size() * dtype_size(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(out.data() + 4 * i, &values[i], 4);
    } else if (dtype == DType::kBF16 || dtype == DType::kF16) {
      const uint16_t h = dtype == DType::kBF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
      values[i] = dtype == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
      std::memcpy(out.data() + 2 * i, &h, 2);
    } else {
      throw_error(Status::kInternal, "op test: cannot encode floats as ", dtype_name(dtype));
    }
  }
  return out;
}

int64_t span_elems(int64_t rows, int64_t cols, int64_t ld) {
  return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols;
}
}  // namespace

uint64_t OpCase::seed() const {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return h;
}

void PrintTo(const OpCase& c, std::ostream* os) { *os << c.name; }

std::map<std::string, std::vector<OpCase>>& op_case_registry() {
  static std::map<std::string, std::vector<OpCase>> registry;
  return registry;
}

std::vector<OpCase> all_op_cases() {
  std::vector<OpCase> all;
  for (const auto& [op, cases] : op_case_registry())
    all.insert(all.end(), cases.begin(), cases.end());
  return all;
}

void add_case(const std::string& op, const std::string& name, CaseFn fn) {
  op_case_registry()[op].push_back(OpCase{op, name, std::move(fn)});
}

std::string gtest_name(const std::string& case_name) {
  std::string out;
  for (char c : case_name) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_')
      out += c;
    else if (c == '(' || c == ',')
      out += '_';
    else if (c == '.')
      out += 'p';
    else if (c == '-')
      out += 'm';
  }
  return out;
}

std::vector<float> CaseContext::random(int64_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) {
    do x = dist(rng_);
    while (x == 0.f);
  }
  return v;
}

int CaseContext::random_int(int lo, int hi) {
  return std::uniform_int_distribution<int>(lo, hi)(rng_);
}

Tensor CaseContext::guarded(DType dtype, const std::vector<int64_t>& shape, int64_t ld,
                            const void* packed_rows, const std::string& what) {
  Tensor shaped = make_view(nullptr, dtype, be_.device(), shape);
  const int64_t rows = shaped.rows(), cols = shaped.cols();
  if (ld == 0) ld = cols;
  const size_t es = dtype_size(dtype);
  const size_t bytes = 2 * kMarginBytes + static_cast<size_t>(span_elems(rows, cols, ld)) * es;
  Buffer buf;
  buf.what = what;
  buf.full = be_.alloc(dtype, {static_cast<int64_t>(bytes / es)}, what.c_str());
  buf.image.resize(bytes);
  for (size_t off = 0; off < bytes; off += es) sentinel(dtype, buf.image.data() + off);
  if (packed_rows)
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(buf.image.data() + kMarginBytes + r * ld * es,
                  static_cast<const uint8_t*>(packed_rows) + r * cols * es, cols * es);
  be_.copy_to_device(buf.full, buf.image.data(), bytes);
  buf.view =
      make_view(static_cast<uint8_t*>(buf.full.data) + kMarginBytes, dtype, be_.device(), shape);
  if (ld != cols) buf.view.row_stride = ld;
  buffers_.push_back(std::move(buf));
  return buffers_.back().view;
}

Tensor CaseContext::input(std::vector<float>& values, int64_t rows, int64_t cols, int64_t ld) {
  return input(values, rows, cols, ld, act());
}

Tensor CaseContext::input(std::vector<float>& values, int64_t rows, int64_t cols, int64_t ld,
                          DType dtype) {
  FRT_CHECK(static_cast<int64_t>(values.size()) == rows * cols, "input values size");
  const std::vector<uint8_t> bytes = encode(values, dtype);
  return guarded(dtype, {rows, cols}, ld, bytes.data(), "input");
}

Tensor CaseContext::input_nd(std::vector<float>& values, const std::vector<int64_t>& shape) {
  const std::vector<uint8_t> bytes = encode(values, act());
  FRT_CHECK(make_view(nullptr, act(), be_.device(), shape).nbytes() == bytes.size(),
            "input_nd values size");
  return guarded(act(), shape, 0, bytes.data(), "input");
}

Tensor CaseContext::input_raw(DType dtype, const std::vector<int64_t>& shape, const void* data) {
  return guarded(dtype, shape, 0, data, "input");
}

Tensor CaseContext::output(int64_t rows, int64_t cols, int64_t ld) {
  return output(rows, cols, ld, act());
}

Tensor CaseContext::output(int64_t rows, int64_t cols, int64_t ld, DType dtype) {
  return guarded(dtype, {rows, cols}, ld, nullptr, "output");
}

LinearPrologue CaseContext::prologue(LinearPrologue::Kind kind, std::vector<float>& scale,
                                     std::vector<float>& shift, int64_t width) {
  using Kind = LinearPrologue::Kind;
  LinearPrologue pro;
  pro.kind = kind;
  if (kind == Kind::kRmsNorm) pro.scale = weight(scale, {width}, "scale", WeightUse::kParam);
  if (kind == Kind::kAdaRmsNorm) {
    pro.scale = input(scale, 1, width);
    pro.shift = input(shift, 1, width);
  }
  return pro;
}

Tensor CaseContext::scratch(int64_t rows, int64_t cols) {
  Tensor t = guarded(act(), {rows, cols}, 0, nullptr, "scratch");
  buffers_.back().scratch = true;
  return t;
}

Tensor CaseContext::weight(std::vector<float>& values, const std::vector<int64_t>& shape,
                           const std::string& name, WeightUse use) {
  HostTensor h(DType::kF32, shape);
  FRT_CHECK(static_cast<int64_t>(values.size()) == h.numel(), "weight values size");
  std::memcpy(h.data(), values.data(), h.nbytes());
  Tensor t = be_.upload_weight(std::move(h), name, use);
  if (t.dtype != DType::kF32) encode(values, t.dtype);  // round the host copy like the device
  return t;
}

size_t CaseContext::find_buffer(const Tensor& t) const {
  const auto* p = static_cast<const uint8_t*>(t.data);
  for (size_t i = 0; i < buffers_.size(); ++i) {
    const auto* base = static_cast<const uint8_t*>(buffers_[i].full.data);
    if (p >= base && p < base + buffers_[i].image.size()) return i;
  }
  throw std::logic_error("expect(): tensor was not made by this CaseContext");
}

void CaseContext::expect(const std::string& name, Tensor t, std::vector<double> want) {
  const size_t b = find_buffer(t);
  const Buffer& buf = buffers_[b];
  FRT_CHECK(static_cast<int64_t>(want.size()) == t.rows() * t.cols(), "expect '", name,
            "': ", want.size(), " values for ", t.shape_str());
  FRT_CHECK(t.dtype == buf.view.dtype && t.ld() == buf.view.ld(), "expect '", name,
            "': a view with another dtype or row stride than its buffer");
  const int64_t offset =
      (static_cast<const uint8_t*>(t.data) - static_cast<const uint8_t*>(buf.view.data)) /
      static_cast<int64_t>(dtype_size(t.dtype));
  expected_.push_back(Expectation{name, b, offset, t.rows(), t.cols(), t.ld(), std::move(want)});
}

namespace {
// Max abs error (and where), cosine, outliers of one output against its expectation.
void compare(const std::string& name, const std::vector<float>& got,
             const std::vector<double>& want, int64_t cols, const Tolerance& tol, CaseResult& res) {
  double scale = 0, max_err = 0, gg = 0, ww = 0, gw = 0;
  size_t worst = 0, first_bad = 0, bad_values = 0, outliers = 0;
  for (double w : want) scale = std::max(scale, std::fabs(w));
  const double limit = tol.max_abs_rel * std::max(scale, 1e-30);
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) {
      if (bad_values++ == 0) first_bad = i;
      continue;
    }
    const double err = std::fabs(got[i] - want[i]);
    if (err > limit) ++outliers;
    if (err > max_err) {
      max_err = err;
      worst = i;
    }
    gg += static_cast<double>(got[i]) * got[i];
    ww += want[i] * want[i];
    gw += got[i] * want[i];
  }
  if (bad_values) worst = first_bad;
  const double cos = (gg == 0 && ww == 0) ? 1.0 : gw / std::sqrt(std::max(gg * ww, 1e-300));
  bool ok = bad_values == 0 && cos >= tol.min_cos;
  if (outliers > 0) {
    const bool allowed = tol.max_outlier_frac > 0 &&
                         outliers <= tol.max_outlier_frac * static_cast<double>(got.size()) &&
                         max_err <= tol.outlier_abs_rel * std::max(scale, 1e-30);
    ok = ok && allowed;
  }
  std::ostringstream os;
  os.precision(4);
  os << (ok ? "  ok   " : "  FAIL ") << name << ": n=" << got.size() << " scale=" << scale
     << " max_abs=" << max_err << " (rel " << max_err / std::max(scale, 1e-30) << ", tol "
     << tol.max_abs_rel << ") cos=" << std::setprecision(9) << cos << std::setprecision(4);
  if (!got.empty())
    os << " worst [" << worst / cols << ", " << worst % cols << "] got " << got[worst] << " want "
       << want[worst];
  if (outliers) os << " outliers=" << outliers;
  if (bad_values) os << " NaN/inf=" << bad_values;
  res.report += os.str() + "\n";
  res.ok = res.ok && ok;
}
}  // namespace

CaseResult CaseContext::finish(const Tolerance& tol) {
  CaseResult res;
  be_.synchronize();
  std::vector<std::vector<uint8_t>> now(buffers_.size());
  for (size_t b = 0; b < buffers_.size(); ++b) {
    now[b].resize(buffers_[b].image.size());
    be_.copy_to_host(now[b].data(), buffers_[b].full, now[b].size());
  }
  // Is element `elem` (counted from buffer b's view start) inside a declared output?
  auto declared = [&](size_t b, int64_t elem) {
    for (const Expectation& e : expected_) {
      const int64_t rel = elem - e.offset;
      if (e.buffer == b && rel >= 0 && rel / e.ld < e.rows && rel % e.ld < e.cols) return true;
    }
    return false;
  };
  for (size_t b = 0; b < buffers_.size(); ++b) {
    const Buffer& buf = buffers_[b];
    const int64_t es = static_cast<int64_t>(dtype_size(buf.view.dtype));
    for (size_t off = 0; off < now[b].size(); ++off) {
      if (now[b][off] == buf.image[off]) continue;
      const int64_t rel = static_cast<int64_t>(off) - static_cast<int64_t>(kMarginBytes);
      // Floor division: guard bytes before the view have negative element indices.
      const int64_t elem = rel >= 0 ? rel / es : -((-rel + es - 1) / es);
      if (declared(b, elem)) continue;
      const int64_t ld = buf.view.ld();
      const bool in_view = elem >= 0 && elem / ld < buf.view.rows() && elem % ld < buf.view.cols();
      if (buf.scratch && in_view) continue;
      std::ostringstream os;
      os << "  FAIL " << buf.what << " buffer: element " << elem << " from the view start "
         << (in_view ? "(not an output of the op)" : "(a guard element outside the view)")
         << " changed\n";
      res.report += os.str();
      res.ok = false;
      break;
    }
  }

  for (const Expectation& e : expected_) {
    const Buffer& buf = buffers_[e.buffer];
    const int64_t es = static_cast<int64_t>(dtype_size(buf.view.dtype));
    std::vector<float> got(static_cast<size_t>(e.rows * e.cols));
    for (int64_t r = 0; r < e.rows; ++r)
      convert_to_f32(now[e.buffer].data() + kMarginBytes + (e.offset + r * e.ld) * es,
                     buf.view.dtype, got.data() + r * e.cols, static_cast<size_t>(e.cols));
    compare(e.name, got, e.want, e.cols, tol, res);
  }
  return res;
}

}  // namespace frt::test
