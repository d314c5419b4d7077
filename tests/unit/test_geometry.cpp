// Grid geometry (mllm_reference.md §6, §10 "Spatial mapping"; sdrpn.md §4.2), with hand-worked numbers.
#include <gtest/gtest.h>

#include "core/models/geometry.h"
#include "core/result.h"

namespace {

using namespace sdrpn;
using namespace sdrpn::models;

void expectRect(const RectF& r, double x0, double y0, double x1, double y1) {
    EXPECT_NEAR(r.x0, x0, 1e-9);
    EXPECT_NEAR(r.y0, y0, 1e-9);
    EXPECT_NEAR(r.x1, x1, 1e-9);
    EXPECT_NEAR(r.y1, y1, 1e-9);
}

TEST(Geometry, ShortestEdgeResizeTruncates) {
    EXPECT_EQ(shortestEdgeResize(640, 480, 336), std::make_pair(448, 336));
    EXPECT_EQ(shortestEdgeResize(480, 640, 336), std::make_pair(336, 448));
    EXPECT_EQ(shortestEdgeResize(336, 336, 336), std::make_pair(336, 336));
    EXPECT_EQ(shortestEdgeResize(1000, 333, 336), std::make_pair(1009, 336));  // int(1009.009)
    EXPECT_EQ(shortestEdgeResize(101, 100, 336), std::make_pair(339, 336));    // int(339.36)
}

TEST(Geometry, PadLandscape) {
    // 640x480 -> 640x640 square, source pasted at (0, 80); 640 -> 336, so 1 processed px = 640/336 source px.
    const auto g = makeGridGeometry(640, 480, ImageFit::Pad);
    EXPECT_EQ(g.gridRows, 24);
    EXPECT_EQ(g.gridCols, 24);
    EXPECT_EQ(g.numCells(), 576);
    EXPECT_DOUBLE_EQ(g.cellWidth(), 14.0);
    EXPECT_EQ(g.resizedWidth, 640);
    EXPECT_EQ(g.padLeft, 0);
    EXPECT_EQ(g.padTop, 80);
    EXPECT_DOUBLE_EQ(g.scaleX, 640.0 / 336.0);
    EXPECT_DOUBLE_EQ(g.offsetY, -80.0);
    // The band is 80 source px = 42 processed px = exactly 3 rows at the top and 3 at the bottom.
    expectRect(g.contentProcessedRect(), 0, 42, 336, 294);
    expectRect(g.visibleSourceRect(), 0, 0, 640, 480);
    EXPECT_FALSE(g.cellHasContent(0, 0));
    EXPECT_FALSE(g.cellHasContent(2, 23));
    EXPECT_TRUE(g.cellHasContent(3, 0));
    EXPECT_TRUE(g.cellHasContent(20, 23));
    EXPECT_FALSE(g.cellHasContent(21, 5));
    const double cell = 14.0 * 640.0 / 336.0;  // 26.667 source px
    expectRect(g.cellToSource(3, 0), 0, 0, cell, cell);
    expectRect(g.cellToSource(20, 23), 23 * cell, 480 - cell, 640, 480);
    // Centre of the image -> processed (168, 168) -> cell (12, 12).
    EXPECT_EQ(g.sourceToCell(320, 240), std::make_pair(12, 12));
    EXPECT_EQ(g.sourceToCell(0, 0), std::make_pair(3, 0));
    EXPECT_EQ(g.sourceToCell(639.9, 479.9), std::make_pair(20, 23));
    EXPECT_FALSE(g.sourceToCell(-0.5, 10));
    EXPECT_FALSE(g.sourceToCell(10, 480));
}

TEST(Geometry, PadPortrait) {
    // 480x640: pasted at (80, 0); columns 0-2 and 21-23 are band.
    const auto g = makeGridGeometry(480, 640, ImageFit::Pad);
    EXPECT_EQ(g.padLeft, 80);
    EXPECT_EQ(g.padTop, 0);
    expectRect(g.contentProcessedRect(), 42, 0, 294, 336);
    EXPECT_FALSE(g.cellHasContent(10, 2));
    EXPECT_TRUE(g.cellHasContent(10, 3));
    EXPECT_EQ(g.sourceToCell(240, 320), std::make_pair(12, 12));
}

TEST(Geometry, PadOddBandIsFloored) {
    // 100x51: square 100, paste at (0, (100-51)//2 = 24).
    const auto g = makeGridGeometry(100, 51, ImageFit::Pad);
    EXPECT_EQ(g.padTop, 24);
    EXPECT_DOUBLE_EQ(g.offsetY, -24.0);
    expectRect(g.visibleSourceRect(), 0, 0, 100, 51);
}

TEST(Geometry, SquareIsIdentityAt336) {
    for (const auto fit : {ImageFit::Pad, ImageFit::Crop}) {
        const auto g = makeGridGeometry(336, 336, fit);
        EXPECT_DOUBLE_EQ(g.scaleX, 1.0);
        EXPECT_DOUBLE_EQ(g.offsetX, 0.0);
        expectRect(g.cellToSource(1, 2), 28, 14, 42, 28);
        EXPECT_EQ(g.sourceToCell(28, 14), std::make_pair(1, 2));
        EXPECT_EQ(g.gridBoxToSourcePixels({2, 1, 3, 2}), (PixelBox{28, 14, 42, 28}));
    }
}

TEST(Geometry, CropLandscape) {
    // 640x480 -> 448x336, crop left (448-336)//2 = 56; 1 resized px = 640/448 source px.
    const auto g = makeGridGeometry(640, 480, ImageFit::Crop);
    EXPECT_EQ(g.resizedWidth, 448);
    EXPECT_EQ(g.resizedHeight, 336);
    EXPECT_EQ(g.cropLeft, 56);
    EXPECT_EQ(g.cropTop, 0);
    EXPECT_DOUBLE_EQ(g.offsetX, 80.0);  // 56 * 640/448
    // Only the centred 480x480 region is seen.
    expectRect(g.visibleSourceRect(), 80, 0, 560, 480);
    expectRect(g.contentProcessedRect(), 0, 0, 336, 336);
    expectRect(g.cellToSource(0, 0), 80, 0, 100, 20);
    expectRect(g.cellToSource(23, 23), 540, 460, 560, 480);
    expectRect(g.gridBoxToSource({0, 0, 24, 24}), 80, 0, 560, 480);
    EXPECT_EQ(g.sourceToCell(80, 0), std::make_pair(0, 0));
    EXPECT_EQ(g.sourceToCell(320, 240), std::make_pair(12, 12));
    EXPECT_FALSE(g.sourceToCell(79.9, 100));
    EXPECT_FALSE(g.sourceToCell(560, 100));
    EXPECT_EQ(g.gridBoxToSourcePixels({5, 5, 10, 8}), (PixelBox{180, 100, 280, 160}));
}

TEST(Geometry, CropPortrait) {
    const auto g = makeGridGeometry(480, 640, ImageFit::Crop);
    EXPECT_EQ(g.cropLeft, 0);
    EXPECT_EQ(g.cropTop, 56);
    expectRect(g.visibleSourceRect(), 0, 80, 480, 560);
}

TEST(Geometry, CenterCropRounding) {
    // 101x100 -> 339x336: excess 3. transformers: 3 // 2 = 1; torchvision: round(1.5) = 2 (half to even).
    EXPECT_EQ(makeGridGeometry(101, 100, ImageFit::Crop).cropLeft, 1);
    EXPECT_EQ(makeGridGeometry(101, 100, ImageFit::Crop, 336, 14, CenterCrop::RoundHalfEven).cropLeft, 2);
    // 100x37 -> int(336*100/37) = 908: excess 572, even: 286 both ways.
    EXPECT_EQ(makeGridGeometry(100, 37, ImageFit::Crop, 336, 14, CenterCrop::RoundHalfEven).cropLeft, 286);
    // An excess of 5: round(2.5) = 2.  302x299 -> int(339.37) = 339? no: find one with excess 5 by hand
    // below.
    const auto g = makeGridGeometry(341, 336, ImageFit::Crop, 336, 14, CenterCrop::RoundHalfEven);
    EXPECT_EQ(g.resizedWidth, 341);
    EXPECT_EQ(g.cropLeft, 2);
    EXPECT_EQ(makeGridGeometry(343, 336, ImageFit::Crop, 336, 14, CenterCrop::RoundHalfEven).cropLeft, 4);
    EXPECT_EQ(makeGridGeometry(343, 336, ImageFit::Crop).cropLeft, 3);
}

TEST(Geometry, PadBoxToSourceFollowsTheReference) {
    // sdrpn.md §4.2 get_bbox4src for 640x480: r = 0.525, rw = 336, rh = 252, pad (0, 42).
    const auto g = makeGridGeometry(640, 480, ImageFit::Pad);
    // The content rows 3..20 map to the whole image.
    EXPECT_EQ(g.gridBoxToSourcePixels({0, 3, 24, 21}), (PixelBox{0, 0, 640, 480}));
    // (70/0.525, 28/0.525, 140/0.525, 70/0.525) = (133.3, 53.3, 266.7, 133.3), truncated.
    EXPECT_EQ(g.gridBoxToSourcePixels({5, 5, 10, 8}), (PixelBox{133, 53, 266, 133}));
    // A box in the band clamps to an empty box on the image edge.
    EXPECT_TRUE(g.gridBoxToSourcePixels({0, 0, 24, 3}).empty());
    EXPECT_TRUE(g.gridBoxToSource({0, 0, 24, 3}).empty());
    // The exact rectangle agrees here: the band is a whole number of processed pixels.
    const RectF exact = g.gridBoxToSource({5, 5, 10, 8});
    EXPECT_NEAR(exact.x0, 133.333, 1e-3);
    EXPECT_NEAR(exact.y0, 53.333, 1e-3);
}

TEST(Geometry, PadBoxWhereTheReferenceRounds) {
    // 500x333: S = 500, paste top (500-333)//2 = 83 exactly; the reference uses r = 336/500, rh =
    // int(223.776) = 223, pad_y = 56.5. Row 4 starts at processed y 56 -> (56 - 56.5) / 0.672 < 0 -> clamped
    // to 0.
    const auto g = makeGridGeometry(500, 333, ImageFit::Pad);
    EXPECT_EQ(g.padTop, 83);
    const PixelBox ref = g.gridBoxToSourcePixels({0, 4, 1, 5});
    EXPECT_EQ(ref.y0, 0);
    EXPECT_EQ(ref.y1, static_cast<int>((70 - 56.5) / 0.672));  // 20
    EXPECT_EQ(ref.x1, static_cast<int>(14 / 0.672));           // 20
    // The exact geometry: 56 * 500/336 - 83 = 0.33 -> 70 * 500/336 - 83 = 21.17.
    const RectF exact = g.gridBoxToSource({0, 4, 1, 5});
    EXPECT_NEAR(exact.y0, 56 * 500.0 / 336 - 83, 1e-9);
    EXPECT_NEAR(exact.y1, 70 * 500.0 / 336 - 83, 1e-9);
}

TEST(Geometry, NamesAndErrors) {
    EXPECT_STREQ(imageFitName(ImageFit::Pad), "pad");
    EXPECT_EQ(parseImageFit("crop"), ImageFit::Crop);
    EXPECT_FALSE(parseImageFit("stretch"));
    EXPECT_THROW(makeGridGeometry(0, 10, ImageFit::Pad), Error);
    EXPECT_THROW(makeGridGeometry(10, 10, ImageFit::Pad, 336, 15), Error);
    const auto qwenLike = makeGridGeometry(448, 448, ImageFit::Crop, 448, 28);
    EXPECT_EQ(qwenLike.gridRows, 16);
}

}  // namespace
