// SHA-256 (FIPS 180-4), streaming. Used to key the calibration cache on a checkpoint's bytes
// (src/engine/calibration_cache.cpp); a plain portable implementation, fast enough for the
// ~1 MB sampled per checkpoint. Test: tests/cpp/test_sha256.cpp (NIST vectors).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace frt {

class Sha256 {
 public:
  using Digest = std::array<uint8_t, 32>;

  Sha256();
  void update(const void* data, size_t len);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Pads, returns the digest and resets the object for a new message.
  Digest finish();

  static std::string to_hex(const Digest& d);  // 64 lowercase hex characters

 private:
  void compress(const uint8_t* block);  // one 64-byte block into state_
  void reset();

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t buffered_ = 0;    // bytes waiting in buffer_ (< 64)
  uint64_t total_len_ = 0;  // message length in bytes so far
};

// One-shot helper: lowercase hex digest of `s`.
std::string sha256_hex(std::string_view s);

}  // namespace frt
