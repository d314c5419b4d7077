#include "core/models/deepseek_vl.h"

#include "core/io/safetensors.h"
#include "core/models/unfilled_checkpoint.h"

namespace sdrpn::models {

namespace {

const std::string kVisionPrefix = "vision_model";
const std::string kTextPrefix = "language_model.";

bool startsWith(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

bool endsWith(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// `rest` follows the SigLIP tower's prefix. The attention-pooling head is not part of DeepSeek-VL's path
// (it reads last_hidden_state), so its tensors are ignored rather than required.
std::string visionKey(const std::string& rest) {
    if (startsWith(rest, "head.")) return "";
    return kVisionPrefix + "." + rest;
}

}  // namespace

// ---- aligner
// ----------------------------------------------------------------------------------------------

DeepseekVlAlignerImpl::DeepseekVlAlignerImpl(const WeightMap& w) {
    m_linear1 = register_module("linear1", Dense(w, "aligner.linear1", true));
    m_linear2 = register_module("linear2", Dense(w, "aligner.linear2", true));
}

torch::Tensor DeepseekVlAlignerImpl::forward(const torch::Tensor& x) const {
    return m_linear2->forward(torch::gelu(m_linear1->forward(x)));  // nn.GELU(): exact (erf)
}

// ---- model
// -------------------------------------------------------------------------------------------------

DeepseekVlModel::DeepseekVlModel(const io::DeepseekVlConfig& cfg, const WeightMap& weights,
                                 torch::Device device, torch::ScalarType dtype, std::string source)
    : m_cfg(cfg) {
    m_vision = SiglipVisionTower(weights, kVisionPrefix, cfg.vision);
    m_aligner = DeepseekVlAligner(weights);
    m_text = LlamaTextModel(weights, kTextPrefix, cfg.text, device);

    m_info.modelType = cfg.modelType.empty() ? "deepseek_vl" : cfg.modelType;
    m_info.architecture = "DeepseekVLForConditionalGeneration";
    m_info.source = std::move(source);
    setTextInfo(cfg.text);
    m_info.imageTokenId = cfg.imageTokenId;
    m_info.imageTokens = cfg.vision.numPatches();  // every patch is a token: no CLS, no pooling
    m_info.grid = {cfg.vision.gridSide(), cfg.vision.gridSide()};
    m_info.imageSize = cfg.vision.imageSize;
    m_info.device = device;
    m_info.dtype = dtype;
}

torch::Tensor DeepseekVlModel::visionHidden(const torch::Tensor& pixels) const {
    torch::NoGradGuard noGrad;
    return m_vision->forward(pixels);
}

torch::Tensor DeepseekVlModel::align(const torch::Tensor& features) const {
    torch::NoGradGuard noGrad;
    return m_aligner->forward(features.to(m_info.device, m_info.dtype));
}

torch::Tensor DeepseekVlModel::encodeImage(const torch::Tensor& pixels) const {
    torch::NoGradGuard noGrad;
    auto features = align(m_vision->forward(pixels));
    return features.reshape({-1, features.size(-1)});
}

// ---- loading
// -----------------------------------------------------------------------------------------------

std::string normaliseDeepseekVlKey(const std::string& key) {
    // Buffers some checkpoints carry: never weights.
    if (endsWith(key, ".position_ids") || endsWith(key, ".rotary_emb.inv_freq")) return "";
    // Canonical names (and the text model of a DeepseekVLForConditionalGeneration dump): as they are.
    if (startsWith(key, "language_model.model.") || startsWith(key, "language_model.lm_head.") ||
        startsWith(key, "aligner."))
        return key;
    // transformers 5: model.{vision_model, aligner, language_model}.*, lm_head.*
    if (startsWith(key, "model.language_model.")) return "language_model.model." + key.substr(21);
    if (startsWith(key, "lm_head.")) return "language_model." + key;
    if (startsWith(key, "model.aligner.")) return key.substr(6);
    // SiglipVisionModel nests its SiglipVisionTransformer one level down (`vision_model.vision_model.*`).
    if (startsWith(key, "model.vision_model.vision_model.")) return visionKey(key.substr(32));
    if (startsWith(key, "model.vision_model.")) return visionKey(key.substr(19));
    if (startsWith(key, "vision_model.vision_model.")) return visionKey(key.substr(26));
    if (startsWith(key, "vision_model.")) return visionKey(key.substr(13));
    // A bare DeepseekVLModel state dict: language_model is the LlamaModel itself.
    if (startsWith(key, "language_model.")) return "language_model.model." + key.substr(15);
    return "";  // unknown: not part of the model (checked through the expected set instead)
}

std::vector<WeightSpec> deepseekVlWeightSpecs(const io::DeepseekVlConfig& cfg) {
    auto specs = siglipVisionWeightSpecs(cfg.vision, kVisionPrefix);
    const std::int64_t h = cfg.text.hiddenSize, v = cfg.vision.hiddenSize;
    specs.push_back({"aligner.linear1.weight", {h, v}});
    specs.push_back({"aligner.linear1.bias", {h}});
    specs.push_back({"aligner.linear2.weight", {h, h}});
    specs.push_back({"aligner.linear2.bias", {h}});
    auto text = llamaWeightSpecs(cfg.text, kTextPrefix);
    specs.insert(specs.end(), text.begin(), text.end());
    return specs;
}

std::shared_ptr<const DeepseekVlModel> loadDeepseekVl(const std::string& modelDir, const LoadOptions& options,
                                                      const JobContext& job) {
    const torch::Device device = parseDevice(options.device);
    const torch::ScalarType dtype = parseComputeDType(options.dtype);
    checkComputeSupport(device, dtype);
    job.report(0, 0, "reading " + modelDir);
    const io::DeepseekVlConfig cfg = io::readDeepseekVlConfig(modelDir);
    // Refuse what the model could not run before reading any weights.
    checkActivation(cfg.vision.hiddenAct, cfg.sourcePath + ": vision_config.hidden_act");
    checkActivation(cfg.text.hiddenAct, cfg.sourcePath + ": text_config.hidden_act");

    // An unfilled SD-RPN checkpoint takes what it lacks from its base model (LoadOptions::base).
    std::shared_ptr<const io::SafetensorsArchive> baseArchive;
    if (!options.base.empty()) {
        checkBaseConfig(cfg.text, io::readDeepseekVlConfig(options.base).text, modelDir, options.base);
        baseArchive = io::SafetensorsArchive::open(options.base);
    } else if (isUnfilledSdrpnCheckpoint(modelDir)) {
        throw Error(unfilledCheckpointMessage(modelDir));
    }

    WeightSource source;
    source.addArchive(io::SafetensorsArchive::open(modelDir), normaliseDeepseekVlKey);
    if (baseArchive)
        source.addMissingFrom(baseArchive, normaliseDeepseekVlKey,
                              baseMismatchPrefix(modelDir, options.base));
    job.throwIfCancelled();

    const std::string what = "DeepSeek-VL checkpoint " + modelDir;
    const auto specs = deepseekVlWeightSpecs(cfg);
    checkWeights(source, specs, what);
    WeightMap weights = loadWeights(source, specs, device, dtype, job, what);
    fuseLlamaProjections(weights, cfg.text, kTextPrefix);
    auto model = std::make_shared<const DeepseekVlModel>(cfg, weights, device, dtype, modelDir);
    job.report(1, 1, "loaded " + modelDir);
    return model;
}

Result<std::shared_ptr<const DeepseekVlModel>> tryLoadDeepseekVl(const std::string& modelDir,
                                                                 const LoadOptions& options,
                                                                 const JobContext& job) {
    return guarded([&] { return loadDeepseekVl(modelDir, options, job); });
}

}  // namespace sdrpn::models
