#include "core/sdrpn/labels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/result.h"
#include "core/sdrpn/grid_ops.h"
#include "core/sdrpn/settings_json.h"

namespace sdrpn {

using namespace settings_json;

const char* labelVariantName(LabelVariant variant) {
    return variant == LabelVariant::Qwen ? "qwen" : "llava";
}

const char* labelStatusName(LabelStatus status) {
    switch (status) {
        case LabelStatus::Ok:
            return "ok";
        case LabelStatus::NonFinite:
            return "non-finite";
        case LabelStatus::NoSignal:
            return "no-signal";
        case LabelStatus::BoxTooLarge:
            return "box-too-large";
        case LabelStatus::WeakPeak:
            return "weak-peak";
    }
    return "?";
}

// ---- settings --------------------------------------------------------------------------------------------

namespace {

LabelSettings qwenPreset(const std::string& name, std::vector<HeadGroup> grounding,
                         std::vector<HeadGroup> sink) {
    // sdrpn.md §2.7: τs = 1e-2, the pad band masked (fix_res), the box dilated by the blur, peak ≥ 5e-3.
    LabelSettings s;
    s.preset = name;
    s.variant = LabelVariant::Qwen;
    s.grounding = std::move(grounding);
    s.sink = std::move(sink);
    s.sinkThreshold = 1e-2;
    s.minPeak = 5e-3;
    s.dilateBox = true;
    s.maskKnownBackground = true;
    return s;
}

}  // namespace

std::vector<std::string> LabelSettings::presetNames() {
    return {"llava-1.5-7b",          "llava-1.5-13b",         "qwen2.5-vl-7b",
            "qwen2.5-vl-7b-natural", "qwen2.5-vl-7b-textual", "qwen2.5-vl-3b",
            "qwen2.5-vl-3b-natural", "qwen2.5-vl-3b-textual", "demo"};
}

LabelSettings LabelSettings::fromPreset(const std::string& name) {
    // sdrpn.md §2.4. The Qwen "natural" heads were meant for GQA and the "textual" ones for OCR-VQA (⚠ both
    // released .sh files run the textual script, so which heads made the released GQA labels is not
    // certain); the bare model names pick the natural heads, which come with a sink layer.
    if (name == "llava-1.5-7b") return LabelSettings{};
    if (name == "llava-1.5-13b") {
        LabelSettings s;
        s.preset = name;
        s.grounding = {{16, {2, 21, 30}}, {15, {2}}, {13, {21, 23, 26}}};
        s.sink = {{16, {17, 22}}};
        return s;
    }
    if (name == "qwen2.5-vl-7b" || name == "qwen2.5-vl-7b-natural")
        return qwenPreset(name, {{16, {1, 7, 17}}, {19, {17, 20}}}, {{9, {4, 22}}});
    if (name == "qwen2.5-vl-7b-textual") return qwenPreset(name, {{22, {1, 4}}, {23, {6, 11}}}, {});
    if (name == "qwen2.5-vl-3b" || name == "qwen2.5-vl-3b-natural")
        return qwenPreset(name, {{21, {9, 11}}, {22, {0, 7}}}, {{8, {1, 13}}});
    if (name == "qwen2.5-vl-3b-textual") return qwenPreset(name, {{20, {1, 4}}, {22, {14}}}, {});
    if (name == "demo") {
        // The bundled demo model (8 layers, 8 heads, random weights): the LLaVA recipe on the head mean of
        // layer 3, the input of its default twig (K = 4), as layer 14 is for K = 15.
        LabelSettings s;
        s.preset = name;
        s.grounding = {{3, {}}};
        s.sink = {};              // its random heads spread no sink pattern worth removing
        s.foregroundRatio = 0.7;  // its peaks are single cells: keep the top of them
        s.backgroundRatio = 0.2;
        return s;
    }
    std::string list;
    for (const auto& n : presetNames()) list += (list.empty() ? "" : ", ") + n;
    throw Error("unknown label preset '" + name + "' (known: " + list + ")");
}

namespace {

nlohmann::json groupsToJson(const std::vector<HeadGroup>& groups) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& g : groups) out.push_back({{"layer", g.layer}, {"heads", g.heads}});
    return out;
}

int readIndex(const nlohmann::json& v, const std::string& key, const std::string& source) {
    if (!v.is_number_integer()) badKey(source, key, "must be an integer, got " + v.dump());
    const auto i = v.get<std::int64_t>();
    if (i < 0 || i > 100000) badKey(source, key, "must be a non-negative index, got " + v.dump());
    return int(i);
}

std::vector<HeadGroup> readGroups(const nlohmann::json& j, const std::string& key,
                                  const std::string& source) {
    const auto& v = j.at(key);
    if (!v.is_array()) badKey(source, key, "must be a list of {\"layer\": L, \"heads\": [...]}");
    std::vector<HeadGroup> out;
    for (std::size_t i = 0; i < v.size(); ++i) {
        const std::string where = key + "[" + std::to_string(i) + "]";
        const auto& g = v[i];
        if (!g.is_object()) badKey(source, where, "must be an object {\"layer\": L, \"heads\": [...]}");
        HeadGroup group;
        for (auto it = g.begin(); it != g.end(); ++it)
            if (it.key() != "layer" && it.key() != "heads")
                badKey(source, where + "." + it.key(), "is not known (expected layer, heads)");
        if (!g.contains("layer")) badKey(source, where + ".layer", "is missing");
        group.layer = readIndex(g["layer"], where + ".layer", source);
        if (g.contains("heads")) {
            const auto& h = g["heads"];
            if (!h.is_array()) badKey(source, where + ".heads", "must be a list of head indices ([] = all)");
            for (std::size_t k = 0; k < h.size(); ++k)
                group.heads.push_back(readIndex(h[k], where + ".heads[" + std::to_string(k) + "]", source));
        }
        out.push_back(std::move(group));
    }
    return out;
}

}  // namespace

nlohmann::json LabelSettings::toJson() const {
    return {{"preset", preset},
            {"variant", labelVariantName(variant)},
            {"grounding", groupsToJson(grounding)},
            {"sink", groupsToJson(sink)},
            {"sink_threshold", sinkThreshold},
            {"foreground_ratio", foregroundRatio},
            {"background_ratio", backgroundRatio},
            {"max_box_ratio", maxBoxRatio},
            {"min_peak", minPeak},
            {"dilate_box", dilateBox},
            {"mask_known_background", maskKnownBackground}};
}

LabelSettings LabelSettings::fromJson(const nlohmann::json& j, const std::string& source) {
    checkObject(j,
                {"preset", "variant", "grounding", "sink", "sink_threshold", "foreground_ratio",
                 "background_ratio", "max_box_ratio", "min_peak", "dilate_box", "mask_known_background"},
                source, "label settings");
    LabelSettings s;
    bool edited = false;
    if (j.contains("preset")) {
        if (!j["preset"].is_string()) badKey(source, "preset", "must be a string");
        const std::string name = j["preset"].get<std::string>();
        if (name != "custom") {
            try {
                s = fromPreset(name);
            } catch (const Error& e) {
                badKey(source, "preset", std::string("is not valid: ") + e.what());
            }
        } else {
            s.preset = "custom";
        }
    }
    auto differs = [&](auto before, auto after) { edited = edited || !(before == after); };
    if (j.contains("variant")) {
        if (!j["variant"].is_string()) badKey(source, "variant", "must be \"llava\" or \"qwen\"");
        const std::string v = j["variant"].get<std::string>();
        if (v != "llava" && v != "qwen")
            badKey(source, "variant", "must be \"llava\" or \"qwen\", got '" + v + "'");
        const auto variant = v == "qwen" ? LabelVariant::Qwen : LabelVariant::Llava;
        differs(s.variant, variant);
        s.variant = variant;
    }
    auto number = [&](const char* key, double& field) {
        if (!j.contains(key)) return;
        const double v = readNumber(j, key, source);
        differs(field, v);
        field = v;
    };
    auto boolean = [&](const char* key, bool& field) {
        if (!j.contains(key)) return;
        const bool v = readBool(j, key, source);
        differs(field, v);
        field = v;
    };
    auto groups = [&](const char* key, std::vector<HeadGroup>& field) {
        if (!j.contains(key)) return;
        auto v = readGroups(j, key, source);
        differs(field, v);
        field = std::move(v);
    };
    groups("grounding", s.grounding);
    groups("sink", s.sink);
    number("sink_threshold", s.sinkThreshold);
    number("foreground_ratio", s.foregroundRatio);
    number("background_ratio", s.backgroundRatio);
    number("max_box_ratio", s.maxBoxRatio);
    number("min_peak", s.minPeak);
    boolean("dilate_box", s.dilateBox);
    boolean("mask_known_background", s.maskKnownBackground);
    if (edited) s.preset = "custom";
    s.validate(source);
    return s;
}

LabelSettings LabelSettings::fromJsonText(const std::string& text, const std::string& source) {
    return fromJson(settings_json::parse(text, source), source);
}

void LabelSettings::validate(const std::string& source) const {
    if (grounding.empty()) badKey(source, "grounding", "must name at least one layer");
    auto ratio = [&](const char* key, double v) {
        if (!(v >= 0.0 && v <= 1.0)) badKey(source, key, "must be in [0, 1], got " + std::to_string(v));
    };
    ratio("foreground_ratio", foregroundRatio);
    ratio("background_ratio", backgroundRatio);
    ratio("max_box_ratio", maxBoxRatio);
    if (!(sinkThreshold >= 0.0)) badKey(source, "sink_threshold", "must be >= 0");
    if (!(minPeak >= 0.0)) badKey(source, "min_peak", "must be >= 0");
    auto heads = [&](const char* key, const std::vector<HeadGroup>& groups) {
        for (const auto& g : groups) {
            if (g.layer < 0) badKey(source, key, "has a negative layer " + std::to_string(g.layer));
            for (int h : g.heads)
                if (h < 0) badKey(source, key, "has a negative head " + std::to_string(h));
        }
    };
    heads("grounding", grounding);
    heads("sink", sink);
}

bool LabelSettings::operator==(const LabelSettings& o) const {
    return preset == o.preset && variant == o.variant && grounding == o.grounding && sink == o.sink &&
           sinkThreshold == o.sinkThreshold && foregroundRatio == o.foregroundRatio &&
           backgroundRatio == o.backgroundRatio && maxBoxRatio == o.maxBoxRatio && minPeak == o.minPeak &&
           dilateBox == o.dilateBox && maskKnownBackground == o.maskKnownBackground;
}

// ---- maps from captured attention
// --------------------------------------------------------------------------

GridMap attentionToImage(const models::AttentionMaps& maps, const std::vector<HeadGroup>& groups,
                         models::QueryKind kind) {
    if (groups.empty()) throw Error("attention map: no (layer, heads) groups given");
    if (maps.imageSpans.empty()) throw Error("attention map: the captured prompt holds no image");
    const models::ImageSpan& image = maps.imageSpans.front();
    if (image.grid.cells() != image.length || image.grid.cells() <= 0)
        throw Error("attention map: the first image's " + std::to_string(image.length) +
                    " tokens do not form a grid");
    GridMap out;
    out.rows = image.grid.rows;
    out.cols = image.grid.cols;
    const std::size_t cells = std::size_t(image.grid.cells());

    // Every (slot, head) pair, checked before any reading.
    std::vector<std::pair<std::size_t, int>> pairs;
    for (const auto& g : groups) {
        const int slot = maps.slotOf(g.layer);
        if (slot < 0) throw Error("attention map: layer " + std::to_string(g.layer) + " was not captured");
        if (g.heads.empty()) {
            for (int h = 0; h < maps.heads; ++h) pairs.emplace_back(std::size_t(slot), h);
        }
        for (int h : g.heads) {
            if (h < 0 || h >= maps.heads)
                throw Error("attention map: head " + std::to_string(h) + " of layer " +
                            std::to_string(g.layer) + " is out of range [0, " + std::to_string(maps.heads) +
                            ")");
            pairs.emplace_back(std::size_t(slot), h);
        }
    }

    const std::vector<std::size_t> rows = maps.rowsOfKind(kind);
    out.queries = int(rows.size());
    if (rows.empty()) {
        out.values.assign(cells, std::numeric_limits<float>::quiet_NaN());
        return out;
    }
    // Columns of the first image: its keys are the first `length` columns (spans are in sequence order).
    std::vector<double> acc(cells, 0.0);
    for (const auto& [slot, head] : pairs)
        for (std::size_t r : rows)
            for (std::size_t k = 0; k < cells; ++k) acc[k] += double(maps.at(slot, head, r, std::int64_t(k)));
    const double n = double(pairs.size()) * double(rows.size());
    out.values.resize(cells);
    for (std::size_t k = 0; k < cells; ++k) out.values[k] = float(acc[k] / n);
    return out;
}

GridMap groundingMap(const models::AttentionMaps& maps, const LabelSettings& settings) {
    return attentionToImage(maps, settings.grounding, models::QueryKind::Answer);
}

GridMap sinkMap(const models::AttentionMaps& maps, const LabelSettings& settings) {
    if (!settings.sink.empty()) return attentionToImage(maps, settings.sink, models::QueryKind::Answer);
    GridMap out;
    if (!maps.imageSpans.empty()) {
        out.rows = maps.imageSpans.front().grid.rows;
        out.cols = maps.imageSpans.front().grid.cols;
    }
    out.values.assign(std::size_t(out.rows) * std::size_t(out.cols), 0.0f);
    out.queries = int(maps.rowsOfKind(models::QueryKind::Answer).size());
    return out;
}

// ---- labels
// ------------------------------------------------------------------------------------------------

Labels makeLabels(const GridMap& grounding, const GridMap& sink, const LabelSettings& settings,
                  const std::vector<std::uint8_t>& knownBackground) {
    checkGrid(grounding.values.size(), grounding.rows, grounding.cols, "labels: grounding map");
    const int rows = grounding.rows, cols = grounding.cols;
    const std::size_t cells = grounding.values.size();
    if (!sink.empty() && (sink.rows != rows || sink.cols != cols || sink.values.size() != cells))
        throw Error("labels: the sink map is " + std::to_string(sink.rows) + "x" + std::to_string(sink.cols) +
                    " but the grounding map is " + std::to_string(rows) + "x" + std::to_string(cols));
    const bool maskPad = settings.maskKnownBackground && !knownBackground.empty();
    if (maskPad && knownBackground.size() != cells)
        throw Error("labels: the known-background mask has " + std::to_string(knownBackground.size()) +
                    " cells, the grid " + std::to_string(cells));

    Labels out;
    out.rows = rows;
    out.cols = cols;
    out.values.assign(cells, kIgnoreLabel);
    out.box = {0, 0, cols, rows};
    out.grounding.assign(cells, 0.0f);

    for (std::size_t v = 0; v < cells; ++v)
        if (!std::isfinite(grounding.values[v]) || (!sink.empty() && !std::isfinite(sink.values[v]))) {
            out.status = LabelStatus::NonFinite;
            out.grounding = grounding.values;
            return out;
        }

    // Every comparison is in float32, as the reference compares float32 maps with Python scalars.
    const float sinkThreshold = float(settings.sinkThreshold);
    float peak = -std::numeric_limits<float>::infinity();
    for (std::size_t v = 0; v < cells; ++v) {
        const bool isSink =
            (!sink.empty() && !(sink.values[v] < sinkThreshold)) || (maskPad && knownBackground[v]);
        out.grounding[v] = isSink ? 0.0f : grounding.values[v];
        peak = std::max(peak, out.grounding[v]);
    }
    out.peak = peak;
    if (!(peak > 0.0f)) {
        out.status = LabelStatus::NoSignal;  // no foreground: the reference's box is the whole grid
        return out;
    }

    // LLaVA's recipe runs in NumPy (float64 scalar product, compared as float32); the Qwen one in torch
    // (float32 product).
    const bool torchArithmetic = settings.variant == LabelVariant::Qwen;
    const float fgThreshold = torchArithmetic ? float(settings.foregroundRatio) * peak
                                              : float(settings.foregroundRatio * double(peak));
    const float bgThreshold = torchArithmetic ? float(settings.backgroundRatio) * peak
                                              : float(settings.backgroundRatio * double(peak));
    std::vector<std::uint8_t> fg(cells, 0);
    for (std::size_t v = 0; v < cells; ++v)
        if (out.grounding[v] > fgThreshold) {
            fg[v] = 1;
            ++out.foreground;
        }

    // The box (inclusive rows r0..r1, columns c0..c1, stored with exclusive ends).
    std::vector<std::uint8_t> boxSource = fg;
    if (settings.dilateBox) {
        // §2.7: the box of gaussian_blur(g'·fg, k=3, σ=1) > 0, i.e. the foreground grown by one cell.
        std::vector<float> weighted(cells, 0.0f);
        for (std::size_t v = 0; v < cells; ++v) weighted[v] = fg[v] ? out.grounding[v] : 0.0f;
        const auto blurred = gaussianBlur(weighted, rows, cols, 3, 1.0);
        for (std::size_t v = 0; v < cells; ++v) boxSource[v] = blurred[v] > 0.0f ? 1 : 0;
    }
    int r0 = rows, c0 = cols, r1 = -1, c1 = -1;
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c)
            if (boxSource[std::size_t(r * cols + c)]) {
                r0 = std::min(r0, r);
                r1 = std::max(r1, r);
                c0 = std::min(c0, c);
                c1 = std::max(c1, c);
            }
    if (r1 < 0) {
        out.status = LabelStatus::NoSignal;
        return out;
    }
    out.box = {c0, r0, c1 + 1, r1 + 1};

    const std::int64_t area = std::int64_t(r1 - r0 + 1) * (c1 - c0 + 1);
    if (!(double(area) < settings.maxBoxRatio * double(cells))) {
        out.status = LabelStatus::BoxTooLarge;
        return out;
    }
    if (settings.minPeak > 0 && !(peak >= float(settings.minPeak))) {
        out.status = LabelStatus::WeakPeak;
        return out;
    }

    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c) {
            const std::size_t v = std::size_t(r * cols + c);
            const bool inBox = r >= r0 && r <= r1 && c >= c0 && c <= c1;
            const bool bg = (!inBox && out.grounding[v] < bgThreshold) || (maskPad && knownBackground[v]);
            if (fg[v])
                out.values[v] = 1;
            else if (bg)
                out.values[v] = 0;
        }
    for (int v : out.values) out.background += v == 0 ? 1 : 0;
    out.status = LabelStatus::Ok;
    return out;
}

std::vector<std::uint8_t> knownBackgroundMask(const models::GridGeometry& geometry) {
    std::vector<std::uint8_t> out(std::size_t(geometry.numCells()), 0);
    if (geometry.fit != models::ImageFit::Pad) return out;
    for (int r = 0; r < geometry.gridRows; ++r)
        for (int c = 0; c < geometry.gridCols; ++c)
            out[std::size_t(r * geometry.gridCols + c)] = geometry.cellHasContent(r, c) ? 0 : 1;
    return out;
}

}  // namespace sdrpn
