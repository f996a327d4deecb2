// Image files → u8 HxWx3 through stb_image (PNG, JPEG, BMP), and PNG writing through
// stb_image_write. The only translation unit holding the stb implementations.
// Tests: tests/cpp/test_image.cpp.
#include "io/image.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/status.h"

// Only the formats a robot camera dump uses: every decoder left out is attack surface gone.
// JPEG EXIF orientation is not applied (stb ignores it), as with raw camera frames.
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO  // we read the bytes ourselves, so errors can name the file
// No STBI_MAX_DIMENSIONS: with it stbi_info fails on large headers with a vague "unknown image
// type"; decode_image checks the sides itself (kMaxSide) before decoding.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_image.h>
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace frt {
namespace {

constexpr int kMaxSide = 16384;
constexpr uintmax_t kMaxFileBytes = uintmax_t{1} << 30;  // 1 GiB: far above any 16k x 16k PNG

}  // namespace

ImageU8 decode_image(const uint8_t* bytes, size_t size, const std::string& what) {
  if (bytes == nullptr || size == 0)
    throw_error(Status::kIoError, "image '", what, "': no bytes to decode (empty file?)");
  if (size > static_cast<size_t>(INT32_MAX))
    throw_error(Status::kInvalidArgument, "image '", what, "': ", size,
                " bytes; expected at most 2 GiB");
  const int len = static_cast<int>(size);
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(bytes, len, &w, &h, &comp))
    throw_error(Status::kIoError, "image '", what, "': cannot decode (", stbi_failure_reason(),
                "); expected a PNG, JPEG or BMP file");
  if (w > kMaxSide || h > kMaxSide || w <= 0 || h <= 0)
    throw_error(Status::kInvalidArgument, "image '", what, "': ", w, "x", h,
                " pixels; expected 1 .. ", kMaxSide,
                " per side (downscale it first; the model "
                "resizes every view to 224x224 anyway)");
  // req_comp = 3: grayscale, gray+alpha and RGBA become RGB (alpha dropped, as PIL's
  // convert("RGB") does); 16-bit PNGs are reduced to 8 bits.
  stbi_uc* px = stbi_load_from_memory(bytes, len, &w, &h, &comp, 3);
  if (px == nullptr)
    throw_error(Status::kIoError, "image '", what, "': cannot decode (", stbi_failure_reason(),
                "); expected a PNG, JPEG or BMP file");
  ImageU8 img;
  img.height = h;
  img.width = w;
  img.pixels.assign(px, px + static_cast<size_t>(w) * h * 3);
  stbi_image_free(px);
  return img;
}

ImageU8 read_image(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) throw_error(Status::kNotFound, "image '", path, "': no such file");
  if (!fs::is_regular_file(st))
    throw_error(Status::kIoError, "image '", path, "': not a regular file");
  const uintmax_t n = fs::file_size(path, ec);
  if (ec) throw_error(Status::kIoError, "image '", path, "': cannot stat (", ec.message(), ")");
  if (n > kMaxFileBytes)
    throw_error(Status::kInvalidArgument, "image '", path, "': ", n,
                " bytes; expected at most 1 GiB");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw_error(Status::kIoError, "image '", path, "': cannot open for reading");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw_error(Status::kIoError, "image '", path, "': read failed");
  return decode_image(bytes.data(), bytes.size(), path);
}

void write_png(const std::string& path, const ImageU8& img) {
  if (img.height <= 0 || img.width <= 0 ||
      img.pixels.size() != static_cast<size_t>(img.height) * img.width * 3)
    throw_error(Status::kInvalidArgument, "write_png '", path, "': image is ", img.height, "x",
                img.width, " with ", img.pixels.size(), " bytes; expected height*width*3 = ",
                static_cast<size_t>(std::max(img.height, 0)) * std::max(img.width, 0) * 3,
                " bytes and positive sides");
  if (!stbi_write_png(path.c_str(), img.width, img.height, 3, img.pixels.data(), img.width * 3))
    throw_error(Status::kIoError, "write_png '", path,
                "': cannot write (does the directory exist and is it writable?)");
}

}  // namespace frt
