// LLaVA-1.5 image preprocessing: RGB8 image -> CLIP pixel values [3, 336, 336] plus the grid geometry
// (mllm_reference.md §6).
//
//   ClipImageProcessor processor;                       // LLaVA-1.5 defaults, ImageFit::Pad
//   PreprocessedImage p = processor.process(io::loadImage("photo.jpg"));
//   p.pixelValues;                                      // float32 CHW, normalised with the OpenAI CLIP
//   mean/std p.geometry.cellToSource(row, col);                  // where image token (row, col) lies on the
//   photo
//
// Resizing is Pillow's Image.resize (ImagingResample) re-implemented in plain C++: the same filters
// (bicubic a = -0.5, bilinear), support widened by the scale when downscaling, separable passes
// (horizontal, then vertical) with 22-bit fixed-point coefficients and uint8 rounding and clipping between
// the passes. Rescale and normalise follow transformers' arithmetic: float32(double(u8) · 1/255), then
// (v - mean) / std in float32.
//
// All functions are pure; a processor may be used from several threads at once. Errors throw sdrpn::Error.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "core/io/image.h"
#include "core/models/geometry.h"

namespace sdrpn::models {

enum class PilFilter { Bilinear, Bicubic };  // PIL.Image.BILINEAR (2), PIL.Image.BICUBIC (3)

// Whose arithmetic to reproduce. Both resize in two separable fixed-point passes with uint8 in between;
// they differ by at most 1 in a few resized pixels.
enum class ClipArithmetic {
    // transformers' CLIPImageProcessor with PIL (transformers 4.x; what LLaVA-1.5 and SD-RPN ran):
    // Pillow resize, centre crop (h - size) // 2, rescale then normalise.
    Pillow,
    // transformers 5's default fast CLIP processor on CPU: LibTorch's uint8 antialias kernel (int16 weights),
    // torchvision centre crop round((h - size) / 2), fused (u8 - 255·mean) / (255·std) in float32.
    TorchvisionFast,
};

// OPENAI_CLIP_MEAN / OPENAI_CLIP_STD.
inline constexpr std::array<float, 3> kClipMean = {0.48145466f, 0.4578275f, 0.40821073f};
inline constexpr std::array<float, 3> kClipStd = {0.26862954f, 0.26130258f, 0.27577711f};

struct ClipPreprocessConfig {
    ImageFit fit = ImageFit::Pad;
    int size = 336;  // shortest edge, and the square crop
    int patchSize = 14;
    PilFilter resample = PilFilter::Bicubic;
    ClipArithmetic arithmetic = ClipArithmetic::Pillow;
    double rescaleFactor = 1.0 / 255.0;
    std::array<float, 3> mean = kClipMean;
    std::array<float, 3> stdDev = kClipStd;
    // expand2square's background: tuple(int(x * 255) for x in mean) = (122, 116, 104).
    std::array<std::uint8_t, 3> padColour = {122, 116, 104};
};

// Reads a `preprocessor_config.json` (file or model folder): size.shortest_edge (or size.height),
// image_mean, image_std, rescale_factor, resample, patch_size; `fit` is Pad when the file says
// "do_pad": true or "image_aspect_ratio": "pad", else Crop. Throws naming the file and key.
ClipPreprocessConfig readClipPreprocessConfig(const std::string& pathOrDir);

struct PreprocessedImage {
    torch::Tensor pixelValues;  // float32 [3, size, size], CPU, contiguous
    GridGeometry geometry;
};

class ClipImageProcessor {
public:
    explicit ClipImageProcessor(ClipPreprocessConfig config = {});

    PreprocessedImage process(const io::ImageRgb8& image) const;
    // The uint8 size×size image the vision tower sees, before rescale and normalise.
    io::ImageRgb8 prepare(const io::ImageRgb8& image) const;
    // Rescale + normalise a prepared image to float32 CHW.
    torch::Tensor normalize(const io::ImageRgb8& prepared) const;
    GridGeometry geometry(int sourceWidth, int sourceHeight) const;

    const ClipPreprocessConfig& config() const { return m_config; }

private:
    ClipPreprocessConfig m_config;
};

// Antialiased resize of an RGB image as Pillow's Image.resize((width, height), filter) computes it, or as
// LibTorch's uint8 interpolate(antialias=True) does (ClipArithmetic::TorchvisionFast). Returns a copy when
// the size is unchanged. Throws for an empty image or a non-positive size.
io::ImageRgb8 resizeImage(const io::ImageRgb8& image, int width, int height, PilFilter filter,
                          ClipArithmetic arithmetic = ClipArithmetic::Pillow);
// PIL Image.resize((width, height), filter); SD-RPN resizes its RoI crops with PilFilter::Bilinear.
inline io::ImageRgb8 resizePil(const io::ImageRgb8& image, int width, int height, PilFilter filter) {
    return resizeImage(image, width, height, filter, ClipArithmetic::Pillow);
}

// rescale + normalise of a prepared RGB image to float32 [3, H, W], as transformers computes it for
// `arithmetic` (Pillow: float32(double(u8) · rescale), then (v - mean) / std; TorchvisionFast: mean and std
// scaled by 1/rescale, then (u8 - mean) / std). `what` names the step in the error for an empty image.
torch::Tensor normalizeImage(const io::ImageRgb8& prepared, ClipArithmetic arithmetic, double rescaleFactor,
                             const std::array<float, 3>& mean, const std::array<float, 3>& stdDev,
                             const char* what);

// LLaVA's expand2square: the image centred on a square of `background` ((S - W) // 2 and (S - H) // 2).
io::ImageRgb8 expandToSquare(const io::ImageRgb8& image, const std::array<std::uint8_t, 3>& background);

// PIL Image.crop(box): parts of the box outside the image are black (0, 0, 0).
io::ImageRgb8 cropImage(const io::ImageRgb8& image, const PixelBox& box);

}  // namespace sdrpn::models
