// Images at the core's edge: a plain RGB8 struct, decoded with OpenCV (EXIF orientation applied).
//
//   ImageRgb8 img = loadImage("photo.jpg");   // throws sdrpn::Error naming the file
//
// ImageRgb8 itself needs no OpenCV, so model code may use it in LibTorch-only builds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sdrpn::io {

struct ImageRgb8 {
    int width = 0;
    int height = 0;
    std::vector<std::uint8_t> pixels;  // row-major, 3 bytes per pixel (R, G, B), no row padding

    bool empty() const { return width <= 0 || height <= 0; }
    const std::uint8_t* at(int x, int y) const { return pixels.data() + (std::size_t(y) * width + x) * 3; }
    std::uint8_t* at(int x, int y) { return pixels.data() + (std::size_t(y) * width + x) * 3; }
};

// Decodes a file (PNG, JPEG, BMP, TIFF, WebP, ... whatever OpenCV reads), applying EXIF orientation.
// Throws sdrpn::Error naming the file when it is missing, empty, corrupt or too large.
ImageRgb8 loadImage(const std::string& path);

// Decodes encoded bytes (clipboard, network); `name` is used in error messages.
ImageRgb8 decodeImage(const std::vector<std::uint8_t>& bytes, const std::string& name);

// Writes PNG/JPEG by extension. Throws naming the path.
void saveImage(const ImageRgb8& image, const std::string& path);

// Images with more pixels than this are refused instead of allocated.
constexpr std::int64_t kMaxImagePixels = 20000LL * 20000LL;

}  // namespace sdrpn::io
