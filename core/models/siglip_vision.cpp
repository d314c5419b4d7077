#include "core/models/siglip_vision.h"

#include <cmath>

#include "core/models/attention.h"
#include "core/result.h"

namespace sdrpn::models {

std::vector<WeightSpec> siglipVisionWeightSpecs(const io::SiglipVisionConfig& cfg,
                                                const std::string& prefix) {
    const std::int64_t c = cfg.hiddenSize, inter = cfg.intermediateSize, p = cfg.patchSize;
    std::vector<WeightSpec> specs;
    specs.push_back({prefix + ".embeddings.patch_embedding.weight", {c, cfg.numChannels, p, p}});
    specs.push_back({prefix + ".embeddings.patch_embedding.bias", {c}});
    specs.push_back({prefix + ".embeddings.position_embedding.weight", {cfg.numPatches(), c}});
    for (int i = 0; i < cfg.numHiddenLayers; ++i) {
        const std::string l = prefix + ".encoder.layers." + std::to_string(i);
        for (const char* norm : {".layer_norm1", ".layer_norm2"}) {
            specs.push_back({l + norm + ".weight", {c}});
            specs.push_back({l + norm + ".bias", {c}});
        }
        for (const char* proj :
             {".self_attn.q_proj", ".self_attn.k_proj", ".self_attn.v_proj", ".self_attn.out_proj"}) {
            specs.push_back({l + proj + ".weight", {c, c}});
            specs.push_back({l + proj + ".bias", {c}});
        }
        specs.push_back({l + ".mlp.fc1.weight", {inter, c}});
        specs.push_back({l + ".mlp.fc1.bias", {inter}});
        specs.push_back({l + ".mlp.fc2.weight", {c, inter}});
        specs.push_back({l + ".mlp.fc2.bias", {c}});
    }
    specs.push_back({prefix + ".post_layernorm.weight", {c}});
    specs.push_back({prefix + ".post_layernorm.bias", {c}});
    return specs;
}

SiglipEncoderLayerImpl::SiglipEncoderLayerImpl(const WeightMap& w, const std::string& prefix,
                                               const io::SiglipVisionConfig& cfg)
    : m_heads(cfg.numAttentionHeads), m_headDim(cfg.headDim()), m_act(cfg.hiddenAct) {
    TORCH_CHECK(m_heads > 0 && cfg.hiddenSize % m_heads == 0, "SigLIP: hidden ", cfg.hiddenSize,
                " not divisible by ", m_heads, " heads");
    checkActivation(m_act, prefix);
    m_scale = 1.0 / std::sqrt(double(m_headDim));
    m_ln1 = register_module("layer_norm1", LayerNorm(w, prefix + ".layer_norm1", cfg.layerNormEps));
    m_q = register_module("q_proj", Dense(w, prefix + ".self_attn.q_proj", true));
    m_k = register_module("k_proj", Dense(w, prefix + ".self_attn.k_proj", true));
    m_v = register_module("v_proj", Dense(w, prefix + ".self_attn.v_proj", true));
    m_out = register_module("out_proj", Dense(w, prefix + ".self_attn.out_proj", true));
    m_ln2 = register_module("layer_norm2", LayerNorm(w, prefix + ".layer_norm2", cfg.layerNormEps));
    m_fc1 = register_module("fc1", Dense(w, prefix + ".mlp.fc1", true));
    m_fc2 = register_module("fc2", Dense(w, prefix + ".mlp.fc2", true));
}

torch::Tensor SiglipEncoderLayerImpl::forward(const torch::Tensor& x) const {
    const std::int64_t batch = x.size(0), len = x.size(1);
    auto y = m_ln1->forward(x);
    auto split = [&](const torch::Tensor& t) {
        return t.view({batch, len, m_heads, m_headDim}).transpose(1, 2);
    };
    // Bidirectional attention over all patches (no mask), fp32 softmax as HF eager.
    auto a = scaledDotProductAttention(split(m_q->forward(y)), split(m_k->forward(y)), split(m_v->forward(y)),
                                       /*causal=*/false, 0, m_scale);
    auto h = x + m_out->forward(a.transpose(1, 2).reshape({batch, len, m_heads * m_headDim}));
    return h + m_fc2->forward(activation(m_act, m_fc1->forward(m_ln2->forward(h))));
}

SiglipVisionTowerImpl::SiglipVisionTowerImpl(const WeightMap& w, const std::string& prefix,
                                             const io::SiglipVisionConfig& cfg)
    : m_cfg(cfg) {
    m_patchWeight = register_parameter("patch_embedding",
                                       weight(w, prefix + ".embeddings.patch_embedding.weight"), false);
    m_patchBias =
        register_parameter("patch_bias", weight(w, prefix + ".embeddings.patch_embedding.bias"), false);
    m_positionEmbedding = register_parameter(
        "position_embedding", weight(w, prefix + ".embeddings.position_embedding.weight"), false);
    TORCH_CHECK(m_positionEmbedding.size(0) == cfg.numPatches(), "SigLIP: ", m_positionEmbedding.size(0),
                " position embeddings for ", cfg.numPatches(), " patches");
    for (int i = 0; i < cfg.numHiddenLayers; ++i)
        m_layers.push_back(
            register_module("layer" + std::to_string(i),
                            SiglipEncoderLayer(w, prefix + ".encoder.layers." + std::to_string(i), cfg)));
    m_postNorm =
        register_module("post_layernorm", LayerNorm(w, prefix + ".post_layernorm", cfg.layerNormEps));
}

torch::Tensor SiglipVisionTowerImpl::forward(const torch::Tensor& pixelsIn) const {
    auto pixels = pixelsIn.dim() == 3 ? pixelsIn.unsqueeze(0) : pixelsIn;
    TORCH_CHECK(pixels.dim() == 4 && pixels.size(1) == m_cfg.numChannels &&
                    pixels.size(2) == m_cfg.imageSize && pixels.size(3) == m_cfg.imageSize,
                "SigLIP: pixels must be [B, ", m_cfg.numChannels, ", ", m_cfg.imageSize, ", ",
                m_cfg.imageSize, "], got ", pixelsIn.sizes());
    pixels = pixels.to(m_patchWeight.device(), m_patchWeight.scalar_type());
    // [B, C, g, g] -> [B, g*g, C]; patch p = row * g + col ("valid" padding, stride = patch).
    auto x = torch::conv2d(pixels, m_patchWeight, m_patchBias, m_cfg.patchSize).flatten(2).transpose(1, 2);
    x = x + m_positionEmbedding.unsqueeze(0);
    for (const auto& layer : m_layers) x = layer->forward(x);
    return m_postNorm->forward(x);
}

}  // namespace sdrpn::models
