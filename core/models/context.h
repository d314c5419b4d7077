// Context: the per-job mutable state of one sequence run through a Backbone (KV cache, the tokens and
// image spans so far, captured attention rows). The Backbone itself stays read-only and may be shared by
// several jobs, each with its own Context.
//
//   auto ctx = backbone.newContext();
//   backbone.prefill(*ctx, prompt, options);            // appends the prompt
//   backbone.decodeStep(*ctx, token);                   // appends one token
//   AttentionMaps maps = ctx->attentionMaps();          // plain data snapshot
//   auto branch = ctx->clone();                         // e.g. baseline and RoI answers from one prefix
//   ctx->truncate(prefixLength);                        // keep a prefix, drop the rest (and its captures)
//
// Thread safety: none; a Context belongs to one job at a time. Backbones may subclass it to keep more
// state (e.g. M-RoPE position offsets).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "core/models/capture.h"
#include "core/models/kv_cache.h"

namespace sdrpn::models {

// Context::tokens() entry of a token chosen on the device (Backbone::decodeStepDevice) whose id the host has
// not read yet; Context::setToken fills it in.
constexpr std::int64_t kPendingToken = -2;

// Captured rows of one call (prefill or decode step): per captured layer [heads, rows, columns] fp32, on
// the model's device until attentionMaps() gathers them.
struct CaptureBlock {
    std::vector<QueryRow> rows;
    std::int64_t columns = 0;             // the first `columns` image keys of the context at capture time
    std::vector<torch::Tensor> perLayer;  // aligned with Context::capturedLayers()
};

class Context {
public:
    Context(int layers, int heads, torch::Device device);
    virtual ~Context() = default;
    Context(const Context&) = default;
    Context& operator=(const Context&) = default;

    // A deep copy (KV cache included) that can continue independently.
    virtual std::unique_ptr<Context> clone() const;

    // Tokens in the sequence: the number of positions every decoder layer holds (see layerLength for a
    // partial prefill).
    std::int64_t length() const { return std::int64_t(m_tokens.size()); }
    // Tokens in the sequence, kImageSlot (-1) at image rows.
    const std::vector<std::int64_t>& tokens() const { return m_tokens; }
    const std::vector<ImageSpan>& imageSpans() const { return m_spans; }
    torch::Device device() const { return m_device; }

    // Keeps positions [0, length): KV of every layer, tokens, image spans, and captured rows (rows at or
    // after `length` are dropped, as are image-key columns there). Take attentionMaps() first to keep them.
    virtual void truncate(std::int64_t length);

    // Room for `positions` tokens in the KV cache, allocated once (a static cache for decoding on a GPU).
    void reserve(std::int64_t positions) { m_cache.reserve(positions); }
    // Fills in the id of a kPendingToken position (and of its captured rows).
    void setToken(std::int64_t position, std::int64_t id);
    // Capture settings used by prefill and decodeStep until changed.
    void setCaptureRequest(const CaptureRequest& request);
    const CaptureRequest& captureRequest() const { return m_request; }

    // Snapshot of everything captured so far, as plain data (copies to the CPU).
    AttentionMaps attentionMaps() const;
    void clearAttention();
    const CaptureStats& captureStats() const { return m_stats; }

    // --- for Backbone implementations ---
    KvCache& cache() { return m_cache; }
    const KvCache& cache() const { return m_cache; }
    void appendTokens(const std::vector<std::int64_t>& tokens, const std::vector<ImageSpan>& newSpans);
    // Positions of all image keys so far, as an int64 index tensor on the device (cached).
    const torch::Tensor& imageKeyIndex() const;
    std::int64_t imageKeyCount() const;
    // The decoder layers capture runs on (from the request), in increasing order.
    const std::vector<int>& capturedLayers() const { return m_capturedLayers; }
    int heads() const { return m_heads; }
    void addCaptureBlock(CaptureBlock block);
    // State a backbone keeps with this context between calls (e.g. a static decoder bound to this cache);
    // clone() does not copy it.
    std::shared_ptr<void>& backboneState() { return m_backboneState; }
    CaptureStats& mutableCaptureStats() { return m_stats; }

private:
    int m_layers = 0;
    int m_heads = 0;
    torch::Device m_device;
    KvCache m_cache;
    std::vector<std::int64_t> m_tokens;
    std::vector<ImageSpan> m_spans;
    CaptureRequest m_request;
    std::vector<int> m_capturedLayers;
    std::vector<CaptureBlock> m_blocks;
    CaptureStats m_stats;
    mutable torch::Tensor m_imageKeyIndex;  // rebuilt lazily when the spans change
    std::shared_ptr<void> m_backboneState;
};

}  // namespace sdrpn::models
