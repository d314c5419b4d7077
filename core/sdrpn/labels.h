// SD-RPN pseudo-labels (sdrpn.md §2.3–2.7): the teacher's answer→image attention, reduced to a grounding
// map and a sink map over the image-token grid, turned into a three-way label map (1 foreground,
// 0 background, −100 ignore) plus the foreground box.
//
//   LabelSettings settings = LabelSettings::preset("llava-1.5-7b");     // or fromJsonText(file contents)
//   GridMap grounding = groundingMap(maps, settings);   // maps: AttentionMaps with the answer rows captured
//   GridMap sink = sinkMap(maps, settings);
//   Labels labels = makeLabels(grounding, sink, settings);
//   if (labels.status == LabelStatus::Ok) use(labels.values);   // row-major, rows × cols
//
// Plain data, no LibTorch: cheap enough (well under a millisecond per 24×24 map) for the studio to redo on
// every slider move. All functions are pure and thread-safe. Configuration errors (a layer that was not
// captured, a head out of range, a grid that does not match) throw sdrpn::Error naming the value; bad *data*
// (NaN, no signal, a box too large) is not an error but a LabelStatus with every label −100.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/models/capture.h"
#include "core/models/geometry.h"

namespace sdrpn {

// A map over an image's token grid, row-major: values[row * cols + col].
struct GridMap {
    int rows = 0;
    int cols = 0;
    std::vector<float> values;
    int queries = 0;  // query rows averaged into it (0: no rows, values are NaN)

    bool empty() const { return values.empty(); }
    float at(int row, int col) const {
        return values[std::size_t(row) * std::size_t(cols) + std::size_t(col)];
    }
};

// Heads of one decoder layer; `heads` empty means every head of the layer.
struct HeadGroup {
    int layer = 0;
    std::vector<int> heads;
    bool operator==(const HeadGroup& o) const { return layer == o.layer && heads == o.heads; }
};

// Which label recipe: LLaVA's create_pseudo_labels (§2.6) or the Qwen2.5-VL variant (§2.7).
enum class LabelVariant { Llava, Qwen };
const char* labelVariantName(LabelVariant variant);  // "llava", "qwen"

// Every threshold of the label maths, with the LLaVA-1.5-7B preset as defaults.
struct LabelSettings {
    std::string preset = "llava-1.5-7b";  // the preset it started from ("custom" once edited by hand)
    LabelVariant variant = LabelVariant::Llava;
    std::vector<HeadGroup> grounding = {{14, {24, 13, 26}}};  // mean over every (layer, head) pair
    std::vector<HeadGroup> sink = {{2, {}}};                  // empty: no sink map (all zero)
    double sinkThreshold = 1e-3;   // τs: tokens with sink ≥ τs are sinks, removed from the grounding map
    double foregroundRatio = 0.2;  // α: foreground is g' > α·max(g')
    double backgroundRatio = 0.1;  // β: background is g' < β·max(g') outside the foreground box
    double maxBoxRatio = 0.5;      // labels only when the box covers less than this share of the grid
    double minPeak = 0.0;          // Qwen: labels only when max(g') ≥ this (5e-3)
    bool dilateBox = false;        // Qwen: the box of gaussian_blur(g'·fg, 3, σ=1) > 0 (1 cell wider)
    bool maskKnownBackground = false;  // Qwen: the pad band is a sink and background (fix_res)

    // Presets (sdrpn.md §2.4, §2.6, §2.7): "llava-1.5-7b", "llava-1.5-13b", "qwen2.5-vl-7b-natural",
    // "qwen2.5-vl-7b-textual", "qwen2.5-vl-3b-natural", "qwen2.5-vl-3b-textual"; "qwen2.5-vl-7b" and
    // "qwen2.5-vl-3b" are the natural (GQA) ones. Throws sdrpn::Error listing the names.
    static LabelSettings fromPreset(const std::string& name);
    static std::vector<std::string> presetNames();

    // JSON object with the keys of toJson(); a "preset" key starts from that preset, the other keys
    // override it, keys left out keep their values. Unknown keys, wrong types and bad values throw
    // sdrpn::Error naming the key (and `source`, e.g. the file).
    static LabelSettings fromJson(const nlohmann::json& json, const std::string& source = "label settings");
    static LabelSettings fromJsonText(const std::string& text, const std::string& source = "label settings");
    nlohmann::json toJson() const;

    // Throws sdrpn::Error naming the first bad value (negative layer or head, ratios outside [0, 1], ...).
    void validate(const std::string& source = "label settings") const;
    bool operator==(const LabelSettings& o) const;
};

// The mean attention from the rows of `kind` to the first image's keys, averaged over the rows and over
// every (layer, head) pair of `groups` (sdrpn.md §2.3: output2images, then the head mean of §2.4).
// Throws when a layer was not captured, a head is out of range or the first image does not form a grid.
// No rows of that kind (the first answer token was EOS, ⚠ §2.3: the reference divides by zero) gives a map
// of NaN with queries == 0, which makeLabels turns into LabelStatus::NonFinite.
GridMap attentionToImage(const models::AttentionMaps& maps, const std::vector<HeadGroup>& groups,
                         models::QueryKind kind = models::QueryKind::Answer);
// attentionToImage(maps, settings.grounding) over the answer rows.
GridMap groundingMap(const models::AttentionMaps& maps, const LabelSettings& settings);
// attentionToImage(maps, settings.sink) over the answer rows; all zero when settings.sink is empty.
GridMap sinkMap(const models::AttentionMaps& maps, const LabelSettings& settings);

constexpr int kIgnoreLabel = -100;

enum class LabelStatus {
    Ok,           // labels hold 1 / 0 / −100
    NonFinite,    // the grounding or sink map holds NaN or ±inf
    NoSignal,     // max(g') <= 0: no foreground (the reference's box is then the whole grid)
    BoxTooLarge,  // the foreground box covers ≥ maxBoxRatio of the grid
    WeakPeak,     // Qwen: max(g') < minPeak
};
const char* labelStatusName(LabelStatus status);  // "ok", "non-finite", "no-signal", "box-too-large", ...

struct Labels {
    int rows = 0, cols = 0;
    std::vector<int> values;       // 1 / 0 / −100 per cell, row-major; all −100 unless status is Ok
    std::vector<float> grounding;  // g': the grounding map with the sink (and known-background) cells zeroed
    models::GridBox box;           // the foreground box (exclusive ends); the whole grid without foreground
    float peak = 0.0f;             // max(g')
    int foreground = 0;            // cells with g' > α·peak (whether or not the sample is kept)
    int background = 0;            // cells labelled 0 (0 unless status is Ok)
    LabelStatus status = LabelStatus::NoSignal;

    bool ok() const { return status == LabelStatus::Ok; }
};

// sdrpn.md §2.6 (LabelVariant::Llava) or §2.7 (LabelVariant::Qwen). `sink` may be empty (no sink map).
// `knownBackground` (1 = pad cell, rows × cols) is used only with settings.maskKnownBackground; when it is
// empty the setting has no effect. Throws when the maps' grids differ.
Labels makeLabels(const GridMap& grounding, const GridMap& sink, const LabelSettings& settings,
                  const std::vector<std::uint8_t>& knownBackground = {});

// The pad cells of a padded (expand2square) image: 1 where the cell shows no source pixel at all
// (the reference's get_foreground_mask, §2.7). All zero for ImageFit::Crop.
std::vector<std::uint8_t> knownBackgroundMask(const models::GridGeometry& geometry);

}  // namespace sdrpn
