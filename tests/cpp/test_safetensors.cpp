// Safetensors reader / writer / checkpoint: round trips, the reference byte layout, sharded
// checkpoints, and every malformed-file error with its message (file, key, what was expected).
// Run: flashrt_tests --gtest_filter='Safetensors*'
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>

#include "cpp/test_util.h"
#include "core/status.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using namespace frt;

namespace {

struct Caught {
  bool thrown = false;
  Status status = Status::kOk;
  std::string message;
  bool has(const std::string& s) const { return message.find(s) != std::string::npos; }
};

Caught catch_error(const std::function<void()>& fn) {
  Caught c;
  try {
    fn();
  } catch (const Error& e) {
    c.thrown = true;
    c.status = e.status();
    c.message = e.what();
  }
  return c;
}

// A safetensors file from raw parts; `len` overrides the 8-byte header length.
void write_raw(const fs::path& p, const std::string& header, const std::string& data,
               std::optional<uint64_t> len = std::nullopt) {
  const uint64_t n = len.value_or(header.size());
  std::ofstream out(p, std::ios::binary);
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << data;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-3.f, 3.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Opens a one-entry file whose header is `header` over `data_size` zero bytes.
Caught open_header(const std::string& header, size_t data_size = 64) {
  const fs::path p = frt::test::fresh_test_dir("st_hdr") / "model.safetensors";
  write_raw(p, header, std::string(data_size, '\0'));
  return catch_error([&] { SafetensorsFile f(p.string()); });
}

}  // namespace

TEST(Safetensors, RoundTripKeepsBytesShapesAndMetadata) {
  const fs::path dir = frt::test::fresh_test_dir("st_roundtrip");
  std::vector<float> a = random_floats(6, 1);
  std::vector<uint16_t> b, c;
  for (float x : random_floats(5, 2)) b.push_back(f32_to_bf16(x));
  for (float x : random_floats(3, 3)) c.push_back(f32_to_f16(x));
  float scalar = 0.75f;
  SafetensorsWriter w;
  w.add("layer.a", DType::kF32, {2, 3}, a.data());
  w.add("layer.b", DType::kBF16, {5}, b.data());
  w.add("layer.c", DType::kF16, {3, 1}, c.data());
  w.add("scalar", DType::kF32, {}, &scalar);
  w.add("empty", DType::kBF16, {0, 4}, nullptr);
  w.set_metadata("format", "pt");
  w.set_metadata("note", "round trip");
  const std::string path = (dir / "model.safetensors").string();
  w.write(path);
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  SafetensorsFile f(path);
  ASSERT_EQ(f.entries().size(), 5u);
  EXPECT_EQ(f.metadata().at("note"), "round trip");
  const SafetensorsEntry* ea = f.find("layer.a");
  ASSERT_NE(ea, nullptr);
  EXPECT_EQ(ea->dtype, DType::kF32);
  EXPECT_EQ(ea->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(ea->data, a.data(), 24), 0);
  EXPECT_EQ(ea->file, path);
  EXPECT_EQ(std::memcmp(f.find("layer.b")->data, b.data(), 10), 0);
  EXPECT_EQ(std::memcmp(f.find("layer.c")->data, c.data(), 6), 0);
  EXPECT_EQ(f.find("scalar")->shape.size(), 0u);
  EXPECT_EQ(f.find("empty")->nbytes, 0u);
  EXPECT_EQ(f.find("nope"), nullptr);
  EXPECT_EQ(f.header_json().size() % 8, 0u);

  SafetensorsCheckpoint ckpt(dir.string());
  HostTensor hb = ckpt.load_f32("layer.b", {5});
  HostTensor hc = ckpt.load_f32("layer.c", {3, 1});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(hb.as<float>()[i], bf16_to_f32(b[i]));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(hc.as<float>()[i], f16_to_f32(c[i]));
  EXPECT_EQ(ckpt.load_f32("layer.a", {2, 3}).as<float>()[4], a[4]);
  EXPECT_EQ(ckpt.names(),
            (std::vector<std::string>{"empty", "layer.a", "layer.b", "layer.c", "scalar"}));
}

// The layout the reference implementation (huggingface safetensors) writes for
// {"a": f32[2], "b": bf16[1, 1]} with metadata {"format": "pt"}: compact JSON, "__metadata__"
// first, header space-padded to a multiple of 8, little-endian length.
TEST(Safetensors, WriterMatchesReferenceByteLayout) {
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"BF16","shape":[1,1],"data_offsets":[8,10]}})";
  std::string header = json + std::string((8 - json.size() % 8) % 8, ' ');
  const float a[2] = {1.5f, -2.0f};
  const uint16_t b[1] = {0x3f80};  // 1.0 in bf16
  std::string expected;
  for (int i = 0; i < 8; ++i)
    expected.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  expected += header;
  expected.append(reinterpret_cast<const char*>(a), 8);
  expected.append(reinterpret_cast<const char*>(b), 2);
  ASSERT_EQ(header.size(), 144u);  // 142 bytes of JSON + 2 spaces
  ASSERT_EQ(expected[0], '\x90');  // 144, little-endian
  ASSERT_EQ(expected[1], '\0');

  const fs::path dir = frt::test::fresh_test_dir("st_reference");
  SafetensorsWriter w;
  w.add("a", DType::kF32, {2}, a);
  w.add("b", DType::kBF16, {1, 1}, b);
  w.set_metadata("format", "pt");
  w.write((dir / "ours.safetensors").string());
  EXPECT_EQ(read_all(dir / "ours.safetensors"), expected);

  // And a hand-built file in that layout reads back.
  { std::ofstream(dir / "hand.safetensors", std::ios::binary) << expected; }
  SafetensorsFile f((dir / "hand.safetensors").string());
  EXPECT_EQ(f.metadata().at("format"), "pt");
  float got[2];
  std::memcpy(got, f.find("a")->data, 8);
  EXPECT_EQ(got[1], -2.0f);
  EXPECT_EQ(bf16_to_f32(*static_cast<const uint16_t*>(f.find("b")->data)), 1.0f);
}

TEST(Safetensors, WriterWithoutMetadataOmitsTheKey) {
  const fs::path dir = frt::test::fresh_test_dir("st_nometa");
  const float v = 2.f;
  SafetensorsWriter w;
  w.add("x", DType::kF32, {1}, &v);
  w.write((dir / "m.safetensors").string());
  SafetensorsFile f((dir / "m.safetensors").string());
  EXPECT_EQ(f.header_json().find("__metadata__"), std::string_view::npos);
  EXPECT_EQ(f.header_json().substr(0, 5), "{\"x\":");
}

TEST(Safetensors, WriterRejectsBadInput) {
  const float v[4] = {1, 2, 3, 4};
  SafetensorsWriter w;
  w.add("x", DType::kF32, {4}, v);
  Caught dup = catch_error([&] { w.add("x", DType::kF32, {4}, v); });
  EXPECT_TRUE(dup.has("'x' added twice")) << dup.message;
  Caught neg = catch_error([&] { w.add("y", DType::kF32, {-1, 4}, v); });
  EXPECT_TRUE(neg.has("negative dimension -1")) << neg.message;
  Caught i32 = catch_error([&] { w.add("z", DType::kI32, {4}, v); });
  EXPECT_TRUE(i32.has("I32")) << i32.message;
  Caught meta = catch_error([&] { w.add("__metadata__", DType::kF32, {4}, v); });
  EXPECT_TRUE(meta.thrown);
  // The parent "directory" is a regular file: nothing can be created there.
  const fs::path dir = frt::test::fresh_test_dir("st_writer_err");
  std::ofstream(dir / "file") << "x";
  Caught io = catch_error([&] { w.write((dir / "file" / "m.safetensors").string()); });
  EXPECT_EQ(io.status, Status::kIoError);
  EXPECT_TRUE(io.has("m.safetensors.tmp")) << io.message;
}

TEST(Safetensors, FileLevelErrorsNameTheFile) {
  const fs::path dir = frt::test::fresh_test_dir("st_file_errors");
  const std::string tiny = (dir / "tiny.safetensors").string();
  std::ofstream(tiny, std::ios::binary) << "abcde";
  Caught c = catch_error([&] { SafetensorsFile f(tiny); });
  EXPECT_EQ(c.status, Status::kIoError);
  EXPECT_TRUE(c.has(tiny) && c.has("5 bytes") && c.has("at least 8")) << c.message;

  const std::string past = (dir / "past.safetensors").string();
  write_raw(past, "{}", "", 4096);
  c = catch_error([&] { SafetensorsFile f(past); });
  EXPECT_TRUE(c.has(past) && c.has("4096") && c.has("past the end")) << c.message;

  const std::string huge = (dir / "huge.safetensors").string();
  write_raw(huge, "{}", "", 200'000'000);
  c = catch_error([&] { SafetensorsFile f(huge); });
  EXPECT_TRUE(c.has(huge) && c.has("200000000") && c.has("limit")) << c.message;

  const std::string empty_header = (dir / "empty_header.safetensors").string();
  write_raw(empty_header, "", "");
  c = catch_error([&] { SafetensorsFile f(empty_header); });
  EXPECT_TRUE(c.has("not valid JSON")) << c.message;

  c = catch_error([&] { SafetensorsFile f((dir / "absent.safetensors").string()); });
  EXPECT_EQ(c.status, Status::kNotFound);
  EXPECT_TRUE(c.has("absent.safetensors")) << c.message;

  c = catch_error([&] { SafetensorsFile f(dir.string()); });
  EXPECT_TRUE(c.has("regular")) << c.message;
}

TEST(Safetensors, HeaderJsonErrors) {
  Caught c = open_header("{\"w\": {\"dtype\": ");
  EXPECT_EQ(c.status, Status::kIoError);
  EXPECT_TRUE(c.has("model.safetensors") && c.has("not valid JSON")) << c.message;
  c = open_header("[1, 2]");
  EXPECT_TRUE(c.has("expected a JSON object") && c.has("array")) << c.message;
  c = open_header("{\"w\": 5}");
  EXPECT_TRUE(c.has("tensor 'w'") && c.has("expected an object")) << c.message;
  c = open_header(std::string(100, '[') + std::string(100, ']'));
  EXPECT_TRUE(c.has("nests deeper")) << c.message;
  c = open_header(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                  R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})");
  EXPECT_TRUE(c.has("'w'") && c.has("more than once")) << c.message;
}

TEST(Safetensors, EntryFieldErrorsNameTheKey) {
  struct Case {
    const char* entry;
    std::vector<std::string> expect;
  };
  const Case cases[] = {
      {R"({"shape":[1],"data_offsets":[0,4]})", {"missing field 'dtype'"}},
      {R"({"dtype":"F32","data_offsets":[0,4]})", {"missing field 'shape'"}},
      {R"({"dtype":"F32","shape":[1]})", {"missing field 'data_offsets'"}},
      {R"({"dtype":7,"shape":[1],"data_offsets":[0,4]})", {"dtype: expected a string"}},
      {R"({"dtype":"F32","shape":"1","data_offsets":[0,4]})", {"shape: expected an array"}},
      {R"({"dtype":"F32","shape":[1,-2],"data_offsets":[0,4]})",
       {"shape[1]", "non-negative integer, got -2"}},
      {R"({"dtype":"F32","shape":[2.5],"data_offsets":[0,4]})", {"shape[0]", "got 2.5"}},
      {R"({"dtype":"F32","shape":[1],"data_offsets":[0]})", {"expected [begin, end]"}},
      {R"({"dtype":"F32","shape":[1],"data_offsets":{"a":1}})", {"expected [begin, end]"}},
      {R"({"dtype":"F32","shape":[1],"data_offsets":[0,"4"]})", {"data_offsets[1]", "string"}},
      {R"({"dtype":"F32","shape":[0],"data_offsets":[8,4]})", {"begin <= end", "[8, 4]"}},
      {R"({"dtype":"F32","shape":[20],"data_offsets":[0,80]})",
       {"end 80", "data section of 64 bytes"}},
      {R"({"dtype":"F32","shape":[2,2],"data_offsets":[0,12]})",
       {"12 bytes", "expected 16", "[2, 2]"}},
      {R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]})", {"64 bits"}},
      {R"({"dtype":"F33","shape":[1],"data_offsets":[0,4]})", {"unknown dtype \"F33\""}},
  };
  for (const Case& k : cases) {
    Caught c = open_header(std::string("{\"blk.w\":") + k.entry + "}");
    EXPECT_TRUE(c.thrown) << k.entry;
    EXPECT_TRUE(c.has("model.safetensors") && c.has("tensor 'blk.w'")) << c.message;
    for (const std::string& e : k.expect) EXPECT_TRUE(c.has(e)) << k.entry << " -> " << c.message;
  }
}

TEST(Safetensors, UnsupportedDtypesAreNamed) {
  for (const char* dt : {"I64", "F64", "U8", "BOOL"}) {
    Caught c = open_header(std::string(R"({"ids":{"dtype":")") + dt +
                           R"(","shape":[1],"data_offsets":[0,8]}})");
    EXPECT_EQ(c.status, Status::kNotSupported) << c.message;
    EXPECT_TRUE(c.has("model.safetensors") && c.has("tensor 'ids'") &&
                c.has(std::string("unsupported dtype \"") + dt + "\""))
        << c.message;
  }
}

TEST(Safetensors, OverlapsRejectedGapsAllowed) {
  Caught c = open_header(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})");
  EXPECT_TRUE(c.has("'a'") && c.has("'b'") && c.has("overlap")) << c.message;
  // A gap between tensors and an empty tensor inside another's range are both fine.
  ParsedHeader h =
      parse_safetensors_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                               R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[32,36]},)"
                               R"("e":{"dtype":"F16","shape":[0],"data_offsets":[2,2]}})",
                               64, "mem");
  ASSERT_EQ(h.entries.size(), 3u);
  EXPECT_EQ(h.offsets[1], (std::pair<uint64_t, uint64_t>{32, 36}));
  EXPECT_EQ(h.entries[1].dtype, DType::kBF16);
  EXPECT_EQ(h.entries[0].data, nullptr);
}

TEST(Safetensors, MetadataMustBeStringToString) {
  Caught c = open_header(R"({"__metadata__":[1]})");
  EXPECT_TRUE(c.has("__metadata__") && c.has("expected an object")) << c.message;
  c = open_header(R"({"__metadata__":{"format":"pt","step":3}})");
  EXPECT_TRUE(c.has("__metadata__['step']") && c.has("expected a string")) << c.message;
  ParsedHeader h = parse_safetensors_header(R"({"__metadata__":{"k":"v"}})", 0, "mem");
  EXPECT_EQ(h.metadata.at("k"), "v");
  EXPECT_TRUE(h.entries.empty());
}

TEST(Safetensors, CheckpointGetChecksShapeAndHintsNames) {
  const fs::path dir = frt::test::fresh_test_dir("st_ckpt");
  std::vector<float> v = random_floats(6, 9);
  SafetensorsWriter w;
  w.add("paligemma.model.layers.0.q_proj.weight", DType::kF32, {2, 3}, v.data());
  w.add("paligemma.model.layers.0.k_proj.weight", DType::kF32, {3, 2}, v.data());
  w.write((dir / "model.safetensors").string());
  SafetensorsCheckpoint ckpt(dir.string());
  const std::string file = (dir / "model.safetensors").string();

  EXPECT_EQ(ckpt.get("paligemma.model.layers.0.q_proj.weight", {2, 3}).nbytes, 24u);
  Caught c = catch_error([&] { ckpt.get("paligemma.model.layers.0.q_proj.weight", {3, 2}); });
  EXPECT_EQ(c.status, Status::kInvalidArgument);
  EXPECT_EQ(c.message, file +
                           ": tensor 'paligemma.model.layers.0.q_proj.weight': expected shape "
                           "[3, 2], got [2, 3]");

  c = catch_error([&] { ckpt.get("paligemma.model.layers.0.q_proj.weigth"); });
  EXPECT_EQ(c.status, Status::kNotFound);
  EXPECT_TRUE(c.has(file + ": missing tensor 'paligemma.model.layers.0.q_proj.weigth'"))
      << c.message;
  EXPECT_TRUE(c.has("did you mean 'paligemma.model.layers.0.q_proj.weight'")) << c.message;
  c = catch_error([&] { ckpt.get("model.layers.0.k_proj.weight"); });  // prefix dropped
  EXPECT_TRUE(c.has("did you mean 'paligemma.model.layers.0.k_proj.weight'")) << c.message;
  c = catch_error([&] { ckpt.get("action_out_proj.bias"); });
  EXPECT_TRUE(c.has("missing tensor 'action_out_proj.bias'")) << c.message;
  EXPECT_FALSE(c.has("did you mean")) << c.message;
  EXPECT_EQ(ckpt.find("action_out_proj.bias"), nullptr);
}

TEST(Safetensors, ShardedCheckpointOpensEachShardOnce) {
  const fs::path dir = frt::test::fresh_test_dir("st_sharded");
  std::vector<float> a = random_floats(4, 11), b = random_floats(3, 12), c = random_floats(2, 13);
  SafetensorsWriter w1, w2;
  w1.add("t.a", DType::kF32, {4}, a.data());
  w1.add("t.b", DType::kF32, {3}, b.data());
  w2.add("t.c", DType::kF32, {2}, c.data());
  w1.write((dir / "model-00001-of-00002.safetensors").string());
  w2.write((dir / "model-00002-of-00002.safetensors").string());
  std::ofstream(dir / "model.safetensors.index.json")
      << R"({"metadata":{"total_size":36},"weight_map":{"t.a":"model-00001-of-00002.safetensors",)"
      << R"("t.b":"model-00001-of-00002.safetensors","t.c":"model-00002-of-00002.safetensors"}})";
  SafetensorsCheckpoint ckpt(dir.string());
  EXPECT_EQ(ckpt.files().size(), 2u);
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"t.a", "t.b", "t.c"}));
  EXPECT_EQ(ckpt.load_f32("t.c", {2}).as<float>()[1], c[1]);
  EXPECT_EQ(ckpt.load_f32("t.b", {3}).as<float>()[2], b[2]);
  EXPECT_NE(ckpt.get("t.c").file.find("00002-of-00002"), std::string::npos);
  Caught miss = catch_error([&] { ckpt.get("t.d"); });
  EXPECT_TRUE(miss.has("model.safetensors.index.json: missing tensor 't.d'")) << miss.message;
}

TEST(Safetensors, ShardedCheckpointErrors) {
  const fs::path dir = frt::test::fresh_test_dir("st_sharded_err");
  const float v[2] = {1, 2};
  SafetensorsWriter w;
  w.add("t.a", DType::kF32, {2}, v);
  w.write((dir / "shard1.safetensors").string());
  const fs::path index = dir / "model.safetensors.index.json";

  std::ofstream(index)
      << R"({"weight_map":{"t.a":"shard1.safetensors","t.z":"shard9.safetensors"}})";
  Caught c = catch_error([&] { SafetensorsCheckpoint ck(dir.string()); });
  EXPECT_EQ(c.status, Status::kNotFound);
  EXPECT_TRUE(c.has(index.string()) && c.has("shard 'shard9.safetensors'") && c.has("'t.z'"))
      << c.message;

  std::ofstream(index)
      << R"({"weight_map":{"t.a":"shard1.safetensors","t.b":"shard1.safetensors"}})";
  c = catch_error([&] { SafetensorsCheckpoint ck(dir.string()); });
  EXPECT_TRUE(c.has(index.string()) && c.has("'t.b'") && c.has("does not contain")) << c.message;

  std::ofstream(index) << R"({"weight_map": ["shard1.safetensors"]})";
  c = catch_error([&] { SafetensorsCheckpoint ck(dir.string()); });
  EXPECT_TRUE(c.has("weight_map")) << c.message;

  std::ofstream(index) << R"({"weight_map": {"t.a": 1}})";
  c = catch_error([&] { SafetensorsCheckpoint ck(dir.string()); });
  EXPECT_TRUE(c.has("weight_map['t.a']")) << c.message;

  std::ofstream(index) << "{not json";
  c = catch_error([&] { SafetensorsCheckpoint ck(dir.string()); });
  EXPECT_TRUE(c.has(index.string()) && c.has("not valid JSON")) << c.message;
}

TEST(Safetensors, CheckpointWithoutWeightsSaysWhatWasLookedFor) {
  const fs::path dir = frt::test::fresh_test_dir("st_no_weights");
  Caught c = catch_error([&] { SafetensorsCheckpoint ck(dir.string()); });
  EXPECT_EQ(c.status, Status::kNotFound);
  EXPECT_TRUE(c.has(dir.string()) && c.has("model.safetensors") &&
              c.has("model.safetensors.index.json") && c.has("flashrt make-checkpoint") &&
              c.has("convert_jax_model_to_pytorch"))
      << c.message;
  c = catch_error([&] { SafetensorsCheckpoint ck((dir / "nope").string()); });
  EXPECT_TRUE(c.has("does not exist")) << c.message;
}
