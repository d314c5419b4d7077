// LLaVA-1.5 (mllm_reference.md §2–§5): CLIP ViT tower -> mlp2x_gelu projector -> LLaMA decoder, with the
// image features inserted at the image rows of the prompt.
//
// Loads llava-hf folders (hub keys `language_model.model.*`, `vision_tower.vision_model.*`,
// `multi_modal_projector.*`, and the transformers >= 4.52 keys `model.language_model.*` ... `lm_head.*`),
// and original LLaVA folders (`model.layers.*`, `model.mm_projector.{0,2}.*`, `lm_head.*`) whose CLIP tower
// comes from a separate folder (`mm_vision_tower`, or LoadOptions::visionTower).
//
//   LoadOptions opt;  opt.device = "cuda";  opt.dtype = "bf16";
//   Result<std::shared_ptr<const LlavaModel>> r = tryLoadLlava("/models/llava-1.5-7b-hf", opt, job);
//   if (!r) report(r.status());           // names the folder, file and every missing / mismatched tensor
//
// Thread safety: a loaded model is read-only; use one Context per job.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/io/config.h"
#include "core/jobs.h"
#include "core/models/clip_vision.h"
#include "core/models/decoder_backbone.h"
#include "core/models/llama.h"
#include "core/models/load_options.h"
#include "core/result.h"

namespace sdrpn::models {

class MultiModalProjectorImpl : public torch::nn::Module {
public:
    // Reads multi_modal_projector.linear_1 / linear_2 (mlp2x_gelu: Linear, activation, Linear).
    MultiModalProjectorImpl(const WeightMap& w, const std::string& activation);
    torch::Tensor forward(const torch::Tensor& x) const;

private:
    Dense m_linear1{nullptr}, m_linear2{nullptr};
    std::string m_act;
};
TORCH_MODULE(MultiModalProjector);

class LlavaModel final : public DecoderBackbone {
public:
    // Builds from loaded weights under canonical (llava-hf hub) names; see llavaWeightSpecs.
    LlavaModel(const io::LlavaConfig& cfg, const WeightMap& weights, torch::Device device,
               torch::ScalarType dtype, std::string source = {});

    // pixels [3, S, S] or [B, 3, S, S] -> [B * imageTokens, hidden]
    torch::Tensor encodeImage(const torch::Tensor& pixels) const override;

    // The CLIP hidden state the projector reads, [B, 1 + patches, visionHidden] (CLS first).
    torch::Tensor visionHidden(const torch::Tensor& pixels) const;
    // Drops CLS for the "default" strategy: [B, patches, visionHidden].
    torch::Tensor selectFeatures(const torch::Tensor& visionHidden) const;
    // Projector: [..., visionHidden] -> [..., hidden].
    torch::Tensor project(const torch::Tensor& features) const;

    const io::LlavaConfig& config() const { return m_cfg; }
    ClipVisionTower vision() const { return m_vision; }

private:
    io::LlavaConfig m_cfg;
    ClipVisionTower m_vision{nullptr};
    MultiModalProjector m_projector{nullptr};
};

// Every tensor a LLaVA model of this config needs, under canonical names.
std::vector<WeightSpec> llavaWeightSpecs(const io::LlavaConfig& cfg);

// Stored key -> canonical (llava-hf hub) name; "" for keys to ignore (position_ids, rotary inv_freq, the
// CLIP text tower, ...). Accepts the hub, transformers >= 4.52 and original layouts.
std::string normaliseLlavaKey(const std::string& key);
// Keys of a separate CLIP folder (`vision_model.*`) -> `vision_tower.vision_model.*`; others ignored.
std::string normaliseClipKey(const std::string& key);

// Canonical name -> the key a given layout stores it under (for writing checkpoints and tests).
enum class LlavaKeyLayout {
    Hub,           // language_model.model.*, vision_tower.*, multi_modal_projector.*, language_model.lm_head
    Transformers,  // model.language_model.*, model.vision_tower.*, model.multi_modal_projector.*, lm_head
    Original,      // model.*, model.mm_projector.{0,2}.*, lm_head; "" for vision tensors (CLIP folder)
    ClipFolder,    // vision_model.* for vision tensors; "" for the rest
};
std::string llavaStoredKey(const std::string& canonical, LlavaKeyLayout layout);

// The CLIP folder of an original-layout model: options.visionTower if set, else `mm_vision_tower` as an
// absolute path, relative to the model folder, or its last path component next to / inside the model
// folder. Throws sdrpn::Error listing the places tried.
std::string resolveVisionTower(const std::string& modelDir, const io::LlavaConfig& cfg,
                               const LoadOptions& options);

// Loads a LLaVA-1.5 folder. Progress (bytes) and cancel through `job`. Throws sdrpn::Error naming the
// folder / file / tensors; CancelledError when cancelled.
std::shared_ptr<const LlavaModel> loadLlava(const std::string& modelDir, const LoadOptions& options,
                                            const JobContext& job);
// The same, as a Result (ok / cancelled / failed with the message).
Result<std::shared_ptr<const LlavaModel>> tryLoadLlava(const std::string& modelDir,
                                                       const LoadOptions& options, const JobContext& job);

}  // namespace sdrpn::models
