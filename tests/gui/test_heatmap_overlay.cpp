// HeatmapOverlay (colour maps, blocky and smooth drawing, cells that are not drawn), LayerStrip (click and
// keys) and AttentionPanel (pickers): the widgets of the attention view, on plain data, offscreen.
#include <QKeyEvent>
#include <QPainter>
#include <QSignalSpy>
#include <QTest>

#include "tests/gui/gui_test_support.h"
#include "widgets/attention_panel.h"
#include "widgets/heatmap_overlay.h"
#include "widgets/layer_strip.h"

namespace {

// Paints `overlay` over a black w×h picture with one unit = one pixel, as ImageView does at zoom 1.
QImage paintOverlay(HeatmapOverlay& overlay, int w, int h) {
    QImage out(w, h, QImage::Format_RGB32);
    out.fill(Qt::black);
    QPainter painter(&out);
    overlay.paint(painter, QRectF(0, 0, w, h), 1.0);
    return out;
}

// A 2 × 3 grid of 10-pixel cells starting at x = 5; the first column is "in the pad band" (not drawn).
std::vector<QRectF> twoByThreeCells() {
    std::vector<QRectF> cells;
    for (int r = 0; r < 2; ++r)
        for (int c = 0; c < 3; ++c) cells.push_back(c == 0 ? QRectF() : QRectF(5 + 10 * c, 10 * r, 10, 10));
    return cells;
}

HeatmapStyle opaque(bool smooth = false) {
    HeatmapStyle style;
    style.opacity = 1.0;
    style.smooth = smooth;
    style.outline = false;
    return style;
}

}  // namespace

TEST(ColorMaps, EndsAndMiddlesAreTheKnownColours) {
    EXPECT_EQ(colorMapColor(ColorMap::Viridis, 0.0), qRgb(68, 1, 84));
    EXPECT_EQ(colorMapColor(ColorMap::Viridis, 1.0), qRgb(253, 231, 37));
    EXPECT_EQ(colorMapColor(ColorMap::Inferno, 0.0), qRgb(0, 0, 4));
    EXPECT_EQ(colorMapColor(ColorMap::Inferno, 1.0), qRgb(252, 255, 164));
    EXPECT_EQ(colorMapColor(ColorMap::Jet, 0.5), qRgb(128, 255, 128));
    EXPECT_EQ(colorMapColor(ColorMap::Jet, 0.0), qRgb(0, 0, 128));
    EXPECT_EQ(colorMapColor(ColorMap::Gray, 1.0), qRgb(255, 255, 255));
    // Clamped outside [0, 1].
    EXPECT_EQ(colorMapColor(ColorMap::Viridis, -3.0), colorMapColor(ColorMap::Viridis, 0.0));
    EXPECT_EQ(colorMapColor(ColorMap::Viridis, 7.0), colorMapColor(ColorMap::Viridis, 1.0));
    EXPECT_EQ(colorMapTable(ColorMap::Inferno).size(), 256);
    EXPECT_EQ(colorMapNames().size(), 4);
    EXPECT_EQ(colorMapName(ColorMap::Jet), QStringLiteral("jet"));
}

TEST(HeatmapOverlay, BlockyCellsGetTheirColourAndUndrawnCellsStayEmpty) {
    HeatmapOverlay overlay;
    overlay.setStyle(opaque());
    // The not-drawn cells hold the extreme values: they must not set the range either.
    overlay.setGrid(2, 3, {100.f, 1.f, 2.f, -50.f, 3.f, 4.f}, twoByThreeCells());
    ASSERT_FALSE(overlay.isEmpty());
    EXPECT_EQ(overlay.valueRange(), std::make_pair(1.f, 4.f));
    const QImage out = paintOverlay(overlay, 40, 20);
    EXPECT_EQ(out.pixel(20, 5), colorMapColor(ColorMap::Viridis, 0.0));   // value 1: the minimum
    EXPECT_EQ(out.pixel(30, 15), colorMapColor(ColorMap::Viridis, 1.0));  // value 4: the maximum
    EXPECT_EQ(out.pixel(20, 15), overlay.colorOf(3.f));                   // in between
    EXPECT_EQ(out.pixel(10, 5), qRgb(0, 0, 0));                           // the not-drawn column
    EXPECT_EQ(out.pixel(2, 2), qRgb(0, 0, 0));                            // outside the grid
    EXPECT_EQ(overlay.cellAt(QPointF(26, 13)), std::make_optional(std::make_pair(1, 2)));
    EXPECT_FALSE(overlay.cellAt(QPointF(8, 5)).has_value());
    EXPECT_FLOAT_EQ(overlay.valueAt(1, 1), 3.f);
}

TEST(HeatmapOverlay, SmoothInterpolatesBetweenCellCentres) {
    HeatmapOverlay overlay;
    overlay.setStyle(opaque(true));
    std::vector<QRectF> cells;
    for (int c = 0; c < 2; ++c) cells.push_back(QRectF(50 * c, 0, 50, 10));
    overlay.setGrid(1, 2, {0.f, 1.f}, cells);
    const QImage out = paintOverlay(overlay, 100, 10);
    // Flat before the first centre and after the last; a ramp between them.
    auto green = [&](int x) { return qGreen(out.pixel(x, 5)); };
    EXPECT_NEAR(green(5), qGreen(colorMapColor(ColorMap::Viridis, 0.0)), 3);
    EXPECT_NEAR(green(95), qGreen(colorMapColor(ColorMap::Viridis, 1.0)), 3);
    EXPECT_NEAR(green(50), qGreen(colorMapColor(ColorMap::Viridis, 0.5)), 8);
    EXPECT_LT(green(40), green(50));
    EXPECT_LT(green(50), green(60));
}

TEST(HeatmapOverlay, MismatchedSizesClearAndOpacityZeroDrawsNothing) {
    HeatmapOverlay overlay;
    overlay.setGrid(2, 2, {1.f, 2.f, 3.f}, std::vector<QRectF>(4, QRectF(0, 0, 1, 1)));
    EXPECT_TRUE(overlay.isEmpty());
    overlay.setGrid(1, 1, {1.f}, {QRectF(0, 0, 10, 10)});
    EXPECT_FALSE(overlay.isEmpty());
    HeatmapStyle style;
    style.opacity = 0.0;
    overlay.setStyle(style);
    EXPECT_EQ(paintOverlay(overlay, 10, 10).pixel(5, 5), qRgb(0, 0, 0));
    overlay.setStyle(opaque());
    // A constant map draws at the middle of the colour map.
    EXPECT_EQ(paintOverlay(overlay, 10, 10).pixel(5, 5), colorMapColor(ColorMap::Viridis, 128 / 255.0));
    overlay.setVisible(false);
    EXPECT_EQ(paintOverlay(overlay, 10, 10).pixel(5, 5), qRgb(0, 0, 0));
}

TEST(HeatmapOverlay, RenderGridNormalisesOverDrawnCells) {
    const QImage thumb = HeatmapOverlay::renderGrid(1, 3, {9.f, 0.f, 1.f}, ColorMap::Gray,
                                                    {false, true, true}, QColor(1, 2, 3));
    ASSERT_EQ(thumb.size(), QSize(3, 1));
    EXPECT_EQ(thumb.pixel(0, 0), qRgb(1, 2, 3));
    EXPECT_EQ(thumb.pixel(1, 0), qRgb(0, 0, 0));
    EXPECT_EQ(thumb.pixel(2, 0), qRgb(255, 255, 255));
    EXPECT_TRUE(HeatmapOverlay::renderGrid(2, 2, {1.f}, ColorMap::Gray).isNull());
}

TEST(LayerStrip, ClickAndArrowKeysSelect) {
    LayerStrip strip;
    QList<QImage> thumbs;
    for (int i = 0; i < 5; ++i) {
        QImage image(4, 4, QImage::Format_RGB32);
        image.fill(QColor(i * 50, 0, 0));
        thumbs << image;
    }
    QSignalSpy changed(&strip, &LayerStrip::currentIndexChanged);
    strip.setThumbnails(thumbs, {"0", "1", "2", "3", "4"});
    EXPECT_EQ(strip.currentIndex(), 0);
    EXPECT_EQ(changed.count(), 1);
    strip.resize(strip.sizeHint());
    strip.show();
    QTest::mouseClick(&strip, Qt::LeftButton, {}, strip.cellRect(3).center());
    EXPECT_EQ(strip.currentIndex(), 3);
    QTest::keyClick(&strip, Qt::Key_Right);
    EXPECT_EQ(strip.currentIndex(), 4);
    QTest::keyClick(&strip, Qt::Key_Right);  // stays at the end
    EXPECT_EQ(strip.currentIndex(), 4);
    QTest::keyClick(&strip, Qt::Key_Left);
    EXPECT_EQ(strip.currentIndex(), 3);
    QTest::keyClick(&strip, Qt::Key_Home);
    EXPECT_EQ(strip.currentIndex(), 0);
    EXPECT_EQ(changed.count(), 5);  // 0 (initial), 3, 4, 3, 0
    EXPECT_EQ(changed.last().at(0).toInt(), 0);

    // Fewer thumbnails keep the selection when it fits; none gives -1.
    strip.setCurrentIndex(2);
    strip.setThumbnails(thumbs.mid(0, 3));
    EXPECT_EQ(strip.currentIndex(), 2);
    EXPECT_EQ(strip.label(1), QStringLiteral("1"));
    strip.clear();
    EXPECT_EQ(strip.currentIndex(), -1);
}

TEST(AttentionPanel, PickersReportTheSelectionAndSkipDisabledQueries) {
    AttentionPanel panel;
    QSignalSpy selection(&panel, &AttentionPanel::selectionChanged);
    panel.setHeadCount(4);
    EXPECT_EQ(panel.headIndex(), -1);  // mean of heads
    panel.setHeadIndex(2);
    EXPECT_EQ(panel.headIndex(), 2);
    EXPECT_GE(selection.count(), 1);

    // The preferred choice is disabled: the first enabled one is taken.
    panel.setQueryOptions({"last", "question", "answer"}, {true, true, false}, 2);
    EXPECT_EQ(panel.queryIndex(), 0);
    panel.setQueryOptions({"last", "question", "answer"}, {true, true, true}, 2);
    EXPECT_EQ(panel.queryIndex(), 0);  // a valid current choice is kept
    panel.setQueryIndex(2);
    EXPECT_EQ(panel.queryIndex(), 2);

    QSignalSpy style(&panel, &AttentionPanel::styleChanged);
    HeatmapStyle s;
    s.colorMap = ColorMap::Inferno;
    s.smooth = true;
    s.opacity = 0.3;
    panel.setStyle(s);
    EXPECT_EQ(panel.style(), s);
    EXPECT_EQ(style.count(), 1);
}
