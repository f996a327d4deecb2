// msgpack-numpy decoding and encoding (see openpi_codec.h).
// Tests: tests/python/test_server_openpi.py, tests/python/test_server_bad_inputs.py.
#include "server/openpi_codec.h"

#include <cstring>
#include <limits>

#include "server/server_types.h"

namespace frt::server {
namespace {

[[noreturn]] void bad(const std::string& message) { throw RequestError(400, message); }

// BIN / STR / EXT payloads point into the received buffer instead of being copied.
bool reference_payloads(msgpack::type::object_type, std::size_t, void*) { return true; }

bool is_key(const msgpack::object& k, std::string_view name) {
  if (k.type == msgpack::type::STR) return std::string_view(k.via.str.ptr, k.via.str.size) == name;
  if (k.type == msgpack::type::BIN) return std::string_view(k.via.bin.ptr, k.via.bin.size) == name;
  return false;
}

bool is_true(const msgpack::object* o) {
  return o && o->type == msgpack::type::BOOLEAN && o->via.boolean;
}

// "<f4" → kind 'f', 4 bytes; false for a dtype we do not read.
bool parse_dtype(const std::string& s, char* kind, int* itemsize) {
  if (s.size() < 3 || (s[0] != '<' && s[0] != '|' && s[0] != '=')) return false;
  const char k = s[1];
  const std::string digits = s.substr(2);
  if (digits != "1" && digits != "2" && digits != "4" && digits != "8") return false;
  const int n = digits[0] - '0';
  if (k == 'b' && n == 1) {
  } else if (k == 'i' || k == 'u') {
  } else if (k == 'f' && (n == 4 || n == 8)) {
  } else {
    return false;
  }
  *kind = k;
  *itemsize = n;
  return true;
}

template <typename T>
double load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return static_cast<double>(v);
}

double scalar_number(const msgpack::object& o, const std::string& what) {
  switch (o.type) {
    case msgpack::type::POSITIVE_INTEGER:
      return static_cast<double>(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER:
      return static_cast<double>(o.via.i64);
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return o.via.f64;
    case msgpack::type::BOOLEAN:
      return o.via.boolean ? 1.0 : 0.0;
    default:
      bad(what + ": expected a number, got " + type_name(o));
  }
}

}  // namespace

msgpack::object_handle unpack_message(const char* data, size_t size) {
  // Every element takes at least one byte, so no count may exceed the message size; the caps
  // below keep a forged header (a 4-billion-entry array in 5 bytes) from allocating gigabytes.
  const msgpack::unpack_limit limit(/*array=*/1u << 16, /*map=*/1024, /*str=*/1u << 20,
                                    /*bin=*/size, /*ext=*/0, /*depth=*/16);
  size_t offset = 0;
  msgpack::object_handle h;
  try {
    h = msgpack::unpack(data, size, offset, reference_payloads, nullptr, limit);
  } catch (const msgpack::insufficient_bytes&) {
    bad("truncated msgpack: the message (" + std::to_string(size) +
        " bytes) ends inside a value; expected one complete msgpack map");
  } catch (const msgpack::size_overflow& e) {
    bad(std::string("msgpack value too large or too deeply nested (") + e.what() +
        "); limits: 65536 array items, 1024 map entries, 1 MiB strings, depth 16, no ext");
  } catch (const msgpack::unpack_error& e) {
    bad(std::string("malformed msgpack (") + e.what() + "); expected one msgpack map");
  } catch (const std::bad_alloc&) {
    bad("malformed msgpack: a length field asks for more memory than the message can fill");
  }
  if (offset != size)
    bad("malformed msgpack: " + std::to_string(size - offset) +
        " trailing bytes after the first value; expected exactly one msgpack map");
  return h;
}

std::string type_name(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return "nil";
    case msgpack::type::BOOLEAN:
      return "bool";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER:
      return "integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return "float";
    case msgpack::type::STR:
      return "str";
    case msgpack::type::BIN:
      return "bytes";
    case msgpack::type::ARRAY:
      return "array";
    case msgpack::type::MAP:
      if (is_ndarray(o)) return "ndarray";
      if (is_npgeneric(o)) return "numpy scalar";
      return "map";
    case msgpack::type::EXT:
      return "ext";
  }
  return "unknown";
}

const msgpack::object* find_key(const msgpack::object& o, std::string_view key) {
  if (o.type != msgpack::type::MAP) return nullptr;
  for (uint32_t i = 0; i < o.via.map.size; ++i)
    if (is_key(o.via.map.ptr[i].key, key)) return &o.via.map.ptr[i].val;
  return nullptr;
}

std::string key_text(const msgpack::object& k) {
  if (k.type == msgpack::type::STR) return std::string(k.via.str.ptr, k.via.str.size);
  std::string s = k.type == msgpack::type::BIN ? "b'" : "<";  // built by appends: GCC 12 warns
  if (k.type == msgpack::type::BIN)
    s.append(k.via.bin.ptr, k.via.bin.size).append("'");
  else
    s.append(type_name(k)).append(" key>");  // about "lit" + string&& (a false -Wrestrict)
  return s;
}

std::vector<std::string> map_keys(const msgpack::object& o) {
  std::vector<std::string> keys;
  if (o.type == msgpack::type::MAP)
    for (uint32_t i = 0; i < o.via.map.size; ++i) keys.push_back(key_text(o.via.map.ptr[i].key));
  return keys;
}

bool is_ndarray(const msgpack::object& o) { return is_true(find_key(o, "__ndarray__")); }
bool is_npgeneric(const msgpack::object& o) { return is_true(find_key(o, "__npgeneric__")); }

NdArray as_ndarray(const msgpack::object& o, const std::string& what) {
  if (!is_ndarray(o)) bad(what + ": expected a numpy array (msgpack-numpy), got " + type_name(o));
  const msgpack::object* data = find_key(o, "data");
  const msgpack::object* dtype = find_key(o, "dtype");
  const msgpack::object* shape = find_key(o, "shape");
  if (!data || data->type != msgpack::type::BIN)
    bad(what + ": ndarray 'data' must be bytes, got " + (data ? type_name(*data) : "nothing"));
  if (!dtype || dtype->type != msgpack::type::STR)
    bad(what + ": ndarray 'dtype' must be a str like '<f4', got " +
        (dtype ? type_name(*dtype) : "nothing"));
  if (!shape || shape->type != msgpack::type::ARRAY)
    bad(what + ": ndarray 'shape' must be an array of ints, got " +
        (shape ? type_name(*shape) : "nothing"));
  NdArray a;
  a.dtype.assign(dtype->via.str.ptr, dtype->via.str.size);
  if (!parse_dtype(a.dtype, &a.kind, &a.itemsize))
    bad(what + ": dtype '" + a.dtype +
        "' is not supported; expected uint8 (|u1), float32 (<f4), float64 (<f8), a little-endian "
        "integer or bool");
  if (shape->via.array.size > 8)
    bad(what + ": " + std::to_string(shape->via.array.size) + " dimensions; expected at most 8");
  int64_t numel = 1;
  for (uint32_t d = 0; d < shape->via.array.size; ++d) {
    const msgpack::object& s = shape->via.array.ptr[d];
    if (s.type != msgpack::type::POSITIVE_INTEGER || s.via.u64 > (1u << 30))
      bad(what + ": shape[" + std::to_string(d) + "] must be an integer in 0 .. 2^30, got " +
          (s.type == msgpack::type::NEGATIVE_INTEGER ? std::to_string(s.via.i64) : type_name(s)));
    a.shape.push_back(static_cast<int64_t>(s.via.u64));
    if (numel > (int64_t{1} << 40)) bad(what + ": shape has too many elements");
    numel *= a.shape.back();
  }
  a.numel = numel;
  const uint64_t expected = static_cast<uint64_t>(numel) * static_cast<uint64_t>(a.itemsize);
  if (data->via.bin.size != expected)
    bad(what + ": ndarray data has " + std::to_string(data->via.bin.size) + " bytes; shape and " +
        a.dtype + " need " + std::to_string(expected));
  a.data = data->via.bin.ptr;
  return a;
}

double element(const NdArray& a, int64_t k) {
  const char* p = a.data + k * a.itemsize;
  switch (a.kind) {
    case 'f':
      return a.itemsize == 4 ? load<float>(p) : load<double>(p);
    case 'b':
      return p[0] != 0 ? 1.0 : 0.0;
    case 'u':
      switch (a.itemsize) {
        case 1:
          return load<uint8_t>(p);
        case 2:
          return load<uint16_t>(p);
        case 4:
          return load<uint32_t>(p);
        default:
          return load<uint64_t>(p);
      }
    default:
      switch (a.itemsize) {
        case 1:
          return load<int8_t>(p);
        case 2:
          return load<int16_t>(p);
        case 4:
          return load<int32_t>(p);
        default:
          return load<int64_t>(p);
      }
  }
}

std::vector<double> to_numbers(const msgpack::object& o, const std::string& what,
                               std::vector<int64_t>* shape) {
  std::vector<double> out;
  std::vector<int64_t> dims;
  if (is_ndarray(o)) {
    const NdArray a = as_ndarray(o, what);
    out.reserve(static_cast<size_t>(a.numel));
    for (int64_t k = 0; k < a.numel; ++k) out.push_back(element(a, k));
    dims = a.shape;
  } else if (is_npgeneric(o)) {
    const msgpack::object* data = find_key(o, "data");
    if (!data) bad(what + ": numpy scalar without 'data'");
    out.push_back(scalar_number(*data, what));
  } else if (o.type == msgpack::type::ARRAY) {  // a Python list, possibly of lists
    dims.push_back(o.via.array.size);
    for (uint32_t i = 0; i < o.via.array.size; ++i) {
      const msgpack::object& e = o.via.array.ptr[i];
      const std::string name = what + "[" + std::to_string(i) + "]";
      if (e.type == msgpack::type::ARRAY) {
        if (dims.size() == 1 && i == 0) dims.push_back(e.via.array.size);
        if (dims.size() != 2 || e.via.array.size != dims[1])
          bad(what +
              ": rows of different lengths (or mixed numbers and lists); expected a "
              "rectangular list");
        for (uint32_t j = 0; j < e.via.array.size; ++j)
          out.push_back(scalar_number(e.via.array.ptr[j], name + "[" + std::to_string(j) + "]"));
      } else {
        if (dims.size() == 2) bad(what + ": mixed numbers and lists; expected a rectangular list");
        out.push_back(scalar_number(e, name));
      }
    }
  } else {
    out.push_back(scalar_number(o, what));
  }
  if (shape) *shape = std::move(dims);
  return out;
}

void pack_str(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

static void pack_bin_key(Packer& pk, std::string_view s) {
  pk.pack_bin(static_cast<uint32_t>(s.size()));
  pk.pack_bin_body(s.data(), static_cast<uint32_t>(s.size()));
}

void pack_ndarray_f64(Packer& pk, const std::vector<double>& values,
                      const std::vector<int64_t>& shape) {
  // Same entry order as openpi's pack_array: __ndarray__, data, dtype, shape.
  pk.pack_map(4);
  pack_bin_key(pk, "__ndarray__");
  pk.pack_true();
  pack_bin_key(pk, "data");
  const uint32_t bytes = static_cast<uint32_t>(values.size() * sizeof(double));
  pk.pack_bin(bytes);
  pk.pack_bin_body(reinterpret_cast<const char*>(values.data()), bytes);
  pack_bin_key(pk, "dtype");
  pack_str(pk, "<f8");
  pack_bin_key(pk, "shape");
  pk.pack_array(static_cast<uint32_t>(shape.size()));
  for (int64_t d : shape) pk.pack(d);
}

}  // namespace frt::server
