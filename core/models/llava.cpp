#include "core/models/llava.h"

#include "core/models/attention.h"

namespace sdrpn::models {

// ---- projector
// ---------------------------------------------------------------------------------------------

MultiModalProjectorImpl::MultiModalProjectorImpl(const WeightMap& w, const std::string& act) : m_act(act) {
    checkActivation(m_act, "projector_hidden_act");
    m_linear1 = register_module("linear_1", Dense(w, "multi_modal_projector.linear_1"));
    m_linear2 = register_module("linear_2", Dense(w, "multi_modal_projector.linear_2"));
}

torch::Tensor MultiModalProjectorImpl::forward(const torch::Tensor& x) const {
    return m_linear2->forward(activation(m_act, m_linear1->forward(x)));  // mllm_reference.md §4: erf GELU
}

// ---- model
// -------------------------------------------------------------------------------------------------

namespace {

std::int64_t featureRowsPerImage(const io::LlavaConfig& cfg) {
    return std::int64_t(cfg.vision.numPatches()) + (cfg.visionFeatureSelectStrategy == "full" ? 1 : 0);
}

}  // namespace

LlavaModel::LlavaModel(const io::LlavaConfig& cfg, const WeightMap& weights, torch::Device device,
                       torch::ScalarType dtype, std::string source)
    : m_cfg(cfg) {
    if (cfg.visionFeatureSelectStrategy != "default" && cfg.visionFeatureSelectStrategy != "full")
        throw Error("vision_feature_select_strategy '" + cfg.visionFeatureSelectStrategy +
                    "' is not supported");
    m_vision = ClipVisionTower(weights, "vision_tower.vision_model", cfg.vision, cfg.visionFeatureLayer);
    m_projector = MultiModalProjector(weights, cfg.projectorHiddenAct);
    m_text = LlamaTextModel(weights, "language_model.", cfg.text, device);

    m_info.modelType = cfg.modelType.empty() ? "llava" : cfg.modelType;
    m_info.architecture =
        cfg.layout == io::LlavaLayout::Hf ? "LlavaForConditionalGeneration" : "LlavaLlamaForCausalLM";
    m_info.source = std::move(source);
    setTextInfo(cfg.text);
    if (cfg.imageTokenIndex >= 0)
        m_info.imageTokenId = cfg.imageTokenIndex;
    else
        m_info.imageSentinel = cfg.imageTokenIndex;
    m_info.imageTokens = featureRowsPerImage(cfg);
    if (cfg.visionFeatureSelectStrategy == "default")
        m_info.grid = {cfg.vision.gridSide(), cfg.vision.gridSide()};
    m_info.imageSize = cfg.vision.imageSize;
    m_info.device = device;
    m_info.dtype = dtype;
}

torch::Tensor LlavaModel::visionHidden(const torch::Tensor& pixels) const {
    torch::NoGradGuard noGrad;
    return m_vision->forward(pixels);
}

torch::Tensor LlavaModel::selectFeatures(const torch::Tensor& hidden) const {
    // "default" (HF) = "patch" (original): drop CLS (mllm_reference.md §3).
    if (m_cfg.visionFeatureSelectStrategy == "full") return hidden;
    return hidden.narrow(1, 1, hidden.size(1) - 1);
}

torch::Tensor LlavaModel::project(const torch::Tensor& features) const {
    torch::NoGradGuard noGrad;
    return m_projector->forward(features.to(m_info.device, m_info.dtype));
}

torch::Tensor LlavaModel::encodeImage(const torch::Tensor& pixels) const {
    torch::NoGradGuard noGrad;
    auto features = project(selectFeatures(m_vision->forward(pixels)));
    return features.reshape({-1, features.size(-1)});
}

}  // namespace sdrpn::models
