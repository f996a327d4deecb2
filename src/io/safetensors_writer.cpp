// SafetensorsWriter: writes the exact byte layout of the reference implementation (huggingface
// safetensors): u64 little-endian header length, compact JSON header padded with spaces to a
// multiple of 8, then the tensors back to back. Used for synthetic checkpoints and tests.
// Tests: tests/cpp/test_safetensors.cpp (round trip and a hand-built reference file).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/status.h"
#include "io/safetensors.h"

namespace frt {
namespace {

uint64_t numel_of(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

[[noreturn]] void throw_write_error(const std::string& path, const char* what) {
  const int err = errno;
  throw_error(Status::kIoError, path, ": cannot ", what, ": ", std::strerror(err));
}

}  // namespace

void SafetensorsWriter::add(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                            const void* data) {
  if (name.empty() || name == "__metadata__")
    throw_error(Status::kInvalidArgument, "SafetensorsWriter::add: tensor name '", name,
                "' is reserved or empty; expected a non-empty name other than __metadata__");
  if (dtype != DType::kF32 && dtype != DType::kBF16 && dtype != DType::kF16)
    throw_error(Status::kInvalidArgument, "SafetensorsWriter::add: tensor '", name, "': dtype ",
                dtype_name(dtype), " is not written; expected F32, BF16 or F16");
  for (int64_t d : shape)
    if (d < 0)
      throw_error(Status::kInvalidArgument, "SafetensorsWriter::add: tensor '", name,
                  "': negative dimension ", d, " in its shape");
  for (const Item& it : items_)
    if (it.name == name)
      throw_error(Status::kInvalidArgument, "SafetensorsWriter::add: tensor '", name,
                  "' added twice; expected unique names");
  if (!data && numel_of(shape) > 0)
    throw_error(Status::kInvalidArgument, "SafetensorsWriter::add: tensor '", name,
                "': data is null");
  items_.push_back({name, dtype, shape, data});
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

void SafetensorsWriter::write(const std::string& path) const {
  // ordered_json keeps insertion order: "__metadata__" first, then tensors as added, with the
  // fields in the reference's order (dtype, shape, data_offsets).
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata_) meta[k] = v;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const Item& it : items_) {
    const uint64_t bytes = numel_of(it.shape) * dtype_size(it.dtype);
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = dtype_name(it.dtype);
    e["shape"] = it.shape;
    e["data_offsets"] = {offset, offset + bytes};
    header[it.name] = e;
    sizes.push_back(bytes);
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // so the data section starts 8-aligned
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(text.size() >> (8 * i));

  std::error_code ec;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw_write_error(tmp, "create");
  bool ok = std::fwrite(len_bytes, 1, 8, f) == 8 &&
            std::fwrite(text.data(), 1, text.size(), f) == text.size();
  for (size_t i = 0; ok && i < items_.size(); ++i)
    ok = sizes[i] == 0 || std::fwrite(items_[i].data, 1, sizes[i], f) == sizes[i];
  int err = ok ? 0 : (errno ? errno : EIO);
  if (std::fclose(f) != 0 && !err) err = errno ? errno : EIO;
  if (err) {
    std::remove(tmp.c_str());
    errno = err;
    throw_write_error(tmp, "write");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    std::remove(tmp.c_str());
    errno = err;
    throw_write_error(path, "rename the temp file onto");
  }
}

}  // namespace frt
