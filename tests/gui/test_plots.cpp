// The QCustomPlot widgets offscreen: per-layer statistics with the current layer marked and click-to-select,
// the histogram with its threshold lines, live training curves.
#include <cmath>
#include <limits>

#include <QSignalSpy>
#include <QTest>

#include <gtest/gtest.h>
#include <qcustomplot.h>

#include "tests/gui/gui_test_support.h"
#include "widgets/plots.h"

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}

TEST(LayerStatsPlot, DrawsTheThreeStatisticsAndSelectsOnClick) {
    LayerStatsPlot plot;
    plot.resize(500, 300);
    plot.show();
    const QVector<double> layers = {0, 1, 2, 3, 4, 5, 6, 7};
    const QVector<double> mass = {0.9, 0.8, 0.5, 0.3, 0.2, 0.25, 0.3, kNaN};
    const QVector<double> entropy = {6.1, 5.9, 5.0, 4.2, 3.9, 4.0, 4.4, kNaN};
    const QVector<double> sink = {0.1, 0.6, 0.3, 0.1, 0.05, 0.04, 0.02, kNaN};
    plot.setStats(layers, mass, entropy, sink);
    EXPECT_EQ(plot.layerCount(), 8);
    EXPECT_EQ(plot.massGraph()->data()->size(), 8);
    EXPECT_EQ(plot.entropyGraph()->data()->size(), 8);
    EXPECT_EQ(plot.sinkGraph()->data()->size(), 8);
    EXPECT_EQ(plot.entropyGraph()->valueAxis(), plot.customPlot()->yAxis2);  // own axis

    plot.setCurrentLayer(3);
    EXPECT_EQ(plot.currentLayer(), 3);
    plot.customPlot()->replot();  // lay the axes out now

    QSignalSpy clicked(&plot, &LayerStatsPlot::layerClicked);
    const double x = plot.pixelOfLayer(5);
    const int y = plot.customPlot()->axisRect()->rect().center().y();
    EXPECT_EQ(plot.layerAtPixel(x + 3), 5);
    QTest::mouseClick(plot.customPlot(), Qt::LeftButton, {}, QPoint(int(std::lround(x)) + 2, y));
    ASSERT_EQ(clicked.count(), 1);
    EXPECT_EQ(clicked.at(0).at(0).toInt(), 5);
    EXPECT_EQ(plot.currentLayer(), 5);

    // Mismatched sizes clear rather than draw half a plot.
    plot.setStats(layers, mass, entropy, {0.1});
    EXPECT_EQ(plot.layerCount(), 0);
    EXPECT_EQ(plot.massGraph()->data()->size(), 0);
    EXPECT_EQ(plot.layerAtPixel(10), -1);
}

TEST(MapHistogram, BarsAndThresholdLines) {
    MapHistogram hist;
    hist.resize(400, 250);
    hist.setHistogram(0.0, 0.02, {5, 10, 3, 0, 1});
    EXPECT_EQ(hist.binCount(), 5);
    EXPECT_NEAR(hist.bars()->width(), 0.004, 1e-12);
    EXPECT_NEAR(hist.bars()->data()->at(0)->key, 0.002, 1e-12);  // bin centres

    hist.setThresholds({{0.001, QStringLiteral("τs")}, {0.012, QStringLiteral("α·max")}});
    EXPECT_EQ(hist.thresholdCount(), 2);
    // One line and one label per threshold.
    int lines = 0, labels = 0;
    for (int i = 0; i < hist.customPlot()->itemCount(); ++i) {
        if (qobject_cast<QCPItemStraightLine*>(hist.customPlot()->item(i))) ++lines;
        if (auto* t = qobject_cast<QCPItemText*>(hist.customPlot()->item(i))) {
            ++labels;
            EXPECT_TRUE(t->text() == QStringLiteral("τs") || t->text() == QStringLiteral("α·max"));
        }
    }
    EXPECT_EQ(lines, 2);
    EXPECT_EQ(labels, 2);

    // A threshold beyond the data stays visible.
    hist.setThresholds({{0.05, QStringLiteral("far")}});
    EXPECT_GE(hist.customPlot()->xAxis->range().upper, 0.05);

    hist.setHistogram(1.0, 1.0, {1, 2});  // no range: cleared
    EXPECT_EQ(hist.binCount(), 0);
}

TEST(TrainingCurves, AppendsLiveAndClears) {
    TrainingCurves curves;
    curves.resize(400, 250);
    curves.appendPoint(1, 0.69, 1e-5);
    curves.appendPoint(2, 0.55, 2e-5);
    curves.appendPoint(3, 0.41, 1.5e-5);
    EXPECT_EQ(curves.pointCount(), 3);
    EXPECT_EQ(curves.lrGraph()->data()->size(), 3);
    EXPECT_EQ(curves.lrGraph()->valueAxis(), curves.customPlot()->yAxis2);
    QCoreApplication::processEvents();  // the queued rescale
    EXPECT_LE(curves.customPlot()->xAxis->range().lower, 1.0);
    EXPECT_GE(curves.customPlot()->xAxis->range().upper, 3.0);
    EXPECT_GE(curves.customPlot()->yAxis->range().upper, 0.69);
    EXPECT_GE(curves.customPlot()->yAxis2->range().upper, 2e-5);
    curves.setTitle(QStringLiteral("run 1"));
    curves.setTitle(QStringLiteral("run 2"));
    curves.clear();
    EXPECT_EQ(curves.pointCount(), 0);
}
