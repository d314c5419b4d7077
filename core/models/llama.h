// The LLaMA decoder (mllm_reference.md §5): RMSNorm, rotate_half RoPE, attention with GQA and KV cache,
// SwiGLU MLP, final norm, lm_head. Used by LLaVA-1.5 and any LLaMA-style language model; its decoder layer
// is also the building block of the SD-RPN twig layers.
//
//   LlamaTextModel text(weights, "language_model.", cfg);   // reads <prefix>model.* and <prefix>lm_head.*
//   TextForward run;                                        // all layers, nothing kept
//   TextForwardResult out = text->forward(ctx, embeddings, run);
//   torch::Tensor logits = text->logits(out.last);          // [L, vocab], fp32
//
// Shapes: hidden states are [B, L, hidden]; with a KV cache B must be 1. Weights are read-only after
// construction, so one model may serve several threads, each with its own Context.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/io/config.h"
#include "core/models/context.h"
#include "core/models/layers.h"
#include "core/models/weights.h"

namespace sdrpn::models {

// cos / sin of the rotary embedding for a run of positions, [L, headDim] in the activation dtype.
struct RopeTable {
    torch::Tensor cos, sin;
};

// HF default RoPE: inv_freq[j] = 1 / theta^(2j/d) in fp32; emb = cat(freqs, freqs); cos/sin in fp32 then
// cast to the activation dtype.
class RotaryEmbedding {
public:
    RotaryEmbedding() = default;
    RotaryEmbedding(std::int64_t headDim, double theta, torch::Device device);
    RopeTable table(std::int64_t start, std::int64_t length, torch::ScalarType dtype) const;
    RopeTable table(const torch::Tensor& positions, torch::ScalarType dtype) const;  // positions [L] int64

private:
    torch::Tensor m_invFreq;  // [headDim / 2] fp32
};

// x [B, heads, L, d]; rope cos/sin [L, d]: x·cos + rotate_half(x)·sin.
torch::Tensor applyRotary(const torch::Tensor& x, const RopeTable& rope);

// Rows of one call to capture in one layer (filled by LlamaTextModel; see Context).
struct LayerCapture {
    torch::Tensor localRows;        // int64 [S] indices into the call's rows (device)
    torch::Tensor positions;        // int64 [S] absolute positions of those rows (device)
    torch::Tensor columns;          // int64 image key positions (device)
    torch::Tensor bias;             // fp32 [rep·S, keys] causal mask of the rows: built by the first layer
    bool measure = false;           // synchronise the device around the recompute
    torch::Tensor result;           // out: [heads, S, columns] fp32
    double seconds = 0.0;           // out: time spent recomputing (summed over layers)
    std::int64_t scratchBytes = 0;  // out: largest fp32 logits block
};

// One decode row against a static KV cache (StaticDecoder, static_decoder.h): the row's position and the
// keys it may see are device tensors and the keys and values are written into the layer's whole reserved
// storage, so every step has the same shapes and the same addresses (what a CUDA graph needs).
struct StaticStep {
    torch::Tensor position;  // int64 [1]: the row's position (its index in the cache)
    torch::Tensor visible;   // bool [capacity]: keys at or before the position
    // int64 [1]: the rotary position when it is not the cache index (Qwen2.5-VL decodes at index +
    // rope_deltas); undefined: `position`.
    torch::Tensor ropePosition = {};
};

class LlamaAttentionImpl : public torch::nn::Module {
public:
    LlamaAttentionImpl(const WeightMap& w, const std::string& prefix, const io::LlamaConfig& cfg);
    // x [B, L, hidden], rows at positions start .. start+L-1 (start = the cache's length for this layer).
    // With `cache`, the new K/V are appended to cache layer `layer` and attention covers the whole cache.
    torch::Tensor forward(const torch::Tensor& x, const RopeTable& rope, std::int64_t start, KvCache* cache,
                          int layer, LayerCapture* capture) const;
    // x [1, 1, hidden]; keys / values: the layer's storage [kvHeads, capacity, headDim], written at
    // step.position.
    torch::Tensor forwardStatic(const torch::Tensor& x, const RopeTable& rope, const StaticStep& step,
                                torch::Tensor& keys, torch::Tensor& values) const;

    int heads() const { return m_heads; }
    int kvHeads() const { return m_kvHeads; }
    int headDim() const { return m_headDim; }
    Dense qProj() const { return m_q; }
    Dense kProj() const { return m_k; }
    bool fused() const { return !m_qkv.is_empty(); }

private:
    // q, k and v of x: one matrix product when the weights were fused (views of its output), else three.
    std::array<torch::Tensor, 3> project(const torch::Tensor& x) const;

    Dense m_q{nullptr}, m_k{nullptr}, m_v{nullptr}, m_o{nullptr};
    Dense m_qkv{nullptr};  // fused q/k/v (fuseLlamaProjections); unregistered, as m_q/k/v view it
    int m_heads, m_kvHeads, m_headDim;
    double m_scale;
};
TORCH_MODULE(LlamaAttention);

class LlamaMlpImpl : public torch::nn::Module {
public:
    LlamaMlpImpl(const WeightMap& w, const std::string& prefix, const io::LlamaConfig& cfg);
    torch::Tensor forward(const torch::Tensor& x) const;

private:
    Dense m_gate{nullptr}, m_up{nullptr}, m_down{nullptr};
    Dense m_gateUp{nullptr};  // fused gate/up (fuseLlamaProjections); unregistered, as m_gate/up view it
    std::string m_act;
    bool m_silu;  // m_act is "silu": applied in place at inference
};
TORCH_MODULE(LlamaMlp);

// One decoder layer; `prefix` is e.g. "language_model.model.layers.3" (reads <prefix>.input_layernorm...).
class LlamaDecoderLayerImpl : public torch::nn::Module {
public:
    LlamaDecoderLayerImpl(const WeightMap& w, const std::string& prefix, const io::LlamaConfig& cfg);
    torch::Tensor forward(const torch::Tensor& h, const RopeTable& rope, std::int64_t start, KvCache* cache,
                          int layer, LayerCapture* capture) const;
    torch::Tensor forwardStatic(const torch::Tensor& h, const RopeTable& rope, const StaticStep& step,
                                torch::Tensor& keys, torch::Tensor& values) const;
    // Without cache or capture: full causal attention over h (positions start ..).
    torch::Tensor forward(const torch::Tensor& h, const RopeTable& rope, std::int64_t start = 0) const {
        return forward(h, rope, start, nullptr, 0, nullptr);
    }

    RmsNorm inputNorm() const { return m_inputNorm; }
    LlamaAttention attention() const { return m_attn; }

private:
    RmsNorm m_inputNorm{nullptr}, m_postNorm{nullptr};
    LlamaAttention m_attn{nullptr};
    LlamaMlp m_mlp{nullptr};
};
TORCH_MODULE(LlamaDecoderLayer);

// Canonical names and shapes of a LLaMA text model under `prefix` (e.g. "language_model."):
// <prefix>model.embed_tokens.weight, <prefix>model.layers.N.*, <prefix>model.norm.weight,
// <prefix>lm_head.weight (unless tie_word_embeddings).
std::vector<WeightSpec> llamaWeightSpecs(const io::LlamaConfig& cfg, const std::string& prefix);

// Fused projections: one matrix product for each layer's q/k/v and one for its gate/up instead of five
// (fewer, larger kernels). Replaces, in `w`, each layer's q_proj, k_proj and v_proj (and gate_proj, up_proj)
// weights and biases by row views into one new tensor per group, kept under <layer>.self_attn.qkv_proj.* and
// <layer>.mlp.gate_up_proj.*. The parts keep their names (an SD-RPN twig is initialised from them) and no
// memory is added: each group is copied into its new tensor and its old tensors are released (when `w` held
// the only reference) before the next group, so the peak is one group more than the weights. A group whose
// parts are not all there, or differ in dtype, device or width, is left as it is. A LlamaTextModel built from
// such a map runs the fused products. SDRPN_FUSED_PROJECTIONS=0 turns fusion off (for comparisons). Returns
// the number of groups fused.
int fuseLlamaProjections(WeightMap& w, const io::LlamaConfig& cfg, const std::string& prefix);
bool fusedProjectionsEnabled();

struct TextForward {
    int endLayer = -1;            // run decoder layers [0, endLayer); -1 = all
    std::vector<int> keepHidden;  // hidden states to return: 0 = embeddings, k = output of layer k-1
    std::vector<std::int64_t> captureRows;  // rows of this call (0-based) to capture
    std::vector<QueryRow> captureMeta;      // their description, aligned with captureRows
    RopeTable rope;  // cos/sin of this call's rows; undefined: plain RoPE at their cache positions
};

struct TextForwardResult {
    torch::Tensor last;                   // [B, L, hidden]: output of the last layer run (before the norm)
    std::map<int, torch::Tensor> hidden;  // the kept hidden states, [L, hidden] (B == 1) or [B, L, hidden]
};

class LlamaTextModelImpl : public torch::nn::Module {
public:
    LlamaTextModelImpl(const WeightMap& w, const std::string& prefix, const io::LlamaConfig& cfg,
                       torch::Device device);

    // Token embeddings [L, hidden] for ids [L] (int64 on the model's device).
    torch::Tensor embed(const torch::Tensor& ids) const;
    // Runs `h` ([1, L, hidden], positions ctx.length() - L .. : append tokens to ctx first) through the
    // decoder layers with ctx's KV cache; captures the requested rows into ctx.
    TextForwardResult forward(Context& ctx, const torch::Tensor& h, const TextForward& run) const;
    // One decode step on static buffers: token int64 [1] at step.position, every layer's storage in `cache`
    // (allocated beyond the position); returns the logits [vocab] fp32. The cache's lengths are not changed.
    torch::Tensor decodeStatic(const torch::Tensor& token, const StaticStep& step, KvCache& cache) const;
    // Final RMSNorm + lm_head, fp32.
    torch::Tensor logits(const torch::Tensor& h) const;
    torch::Tensor finalNorm(const torch::Tensor& h) const { return m_norm->forward(h); }

    const io::LlamaConfig& config() const { return m_cfg; }
    int layerCount() const { return int(m_layers.size()); }
    LlamaDecoderLayer layer(int i) const { return m_layers.at(std::size_t(i)); }
    RmsNorm norm() const { return m_norm; }
    const RotaryEmbedding& rotary() const { return m_rope; }

private:
    io::LlamaConfig m_cfg;
    torch::Tensor m_embed;
    std::vector<LlamaDecoderLayer> m_layers;
    RmsNorm m_norm{nullptr};
    Dense m_lmHead{nullptr};
    RotaryEmbedding m_rope;
};
TORCH_MODULE(LlamaTextModel);

}  // namespace sdrpn::models
