#include "core/models/decoder_backbone.h"

#include <chrono>

#include "core/models/attention.h"
#include "core/models/static_decoder.h"
#include "core/result.h"

namespace sdrpn::models {

std::vector<std::int64_t> DecoderBackbone::normaliseIds(const std::vector<std::int64_t>& ids) const {
    std::vector<std::int64_t> out;
    out.reserve(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const std::int64_t id = ids[i];
        if (id == kImageSlot || (m_info.imageTokenId >= 0 && id == m_info.imageTokenId)) {
            out.push_back(kImageSlot);
        } else if (m_info.imageSentinel != 0 && id == m_info.imageSentinel) {
            out.insert(out.end(), std::size_t(m_info.imageTokens), kImageSlot);
        } else if (id < 0 || id >= m_info.vocab) {
            throw Error("prompt token " + std::to_string(i) + " has id " + std::to_string(id) +
                        ", outside the vocabulary [0, " + std::to_string(m_info.vocab) + ")");
        } else {
            out.push_back(id);
        }
    }
    return out;
}

namespace {

// Refuses `length` more tokens after the `start` already in a context when they pass the model's context
// (max_position_embeddings), naming both numbers.
void checkContextRoom(std::int64_t context, std::int64_t start, std::int64_t length, bool dynamicImages) {
    if (context <= 0 || start + length <= context) return;
    std::string what = "the prompt is " + std::to_string(length) + " tokens";
    if (start > 0) what += " after the " + std::to_string(start) + " already in the context";
    throw Error(what + ", more than the model's context of " + std::to_string(context) +
                " tokens (max_position_embeddings in its config.json); ask a shorter question" +
                (dynamicImages ? " or give the image a smaller pixel budget" : ""));
}

}  // namespace

PrefillResult DecoderBackbone::prefill(Context& ctx, const PromptInput& prompt,
                                       const PrefillOptions& options) const {
    torch::NoGradGuard noGrad;
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = normaliseIds(prompt.ids);
    TORCH_CHECK(!ids.empty(), "prefill: empty prompt");
    const std::int64_t len = std::int64_t(ids.size());
    const std::int64_t start = ctx.length();
    checkContextRoom(m_text->config().maxPositionEmbeddings, start, len, m_info.imageTokens == 0);
    const int endLayer = options.endLayer < 0 ? m_info.layers : options.endLayer;
    TORCH_CHECK(endLayer >= 0 && endLayer <= m_info.layers, "prefill: endLayer ", options.endLayer,
                " outside [0, ", m_info.layers, "]");
    TORCH_CHECK(!options.computeLogits || endLayer == m_info.layers,
                "prefill: logits need every layer (set computeLogits = false with endLayer)");

    std::vector<std::int64_t> slots;
    std::vector<std::int64_t> embedIds(ids);
    for (std::int64_t r = 0; r < len; ++r)
        if (ids[std::size_t(r)] == kImageSlot) {
            slots.push_back(r);
            embedIds[std::size_t(r)] = 0;
        }
    std::int64_t featureRows = 0;
    for (const auto& f : prompt.images) {
        TORCH_CHECK(f.defined() && f.dim() == 2 && f.size(1) == m_info.hidden,
                    "prefill: image features must be [n, ", m_info.hidden, "], got ",
                    f.defined() ? f.sizes() : torch::IntArrayRef{});
        featureRows += f.size(0);
    }
    if (featureRows != std::int64_t(slots.size()))
        throw Error("prompt has " + std::to_string(slots.size()) + " image rows but " +
                    std::to_string(featureRows) + " image feature rows were given (" +
                    std::to_string(prompt.images.size()) + " image(s))");

    const auto device = m_info.device;
    auto h = m_text->embed(indexTensor(embedIds, device));  // [L, hidden]
    std::vector<ImageSpan> spans;
    if (!slots.empty()) {
        std::vector<torch::Tensor> feats;
        std::size_t offset = 0;
        for (std::size_t i = 0; i < prompt.images.size(); ++i) {
            const auto& f = prompt.images[i];
            const std::int64_t n = f.size(0);
            if (n == 0) continue;
            feats.push_back(f.to(device, m_info.dtype));
            const std::int64_t first = slots[offset], last = slots[offset + std::size_t(n) - 1];
            if (last - first != n - 1)
                throw Error("image " + std::to_string(i) + ": its " + std::to_string(n) +
                            " rows are not contiguous in the prompt");
            ImageSpan span{start + first, n, {}};
            if (i < prompt.grids.size())
                span.grid = prompt.grids[i];
            else if (n == m_info.grid.cells())
                span.grid = m_info.grid;
            spans.push_back(span);
            offset += std::size_t(n);
        }
        h.index_copy_(0, indexTensor(slots, device), torch::cat(feats, 0));
    }

    ctx.appendTokens(ids, spans);
    PrefillResult result;
    result.start = start;
    try {
        appendPositions(ctx, ids, prompt, start);
        const std::int64_t lastImage =
            ctx.imageSpans().empty() ? -1
                                     : ctx.imageSpans().back().start + ctx.imageSpans().back().length - 1;
        TextForward run;
        run.endLayer = endLayer;
        run.keepHidden = options.keepHidden;
        run.rope = ropeRows(ctx, start, len, h.scalar_type());
        selectCaptureRows(ctx.captureRequest(), ids, start, lastImage, /*decoding=*/false, run.captureRows,
                          run.captureMeta);
        auto out = m_text->forward(ctx, h.unsqueeze(0), run);
        result.hidden = std::move(out.hidden);
        if (options.computeLogits) {
            auto last = out.last[0];
            result.logits = options.allLogits ? m_text->logits(last) : m_text->logits(last[len - 1]);
        }
    } catch (...) {
        ctx.truncate(start);
        throw;
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return result;
}

torch::Tensor DecoderBackbone::decodeStep(Context& ctx, std::int64_t token) const {
    torch::NoGradGuard noGrad;
    if (token < 0 || token >= m_info.vocab)
        throw Error("decode: token id " + std::to_string(token) + " outside the vocabulary [0, " +
                    std::to_string(m_info.vocab) + ")");
    return decodeEmbedded(ctx, m_text->embed(indexTensor({token}, m_info.device)), token);
}

torch::Tensor DecoderBackbone::decodeStepDevice(Context& ctx, const torch::Tensor& token) const {
    torch::NoGradGuard noGrad;
    TORCH_CHECK(token.defined() && token.numel() == 1, "decode: expected one token id, got ",
                token.defined() ? token.sizes() : torch::IntArrayRef{});
    // Static shapes (and a CUDA graph) when the cache has room and no answer rows are captured.
    const StaticDecodeMode mode = staticDecodeMode(m_info.device);
    const std::int64_t position = ctx.length();
    auto& cache = ctx.cache();
    bool canStatic =
        mode != StaticDecodeMode::Off && !ctx.captureRequest().answerTokens && cache.layerCount() > 0;
    for (int l = 0; canStatic && l < cache.layerCount(); ++l)
        canStatic = cache.length(l) == position && cache.capacity(l) > position &&
                    cache.capacity(l) == cache.capacity(0);
    if (canStatic) {
        const std::int64_t ropeOffset = decodeRopeOffset(ctx);
        auto decoder = std::static_pointer_cast<StaticDecoder>(ctx.backboneState());
        if (!decoder || !decoder->fits(cache, position, ropeOffset)) {
            decoder = std::make_shared<StaticDecoder>(m_text, cache, m_info.device, mode, ropeOffset);
            ctx.backboneState() = decoder;
        }
        auto logits = decoder->step(token, position);
        const std::vector<std::int64_t> ids{kPendingToken};
        ctx.appendTokens(ids, {});
        try {
            appendPositions(ctx, ids, PromptInput{}, position);
        } catch (...) {
            ctx.truncate(position);
            throw;
        }
        cache.setLength(position + 1);
        return logits;
    }
    return decodeEmbedded(ctx, m_text->embed(token.reshape({1}).to(m_info.device, torch::kLong)),
                          kPendingToken);
}

torch::Tensor DecoderBackbone::decodeEmbedded(Context& ctx, const torch::Tensor& h, std::int64_t id) const {
    const std::int64_t start = ctx.length();
    const std::vector<std::int64_t> ids{id};
    ctx.appendTokens(ids, {});
    try {
        appendPositions(ctx, ids, PromptInput{}, start);
        TextForward run;
        run.rope = ropeRows(ctx, start, 1, h.scalar_type());
        selectCaptureRows(ctx.captureRequest(), ids, start, -1, /*decoding=*/true, run.captureRows,
                          run.captureMeta);
        auto out = m_text->forward(ctx, h.unsqueeze(0), run);
        return m_text->logits(out.last[0][0]);
    } catch (...) {
        ctx.truncate(start);
        throw;
    }
}

void DecoderBackbone::completePrefix(Context& ctx, const torch::Tensor& hidden, int fromLayer,
                                     std::int64_t prefixLength) const {
    torch::NoGradGuard noGrad;
    TORCH_CHECK(fromLayer >= 0 && fromLayer <= m_info.layers, "completePrefix: layer ", fromLayer,
                " outside [0, ", m_info.layers, "]");
    TORCH_CHECK(prefixLength > 0 && prefixLength <= ctx.length() && hidden.dim() == 2 &&
                    hidden.size(0) >= prefixLength,
                "completePrefix: a prefix of ", prefixLength, " rows of a context of ", ctx.length(),
                " from hidden states ", hidden.sizes());
    ctx.truncate(prefixLength);
    if (fromLayer == m_info.layers) return;
    // The same rows, positions and causal mask as a full prefill computes for them.
    torch::Tensor x = hidden.narrow(0, 0, prefixLength).unsqueeze(0);
    const auto rope = ropeRows(ctx, 0, prefixLength, x.scalar_type());
    for (int i = fromLayer; i < m_info.layers; ++i)
        x = m_text->layer(i)->forward(x, rope, 0, &ctx.cache(), i, nullptr);
}

WeightMap DecoderBackbone::decoderLayerWeights(int layer) const {
    TORCH_CHECK(layer >= 0 && layer < m_info.layers, "decoder layer ", layer, " out of range [0, ",
                m_info.layers, ")");
    WeightMap out;
    for (const auto& p : m_text->layer(layer)->named_parameters()) out[p.key()] = p.value();
    return out;
}

torch::Tensor DecoderBackbone::finalNormWeight() const {
    return m_text->norm()->weight();
}

void DecoderBackbone::setTextInfo(const io::LlamaConfig& text) {
    m_info.layers = text.numHiddenLayers;
    m_info.heads = text.numAttentionHeads;
    m_info.kvHeads = text.numKeyValueHeads;
    m_info.headDim = text.headDim;
    m_info.hidden = text.hiddenSize;
    m_info.vocab = text.vocabSize;
    m_info.bosTokenId = text.bosTokenId;
    m_info.eosTokenId = text.eosTokenId;
    m_info.padTokenId = text.padTokenId;
}

RopeTable DecoderBackbone::ropeRows(const Context&, std::int64_t begin, std::int64_t length,
                                    torch::ScalarType dtype) const {
    return m_text->rotary().table(begin, length, dtype);
}

void DecoderBackbone::appendPositions(Context&, const std::vector<std::int64_t>&, const PromptInput&,
                                      std::int64_t) const {}

}  // namespace sdrpn::models
