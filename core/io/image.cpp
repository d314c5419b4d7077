#include "core/io/image.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/result.h"

namespace fs = std::filesystem;

namespace sdrpn::io {

namespace {

struct Size2 {
    std::int64_t width = 0;
    std::int64_t height = 0;
};

std::uint32_t be16(const std::uint8_t* p) {
    return (std::uint32_t(p[0]) << 8) | p[1];
}
std::uint32_t be32(const std::uint8_t* p) {
    return (be16(p) << 16) | be16(p + 2);
}
std::uint32_t le16(const std::uint8_t* p) {
    return (std::uint32_t(p[1]) << 8) | p[0];
}
std::uint32_t le24(const std::uint8_t* p) {
    return le16(p) | (std::uint32_t(p[2]) << 16);
}
std::uint32_t le32(const std::uint8_t* p) {
    return le16(p) | (le16(p + 2) << 16);
}

// Dimensions from the header of common formats, so that an oversized image is refused before OpenCV
// allocates it. nullopt when the format is not recognised here (the size is then checked after decoding).
std::optional<Size2> sniffSize(const std::uint8_t* d, std::size_t n) {
    static const std::uint8_t kPng[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    if (n >= 24 && std::memcmp(d, kPng, 8) == 0 && std::memcmp(d + 12, "IHDR", 4) == 0)
        return Size2{be32(d + 16), be32(d + 20)};
    if (n >= 10 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0))
        return Size2{le16(d + 6), le16(d + 8)};
    if (n >= 26 && d[0] == 'B' && d[1] == 'M') {
        const std::uint32_t dib = le32(d + 14);
        if (dib == 12) return Size2{le16(d + 18), le16(d + 20)};
        if (dib >= 40) {
            auto w = static_cast<std::int32_t>(le32(d + 18));
            auto h = static_cast<std::int32_t>(le32(d + 22));  // negative: top-down rows
            return Size2{std::abs(std::int64_t(w)), std::abs(std::int64_t(h))};
        }
        return std::nullopt;
    }
    if (n >= 30 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) {
        if (std::memcmp(d + 12, "VP8X", 4) == 0) return Size2{le24(d + 24) + 1, le24(d + 27) + 1};
        if (std::memcmp(d + 12, "VP8 ", 4) == 0) return Size2{le16(d + 26) & 0x3fff, le16(d + 28) & 0x3fff};
        if (std::memcmp(d + 12, "VP8L", 4) == 0) {
            const std::uint32_t bits = le32(d + 21);
            return Size2{(bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1};
        }
        return std::nullopt;
    }
    if (n >= 4 && d[0] == 0xff && d[1] == 0xd8) {
        // JPEG: walk the marker segments up to the first SOFn (frame header: precision, height, width).
        std::size_t pos = 2;
        while (pos + 4 <= n) {
            if (d[pos] != 0xff) return std::nullopt;
            std::uint8_t marker = d[pos + 1];
            if (marker == 0xff) {  // fill byte
                ++pos;
                continue;
            }
            if (marker == 0xd8 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
                pos += 2;
                continue;
            }
            if (marker == 0xd9 || marker == 0xda) return std::nullopt;  // EOI / SOS before any frame
            const std::uint32_t len = be16(d + pos + 2);
            if (len < 2) return std::nullopt;
            const bool sof =
                marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
            if (sof) {
                if (pos + 9 > n) return std::nullopt;
                return Size2{be16(d + pos + 7), be16(d + pos + 5)};
            }
            pos += 2 + len;
        }
    }
    return std::nullopt;
}

void checkSize(std::int64_t width, std::int64_t height, const std::string& name) {
    if (width <= 0 || height <= 0)
        throw Error("image " + name + " has zero width or height (" + std::to_string(width) + "x" +
                    std::to_string(height) + ")");
    if (width > kMaxImagePixels / height)
        throw Error("image " + name + " is too large: " + std::to_string(width) + "x" +
                    std::to_string(height) + " pixels, more than the limit of " +
                    std::to_string(kMaxImagePixels));
}

ImageRgb8 fromDecoded(const cv::Mat& decoded, const std::string& name) {
    cv::Mat img = decoded;
    // IMREAD_COLOR already yields 8-bit BGR (grey expanded, alpha dropped, 16-bit scaled); stay safe if not.
    if (img.depth() == CV_16U)
        img.convertTo(img, CV_8U, 1.0 / 257.0);
    else if (img.depth() != CV_8U)
        img.convertTo(img, CV_8U);
    cv::Mat rgb;
    switch (img.channels()) {
        case 1:
            cv::cvtColor(img, rgb, cv::COLOR_GRAY2RGB);
            break;
        case 3:
            cv::cvtColor(img, rgb, cv::COLOR_BGR2RGB);
            break;
        case 4:
            cv::cvtColor(img, rgb, cv::COLOR_BGRA2RGB);
            break;
        default:
            throw Error("image " + name + " has an unsupported channel count " +
                        std::to_string(img.channels()));
    }
    ImageRgb8 out;
    out.width = rgb.cols;
    out.height = rgb.rows;
    const std::size_t rowBytes = std::size_t(rgb.cols) * 3;
    out.pixels.resize(rowBytes * std::size_t(rgb.rows));
    for (int y = 0; y < rgb.rows; ++y)
        std::memcpy(out.pixels.data() + rowBytes * y, rgb.ptr<std::uint8_t>(y), rowBytes);
    return out;
}

std::string lowerExtension(const std::string& path) {
    std::string ext = fs::path(path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    return ext;
}

}  // namespace

// The formats handed to OpenCV, told by their first bytes. OpenCV would also try its other decoders
// (JPEG 2000, OpenEXR, GDAL/DICOM, ...) on anything else, and some of those abort the process on
// malformed input; images for a vision model come as one of these.
static bool knownImageFormat(const std::uint8_t* d, std::size_t n) {
    auto starts = [&](const char* magic, std::size_t len, std::size_t at = 0) {
        return n >= at + len && std::memcmp(d + at, magic, len) == 0;
    };
    return starts("\x89PNG\r\n\x1a\n", 8) || starts("\xff\xd8\xff", 3) || starts("BM", 2) ||
           (starts("RIFF", 4) && starts("WEBP", 4, 8)) || starts("II*\0", 4) || starts("MM\0*", 4) ||
           (n >= 3 && d[0] == 'P' && d[1] >= '1' && d[1] <= '6' && std::isspace(d[2]));
}

ImageRgb8 decodeImage(const std::vector<std::uint8_t>& bytes, const std::string& name) {
    if (bytes.empty()) throw Error("image " + name + " is empty (0 bytes)");
    if (!knownImageFormat(bytes.data(), bytes.size()))
        throw Error("cannot decode image " + name +
                    ": not a PNG, JPEG, BMP, WebP, TIFF or PNM file (by its first bytes)");
    if (bytes.size() > std::size_t(INT32_MAX))
        throw Error("image " + name + " is too large: " + std::to_string(bytes.size()) + " bytes");
    if (auto size = sniffSize(bytes.data(), bytes.size())) checkSize(size->width, size->height, name);

    cv::Mat decoded;
    try {
        // OpenCV 4.6's imdecode applies the EXIF orientation for IMREAD_COLOR, as imread does (checked by
        // the EXIF tests in tests/unit/test_image.cpp).
        const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1,
                             const_cast<std::uint8_t*>(bytes.data()));
        decoded = cv::imdecode(buffer, cv::IMREAD_COLOR);
    } catch (const cv::Exception& e) {
        throw Error("cannot decode image " + name + ": " + e.what());
    } catch (const std::bad_alloc&) {
        throw Error("cannot decode image " + name + ": out of memory");
    }
    if (decoded.empty())
        throw Error("cannot decode image " + name + ": not a supported image format, or the file is corrupt");
    checkSize(decoded.cols, decoded.rows, name);
    try {
        return fromDecoded(decoded, name);
    } catch (const cv::Exception& e) {
        throw Error("cannot convert image " + name + " to RGB: " + e.what());
    }
}

ImageRgb8 loadImage(const std::string& path) {
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    if (ec || !fs::exists(status)) throw Error("image file " + path + " does not exist");
    if (fs::is_directory(status)) throw Error("image path " + path + " is a folder, not a file");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot read image file " + path + ": " + std::strerror(errno));
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw Error("cannot read image file " + path + ": read error");
    if (bytes.empty()) throw Error("image file " + path + " is empty (0 bytes)");
    return decodeImage(bytes, path);
}

void saveImage(const ImageRgb8& image, const std::string& path) {
    if (image.empty()) throw Error("cannot save image " + path + ": the image is empty");
    if (image.pixels.size() != std::size_t(image.width) * std::size_t(image.height) * 3)
        throw Error("cannot save image " + path + ": pixel buffer holds " +
                    std::to_string(image.pixels.size()) + " bytes, not width×height×3");
    const std::string ext = lowerExtension(path);
    std::vector<int> params;
    if (ext == ".jpg" || ext == ".jpeg")
        params = {cv::IMWRITE_JPEG_QUALITY, 95};
    else if (ext == ".png")
        params = {cv::IMWRITE_PNG_COMPRESSION, 3};
    else if (ext != ".bmp" && ext != ".webp" && ext != ".tif" && ext != ".tiff")
        throw Error("cannot save image " + path + ": unsupported extension '" + ext +
                    "' (use .png, .jpg, .bmp, .webp or .tiff)");

    std::vector<std::uint8_t> encoded;
    try {
        const cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<std::uint8_t*>(image.pixels.data()));
        cv::Mat bgr;
        cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
        if (!cv::imencode(ext, bgr, encoded, params))
            throw Error("cannot encode image " + path + " as " + ext);
    } catch (const cv::Exception& e) {
        throw Error("cannot encode image " + path + ": " + e.what());
    }

    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw Error("cannot write image " + path + ": " + std::strerror(errno));
    const std::size_t written = std::fwrite(encoded.data(), 1, encoded.size(), f);
    const int writeErr = written == encoded.size() ? 0 : errno;
    const int closeErr = std::fclose(f) == 0 ? 0 : errno;
    if (writeErr || closeErr || written != encoded.size()) {
        const int err = writeErr ? writeErr : closeErr ? closeErr : EIO;
        std::remove(path.c_str());
        throw Error("cannot write image " + path + ": " + std::strerror(err));
    }
}

}  // namespace sdrpn::io
