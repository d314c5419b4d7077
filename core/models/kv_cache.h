// KvCache: the post-RoPE keys and values of every decoder layer for one sequence (batch 1).
//
// Storage grows geometrically (amortised O(1) append, no per-token concatenation), or is allocated once
// at the reserved size. Each layer keeps its own
// length so that a partial prefill (layers [0, K) only, the SD-RPN first pass) can be rolled back with
// truncate() and the shared prefix reused by a second pass.
//
//   KvCache cache(layers);
//   auto [k, v] = cache.append(layer, kNew, vNew);   // kNew [kvHeads, n, headDim]; k, v: all keys so far
//   cache.truncate(prefixLength);                     // drop everything at positions >= prefixLength
//
// Thread safety: none; one cache belongs to one job (see Context).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace sdrpn::models {

class KvCache {
public:
    KvCache() = default;
    explicit KvCache(int layers);

    int layerCount() const { return int(m_layers.size()); }
    std::int64_t length(int layer) const;

    // Appends k, v ([kvHeads, n, headDim]) to `layer` and returns views of all its keys and values,
    // [kvHeads, length, headDim].
    std::pair<torch::Tensor, torch::Tensor> append(int layer, const torch::Tensor& k, const torch::Tensor& v);
    torch::Tensor keys(int layer) const;    // [kvHeads, length, headDim]; undefined when empty
    torch::Tensor values(int layer) const;  // idem

    // Allocate room for `positions` in every layer at its first append (a static cache: decoding within it
    // never reallocates or copies). Layers already allocated grow to it at their next append.
    void reserve(std::int64_t positions);
    std::int64_t reserved() const { return m_reserve; }
    // A layer's whole storage (keys, values), [kvHeads, capacity, headDim]: for writers that place rows
    // themselves (static decoding); undefined before the layer's first append. Rows never written hold
    // zeros; rows past a truncation keep what was written there.
    std::pair<torch::Tensor, torch::Tensor> storage(int layer) const;
    std::int64_t capacity(int layer) const;
    // Every layer's length becomes `length` (<= its capacity): rows a static writer has placed become part
    // of the cache.
    void setLength(std::int64_t length);
    // Every layer keeps at most `length` positions.
    void truncate(std::int64_t length);
    void clear() { truncate(0); }
    // A deep copy holding only the used positions.
    KvCache clone() const;
    // Bytes allocated (capacity, not only the used part).
    std::int64_t bytes() const;

private:
    struct Layer {
        torch::Tensor k, v;  // [kvHeads, capacity, headDim]
        std::int64_t length = 0;
    };
    std::vector<Layer> m_layers;
    std::int64_t m_reserve = 0;
};

}  // namespace sdrpn::models
