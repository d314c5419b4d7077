// StaticDecoder: LLaMA decode steps with shapes that never change, optionally replayed as a CUDA graph.
//
// A normal decode step attends over the cache's current length and appends to it, so its shapes change
// every token. This one writes the new row into the layer's reserved storage at a position held in a device
// tensor and attends over the whole storage with a mask, so the same kernels run on the same addresses
// every step. On CUDA the first step runs normally and is then captured as a graph; every later step is one
// graph launch (no per-operator launch cost, no host work). Same logits as the normal step (the masked keys
// get zero weight); the tests compare them on the CPU and sdrpn-bench --check on the GPU.
//
//   ctx->reserve(promptLength + maxNewTokens);              // storage for every position the answer needs
//   model.prefill(*ctx, prompt);
//   StaticDecoder decoder(text, ctx->cache(), device, StaticDecodeMode::Graph);
//   torch::Tensor logits = decoder.step(token, ctx->length());   // then ctx->cache().setLength(...)
//
// LlavaModel::decodeStepDevice uses it by itself when staticDecodeMode(device) says so and the context has
// room. Thread safety: one decoder belongs to one context.
#pragma once

#include <cstdint>
#include <memory>

#include <torch/torch.h>

#include "core/models/kv_cache.h"
#include "core/models/llama.h"

namespace sdrpn::models {

enum class StaticDecodeMode {
    Off,    // normal decode steps
    Eager,  // static shapes, run op by op (what the graph replays; the CPU tests use it)
    Graph,  // static shapes, captured once and replayed as a CUDA graph (CUDA builds only)
};

// The mode decodeStepDevice uses on `device`: Graph on CUDA in builds with CUDA unless SDRPN_CUDA_GRAPHS=0
// (then Eager), Off on the CPU; setStaticDecodeMode overrides it for every device.
StaticDecodeMode staticDecodeMode(torch::Device device);
void setStaticDecodeMode(StaticDecodeMode mode);
// Gives this thread a CUDA stream of its own when its current stream is the legacy default stream (one
// that graphs cannot be captured on): its decode graphs are then captured on it and share its cuBLAS
// workspace instead of a side stream's (tens of MiB less device memory). No-op on the CPU, in builds
// without CUDA, or when the thread already has a stream of its own.
void useOwnStream(torch::Device device);
void clearStaticDecodeMode();  // back to the default
const char* staticDecodeModeName(StaticDecodeMode mode);

class StaticDecoder {
public:
    // `ropeOffset`: rotary position minus cache index of every decoded row (0 for plain RoPE; Qwen2.5-VL's
    // rope_deltas after an image).
    StaticDecoder(LlamaTextModel text, KvCache& cache, torch::Device device, StaticDecodeMode mode,
                  std::int64_t ropeOffset = 0);
    ~StaticDecoder();
    StaticDecoder(const StaticDecoder&) = delete;
    StaticDecoder& operator=(const StaticDecoder&) = delete;

    // Whether the cache still has the storage this decoder was built on and room at `position`, and the
    // decoder was built for this rotary offset.
    bool fits(const KvCache& cache, std::int64_t position, std::int64_t ropeOffset = 0) const;
    // Feeds `token` (int64, one element, on the device) at `position` and returns the next-token logits
    // [vocab] fp32 (a tensor of its own). Writes the row's keys and values into the storage; the caller then
    // sets the cache's length to position + 1.
    torch::Tensor step(const torch::Tensor& token, std::int64_t position);
    bool graphed() const;

private:
    void run();
    struct Graph;
    LlamaTextModel m_text;
    KvCache* m_cache;
    torch::Device m_device;
    StaticDecodeMode m_mode;
    std::int64_t m_capacity = 0;
    std::int64_t m_ropeOffset = 0;
    const void* m_storage = nullptr;  // layer 0's key storage when built
    torch::Tensor m_token, m_position, m_ropePosition, m_keyPositions, m_logits;
    std::unique_ptr<Graph> m_graph;
};

}  // namespace sdrpn::models
