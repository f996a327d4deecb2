// Image files → u8 HxWx3 (PNG/JPEG/BMP via stb_image) and writing PNG (for tests and the demo).
// Tests: tests/cpp/test_image.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace frt {

struct ImageU8 {
  int height = 0, width = 0;    // channels are always 3
  std::vector<uint8_t> pixels;  // height * width * 3
};

// Throws kNotFound (no such file) or kIoError naming the file and the decoder's reason.
ImageU8 read_image(const std::string& path);
ImageU8 decode_image(const uint8_t* bytes, size_t size, const std::string& what);
void write_png(const std::string& path, const ImageU8& img);

}  // namespace frt
