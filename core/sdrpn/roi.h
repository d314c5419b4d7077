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
// Plain data, no LibTorch (well under a millisecond per 24×24 map): the studio redoes it on every
// threshold change.
// Pure and thread-safe. Bad settings or sizes throw sdrpn::Error naming the key or value.
#pragma once

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
    // Which tokens of the re-encoded crop (its own rows × cols grid, row-major) are inserted: all for the
    // bbox branch, the resized mask for the mask branch; empty when no zoom.
    std::vector<std::uint8_t> tokenMask;
    int roiTokens = 0;   // inserted tokens N (0 .. rows·cols)
    std::string reason;  // why there is no zoom ("" when there is one)

    bool zoom() const { return branch != RoiBranch::None; }
};

// sdrpn.md §4.2 on a rows × cols logit map. `geometry` maps grid cells to source pixels (its grid must be
// rows × cols). The crop's token grid is taken to be rows × cols as well (the crop is resized to the
// encoder's input, which gives the same grid). Throws for bad sizes or settings.
RoiResult postprocessRoi(const std::vector<float>& logits, int rows, int cols, const RoiSettings& settings,
                         const models::GridGeometry& geometry);

}  // namespace sdrpn
