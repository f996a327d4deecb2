// openpi's msgpack-numpy wire encoding, read and written with msgpack-cxx.
// An ndarray travels as a map with BIN keys __ndarray__ (true), data (bin, C order), dtype
// (numpy dtype.str: "|u1", "<f4", "<f8", ...), shape (array of ints); a numpy scalar as
// __npgeneric__ / data / dtype. Decoding is defensive: size limits on every container, depth
// limit, exact byte counts, and every problem becomes a RequestError(400) naming it.
// Facts: openpi packages/openpi-client/src/openpi_client/msgpack_numpy.py; see
// ../shared/spec/openpi-protocol.md. Tests: tests/python/test_server_openpi.py,
// tests/python/test_server_bad_inputs.py (truncated msgpack, garbage, bad dtypes and shapes).
#pragma once

#include <cstdint>
#include <msgpack.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace frt::server {

// Unpacks one whole message (trailing bytes are an error). BIN and STR payloads reference
// `data`, which must outlive the returned handle's use.
msgpack::object_handle unpack_message(const char* data, size_t size);

// The msgpack type of `o` in words ("map", "str", "positive integer", ...), for messages.
std::string type_name(const msgpack::object& o);

// The value of `key` in map `o` (STR or BIN key), nullptr when absent or `o` is not a map.
const msgpack::object* find_key(const msgpack::object& o, std::string_view key);
// Keys of a map as text (BIN keys shown as b'...'), for error messages.
std::vector<std::string> map_keys(const msgpack::object& o);
// A STR (or BIN) key as text.
std::string key_text(const msgpack::object& key);

// A validated ndarray view into the message.
struct NdArray {
  std::string dtype;  // as sent, e.g. "<f4"
  char kind = 0;      // 'b' bool, 'i' signed, 'u' unsigned, 'f' float
  int itemsize = 0;   // bytes per element
  std::vector<int64_t> shape;
  int64_t numel = 0;
  const char* data = nullptr;  // numel * itemsize bytes, little endian
};

bool is_ndarray(const msgpack::object& o);
bool is_npgeneric(const msgpack::object& o);
// Throws RequestError(400) naming `what` for a malformed array or an unsupported dtype
// (only b1, i1/2/4/8, u1/2/4/8, f4, f8, little endian or byte-order free).
NdArray as_ndarray(const msgpack::object& o, const std::string& what);
// Element k of a numeric array as double.
double element(const NdArray& a, int64_t k);

// Numbers from an ndarray, a numpy scalar, a msgpack number or a (nested) array of numbers;
// `shape` receives the shape ({} for a scalar). Throws RequestError(400) naming `what`.
std::vector<double> to_numbers(const msgpack::object& o, const std::string& what,
                               std::vector<int64_t>* shape = nullptr);

// Writing: a packer over an sbuffer, with openpi's ndarray layout.
using Packer = msgpack::packer<msgpack::sbuffer>;
void pack_str(Packer& pk, std::string_view s);
void pack_ndarray_f64(Packer& pk, const std::vector<double>& values,
                      const std::vector<int64_t>& shape);

}  // namespace frt::server
