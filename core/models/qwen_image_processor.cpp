#include "core/models/qwen_image_processor.h"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/models/preprocess_json.h"
#include "core/result.h"

namespace sdrpn::models {
namespace {

// Python's round(): half to even. std::nearbyint honours the current rounding mode, which is
// round-to-nearest-even unless someone changed it; pin it so the result never depends on the caller.
double roundHalfEven(double x) {
    const int saved = std::fegetround();
    if (saved != FE_TONEAREST) std::fesetround(FE_TONEAREST);
    const double r = std::nearbyint(x);
    if (saved != FE_TONEAREST) std::fesetround(saved);
    return r;
}

std::string sizeText(int height, int width) {
    return "height " + std::to_string(height) + ", width " + std::to_string(width);
}

void requireImage(const io::ImageRgb8& image, const char* what) {
    if (image.empty() || image.pixels.size() != std::size_t(image.width) * image.height * 3) {
        throw Error(std::string(what) + ": the image is empty or its pixel buffer does not match " +
                    std::to_string(image.width) + "x" + std::to_string(image.height));
    }
}

}  // namespace

std::pair<int, int> smartResize(int height, int width, int factor, std::int64_t minPixels,
                                std::int64_t maxPixels) {
    if (factor <= 0) throw Error("smart_resize: factor " + std::to_string(factor) + " must be positive");
    if (minPixels <= 0 || maxPixels < minPixels) {
        throw Error("smart_resize: min_pixels " + std::to_string(minPixels) + " and max_pixels " +
                    std::to_string(maxPixels) + " must satisfy 0 < min_pixels <= max_pixels");
    }
    if (height <= 0 || width <= 0)
        throw Error("smart_resize: " + sizeText(height, width) + " must be positive");
    if (height < factor || width < factor) {
        throw Error("smart_resize: " + sizeText(height, width) + ": both sides must be at least the factor " +
                    std::to_string(factor));
    }
    const double ratio = double(std::max(height, width)) / double(std::min(height, width));
    if (ratio > kQwenMaxAspectRatio) {
        throw Error("smart_resize: " + sizeText(height, width) + ": aspect ratio " + std::to_string(ratio) +
                    " is above 200");
    }
    const double h = height, w = width, f = factor;
    double hBar = roundHalfEven(h / f) * f;
    double wBar = roundHalfEven(w / f) * f;
    if (hBar * wBar > double(maxPixels)) {
        const double beta = std::sqrt(h * w / double(maxPixels));
        hBar = std::max(f, std::floor(h / beta / f) * f);
        wBar = std::max(f, std::floor(w / beta / f) * f);
    } else if (hBar * wBar < double(minPixels)) {
        const double beta = std::sqrt(double(minPixels) / (h * w));
        hBar = std::ceil(h * beta / f) * f;
        wBar = std::ceil(w * beta / f) * f;
    }
    return {static_cast<int>(hBar), static_cast<int>(wBar)};
}

torch::Tensor QwenPreprocessedImage::gridThwTensor() const {
    return torch::tensor({gridThw[0], gridThw[1], gridThw[2]}, torch::kInt64).view({1, 3});
}

// -------------------------------------------------------------------------------- QwenImageProcessor

QwenImageProcessor::QwenImageProcessor(QwenPreprocessConfig config) : m_config(config) {
    if (m_config.patchSize <= 0 || m_config.temporalPatchSize <= 0 || m_config.mergeSize <= 0) {
        throw Error("Qwen2-VL preprocessing: patch_size " + std::to_string(m_config.patchSize) +
                    ", temporal_patch_size " + std::to_string(m_config.temporalPatchSize) +
                    " and merge_size " + std::to_string(m_config.mergeSize) + " must be positive");
    }
    if (m_config.minPixels <= 0 || m_config.maxPixels < m_config.minPixels) {
        throw Error("Qwen2-VL preprocessing: min_pixels " + std::to_string(m_config.minPixels) +
                    " and max_pixels " + std::to_string(m_config.maxPixels) +
                    " must satisfy 0 < min_pixels <= max_pixels");
    }
    for (int c = 0; c < 3; ++c) {
        if (!(m_config.stdDev[c] != 0.0f)) throw Error("Qwen2-VL preprocessing: image_std must not be 0");
    }
}

std::pair<int, int> QwenImageProcessor::resizedSize(int sourceWidth, int sourceHeight) const {
    return smartResize(sourceHeight, sourceWidth, m_config.factor(), m_config.minPixels, m_config.maxPixels);
}

io::ImageRgb8 QwenImageProcessor::prepare(const io::ImageRgb8& image) const {
    requireImage(image, "Qwen2-VL preprocessing");
    const auto [h, w] = resizedSize(image.width, image.height);
    return resizeImage(image, w, h, m_config.resample, m_config.arithmetic);
}

torch::Tensor QwenImageProcessor::normalize(const io::ImageRgb8& prepared) const {
    return normalizeImage(prepared, m_config.arithmetic, m_config.rescaleFactor, m_config.mean,
                          m_config.stdDev, "Qwen2-VL normalisation");
}

torch::Tensor QwenImageProcessor::flattenPatches(const torch::Tensor& chw) const {
    const std::int64_t p = m_config.patchSize, m = m_config.mergeSize, T = m_config.temporalPatchSize;
    if (chw.dim() != 3 || chw.size(1) % (p * m) != 0 || chw.size(2) % (p * m) != 0) {
        throw Error("Qwen2-VL patch flattening: expected [C, H, W] with H and W multiples of " +
                    std::to_string(p * m) + ", got " + c10::str(chw.sizes()));
    }
    const std::int64_t C = chw.size(0), gh = chw.size(1) / p, gw = chw.size(2) / p;
    // transformers: (t, T, C, gh/m, m, p, gw/m, m, p) -> (t, gh/m, gw/m, m, m, C, T, p, p). The T frames
    // are copies of the one image, so expand the (C, p, p) patch along a new T axis after C.
    const torch::Tensor blocks = chw.contiguous()
                                     .view({C, gh / m, m, p, gw / m, m, p})
                                     .permute({1, 4, 2, 5, 0, 3, 6})  // (gh/m, gw/m, sh, sw, C, py, px)
                                     .unsqueeze(5)                    // (…, C, 1, py, px)
                                     .expand({gh / m, gw / m, m, m, C, T, p, p});
    return blocks.reshape({gh * gw, C * T * p * p}).contiguous();
}

GridGeometry QwenImageProcessor::geometry(int sourceWidth, int sourceHeight) const {
    const auto [h, w] = resizedSize(sourceWidth, sourceHeight);
    const int cell = m_config.factor();
    GridGeometry g;
    g.fit = ImageFit::Crop;  // an affine map with no pad band; the crop is empty
    g.sourceWidth = sourceWidth;
    g.sourceHeight = sourceHeight;
    g.processedWidth = g.resizedWidth = w;
    g.processedHeight = g.resizedHeight = h;
    g.gridRows = h / cell;
    g.gridCols = w / cell;
    g.scaleX = double(sourceWidth) / w;
    g.scaleY = double(sourceHeight) / h;
    return g;
}

QwenPreprocessedImage QwenImageProcessor::process(const io::ImageRgb8& image) const {
    const io::ImageRgb8 prepared = prepare(image);
    QwenPreprocessedImage out;
    out.pixelValues = flattenPatches(normalize(prepared));
    out.resizedWidth = prepared.width;
    out.resizedHeight = prepared.height;
    out.gridThw = {1, prepared.height / m_config.patchSize, prepared.width / m_config.patchSize};
    out.numImageTokens = out.numPatches() / (std::int64_t(m_config.mergeSize) * m_config.mergeSize);
    out.geometry = geometry(image.width, image.height);
    return out;
}

// ----------------------------------------------------------------------------------- config reading

QwenPreprocessConfig readQwenPreprocessConfig(const std::string& pathOrDir) {
    auto object = preprocess_json::readObject(pathOrDir);
    nlohmann::json& j = object.first;
    const std::string& file = object.second;
    QwenPreprocessConfig cfg;
    namespace pj = preprocess_json;
    // A pixel budget beyond 4 × the default (51 M pixels, 65 536 merged tokens) is refused rather than
    // allocated; so is a patch or merge size no vision tower has.
    const auto pixels = [&](const nlohmann::json& v, const char* key) {
        return pj::boundedInt(v, file, key, 1, 4 * kQwenMaxPixels);
    };
    try {
        if (j.contains("size") && j["size"].is_object()) {
            const auto& s = j["size"];
            if (s.contains("shortest_edge")) cfg.minPixels = pixels(s["shortest_edge"], "size.shortest_edge");
            if (s.contains("longest_edge")) cfg.maxPixels = pixels(s["longest_edge"], "size.longest_edge");
        }
        if (j.contains("min_pixels") && !j["min_pixels"].is_null())
            cfg.minPixels = pixels(j["min_pixels"], "min_pixels");
        if (j.contains("max_pixels") && !j["max_pixels"].is_null())
            cfg.maxPixels = pixels(j["max_pixels"], "max_pixels");
        if (cfg.maxPixels < cfg.minPixels) {
            throw Error(file + ": max_pixels " + std::to_string(cfg.maxPixels) + " is below min_pixels " +
                        std::to_string(cfg.minPixels));
        }
        if (j.contains("patch_size"))
            cfg.patchSize = int(pj::boundedInt(j["patch_size"], file, "patch_size", 1, 64));
        if (j.contains("temporal_patch_size"))
            cfg.temporalPatchSize =
                int(pj::boundedInt(j["temporal_patch_size"], file, "temporal_patch_size", 1, 16));
        if (j.contains("merge_size"))
            cfg.mergeSize = int(pj::boundedInt(j["merge_size"], file, "merge_size", 1, 16));
        if (j.contains("image_mean"))
            cfg.mean = pj::channelTriple(j["image_mean"], file, "image_mean", false);
        if (j.contains("image_std")) cfg.stdDev = pj::channelTriple(j["image_std"], file, "image_std", true);
        if (j.contains("rescale_factor"))
            cfg.rescaleFactor = pj::boundedNumber(j["rescale_factor"], file, "rescale_factor", 1e-6, 1.0);
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
    } catch (const nlohmann::json::exception& e) {
        throw Error(file + ": " + e.what());
    }
    return cfg;
}

}  // namespace sdrpn::models
