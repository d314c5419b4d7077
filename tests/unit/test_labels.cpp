// SD-RPN pseudo-labels (sdrpn.md §2.3–2.7): hand-worked maps, the edge cases (no foreground, all sinks,
// NaN, a box of half the grid, ties at the thresholds), the Qwen variant, the settings JSON and the maps
// built from captured attention.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <limits>
#include <random>

#include <gtest/gtest.h>

#include "core/result.h"
#include "core/sdrpn/grid_ops.h"
#include "core/sdrpn/labels.h"

namespace {

using namespace sdrpn;

constexpr int I = kIgnoreLabel;

GridMap grid(int rows, int cols, std::vector<float> values) {
    GridMap m;
    m.rows = rows;
    m.cols = cols;
    m.values = std::move(values);
    m.queries = 1;
    return m;
}

GridMap zeros(int rows, int cols) {
    return grid(rows, cols, std::vector<float>(std::size_t(rows * cols), 0.0f));
}

// ---- the LLaVA recipe (§2.6), table-driven ---------------------------------------------------------------

struct LabelCase {
    const char* name;
    std::vector<float> grounding;  // 4×4
    std::vector<float> sink;       // 4×4, empty = no sink map
    LabelStatus status;
    std::vector<int> labels;  // expected, 4×4
    models::GridBox box;
};

const float kNaN = std::numeric_limits<float>::quiet_NaN();

const std::vector<LabelCase> kLlavaCases = {
    {"hand-worked: sink masked, ties at α and β ignored",
     // (3,3) is a sink (0.5 ≥ τs): its 0.9 becomes 0 and it is background. Peak 1.0: α·m = 0.2, β·m = 0.1.
     // (2,2) = 0.2 ties α: not foreground, inside the box: ignored. (0,2) = 0.1 ties β: not background.
     {0.00f, 0.15f, 0.10f, 0.00f,  //
      0.02f, 1.00f, 0.50f, 0.00f,  //
      0.00f, 0.30f, 0.20f, 0.00f,  //
      0.00f, 0.00f, 0.00f, 0.90f},
     {0, 0, 0, 0,  //
      0, 0, 0, 0,  //
      0, 0, 0, 0,  //
      0, 0, 0, 0.5f},
     LabelStatus::Ok,
     {0, I, I, 0,  //
      0, 1, 1, 0,  //
      0, 1, I, 0,  //
      0, 0, 0, 0},
     {1, 1, 3, 3}},
    {"sink exactly at τs is a sink",
     {0, 0, 0, 0,  //
      0, 1, 0, 0,  //
      0, 0, 0, 0,  //
      0, 0, 0, 0.8f},
     {0, 0, 0, 0,  //
      0, 0, 0, 0,  //
      0, 0, 0, 0,  //
      0, 0, 0, 1e-3f},
     LabelStatus::Ok,
     {0, 0, 0, 0,  //
      0, 1, 0, 0,  //
      0, 0, 0, 0,  //
      0, 0, 0, 0},
     {1, 1, 2, 2}},
    {"empty foreground (all zero)",
     std::vector<float>(16, 0.0f),
     {},
     LabelStatus::NoSignal,
     std::vector<int>(16, I),
     {0, 0, 4, 4}},
    {"all sinks",
     std::vector<float>(16, 0.3f),
     std::vector<float>(16, 0.01f),
     LabelStatus::NoSignal,
     std::vector<int>(16, I),
     {0, 0, 4, 4}},
    {"NaN in the grounding map",
     {0, 0, 0, 0, 0, kNaN, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
     {},
     LabelStatus::NonFinite,
     std::vector<int>(16, I),
     {0, 0, 4, 4}},
    {"inf in the sink map",
     {0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
     {0, 0, 0, std::numeric_limits<float>::infinity(), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
     LabelStatus::NonFinite,
     std::vector<int>(16, I),
     {0, 0, 4, 4}},
    {"box of exactly half the grid (2×4 = 8 of 16) is too large",
     {1, 0, 0, 0,  //
      0, 0, 0, 1,  //
      0, 0, 0, 0,  //
      0, 0, 0, 0},
     {},
     LabelStatus::BoxTooLarge,
     std::vector<int>(16, I),
     {0, 0, 4, 2}},
    {"box of more than half is too large",
     {1, 0, 0, 0,  //
      0, 0, 0, 0,  //
      0, 0, 0, 0,  //
      0, 0, 0, 1},
     {},
     LabelStatus::BoxTooLarge,
     std::vector<int>(16, I),
     {0, 0, 4, 4}},
    {"box just under half (2×3 = 6) is kept",
     {1, 0, 0, 0,     //
      0, 0, 0.5f, 0,  //
      0, 0, 0, 0,     //
      0, 0, 0, 0},
     {},
     LabelStatus::Ok,
     {1, I, I, 0,  //
      I, I, 1, 0,  //
      0, 0, 0, 0,  //
      0, 0, 0, 0},
     {0, 0, 3, 2}},
    {"ambiguous zone outside the box is ignored",
     {0.05f, 0.1f, 0.15f, 0.0999f,  //
      0, 1, 0, 0,                   //
      0, 0, 0, 0,                   //
      0, 0, 0, 0},
     {},
     LabelStatus::Ok,
     {0, I, I, 0,  //
      0, 1, 0, 0,  //
      0, 0, 0, 0,  //
      0, 0, 0, 0},
     {1, 1, 2, 2}},
};

TEST(Labels, LlavaRecipeTable) {
    const LabelSettings settings = LabelSettings::fromPreset("llava-1.5-7b");
    for (const auto& c : kLlavaCases) {
        SCOPED_TRACE(c.name);
        const GridMap sink = c.sink.empty() ? GridMap{} : grid(4, 4, c.sink);
        const Labels l = makeLabels(grid(4, 4, c.grounding), sink, settings);
        EXPECT_EQ(labelStatusName(l.status), std::string(labelStatusName(c.status)));
        EXPECT_EQ(l.values, c.labels);
        EXPECT_EQ(l.box.x0, c.box.x0);
        EXPECT_EQ(l.box.y0, c.box.y0);
        EXPECT_EQ(l.box.x1, c.box.x1);
        EXPECT_EQ(l.box.y1, c.box.y1);
        EXPECT_EQ(l.rows, 4);
        EXPECT_EQ(l.cols, 4);
        int zeros = 0;
        for (int v : l.values) zeros += v == 0;
        EXPECT_EQ(l.background, zeros);
    }
}

TEST(Labels, HandWorkedCountsAndMaskedGrounding) {
    const auto& c = kLlavaCases.front();
    const Labels l = makeLabels(grid(4, 4, c.grounding), grid(4, 4, c.sink), LabelSettings{});
    EXPECT_EQ(l.foreground, 3);
    EXPECT_EQ(l.background, 10);
    EXPECT_FLOAT_EQ(l.peak, 1.0f);
    EXPECT_EQ(l.grounding[15], 0.0f);  // the sink cell
    EXPECT_EQ(l.grounding[5], 1.0f);
}

TEST(Labels, FullSizeGridUsesHalfOf576) {
    // 24×24: a 16×18 box = 288 cells = exactly half → too large; 17×16 = 272 → kept.
    std::vector<float> g(576, 0.0f);
    g[0] = 1.0f;
    g[15 * 24 + 17] = 1.0f;  // rows 0..15, cols 0..17: 16 × 18
    EXPECT_EQ(makeLabels(grid(24, 24, g), {}, LabelSettings{}).status, LabelStatus::BoxTooLarge);
    g[15 * 24 + 17] = 0.0f;
    g[16 * 24 + 15] = 1.0f;  // rows 0..16, cols 0..15: 17 × 16
    const Labels l = makeLabels(grid(24, 24, g), {}, LabelSettings{});
    EXPECT_EQ(l.status, LabelStatus::Ok);
    EXPECT_EQ(l.foreground, 2);
    EXPECT_EQ(l.background, 576 - 17 * 16);
}

TEST(Labels, MismatchedGridsThrowNamingBoth) {
    try {
        (void)makeLabels(zeros(4, 4), zeros(3, 4), LabelSettings{});
        FAIL() << "no throw";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("3x4"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("4x4"), std::string::npos) << e.what();
    }
    EXPECT_THROW((void)makeLabels(grid(4, 4, std::vector<float>(15)), {}, LabelSettings{}), Error);
}

// ---- the Qwen variant (§2.7)
// -------------------------------------------------------------------------------

TEST(Labels, QwenDilatesTheBoxAndMasksThePadBand) {
    const LabelSettings s = LabelSettings::fromPreset("qwen2.5-vl-7b-textual");
    EXPECT_EQ(s.variant, LabelVariant::Qwen);
    EXPECT_FLOAT_EQ(float(s.sinkThreshold), 1e-2f);
    std::vector<float> g(36, 0.0f);
    g[2 * 6 + 2] = 0.01f;                             // the peak, ≥ 5e-3
    g[0] = 0.0015f;                                   // between β·m and α·m: ignored
    for (int c = 0; c < 6; ++c) g[5 * 6 + c] = 0.5f;  // pad row: would be the peak if not masked
    std::vector<std::uint8_t> pad(36, 0);
    for (int c = 0; c < 6; ++c) pad[std::size_t(5 * 6 + c)] = 1;
    const Labels l = makeLabels(grid(6, 6, g), {}, s, pad);
    ASSERT_EQ(l.status, LabelStatus::Ok) << labelStatusName(l.status);
    EXPECT_FLOAT_EQ(l.peak, 0.01f);
    // The foreground cell (2,2), its box dilated by one cell: rows 1..3, cols 1..3.
    EXPECT_EQ(l.box.x0, 1);
    EXPECT_EQ(l.box.y0, 1);
    EXPECT_EQ(l.box.x1, 4);
    EXPECT_EQ(l.box.y1, 4);
    const std::vector<int> expected = {I, 0, 0, 0, 0, 0,  //
                                       0, I, I, I, 0, 0,  //
                                       0, I, 1, I, 0, 0,  //
                                       0, I, I, I, 0, 0,  //
                                       0, 0, 0, 0, 0, 0,  //
                                       0, 0, 0, 0, 0, 0};
    EXPECT_EQ(l.values, expected);

    // The same map with the LLaVA recipe: no dilation, the pad row is the peak.
    const Labels llava = makeLabels(grid(6, 6, g), {}, LabelSettings{}, pad);
    EXPECT_EQ(llava.status, LabelStatus::Ok);
    EXPECT_EQ(llava.box.y0, 5);
    EXPECT_EQ(llava.foreground, 6);
}

TEST(Labels, QwenNeedsAMinimumPeak) {
    const LabelSettings s = LabelSettings::fromPreset("qwen2.5-vl-3b-textual");
    std::vector<float> g(36, 0.0f);
    g[14] = 0.004f;
    EXPECT_EQ(makeLabels(grid(6, 6, g), {}, s).status, LabelStatus::WeakPeak);
    g[14] = 0.005f;
    EXPECT_EQ(makeLabels(grid(6, 6, g), {}, s).status, LabelStatus::Ok);
}

TEST(Labels, KnownBackgroundMaskFollowsThePadGeometry) {
    // 640×480 padded: the band is 3 rows at the top and 3 at the bottom (80 source px = 42 processed px).
    const auto mask = knownBackgroundMask(models::makeGridGeometry(640, 480, models::ImageFit::Pad));
    ASSERT_EQ(mask.size(), 576u);
    for (int r = 0; r < 24; ++r) EXPECT_EQ(mask[std::size_t(r * 24 + 7)], (r < 3 || r >= 21) ? 1 : 0) << r;
    const auto crop = knownBackgroundMask(models::makeGridGeometry(640, 480, models::ImageFit::Crop));
    EXPECT_EQ(std::count(crop.begin(), crop.end(), 1), 0);
}

// ---- settings
// ----------------------------------------------------------------------------------------------

TEST(LabelSettingsJson, PresetsMatchTheSpec) {
    const auto l7 = LabelSettings::fromPreset("llava-1.5-7b");
    EXPECT_EQ(l7.grounding, (std::vector<HeadGroup>{{14, {24, 13, 26}}}));
    EXPECT_EQ(l7.sink, (std::vector<HeadGroup>{{2, {}}}));
    EXPECT_DOUBLE_EQ(l7.sinkThreshold, 1e-3);
    EXPECT_DOUBLE_EQ(l7.foregroundRatio, 0.2);
    EXPECT_DOUBLE_EQ(l7.backgroundRatio, 0.1);
    EXPECT_DOUBLE_EQ(l7.maxBoxRatio, 0.5);
    const auto l13 = LabelSettings::fromPreset("llava-1.5-13b");
    EXPECT_EQ(l13.grounding, (std::vector<HeadGroup>{{16, {2, 21, 30}}, {15, {2}}, {13, {21, 23, 26}}}));
    EXPECT_EQ(l13.sink, (std::vector<HeadGroup>{{16, {17, 22}}}));
    const auto q7 = LabelSettings::fromPreset("qwen2.5-vl-7b");
    EXPECT_EQ(q7.grounding, (std::vector<HeadGroup>{{16, {1, 7, 17}}, {19, {17, 20}}}));
    EXPECT_EQ(q7.sink, (std::vector<HeadGroup>{{9, {4, 22}}}));
    EXPECT_TRUE(q7.dilateBox && q7.maskKnownBackground);
    EXPECT_DOUBLE_EQ(q7.minPeak, 5e-3);
    EXPECT_TRUE(LabelSettings::fromPreset("qwen2.5-vl-7b-textual").sink.empty());
    EXPECT_EQ(LabelSettings::fromPreset("qwen2.5-vl-3b").sink, (std::vector<HeadGroup>{{8, {1, 13}}}));
    EXPECT_EQ(LabelSettings::fromPreset("qwen2.5-vl-3b-textual").grounding,
              (std::vector<HeadGroup>{{20, {1, 4}}, {22, {14}}}));
    for (const auto& name : LabelSettings::presetNames())
        EXPECT_NO_THROW(LabelSettings::fromPreset(name)) << name;
    try {
        (void)LabelSettings::fromPreset("llava-2");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("llava-2"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("llava-1.5-13b"), std::string::npos);
    }
}

TEST(LabelSettingsJson, RoundTripsAndOverridesAPreset) {
    for (const auto& name : LabelSettings::presetNames()) {
        const auto s = LabelSettings::fromPreset(name);
        EXPECT_EQ(LabelSettings::fromJson(s.toJson()), s) << name;
        EXPECT_EQ(LabelSettings::fromJsonText(s.toJson().dump(2)), s) << name;
    }
    const auto s = LabelSettings::fromJsonText(R"({"preset": "llava-1.5-13b", "foreground_ratio": 0.3})");
    EXPECT_EQ(s.preset, "custom");
    EXPECT_DOUBLE_EQ(s.foregroundRatio, 0.3);
    EXPECT_EQ(s.sink, (std::vector<HeadGroup>{{16, {17, 22}}}));
    const auto same = LabelSettings::fromJsonText(R"({"preset": "llava-1.5-13b", "foreground_ratio": 0.2})");
    EXPECT_EQ(same.preset, "llava-1.5-13b");
}

TEST(LabelSettingsJson, ErrorsNameTheBadKey) {
    struct Bad {
        const char* json;
        const char* mentions;
    };
    const std::vector<Bad> cases = {
        {R"({"sink_treshold": 0.1})", "sink_treshold"},
        {R"({"sink_threshold": "low"})", "sink_threshold"},
        {R"({"foreground_ratio": 1.5})", "foreground_ratio"},
        {R"({"background_ratio": -0.1})", "background_ratio"},
        {R"({"grounding": [{"layer": 14, "heads": [1, -2]}]})", "grounding[0].heads[1]"},
        {R"({"grounding": [{"layer": "x"}]})", "grounding[0].layer"},
        {R"({"grounding": [{"heads": [1]}]})", "grounding[0].layer"},
        {R"({"grounding": [{"layer": 1, "head": [1]}]})", "grounding[0].head"},
        {R"({"grounding": []})", "grounding"},
        {R"({"sink": 3})", "sink"},
        {R"({"variant": "deepseek"})", "variant"},
        {R"({"dilate_box": 1})", "dilate_box"},
        {R"({"preset": "nope"})", "preset"},
        {R"([1, 2])", "object"},
        {R"({"sink_threshold": )", "not valid JSON"},
    };
    for (const auto& c : cases) {
        try {
            (void)LabelSettings::fromJsonText(c.json, "labels.json");
            ADD_FAILURE() << "no error for " << c.json;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(c.mentions), std::string::npos)
                << c.json << " -> " << e.what();
            EXPECT_NE(std::string(e.what()).find("labels.json"), std::string::npos) << e.what();
        }
    }
}

// ---- maps from captured attention (§2.3–2.4)
// ---------------------------------------------------------------

// 2 heads, a 2×2 image at positions 3..6, rows: last prompt token + two answer tokens, layers 1 and 3.
models::AttentionMaps smallMaps(bool withAnswers = true) {
    models::AttentionMaps m;
    m.heads = 2;
    m.imageKeys = 4;
    m.imageSpans = {{3, 4, {2, 2}}};
    m.imageKeyPositions = {3, 4, 5, 6};
    m.rows = {{10, 7, models::QueryKind::LastPrompt}};
    if (withAnswers) {
        m.rows.push_back({11, 8, models::QueryKind::Answer});
        m.rows.push_back({12, 9, models::QueryKind::Answer});
    }
    for (int layer : {1, 3}) {
        models::LayerAttention la;
        la.layer = layer;
        const std::size_t rows = m.rows.size();
        la.values.resize(2 * rows * 4);
        for (int h = 0; h < 2; ++h)
            for (std::size_t r = 0; r < rows; ++r)
                for (int k = 0; k < 4; ++k)
                    la.values[(std::size_t(h) * rows + r) * 4 + std::size_t(k)] =
                        float(layer * 1000 + h * 100 + int(r) * 10 + k);
        m.layers.push_back(std::move(la));
    }
    return m;
}

TEST(LabelMaps, MeanOverAnswerRowsAndHeadPairs) {
    const auto maps = smallMaps();
    // Layer 3 head 1 and layer 1 (all heads): pairs (3,1), (1,0), (1,1); answer rows 1 and 2 (mean r = 1.5).
    const GridMap g = attentionToImage(maps, {{3, {1}}, {1, {}}});
    ASSERT_EQ(g.rows, 2);
    ASSERT_EQ(g.cols, 2);
    EXPECT_EQ(g.queries, 2);
    for (int k = 0; k < 4; ++k) {
        const double expected = ((3100 + 15 + k) + (1000 + 15 + k) + (1100 + 15 + k)) / 3.0;
        EXPECT_NEAR(g.values[std::size_t(k)], expected, 1e-3) << k;
    }
    LabelSettings s;
    s.grounding = {{3, {0}}};
    s.sink = {};
    EXPECT_NEAR(groundingMap(maps, s).values[2], 3000 + 15 + 2, 1e-3);
    const GridMap none = sinkMap(maps, s);
    EXPECT_EQ(none.values, std::vector<float>(4, 0.0f));
    s.sink = {{1, {}}};
    EXPECT_NEAR(sinkMap(maps, s).values[0], (1015 + 1115) / 2.0, 1e-3);
    // The last prompt row alone.
    EXPECT_NEAR(attentionToImage(maps, {{1, {0}}}, models::QueryKind::LastPrompt).values[3], 1003, 1e-3);
}

TEST(LabelMaps, NoAnswerRowsGiveNaNAndNonFiniteLabels) {
    // ⚠ sdrpn.md §2.3: the first generated token was EOS; the reference's mean is NaN.
    const auto maps = smallMaps(/*withAnswers=*/false);
    const GridMap g = groundingMap(maps, [] {
        LabelSettings s;
        s.grounding = {{1, {0}}};
        s.sink = {{3, {}}};
        return s;
    }());
    EXPECT_EQ(g.queries, 0);
    EXPECT_TRUE(std::isnan(g.values[0]));
    const Labels l = makeLabels(g, {}, LabelSettings{});
    EXPECT_EQ(l.status, LabelStatus::NonFinite);
    EXPECT_EQ(l.values, std::vector<int>(4, I));
}

TEST(LabelMaps, BadLayersAndHeadsThrowNamingThem) {
    const auto maps = smallMaps();
    try {
        (void)attentionToImage(maps, {{14, {0}}});
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("layer 14"), std::string::npos) << e.what();
    }
    try {
        (void)attentionToImage(maps, {{1, {2}}});
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("head 2"), std::string::npos) << e.what();
    }
    models::AttentionMaps noImage = maps;
    noImage.imageSpans.clear();
    EXPECT_THROW((void)attentionToImage(noImage, {{1, {}}}), Error);
}

// ---- grid operations shared with the RoI path
// ----------------------------------------------------------------

TEST(GridOps, GaussianKernelMatchesTorchvision) {
    const auto k = gaussianKernel1d(3, 1.0);
    ASSERT_EQ(k.size(), 3u);
    EXPECT_NEAR(k[0], 0.27406862f, 1e-7);
    EXPECT_NEAR(k[1], 0.45186276f, 1e-7);
    EXPECT_NEAR(k[2], 0.27406862f, 1e-7);
    EXPECT_THROW(gaussianKernel1d(4, 1.0), Error);
    EXPECT_THROW(gaussianKernel1d(3, 0.0), Error);
}

TEST(GridOps, BlurUsesReflectPadding) {
    // An impulse at (0,1) of a 3×3 map. Reflect padding maps column −1 to column 1 (the edge is not
    // repeated), so (0,0) sees the impulse twice: through column 1 and through the reflected column −1.
    const float c = 0.45186276f, e = 0.27406862f;
    std::vector<float> m(9, 0.0f);
    m[1] = 1.0f;
    const auto b = gaussianBlur(m, 3, 3);
    EXPECT_NEAR(b[0], 2 * c * e, 1e-6);  // (0,0): centre row, both side taps
    EXPECT_NEAR(b[1], c * c, 1e-6);      // (0,1): the centre tap only (row −1 reflects to row 1)
    EXPECT_NEAR(b[3], 2 * e * e, 1e-6);  // (1,0): corner taps through column 1 and column −1
    EXPECT_NEAR(b[4], e * c, 1e-6);      // (1,1): the top tap
    EXPECT_NEAR(b[7], 0.0f, 1e-7);       // (2,1): out of reach
}

TEST(GridOps, ComponentsAreEightConnectedInScanOrder) {
    const std::vector<std::uint8_t> m = {0, 1, 0, 0, 1,  //
                                         1, 0, 0, 0, 1,  //
                                         0, 0, 0, 0, 0,  //
                                         1, 1, 0, 1, 0};
    const auto parts = connectedComponents(m, 4, 5);
    ASSERT_EQ(parts.size(), 4u);
    EXPECT_EQ(parts[0].area, 2);  // (0,1) and (1,0), diagonal neighbours
    EXPECT_EQ(parts[0].x0, 0);
    EXPECT_EQ(parts[0].y1, 2);
    EXPECT_EQ(parts[1].area, 2);  // column 4
    EXPECT_EQ(parts[1].x0, 4);
    EXPECT_EQ(parts[2].area, 2);  // (3,0), (3,1)
    EXPECT_EQ(parts[3].area, 1);  // (3,3)
    EXPECT_EQ(parts[3].cells, std::vector<int>{18});
}

TEST(GridOps, BilinearResizeMatchesPyTorch) {
    // F.interpolate(torch.tensor([[0., 1.]])[None, None], size=(1, 4), mode="bilinear",
    // align_corners=False) = [0, 0.25, 0.75, 1].
    const auto r = resizeBilinear({0.0f, 1.0f}, 1, 2, 1, 4);
    ASSERT_EQ(r.size(), 4u);
    EXPECT_FLOAT_EQ(r[0], 0.0f);
    EXPECT_FLOAT_EQ(r[1], 0.25f);
    EXPECT_FLOAT_EQ(r[2], 0.75f);
    EXPECT_FLOAT_EQ(r[3], 1.0f);
}

}  // namespace
