// SD-RPN RoI post-processing (sdrpn.md §4.2): RoI logits over the image-token grid → sigmoid → 3×3
// Gaussian blur (reflect padding, as torchvision) → threshold → 8-connected components with the area
// rules → the "bbox" branch (one box, all crop tokens) or the "mask" branch (two or more boxes: the tight
// box of every cell above the threshold, only the crop tokens inside the mask) → the crop box in source
// pixels through the image's GridGeometry. Nothing above the threshold means no zoom.
//
//   RoiSettings settings = RoiSettings::fromPreset("textvqa_val");          // threshold 0.15
//   models::GridGeometry g = models::makeGridGeometry(640, 480, models::ImageFit::Pad);
//   RoiResult roi = postprocessRoi(logits, 24, 24, settings, g);
//   if (roi.zoom()) crop(image, roi.sourceBox);   // then insert roi.roiTokens tokens (roi.tokenMask)
//
// Qwen2.5-VL (sdrpn.md §4.7) has its own, simpler path: postprocessRoiQwen (sink mask, blur, threshold,
// tight box, plain scaling; always the mask branch), then qwenCropTokenMask once the crop's grid is known:
//
//   RoiResult roi = postprocessRoiQwen(logits, rows, cols, settings, processed.geometry);
//   if (roi.zoom()) {
//       auto crop = processor.process(cropImage(image, roi.sourceBox));        // same pixel budget
//       qwenCropTokenMask(roi, crop.gridThw[1] / 2, crop.gridThw[2] / 2);      // merged crop grid
//   }
//
// Plain data, no LibTorch (well under a millisecond per 24×24 map): the studio redoes it on every
// threshold change.
// Pure and thread-safe. Bad settings or sizes throw sdrpn::Error naming the key or value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/models/geometry.h"

namespace sdrpn {

struct RoiSettings {
    std::string preset = "default";  // the preset it started from ("custom" once edited by hand)
    // roi_conf_thresh: cells with blurred probability > threshold are RoI cells; a negative value is
    // relative: > max(blurred)·|threshold|.
    double threshold = 0.15;
    int minArea = 4;  // components of 2 .. minArea−1 cells are grown to ≥ 3×3 (1-cell ones are skipped)
    int maxArea = 225;     // components of more cells are skipped (15×15)
    int maskBoxCount = 2;  // this many kept boxes or more take the mask branch (mask_bbox_num_thresh)
    int blurKernel = 3;    // odd
    double blurSigma = 1.0;

    // Presets: "default" (the model's 0.15) and the LLaVA per-benchmark thresholds of sdrpn.md §4.6:
    // textvqa_val 0.15, infovqa_val 0.15, chartqa 0.15, ocrbench 0.05, docvqa_val 0.1, vstar_bench 0.1,
    // pope 0.15, hrbench 0.1. Throws sdrpn::Error listing the names.
    static RoiSettings fromPreset(const std::string& name);
    static std::vector<std::string> presetNames();

    // As LabelSettings: a "preset" key first, other keys override, unknown keys / wrong types / bad values
    // throw naming the key and `source`.
    static RoiSettings fromJson(const nlohmann::json& json, const std::string& source = "roi settings");
    static RoiSettings fromJsonText(const std::string& text, const std::string& source = "roi settings");
    nlohmann::json toJson() const;
    void validate(const std::string& source = "roi settings") const;
    bool operator==(const RoiSettings& o) const;
};

enum class RoiBranch { None = 0, Box = 1, Mask = 2 };
const char* roiBranchName(RoiBranch branch);  // "none", "bbox", "mask"

// What the area rules did to a component.
enum class ComponentFate { Kept, Grown, SkippedSingle, SkippedLarge };
const char* componentFateName(ComponentFate fate);  // "kept", "grown", "skipped-single", "skipped-large"

struct RoiComponent {
    models::GridBox cells;  // tight box of the component (exclusive ends)
    models::GridBox box;    // the box it contributes (grown for small components); = cells otherwise
    int area = 0;
    ComponentFate fate = ComponentFate::Kept;
    bool kept() const { return fate == ComponentFate::Kept || fate == ComponentFate::Grown; }
};

struct RoiResult {
    int rows = 0, cols = 0;
    std::vector<float> logits;             // the RPN's logits, row-major
    std::vector<float> probabilities;      // sigmoid(logits)
    std::vector<float> blurred;            // gauss3(probabilities)
    float threshold = 0.0f;                // the absolute threshold used (relative ones resolved)
    std::vector<std::uint8_t> above;       // blurred > threshold
    std::vector<RoiComponent> components;  // every 8-connected component of `above`, in scan order
    std::vector<models::GridBox> boxes;    // the kept boxes (after the area rules), in the same order
    RoiBranch branch = RoiBranch::None;
    models::GridBox gridBox;     // the cropped cells (exclusive ends); empty when no zoom
    models::PixelBox sourceBox;  // the crop in source pixels (exclusive right / bottom)
    // Which tokens of the re-encoded crop (its own grid, row-major) are inserted: all for the bbox branch,
    // the resized mask for the mask branch; empty when no zoom. LLaVA: the crop grid is rows × cols; Qwen:
    // the crop's own grid, filled by qwenCropTokenMask (empty until then).
    std::vector<std::uint8_t> tokenMask;
    int roiTokens = 0;   // inserted tokens N (0 .. crop grid cells)
    std::string reason;  // why there is no zoom ("" when there is one)

    bool zoom() const { return branch != RoiBranch::None; }
};

// sdrpn.md §4.2 on a rows × cols logit map. `geometry` maps grid cells to source pixels (its grid must be
// rows × cols). The crop's token grid is taken to be rows × cols as well (the crop is resized to the
// encoder's input, which gives the same grid). Throws for bad sizes or settings.
RoiResult postprocessRoi(const std::vector<float>& logits, int rows, int cols, const RoiSettings& settings,
                         const models::GridGeometry& geometry);

// ---- Qwen2.5-VL (sdrpn.md §4.7; Q/qwen_src/mm_utils.py::get_batched_sub_images) -------------------------

// The sink mask (1 = keep), row-major rows × cols. All ones for grids of ≤ 768 cells; above that, as the
// reference (`sink_mask[:rows // 4, :1] = 0; sink_mask[:1, :cols // 4] = 0`): column 0 over rows
// [0, rows / 4) and row 0 over columns [0, cols / 4), integer division (so 2·(n/4) − 1 zeros on an n × n
// grid: 15 on 32×32). Throws sdrpn::Error for a non-positive size.
std::vector<std::uint8_t> qwenSinkMask(int rows, int cols);

// sdrpn.md §4.7 on a rows × cols logit map (the merged grid, grid_h/2 × grid_w/2):
//   probabilities = sigmoid(logits) · qwenSinkMask(rows, cols)      (the masked map: blurred = gauss3 of it)
//   blurred = gauss3(probabilities)      (settings.blurKernel / blurSigma, reflect padding, as LLaVA)
//   above = blurred > threshold          (a negative threshold is relative to the peak, as LLaVA)
//   gridBox = tight box of `above`       (no component analysis; branch Mask; `boxes` holds it alone)
//   sourceBox = Q/qwen_src/ana_utils.py::get_bbox4src: cells × the geometry's cell size (28 px for Qwen)
//               × the geometry's scale (source / resized) + its offset (0 for Qwen), in float32 as the
//               reference's tensors, clamped to the image, truncated. No pad band.
// Nothing above the threshold (or a box that truncates to nothing in source pixels) means branch None with
// a reason. `components` stays empty, and so do tokenMask / roiTokens: the crop's own grid is only known
// once the crop is preprocessed, so call qwenCropTokenMask then. RoiSettings' area and box-count keys are
// not used. `geometry`'s grid must be rows × cols (QwenImageProcessor::geometry gives that). Throws
// sdrpn::Error for bad sizes or settings. Pure and thread-safe.
RoiResult postprocessRoiQwen(const std::vector<float>& logits, int rows, int cols,
                             const RoiSettings& settings, const models::GridGeometry& geometry);

// The crop's token mask (sdrpn.md §4.7): Mc = `above` restricted to roi.gridBox (its h × w cells) as a
// 0/1 float map, bilinearly resized to cropRows × cropCols (torch F.interpolate(mode="bilinear",
// align_corners=False): half-pixel centres, edge clamping), > 0.5. Fills roi.tokenMask (cropRows·cropCols,
// row-major) and roi.roiTokens. No-op (tokenMask empty, 0 tokens) when !roi.zoom(). The branch is never
// changed: with zoom, tokenMask always has cropRows·cropCols entries, even when it keeps no token (possible
// only for a sparse mask shrunk hard, e.g. [[1,0],[0,1]] → 1×1 gives 0.5; the reference then inserts a crop
// block with every token dropped). Throws sdrpn::Error for a non-positive size (checked first, zoom or not)
// or a result whose grid, mask and box do not agree.
void qwenCropTokenMask(RoiResult& roi, int cropRows, int cropCols);

}  // namespace sdrpn
