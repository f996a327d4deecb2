// Seeded mutation fuzzing of the safetensors reader: 20,000 mutated headers through
// parse_safetensors_header and 400 mutated files (header length field included) through
// SafetensorsFile. Pass: no crash, every failure is an frt::Error (kIoError / kNotSupported)
// naming the file, and every accepted header keeps its invariants (offsets in range, sizes
// matching shapes, no overlaps). Deterministic: a failure prints the seed and the input.
// Run: flashrt_tests --gtest_filter='SafetensorsFuzz*' (also under FLASHRT_SANITIZE=ON).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/log.h"
#include "core/status.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using namespace frt;

namespace {

using Rng = std::mt19937_64;

size_t pick(Rng& rng, size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng() % n); }

// A valid header with a few tensors laid out back to back (optionally with gaps).
std::string valid_header(Rng& rng, uint64_t* data_size) {
  static const char* const kDtypes[] = {"F32", "BF16", "F16"};
  std::string h = "{";
  if (rng() % 2) h += R"("__metadata__":{"format":"pt","step":"12"},)";
  uint64_t offset = 0;
  const int n = 1 + static_cast<int>(pick(rng, 5));
  for (int i = 0; i < n; ++i) {
    const int dt = static_cast<int>(pick(rng, 3));
    std::string shape = "[";
    uint64_t numel = 1;
    const int rank = static_cast<int>(pick(rng, 4));
    for (int r = 0; r < rank; ++r) {
      const uint64_t d = pick(rng, 5);
      numel *= d;
      shape += (r ? "," : "") + std::to_string(d);
    }
    shape += "]";
    const uint64_t bytes = numel * (dt == 0 ? 4 : 2);
    if (rng() % 4 == 0) offset += pick(rng, 9);  // a gap
    h += (i ? "," : "") + std::string("\"model.layers.") + std::to_string(i) +
         ".w\":{\"dtype\":\"" + kDtypes[dt] + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  h += "}";
  *data_size = offset + pick(rng, 3) * 8;
  return h;
}

const std::string kTokens[] = {"\"",
                               "{",
                               "}",
                               "[",
                               "]",
                               ",",
                               ":",
                               "-1",
                               "0",
                               "-0",
                               "1e999",
                               "2.5",
                               "18446744073709551616",
                               "18446744073709551615",
                               "9223372036854775807",
                               "-9223372036854775808",
                               "\"__metadata__\"",
                               "\"F32\"",
                               "\"I64\"",
                               "\"U8\"",
                               "\"F8_E4M3\"",
                               "null",
                               "true",
                               "\\u0000",
                               "\\ud800",
                               "\"dtype\"",
                               "\"shape\"",
                               "\"data_offsets\"",
                               "\xff",
                               "\xc3\x28",
                               std::string(1, '\0'),
                               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                               "[[[[[[[[",
                               "]]]]"};

const char* const kNumbers[] = {"0",
                                "1",
                                "7",
                                "-1",
                                "-4",
                                "4294967296",
                                "18446744073709551615",
                                "18446744073709551616",
                                "99999999999999999999999",
                                "1.0",
                                "3e2",
                                "-0",
                                "1e-3",
                                "9223372036854775808"};

// One random edit; several are chained per input.
void mutate(std::string& s, Rng& rng) {
  const size_t n = s.size();
  switch (pick(rng, 10)) {
    case 0:  // bit flip
      if (n) s[pick(rng, n)] ^= static_cast<char>(1u << pick(rng, 8));
      break;
    case 1:  // structural byte
      if (n) s[pick(rng, n)] = "{}[]\":,-0123456789eE. \\"[pick(rng, 23)];
      break;
    case 2:  // insert a token
      s.insert(pick(rng, n + 1), kTokens[pick(rng, std::size(kTokens))]);
      break;
    case 3: {  // delete a range
      const size_t at = pick(rng, n + 1);
      s.erase(at, 1 + pick(rng, 16));
      break;
    }
    case 4:  // truncate
      s.resize(pick(rng, n + 1));
      break;
    case 5: {  // swap a number for an extreme one
      std::vector<size_t> starts;
      for (size_t i = 0; i < n; ++i)
        if (isdigit(static_cast<unsigned char>(s[i])) &&
            (i == 0 || !isdigit(static_cast<unsigned char>(s[i - 1]))))
          starts.push_back(i);
      if (starts.empty()) break;
      const size_t b = starts[pick(rng, starts.size())];
      size_t e = b;
      while (e < n && isdigit(static_cast<unsigned char>(s[e]))) ++e;
      s.replace(b, e - b, kNumbers[pick(rng, std::size(kNumbers))]);
      break;
    }
    case 6: {  // duplicate an entry (or any span) somewhere else
      const size_t k = s.find("\"model.layers.");
      if (k != std::string::npos && rng() % 2) {
        const size_t close = s.find("]}", k);
        if (close != std::string::npos) s.insert(1, s.substr(k, close + 2 - k) + ",");
      } else if (n) {
        const size_t b = pick(rng, n), len = 1 + pick(rng, 40);
        s.insert(pick(rng, n + 1), s.substr(b, len));
      }
      break;
    }
    case 7: {  // retype a tensor
      static const char* const kAll[] = {"F32", "BF16", "F16", "I64", "F64", "U8", "BOOL", "X"};
      const size_t k = s.find("\"dtype\":\"");
      if (k == std::string::npos) break;
      const size_t b = k + 9, e = s.find('"', b);
      if (e != std::string::npos) s.replace(b, e - b, kAll[pick(rng, std::size(kAll))]);
      break;
    }
    case 8:  // swap two bytes
      if (n > 1) std::swap(s[pick(rng, n)], s[pick(rng, n)]);
      break;
    default:  // wrap or re-nest
      s = rng() % 2 ? "[" + s + "]" : "{\"x\":" + s + "}";
      break;
  }
}

// Invariants of an accepted header.
void check_invariants(const ParsedHeader& h, uint64_t data_size, const std::string& input) {
  ASSERT_EQ(h.entries.size(), h.offsets.size()) << input;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (size_t i = 0; i < h.entries.size(); ++i) {
    const auto [b, e] = h.offsets[i];
    const SafetensorsEntry& en = h.entries[i];
    ASSERT_LE(b, e) << input;
    ASSERT_LE(e, data_size) << input;
    ASSERT_TRUE(en.dtype == DType::kF32 || en.dtype == DType::kBF16 || en.dtype == DType::kF16);
    uint64_t numel = 1;
    for (int64_t d : en.shape) {
      ASSERT_GE(d, 0) << input;
      numel *= static_cast<uint64_t>(d);
    }
    ASSERT_EQ(en.nbytes, e - b) << input;
    ASSERT_EQ(en.nbytes, numel * dtype_size(en.dtype)) << input;
    ASSERT_NE(en.name, "__metadata__");
    if (i > 0) {
      ASSERT_LT(h.entries[i - 1].name, en.name) << input;  // sorted and unique, as find() needs
    }
    if (b != e) ranges.push_back({b, e});
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    ASSERT_LE(ranges[i - 1].second, ranges[i].first) << input;
}

bool expected_status(Status s) { return s == Status::kIoError || s == Status::kNotSupported; }

}  // namespace

TEST(SafetensorsFuzz, MutatedHeadersFailCleanlyOrKeepInvariants) {
  constexpr uint64_t kSeed = 0x5afe7e45u;
  constexpr int kIters = 20000;
  Rng rng(kSeed);
  std::vector<std::pair<std::string, uint64_t>> seeds;
  for (int i = 0; i < 8; ++i) {
    uint64_t ds = 0;
    std::string h = valid_header(rng, &ds);
    ASSERT_NO_THROW(parse_safetensors_header(h, ds, "seed")) << h;
    seeds.emplace_back(std::move(h), ds);
  }
  int accepted = 0, rejected = 0, semantic = 0;  // semantic: valid JSON, invalid safetensors
  for (int it = 0; it < kIters; ++it) {
    auto [text, data_size] = seeds[pick(rng, seeds.size())];
    const int edits = 1 + static_cast<int>(pick(rng, 3));
    for (int e = 0; e < edits; ++e) mutate(text, rng);
    if (rng() % 8 == 0) data_size = rng() % 2 ? pick(rng, data_size + 1) : rng();
    try {
      ParsedHeader h = parse_safetensors_header(text, data_size, "fuzz.safetensors");
      ++accepted;
      check_invariants(h, data_size, text);
      if (HasFatalFailure()) return;
    } catch (const Error& e) {
      ++rejected;
      ASSERT_TRUE(expected_status(e.status())) << "iter " << it << ": " << e.what();
      ASSERT_NE(std::string(e.what()).find("fuzz.safetensors"), std::string::npos) << e.what();
      if (std::string(e.what()).find("not valid JSON") == std::string::npos) ++semantic;
    } catch (const std::exception& e) {
      FAIL() << "iter " << it << " (seed " << kSeed << "): non-frt exception " << e.what()
             << " for header: " << text;
    }
  }
  std::printf("headers: %d accepted, %d rejected (%d past the JSON parser)\n", accepted, rejected,
              semantic);
  // Both outcomes must be exercised, or the fuzzer is testing nothing.
  EXPECT_GT(accepted, 200);
  EXPECT_GT(rejected, kIters / 2);
  EXPECT_GT(semantic, kIters / 10);
}

TEST(SafetensorsFuzz, MutatedFilesFailCleanlyOrStayInBounds) {
  constexpr uint64_t kSeed = 0xf11e5u;
  constexpr int kIters = 400;
  Rng rng(kSeed);
  const fs::path dir = fs::temp_directory_path() / ("frt_st_fuzz_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // A valid file: a few tensors of each dtype with random bytes.
  std::vector<std::vector<unsigned char>> blobs;
  SafetensorsWriter w;
  const DType dts[] = {DType::kF32, DType::kBF16, DType::kF16, DType::kBF16};
  for (int i = 0; i < 4; ++i) {
    blobs.emplace_back((i + 2) * 3 * dtype_size(dts[i]));
    for (auto& b : blobs.back()) b = static_cast<unsigned char>(rng());
    w.add("t" + std::to_string(i), dts[i], {i + 2, 3}, blobs.back().data());
  }
  w.set_metadata("format", "pt");
  const fs::path base = dir / "base.safetensors";
  w.write(base.string());
  std::ifstream in(base, std::ios::binary);
  const std::string original((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(original.size(), 16u);

  set_log_callback([](int, const char*, void*) {}, nullptr, LogLevel::kDebug);  // alignment hints
  int accepted = 0, rejected = 0;
  const fs::path p = dir / "fuzz.safetensors";
  for (int it = 0; it < kIters; ++it) {
    std::string bytes = original;
    if (rng() % 3 == 0) {  // the 8-byte length: extreme, off by a little, or random
      const uint64_t real = original.size() - 8;
      const uint64_t choices[] = {
          0, 1, real - 8, real + 1, real * 2, 100'000'001, uint64_t{1} << 63, ~uint64_t{0}, rng()};
      const uint64_t len = choices[pick(rng, std::size(choices))];
      for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((len >> (8 * i)) & 0xff);
    }
    std::string header = bytes.substr(8);
    const int edits = static_cast<int>(pick(rng, 3));
    for (int e = 0; e < edits; ++e) mutate(header, rng);
    bytes = bytes.substr(0, 8) + header;
    if (rng() % 5 == 0) bytes.resize(pick(rng, bytes.size() + 1));  // truncated download
    {
      std::ofstream out(p, std::ios::binary | std::ios::trunc);
      out << bytes;
    }
    try {
      SafetensorsFile f(p.string());
      ++accepted;
      const char* data_begin = f.header_json().data() + f.header_json().size();
      const char* file_end = f.header_json().data() - 8 + f.file_size();
      unsigned sum = 0;
      for (const SafetensorsEntry& e : f.entries()) {
        const char* d = static_cast<const char*>(e.data);
        ASSERT_TRUE(d >= data_begin && d + e.nbytes <= file_end) << "iter " << it << " " << e.name;
        for (size_t k = 0; k < e.nbytes; ++k) sum += static_cast<unsigned char>(d[k]);  // touch it
      }
      (void)sum;
    } catch (const Error& e) {
      ++rejected;
      ASSERT_TRUE(expected_status(e.status())) << "iter " << it << ": " << e.what();
      ASSERT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      FAIL() << "iter " << it << " (seed " << kSeed << "): non-frt exception " << e.what();
    }
  }
  set_log_callback(nullptr, nullptr, LogLevel::kInfo);
  fs::remove_all(dir);
  std::printf("files: %d accepted, %d rejected\n", accepted, rejected);
  EXPECT_GT(accepted, 10);
  EXPECT_GT(rejected, kIters / 2);
}
