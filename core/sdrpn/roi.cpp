#include "core/sdrpn/roi.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "core/result.h"
#include "core/sdrpn/grid_ops.h"
#include "core/sdrpn/settings_json.h"

namespace sdrpn {

using namespace settings_json;

const char* roiBranchName(RoiBranch branch) {
    switch (branch) {
        case RoiBranch::None:
            return "none";
        case RoiBranch::Box:
            return "bbox";
        case RoiBranch::Mask:
            return "mask";
    }
    return "?";
}

const char* componentFateName(ComponentFate fate) {
    switch (fate) {
        case ComponentFate::Kept:
            return "kept";
        case ComponentFate::Grown:
            return "grown";
        case ComponentFate::SkippedSingle:
            return "skipped-single";
        case ComponentFate::SkippedLarge:
            return "skipped-large";
    }
    return "?";
}

// ---- settings --------------------------------------------------------------------------------------------

std::vector<std::string> RoiSettings::presetNames() {
    return {"default",    "textvqa_val", "infovqa_val", "chartqa", "ocrbench",
            "docvqa_val", "vstar_bench", "pope",        "hrbench"};
}

RoiSettings RoiSettings::fromPreset(const std::string& name) {
    // sdrpn.md §4.6 (L/lmms-eval/examples/A6000/reproduce.sh, roi2stage_max_ratio = -1).
    static const std::vector<std::pair<std::string, double>> kThresholds = {
        {"default", 0.15},    {"textvqa_val", 0.15}, {"infovqa_val", 0.15},
        {"chartqa", 0.15},    {"ocrbench", 0.05},    {"docvqa_val", 0.1},
        {"vstar_bench", 0.1}, {"pope", 0.15},        {"hrbench", 0.1}};
    for (const auto& [n, thr] : kThresholds)
        if (n == name) {
            RoiSettings s;
            s.preset = name;
            s.threshold = thr;
            return s;
        }
    std::string list;
    for (const auto& n : presetNames()) list += (list.empty() ? "" : ", ") + n;
    throw Error("unknown RoI preset '" + name + "' (known: " + list + ")");
}

nlohmann::json RoiSettings::toJson() const {
    return {{"preset", preset},       {"threshold", threshold},         {"min_area", minArea},
            {"max_area", maxArea},    {"mask_box_count", maskBoxCount}, {"blur_kernel", blurKernel},
            {"blur_sigma", blurSigma}};
}

RoiSettings RoiSettings::fromJson(const nlohmann::json& j, const std::string& source) {
    checkObject(
        j, {"preset", "threshold", "min_area", "max_area", "mask_box_count", "blur_kernel", "blur_sigma"},
        source, "RoI settings");
    RoiSettings s;
    if (j.contains("preset")) {
        if (!j["preset"].is_string()) badKey(source, "preset", "must be a string");
        const std::string name = j["preset"].get<std::string>();
        if (name == "custom") {
            s.preset = name;
        } else {
            try {
                s = fromPreset(name);
            } catch (const Error& e) {
                badKey(source, "preset", std::string("is not valid: ") + e.what());
            }
        }
    }
    bool edited = false;
    auto number = [&](const char* key, double& field) {
        if (!j.contains(key)) return;
        const double v = readNumber(j, key, source);
        edited = edited || v != field;
        field = v;
    };
    auto integer = [&](const char* key, int& field) {
        if (!j.contains(key)) return;
        const int v = readInt(j, key, source);
        edited = edited || v != field;
        field = v;
    };
    number("threshold", s.threshold);
    integer("min_area", s.minArea);
    integer("max_area", s.maxArea);
    integer("mask_box_count", s.maskBoxCount);
    integer("blur_kernel", s.blurKernel);
    number("blur_sigma", s.blurSigma);
    if (edited) s.preset = "custom";
    s.validate(source);
    return s;
}

RoiSettings RoiSettings::fromJsonText(const std::string& text, const std::string& source) {
    return fromJson(parse(text, source), source);
}

void RoiSettings::validate(const std::string& source) const {
    if (!std::isfinite(threshold) || threshold < -1.0 || threshold >= 1.0)
        badKey(source, "threshold",
               "must be in [-1, 1) (negative: relative to the peak), got " + std::to_string(threshold));
    if (minArea < 1) badKey(source, "min_area", "must be at least 1, got " + std::to_string(minArea));
    if (maxArea < 1) badKey(source, "max_area", "must be at least 1, got " + std::to_string(maxArea));
    if (maskBoxCount < 1)
        badKey(source, "mask_box_count", "must be at least 1, got " + std::to_string(maskBoxCount));
    if (blurKernel < 1 || blurKernel % 2 == 0)
        badKey(source, "blur_kernel", "must be odd and positive, got " + std::to_string(blurKernel));
    if (!(blurSigma > 0) || !std::isfinite(blurSigma))
        badKey(source, "blur_sigma", "must be positive, got " + std::to_string(blurSigma));
}

bool RoiSettings::operator==(const RoiSettings& o) const {
    return preset == o.preset && threshold == o.threshold && minArea == o.minArea && maxArea == o.maxArea &&
           maskBoxCount == o.maskBoxCount && blurKernel == o.blurKernel && blurSigma == o.blurSigma;
}

// ---- post-processing
// ---------------------------------------------------------------------------------------

namespace {

models::GridBox toBox(const GridComponent& c) {
    return {c.x0, c.y0, c.x1, c.y1};
}

// get_bbox_from_noisy_map's growth of a small component, in the reference's arithmetic: centre as a float,
// w = max(3, x1 − x0 + 1) (with the exclusive x1, as written), truncation toward zero, and the far edge
// clamped to cols − 1 / rows − 1 (23), although it is exclusive.
models::GridBox growSmall(const models::GridBox& b, int rows, int cols) {
    const double xc = (b.x0 + b.x1) / 2.0, yc = (b.y0 + b.y1) / 2.0;
    const double w = std::max(3, b.x1 - b.x0 + 1), h = std::max(3, b.y1 - b.y0 + 1);
    models::GridBox g;
    g.x0 = std::max(0, int(xc - w / 2));
    g.y0 = std::max(0, int(yc - h / 2));
    g.x1 = std::min(cols - 1, int(xc + w / 2));
    g.y1 = std::min(rows - 1, int(yc + h / 2));
    return g;
}

// The threshold, in float32 as torch compares `G > thr`. A negative threshold is relative to the peak
// (get_bbox_from_noisy_map).
float resolveThreshold(const std::vector<float>& blurred, double threshold) {
    if (threshold >= 0) return float(threshold);
    float peak = -INFINITY;
    for (float g : blurred) peak = std::max(peak, g);
    return peak * float(-threshold);
}

void checkGeometryGrid(const models::GridGeometry& geometry, int rows, int cols, const char* what) {
    if (geometry.gridRows != rows || geometry.gridCols != cols)
        throw Error(std::string(what) + ": the image geometry has a " + std::to_string(geometry.gridRows) +
                    "x" + std::to_string(geometry.gridCols) + " grid but the logits are " +
                    std::to_string(rows) + "x" + std::to_string(cols));
}

// Tight box of the non-zero cells ([min col, min row, max col + 1, max row + 1], get_foreground_bbox_torch);
// empty (all zeros) when there is none.
models::GridBox tightBox(const std::vector<std::uint8_t>& mask, int rows, int cols) {
    int x0 = cols, y0 = rows, x1 = 0, y1 = 0;
    for (int row = 0; row < rows; ++row)
        for (int col = 0; col < cols; ++col)
            if (mask[std::size_t(row) * std::size_t(cols) + std::size_t(col)]) {
                x0 = std::min(x0, col);
                y0 = std::min(y0, row);
                x1 = std::max(x1, col + 1);
                y1 = std::max(y1, row + 1);
            }
    if (x1 == 0) return {};
    return {x0, y0, x1, y1};
}

// `above` inside `box` as a 0/1 float map, bilinearly resized to outRows × outCols, > 0.5.
std::vector<std::uint8_t> resizedBoxMask(const std::vector<std::uint8_t>& above, int cols,
                                         const models::GridBox& box, int outRows, int outCols) {
    const int h = box.y1 - box.y0, w = box.x1 - box.x0;
    std::vector<float> inside(std::size_t(h) * std::size_t(w));
    for (int row = 0; row < h; ++row)
        for (int col = 0; col < w; ++col)
            inside[std::size_t(row) * std::size_t(w) + std::size_t(col)] =
                above[std::size_t(box.y0 + row) * std::size_t(cols) + std::size_t(box.x0 + col)] ? 1.0f
                                                                                                 : 0.0f;
    const auto resized = resizeBilinear(inside, h, w, outRows, outCols);
    std::vector<std::uint8_t> mask(resized.size());
    for (std::size_t v = 0; v < resized.size(); ++v) mask[v] = resized[v] > 0.5f ? 1 : 0;
    return mask;
}

void noZoom(RoiResult& r, std::string reason) {
    r.branch = RoiBranch::None;
    r.gridBox = {};
    r.sourceBox = {};
    r.tokenMask.clear();
    r.roiTokens = 0;
    r.reason = std::move(reason);
}

}  // namespace

RoiResult postprocessRoi(const std::vector<float>& logits, int rows, int cols, const RoiSettings& settings,
                         const models::GridGeometry& geometry) {
    checkGrid(logits.size(), rows, cols, "RoI post-processing: logits");
    settings.validate();
    checkGeometryGrid(geometry, rows, cols, "RoI post-processing");
    const std::size_t cells = logits.size();
    RoiResult r;
    r.rows = rows;
    r.cols = cols;
    r.logits = logits;
    r.probabilities.resize(cells);
    for (std::size_t v = 0; v < cells; ++v) r.probabilities[v] = 1.0f / (1.0f + std::exp(-logits[v]));
    r.blurred = gaussianBlur(r.probabilities, rows, cols, settings.blurKernel, settings.blurSigma);

    // The reference's mask branch compares with thr as given, which for a negative thr would keep every
    // cell; here both branches use the same resolved threshold.
    const float thr = resolveThreshold(r.blurred, settings.threshold);
    r.threshold = thr;
    r.above.resize(cells);
    bool any = false;
    for (std::size_t v = 0; v < cells; ++v) {
        r.above[v] = r.blurred[v] > thr ? 1 : 0;  // NaN compares false: a NaN map never zooms
        any = any || r.above[v];
    }

    // Step A: components and the area rules.
    for (const GridComponent& c : connectedComponents(r.above, rows, cols)) {
        RoiComponent comp;
        comp.cells = toBox(c);
        comp.box = comp.cells;
        comp.area = c.area;
        if (c.area == 1) {
            comp.fate = ComponentFate::SkippedSingle;  // isolated noise or a sink
        } else if (c.area < settings.minArea) {
            comp.fate = ComponentFate::Grown;
            comp.box = growSmall(comp.cells, rows, cols);
        } else if (c.area > settings.maxArea) {
            comp.fate = ComponentFate::SkippedLarge;
        }
        if (comp.kept()) r.boxes.push_back(comp.box);
        r.components.push_back(comp);
    }

    // Step B: the branch.
    if (int(r.boxes.size()) < settings.maskBoxCount) {
        if (r.boxes.empty()) {
            noZoom(r, any ? "no component passed the area rules" : "no cell above the threshold");
            return r;
        }
        // One box (with maskBoxCount = 2): crop it and insert every token of the crop.
        r.branch = RoiBranch::Box;
        r.gridBox = r.boxes.front();
        r.tokenMask.assign(cells, 1);
    } else {
        // Mask branch: the tight box of every cell above the threshold (skipped components included), and
        // the crop tokens where the mask, resized to the crop's grid, is > 0.5.
        r.branch = RoiBranch::Mask;
        r.gridBox = tightBox(r.above, rows, cols);
        r.tokenMask = resizedBoxMask(r.above, cols, r.gridBox, rows, cols);
    }

    r.sourceBox = geometry.gridBoxToSourcePixels(r.gridBox);
    if (r.sourceBox.empty()) {
        // ⚠ sdrpn.md §4.8: where the reference makes no crop it fails (bbox_roi unassigned); here a box that
        // falls wholly in the pad band means no zoom, and the answer comes from the original sequence.
        noZoom(r, "the RoI box lies outside the source image (pad band)");
        return r;
    }
    r.roiTokens = int(std::count(r.tokenMask.begin(), r.tokenMask.end(), std::uint8_t(1)));
    if (r.roiTokens == 0) noZoom(r, "the RoI mask keeps no token of the crop");
    return r;
}

// ---- Qwen2.5-VL -------------------------------------------------------------------------------------------

std::vector<std::uint8_t> qwenSinkMask(int rows, int cols) {
    if (rows <= 0 || cols <= 0)
        throw Error("Qwen sink mask: the grid must be positive, got " + std::to_string(rows) + "x" +
                    std::to_string(cols));
    std::vector<std::uint8_t> keep(std::size_t(rows) * std::size_t(cols), 1);
    // sdrpn.md §4.7, Q/qwen_src/mm_utils.py::get_batched_sub_images: only maps larger than 768 cells, which
    // 24×24 training never saw: sink_mask[:H // 4, :1] = 0; sink_mask[:1, :W // 4] = 0.
    if (std::int64_t(rows) * cols > 768) {
        for (int row = 0; row < rows / 4; ++row) keep[std::size_t(row) * std::size_t(cols)] = 0;
        for (int col = 0; col < cols / 4; ++col) keep[std::size_t(col)] = 0;
    }
    return keep;
}

RoiResult postprocessRoiQwen(const std::vector<float>& logits, int rows, int cols,
                             const RoiSettings& settings, const models::GridGeometry& geometry) {
    checkGrid(logits.size(), rows, cols, "Qwen RoI post-processing: logits");
    settings.validate();
    checkGeometryGrid(geometry, rows, cols, "Qwen RoI post-processing");
    const std::size_t cells = logits.size();
    RoiResult r;
    r.rows = rows;
    r.cols = cols;
    r.logits = logits;
    // sigmoid(pred_roi) · sink_mask: masked cells are 0 before the blur (not −inf logits).
    const auto keep = qwenSinkMask(rows, cols);
    r.probabilities.resize(cells);
    for (std::size_t v = 0; v < cells; ++v)
        r.probabilities[v] = keep[v] ? 1.0f / (1.0f + std::exp(-logits[v])) : 0.0f;
    r.blurred = gaussianBlur(r.probabilities, rows, cols, settings.blurKernel, settings.blurSigma);
    r.threshold = resolveThreshold(r.blurred, settings.threshold);
    r.above.resize(cells);
    for (std::size_t v = 0; v < cells; ++v) r.above[v] = r.blurred[v] > r.threshold ? 1 : 0;  // NaN: 0

    const models::GridBox box = tightBox(r.above, rows, cols);
    if (box.x1 <= box.x0) {
        noZoom(r, "no cell above the threshold");
        return r;
    }
    r.branch = RoiBranch::Mask;  // always the mask style, no component analysis
    r.gridBox = box;
    r.boxes = {box};

    // Q/qwen_src/ana_utils.py::get_bbox4src with img_size = grid × 28: box · (img / feat) then
    // · (src / img), both on a float32 tensor (the Python scalars are rounded to float32), clamp, .long().
    // The geometry's cell size and scale are those factors; its offset is 0 for Qwen (kept for generality).
    const auto toSource = [](int cell, double cellSize, double scale, double offset, int limit) {
        const float px = float(cell) * float(cellSize);
        const double v = double(px * float(scale)) + offset;
        return static_cast<int>(std::clamp(v, 0.0, double(limit)));
    };
    r.sourceBox = {
        toSource(box.x0, geometry.cellWidth(), geometry.scaleX, geometry.offsetX, geometry.sourceWidth),
        toSource(box.y0, geometry.cellHeight(), geometry.scaleY, geometry.offsetY, geometry.sourceHeight),
        toSource(box.x1, geometry.cellWidth(), geometry.scaleX, geometry.offsetX, geometry.sourceWidth),
        toSource(box.y1, geometry.cellHeight(), geometry.scaleY, geometry.offsetY, geometry.sourceHeight)};
    if (r.sourceBox.empty()) {
        // A source image smaller than its grid can truncate a thin box to nothing. The reference would crop
        // an empty image, and its processor's ValueError is caught there as "no sub-image".
        noZoom(r, "the RoI box is empty in source pixels");
        return r;
    }
    return r;
}

void qwenCropTokenMask(RoiResult& roi, int cropRows, int cropCols) {
    if (cropRows <= 0 || cropCols <= 0)
        throw Error("Qwen crop token mask: the crop grid must be positive, got " + std::to_string(cropRows) +
                    "x" + std::to_string(cropCols));
    roi.tokenMask.clear();
    roi.roiTokens = 0;
    if (!roi.zoom()) return;
    const models::GridBox& b = roi.gridBox;
    if (roi.rows <= 0 || roi.cols <= 0 || roi.above.size() != std::size_t(roi.rows) * std::size_t(roi.cols) ||
        b.x0 < 0 || b.y0 < 0 || b.x1 > roi.cols || b.y1 > roi.rows || b.x1 <= b.x0 || b.y1 <= b.y0)
        throw Error("Qwen crop token mask: the RoI result is inconsistent (grid " + std::to_string(roi.rows) +
                    "x" + std::to_string(roi.cols) + ", mask of " + std::to_string(roi.above.size()) +
                    " cells, box [" + std::to_string(b.x0) + ", " + std::to_string(b.y0) + ", " +
                    std::to_string(b.x1) + ", " + std::to_string(b.y1) + "))");
    roi.tokenMask = resizedBoxMask(roi.above, roi.cols, b, cropRows, cropCols);
    // 0 tokens stays a zoom: the caller has already cropped and sized the crop block (sdrpn.md §4.7).
    roi.roiTokens = int(std::count(roi.tokenMask.begin(), roi.tokenMask.end(), std::uint8_t(1)));
}

}  // namespace sdrpn
