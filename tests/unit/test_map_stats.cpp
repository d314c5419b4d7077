// Per-map statistics (mass on the image, entropy, sink mass) and the histogram helper, on hand-worked maps.
#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "core/sdrpn/map_stats.h"

using namespace sdrpn;

namespace {
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
}  // namespace

TEST(MapStats, UniformMapHasEntropyLogN) {
    const std::vector<float> map(576, 0.5f / 576.f);  // half the row's attention, spread evenly
    const MapStats s = mapStats(map);
    EXPECT_NEAR(s.imageMass, 0.5, 1e-6);
    EXPECT_NEAR(s.entropy, std::log(576.0), 1e-9);
    EXPECT_EQ(s.cells, 576);
    EXPECT_EQ(s.finiteCells, 576);
    EXPECT_TRUE(std::isnan(s.sinkMass));  // no sink mask given
    EXPECT_TRUE(std::isnan(s.sinkShare));
    EXPECT_NEAR(normalisedEntropy({1.f, 1.f, 1.f, 1.f}), std::log(4.0), 1e-12);
}

TEST(MapStats, OneHotMapHasEntropyZero) {
    std::vector<float> map(16, 0.f);
    map[5] = 0.3f;
    const MapStats s = mapStats(map);
    EXPECT_NEAR(s.imageMass, 0.3, 1e-7);
    EXPECT_EQ(s.entropy, 0.0);
}

TEST(MapStats, TwoCellsByHand) {
    // p = (0.25, 0.75): H = -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.5623351446...
    const MapStats s = mapStats({0.1f, 0.3f});
    EXPECT_NEAR(s.imageMass, 0.4, 1e-7);
    EXPECT_NEAR(s.entropy, 0.5623351446188083, 1e-7);
}

TEST(MapStats, SinkMassUsesTheMaskAndShare) {
    const std::vector<float> map = {0.2f, 0.1f, 0.05f, 0.05f};
    const MapStats s = mapStats(map, {1, 0, 0, 1});
    EXPECT_NEAR(s.imageMass, 0.4, 1e-7);
    EXPECT_NEAR(s.sinkMass, 0.25, 1e-7);
    EXPECT_NEAR(s.sinkShare, 0.625, 1e-6);
    EXPECT_EQ(s.sinkCells, 2);
    // A mask of the wrong size gives no sink statistics rather than reading past the end.
    EXPECT_TRUE(std::isnan(mapStats(map, {1, 0}).sinkMass));
}

TEST(MapStats, NonFiniteCellsAreSkipped) {
    const MapStats s = mapStats({0.5f, kNaN, 0.5f, kInf}, {0, 1, 1, 0});
    EXPECT_EQ(s.finiteCells, 2);
    EXPECT_EQ(s.sinkCells, 2);
    EXPECT_NEAR(s.imageMass, 1.0, 1e-7);
    EXPECT_NEAR(s.entropy, std::log(2.0), 1e-12);
    EXPECT_NEAR(s.sinkMass, 0.5, 1e-7);  // the NaN sink cell adds nothing

    const MapStats none = mapStats({kNaN, kNaN}, {1, 1});
    EXPECT_EQ(none.finiteCells, 0);
    EXPECT_TRUE(std::isnan(none.imageMass));
    EXPECT_TRUE(std::isnan(none.entropy));
    EXPECT_TRUE(std::isnan(none.sinkMass));

    const MapStats zero = mapStats({0.f, 0.f, 0.f});
    EXPECT_EQ(zero.imageMass, 0.0);
    EXPECT_TRUE(std::isnan(zero.entropy));  // nothing to normalise

    const MapStats empty = mapStats({});
    EXPECT_EQ(empty.cells, 0);
    EXPECT_TRUE(std::isnan(empty.imageMass));
}

TEST(MapStats, PerLayer) {
    const std::vector<MapStats> s = mapStatsPerLayer({{1.f, 1.f}, {2.f, 0.f}}, {0, 1});
    ASSERT_EQ(s.size(), 2u);
    EXPECT_NEAR(s[0].entropy, std::log(2.0), 1e-12);
    EXPECT_EQ(s[1].entropy, 0.0);
    EXPECT_EQ(s[0].sinkMass, 1.0);
    EXPECT_EQ(s[1].sinkMass, 0.0);
}

TEST(SinkCells, FollowTheLabelRule) {
    // sdrpn.md §2.6: a cell stays only when s < τs, so s == τs and NaN are sinks.
    GridMap sink;
    sink.rows = 1;
    sink.cols = 5;
    sink.values = {0.0f, 0.0009f, 0.001f, 0.5f, kNaN};
    sink.queries = 3;
    EXPECT_EQ(sinkCells(sink, 1e-3), (std::vector<std::uint8_t>{0, 0, 1, 1, 1}));
    // No sink map: no sinks, as many cells as asked for.
    EXPECT_EQ(sinkCells(GridMap{}, 1e-3, 3), (std::vector<std::uint8_t>{0, 0, 0}));

    // The cells the label maths zeroes in g' are exactly these.
    sink.values[4] = 0.f;  // makeLabels rejects a NaN map outright
    GridMap grounding = sink;
    grounding.values = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
    LabelSettings settings;
    settings.sinkThreshold = 1e-3;
    settings.maxBoxRatio = 1.0;
    const Labels labels = makeLabels(grounding, sink, settings);
    ASSERT_TRUE(labels.ok()) << labelStatusName(labels.status);
    const auto mask = sinkCells(sink, settings.sinkThreshold);
    for (std::size_t v = 0; v < mask.size(); ++v) EXPECT_EQ(labels.grounding[v] == 0.f, mask[v] == 1) << v;
}

TEST(Histogram, BinsByHand) {
    const Histogram h = histogram({0.f, 0.1f, 0.25f, 0.5f, 0.99f, 1.f, -0.5f, 2.f, kNaN}, 4, 0.0, 1.0);
    EXPECT_EQ(h.bins(), 4);
    EXPECT_DOUBLE_EQ(h.binWidth(), 0.25);
    EXPECT_EQ(h.counts, (std::vector<std::int64_t>{2, 1, 1, 2}));  // max falls in the last bin
    EXPECT_EQ(h.below, 1);
    EXPECT_EQ(h.above, 1);
    EXPECT_EQ(h.nonFinite, 1);
    EXPECT_EQ(h.total(), 6);
    EXPECT_DOUBLE_EQ(h.binLeft(2), 0.5);
    EXPECT_DOUBLE_EQ(h.binCentre(0), 0.125);
}

TEST(Histogram, AutomaticRange) {
    const Histogram h = histogram({3.f, 1.f, kNaN, 2.f, -kInf}, 2);
    EXPECT_EQ(h.min, 1.0);
    EXPECT_EQ(h.max, 3.0);
    EXPECT_EQ(h.counts, (std::vector<std::int64_t>{1, 2}));
    EXPECT_EQ(h.nonFinite, 2);

    const Histogram constant = histogram({0.5f, 0.5f}, 3);
    EXPECT_DOUBLE_EQ(constant.min, 0.25);
    EXPECT_DOUBLE_EQ(constant.max, 0.75);
    EXPECT_EQ(constant.counts, (std::vector<std::int64_t>{0, 2, 0}));

    const Histogram nothing = histogram({kNaN}, 0);
    EXPECT_EQ(nothing.bins(), 1);  // at least one bin
    EXPECT_EQ(nothing.min, 0.0);
    EXPECT_EQ(nothing.max, 1.0);
    EXPECT_EQ(nothing.total(), 0);
    EXPECT_EQ(nothing.nonFinite, 1);
}
