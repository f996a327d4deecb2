// Strict safetensors reader (mmap, zero-copy views) and a writer for synthetic checkpoints.
// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape,
// data_offsets: [begin, end]}, "__metadata__": {...}}, then the data section.
// Every malformed input (truncated file, header length beyond the file, bad JSON, overlapping or
// out-of-range offsets, unknown dtype, size not matching shape) throws frt::Error naming the file,
// the key and what was expected. Sharded checkpoints (model.safetensors.index.json) are opened by
// SafetensorsCheckpoint.
// Tests: tests/cpp/test_safetensors.cpp, tests/cpp/test_safetensors_fuzz.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace frt {

struct SafetensorsEntry {
  std::string name;
  DType dtype;  // F32 / BF16 / F16 (others → error "unsupported dtype")
  std::vector<int64_t> shape;
  // Points into the mapping. Files with unusual layouts may leave it unaligned for the dtype (a
  // warning is logged): copy (memcpy, convert_to_f32) rather than cast where that matters.
  const void* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // which file it came from (for messages)
};

// Parses and validates a header given as raw bytes (the JSON text) against a data section of
// `data_size` bytes. Exposed separately so the fuzz test can run it without files.
// Returns entries with data == nullptr and offsets resolved into `offsets` (same order as
// entries, which follow the JSON object's key order: sorted by name). Gaps between tensors are
// allowed; overlaps, duplicate keys and offsets past data_size are not. Malformed input throws
// kIoError, a valid but unsupported dtype (I64, F64, U8, ...) kNotSupported.
struct ParsedHeader {
  std::vector<SafetensorsEntry> entries;
  std::vector<std::pair<uint64_t, uint64_t>> offsets;  // [begin, end) into the data section
  std::map<std::string, std::string> metadata;
};
ParsedHeader parse_safetensors_header(std::string_view json, uint64_t data_size,
                                      const std::string& file_for_messages);

// One mmapped (read-only) .safetensors file; entries' data point into the mapping, which lives
// as long as this object.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws on any problem
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const SafetensorsEntry* find(std::string_view name) const;  // nullptr if absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The raw header bytes (the JSON), e.g. for hashing a checkpoint.
  std::string_view header_json() const;
  uint64_t file_size() const { return size_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  uint64_t size_ = 0;
  uint64_t header_len_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint directory's weights: model.safetensors, or the shards listed in
// model.safetensors.index.json ({"weight_map": {name: file}}).
class SafetensorsCheckpoint {
 public:
  explicit SafetensorsCheckpoint(const std::string& dir);  // throws kNotFound / kIoError
  const SafetensorsEntry* find(std::string_view name) const;
  // Throws kNotFound "<file>: missing tensor '<name>'" (with a close-match hint when one exists);
  // <file> is model.safetensors or, for sharded checkpoints, the index json.
  const SafetensorsEntry& get(std::string_view name) const;
  // Throws kInvalidArgument "<file>: tensor '<name>': expected shape [a, b], got [c, d]".
  const SafetensorsEntry& get(std::string_view name, const std::vector<int64_t>& shape) const;
  // Copies the tensor into f32 (any stored float dtype).
  HostTensor load_f32(std::string_view name, const std::vector<int64_t>& shape) const;
  std::vector<std::string> names() const;
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string index_file_;  // model.safetensors or the index json: what messages name
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsEntry*, std::less<>> index_;
};

// Writer: add tensors (name, dtype, shape, bytes) then write(). Output is byte-identical to the
// reference implementation's layout: compact JSON with "__metadata__" first (omitted when empty)
// and tensors in insertion order with contiguous data_offsets, padded with spaces to a multiple
// of 8 bytes. Writes "<path>.tmp" and renames, so a crash never leaves a half-written checkpoint
// under the final name. Dtypes F32/BF16/F16 only (what the reader accepts).
class SafetensorsWriter {
 public:
  // `data` must hold numel * dtype_size bytes and stay valid until write() returns.
  void add(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
           const void* data);
  void set_metadata(const std::string& key, const std::string& value);
  void write(const std::string& path) const;

 private:
  struct Item {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    const void* data;
  };
  std::vector<Item> items_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace frt
