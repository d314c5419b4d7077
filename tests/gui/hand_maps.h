// Small hand-made attention maps for the head and query selection tests: 4 heads, a 2 × 2 image grid (no
// extra key), rows last prompt + 3 answer tokens, decoder layers 3, 5, 7, ... The values are small unrelated
// numbers so that each expected mean is worked out by hand from kHandValues; slot s adds 100·s.
#pragma once

#include "core/models/capture.h"

namespace sdrpn::test {

// [head][row][key]
inline constexpr float kHandValues[4][4][4] = {
    {{1, 2, 3, 4}, {2, 0, 0, 2}, {4, 4, 0, 0}, {0, 6, 0, 6}},
    {{9, 9, 9, 9}, {8, 8, 8, 8}, {7, 7, 7, 7}, {6, 6, 6, 6}},
    {{0, 0, 0, 8}, {4, 2, 0, 0}, {0, 2, 4, 6}, {2, 0, 0, 0}},
    {{5, 5, 5, 5}, {1, 1, 1, 1}, {3, 3, 3, 3}, {0, 0, 0, 0}},
};

// value(slot, head, row, key) = 100·slot + kHandValues[head][row][key]; slot s is decoder layer 3 + 2·s.
inline models::AttentionMaps handMadeMaps(int layers) {
    models::AttentionMaps maps;
    maps.heads = 4;
    maps.imageKeys = 4;
    maps.imageSpans.push_back({10, 4, {2, 2}});
    maps.rows = {{20, 7, models::QueryKind::LastPrompt},
                 {21, 8, models::QueryKind::Answer},
                 {22, 9, models::QueryKind::Answer},
                 {23, 5, models::QueryKind::Answer}};
    for (int slot = 0; slot < layers; ++slot) {
        models::LayerAttention la;
        la.layer = 3 + 2 * slot;
        for (const auto& head : kHandValues)
            for (const auto& row : head)
                for (float x : row) la.values.push_back(100.0f * float(slot) + x);
        maps.layers.push_back(la);
    }
    return maps;
}

}  // namespace sdrpn::test
