// SigLIP ViT vision tower as DeepSeek-VL uses it (HF SiglipVisionTransformer): conv patch embedding with
// bias, learned position embeddings (one per patch, no class token), pre-norm encoder layers (LayerNorm,
// attention with q/k/v/out_proj biases, fc1 -> gelu_pytorch_tanh -> fc2), then post_layernorm. The
// output is HF's `last_hidden_state` (after post_layernorm), which is what DeepSeek-VL's aligner reads; the
// attention-pooling `head` is never used, so it is neither required nor loaded.
//
//   SiglipVisionTower tower(weights, "vision_model", cfg);
//   torch::Tensor hidden = tower->forward(pixels);   // [B, patches, hidden], patch p = row * side + col
//
// Weights read-only after construction; forward is safe from several threads.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/io/config.h"
#include "core/models/layers.h"
#include "core/models/weights.h"

namespace sdrpn::models {

// Canonical names and shapes under `prefix` (e.g. "vision_model"): embeddings, every encoder layer and
// post_layernorm. The pooling head (`<prefix>.head.*`) is not listed.
std::vector<WeightSpec> siglipVisionWeightSpecs(const io::SiglipVisionConfig& cfg, const std::string& prefix);

class SiglipEncoderLayerImpl : public torch::nn::Module {
public:
    SiglipEncoderLayerImpl(const WeightMap& w, const std::string& prefix, const io::SiglipVisionConfig& cfg);
    torch::Tensor forward(const torch::Tensor& x) const;  // [B, L, hidden]

private:
    LayerNorm m_ln1{nullptr}, m_ln2{nullptr};
    Dense m_q{nullptr}, m_k{nullptr}, m_v{nullptr}, m_out{nullptr}, m_fc1{nullptr}, m_fc2{nullptr};
    int m_heads, m_headDim;
    double m_scale;
    std::string m_act;
};
TORCH_MODULE(SiglipEncoderLayer);

class SiglipVisionTowerImpl : public torch::nn::Module {
public:
    SiglipVisionTowerImpl(const WeightMap& w, const std::string& prefix, const io::SiglipVisionConfig& cfg);
    // pixels [B, C, S, S] (or [C, S, S]) normalised, S = image_size -> last_hidden_state [B, patches,
    // hidden] in the weights' dtype and device. Throws c10::Error for any other pixel shape.
    torch::Tensor forward(const torch::Tensor& pixels) const;

    const io::SiglipVisionConfig& config() const { return m_cfg; }

private:
    io::SiglipVisionConfig m_cfg;
    torch::Tensor m_patchWeight, m_patchBias, m_positionEmbedding;
    std::vector<SiglipEncoderLayer> m_layers;
    LayerNorm m_postNorm{nullptr};
};
TORCH_MODULE(SiglipVisionTower);

}  // namespace sdrpn::models
