// Qwen2-VL / Qwen2.5-VL image preprocessing: RGB8 image -> patch rows `pixel_values` [gh·gw, 1176] plus
// `image_grid_thw` (mllm_reference.md §9).
//
//   QwenImageProcessor processor(readQwenPreprocessConfig("/models/Qwen2.5-VL-7B-Instruct"));
//   QwenPreprocessedImage p = processor.process(io::loadImage("photo.jpg"));
//   p.pixelValues;          // float32 [gh·gw, C·T·14·14], rows in 2×2 merge-block order
//   p.gridThw;              // {1, gh, gw}; p.gridThwTensor() is int64 [1, 3]
//   p.numImageTokens;       // gh·gw / 4: how many <|image_pad|> the prompt needs
//   p.geometry.cellToSource(row, col);   // where merged image token (row, col) lies on the photo
//
// Steps: smart_resize picks (h', w'), multiples of patch·merge = 28 with h'·w' within [min_pixels,
// max_pixels]; the image is resized to w'×h' bicubic (Pillow or LibTorch's uint8 antialias kernel, the
// resizers of clip_image_processor.h), rescaled by 1/255 and normalised with the config's mean/std, then
// cut into patch×patch patches. The still image is repeated to fill temporal_patch_size frames. Row order
// is merge-block-major: block (bh, bw) row-major, then the sub-position (sh, sw) inside the block; column
// order is (C, T, py, px).
//
// All functions are pure; a processor may be used from several threads at once. Errors throw sdrpn::Error.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include <torch/torch.h>

#include "core/io/image.h"
#include "core/models/clip_image_processor.h"
#include "core/models/geometry.h"

namespace sdrpn::models {

// Qwen2-VL's defaults: 56·56 and 16384·28·28 pixels; images with max/min side above 200 are refused.
inline constexpr std::int64_t kQwenMinPixels = 56 * 56;
inline constexpr std::int64_t kQwenMaxPixels = 16384 * 28 * 28;
inline constexpr double kQwenMaxAspectRatio = 200.0;

// transformers' Qwen2-VL smart_resize (mllm_reference.md §9): returns (height, width), both multiples of
// `factor`, with Python's round-half-to-even for the nearest multiple, then floor(·/β) when above
// max_pixels (at least one factor) or ceil(·β) when below min_pixels. Throws sdrpn::Error for a side
// smaller than `factor` (transformers 4.x: "height:… or width:… must be larger than factor:…"), an
// aspect ratio max/min above 200, or non-positive arguments.
std::pair<int, int> smartResize(int height, int width, int factor = 28,
                                std::int64_t minPixels = kQwenMinPixels,
                                std::int64_t maxPixels = kQwenMaxPixels);

struct QwenPreprocessConfig {
    std::int64_t minPixels = kQwenMinPixels;  // size.shortest_edge, or min_pixels
    std::int64_t maxPixels = kQwenMaxPixels;  // size.longest_edge, or max_pixels
    int patchSize = 14;
    int temporalPatchSize = 2;
    int mergeSize = 2;
    PilFilter resample = PilFilter::Bicubic;
    // transformers 5's default fast processor resizes with LibTorch's uint8 antialias kernel and fuses
    // rescale and normalise ((u8 - 255·mean) / (255·std)); transformers 4.x with PIL: Pillow resize,
    // float32(u8 · 1/255), then (v - mean) / std. They differ by one uint8 step in a few resized pixels.
    ClipArithmetic arithmetic = ClipArithmetic::TorchvisionFast;
    double rescaleFactor = 1.0 / 255.0;
    std::array<float, 3> mean = kClipMean;
    std::array<float, 3> stdDev = kClipStd;

    int factor() const { return patchSize * mergeSize; }  // 28
};

// Reads a Qwen2-VL `preprocessor_config.json` (file or model folder): size.shortest_edge /
// size.longest_edge (transformers ≥ 4.5x) and the older top-level min_pixels / max_pixels (which win when
// both are present, as in transformers), patch_size, temporal_patch_size, merge_size, image_mean,
// image_std, rescale_factor, resample (2 or 3). Throws naming the file and key.
QwenPreprocessConfig readQwenPreprocessConfig(const std::string& pathOrDir);

struct QwenPreprocessedImage {
    torch::Tensor pixelValues;                // float32 [t·gh·gw, C·T·patch·patch], CPU, contiguous
    std::array<std::int64_t, 3> gridThw{};    // (t, gh, gw) in patches; t = 1 for an image
    int resizedWidth = 0, resizedHeight = 0;  // smart_resize's (w', h') = (gw·patch, gh·patch)
    std::int64_t numImageTokens = 0;          // t·gh·gw / merge²: the merged tokens the LLM sees
    // The merged token grid (gh/merge rows × gw/merge cols, merge·patch = 28 px cells) on the source image;
    // image token j is cell (j / gridCols, j % gridCols). fit is Crop with no crop: the whole image is seen.
    GridGeometry geometry;

    std::int64_t numPatches() const { return gridThw[0] * gridThw[1] * gridThw[2]; }
    torch::Tensor gridThwTensor() const;  // int64 [1, 3], as image_grid_thw
};

class QwenImageProcessor {
public:
    explicit QwenImageProcessor(QwenPreprocessConfig config = {});

    QwenPreprocessedImage process(const io::ImageRgb8& image) const;
    // smart_resize for this config: (height, width).
    std::pair<int, int> resizedSize(int sourceWidth, int sourceHeight) const;
    // The uint8 w'×h' image the vision tower sees, before rescale and normalise.
    io::ImageRgb8 prepare(const io::ImageRgb8& image) const;
    // Rescale + normalise a prepared image to float32 CHW [3, h', w'].
    torch::Tensor normalize(const io::ImageRgb8& prepared) const;
    // CHW [C, h, w] (h, w multiples of patch·merge) -> patch rows [gh·gw, C·T·patch·patch].
    torch::Tensor flattenPatches(const torch::Tensor& chw) const;
    GridGeometry geometry(int sourceWidth, int sourceHeight) const;

    const QwenPreprocessConfig& config() const { return m_config; }

private:
    QwenPreprocessConfig m_config;
};

}  // namespace sdrpn::models
