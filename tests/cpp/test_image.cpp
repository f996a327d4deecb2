// Tests of src/io/image.{h,cpp}: PNG/BMP/JPEG decode of files the test writes itself (through
// stb_image_write, whose implementation lives in image.cpp), grayscale/alpha → RGB, 16-bit PNG
// (built by hand below), write_png round trip, and the error cases (missing, undecodable,
// truncated, too large, directory, bad write arguments).
#include <gtest/gtest.h>
#include <stb_image_write.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cpp/test_util.h"
#include "core/status.h"
#include "io/image.h"

namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng() & 0xFF);
  return v;
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

frt::Error catch_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const frt::Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected an frt::Error";
  return frt::Error(frt::Status::kOk, "");
}

// ---- a minimal PNG writer (stored deflate blocks) for what stb_image_write cannot make:
// 16-bit samples, and headers claiming huge sizes.
uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc = 0) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}
void put_u32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}
void put_chunk(std::vector<uint8_t>& png, const char* type, const std::vector<uint8_t>& data) {
  put_u32(png, static_cast<uint32_t>(data.size()));
  std::vector<uint8_t> td(type, type + 4);
  td.insert(td.end(), data.begin(), data.end());
  png.insert(png.end(), td.begin(), td.end());
  put_u32(png, crc32(td.data(), td.size()));
}
// raw: the filtered scanlines (each starting with filter byte 0).
std::vector<uint8_t> make_png(uint32_t w, uint32_t h, uint8_t bit_depth, uint8_t color_type,
                              const std::vector<uint8_t>& raw) {
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> ihdr;
  put_u32(ihdr, w);
  put_u32(ihdr, h);
  ihdr.insert(ihdr.end(), {bit_depth, color_type, 0, 0, 0});
  put_chunk(png, "IHDR", ihdr);
  std::vector<uint8_t> z = {0x78, 0x01};  // zlib header, no compression
  for (size_t off = 0; off < raw.size() || off == 0; off += 65535) {
    const size_t n = std::min<size_t>(65535, raw.size() - off);
    z.push_back(off + n >= raw.size() ? 1 : 0);  // BFINAL, BTYPE = stored
    z.insert(z.end(), {static_cast<uint8_t>(n), static_cast<uint8_t>(n >> 8),
                       static_cast<uint8_t>(~n), static_cast<uint8_t>(~n >> 8)});
    z.insert(z.end(), raw.begin() + off, raw.begin() + off + n);
    if (raw.empty()) break;
  }
  uint32_t a = 1, b = 0;  // adler32
  for (uint8_t c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  put_u32(z, (b << 16) | a);
  put_chunk(png, "IDAT", z);
  put_chunk(png, "IEND", {});
  return png;
}

}  // namespace

TEST(Image, PngRgbRoundTripIsExact) {
  const fs::path d = frt::test::fresh_test_dir("img_png_rgb");
  const int w = 37, h = 23;  // odd sizes: row stride != multiple of 4
  const std::vector<uint8_t> px = random_bytes(static_cast<size_t>(w) * h * 3, 1);
  ASSERT_TRUE(stbi_write_png((d / "a.png").c_str(), w, h, 3, px.data(), w * 3));
  const frt::ImageU8 img = frt::read_image((d / "a.png").string());
  EXPECT_EQ(img.width, w);
  EXPECT_EQ(img.height, h);
  EXPECT_EQ(img.pixels, px);

  // write_png → read_image gives the same pixels back.
  frt::write_png((d / "b.png").string(), img);
  EXPECT_EQ(frt::read_image((d / "b.png").string()).pixels, px);
  fs::remove_all(d);
}

TEST(Image, GrayAndAlphaBecomeRgb) {
  const fs::path d = frt::test::fresh_test_dir("img_gray");
  const int w = 9, h = 5, n = w * h;
  const std::vector<uint8_t> g = random_bytes(n, 2), ga = random_bytes(n * 2, 3),
                             rgba = random_bytes(n * 4, 4);
  ASSERT_TRUE(stbi_write_png((d / "g.png").c_str(), w, h, 1, g.data(), w));
  ASSERT_TRUE(stbi_write_png((d / "ga.png").c_str(), w, h, 2, ga.data(), w * 2));
  ASSERT_TRUE(stbi_write_png((d / "rgba.png").c_str(), w, h, 4, rgba.data(), w * 4));
  const frt::ImageU8 a = frt::read_image((d / "g.png").string());
  const frt::ImageU8 b = frt::read_image((d / "ga.png").string());
  const frt::ImageU8 c = frt::read_image((d / "rgba.png").string());
  ASSERT_EQ(a.pixels.size(), static_cast<size_t>(n * 3));
  ASSERT_EQ(b.pixels.size(), static_cast<size_t>(n * 3));
  ASSERT_EQ(c.pixels.size(), static_cast<size_t>(n * 3));
  for (int i = 0; i < n; ++i)
    for (int ch = 0; ch < 3; ++ch) {
      EXPECT_EQ(a.pixels[i * 3 + ch], g[i]);
      EXPECT_EQ(b.pixels[i * 3 + ch], ga[i * 2]);  // alpha dropped
      EXPECT_EQ(c.pixels[i * 3 + ch], rgba[i * 4 + ch]);
    }
  fs::remove_all(d);
}

TEST(Image, BmpAndJpeg) {
  const fs::path d = frt::test::fresh_test_dir("img_bmp_jpg");
  const int w = 40, h = 24;
  const std::vector<uint8_t> px = random_bytes(static_cast<size_t>(w) * h * 3, 5);
  ASSERT_TRUE(stbi_write_bmp((d / "a.bmp").c_str(), w, h, 3, px.data()));
  EXPECT_EQ(frt::read_image((d / "a.bmp").string()).pixels, px);

  // JPEG is lossy: a smooth gradient at quality 100 must come back close, not equal.
  std::vector<uint8_t> smooth(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &smooth[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(x * 6);
      p[1] = static_cast<uint8_t>(y * 10);
      p[2] = static_cast<uint8_t>(200 - x * 2 - y * 3);
    }
  ASSERT_TRUE(stbi_write_jpg((d / "a.jpg").c_str(), w, h, 3, smooth.data(), 100));
  const frt::ImageU8 j = frt::read_image((d / "a.jpg").string());
  ASSERT_EQ(j.width, w);
  ASSERT_EQ(j.height, h);
  double err = 0;
  for (size_t i = 0; i < smooth.size(); ++i) err += std::abs(int(j.pixels[i]) - int(smooth[i]));
  EXPECT_LT(err / smooth.size(), 3.0);
  fs::remove_all(d);
}

TEST(Image, SixteenBitPngKeepsTheHighByte) {
  const fs::path d = frt::test::fresh_test_dir("img_png16");
  const int w = 3, h = 2;
  const std::vector<uint8_t> samples = random_bytes(static_cast<size_t>(w) * h * 3 * 2, 6);
  std::vector<uint8_t> raw;
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);  // filter: none
    raw.insert(raw.end(), samples.begin() + y * w * 6, samples.begin() + (y + 1) * w * 6);
  }
  write_bytes(d / "a.png", make_png(w, h, 16, 2, raw));
  const frt::ImageU8 img = frt::read_image((d / "a.png").string());
  ASSERT_EQ(img.pixels.size(), static_cast<size_t>(w * h * 3));
  for (int i = 0; i < w * h * 3; ++i) EXPECT_EQ(img.pixels[i], samples[i * 2]) << i;  // big endian
  fs::remove_all(d);
}

TEST(Image, Errors) {
  const fs::path d = frt::test::fresh_test_dir("img_errors");
  const std::string missing = (d / "missing.png").string();
  frt::Error e = catch_error([&] { frt::read_image(missing); });
  EXPECT_EQ(e.status(), frt::Status::kNotFound);
  EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();

  write_bytes(d / "junk.png", random_bytes(300, 7));
  e = catch_error([&] { frt::read_image((d / "junk.png").string()); });
  EXPECT_EQ(e.status(), frt::Status::kIoError);
  EXPECT_NE(std::string(e.what()).find("junk.png"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("cannot decode ("), std::string::npos) << e.what();

  // A valid PNG cut in half.
  const std::vector<uint8_t> px = random_bytes(64 * 64 * 3, 8);
  ASSERT_TRUE(stbi_write_png((d / "full.png").c_str(), 64, 64, 3, px.data(), 64 * 3));
  std::vector<uint8_t> half = read_bytes(d / "full.png");
  half.resize(half.size() / 2);
  write_bytes(d / "half.png", half);
  e = catch_error([&] { frt::read_image((d / "half.png").string()); });
  EXPECT_EQ(e.status(), frt::Status::kIoError);

  write_bytes(d / "empty.png", {});
  EXPECT_EQ(catch_error([&] { frt::read_image((d / "empty.png").string()); }).status(),
            frt::Status::kIoError);
  EXPECT_EQ(catch_error([&] { frt::read_image(d.string()); }).status(), frt::Status::kIoError);
  EXPECT_EQ(catch_error([&] { frt::decode_image(nullptr, 0, "mem"); }).status(),
            frt::Status::kIoError);

  // A header claiming 20000 pixels wide is refused before decoding, with the limit named.
  write_bytes(d / "huge.png", make_png(20000, 2, 8, 2, std::vector<uint8_t>(2 * (1 + 60000))));
  e = catch_error([&] { frt::read_image((d / "huge.png").string()); });
  EXPECT_EQ(e.status(), frt::Status::kInvalidArgument);
  EXPECT_NE(std::string(e.what()).find("20000x2"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("16384"), std::string::npos) << e.what();
  fs::remove_all(d);
}

TEST(Image, WritePngErrors) {
  frt::ImageU8 bad;
  bad.height = 4;
  bad.width = 4;
  bad.pixels.resize(4 * 4 * 3 - 1);
  const fs::path d = frt::test::fresh_test_dir("img_write_err");
  EXPECT_EQ(catch_error([&] { frt::write_png((d / "x.png").string(), bad); }).status(),
            frt::Status::kInvalidArgument);
  bad.pixels.resize(4 * 4 * 3);
  EXPECT_EQ(catch_error([&] { frt::write_png((d / "no/such/dir/x.png").string(), bad); }).status(),
            frt::Status::kIoError);
  fs::remove_all(d);
}
