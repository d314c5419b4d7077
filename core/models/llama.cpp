#include "core/models/llama.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/models/attention.h"
#include "core/models/device_stats.h"
#include "core/result.h"

namespace sdrpn::models {

namespace {

std::string layerPrefix(const std::string& prefix, int i) {
    return prefix + "model.layers." + std::to_string(i);
}

void synchronize(torch::Device device) {
    if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

// The tensors `<part><suffix>` when every part has one and all agree in dtype, device and trailing shape;
// otherwise none.
std::vector<torch::Tensor> rowsToFuse(const WeightMap& w, const std::vector<std::string>& parts,
                                      const std::string& suffix) {
    std::vector<torch::Tensor> tensors;
    for (const auto& part : parts) {
        auto it = w.find(part + suffix);
        if (it == w.end() || !it->second.defined() || it->second.dim() < 1) return {};
        const auto& t = it->second;
        if (!tensors.empty() &&
            (t.scalar_type() != tensors[0].scalar_type() || t.device() != tensors[0].device() ||
             t.dim() != tensors[0].dim() || t.sizes().slice(1) != tensors[0].sizes().slice(1)))
            return {};
        tensors.push_back(t);
    }
    return tensors;
}

// Copies `tensors` (rowsToFuse's) into one [sum of rows, ...] tensor stored as `<fused><suffix>` and replaces
// each part by its row view, releasing the part's old tensor (unless held elsewhere) before the next copy.
void fuseRows(WeightMap& w, const std::string& fused, const std::vector<std::string>& parts,
              const std::string& suffix, std::vector<torch::Tensor> tensors) {
    auto shape = tensors[0].sizes().vec();
    shape[0] = 0;
    for (const auto& t : tensors) shape[0] += t.size(0);
    torch::Tensor all = torch::empty(shape, tensors[0].options());
    std::int64_t offset = 0;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const std::int64_t n = tensors[i].size(0);
        torch::Tensor view = all.narrow(0, offset, n);
        view.copy_(tensors[i]);
        tensors[i] = torch::Tensor();
        w[parts[i] + suffix] = view;
        offset += n;
    }
    w[fused + suffix] = all;
}

// Fuses a group's weights, and its biases when every part has one; a group is fused whole or not at all.
bool fuseGroup(WeightMap& w, const std::string& fused, const std::vector<std::string>& parts) {
    if (w.count(fused + ".weight")) return false;  // already fused
    auto weights = rowsToFuse(w, parts, ".weight");
    if (weights.empty()) return false;
    std::size_t withBias = 0;
    for (const auto& part : parts) withBias += optionalWeight(w, part + ".bias").defined();
    std::vector<torch::Tensor> biases;
    if (withBias == parts.size()) {
        biases = rowsToFuse(w, parts, ".bias");
        if (biases.empty()) return false;
        for (std::size_t i = 0; i < parts.size(); ++i)
            if (biases[i].dim() != 1 || biases[i].size(0) != weights[i].size(0)) return false;
    } else if (withBias != 0) {
        return false;  // some parts with a bias, some without
    }
    const torch::Device device = weights[0].device();
    fuseRows(w, fused, parts, ".weight", std::move(weights));
    if (!biases.empty()) fuseRows(w, fused, parts, ".bias", std::move(biases));
    // On CUDA the parts' old blocks stay in the caching allocator, and the next group (the same size as
    // this one) cannot reuse them: handed back now, the device never holds more than one group over the
    // weights, reserved or allocated.
    releaseCachedMemory(device);
    return true;
}

}  // namespace

bool fusedProjectionsEnabled() {
    const char* v = std::getenv("SDRPN_FUSED_PROJECTIONS");
    return !(v && std::strcmp(v, "0") == 0);
}

int fuseLlamaProjections(WeightMap& w, const io::LlamaConfig& cfg, const std::string& prefix) {
    if (!fusedProjectionsEnabled()) return 0;
    torch::NoGradGuard noGrad;
    int fused = 0;
    for (int i = 0; i < cfg.numHiddenLayers; ++i) {
        const std::string p = layerPrefix(prefix, i);
        fused += fuseGroup(w, p + ".self_attn.qkv_proj",
                           {p + ".self_attn.q_proj", p + ".self_attn.k_proj", p + ".self_attn.v_proj"});
        fused += fuseGroup(w, p + ".mlp.gate_up_proj", {p + ".mlp.gate_proj", p + ".mlp.up_proj"});
    }
    return fused;
}

// ---- RoPE ----------------------------------------------------------------------------------------------

RotaryEmbedding::RotaryEmbedding(std::int64_t headDim, double theta, torch::Device device) {
    TORCH_CHECK(headDim % 2 == 0, "RoPE: head dim ", headDim, " is odd");
    auto exponents = torch::arange(0, headDim, 2, torch::kLong).to(torch::kFloat) / double(headDim);
    m_invFreq = (1.0 / torch::pow(torch::scalar_tensor(theta, torch::kFloat), exponents)).to(device);
}

RopeTable RotaryEmbedding::table(std::int64_t start, std::int64_t length, torch::ScalarType dtype) const {
    return table(torch::arange(start, start + length,
                               torch::TensorOptions().dtype(torch::kLong).device(m_invFreq.device())),
                 dtype);
}

RopeTable RotaryEmbedding::table(const torch::Tensor& positions, torch::ScalarType dtype) const {
    TORCH_CHECK(m_invFreq.defined(), "RoPE: not initialised");
    auto freqs = torch::outer(positions.to(m_invFreq.device(), torch::kFloat), m_invFreq);  // [L, d/2]
    auto emb = torch::cat({freqs, freqs}, -1);
    return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor applyRotary(const torch::Tensor& x, const RopeTable& rope) {
    const std::int64_t half = x.size(-1) / 2;
    auto rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
    return x * rope.cos + rotated * rope.sin;
}

// ---- attention / MLP / layer ----------------------------------------------------------------------------

LlamaAttentionImpl::LlamaAttentionImpl(const WeightMap& w, const std::string& prefix,
                                       const io::LlamaConfig& cfg)
    : m_heads(cfg.numAttentionHeads), m_kvHeads(cfg.numKeyValueHeads), m_headDim(cfg.headDim) {
    TORCH_CHECK(m_heads > 0 && m_kvHeads > 0 && m_heads % m_kvHeads == 0, "LLaMA attention: ", m_heads,
                " heads vs ", m_kvHeads, " kv heads");
    m_scale = 1.0 / std::sqrt(double(m_headDim));
    m_q = register_module("q_proj", Dense(w, prefix + ".q_proj", cfg.attentionBias));
    m_k = register_module("k_proj", Dense(w, prefix + ".k_proj", cfg.attentionBias));
    m_v = register_module("v_proj", Dense(w, prefix + ".v_proj", cfg.attentionBias));
    m_o = register_module("o_proj", Dense(w, prefix + ".o_proj", cfg.attentionBias && !cfg.qkvBiasOnly));
    if (auto fusedWeight = optionalWeight(w, prefix + ".qkv_proj.weight"); fusedWeight.defined()) {
        const std::int64_t rows = m_q->outFeatures() + m_k->outFeatures() + m_v->outFeatures();
        TORCH_CHECK(fusedWeight.size(0) == rows && m_q->weight().data_ptr() == fusedWeight.data_ptr(), prefix,
                    ": fused q/k/v weight does not hold the q, k and v weights");
        m_qkv = Dense(fusedWeight, optionalWeight(w, prefix + ".qkv_proj.bias"));
    }
}

std::array<torch::Tensor, 3> LlamaAttentionImpl::project(const torch::Tensor& x) const {
    if (m_qkv.is_empty()) return {m_q->forward(x), m_k->forward(x), m_v->forward(x)};
    auto y = m_qkv->forward(x);
    const std::int64_t q = m_q->outFeatures(), kv = m_k->outFeatures();
    return {y.narrow(-1, 0, q), y.narrow(-1, q, kv), y.narrow(-1, q + kv, kv)};
}

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& x, const RopeTable& rope, std::int64_t start,
                                          KvCache* cache, int layer, LayerCapture* capture) const {
    const std::int64_t batch = x.size(0), len = x.size(1);
    auto [qx, kx, vx] = project(x);
    auto q = qx.view({batch, len, m_heads, m_headDim}).transpose(1, 2);
    auto k = kx.view({batch, len, m_kvHeads, m_headDim}).transpose(1, 2);
    auto v = vx.view({batch, len, m_kvHeads, m_headDim}).transpose(1, 2);
    q = applyRotary(q, rope);
    k = applyRotary(k, rope);
    torch::Tensor keys = k, values = v;
    if (cache) {
        TORCH_CHECK(batch == 1, "LLaMA attention: a KV cache holds one sequence, got batch ", batch);
        TORCH_CHECK(cache->length(layer) == start, "LLaMA layer ", layer, " holds ", cache->length(layer),
                    " cached positions but this call starts at position ", start,
                    " (truncate the context after a partial prefill)");
        auto kv = cache->append(layer, k[0], v[0]);
        keys = kv.first.unsqueeze(0);
        values = kv.second.unsqueeze(0);
    }
    auto out = scaledDotProductAttention(q, keys, values, /*causal=*/true, start, m_scale);
    if (capture && capture->localRows.defined() && capture->localRows.numel() > 0) {
        TORCH_CHECK(batch == 1, "attention capture needs batch 1");
        if (capture->measure) synchronize(x.device());
        const auto t0 = std::chrono::steady_clock::now();
        auto qRows = q[0].index_select(1, capture->localRows);  // [heads, S, d], post-RoPE
        // The mask depends on the rows and the key count only: one for every layer of the call.
        const std::int64_t rep = m_heads / m_kvHeads;
        if (!capture->bias.defined() || capture->bias.size(1) != keys.size(2) ||
            capture->bias.size(0) != rep * qRows.size(1))
            capture->bias = captureRowsBias(capture->positions, keys.size(2), rep);
        capture->result = attentionRowsBiased(qRows, keys[0], capture->bias, capture->columns, m_scale);
        if (capture->measure) synchronize(x.device());
        capture->seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        capture->scratchBytes =
            std::max(capture->scratchBytes, std::int64_t(m_heads) * qRows.size(1) * keys.size(2) * 4);
    }
    out = out.transpose(1, 2).reshape({batch, len, m_heads * m_headDim});
    return m_o->forward(out);
}

torch::Tensor LlamaAttentionImpl::forwardStatic(const torch::Tensor& x, const RopeTable& rope,
                                                const StaticStep& step, torch::Tensor& keys,
                                                torch::Tensor& values) const {
    TORCH_CHECK(x.dim() == 3 && x.size(0) == 1 && x.size(1) == 1, "static decode: one row expected, got ",
                x.sizes());
    auto [qx, kx, vx] = project(x);
    auto q = qx.view({1, 1, m_heads, m_headDim}).transpose(1, 2);
    auto k = kx.view({1, 1, m_kvHeads, m_headDim}).transpose(1, 2);
    auto v = vx.view({1, 1, m_kvHeads, m_headDim}).transpose(1, 2);
    q = applyRotary(q, rope);
    k = applyRotary(k, rope);
    keys.index_copy_(1, step.position, k[0]);
    values.index_copy_(1, step.position, v[0]);
    auto out = maskedAttention(q, keys.unsqueeze(0), values.unsqueeze(0), step.visible, m_scale);
    return m_o->forward(out.transpose(1, 2).reshape({1, 1, m_heads * m_headDim}));
}

LlamaMlpImpl::LlamaMlpImpl(const WeightMap& w, const std::string& prefix, const io::LlamaConfig& cfg)
    : m_act(cfg.hiddenAct), m_silu(cfg.hiddenAct == "silu") {
    checkActivation(m_act, prefix);
    m_gate = register_module("gate_proj", Dense(w, prefix + ".gate_proj", cfg.mlpBias));
    m_up = register_module("up_proj", Dense(w, prefix + ".up_proj", cfg.mlpBias));
    m_down = register_module("down_proj", Dense(w, prefix + ".down_proj", cfg.mlpBias));
    if (auto fusedWeight = optionalWeight(w, prefix + ".gate_up_proj.weight"); fusedWeight.defined()) {
        TORCH_CHECK(fusedWeight.size(0) == m_gate->outFeatures() + m_up->outFeatures() &&
                        m_gate->weight().data_ptr() == fusedWeight.data_ptr(),
                    prefix, ": fused gate/up weight does not hold the gate and up weights");
        m_gateUp = Dense(fusedWeight, optionalWeight(w, prefix + ".gate_up_proj.bias"));
    }
}

torch::Tensor LlamaMlpImpl::forward(const torch::Tensor& x) const {
    torch::Tensor gate, up;
    if (m_gateUp.is_empty()) {
        gate = m_gate->forward(x);
        up = m_up->forward(x);
    } else {
        auto y = m_gateUp->forward(x);  // [.., 2 × intermediate]: gate, then up
        const std::int64_t inter = m_gate->outFeatures();
        gate = y.narrow(-1, 0, inter);
        up = y.narrow(-1, inter, inter);
    }
    if (torch::GradMode::is_enabled() || x.requires_grad())
        return m_down->forward(activation(m_act, gate) * up);
    // Inference: the activation and the product in place, so that at most two intermediate-sized tensors
    // are alive at once (a long prefill's peak memory is set here; fused, they are one tensor).
    if (m_silu)
        torch::silu_(gate);
    else
        gate = activation(m_act, gate);
    gate.mul_(up);
    return m_down->forward(gate);
}

LlamaDecoderLayerImpl::LlamaDecoderLayerImpl(const WeightMap& w, const std::string& prefix,
                                             const io::LlamaConfig& cfg) {
    m_inputNorm = register_module("input_layernorm", RmsNorm(w, prefix + ".input_layernorm", cfg.rmsNormEps));
    m_attn = register_module("self_attn", LlamaAttention(w, prefix + ".self_attn", cfg));
    m_postNorm = register_module("post_attention_layernorm",
                                 RmsNorm(w, prefix + ".post_attention_layernorm", cfg.rmsNormEps));
    m_mlp = register_module("mlp", LlamaMlp(w, prefix + ".mlp", cfg));
}

torch::Tensor LlamaDecoderLayerImpl::forward(const torch::Tensor& h, const RopeTable& rope,
                                             std::int64_t start, KvCache* cache, int layer,
                                             LayerCapture* capture) const {
    auto x = h + m_attn->forward(m_inputNorm->forward(h), rope, start, cache, layer, capture);
    return x + m_mlp->forward(m_postNorm->forward(x));
}

torch::Tensor LlamaDecoderLayerImpl::forwardStatic(const torch::Tensor& h, const RopeTable& rope,
                                                   const StaticStep& step, torch::Tensor& keys,
                                                   torch::Tensor& values) const {
    auto x = h + m_attn->forwardStatic(m_inputNorm->forward(h), rope, step, keys, values);
    return x + m_mlp->forward(m_postNorm->forward(x));
}

// ---- text model ------------------------------------------------------------------------------------------

std::vector<WeightSpec> llamaWeightSpecs(const io::LlamaConfig& cfg, const std::string& prefix) {
    const std::int64_t h = cfg.hiddenSize, inter = cfg.intermediateSize;
    const std::int64_t qDim = std::int64_t(cfg.numAttentionHeads) * cfg.headDim;
    const std::int64_t kvDim = std::int64_t(cfg.numKeyValueHeads) * cfg.headDim;
    std::vector<WeightSpec> specs;
    specs.push_back({prefix + "model.embed_tokens.weight", {cfg.vocabSize, h}});
    for (int i = 0; i < cfg.numHiddenLayers; ++i) {
        const std::string p = layerPrefix(prefix, i);
        specs.push_back({p + ".input_layernorm.weight", {h}});
        specs.push_back({p + ".self_attn.q_proj.weight", {qDim, h}});
        specs.push_back({p + ".self_attn.k_proj.weight", {kvDim, h}});
        specs.push_back({p + ".self_attn.v_proj.weight", {kvDim, h}});
        specs.push_back({p + ".self_attn.o_proj.weight", {h, qDim}});
        if (cfg.attentionBias) {
            specs.push_back({p + ".self_attn.q_proj.bias", {qDim}});
            specs.push_back({p + ".self_attn.k_proj.bias", {kvDim}});
            specs.push_back({p + ".self_attn.v_proj.bias", {kvDim}});
            if (!cfg.qkvBiasOnly) specs.push_back({p + ".self_attn.o_proj.bias", {h}});
        }
        specs.push_back({p + ".post_attention_layernorm.weight", {h}});
        specs.push_back({p + ".mlp.gate_proj.weight", {inter, h}});
        specs.push_back({p + ".mlp.up_proj.weight", {inter, h}});
        specs.push_back({p + ".mlp.down_proj.weight", {h, inter}});
        if (cfg.mlpBias) {
            specs.push_back({p + ".mlp.gate_proj.bias", {inter}});
            specs.push_back({p + ".mlp.up_proj.bias", {inter}});
            specs.push_back({p + ".mlp.down_proj.bias", {h}});
        }
    }
    specs.push_back({prefix + "model.norm.weight", {h}});
    if (!cfg.tieWordEmbeddings) specs.push_back({prefix + "lm_head.weight", {cfg.vocabSize, h}});
    return specs;
}

LlamaTextModelImpl::LlamaTextModelImpl(const WeightMap& w, const std::string& prefix,
                                       const io::LlamaConfig& cfg, torch::Device device)
    : m_cfg(cfg) {
    m_embed = register_parameter("embed_tokens", weight(w, prefix + "model.embed_tokens.weight"), false);
    for (int i = 0; i < cfg.numHiddenLayers; ++i)
        m_layers.push_back(
            register_module("layer" + std::to_string(i), LlamaDecoderLayer(w, layerPrefix(prefix, i), cfg)));
    m_norm = register_module("norm", RmsNorm(w, prefix + "model.norm", cfg.rmsNormEps));
    auto head = cfg.tieWordEmbeddings ? m_embed : weight(w, prefix + "lm_head.weight");
    m_lmHead = register_module("lm_head", Dense(head, torch::Tensor()));
    m_rope = RotaryEmbedding(cfg.headDim, cfg.ropeTheta, device);
}

torch::Tensor LlamaTextModelImpl::embed(const torch::Tensor& ids) const {
    return torch::embedding(m_embed, ids);
}

torch::Tensor LlamaTextModelImpl::decodeStatic(const torch::Tensor& token, const StaticStep& step,
                                               KvCache& cache) const {
    TORCH_CHECK(cache.layerCount() == layerCount(), "static decode: the cache has ", cache.layerCount(),
                " layers, the model ", layerCount());
    auto h = embed(token.reshape({1})).unsqueeze(0);  // [1, 1, hidden]
    const auto rope =
        m_rope.table(step.ropePosition.defined() ? step.ropePosition : step.position, h.scalar_type());
    for (int i = 0; i < layerCount(); ++i) {
        auto [keys, values] = cache.storage(i);
        h = m_layers[std::size_t(i)]->forwardStatic(h, rope, step, keys, values);
    }
    return logits(h[0][0]);
}

torch::Tensor LlamaTextModelImpl::logits(const torch::Tensor& h) const {
    return m_lmHead->forward(m_norm->forward(h)).to(torch::kFloat);
}

TextForwardResult LlamaTextModelImpl::forward(Context& ctx, const torch::Tensor& h,
                                              const TextForward& run) const {
    TORCH_CHECK(h.dim() == 3 && h.size(0) == 1, "LLaMA forward: hidden states must be [1, L, hidden], got ",
                h.sizes());
    const std::int64_t len = h.size(1);
    const std::int64_t start = ctx.length() - len;
    TORCH_CHECK(start >= 0, "LLaMA forward: append the ", len, " tokens to the context first");
    const int endLayer = run.endLayer < 0 ? layerCount() : std::min(run.endLayer, layerCount());
    const auto rope = run.rope.cos.defined() ? run.rope : m_rope.table(start, len, h.scalar_type());
    TORCH_CHECK(rope.cos.size(0) == len, "LLaMA forward: rotary table for ", rope.cos.size(0), " rows, not ",
                len);
    const torch::Device device = h.device();

    TextForwardResult result;
    auto keep = [&](int index, const torch::Tensor& x) {
        if (std::find(run.keepHidden.begin(), run.keepHidden.end(), index) != run.keepHidden.end())
            result.hidden[index] = x[0];
    };

    // Capture setup (mllm_reference.md §10): rows of this call, image-key columns of the whole context.
    const auto& captured = ctx.capturedLayers();
    const bool capturing = !run.captureRows.empty() && !captured.empty();
    LayerCapture capture;
    CaptureBlock block;
    if (capturing) {
        TORCH_CHECK(run.captureMeta.size() == run.captureRows.size(),
                    "capture rows and their description differ");
        for (std::int64_t r : run.captureRows)
            TORCH_CHECK(r >= 0 && r < len, "capture row ", r, " outside this call's ", len, " rows");
        capture.localRows = indexTensor(run.captureRows, device);
        capture.positions = capture.localRows + start;
        capture.columns = ctx.imageKeyIndex();
        block.rows = run.captureMeta;
        block.columns = ctx.imageKeyCount();
    }
    capture.measure = ctx.captureRequest().measure;

    torch::Tensor x = h;
    try {
        keep(0, x);
        std::size_t slot = 0;
        for (int i = 0; i < endLayer; ++i) {
            const bool here = capturing && slot < captured.size() && captured[slot] == i;
            x = m_layers[std::size_t(i)]->forward(x, rope, start, &ctx.cache(), i, here ? &capture : nullptr);
            if (here) {
                block.perLayer.push_back(capture.result);
                capture.result = torch::Tensor();
                ++slot;
            }
            keep(i + 1, x);
        }
        if (capturing) {
            // A partial prefill (endLayer) computes no rows for the layers it skips: NaN marks them.
            for (std::size_t s = slot; s < captured.size(); ++s)
                block.perLayer.push_back(
                    torch::full({ctx.heads(), std::int64_t(block.rows.size()), block.columns},
                                std::numeric_limits<float>::quiet_NaN(),
                                torch::TensorOptions().dtype(torch::kFloat).device(device)));
            ctx.addCaptureBlock(std::move(block));
            auto& stats = ctx.mutableCaptureStats();
            stats.seconds += capture.seconds;
            stats.peakScratchBytes = std::max(stats.peakScratchBytes, capture.scratchBytes);
        }
    } catch (...) {
        ctx.truncate(start);
        throw;
    }
    result.last = x;
    return result;
}

}  // namespace sdrpn::models
