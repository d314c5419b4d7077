#include "core/io/config.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sdrpn::io {

namespace {

const char* typeName(const json& v) {
    switch (v.type()) {
        case json::value_t::null:
            return "null";
        case json::value_t::boolean:
            return "a boolean";
        case json::value_t::number_integer:
        case json::value_t::number_unsigned:
            return "an integer";
        case json::value_t::number_float:
            return "a number";
        case json::value_t::string:
            return "a string";
        case json::value_t::array:
            return "a list";
        case json::value_t::object:
            return "an object";
        default:
            return "an unsupported JSON value";
    }
}

// Typed, optional access to one JSON object of a config file. Keys holding null count as absent (the
// reference configs write `null` for "not set"). Errors name the file, the full key and the expected type.
class Section {
public:
    Section(const json& obj, std::string file, std::string prefix)
        : m_obj(obj), m_file(std::move(file)), m_prefix(std::move(prefix)) {}

    const std::string& file() const { return m_file; }
    std::string keyName(const std::string& key) const { return m_prefix + key; }

    const json* find(const std::string& key) const {
        auto it = m_obj.find(key);
        if (it == m_obj.end() || it->is_null()) return nullptr;
        return &*it;
    }
    bool has(const std::string& key) const { return find(key) != nullptr; }

    [[noreturn]] void wrongType(const std::string& key, const char* expected, const json& v) const {
        throw Error(m_file + ": key '" + keyName(key) + "' must be " + expected + ", got " + typeName(v) +
                    " (" + v.dump() + ")");
    }
    [[noreturn]] void badValue(const std::string& key, const std::string& why) const {
        throw Error(m_file + ": key '" + keyName(key) + "' " + why);
    }

    std::optional<std::int64_t> int64(const std::string& key) const {
        const json* v = find(key);
        if (!v) return std::nullopt;
        if (v->is_number_unsigned() &&
            v->get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
            badValue(key, "is out of range: " + v->dump());
        if (v->is_number_integer()) return v->get<std::int64_t>();  // also true for unsigned
        wrongType(key, "an integer", *v);
    }
    std::optional<int> int32(const std::string& key) const {
        auto v = int64(key);
        if (!v) return std::nullopt;
        if (*v < std::numeric_limits<int>::min() || *v > std::numeric_limits<int>::max())
            badValue(key, "is out of range: " + std::to_string(*v));
        return static_cast<int>(*v);
    }
    std::optional<double> number(const std::string& key) const {
        const json* v = find(key);
        if (!v) return std::nullopt;
        if (v->is_number()) return v->get<double>();
        wrongType(key, "a number", *v);
    }
    std::optional<bool> boolean(const std::string& key) const {
        const json* v = find(key);
        if (!v) return std::nullopt;
        if (v->is_boolean()) return v->get<bool>();
        wrongType(key, "true or false", *v);
    }
    std::optional<std::string> string(const std::string& key) const {
        const json* v = find(key);
        if (!v) return std::nullopt;
        if (v->is_string()) return v->get<std::string>();
        wrongType(key, "a string", *v);
    }
    std::optional<Section> object(const std::string& key) const {
        const json* v = find(key);
        if (!v) return std::nullopt;
        if (!v->is_object()) wrongType(key, "an object", *v);
        return Section(*v, m_file, keyName(key) + ".");
    }
    // An integer, or a list of integers whose first element is taken (e.g. several eos ids).
    std::optional<std::int64_t> intOrFirst(const std::string& key) const {
        const json* v = find(key);
        if (!v) return std::nullopt;
        if (v->is_array()) {
            if (v->empty()) return std::nullopt;
            const json& first = v->front();
            if (first.is_number_integer()) return first.get<std::int64_t>();
            wrongType(key, "an integer or a list of integers", *v);
        }
        return int64(key);
    }
    // architectures[0], or "" when absent / null / empty.
    std::string firstArchitecture() const {
        const json* v = find("architectures");
        if (!v) return "";
        if (!v->is_array()) wrongType("architectures", "a list of strings", *v);
        if (v->empty()) return "";
        if (!v->front().is_string()) wrongType("architectures", "a list of strings", *v);
        return v->front().get<std::string>();
    }
    bool architecturesContain(const std::string& name) const {
        const json* v = find("architectures");
        if (!v || !v->is_array()) return false;
        for (const json& a : *v)
            if (a.is_string() && a.get<std::string>() == name) return true;
        return false;
    }
    bool hasKeyStartingWith(const std::string& prefix) const {
        for (auto it = m_obj.begin(); it != m_obj.end(); ++it)
            if (it.key().compare(0, prefix.size(), prefix) == 0) return true;
        return false;
    }

    template <class T>
    void read(const std::string& key, T& out) const {
        if constexpr (std::is_same_v<T, int>) {
            if (auto v = int32(key)) out = *v;
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
            if (auto v = int64(key)) out = *v;
        } else if constexpr (std::is_same_v<T, double>) {
            if (auto v = number(key)) out = *v;
        } else if constexpr (std::is_same_v<T, bool>) {
            if (auto v = boolean(key)) out = *v;
        } else {
            static_assert(std::is_same_v<T, std::string>);
            if (auto v = string(key)) out = *v;
        }
    }

    void requirePositive(const std::string& key, int value) const {
        if (value <= 0) badValue(key, "must be positive, got " + std::to_string(value));
    }

private:
    const json& m_obj;
    std::string m_file;
    std::string m_prefix;
};

std::string configFileOf(const std::string& pathOrDir) {
    std::error_code ec;
    if (fs::is_directory(pathOrDir, ec)) return (fs::path(pathOrDir) / "config.json").string();
    return pathOrDir;
}

std::string readText(const std::string& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error("config file " + path + " does not exist");
    if (fs::is_directory(path, ec)) throw Error("config path " + path + " is a folder, not a file");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot read config file " + path + ": " + std::strerror(errno));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

json parseObject(const std::string& text, const std::string& source) {
    json root;
    try {
        root = json::parse(text);
    } catch (const json::exception& e) {
        throw Error("config file " + source + " is not valid JSON: " + e.what());
    }
    if (!root.is_object())
        throw Error("config file " + source + " must hold a JSON object, got " + typeName(root));
    return root;
}

// Fields of a CLIPVisionConfig over whatever defaults `cfg` already holds.
void readClipFields(const Section& s, ClipVisionConfig& cfg) {
    s.read("hidden_size", cfg.hiddenSize);
    s.read("intermediate_size", cfg.intermediateSize);
    s.read("num_hidden_layers", cfg.numHiddenLayers);
    s.read("num_attention_heads", cfg.numAttentionHeads);
    s.read("num_channels", cfg.numChannels);
    s.read("image_size", cfg.imageSize);
    s.read("patch_size", cfg.patchSize);
    s.read("projection_dim", cfg.projectionDim);
    s.read("layer_norm_eps", cfg.layerNormEps);
    s.read("hidden_act", cfg.hiddenAct);

    s.requirePositive("hidden_size", cfg.hiddenSize);
    s.requirePositive("intermediate_size", cfg.intermediateSize);
    if (cfg.numHiddenLayers < 0) s.badValue("num_hidden_layers", "must not be negative");
    s.requirePositive("num_attention_heads", cfg.numAttentionHeads);
    s.requirePositive("num_channels", cfg.numChannels);
    s.requirePositive("image_size", cfg.imageSize);
    s.requirePositive("patch_size", cfg.patchSize);
    if (cfg.hiddenSize % cfg.numAttentionHeads != 0)
        s.badValue("num_attention_heads", "(" + std::to_string(cfg.numAttentionHeads) +
                                              ") must divide hidden_size (" + std::to_string(cfg.hiddenSize) +
                                              ")");
    if (cfg.imageSize % cfg.patchSize != 0)
        s.badValue("patch_size", "(" + std::to_string(cfg.patchSize) + ") must divide image_size (" +
                                     std::to_string(cfg.imageSize) + ")");
}

// CLIP ViT-L/14-336, the tower LLaVA-1.5 uses (mllm_reference.md §3); also llava-hf's default vision_config.
ClipVisionConfig clipVitL14_336() {
    ClipVisionConfig cfg;
    cfg.hiddenSize = 1024;
    cfg.intermediateSize = 4096;
    cfg.numHiddenLayers = 24;
    cfg.numAttentionHeads = 16;
    cfg.imageSize = 336;
    cfg.patchSize = 14;
    cfg.projectionDim = 768;
    return cfg;
}

// Fields of a LlamaConfig (mllm_reference.md §2.1 defaults). `fallback` is consulted for the few fields
// older llava-hf configs keep at the top level (vocab_size, pad_token_id, tie_word_embeddings).
LlamaConfig readLlamaFields(const Section& s, const Section* fallback) {
    LlamaConfig cfg;
    auto readWithFallback = [&](const std::string& key, auto& out) {
        if (s.has(key))
            s.read(key, out);
        else if (fallback)
            fallback->read(key, out);
    };
    readWithFallback("vocab_size", cfg.vocabSize);
    s.read("hidden_size", cfg.hiddenSize);
    s.read("intermediate_size", cfg.intermediateSize);
    s.read("num_hidden_layers", cfg.numHiddenLayers);
    s.read("num_attention_heads", cfg.numAttentionHeads);
    s.read("max_position_embeddings", cfg.maxPositionEmbeddings);
    s.read("rms_norm_eps", cfg.rmsNormEps);
    s.read("hidden_act", cfg.hiddenAct);
    s.read("attention_bias", cfg.attentionBias);
    s.read("mlp_bias", cfg.mlpBias);
    readWithFallback("tie_word_embeddings", cfg.tieWordEmbeddings);

    s.requirePositive("hidden_size", cfg.hiddenSize);
    s.requirePositive("num_attention_heads", cfg.numAttentionHeads);
    s.requirePositive("vocab_size", cfg.vocabSize);
    s.requirePositive("intermediate_size", cfg.intermediateSize);
    if (cfg.numHiddenLayers < 0) s.badValue("num_hidden_layers", "must not be negative");

    cfg.numKeyValueHeads = cfg.numAttentionHeads;
    s.read("num_key_value_heads", cfg.numKeyValueHeads);
    s.requirePositive("num_key_value_heads", cfg.numKeyValueHeads);
    if (cfg.numAttentionHeads % cfg.numKeyValueHeads != 0)
        s.badValue("num_key_value_heads", "(" + std::to_string(cfg.numKeyValueHeads) +
                                              ") must divide num_attention_heads (" +
                                              std::to_string(cfg.numAttentionHeads) + ")");
    if (s.has("head_dim")) {
        s.read("head_dim", cfg.headDim);
        s.requirePositive("head_dim", cfg.headDim);
    } else {
        if (cfg.hiddenSize % cfg.numAttentionHeads != 0)
            s.badValue("num_attention_heads",
                       "(" + std::to_string(cfg.numAttentionHeads) + ") must divide hidden_size (" +
                           std::to_string(cfg.hiddenSize) + ") when head_dim is not given");
        cfg.headDim = cfg.hiddenSize / cfg.numAttentionHeads;
    }

    // transformers < 5: rope_theta; transformers 5: rope_parameters.rope_theta.
    s.read("rope_theta", cfg.ropeTheta);
    if (auto rope = s.object("rope_parameters")) rope->read("rope_theta", cfg.ropeTheta);
    if (!(cfg.ropeTheta > 0)) s.badValue("rope_theta", "must be positive");

    if (auto v = s.intOrFirst("bos_token_id")) cfg.bosTokenId = *v;
    if (auto v = s.intOrFirst("eos_token_id")) cfg.eosTokenId = *v;
    if (auto v = s.intOrFirst("pad_token_id"))
        cfg.padTokenId = *v;
    else if (fallback)
        if (auto fv = fallback->intOrFirst("pad_token_id")) cfg.padTokenId = *fv;
    return cfg;
}

void checkSelectStrategy(const Section& s, const std::string& key, const std::string& value) {
    if (value != "default" && value != "full")
        s.badValue(key, "must be \"default\" or \"full\", got \"" + value + "\"");
}

// A list of integers (e.g. `mrope_section`); absent leaves `out` unchanged.
void readIntList(const Section& s, const std::string& key, std::vector<int>& out) {
    const json* v = s.find(key);
    if (!v) return;
    if (!v->is_array()) s.wrongType(key, "a list of integers", *v);
    std::vector<int> values;
    for (const json& e : *v) {
        if (!e.is_number_integer()) s.wrongType(key, "a list of integers", *v);
        values.push_back(e.get<int>());
    }
    out = std::move(values);
}

void readQwenVisionFields(const Section& s, QwenVisionConfig& cfg) {
    s.read("depth", cfg.depth);
    s.read("hidden_size", cfg.hiddenSize);
    s.read("intermediate_size", cfg.intermediateSize);
    s.read("num_heads", cfg.numHeads);
    if (s.has("in_channels"))
        s.read("in_channels", cfg.inChannels);
    else
        s.read("in_chans", cfg.inChannels);
    s.read("patch_size", cfg.patchSize);
    s.read("temporal_patch_size", cfg.temporalPatchSize);
    s.read("spatial_merge_size", cfg.spatialMergeSize);
    s.read("window_size", cfg.windowSize);
    s.read("out_hidden_size", cfg.outHiddenSize);
    s.read("tokens_per_second", cfg.tokensPerSecond);
    s.read("hidden_act", cfg.hiddenAct);
    readIntList(s, "fullatt_block_indexes", cfg.fullattBlockIndexes);
    if (auto rope = s.object("rope_parameters")) rope->read("rope_theta", cfg.ropeTheta);

    if (cfg.depth < 0) s.badValue("depth", "must not be negative");
    s.requirePositive("hidden_size", cfg.hiddenSize);
    s.requirePositive("intermediate_size", cfg.intermediateSize);
    s.requirePositive("num_heads", cfg.numHeads);
    s.requirePositive("in_channels", cfg.inChannels);
    s.requirePositive("patch_size", cfg.patchSize);
    s.requirePositive("temporal_patch_size", cfg.temporalPatchSize);
    s.requirePositive("spatial_merge_size", cfg.spatialMergeSize);
    s.requirePositive("window_size", cfg.windowSize);
    s.requirePositive("out_hidden_size", cfg.outHiddenSize);
    if (cfg.hiddenSize % cfg.numHeads != 0)
        s.badValue("num_heads", "(" + std::to_string(cfg.numHeads) + ") must divide hidden_size (" +
                                    std::to_string(cfg.hiddenSize) + ")");
    if (cfg.headDim() % 4 != 0)
        s.badValue("num_heads", "gives a head size of " + std::to_string(cfg.headDim()) +
                                    ", which the 2-D vision RoPE needs divisible by 4");
    for (int b : cfg.fullattBlockIndexes)
        if (b < 0 || b >= cfg.depth)
            s.badValue("fullatt_block_indexes", "holds block " + std::to_string(b) + ", outside [0, " +
                                                    std::to_string(cfg.depth) + ")");
}

// `mrope_section` from `rope_scaling` (hub) or `rope_parameters` (transformers 5).
void readMropeSection(const Section& s, std::vector<int>& out) {
    if (auto rope = s.object("rope_scaling")) readIntList(*rope, "mrope_section", out);
    if (auto rope = s.object("rope_parameters")) readIntList(*rope, "mrope_section", out);
}

LlavaConfig parseHf(const Section& root) {
    LlavaConfig cfg;
    cfg.layout = LlavaLayout::Hf;
    root.read("model_type", cfg.modelType);

    if (auto text = root.object("text_config"))
        cfg.text = readLlamaFields(*text, &root);
    else
        cfg.text = readLlamaFields(Section(json::object(), root.file(), "text_config."), &root);

    if (auto vision = root.object("vision_config")) {
        cfg.vision = ClipVisionConfig();
        readClipFields(*vision, cfg.vision);
    } else {
        cfg.vision = clipVitL14_336();  // LlavaConfig's default tower
    }

    if (root.has("image_token_index"))
        root.read("image_token_index", cfg.imageTokenIndex);
    else
        root.read("image_token_id", cfg.imageTokenIndex);
    if (auto layer = root.find("vision_feature_layer"); layer && layer->is_array())
        root.wrongType("vision_feature_layer", "an integer (a list of layers is not supported)", *layer);
    root.read("vision_feature_layer", cfg.visionFeatureLayer);
    root.read("vision_feature_select_strategy", cfg.visionFeatureSelectStrategy);
    checkSelectStrategy(root, "vision_feature_select_strategy", cfg.visionFeatureSelectStrategy);
    root.read("projector_hidden_act", cfg.projectorHiddenAct);
    root.read("multimodal_projector_bias", cfg.projectorBias);
    root.read("image_seq_length", cfg.imageSeqLength);
    cfg.projectorType = "mlp2x_" + cfg.projectorHiddenAct;
    return cfg;
}

LlavaConfig parseOriginal(const Section& root) {
    LlavaConfig cfg;
    cfg.layout = LlavaLayout::Original;
    root.read("model_type", cfg.modelType);
    cfg.text = readLlamaFields(root, nullptr);
    // The tower's own config is read later from its folder; until then, the tower LLaVA-1.5 ships with.
    cfg.vision = clipVitL14_336();
    cfg.imageTokenIndex = -200;  // IMAGE_TOKEN_INDEX in the original code base
    root.read("mm_vision_tower", cfg.visionTowerName);
    root.read("mm_vision_select_layer", cfg.visionFeatureLayer);
    std::string feature = "patch";
    root.read("mm_vision_select_feature", feature);
    if (feature == "patch")
        cfg.visionFeatureSelectStrategy = "default";
    else if (feature == "cls_patch")
        cfg.visionFeatureSelectStrategy = "full";
    else
        root.badValue("mm_vision_select_feature",
                      "must be \"patch\" or \"cls_patch\", got \"" + feature + "\"");
    cfg.projectorType = "linear";  // the original builder's default when mm_projector_type is absent
    root.read("mm_projector_type", cfg.projectorType);
    cfg.projectorHiddenAct = "gelu";
    cfg.projectorBias = true;
    // Absent means the original code's plain resize ("square"); released configs say "pad".
    cfg.imageAspectRatio = "square";
    root.read("image_aspect_ratio", cfg.imageAspectRatio);
    // mm_hidden_size is the tower width the projector expects; the tower itself is described by its own
    // config.
    int mmHidden = cfg.vision.hiddenSize;
    root.read("mm_hidden_size", mmHidden);
    root.requirePositive("mm_hidden_size", mmHidden);
    cfg.imageSeqLength = cfg.vision.numPatches();
    return cfg;
}

}  // namespace

LlavaConfig parseLlavaConfig(const std::string& jsonText, const std::string& sourceName) {
    const json root = parseObject(jsonText, sourceName);
    const Section s(root, sourceName, "");

    const bool original = s.architecturesContain("LlavaLlamaForCausalLM") || s.has("mm_vision_tower");
    const bool hf = s.has("text_config") || s.architecturesContain("LlavaForConditionalGeneration");
    std::string modelType;
    s.read("model_type", modelType);

    LlavaConfig cfg;
    if (hf && !original)
        cfg = parseHf(s);
    else if (original && !s.has("text_config"))
        cfg = parseOriginal(s);
    else if (hf && original)
        throw Error("config file " + sourceName +
                    " mixes the llava-hf form (text_config) and the original form (mm_vision_tower)");
    else if (modelType == "llava" && s.hasKeyStartingWith("mm_"))
        cfg = parseOriginal(s);
    else if (modelType == "llava")
        cfg = parseHf(s);  // LlavaConfig with every field at its default
    else
        throw Error("config file " + sourceName +
                    " is not a LLaVA config: no 'text_config', no 'mm_vision_tower', " + "model_type '" +
                    modelType + "', architectures '" + s.firstArchitecture() + "'");
    cfg.sourcePath = sourceName;
    return cfg;
}

LlavaConfig readLlavaConfig(const std::string& pathOrDir) {
    const std::string file = configFileOf(pathOrDir);
    return parseLlavaConfig(readText(file), file);
}

ClipVisionConfig readClipVisionConfig(const std::string& pathOrDir) {
    const std::string file = configFileOf(pathOrDir);
    const json root = parseObject(readText(file), file);
    const Section s(root, file, "");
    ClipVisionConfig cfg;
    if (auto vision = s.object("vision_config")) {
        readClipFields(*vision, cfg);  // full CLIPModel config
    } else if (auto legacy = s.object("vision_config_dict")) {
        readClipFields(*legacy, cfg);  // CLIPModel config saved by old transformers
    } else {
        std::string modelType;
        s.read("model_type", modelType);
        if (modelType == "clip")
            readClipFields(Section(json::object(), file, "vision_config."), cfg);  // CLIPModel, all defaults
        else if (!modelType.empty() && modelType != "clip_vision_model")
            throw Error("config file " + file + " is not a CLIP config: model_type '" + modelType + "'");
        else
            readClipFields(s, cfg);
    }
    return cfg;
}

QwenVlConfig parseQwenVlConfig(const std::string& jsonText, const std::string& sourceName) {
    const json root = parseObject(jsonText, sourceName);
    const Section s(root, sourceName, "");
    QwenVlConfig cfg;
    cfg.sourcePath = sourceName;
    s.read("model_type", cfg.modelType);
    if (cfg.modelType != "qwen2_5_vl")
        throw Error("config file " + sourceName + " is not a Qwen2.5-VL config: model_type '" +
                    cfg.modelType + "'");
    // Hub configs are flat (LLM fields at the top level); transformers >= 4.52 nests them in text_config.
    std::optional<Section> text = s.object("text_config");
    const Section& ts = text ? *text : s;
    cfg.text = readLlamaFields(ts, text ? &s : nullptr);
    cfg.text.attentionBias = true;  // Qwen2: q/k/v carry a bias, o_proj does not
    cfg.text.qkvBiasOnly = true;
    if (!ts.has("rms_norm_eps")) cfg.text.rmsNormEps = 1e-6;
    if (!ts.has("rope_theta") && !ts.object("rope_parameters")) cfg.text.ropeTheta = 1000000.0;
    readMropeSection(ts, cfg.mropeSection);
    if (text) readMropeSection(s, cfg.mropeSection);
    int sectionSum = 0;
    for (int v : cfg.mropeSection) {
        if (v <= 0) s.badValue("rope_scaling.mrope_section", "must hold positive sizes");
        sectionSum += v;
    }
    if (cfg.mropeSection.size() != 3 || sectionSum * 2 != cfg.text.headDim)
        s.badValue("rope_scaling.mrope_section", "must hold three sizes summing to head_dim / 2 (" +
                                                     std::to_string(cfg.text.headDim / 2) + ")");
    if (auto vision = s.object("vision_config")) readQwenVisionFields(*vision, cfg.vision);
    if (cfg.vision.outHiddenSize != cfg.text.hiddenSize)
        s.badValue("vision_config.out_hidden_size", "(" + std::to_string(cfg.vision.outHiddenSize) +
                                                        ") must equal the text hidden_size (" +
                                                        std::to_string(cfg.text.hiddenSize) + ")");
    s.read("image_token_id", cfg.imageTokenId);
    s.read("video_token_id", cfg.videoTokenId);
    s.read("vision_start_token_id", cfg.visionStartTokenId);
    s.read("vision_end_token_id", cfg.visionEndTokenId);
    if (auto v = s.intOrFirst("eos_token_id")) cfg.text.eosTokenId = *v;
    for (auto [key, id] : {std::pair<const char*, std::int64_t>{"image_token_id", cfg.imageTokenId},
                           {"vision_start_token_id", cfg.visionStartTokenId},
                           {"vision_end_token_id", cfg.visionEndTokenId}})
        if (id < 0 || id >= cfg.text.vocabSize)
            s.badValue(key, "(" + std::to_string(id) + ") is outside the vocabulary [0, " +
                                std::to_string(cfg.text.vocabSize) + ")");
    return cfg;
}

QwenVlConfig readQwenVlConfig(const std::string& pathOrDir) {
    const std::string file = configFileOf(pathOrDir);
    return parseQwenVlConfig(readText(file), file);
}

DeepseekVlConfig parseDeepseekVlConfig(const std::string& jsonText, const std::string& sourceName) {
    const json root = parseObject(jsonText, sourceName);
    const Section s(root, sourceName, "");
    DeepseekVlConfig cfg;
    cfg.sourcePath = sourceName;
    s.read("model_type", cfg.modelType);
    if (cfg.modelType != "deepseek_vl")
        throw Error("config file " + sourceName + " is not a DeepSeek-VL config: model_type '" +
                    cfg.modelType + "'");
    auto text = s.object("text_config");
    if (!text) throw Error("config file " + sourceName + ": key 'text_config' is missing");
    cfg.text = readLlamaFields(*text, &s);
    auto vision = s.object("vision_config");
    if (!vision) throw Error("config file " + sourceName + ": key 'vision_config' is missing");
    const Section& v = *vision;
    v.read("hidden_size", cfg.vision.hiddenSize);
    v.read("intermediate_size", cfg.vision.intermediateSize);
    v.read("num_hidden_layers", cfg.vision.numHiddenLayers);
    v.read("num_attention_heads", cfg.vision.numAttentionHeads);
    v.read("num_channels", cfg.vision.numChannels);
    v.read("image_size", cfg.vision.imageSize);
    v.read("patch_size", cfg.vision.patchSize);
    v.read("layer_norm_eps", cfg.vision.layerNormEps);
    v.read("hidden_act", cfg.vision.hiddenAct);
    v.requirePositive("hidden_size", cfg.vision.hiddenSize);
    v.requirePositive("intermediate_size", cfg.vision.intermediateSize);
    if (cfg.vision.numHiddenLayers < 0) v.badValue("num_hidden_layers", "must not be negative");
    v.requirePositive("num_attention_heads", cfg.vision.numAttentionHeads);
    v.requirePositive("image_size", cfg.vision.imageSize);
    v.requirePositive("patch_size", cfg.vision.patchSize);
    if (cfg.vision.hiddenSize % cfg.vision.numAttentionHeads != 0)
        v.badValue("num_attention_heads", "must divide hidden_size");
    if (cfg.vision.imageSize % cfg.vision.patchSize != 0)
        v.badValue("patch_size", "(" + std::to_string(cfg.vision.patchSize) + ") must divide image_size (" +
                                     std::to_string(cfg.vision.imageSize) + ")");
    s.read("image_token_id", cfg.imageTokenId);
    if (cfg.imageTokenId < 0 || cfg.imageTokenId >= cfg.text.vocabSize)
        s.badValue("image_token_id", "(" + std::to_string(cfg.imageTokenId) +
                                         ") is outside the vocabulary [0, " +
                                         std::to_string(cfg.text.vocabSize) + ")");
    return cfg;
}

DeepseekVlConfig readDeepseekVlConfig(const std::string& pathOrDir) {
    const std::string file = configFileOf(pathOrDir);
    return parseDeepseekVlConfig(readText(file), file);
}

ModelTypeInfo readModelType(const std::string& pathOrDir) {
    const std::string file = configFileOf(pathOrDir);
    const json root = parseObject(readText(file), file);
    const Section s(root, file, "");
    ModelTypeInfo info;
    s.read("model_type", info.modelType);
    info.architecture = s.firstArchitecture();
    return info;
}

}  // namespace sdrpn::io
