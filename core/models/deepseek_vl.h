// DeepSeek-VL, SigLIP variant (HF DeepseekVLForConditionalGeneration): SigLIP ViT tower (last_hidden_state,
// after post_layernorm) -> aligner (Linear, erf GELU, Linear) -> LLaMA decoder, with the image features
// inserted at the prompt's image rows (576 per 384 px image, a 24 x 24 grid).
//
// Loads transformers-5 folders (keys `model.vision_model.*`, `model.aligner.linear{1,2}.*`,
// `model.language_model.*`, `lm_head.weight`; nested config.json with text_config / vision_config); the
// SigLIP pooling head (`model.vision_model.head.*`) is ignored. The image preprocessing (resize, pad,
// normalise) and the chat template are not part of this file.
//
//   LoadOptions opt;  opt.device = "cuda";  opt.dtype = "bf16";
//   Result<std::shared_ptr<const DeepseekVlModel>> r = tryLoadDeepseekVl("/models/deepseek-vl-1.3b", opt,
//   job); if (!r) report(r.status());           // names the folder, file and every missing / mismatched
//   tensor torch::Tensor features = r.value()->encodeImage(pixels);   // [576, hidden]
//
// Thread safety: a loaded model is read-only; use one Context per job.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/io/config.h"
#include "core/jobs.h"
#include "core/models/decoder_backbone.h"
#include "core/models/layers.h"
#include "core/models/load_options.h"
#include "core/models/siglip_vision.h"
#include "core/result.h"

namespace sdrpn::models {

// HF DeepseekVLAligner: linear1 (vision hidden -> text hidden), nn.GELU() (erf), linear2.
class DeepseekVlAlignerImpl : public torch::nn::Module {
public:
    explicit DeepseekVlAlignerImpl(const WeightMap& w);  // reads aligner.linear1 / aligner.linear2
    torch::Tensor forward(const torch::Tensor& x) const;

private:
    Dense m_linear1{nullptr}, m_linear2{nullptr};
};
TORCH_MODULE(DeepseekVlAligner);

class DeepseekVlModel final : public DecoderBackbone {
public:
    // Builds from loaded weights under canonical names; see deepseekVlWeightSpecs.
    DeepseekVlModel(const io::DeepseekVlConfig& cfg, const WeightMap& weights, torch::Device device,
                    torch::ScalarType dtype, std::string source = {});

    // pixels [3, S, S] or [B, 3, S, S], normalised, S = vision image_size -> [B * imageTokens, hidden].
    torch::Tensor encodeImage(const torch::Tensor& pixels) const override;

    // SigLIP last_hidden_state, [B, patches, visionHidden].
    torch::Tensor visionHidden(const torch::Tensor& pixels) const;
    // Aligner: [..., visionHidden] -> [..., hidden].
    torch::Tensor align(const torch::Tensor& features) const;

    const io::DeepseekVlConfig& config() const { return m_cfg; }
    SiglipVisionTower vision() const { return m_vision; }

private:
    io::DeepseekVlConfig m_cfg;
    SiglipVisionTower m_vision{nullptr};
    DeepseekVlAligner m_aligner{nullptr};
};

// Every tensor a DeepSeek-VL model of this config needs, under canonical names: `vision_model.*`,
// `aligner.linear{1,2}.{weight,bias}`, `language_model.model.*`, `language_model.lm_head.weight` (unless the
// text config ties the word embeddings).
std::vector<WeightSpec> deepseekVlWeightSpecs(const io::DeepseekVlConfig& cfg);

// Stored key -> canonical name; "" for keys to ignore (the SigLIP pooling head, position_ids, rotary
// inv_freq, anything unknown). Accepts the transformers-5 layout (`model.vision_model.*`), the nested
// SiglipVisionModel form (`model.vision_model.vision_model.*`), a bare DeepseekVLModel state dict
// (`vision_model.*`, `aligner.*`, `language_model.*`) and canonical names.
std::string normaliseDeepseekVlKey(const std::string& key);

// Loads a DeepSeek-VL folder (config.json + safetensors, single or sharded). Every expected tensor is
// checked (presence, shape, float dtype) before anything is read. Progress (bytes) and cancel through
// `job`. Throws sdrpn::Error naming the folder / file / tensors; CancelledError when cancelled.
// LoadOptions::visionTower does not apply (the tower is inside the checkpoint) and is ignored.
std::shared_ptr<const DeepseekVlModel> loadDeepseekVl(const std::string& modelDir, const LoadOptions& options,
                                                      const JobContext& job);
// The same, as a Result (ok / cancelled / failed with the message).
Result<std::shared_ptr<const DeepseekVlModel>> tryLoadDeepseekVl(const std::string& modelDir,
                                                                 const LoadOptions& options,
                                                                 const JobContext& job);

}  // namespace sdrpn::models
