// DecoderBackbone: what every family with a LLaMA-style decoder shares (LLaVA-1.5, DeepSeek-VL, Qwen2.5-VL):
// image features inserted at the prompt's image rows, prefill and decode through LlamaTextModel with the
// context's KV cache, capture of the requested rows, SD-RPN's partial prefill and key/value reuse, and the
// static (CUDA-graph) decoder where positions are plain.
//
// A family subclass builds m_info and m_text, implements encodeImage, and, when its positions are not the
// plain 0, 1, 2, ... of the cache (Qwen2.5-VL's M-RoPE), overrides appendPositions and ropeRows.
//
//   class MyModel final : public DecoderBackbone {
//       torch::Tensor encodeImage(const torch::Tensor& pixels) const override;   // + constructor
//   };
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "core/models/backbone.h"
#include "core/models/llama.h"

namespace sdrpn::models {

class DecoderBackbone : public Backbone {
public:
    const BackboneInfo& info() const override { return m_info; }
    PrefillResult prefill(Context& ctx, const PromptInput& prompt,
                          const PrefillOptions& options = {}) const override;
    torch::Tensor decodeStep(Context& ctx, std::int64_t token) const override;
    torch::Tensor decodeStepDevice(Context& ctx, const torch::Tensor& token) const override;
    WeightMap decoderLayerWeights(int layer) const override;
    torch::Tensor finalNormWeight() const override;

    // SD-RPN pass 2 with key/value reuse (sdrpn.md §4.3): after a partial prefill that ran layers
    // [0, fromLayer) only, keeps the context's first `prefixLength` rows and runs layers fromLayer .. over
    // them from `hidden` (the input of layer fromLayer for at least those rows, [n, hidden]), so that every
    // layer holds the prefix as a full prefill would. The context can then continue with a prefill.
    void completePrefix(Context& ctx, const torch::Tensor& hidden, int fromLayer,
                        std::int64_t prefixLength) const;

    // Rotary cos/sin [length, headDim] of context rows [begin, begin + length), which must already be in
    // the context. Default: plain RoPE at positions begin .. (LLaMA).
    virtual RopeTable ropeRows(const Context& ctx, std::int64_t begin, std::int64_t length,
                               torch::ScalarType dtype) const;

    LlamaTextModel text() const { return m_text; }

protected:
    DecoderBackbone() = default;

    // Called once prefill or decode has appended rows [start, start + ids.size()) (ids normalised: image rows
    // kImageSlot; image spans already in ctx) and before they run: record what ropeRows needs. Throw
    // sdrpn::Error to reject the call (the context is then restored). Default: nothing to record.
    virtual void appendPositions(Context& ctx, const std::vector<std::int64_t>& ids,
                                 const PromptInput& prompt, std::int64_t start) const;
    // Rotary position minus cache index of the next decoded row (constant while text is decoded): the
    // static decoder runs decoded rows at plain RoPE positions, the cache index plus this offset.
    virtual std::int64_t decodeRopeOffset(const Context& /*ctx*/) const { return 0; }
    // The text fields of m_info (layers, heads, sizes, vocabulary, special ids) from the decoder's config.
    void setTextInfo(const io::LlamaConfig& text);
    // Ids with image tokens / sentinels turned into kImageSlot, validated against the vocabulary.
    std::vector<std::int64_t> normaliseIds(const std::vector<std::int64_t>& ids) const;

    BackboneInfo m_info;
    LlamaTextModel m_text{nullptr};

private:
    // One decode step of an embedded token [1, hidden] whose id (or kPendingToken) is `id`.
    torch::Tensor decodeEmbedded(Context& ctx, const torch::Tensor& h, std::int64_t id) const;
};

}  // namespace sdrpn::models
