// Loading LLaVA-1.5 checkpoints: key normalisation (mllm_reference.md §2.1–§2.3), the full expected-tensor
// check, CLIP folder resolution for the original layout, dtype / device conversion.
#include "core/io/safetensors.h"
#include "core/models/llava.h"
#include "core/models/llama.h"
#include "core/models/unfilled_checkpoint.h"
#include "core/models/vision_tower.h"

namespace sdrpn::models {

namespace {

bool startsWith(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

bool endsWith(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool ignoredBuffer(const std::string& key) {
    // Buffers older checkpoints saved (mllm_reference.md §1): never weights.
    return endsWith(key, ".position_ids") || endsWith(key, ".rotary_emb.inv_freq") ||
           endsWith(key, "image_newline");
}

// `rest` follows a vision-tower prefix; accepts a missing `vision_model.` level.
std::string visionKey(const std::string& rest) {
    if (startsWith(rest, "vision_model.")) return "vision_tower." + rest;
    return "vision_tower.vision_model." + rest;
}

std::string replacePrefix(const std::string& s, const std::string& from, const std::string& to) {
    return to + s.substr(from.size());
}

}  // namespace

namespace {

std::string withoutVisionTower(const std::string& key) {
    auto c = normaliseLlavaKey(key);
    return startsWith(c, "vision_tower.") ? std::string() : c;
}

bool hasCanonical(const io::SafetensorsArchive& archive, const std::string& canonical) {
    for (const auto& name : archive.names())
        if (normaliseLlavaKey(name) == canonical) return true;
    return false;
}

}  // namespace

std::string normaliseLlavaKey(const std::string& key) {
    if (ignoredBuffer(key)) return "";
    // llava-hf hub layout: already canonical.
    if (startsWith(key, "language_model.model.") || startsWith(key, "language_model.lm_head.") ||
        startsWith(key, "multi_modal_projector."))
        return key;
    if (startsWith(key, "vision_tower.")) return visionKey(key.substr(13));
    // transformers >= 4.52 layout.
    if (startsWith(key, "model.language_model."))
        return replacePrefix(key, "model.language_model.", "language_model.model.");
    if (startsWith(key, "model.multi_modal_projector."))
        return replacePrefix(key, "model.multi_modal_projector.", "multi_modal_projector.");
    // Original layout (and a state_dict dumped from a live original model).
    if (startsWith(key, "model.vision_tower.vision_tower.")) return visionKey(key.substr(32));
    if (startsWith(key, "model.vision_tower.")) return visionKey(key.substr(19));
    if (startsWith(key, "model.mm_projector.0."))
        return replacePrefix(key, "model.mm_projector.0.", "multi_modal_projector.linear_1.");
    if (startsWith(key, "model.mm_projector.2."))
        return replacePrefix(key, "model.mm_projector.2.", "multi_modal_projector.linear_2.");
    if (startsWith(key, "lm_head.")) return "language_model." + key;
    if (startsWith(key, "model.")) return "language_model." + key;
    return "";  // unknown: not part of the model (checked through the expected set instead)
}

std::string normaliseClipKey(const std::string& key) {
    if (ignoredBuffer(key)) return "";
    if (startsWith(key, "vision_model.")) return "vision_tower." + key;
    return "";  // text_model.*, visual_projection, text_projection, logit_scale
}

std::string llavaStoredKey(const std::string& canonical, LlavaKeyLayout layout) {
    const bool vision = startsWith(canonical, "vision_tower.");
    switch (layout) {
        case LlavaKeyLayout::Hub:
            return canonical;
        case LlavaKeyLayout::Transformers:
            if (startsWith(canonical, "language_model.model."))
                return replacePrefix(canonical, "language_model.model.", "model.language_model.");
            if (startsWith(canonical, "language_model.lm_head.")) return canonical.substr(15);
            return "model." + canonical;
        case LlavaKeyLayout::Original:
            if (vision) return "";
            if (startsWith(canonical, "language_model.")) return canonical.substr(15);
            if (startsWith(canonical, "multi_modal_projector.linear_1."))
                return replacePrefix(canonical, "multi_modal_projector.linear_1.", "model.mm_projector.0.");
            if (startsWith(canonical, "multi_modal_projector.linear_2."))
                return replacePrefix(canonical, "multi_modal_projector.linear_2.", "model.mm_projector.2.");
            return "";
        case LlavaKeyLayout::ClipFolder:
            return vision ? canonical.substr(13) : "";
    }
    return "";
}

std::vector<WeightSpec> llavaWeightSpecs(const io::LlavaConfig& cfg) {
    auto specs = clipVisionWeightSpecs(cfg.vision, "vision_tower.vision_model", cfg.visionFeatureLayer);
    const std::int64_t h = cfg.text.hiddenSize, v = cfg.vision.hiddenSize;
    specs.push_back({"multi_modal_projector.linear_1.weight", {h, v}});
    if (cfg.projectorBias) specs.push_back({"multi_modal_projector.linear_1.bias", {h}});
    specs.push_back({"multi_modal_projector.linear_2.weight", {h, h}});
    if (cfg.projectorBias) specs.push_back({"multi_modal_projector.linear_2.bias", {h}});
    auto text = llamaWeightSpecs(cfg.text, "language_model.");
    specs.insert(specs.end(), text.begin(), text.end());
    return specs;
}

std::string resolveVisionTower(const std::string& modelDir, const io::LlavaConfig& cfg,
                               const LoadOptions& options) {
    const VisionTowerLookup tower = findVisionTower(modelDir, cfg.visionTowerName, options.visionTower);
    if (tower.found()) return tower.folder;
    if (tower.explicitFolder)
        throw Error("vision tower folder '" + options.visionTower + "' does not exist or has no config.json");
    if (tower.name.empty())
        throw Error(modelDir +
                    ": the config names no vision tower (mm_vision_tower); give the CLIP folder "
                    "explicitly (vision tower option)");
    std::string msg =
        modelDir + ": CLIP vision tower '" + tower.name + "' (mm_vision_tower) not found; tried:";
    for (const auto& p : tower.tried) msg += "\n  " + p;
    msg += "\ngive the CLIP folder explicitly (vision tower option)";
    throw Error(msg);
}

std::shared_ptr<const LlavaModel> loadLlava(const std::string& modelDir, const LoadOptions& options,
                                            const JobContext& job) {
    const torch::Device device = parseDevice(options.device);
    const torch::ScalarType dtype = parseComputeDType(options.dtype);
    checkComputeSupport(device, dtype);
    job.report(0, 0, "reading " + modelDir);
    io::LlavaConfig cfg = io::readLlavaConfig(modelDir);
    if (cfg.projectorType.rfind("mlp2x_", 0) != 0)
        throw Error(cfg.sourcePath + ": projector type '" + cfg.projectorType +
                    "' is not supported (mlp2x_<act>)");

    // An unfilled SD-RPN checkpoint takes what it lacks from its base model (LoadOptions::base).
    std::shared_ptr<const io::SafetensorsArchive> baseArchive;
    io::LlavaConfig baseCfg;
    if (!options.base.empty()) {
        baseCfg = io::readLlavaConfig(options.base);
        checkBaseConfig(cfg.text, baseCfg.text, modelDir, options.base);
        baseArchive = io::SafetensorsArchive::open(options.base);
    } else if (isUnfilledSdrpnCheckpoint(modelDir)) {
        throw Error(unfilledCheckpointMessage(modelDir));
    }

    WeightSource source;
    source.addArchive(io::SafetensorsArchive::open(modelDir), normaliseLlavaKey);
    job.throwIfCancelled();
    const std::string patch = "vision_tower.vision_model.embeddings.patch_embedding.weight";
    const bool baseHasTower =
        baseArchive && baseCfg.layout == io::LlavaLayout::Hf && hasCanonical(*baseArchive, patch);
    bool towerFromClip = false;
    if (cfg.layout == io::LlavaLayout::Original && !source.find(patch)) {
        if (baseHasTower && options.visionTower.empty()) {
            cfg.vision = baseCfg.vision;  // the base model's tower fills the gap below
        } else {
            const std::string clipDir = resolveVisionTower(modelDir, cfg, options);
            cfg.vision = io::readClipVisionConfig(clipDir);
            source.addArchive(io::SafetensorsArchive::open(clipDir), normaliseClipKey);
            towerFromClip = true;
        }
    } else if (!options.visionTower.empty()) {
        // An explicit tower replaces whatever the checkpoint holds.
        const std::string clipDir = resolveVisionTower(modelDir, cfg, options);
        cfg.vision = io::readClipVisionConfig(clipDir);
        WeightSource merged;
        merged.addArchive(io::SafetensorsArchive::open(modelDir), withoutVisionTower);
        merged.addArchive(io::SafetensorsArchive::open(clipDir), normaliseClipKey);
        source = std::move(merged);
        towerFromClip = true;
    }
    if (baseArchive) {
        // A tower read from a CLIP folder is not compared with (or filled from) the base's.
        source.addMissingFrom(
            baseArchive, towerFromClip ? KeyNormaliser(withoutVisionTower) : KeyNormaliser(normaliseLlavaKey),
            baseMismatchPrefix(modelDir, options.base));
    }
    job.throwIfCancelled();

    const auto specs = llavaWeightSpecs(cfg);
    checkWeights(source, specs, "LLaVA checkpoint " + modelDir);
    WeightMap weights = loadWeights(source, specs, device, dtype, job, "LLaVA checkpoint " + modelDir);
    fuseLlamaProjections(weights, cfg.text, "language_model.");
    auto model = std::make_shared<const LlavaModel>(cfg, weights, device, dtype, modelDir);
    job.report(1, 1, "loaded " + modelDir);
    return model;
}

Result<std::shared_ptr<const LlavaModel>> tryLoadLlava(const std::string& modelDir,
                                                       const LoadOptions& options, const JobContext& job) {
    return guarded([&] { return loadLlava(modelDir, options, job); });
}

}  // namespace sdrpn::models
