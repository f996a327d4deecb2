// Strict safetensors reader: the header parser/validator, the mmapped file and the checkpoint
// directory (single file or sharded index). The writer lives in safetensors_writer.cpp.
// Tests: tests/cpp/test_safetensors.cpp (every error case), tests/cpp/test_safetensors_fuzz.cpp.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <unordered_set>

#include "core/log.h"
#include "core/status.h"

namespace frt {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The reference implementation refuses headers above 100 MB; a real one is a few hundred KB.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// A safetensors header nests 3 deep ({entry: {shape: [..]}}); anything much deeper is garbage,
// and rejecting it early keeps the JSON library's work bounded.
constexpr int kMaxNesting = 64;

// Every dtype string the safetensors format defines; the ones we cannot load are "unsupported",
// anything else is "unknown" (a typo or a corrupt header).
bool is_safetensors_dtype(const std::string& s) {
  static const char* const kAll[] = {
      "BOOL", "U8",  "I8",  "I16",     "U16",     "F16",     "BF16", "I32",     "U32",     "F32",
      "F64",  "I64", "U64", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4",   "F6_E2M3", "F6_E3M2", "C64"};
  for (const char* d : kAll)
    if (s == d) return true;
  return false;
}

std::string json_type(const json& j) { return j.type_name(); }

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

// Nesting depth of the JSON text, ignoring brackets inside strings. Done before parsing so a
// header of a million '[' never reaches the parser.
int max_nesting(std::string_view s) {
  int depth = 0, best = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      best = std::max(best, ++depth);
      if (best > kMaxNesting) return best;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return best;
}

// JSON text → object, rejecting duplicate keys at any level (nlohmann would silently keep the
// last one, so two entries for one tensor name would go unnoticed).
json parse_json_strict(std::string_view text, const std::string& file) {
  if (max_nesting(text) > kMaxNesting)
    throw_error(Status::kIoError, file, ": header: JSON nests deeper than ", kMaxNesting,
                " levels; expected {name: {dtype, shape, data_offsets}}");
  std::vector<std::unordered_set<std::string>> keys_stack;
  std::string duplicate;
  auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys_stack.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!keys_stack.empty()) keys_stack.pop_back();
    } else if (event == json::parse_event_t::key && !keys_stack.empty() && duplicate.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys_stack.back().insert(k).second) duplicate = k;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& e) {
    throw_error(Status::kIoError, file, ": header is not valid JSON (", e.what(),
                "); the file is corrupt or not safetensors");
  }
  if (!duplicate.empty())
    throw_error(Status::kIoError, file, ": header: key '", duplicate,
                "' appears more than once; expected unique tensor names");
  return j;
}

// A JSON value that must be a non-negative integer (shape dims, offsets).
uint64_t as_count(const json& v, const std::string& where) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return v.get<uint64_t>();  // "-0"
  if (v.is_number_integer())
    throw_error(Status::kIoError, where, ": expected a non-negative integer, got ",
                v.get<int64_t>());
  if (v.is_number_float())
    throw_error(Status::kIoError, where, ": expected a non-negative integer, got ", v.dump());
  throw_error(Status::kIoError, where, ": expected a non-negative integer, got ", json_type(v));
}

SafetensorsEntry parse_entry(const std::string& name, const json& e, uint64_t data_size,
                             const std::string& file, std::pair<uint64_t, uint64_t>* offsets) {
  const std::string where = file + ": tensor '" + name + "'";
  if (!e.is_object())
    throw_error(Status::kIoError, where, ": expected an object {dtype, shape, data_offsets}, got ",
                json_type(e));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!e.contains(field))
      throw_error(Status::kIoError, where, ": missing field '", field,
                  "'; expected {dtype, shape, data_offsets}");
  SafetensorsEntry out;
  out.name = name;
  out.file = file;

  const json& dt = e["dtype"];
  if (!dt.is_string())
    throw_error(Status::kIoError, where, ": dtype: expected a string, got ", json_type(dt));
  const std::string& ds = dt.get_ref<const std::string&>();
  if (ds == "F32")
    out.dtype = DType::kF32;
  else if (ds == "BF16")
    out.dtype = DType::kBF16;
  else if (ds == "F16")
    out.dtype = DType::kF16;
  else if (is_safetensors_dtype(ds))
    throw_error(Status::kNotSupported, where, ": unsupported dtype \"", ds,
                "\"; expected F32, BF16 or F16 (convert the checkpoint's float weights)");
  else
    throw_error(Status::kIoError, where, ": unknown dtype \"", ds,
                "\"; expected a safetensors dtype such as F32, BF16 or F16");

  const json& sh = e["shape"];
  if (!sh.is_array())
    throw_error(Status::kIoError, where, ": shape: expected an array of integers, got ",
                json_type(sh));
  uint64_t numel = 1;
  for (size_t i = 0; i < sh.size(); ++i) {
    const uint64_t d = as_count(sh[i], where + ": shape[" + std::to_string(i) + "]");
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, d, &numel))
      throw_error(Status::kIoError, where, ": shape ", sh.dump(),
                  " has more elements than fit in 64 bits");
    out.shape.push_back(static_cast<int64_t>(d));
  }
  uint64_t want_bytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(out.dtype)), &want_bytes))
    throw_error(Status::kIoError, where, ": shape ", sh.dump(), " is too large for any file");

  const json& off = e["data_offsets"];
  if (!off.is_array() || off.size() != 2)
    throw_error(Status::kIoError, where, ": data_offsets: expected [begin, end], got ", off.dump());
  const uint64_t begin = as_count(off[0], where + ": data_offsets[0]");
  const uint64_t end = as_count(off[1], where + ": data_offsets[1]");
  if (begin > end)
    throw_error(Status::kIoError, where,
                ": data_offsets: expected [begin, end] with begin <= end, got [", begin, ", ", end,
                "]");
  if (end > data_size)
    throw_error(Status::kIoError, where, ": data_offsets end ", end,
                " is beyond the data section of ", data_size,
                " bytes; the file is truncated or corrupt");
  if (end - begin != want_bytes)
    throw_error(Status::kIoError, where, ": data_offsets [", begin, ", ", end, "] hold ",
                end - begin, " bytes; expected ", want_bytes, " for ", ds, " shape ",
                shape_to_string(out.shape));
  out.nbytes = static_cast<size_t>(want_bytes);
  *offsets = {begin, end};
  return out;
}

// Two tensors sharing bytes means a corrupt or hand-edited header (sort by begin; an empty range
// overlaps nothing).
void check_overlaps(const ParsedHeader& h, const std::string& file) {
  std::vector<size_t> order(h.offsets.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return h.offsets[a] < h.offsets[b]; });
  const size_t none = order.size();
  size_t last = none;  // the non-empty range reaching furthest so far
  for (size_t i : order) {
    const auto [b, e] = h.offsets[i];
    if (b == e) continue;
    if (last != none && b < h.offsets[last].second)
      throw_error(Status::kIoError, file, ": tensor '", h.entries[i].name, "' bytes [", b, ", ", e,
                  ") overlap tensor '", h.entries[last].name, "' bytes [", h.offsets[last].first,
                  ", ", h.offsets[last].second, "); expected disjoint data_offsets");
    if (last == none || e > h.offsets[last].second) last = i;
  }
}

// Levenshtein distance, capped: names are short and this only runs on the error path.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  std::iota(prev.begin(), prev.end(), 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] =
          std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1] ? 1 : 0)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The name a user most likely meant: a close spelling, or the same name under another prefix
// ("model.x.weight" vs "paligemma.model.x.weight"). Empty when nothing is convincing.
std::string closest_name(std::string_view want, const std::vector<std::string>& names) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const std::string& n : names) {
    const bool prefix_only = ends_with(n, "." + std::string(want)) || ends_with(want, "." + n);
    const size_t d = prefix_only ? 0 : edit_distance(want, n);
    if (d < best_d) {
      best_d = d;
      best = n;
    }
  }
  return best_d <= std::max<size_t>(2, want.size() / 8) ? best : std::string();
}

[[noreturn]] void throw_open_error(const std::string& path, const char* what) {
  const int err = errno;
  throw_error(err == ENOENT ? Status::kNotFound : Status::kIoError, path, ": cannot ", what, ": ",
              std::strerror(err));
}

}  // namespace

ParsedHeader parse_safetensors_header(std::string_view text, uint64_t data_size,
                                      const std::string& file) {
  const json root = parse_json_strict(text, file);
  if (!root.is_object())
    throw_error(Status::kIoError, file,
                ": header: expected a JSON object {name: {dtype, shape, "
                "data_offsets}}, got ",
                json_type(root));
  ParsedHeader out;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object())
        throw_error(Status::kIoError, file, ": __metadata__: expected an object of strings, got ",
                    json_type(*it));
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          throw_error(Status::kIoError, file, ": __metadata__['", m.key(),
                      "']: expected a string, got ", json_type(*m));
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    std::pair<uint64_t, uint64_t> off;
    out.entries.push_back(parse_entry(it.key(), *it, data_size, file, &off));
    out.offsets.push_back(off);
  }
  check_overlaps(out, file);
  return out;
}

// ---- SafetensorsFile ----

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_open_error(path, "open safetensors file");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw_open_error(path, "stat");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw_error(Status::kIoError, path,
                ": expected a regular .safetensors file, got a directory or device");
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw_error(Status::kIoError, path, ": file is ", size_,
                " bytes; expected at least 8 (the header length); truncated download?");
  }
  map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file alive
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw_open_error(path, "mmap");
  }
  try {
    const auto* bytes = static_cast<const unsigned char*>(map_);
    for (int i = 7; i >= 0; --i) header_len_ = (header_len_ << 8) | bytes[i];  // little-endian
    if (header_len_ > kMaxHeaderBytes)
      throw_error(Status::kIoError, path, ": header length ", header_len_, " bytes is above the ",
                  kMaxHeaderBytes, "-byte limit; the file is corrupt or not safetensors");
    if (header_len_ > size_ - 8)
      throw_error(Status::kIoError, path, ": header length ", header_len_,
                  " bytes runs past the end of the ", size_, "-byte file; truncated download?");
    const uint64_t data_size = size_ - 8 - header_len_;
    ParsedHeader h = parse_safetensors_header(header_json(), data_size, path);
    const unsigned char* data = bytes + 8 + header_len_;
    size_t misaligned = 0;
    for (size_t i = 0; i < h.entries.size(); ++i) {
      h.entries[i].data = data + h.offsets[i].first;
      if (reinterpret_cast<uintptr_t>(h.entries[i].data) % dtype_size(h.entries[i].dtype))
        ++misaligned;
    }
    // Legal but unusual (old writers did not pad the header): loaders copy with memcpy or
    // convert_to_f32, never by casting these pointers, so this is only a hint.
    if (misaligned)
      log_warning(path, ": ", misaligned, " tensors are not aligned to their element size");
    entries_ = std::move(h.entries);
    metadata_ = std::move(h.metadata);
  } catch (...) {
    ::munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, size_);
}

const SafetensorsEntry* SafetensorsFile::find(std::string_view name) const {
  // Entries come out of a JSON object, i.e. sorted by name.
  auto it =
      std::lower_bound(entries_.begin(), entries_.end(), name,
                       [](const SafetensorsEntry& e, std::string_view n) { return e.name < n; });
  return it != entries_.end() && it->name == name ? &*it : nullptr;
}

std::string_view SafetensorsFile::header_json() const {
  return {static_cast<const char*>(map_) + 8, static_cast<size_t>(header_len_)};
}

// ---- SafetensorsCheckpoint ----

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::string& dir) : dir_(dir) {
  const fs::path root(dir);
  const fs::path index_path = root / "model.safetensors.index.json";
  const fs::path single_path = root / "model.safetensors";
  std::error_code ec;
  if (fs::is_regular_file(index_path, ec)) {
    index_file_ = index_path.string();
    std::ifstream in(index_path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in) throw_error(Status::kIoError, index_file_, ": cannot read the shard index");
    const std::string text = ss.str();
    json idx;
    try {
      idx = json::parse(text);
    } catch (const json::exception& e) {
      throw_error(Status::kIoError, index_file_, ": not valid JSON (", e.what(), ")");
    }
    if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object())
      throw_error(Status::kIoError, index_file_,
                  ": expected an object with \"weight_map\": {tensor name: shard file}");
    std::map<std::string, SafetensorsFile*> shards;
    for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
      if (!it->is_string())
        throw_error(Status::kIoError, index_file_, ": weight_map['", it.key(),
                    "']: expected a shard file name, got ", json_type(*it));
      const std::string shard = it->get<std::string>();
      auto found = shards.find(shard);
      if (found == shards.end()) {
        const fs::path shard_path = root / shard;
        if (!fs::is_regular_file(shard_path, ec))
          throw_error(Status::kNotFound, index_file_, ": shard '", shard, "' (listed for tensor '",
                      it.key(), "') does not exist in ", dir, "; incomplete download?");
        files_.push_back(std::make_unique<SafetensorsFile>(shard_path.string()));
        found = shards.emplace(shard, files_.back().get()).first;
      }
      const SafetensorsEntry* e = found->second->find(it.key());
      if (!e)
        throw_error(Status::kNotFound, index_file_, ": tensor '", it.key(),
                    "' is listed in shard '", shard, "' but that file does not contain it");
      index_.emplace(it.key(), e);
    }
    size_t unlisted = 0;
    for (const auto& f : files_)
      for (const SafetensorsEntry& e : f->entries()) unlisted += index_.count(e.name) ? 0 : 1;
    if (unlisted)
      log_warning(index_file_, ": ", unlisted,
                  " tensors in the shards are not in weight_map and are ignored");
    return;
  }
  if (fs::is_regular_file(single_path, ec)) {
    index_file_ = single_path.string();
    files_.push_back(std::make_unique<SafetensorsFile>(index_file_));
    for (const SafetensorsEntry& e : files_.back()->entries()) index_.emplace(e.name, &e);
    return;
  }
  throw_error(Status::kNotFound, dir, ": no model.safetensors or model.safetensors.index.json",
              fs::is_directory(root, ec) ? "" : " (the directory does not exist)",
              "; expected a PyTorch-format checkpoint directory. Make a synthetic one with "
              "`flashrt make-checkpoint`, or convert an openpi JAX checkpoint with openpi's "
              "examples/convert_jax_model_to_pytorch.py");
}

const SafetensorsEntry* SafetensorsCheckpoint::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const SafetensorsEntry& SafetensorsCheckpoint::get(std::string_view name) const {
  if (const SafetensorsEntry* e = find(name)) return *e;
  const std::string hint = closest_name(name, names());
  throw_error(Status::kNotFound, index_file_, ": missing tensor '", name, "'",
              hint.empty() ? std::string() : "; did you mean '" + hint + "'?");
}

const SafetensorsEntry& SafetensorsCheckpoint::get(std::string_view name,
                                                   const std::vector<int64_t>& shape) const {
  const SafetensorsEntry& e = get(name);
  if (e.shape != shape)
    throw_error(Status::kInvalidArgument, e.file, ": tensor '", name, "': expected shape ",
                shape_to_string(shape), ", got ", shape_to_string(e.shape));
  return e;
}

HostTensor SafetensorsCheckpoint::load_f32(std::string_view name,
                                           const std::vector<int64_t>& shape) const {
  const SafetensorsEntry& e = get(name, shape);
  HostTensor t(DType::kF32, shape, HostInit::kNone);  // fully written by the conversion
  convert_to_f32(e.data, e.dtype, t.as<float>(), static_cast<size_t>(t.numel()));
  return t;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& kv : index_) out.push_back(kv.first);
  return out;
}

}  // namespace frt
