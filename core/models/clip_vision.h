// CLIP ViT vision tower as LLaVA uses it (mllm_reference.md §3): conv patch embedding without bias, class
// embedding, position embeddings, pre_layrnorm, pre-norm encoder layers (quick_gelu MLP by default), run
// only up to the layer that `vision_feature_layer` selects; post_layernorm is never applied.
//
//   ClipVisionTower tower(weights, "vision_tower.vision_model", cfg, /*featureLayer=*/-2);
//   torch::Tensor hidden = tower->forward(pixels);   // [B, 1 + patches, hidden], CLS first
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

// How many encoder layers to run for `featureLayer` (HF hidden_states index; negative counts from the
// end: -1 = last layer, -2 = the one before). Throws sdrpn::Error when out of range.
int clipLayersToRun(int numLayers, int featureLayer);

// Canonical names and shapes under `prefix` (e.g. "vision_tower.vision_model"). Layers the feature layer
// does not reach are checked for presence but not loaded (WeightSpec::load = false); post_layernorm is
// neither required nor loaded (LLaVA never applies it).
std::vector<WeightSpec> clipVisionWeightSpecs(const io::ClipVisionConfig& cfg, const std::string& prefix,
                                              int featureLayer);

class ClipEncoderLayerImpl : public torch::nn::Module {
public:
    ClipEncoderLayerImpl(const WeightMap& w, const std::string& prefix, const io::ClipVisionConfig& cfg);
    torch::Tensor forward(const torch::Tensor& x) const;  // [B, L, hidden]

private:
    LayerNorm m_ln1{nullptr}, m_ln2{nullptr};
    Dense m_q{nullptr}, m_k{nullptr}, m_v{nullptr}, m_out{nullptr}, m_fc1{nullptr}, m_fc2{nullptr};
    int m_heads, m_headDim;
    double m_scale;
    std::string m_act;
};
TORCH_MODULE(ClipEncoderLayer);

class ClipVisionTowerImpl : public torch::nn::Module {
public:
    ClipVisionTowerImpl(const WeightMap& w, const std::string& prefix, const io::ClipVisionConfig& cfg,
                        int featureLayer);
    // pixels [B, 3, S, S] (or [3, S, S]) normalised, S = image_size -> hidden state of the feature layer,
    // [B, 1 + patches, hidden] (CLS first).
    torch::Tensor forward(const torch::Tensor& pixels) const;

    const io::ClipVisionConfig& config() const { return m_cfg; }
    int layersRun() const { return int(m_layers.size()); }

private:
    io::ClipVisionConfig m_cfg;
    torch::Tensor m_patchWeight, m_classEmbedding, m_positionEmbedding;
    LayerNorm m_preNorm{nullptr};
    std::vector<ClipEncoderLayer> m_layers;
};
TORCH_MODULE(ClipVisionTower);

}  // namespace sdrpn::models
