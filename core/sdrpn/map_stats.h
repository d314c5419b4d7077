// Statistics of attention maps over an image's token grid, for the studio's per-layer plots and histogram:
// how much of a query row's attention lands on the image at all, how spread out it is there, and how much
// of it goes to sink tokens (the cells the label maths removes, sdrpn.md §2.4, §2.6).
//
//   std::vector<std::uint8_t> sinks = sinkCells(sinkMap(maps, settings), settings.sinkThreshold);
//   for (const auto& layerMap : perLayerMaps) {          // head-mean attention of one layer, row-major
//       MapStats s = mapStats(layerMap, sinks);
//       plot(s.imageMass, s.entropy, s.sinkMass);
//   }
//   Histogram h = histogram(currentMap, 40);             // bins over [min, max] of the finite values
//
// Plain data in, plain data out; no LibTorch. All functions are pure and thread-safe and never throw on bad
// data: non-finite cells are skipped and counted, a map with no finite cell gives NaN statistics.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "core/sdrpn/labels.h"

namespace sdrpn {

struct MapStats {
    static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

    double imageMass = kNaN;  // Σ of the finite cells: the attention the row gives the image
    double entropy = kNaN;  // −Σ p·ln p (nats) of p = cell / imageMass over the finite cells; negative cells
                            // count as 0. ln(n) for a uniform map over n cells, 0 for a one-hot map.
                            // NaN when the mass is not positive.
    double sinkMass = kNaN;   // Σ of the finite cells that are sinks; NaN when no sink mask is given
    double sinkShare = kNaN;  // sinkMass / imageMass; NaN when either is NaN or the mass is not positive
    int cells = 0;            // cells in the map
    int finiteCells = 0;      // cells that are neither NaN nor ±inf
    int sinkCells = 0;        // cells marked as sinks (finite or not)
};

// Sink cells of a sink map with threshold τs, exactly as the label maths removes them (sdrpn.md §2.6:
// g' = g·[s < τs], so a cell is a sink unless s < τs; a NaN cell therefore counts as a sink). 1 = sink.
// An empty sink map (settings without a sink group) marks no cell: the result is all zero, of
// `cells` entries (the sink map's own size when `cells` < 0).
std::vector<std::uint8_t> sinkCells(const GridMap& sink, double threshold, int cells = -1);

// Statistics of one map (one layer's attention over the image cells, row-major). `sinkMask` is empty (no
// sink statistics) or has one entry per cell (else the sink statistics are NaN).
MapStats mapStats(const std::vector<float>& map, const std::vector<std::uint8_t>& sinkMask = {});

// The same for every map of `maps` (e.g. one per layer), with one sink mask for all.
std::vector<MapStats> mapStatsPerLayer(const std::vector<std::vector<float>>& maps,
                                       const std::vector<std::uint8_t>& sinkMask = {});

// Entropy in nats of `map` normalised to sum 1 over its finite cells (negative cells count as 0); NaN
// when the finite, positive mass is zero.
double normalisedEntropy(const std::vector<float>& map);

// Equal-width bins over [min, max]: bin i holds min + i·w <= v < min + (i+1)·w, the last bin also holds
// v == max. Values below min or above max are counted apart, as are NaN and ±inf.
struct Histogram {
    double min = 0.0;
    double max = 1.0;
    std::vector<std::int64_t> counts;
    std::int64_t below = 0;      // finite values < min
    std::int64_t above = 0;      // finite values > max
    std::int64_t nonFinite = 0;  // NaN, +inf, −inf

    int bins() const { return int(counts.size()); }
    double binWidth() const { return counts.empty() ? 0.0 : (max - min) / double(counts.size()); }
    double binLeft(int bin) const { return min + binWidth() * double(bin); }
    double binCentre(int bin) const { return min + binWidth() * (double(bin) + 0.5); }
    std::int64_t total() const;  // Σ counts (the values inside [min, max])
};

// `bins` (at least 1) bins over [min, max]. When max <= min (or either is not finite) the range is
// widened as for the automatic range below.
Histogram histogram(const std::vector<float>& values, int bins, double min, double max);
// Bins over [min, max] of the finite values. A constant map gets a range of width |v| (1 when v is 0)
// centred on v; a map with no finite value gets [0, 1] with every count zero.
Histogram histogram(const std::vector<float>& values, int bins);

}  // namespace sdrpn
