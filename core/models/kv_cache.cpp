#include "core/models/kv_cache.h"

#include <algorithm>

namespace sdrpn::models {

namespace {
constexpr std::int64_t kMinCapacity = 256;
}

KvCache::KvCache(int layers) : m_layers(std::size_t(std::max(layers, 0))) {}

std::int64_t KvCache::length(int layer) const {
    TORCH_CHECK(layer >= 0 && layer < layerCount(), "KvCache: layer ", layer, " out of range [0, ",
                layerCount(), ")");
    return m_layers[std::size_t(layer)].length;
}

std::pair<torch::Tensor, torch::Tensor> KvCache::append(int layer, const torch::Tensor& k,
                                                        const torch::Tensor& v) {
    TORCH_CHECK(layer >= 0 && layer < layerCount(), "KvCache: layer ", layer, " out of range");
    TORCH_CHECK(k.dim() == 3 && v.dim() == 3 && k.sizes() == v.sizes(),
                "KvCache: keys and values must be [kvHeads, n, headDim] of the same shape, got ", k.sizes(),
                " and ", v.sizes());
    Layer& l = m_layers[std::size_t(layer)];
    const std::int64_t n = k.size(1);
    const std::int64_t need = l.length + n;
    if (!l.k.defined() || l.k.size(0) != k.size(0) || l.k.size(2) != k.size(2) ||
        l.k.scalar_type() != k.scalar_type() || l.k.device() != k.device()) {
        TORCH_CHECK(l.length == 0, "KvCache: layer ", layer, " changed shape, dtype or device mid-sequence");
        l.k = torch::Tensor();
        l.v = torch::Tensor();
    }
    if (!l.k.defined() || need > l.k.size(1) || (l.k.size(1) < m_reserve)) {
        const std::int64_t old = l.k.defined() ? l.k.size(1) : 0;
        const std::int64_t capacity =
            need > old ? std::max({need, 2 * old, kMinCapacity, m_reserve}) : std::max(old, m_reserve);
        // Zeros, not garbage: a static decode step reads the unused rows too (masked, with weight 0, and
        // 0 · NaN would still be NaN).
        auto grownK = torch::zeros({k.size(0), capacity, k.size(2)}, k.options());
        auto grownV = torch::zeros({v.size(0), capacity, v.size(2)}, v.options());
        if (l.length > 0) {
            grownK.narrow(1, 0, l.length).copy_(l.k.narrow(1, 0, l.length));
            grownV.narrow(1, 0, l.length).copy_(l.v.narrow(1, 0, l.length));
        }
        l.k = grownK;
        l.v = grownV;
    }
    l.k.narrow(1, l.length, n).copy_(k);
    l.v.narrow(1, l.length, n).copy_(v);
    l.length = need;
    return {l.k.narrow(1, 0, l.length), l.v.narrow(1, 0, l.length)};
}

torch::Tensor KvCache::keys(int layer) const {
    const Layer& l = m_layers.at(std::size_t(layer));
    return l.length > 0 ? l.k.narrow(1, 0, l.length) : torch::Tensor();
}

torch::Tensor KvCache::values(int layer) const {
    const Layer& l = m_layers.at(std::size_t(layer));
    return l.length > 0 ? l.v.narrow(1, 0, l.length) : torch::Tensor();
}

std::pair<torch::Tensor, torch::Tensor> KvCache::storage(int layer) const {
    const Layer& l = m_layers.at(std::size_t(layer));
    return {l.k, l.v};
}

std::int64_t KvCache::capacity(int layer) const {
    const Layer& l = m_layers.at(std::size_t(layer));
    return l.k.defined() ? l.k.size(1) : 0;
}

void KvCache::setLength(std::int64_t length) {
    for (std::size_t i = 0; i < m_layers.size(); ++i)
        TORCH_CHECK(length >= 0 && length <= capacity(int(i)), "KvCache: length ", length,
                    " beyond the capacity ", capacity(int(i)), " of layer ", i);
    for (Layer& l : m_layers) l.length = length;
}

void KvCache::reserve(std::int64_t positions) {
    TORCH_CHECK(positions >= 0, "KvCache: negative reserve ", positions);
    m_reserve = positions;
}

void KvCache::truncate(std::int64_t length) {
    TORCH_CHECK(length >= 0, "KvCache: negative length ", length);
    for (Layer& l : m_layers) l.length = std::min(l.length, length);
}

KvCache KvCache::clone() const {
    KvCache copy(layerCount());
    for (std::size_t i = 0; i < m_layers.size(); ++i) {
        const Layer& l = m_layers[i];
        if (l.length == 0) continue;
        copy.m_layers[i].k = l.k.narrow(1, 0, l.length).clone();
        copy.m_layers[i].v = l.v.narrow(1, 0, l.length).clone();
        copy.m_layers[i].length = l.length;
    }
    return copy;
}

std::int64_t KvCache::bytes() const {
    std::int64_t total = 0;
    for (const Layer& l : m_layers)
        if (l.k.defined()) total += 2 * l.k.numel() * std::int64_t(l.k.element_size());
    return total;
}

}  // namespace sdrpn::models
