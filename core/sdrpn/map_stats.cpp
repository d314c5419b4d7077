#include "core/sdrpn/map_stats.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

namespace sdrpn {

std::vector<std::uint8_t> sinkCells(const GridMap& sink, double threshold, int cells) {
    const std::size_t n = cells < 0 ? sink.values.size() : std::size_t(cells);
    std::vector<std::uint8_t> mask(n, 0);
    if (sink.empty()) return mask;
    // sdrpn.md §2.6: g' = g·[s < τs]; the same comparison as makeLabels, so NaN is a sink there too.
    const float tau = float(threshold);
    for (std::size_t v = 0; v < n && v < sink.values.size(); ++v) mask[v] = !(sink.values[v] < tau) ? 1 : 0;
    return mask;
}

double normalisedEntropy(const std::vector<float>& map) {
    double mass = 0.0;
    for (float v : map)
        if (std::isfinite(v) && v > 0.f) mass += double(v);
    if (!(mass > 0.0)) return MapStats::kNaN;
    double h = 0.0;
    for (float v : map) {
        if (!std::isfinite(v) || v <= 0.f) continue;
        const double p = double(v) / mass;
        h -= p * std::log(p);
    }
    return std::max(h, 0.0);  // rounding can leave −1e-17 for a one-hot map
}

MapStats mapStats(const std::vector<float>& map, const std::vector<std::uint8_t>& sinkMask) {
    MapStats s;
    s.cells = int(map.size());
    double mass = 0.0, sink = 0.0;
    const bool withSinks = !sinkMask.empty() && sinkMask.size() == map.size();
    for (std::size_t v = 0; v < map.size(); ++v) {
        const bool isSink = withSinks && sinkMask[v] != 0;
        if (isSink) ++s.sinkCells;
        if (!std::isfinite(map[v])) continue;
        ++s.finiteCells;
        mass += double(map[v]);
        if (isSink) sink += double(map[v]);
    }
    if (s.finiteCells == 0) return s;
    s.imageMass = mass;
    s.entropy = normalisedEntropy(map);
    if (withSinks) {
        s.sinkMass = sink;
        if (mass > 0.0) s.sinkShare = sink / mass;
    }
    return s;
}

std::vector<MapStats> mapStatsPerLayer(const std::vector<std::vector<float>>& maps,
                                       const std::vector<std::uint8_t>& sinkMask) {
    std::vector<MapStats> out;
    out.reserve(maps.size());
    for (const auto& m : maps) out.push_back(mapStats(m, sinkMask));
    return out;
}

std::int64_t Histogram::total() const {
    std::int64_t n = 0;
    for (std::int64_t c : counts) n += c;
    return n;
}

namespace {

// A non-empty range around [lo, hi].
std::pair<double, double> widened(double lo, double hi) {
    if (!std::isfinite(lo) || !std::isfinite(hi)) return {0.0, 1.0};
    if (hi > lo) return {lo, hi};
    const double v = lo;
    const double w = v != 0.0 ? std::abs(v) : 1.0;
    return {v - 0.5 * w, v + 0.5 * w};
}

}  // namespace

Histogram histogram(const std::vector<float>& values, int bins, double min, double max) {
    Histogram h;
    std::tie(h.min, h.max) = widened(min, max);
    h.counts.assign(std::size_t(std::max(bins, 1)), 0);
    const double width = h.binWidth();
    const int last = h.bins() - 1;
    for (float f : values) {
        if (!std::isfinite(f)) {
            ++h.nonFinite;
            continue;
        }
        const double v = double(f);
        if (v < h.min) {
            ++h.below;
        } else if (v > h.max) {
            ++h.above;
        } else {
            const int bin = std::min(int(std::floor((v - h.min) / width)), last);
            ++h.counts[std::size_t(std::max(bin, 0))];
        }
    }
    return h;
}

Histogram histogram(const std::vector<float>& values, int bins) {
    double lo = MapStats::kNaN, hi = MapStats::kNaN;
    for (float f : values) {
        if (!std::isfinite(f)) continue;
        if (!(double(f) >= lo)) lo = f;  // also true while lo is NaN
        if (!(double(f) <= hi)) hi = f;
    }
    return histogram(values, bins, lo, hi);
}

}  // namespace sdrpn
