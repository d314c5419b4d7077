#include "core/models/context.h"

#include <algorithm>
#include <cstring>

#include "core/models/attention.h"

namespace sdrpn::models {

Context::Context(int layers, int heads, torch::Device device)
    : m_layers(layers), m_heads(heads), m_device(device), m_cache(layers) {
    setCaptureRequest(CaptureRequest::none());
}

std::unique_ptr<Context> Context::clone() const {
    auto copy = std::make_unique<Context>(*this);
    copy->m_cache = m_cache.clone();
    copy->m_backboneState.reset();
    return copy;
}

void Context::setCaptureRequest(const CaptureRequest& request) {
    std::vector<int> layers;
    for (int l = 0; l < m_layers; ++l)
        if (request.wantsLayer(l)) layers.push_back(l);
    for (int l : request.layers)
        TORCH_CHECK(l >= 0 && l < m_layers, "capture: layer ", l, " out of range [0, ", m_layers, ")");
    if (layers != m_capturedLayers) m_blocks.clear();  // blocks are aligned with the captured layers
    m_request = request;
    m_capturedLayers = std::move(layers);
}

void Context::appendTokens(const std::vector<std::int64_t>& tokens, const std::vector<ImageSpan>& newSpans) {
    m_tokens.insert(m_tokens.end(), tokens.begin(), tokens.end());
    if (!newSpans.empty()) {
        m_spans.insert(m_spans.end(), newSpans.begin(), newSpans.end());
        m_imageKeyIndex = torch::Tensor();
    }
}

std::int64_t Context::imageKeyCount() const {
    std::int64_t n = 0;
    for (const auto& s : m_spans) n += s.length;
    return n;
}

const torch::Tensor& Context::imageKeyIndex() const {
    if (!m_imageKeyIndex.defined()) {
        std::vector<std::int64_t> positions;
        positions.reserve(std::size_t(imageKeyCount()));
        for (const auto& s : m_spans)
            for (std::int64_t i = 0; i < s.length; ++i) positions.push_back(s.start + i);
        m_imageKeyIndex = indexTensor(positions, m_device);
    }
    return m_imageKeyIndex;
}

void Context::setToken(std::int64_t position, std::int64_t id) {
    TORCH_CHECK(position >= 0 && position < length(), "setToken: position ", position, " outside [0, ",
                length(), ")");
    TORCH_CHECK(m_tokens[std::size_t(position)] == kPendingToken, "setToken: position ", position,
                " already holds token ", m_tokens[std::size_t(position)]);
    m_tokens[std::size_t(position)] = id;
    for (auto& b : m_blocks)
        for (auto& r : b.rows)
            if (r.position == position) r.token = id;
}

void Context::addCaptureBlock(CaptureBlock block) {
    std::int64_t bytes = 0;
    for (const auto& t : block.perLayer) bytes += t.numel() * std::int64_t(sizeof(float));
    m_stats.rows += std::int64_t(block.rows.size());
    m_stats.keptBytes += bytes;
    m_blocks.push_back(std::move(block));
}

void Context::truncate(std::int64_t length) {
    TORCH_CHECK(length >= 0, "truncate: negative length ", length);
    if (length >= this->length()) {
        m_cache.truncate(length);  // a partial prefill may have left layers shorter or longer
        return;
    }
    m_cache.truncate(length);
    m_tokens.resize(std::size_t(length));
    std::vector<ImageSpan> spans;
    for (ImageSpan s : m_spans) {
        if (s.start >= length) continue;
        if (s.start + s.length > length) {
            s.length = length - s.start;
            s.grid = ImageGrid{};
        }
        spans.push_back(s);
    }
    if (spans.size() != m_spans.size() || (!spans.empty() && spans.back().length != m_spans.back().length))
        m_imageKeyIndex = torch::Tensor();
    m_spans = std::move(spans);
    const std::int64_t columns = imageKeyCount();

    std::vector<CaptureBlock> blocks;
    for (CaptureBlock& b : m_blocks) {
        std::vector<std::int64_t> keep;
        CaptureBlock kept;
        for (std::size_t r = 0; r < b.rows.size(); ++r)
            if (b.rows[r].position < length) {
                keep.push_back(std::int64_t(r));
                kept.rows.push_back(b.rows[r]);
            }
        if (kept.rows.empty()) continue;
        kept.columns = std::min(b.columns, columns);
        const bool allRows = kept.rows.size() == b.rows.size();
        torch::Tensor index;
        if (!allRows) index = torch::tensor(keep, torch::kLong).to(m_device);
        for (const auto& t : b.perLayer) {
            auto u = allRows ? t : t.index_select(1, index);
            kept.perLayer.push_back(u.narrow(2, 0, kept.columns));
        }
        blocks.push_back(std::move(kept));
    }
    m_blocks = std::move(blocks);
}

void Context::clearAttention() {
    m_blocks.clear();
    m_stats = CaptureStats{};
}

AttentionMaps Context::attentionMaps() const {
    AttentionMaps maps;
    maps.heads = m_heads;
    maps.imageKeys = imageKeyCount();
    maps.imageSpans = m_spans;
    for (const auto& s : m_spans)
        for (std::int64_t i = 0; i < s.length; ++i) maps.imageKeyPositions.push_back(s.start + i);
    maps.stats = m_stats;
    for (const auto& b : m_blocks) maps.rows.insert(maps.rows.end(), b.rows.begin(), b.rows.end());
    if (maps.rows.empty() || m_capturedLayers.empty()) return maps;

    const std::int64_t columns = maps.imageKeys;
    for (std::size_t slot = 0; slot < m_capturedLayers.size(); ++slot) {
        std::vector<torch::Tensor> parts;
        for (const auto& b : m_blocks) {
            auto t = b.perLayer.at(slot);
            // Rows captured before later images were inserted cannot see those keys: probability 0.
            if (t.size(2) < columns) t = torch::constant_pad_nd(t, {0, columns - t.size(2)}, 0.0);
            parts.push_back(t);
        }
        auto all = torch::cat(parts, 1).to(torch::kCPU, torch::kFloat).contiguous();
        LayerAttention layer;
        layer.layer = m_capturedLayers[slot];
        layer.values.resize(std::size_t(all.numel()));
        if (all.numel() > 0)
            std::memcpy(layer.values.data(), all.data_ptr<float>(), layer.values.size() * sizeof(float));
        maps.layers.push_back(std::move(layer));
    }
    return maps;
}

}  // namespace sdrpn::models
