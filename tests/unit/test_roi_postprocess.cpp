// SD-RPN RoI post-processing (sdrpn.md §4.2, §4.6, §4.8): every branch and area rule on hand-worked maps;
// the Qwen2.5-VL path (§4.7): sink mask, tight box, plain scaling, the crop's token mask.
//
// The maps are built from blocks of logit +20 (probability 1.0f) on a background of −20 (≈ 0). With the
// 3×3 kernel weights centre c = 0.2042, side e = 0.1238, corner k = 0.0751, a threshold of 0.3 keeps exactly
// the cells of every solid block of two or more cells (a block cell has at least c + e = 0.328; a cell
// beside a block at most e + 2k = 0.274), and drops single cells (c = 0.204).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "core/result.h"
#include "core/sdrpn/roi.h"

namespace {

using namespace sdrpn;
using models::GridBox;
using models::PixelBox;

std::vector<float> blocks(const std::vector<GridBox>& rects, int rows = 24, int cols = 24) {
    std::vector<float> logits(std::size_t(rows * cols), -20.0f);
    for (const auto& b : rects)
        for (int r = b.y0; r < b.y1; ++r)
            for (int c = b.x0; c < b.x1; ++c) logits[std::size_t(r * cols + c)] = 20.0f;
    return logits;
}

RoiSettings withThreshold(double thr) {
    RoiSettings s;
    s.threshold = thr;
    return s;
}

void expectBox(const GridBox& a, const GridBox& b, const char* what) {
    EXPECT_EQ(a.x0, b.x0) << what;
    EXPECT_EQ(a.y0, b.y0) << what;
    EXPECT_EQ(a.x1, b.x1) << what;
    EXPECT_EQ(a.y1, b.y1) << what;
}

struct RoiCase {
    const char* name;
    std::vector<GridBox> rects;
    double threshold;
    std::vector<ComponentFate> fates;
    std::vector<GridBox> boxes;  // kept boxes
    RoiBranch branch;
    GridBox gridBox;
    PixelBox sourceBox;  // on a 336×336 image: cells × 14
    int roiTokens;
};

const std::vector<RoiCase> kCases = {
    {"nothing above the threshold", {}, 0.15, {}, {}, RoiBranch::None, {}, {}, 0},
    {"a single cell is skipped",
     {{10, 10, 11, 11}},
     0.15,
     {ComponentFate::SkippedSingle},
     {},
     RoiBranch::None,
     {},
     {},
     0},
    {"two cells grow to 3x3",
     {{5, 5, 7, 6}},
     0.3,
     {ComponentFate::Grown},
     {{4, 4, 7, 7}},
     RoiBranch::Box,
     {4, 4, 7, 7},
     {56, 56, 98, 98},
     576},
    // Cells box {4,8,7,9}: xc 5.5, w = max(3, 7−4+1) = 4 → x0 = int(3.5) = 3, x1 = int(7.5) = 7;
    // yc 8.5, h = max(3, 2) = 3 → y0 = int(7.0) = 7, y1 = int(10.0) = 10.
    {"three cells in a row grow (with the reference's x1 − x0 + 1 width)",
     {{4, 8, 7, 9}},
     0.3,
     {ComponentFate::Grown},
     {{3, 7, 7, 10}},
     RoiBranch::Box,
     {3, 7, 7, 10},
     {42, 98, 98, 140},
     576},
    // At the right edge the exclusive end is clamped to 23, as the reference does.
    {"a grown box at the edge is clamped to 23",
     {{22, 10, 24, 11}},
     0.3,
     {ComponentFate::Grown},
     {{21, 9, 23, 12}},
     RoiBranch::Box,
     {21, 9, 23, 12},
     {294, 126, 322, 168},
     576},
    {"a 2x2 block is kept as it is",
     {{10, 10, 12, 12}},
     0.3,
     {ComponentFate::Kept},
     {{10, 10, 12, 12}},
     RoiBranch::Box,
     {10, 10, 12, 12},
     {140, 140, 168, 168},
     576},
    {"15x15 = 225 cells is kept",
     {{2, 2, 17, 17}},
     0.3,
     {ComponentFate::Kept},
     {{2, 2, 17, 17}},
     RoiBranch::Box,
     {2, 2, 17, 17},
     {28, 28, 238, 238},
     576},
    {"16x15 = 240 cells is skipped",
     {{2, 2, 18, 17}},
     0.3,
     {ComponentFate::SkippedLarge},
     {},
     RoiBranch::None,
     {},
     {},
     0},
    // Mask branch: the tight box {2,2,10,4} (8 × 2 cells); its mask [1 1 0 0 0 0 1 1] resized to 24 columns
    // keeps columns 0..5 and 18..23 (> 0.5), every row: 12 × 24 = 288 tokens.
    {"two boxes take the mask branch",
     {{2, 2, 4, 4}, {8, 2, 10, 4}},
     0.3,
     {ComponentFate::Kept, ComponentFate::Kept},
     {{2, 2, 4, 4}, {8, 2, 10, 4}},
     RoiBranch::Mask,
     {2, 2, 10, 4},
     {28, 28, 140, 56},
     288},
};

TEST(RoiPostprocess, BranchesAndAreaRulesTable) {
    const auto geometry = models::makeGridGeometry(336, 336, models::ImageFit::Pad);
    for (const auto& c : kCases) {
        SCOPED_TRACE(c.name);
        const RoiResult r = postprocessRoi(blocks(c.rects), 24, 24, withThreshold(c.threshold), geometry);
        ASSERT_EQ(r.components.size(), c.fates.size());
        for (std::size_t i = 0; i < c.fates.size(); ++i)
            EXPECT_STREQ(componentFateName(r.components[i].fate), componentFateName(c.fates[i]));
        ASSERT_EQ(r.boxes.size(), c.boxes.size());
        for (std::size_t i = 0; i < c.boxes.size(); ++i) expectBox(r.boxes[i], c.boxes[i], "kept box");
        EXPECT_STREQ(roiBranchName(r.branch), roiBranchName(c.branch));
        expectBox(r.gridBox, c.gridBox, "grid box");
        EXPECT_EQ(r.sourceBox, c.sourceBox)
            << r.sourceBox.x0 << "," << r.sourceBox.y0 << "," << r.sourceBox.x1 << "," << r.sourceBox.y1;
        EXPECT_EQ(r.roiTokens, c.roiTokens);
        EXPECT_EQ(r.zoom(), c.branch != RoiBranch::None);
        EXPECT_EQ(r.reason.empty(), r.zoom());
        if (r.zoom()) {
            EXPECT_EQ(r.tokenMask.size(), 576u);
            EXPECT_EQ(std::count(r.tokenMask.begin(), r.tokenMask.end(), 1), r.roiTokens);
        } else {
            EXPECT_TRUE(r.tokenMask.empty());
        }
        // The blocks are exactly the cells above the threshold.
        int above = 0;
        for (const auto& b : c.rects) above += (b.x1 - b.x0) * (b.y1 - b.y0);
        if (c.threshold >= 0.3) {
            EXPECT_EQ(std::count(r.above.begin(), r.above.end(), 1), above);
        }
    }
}

TEST(RoiPostprocess, MaskBranchTokenMaskIsTheResizedMask) {
    const auto geometry = models::makeGridGeometry(336, 336, models::ImageFit::Pad);
    const RoiResult r =
        postprocessRoi(blocks({{2, 2, 4, 4}, {8, 2, 10, 4}}), 24, 24, withThreshold(0.3), geometry);
    ASSERT_EQ(r.branch, RoiBranch::Mask);
    for (int row = 0; row < 24; ++row)
        for (int col = 0; col < 24; ++col)
            EXPECT_EQ(r.tokenMask[std::size_t(row * 24 + col)], (col <= 5 || col >= 18) ? 1 : 0)
                << row << "," << col;
}

TEST(RoiPostprocess, MaskBoxCoversSkippedComponentsToo) {
    // Two small kept blocks and a 16×15 block that is skipped (240 > 225): the mask branch still crops the
    // tight box of every cell above the threshold (sdrpn.md §4.2 'mask' path). (Blocks touching the top
    // edge would grow there: reflect padding doubles their weight on the border row.)
    const auto geometry = models::makeGridGeometry(336, 336, models::ImageFit::Pad);
    const RoiResult r = postprocessRoi(blocks({{2, 2, 4, 4}, {20, 2, 22, 4}, {0, 8, 15, 24}}), 24, 24,
                                       withThreshold(0.3), geometry);
    ASSERT_EQ(r.components.size(), 3u);
    EXPECT_EQ(r.components[2].fate, ComponentFate::SkippedLarge);
    EXPECT_EQ(r.boxes.size(), 2u);
    EXPECT_EQ(r.branch, RoiBranch::Mask);
    expectBox(r.gridBox, {0, 2, 22, 24}, "tight box of the mask");
    EXPECT_GT(r.roiTokens, 0);
    EXPECT_LT(r.roiTokens, 576);
}

TEST(RoiPostprocess, MaskBoxCountIsASetting) {
    const auto geometry = models::makeGridGeometry(336, 336, models::ImageFit::Pad);
    RoiSettings s = withThreshold(0.3);
    s.maskBoxCount = 3;
    const RoiResult r = postprocessRoi(blocks({{2, 2, 4, 4}, {8, 2, 10, 4}}), 24, 24, s, geometry);
    EXPECT_EQ(r.branch, RoiBranch::Box);  // below 3 boxes: the first box, all tokens
    expectBox(r.gridBox, {2, 2, 4, 4}, "first box");
    EXPECT_EQ(r.roiTokens, 576);
}

TEST(RoiPostprocess, RelativeThreshold) {
    // A 2×2 block cell has c + 2e + k = 0.527; −0.9 keeps cells above 0.9 × 0.527 = 0.474: the block.
    const auto geometry = models::makeGridGeometry(336, 336, models::ImageFit::Pad);
    const RoiResult r = postprocessRoi(blocks({{10, 10, 12, 12}}), 24, 24, withThreshold(-0.9), geometry);
    EXPECT_NEAR(r.threshold, 0.9 * (0.20417996 + 2 * 0.12384140 + 0.07511361), 1e-5);
    EXPECT_EQ(std::count(r.above.begin(), r.above.end(), 1), 4);
    EXPECT_EQ(r.branch, RoiBranch::Box);
}

TEST(RoiPostprocess, SourceBoxFollowsThePadGeometry) {
    // 640×480 padded: r = 0.525, pad_y = 42. Grid box {4,4,7,7} = px (56,56)-(98,98) →
    // x: 56/0.525 = 106.7, 98/0.525 = 186.7; y: (56−42)/0.525 = 26.7, (98−42)/0.525 = 106.7 → truncated.
    const auto geometry = models::makeGridGeometry(640, 480, models::ImageFit::Pad);
    const RoiResult r = postprocessRoi(blocks({{5, 5, 7, 6}}), 24, 24, withThreshold(0.3), geometry);
    ASSERT_EQ(r.branch, RoiBranch::Box);
    EXPECT_EQ(r.sourceBox, (PixelBox{106, 26, 186, 106}));
}

TEST(RoiPostprocess, BoxInThePadBandMeansNoZoom) {
    // ⚠ sdrpn.md §4.8: the reference fails where no crop is made; here it is "no zoom" with a reason.
    const auto geometry = models::makeGridGeometry(640, 480, models::ImageFit::Pad);  // rows 0..2 are pad
    const RoiResult r = postprocessRoi(blocks({{5, 0, 7, 2}}), 24, 24, withThreshold(0.3), geometry);
    EXPECT_EQ(r.boxes.size(), 1u);
    EXPECT_EQ(r.branch, RoiBranch::None);
    EXPECT_EQ(r.roiTokens, 0);
    EXPECT_NE(r.reason.find("pad"), std::string::npos) << r.reason;
}

TEST(RoiPostprocess, NonFiniteLogitsNeverZoom) {
    const auto geometry = models::makeGridGeometry(336, 336, models::ImageFit::Pad);
    std::vector<float> logits = blocks({{10, 10, 12, 12}});
    logits[0] = std::numeric_limits<float>::quiet_NaN();  // the blur spreads it to its neighbours only
    const RoiResult some = postprocessRoi(logits, 24, 24, withThreshold(0.3), geometry);
    EXPECT_EQ(some.branch, RoiBranch::Box);
    const RoiResult none = postprocessRoi(std::vector<float>(576, std::numeric_limits<float>::quiet_NaN()),
                                          24, 24, withThreshold(0.3), geometry);
    EXPECT_EQ(none.branch, RoiBranch::None);
}

TEST(RoiPostprocess, ProbabilitiesAndBlurAreKept) {
    const auto geometry = models::makeGridGeometry(336, 336, models::ImageFit::Pad);
    std::vector<float> logits(576, 0.0f);
    const RoiResult r = postprocessRoi(logits, 24, 24, RoiSettings{}, geometry);
    EXPECT_FLOAT_EQ(r.probabilities[100], 0.5f);
    EXPECT_NEAR(r.blurred[100], 0.5f, 1e-6);  // the kernel sums to 1
    EXPECT_EQ(r.logits, logits);
    EXPECT_EQ(r.branch, RoiBranch::None);  // 0.5 everywhere: one component of 576 cells, too large
    ASSERT_EQ(r.components.size(), 1u);
    EXPECT_EQ(r.components[0].fate, ComponentFate::SkippedLarge);
}

TEST(RoiPostprocess, BadInputsThrowNamingTheValue) {
    const auto geometry = models::makeGridGeometry(336, 336, models::ImageFit::Pad);
    EXPECT_THROW((void)postprocessRoi(std::vector<float>(575), 24, 24, RoiSettings{}, geometry), Error);
    try {
        (void)postprocessRoi(std::vector<float>(16 * 16), 16, 16, RoiSettings{}, geometry);
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("24x24"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("16x16"), std::string::npos) << e.what();
    }
    RoiSettings bad;
    bad.blurKernel = 4;
    EXPECT_THROW((void)postprocessRoi(std::vector<float>(576), 24, 24, bad, geometry), Error);
}

// ---- Qwen2.5-VL (sdrpn.md §4.7) ---------------------------------------------------------------------------

// A Qwen geometry as QwenImageProcessor::geometry builds it: the crop fit with no crop (an affine map, no
// pad band), the merged grid, 28 px cells, scale = source / resized.
models::GridGeometry qwenGeometry(int sourceWidth, int sourceHeight, int rows, int cols) {
    models::GridGeometry g;
    g.fit = models::ImageFit::Crop;
    g.sourceWidth = sourceWidth;
    g.sourceHeight = sourceHeight;
    g.processedWidth = g.resizedWidth = cols * 28;
    g.processedHeight = g.resizedHeight = rows * 28;
    g.gridRows = rows;
    g.gridCols = cols;
    g.scaleX = double(sourceWidth) / g.processedWidth;
    g.scaleY = double(sourceHeight) / g.processedHeight;
    return g;
}

std::vector<std::uint8_t> aboveInside(const RoiResult& r) {
    std::vector<std::uint8_t> inside;
    for (int row = r.gridBox.y0; row < r.gridBox.y1; ++row)
        for (int col = r.gridBox.x0; col < r.gridBox.x1; ++col)
            inside.push_back(r.above[std::size_t(row * r.cols + col)]);
    return inside;
}

TEST(RoiPostprocessQwen, BlobGivesItsTightBoxAndTheScaledSourceBox) {
    // 1000×700 source, 18 × 26 merged grid (resized 728×504). Block cols [5, 9) × rows [3, 7) at 0.3:
    // x: 5·28 = 140 · 1000/728 = 192.3 → 192, 9·28 = 252 → 346.2 → 346;
    // y: 3·28 = 84 · 700/504 = 116.7 → 116, 7·28 = 196 → 272.2 → 272.
    const auto geometry = qwenGeometry(1000, 700, 18, 26);
    const auto logits = blocks({{5, 3, 9, 7}}, 18, 26);
    const RoiResult r = postprocessRoiQwen(logits, 18, 26, withThreshold(0.3), geometry);
    EXPECT_EQ(r.rows, 18);
    EXPECT_EQ(r.cols, 26);
    EXPECT_EQ(r.logits, logits);
    ASSERT_EQ(r.probabilities.size(), logits.size());
    ASSERT_EQ(r.blurred.size(), logits.size());
    EXPECT_FLOAT_EQ(r.threshold, 0.3f);
    EXPECT_EQ(std::count(r.above.begin(), r.above.end(), 1), 16);
    EXPECT_EQ(r.branch, RoiBranch::Mask);
    EXPECT_STREQ(roiBranchName(r.branch), "mask");
    expectBox(r.gridBox, {5, 3, 9, 7}, "tight box");
    ASSERT_EQ(r.boxes.size(), 1u);
    expectBox(r.boxes[0], {5, 3, 9, 7}, "the one box");
    EXPECT_TRUE(r.components.empty());  // no component analysis
    EXPECT_EQ(r.sourceBox, (PixelBox{192, 116, 346, 272}))
        << r.sourceBox.x0 << "," << r.sourceBox.y0 << "," << r.sourceBox.x1 << "," << r.sourceBox.y1;
    EXPECT_TRUE(r.zoom());
    EXPECT_TRUE(r.reason.empty());
    // The crop's grid is not known yet.
    EXPECT_TRUE(r.tokenMask.empty());
    EXPECT_EQ(r.roiTokens, 0);
}

TEST(RoiPostprocessQwen, SourceBoxUsesTheReferencesFloat32Arithmetic) {
    // get_bbox4src multiplies float32 tensors: 13·28 = 364 · float32(210/728) = 104.99999917, which rounds to
    // 105.0f and truncates to 105 (the exact product in double, 104.99999999999999, gives 104). Likewise y:
    // 6·28 · float32(221/728) → 51 (double 50). Block cols [13, 16) × rows [6, 12) on 26×26 (no sink mask).
    const auto geometry = qwenGeometry(210, 221, 26, 26);
    const RoiResult r =
        postprocessRoiQwen(blocks({{13, 6, 16, 12}}, 26, 26), 26, 26, withThreshold(0.3), geometry);
    ASSERT_EQ(r.branch, RoiBranch::Mask);
    expectBox(r.gridBox, {13, 6, 16, 12}, "tight box");
    EXPECT_EQ(r.sourceBox, (PixelBox{105, 51, 129, 102}))
        << r.sourceBox.x0 << "," << r.sourceBox.y0 << "," << r.sourceBox.x1 << "," << r.sourceBox.y1;
    EXPECT_EQ(geometry.gridBoxToSourcePixels(r.gridBox), (PixelBox{104, 50, 129, 101}));  // double maths
}

TEST(RoiPostprocessQwen, NothingAboveTheThresholdIsNoZoom) {
    const auto geometry = qwenGeometry(1000, 700, 18, 26);
    const RoiResult r = postprocessRoiQwen(blocks({}, 18, 26), 18, 26, withThreshold(0.1), geometry);
    EXPECT_EQ(r.branch, RoiBranch::None);
    EXPECT_FALSE(r.zoom());
    EXPECT_EQ(std::count(r.above.begin(), r.above.end(), 1), 0);
    EXPECT_TRUE(r.boxes.empty());
    EXPECT_TRUE(r.sourceBox.empty());
    EXPECT_TRUE(r.tokenMask.empty());
    EXPECT_EQ(r.roiTokens, 0);
    EXPECT_NE(r.reason.find("threshold"), std::string::npos) << r.reason;
    // A NaN map never zooms either.
    const RoiResult nan =
        postprocessRoiQwen(std::vector<float>(18 * 26, std::numeric_limits<float>::quiet_NaN()), 18, 26,
                           withThreshold(0.1), geometry);
    EXPECT_EQ(nan.branch, RoiBranch::None);
}

TEST(RoiPostprocessQwen, SinglePixelsAreNotSkipped) {
    // No area rules: a lone cell (blurred 0.204) above a 0.2 threshold is a 1×1 RoI.
    const auto geometry = qwenGeometry(1000, 700, 18, 26);
    const RoiResult r =
        postprocessRoiQwen(blocks({{10, 10, 11, 11}}, 18, 26), 18, 26, withThreshold(0.2), geometry);
    ASSERT_EQ(r.branch, RoiBranch::Mask);
    expectBox(r.gridBox, {10, 10, 11, 11}, "single cell");
}

TEST(RoiPostprocessQwen, RelativeThreshold) {
    // As LLaVA: a 2×2 block cell has c + 2e + k = 0.527; −0.9 keeps cells above 0.474, the block.
    const auto geometry = qwenGeometry(1000, 700, 18, 26);
    const RoiResult r =
        postprocessRoiQwen(blocks({{10, 10, 12, 12}}, 18, 26), 18, 26, withThreshold(-0.9), geometry);
    EXPECT_NEAR(r.threshold, 0.9 * (0.20417996 + 2 * 0.12384140 + 0.07511361), 1e-5);
    EXPECT_EQ(std::count(r.above.begin(), r.above.end(), 1), 4);
    expectBox(r.gridBox, {10, 10, 12, 12}, "block");
}

TEST(RoiPostprocessQwen, SinkMaskExtents) {
    // Reference: sink_mask[:rows // 4, :1] = 0; sink_mask[:1, :cols // 4] = 0 when rows·cols > 768.
    const auto m = qwenSinkMask(32, 32);  // 1024 cells
    ASSERT_EQ(m.size(), 1024u);
    for (int row = 0; row < 32; ++row)
        for (int col = 0; col < 32; ++col) {
            const bool zeroed = (col == 0 && row < 8) || (row == 0 && col < 8);
            EXPECT_EQ(m[std::size_t(row * 32 + col)], zeroed ? 0 : 1) << row << "," << col;
        }
    EXPECT_EQ(std::count(m.begin(), m.end(), 0), 15);

    // Non-square, with integer division: 30 × 41 → column 0 over rows 0..6, row 0 over columns 0..9.
    const auto n = qwenSinkMask(30, 41);
    EXPECT_EQ(std::count(n.begin(), n.end(), 0), 7 + 10 - 1);
    EXPECT_EQ(n[std::size_t(6 * 41)], 0);
    EXPECT_EQ(n[std::size_t(7 * 41)], 1);
    EXPECT_EQ(n[9], 0);
    EXPECT_EQ(n[10], 1);

    for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{24, 24}, {24, 32}, {1, 1}}) {
        const auto ones = qwenSinkMask(rows, cols);  // ≤ 768 cells: untouched
        EXPECT_EQ(std::count(ones.begin(), ones.end(), 1), rows * cols) << rows << "x" << cols;
    }
    const auto justOver = qwenSinkMask(24, 33);  // 792 cells: 6 rows, 8 columns
    EXPECT_EQ(std::count(justOver.begin(), justOver.end(), 0), 6 + 8 - 1);

    EXPECT_THROW((void)qwenSinkMask(0, 32), Error);
    EXPECT_THROW((void)qwenSinkMask(32, -1), Error);
}

TEST(RoiPostprocessQwen, SinkMaskSuppressesTopLeftArtefactsOnBigGrids) {
    // A strong artefact down column 0 over the top quarter and along row 0 over the left quarter, plus a
    // real blob. On 32×32 (> 768 cells) the artefact is zeroed before the blur: the box is the blob's.
    const std::vector<GridBox> artefact = {{0, 0, 1, 8}, {0, 0, 8, 1}};
    std::vector<GridBox> withBlob = artefact;
    withBlob.push_back({18, 20, 22, 24});
    const auto big = qwenGeometry(896, 896, 32, 32);  // scale 1: source = cells × 28
    const RoiResult r = postprocessRoiQwen(blocks(withBlob, 32, 32), 32, 32, withThreshold(0.3), big);
    ASSERT_EQ(r.branch, RoiBranch::Mask);
    expectBox(r.gridBox, {18, 20, 22, 24}, "the blob only");
    EXPECT_EQ(r.sourceBox, (PixelBox{504, 560, 616, 672}));
    EXPECT_EQ(r.probabilities[0], 0.0f);  // masked before the blur
    EXPECT_EQ(r.probabilities[std::size_t(7 * 32)], 0.0f);
    EXPECT_GT(r.probabilities[std::size_t(20 * 32 + 18)], 0.99f);

    // The artefact alone: nothing left.
    const RoiResult alone = postprocessRoiQwen(blocks(artefact, 32, 32), 32, 32, withThreshold(0.3), big);
    EXPECT_EQ(alone.branch, RoiBranch::None);

    // On 24×24 (576 cells, the training size) there is no sink mask: the artefact widens the box to (0, 0).
    const std::vector<GridBox> small = {{0, 0, 1, 6}, {0, 0, 6, 1}, {14, 16, 18, 20}};
    const RoiResult s =
        postprocessRoiQwen(blocks(small, 24, 24), 24, 24, withThreshold(0.3), qwenGeometry(672, 672, 24, 24));
    ASSERT_EQ(s.branch, RoiBranch::Mask);
    expectBox(s.gridBox, {0, 0, 18, 20}, "artefact kept");
}

TEST(RoiPostprocessQwen, CropTokenMaskAtTheBoxSizeIsTheMask) {
    // Two blocks: the tight box {4,4,10,8} (6 × 4 cells) holds a non-rectangular mask; resizing it to its
    // own size (scale 1) keeps it exactly.
    const auto geometry = qwenGeometry(1000, 700, 18, 26);
    RoiResult r = postprocessRoiQwen(blocks({{4, 4, 6, 6}, {8, 6, 10, 8}}, 18, 26), 18, 26,
                                     withThreshold(0.3), geometry);
    ASSERT_EQ(r.branch, RoiBranch::Mask);
    expectBox(r.gridBox, {4, 4, 10, 8}, "tight box");
    qwenCropTokenMask(r, 4, 6);
    EXPECT_EQ(r.tokenMask, aboveInside(r));
    EXPECT_EQ(r.roiTokens, 8);
    EXPECT_TRUE(r.zoom());
}

TEST(RoiPostprocessQwen, CropTokenMaskIsTheBilinearResize) {
    // Two diagonal cells: each has c + k = 0.279, their shared neighbours 2e = 0.248, so 0.26 keeps exactly
    // the diagonal; tight box {10,10,12,12}, Mc = [[1,0],[0,1]]. Resized 2 → 4 with half-pixel centres the
    // source coordinates are 0 (clamped), 0.25, 0.75, 1: weights of cell 0: a = [1, .75, .25, 0],
    // of cell 1: b = 1 − a. Value(i, j) = a_i a_j + b_i b_j:
    //   1    .75   .25   0             > 0.5:  1 1 0 0
    //   .75  .625  .375  .25                   1 1 0 0
    //   .25  .375  .625  .75                   0 0 1 1
    //   0    .25   .75   1                     0 0 1 1
    const auto geometry = qwenGeometry(1000, 700, 18, 26);
    RoiResult r = postprocessRoiQwen(blocks({{10, 10, 11, 11}, {11, 11, 12, 12}}, 18, 26), 18, 26,
                                     withThreshold(0.26), geometry);
    ASSERT_EQ(r.branch, RoiBranch::Mask);
    expectBox(r.gridBox, {10, 10, 12, 12}, "diagonal");
    EXPECT_EQ(aboveInside(r), (std::vector<std::uint8_t>{1, 0, 0, 1}));
    qwenCropTokenMask(r, 4, 4);
    EXPECT_EQ(r.tokenMask, (std::vector<std::uint8_t>{1, 1, 0, 0,  //
                                                      1, 1, 0, 0,  //
                                                      0, 0, 1, 1,  //
                                                      0, 0, 1, 1}));
    EXPECT_EQ(r.roiTokens, 8);

    // Calling again with another crop grid replaces the mask: 2 → 1 averages to 0.5, not > 0.5, so no token
    // is kept, but the result stays a zoom with a full-size (all-zero) mask for the caller's crop block.
    qwenCropTokenMask(r, 1, 1);
    EXPECT_EQ(r.tokenMask, (std::vector<std::uint8_t>{0}));
    EXPECT_EQ(r.roiTokens, 0);
    EXPECT_EQ(r.branch, RoiBranch::Mask);
}

TEST(RoiPostprocessQwen, CropTokenMaskNoZoomAndBadSizes) {
    const auto geometry = qwenGeometry(1000, 700, 18, 26);
    RoiResult none = postprocessRoiQwen(blocks({}, 18, 26), 18, 26, withThreshold(0.3), geometry);
    qwenCropTokenMask(none, 20, 20);  // no-op
    EXPECT_TRUE(none.tokenMask.empty());
    EXPECT_EQ(none.roiTokens, 0);

    RoiResult r = postprocessRoiQwen(blocks({{5, 3, 9, 7}}, 18, 26), 18, 26, withThreshold(0.3), geometry);
    EXPECT_THROW(qwenCropTokenMask(r, 0, 10), Error);
    EXPECT_THROW(qwenCropTokenMask(r, 10, -3), Error);
    EXPECT_THROW(qwenCropTokenMask(none, 0, 0), Error);
    qwenCropTokenMask(r, 12, 17);  // a full block: every crop token
    EXPECT_EQ(r.tokenMask.size(), std::size_t(12 * 17));
    EXPECT_EQ(r.roiTokens, 12 * 17);

    RoiResult broken = r;
    broken.above.resize(5);
    EXPECT_THROW(qwenCropTokenMask(broken, 4, 4), Error);
}

TEST(RoiPostprocessQwen, BadInputsThrow) {
    const auto geometry = qwenGeometry(1000, 700, 18, 26);
    EXPECT_THROW((void)postprocessRoiQwen(std::vector<float>(18 * 25), 18, 26, RoiSettings{}, geometry),
                 Error);
    try {
        (void)postprocessRoiQwen(std::vector<float>(24 * 24), 24, 24, RoiSettings{}, geometry);
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("18x26"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("24x24"), std::string::npos) << e.what();
    }
    RoiSettings bad;
    bad.blurKernel = 2;
    EXPECT_THROW((void)postprocessRoiQwen(std::vector<float>(18 * 26), 18, 26, bad, geometry), Error);
}

// ---- settings
// ----------------------------------------------------------------------------------------------

TEST(RoiSettingsJson, BenchmarkPresets) {
    const std::vector<std::pair<const char*, double>> expected = {
        {"default", 0.15},    {"textvqa_val", 0.15}, {"infovqa_val", 0.15},
        {"chartqa", 0.15},    {"ocrbench", 0.05},    {"docvqa_val", 0.1},
        {"vstar_bench", 0.1}, {"pope", 0.15},        {"hrbench", 0.1}};
    for (const auto& [name, thr] : expected) {
        const auto s = RoiSettings::fromPreset(name);
        EXPECT_DOUBLE_EQ(s.threshold, thr) << name;
        EXPECT_EQ(s.minArea, 4);
        EXPECT_EQ(s.maxArea, 225);
        EXPECT_EQ(s.maskBoxCount, 2);
        EXPECT_EQ(RoiSettings::fromJson(s.toJson()), s) << name;
    }
    EXPECT_EQ(RoiSettings::presetNames().size(), expected.size());
    EXPECT_THROW(RoiSettings::fromPreset("mmmu"), Error);
}

TEST(RoiSettingsJson, OverridesAndErrors) {
    const auto s = RoiSettings::fromJsonText(R"({"preset": "ocrbench", "max_area": 100})");
    EXPECT_EQ(s.preset, "custom");
    EXPECT_DOUBLE_EQ(s.threshold, 0.05);
    EXPECT_EQ(s.maxArea, 100);
    struct Bad {
        const char* json;
        const char* mentions;
    };
    for (const Bad& c : std::vector<Bad>{{R"({"thr": 0.1})", "thr"},
                                         {R"({"threshold": "0.1"})", "threshold"},
                                         {R"({"threshold": 1.5})", "threshold"},
                                         {R"({"min_area": 2.5})", "min_area"},
                                         {R"({"max_area": 0})", "max_area"},
                                         {R"({"blur_kernel": 2})", "blur_kernel"},
                                         {R"({"blur_sigma": 0})", "blur_sigma"},
                                         {R"({"mask_box_count": 0})", "mask_box_count"},
                                         {R"({"preset": "mmmu"})", "preset"},
                                         {"{", "not valid JSON"}}) {
        try {
            (void)RoiSettings::fromJsonText(c.json, "roi.json");
            ADD_FAILURE() << "no error for " << c.json;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(c.mentions), std::string::npos)
                << c.json << " -> " << e.what();
            EXPECT_NE(std::string(e.what()).find("roi.json"), std::string::npos) << e.what();
        }
    }
}

}  // namespace
