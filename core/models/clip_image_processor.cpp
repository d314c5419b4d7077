#include "core/models/clip_image_processor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/models/preprocess_json.h"
#include "core/result.h"

namespace sdrpn::models {
namespace {

// The largest square side a preprocessor_config.json may ask for (CLIP uses 224 or 336, SigLIP 384).
constexpr std::int64_t kClipMaxSize = 4096;

// ------------------------------------------------ Pillow's ImagingResample (Resample.c) and its LibTorch
// port

// Pillow: 22-bit coefficients. LibTorch's uint8 antialias kernel (UpSampleKernel.cpp, ported from
// Pillow-SIMD) picks the largest precision that keeps the weights in int16, and spells the cubic differently.
constexpr int kPillowPrecisionBits = 32 - 8 - 2;

double pillowBicubic(double x) {
    constexpr double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

double torchBicubic(double x) {
    constexpr double a = -0.5;
    x = std::abs(x);
    if (x < 1.0) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2.0) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0.0;
}

double bilinear(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

struct Coefficients {
    int ksize = 0;
    int precision = kPillowPrecisionBits;
    std::vector<int> bounds;  // per output pixel: first input index, count
    std::vector<std::int32_t> kk;
};

// Pillow precompute_coeffs + normalize_coeffs_8bpc; LibTorch _compute_index_ranges_int16_weights.
Coefficients precompute(int inSize, int outSize, PilFilter filter, ClipArithmetic arithmetic) {
    const bool torchKernel = arithmetic == ClipArithmetic::TorchvisionFast;
    const double filterSupport = filter == PilFilter::Bicubic ? 2.0 : 1.0;
    const auto kernel =
        filter == PilFilter::Bilinear ? bilinear : (torchKernel ? torchBicubic : pillowBicubic);
    const double scale = double(inSize) / outSize;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = filterSupport * filterscale;
    Coefficients c;
    c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    c.bounds.resize(std::size_t(outSize) * 2);
    std::vector<double> weights(std::size_t(outSize) * c.ksize, 0.0);
    double maxWeight = 0.0;
    for (int xx = 0; xx < outSize; ++xx) {
        const double center = (xx + 0.5) * scale;
        const double ss = 1.0 / filterscale;
        int xmin = static_cast<int>(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = static_cast<int>(center + support + 0.5);
        if (xmax > inSize) xmax = inSize;
        xmax = std::min(xmax - xmin, c.ksize);
        double* k = &weights[std::size_t(xx) * c.ksize];
        double ww = 0.0;
        for (int x = 0; x < xmax; ++x) {
            k[x] = kernel((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (int x = 0; x < xmax; ++x) {
            if (ww != 0.0) k[x] /= ww;
            maxWeight = std::max(maxWeight, k[x]);
        }
        c.bounds[std::size_t(xx) * 2] = xmin;
        c.bounds[std::size_t(xx) * 2 + 1] = xmax;
    }
    if (torchKernel) {
        c.precision = 0;
        for (; c.precision < 22; ++c.precision) {
            const int next = static_cast<int>(0.5 + maxWeight * (1 << (c.precision + 1)));
            if (next >= (1 << 15)) break;
        }
    }
    c.kk.resize(weights.size());
    for (std::size_t i = 0; i < weights.size(); ++i) {
        const double v = weights[i] * (1 << c.precision);
        c.kk[i] = v < 0 ? static_cast<std::int32_t>(-0.5 + v) : static_cast<std::int32_t>(0.5 + v);
    }
    return c;
}

inline std::uint8_t clip8(std::int64_t in, int precision) {
    if (in >= (std::int64_t(1) << precision << 8)) return 255;
    if (in <= 0) return 0;
    return static_cast<std::uint8_t>(in >> precision);
}

io::ImageRgb8 resampleHorizontal(const io::ImageRgb8& in, int outWidth, const Coefficients& c) {
    io::ImageRgb8 out;
    out.width = outWidth;
    out.height = in.height;
    out.pixels.resize(std::size_t(outWidth) * in.height * 3);
    for (int y = 0; y < in.height; ++y) {
        const std::uint8_t* row = in.at(0, y);
        for (int xx = 0; xx < outWidth; ++xx) {
            const int xmin = c.bounds[std::size_t(xx) * 2], count = c.bounds[std::size_t(xx) * 2 + 1];
            const std::int32_t* k = &c.kk[std::size_t(xx) * c.ksize];
            std::int64_t s0 = std::int64_t(1) << (c.precision - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < count; ++x) {
                const std::uint8_t* p = row + std::size_t(x + xmin) * 3;
                s0 += p[0] * std::int64_t(k[x]);
                s1 += p[1] * std::int64_t(k[x]);
                s2 += p[2] * std::int64_t(k[x]);
            }
            std::uint8_t* o = out.at(xx, y);
            o[0] = clip8(s0, c.precision);
            o[1] = clip8(s1, c.precision);
            o[2] = clip8(s2, c.precision);
        }
    }
    return out;
}

io::ImageRgb8 resampleVertical(const io::ImageRgb8& in, int outHeight, const Coefficients& c) {
    io::ImageRgb8 out;
    out.width = in.width;
    out.height = outHeight;
    out.pixels.resize(std::size_t(in.width) * outHeight * 3);
    for (int yy = 0; yy < outHeight; ++yy) {
        const int ymin = c.bounds[std::size_t(yy) * 2], count = c.bounds[std::size_t(yy) * 2 + 1];
        const std::int32_t* k = &c.kk[std::size_t(yy) * c.ksize];
        for (int x = 0; x < in.width; ++x) {
            std::int64_t s0 = std::int64_t(1) << (c.precision - 1), s1 = s0, s2 = s0;
            for (int y = 0; y < count; ++y) {
                const std::uint8_t* p = in.at(x, y + ymin);
                s0 += p[0] * std::int64_t(k[y]);
                s1 += p[1] * std::int64_t(k[y]);
                s2 += p[2] * std::int64_t(k[y]);
            }
            std::uint8_t* o = out.at(x, yy);
            o[0] = clip8(s0, c.precision);
            o[1] = clip8(s1, c.precision);
            o[2] = clip8(s2, c.precision);
        }
    }
    return out;
}

void requireImage(const io::ImageRgb8& image, const char* what) {
    if (image.empty() || image.pixels.size() != std::size_t(image.width) * image.height * 3) {
        throw Error(std::string(what) + ": the image is empty or its pixel buffer does not match " +
                    std::to_string(image.width) + "x" + std::to_string(image.height));
    }
}

}  // namespace

io::ImageRgb8 resizeImage(const io::ImageRgb8& image, int width, int height, PilFilter filter,
                          ClipArithmetic arithmetic) {
    requireImage(image, "resize");
    if (width <= 0 || height <= 0) {
        throw Error("resize to " + std::to_string(width) + "x" + std::to_string(height) +
                    ": size must be positive");
    }
    if (width == image.width && height == image.height) return image;  // PIL returns a copy
    // ImagingResampleInner: horizontal pass first (when the width changes), then vertical.
    io::ImageRgb8 current = image;
    if (width != image.width) {
        current = resampleHorizontal(current, width, precompute(image.width, width, filter, arithmetic));
    }
    if (height != image.height) {
        current = resampleVertical(current, height, precompute(image.height, height, filter, arithmetic));
    }
    return current;
}

io::ImageRgb8 expandToSquare(const io::ImageRgb8& image, const std::array<std::uint8_t, 3>& background) {
    requireImage(image, "expand to square");
    if (image.width == image.height) return image;
    const int side = std::max(image.width, image.height);
    io::ImageRgb8 out;
    out.width = out.height = side;
    out.pixels.resize(std::size_t(side) * side * 3);
    for (std::size_t i = 0; i < out.pixels.size(); i += 3) std::memcpy(&out.pixels[i], background.data(), 3);
    const int left = (side - image.width) / 2, top = (side - image.height) / 2;
    for (int y = 0; y < image.height; ++y) {
        std::memcpy(out.at(left, top + y), image.at(0, y), std::size_t(image.width) * 3);
    }
    return out;
}

io::ImageRgb8 cropImage(const io::ImageRgb8& image, const PixelBox& box) {
    requireImage(image, "crop");
    if (box.empty()) {
        throw Error("crop box (" + std::to_string(box.x0) + ", " + std::to_string(box.y0) + ", " +
                    std::to_string(box.x1) + ", " + std::to_string(box.y1) + ") is empty");
    }
    io::ImageRgb8 out;
    out.width = box.width();
    out.height = box.height();
    out.pixels.assign(std::size_t(out.width) * out.height * 3, 0);
    const int x0 = std::max(box.x0, 0), x1 = std::min(box.x1, image.width);
    if (x1 <= x0) return out;
    for (int y = std::max(box.y0, 0); y < std::min(box.y1, image.height); ++y) {
        std::memcpy(out.at(x0 - box.x0, y - box.y0), image.at(x0, y), std::size_t(x1 - x0) * 3);
    }
    return out;
}

// -------------------------------------------------------------------------------- ClipImageProcessor

ClipImageProcessor::ClipImageProcessor(ClipPreprocessConfig config) : m_config(config) {
    if (m_config.size <= 0 || m_config.patchSize <= 0 || m_config.size % m_config.patchSize != 0) {
        throw Error("CLIP preprocessing: size " + std::to_string(m_config.size) +
                    " is not a positive multiple of the patch size " + std::to_string(m_config.patchSize));
    }
}

GridGeometry ClipImageProcessor::geometry(int sourceWidth, int sourceHeight) const {
    return makeGridGeometry(sourceWidth, sourceHeight, m_config.fit, m_config.size, m_config.patchSize,
                            m_config.arithmetic == ClipArithmetic::TorchvisionFast ? CenterCrop::RoundHalfEven
                                                                                   : CenterCrop::Floor);
}

io::ImageRgb8 ClipImageProcessor::prepare(const io::ImageRgb8& image) const {
    requireImage(image, "CLIP preprocessing");
    const int size = m_config.size;
    if (m_config.fit == ImageFit::Pad) {
        // mllm_reference.md §6: expand2square, then the shortest-edge resize of a square (the crop is a
        // no-op).
        return resizeImage(expandToSquare(image, m_config.padColour), size, size, m_config.resample,
                           m_config.arithmetic);
    }
    const auto [rw, rh] = shortestEdgeResize(image.width, image.height, size);
    const io::ImageRgb8 resized = resizeImage(image, rw, rh, m_config.resample, m_config.arithmetic);
    const GridGeometry g = geometry(image.width, image.height);
    return cropImage(resized, {g.cropLeft, g.cropTop, g.cropLeft + size, g.cropTop + size});
}

torch::Tensor ClipImageProcessor::normalize(const io::ImageRgb8& prepared) const {
    return normalizeImage(prepared, m_config.arithmetic, m_config.rescaleFactor, m_config.mean,
                          m_config.stdDev, "CLIP normalisation");
}

torch::Tensor normalizeImage(const io::ImageRgb8& prepared, ClipArithmetic arithmetic, double rescaleFactor,
                             const std::array<float, 3>& meanIn, const std::array<float, 3>& stdIn,
                             const char* what) {
    requireImage(prepared, what);
    const int w = prepared.width, h = prepared.height;
    auto out = torch::empty({3, h, w}, torch::kFloat32);
    float* dst = out.data_ptr<float>();
    // transformers rescale (float64 multiply, cast to float32), then normalize in float32; one lookup per
    // channel and byte value gives the same numbers.
    std::array<std::array<float, 256>, 3> lut{};
    for (int c = 0; c < 3; ++c) {
        if (arithmetic == ClipArithmetic::TorchvisionFast) {
            // transformers' _fuse_mean_std_and_rescale_factor: mean and std scaled by 1/rescale in float32.
            const auto inverse = static_cast<float>(1.0 / rescaleFactor);
            const float mean = meanIn[c] * inverse, stdDev = stdIn[c] * inverse;
            for (int v = 0; v < 256; ++v) lut[c][v] = (static_cast<float>(v) - mean) / stdDev;
        } else {
            for (int v = 0; v < 256; ++v) {
                const float scaled = static_cast<float>(double(v) * rescaleFactor);
                lut[c][v] = (scaled - meanIn[c]) / stdIn[c];
            }
        }
    }
    const std::size_t plane = std::size_t(w) * h;
    for (std::size_t i = 0; i < plane; ++i) {
        const std::uint8_t* p = &prepared.pixels[i * 3];
        dst[i] = lut[0][p[0]];
        dst[plane + i] = lut[1][p[1]];
        dst[2 * plane + i] = lut[2][p[2]];
    }
    return out;
}

PreprocessedImage ClipImageProcessor::process(const io::ImageRgb8& image) const {
    PreprocessedImage out;
    out.pixelValues = normalize(prepare(image));
    out.geometry = geometry(image.width, image.height);
    return out;
}

// ----------------------------------------------------------------------------------- config reading

ClipPreprocessConfig readClipPreprocessConfig(const std::string& pathOrDir) {
    auto object = preprocess_json::readObject(pathOrDir);
    nlohmann::json& j = object.first;
    const std::string& file = object.second;
    ClipPreprocessConfig cfg;
    cfg.fit = ImageFit::Crop;
    namespace pj = preprocess_json;
    try {
        if (j.contains("size")) {
            const auto& s = j["size"];
            if (s.is_number())
                cfg.size = int(pj::boundedInt(s, file, "size", 1, kClipMaxSize));
            else if (s.is_object() && s.contains("shortest_edge"))
                cfg.size =
                    int(pj::boundedInt(s["shortest_edge"], file, "size.shortest_edge", 1, kClipMaxSize));
            else if (s.is_object() && s.contains("height"))
                cfg.size = int(pj::boundedInt(s["height"], file, "size.height", 1, kClipMaxSize));
        }
        if (j.contains("crop_size") && j["crop_size"].is_object() && j["crop_size"].contains("height")) {
            const auto crop =
                pj::boundedInt(j["crop_size"]["height"], file, "crop_size.height", 1, kClipMaxSize);
            if (crop != cfg.size) {
                throw Error(file + ": crop_size " + std::to_string(crop) + " differs from size " +
                            std::to_string(cfg.size) +
                            " (only square LLaVA-style preprocessing is supported)");
            }
        }
        if (j.contains("image_mean"))
            cfg.mean = pj::channelTriple(j["image_mean"], file, "image_mean", false);
        if (j.contains("image_std")) cfg.stdDev = pj::channelTriple(j["image_std"], file, "image_std", true);
        if (j.contains("rescale_factor"))
            cfg.rescaleFactor = pj::boundedNumber(j["rescale_factor"], file, "rescale_factor", 1e-6, 1.0);
        if (j.contains("patch_size") && j["patch_size"].is_number())
            cfg.patchSize = int(pj::boundedInt(j["patch_size"], file, "patch_size", 1, cfg.size));
        if (j.contains("resample")) {
            const auto r = pj::boundedInt(j["resample"], file, "resample", 0, 5);
            if (r == 2)
                cfg.resample = PilFilter::Bilinear;
            else if (r == 3)
                cfg.resample = PilFilter::Bicubic;
            else
                throw Error(file + ": resample " + std::to_string(r) +
                            " is not supported (2 bilinear, 3 bicubic)");
        }
        const auto pad = j.find("do_pad");
        const auto ratio = j.find("image_aspect_ratio");
        if ((pad != j.end() && pad->is_boolean() && pad->get<bool>()) ||
            (ratio != j.end() && ratio->is_string() && ratio->get<std::string>() == "pad"))
            cfg.fit = ImageFit::Pad;
    } catch (const nlohmann::json::exception& e) {
        throw Error(file + ": " + e.what());
    }
    for (int c = 0; c < 3; ++c) {
        cfg.padColour[c] = static_cast<std::uint8_t>(static_cast<int>(cfg.mean[c] * 255.0));
    }
    return cfg;
}

}  // namespace sdrpn::models
