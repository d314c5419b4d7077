#include "tests/support/llava_layouts.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/llava.h"
#include "core/sdrpn/rpn.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;

namespace sdrpn::test {
namespace {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

std::string fixture() {
    return fixturePath("tiny-llava-hf");
}

void writeJson(const std::string& path, const nlohmann::json& j) {
    std::ofstream(path) << j.dump(2);
}

// The fixture's weights under the names of `layout` (those it stores).
NamedTensors relabel(models::LlavaKeyLayout layout) {
    static const auto weights =
        io::loadTensors(*io::SafetensorsArchive::open(fixture() + "/model.safetensors"));
    NamedTensors out;
    for (const auto& [name, t] : weights) {
        const std::string key = models::llavaStoredKey(name, layout);
        if (!key.empty()) out.emplace_back(key, t);
    }
    return out;
}

// A flat original-LLaVA config.json for the fixture's language model.
nlohmann::json originalConfig(const std::string& towerSetting) {
    return {{"architectures", {"LlavaLlamaForCausalLM"}},
            {"model_type", "llava"},
            {"hidden_size", 64},
            {"intermediate_size", 160},
            {"num_attention_heads", 4},
            {"num_hidden_layers", 6},
            {"num_key_value_heads", 4},
            {"rms_norm_eps", 1e-5},
            {"max_position_embeddings", 2048},
            {"vocab_size", 514},
            {"bos_token_id", 1},
            {"eos_token_id", 2},
            {"pad_token_id", 0},
            {"image_aspect_ratio", "pad"},
            {"mm_hidden_size", 32},
            {"mm_projector_type", "mlp2x_gelu"},
            {"mm_vision_select_feature", "patch"},
            {"mm_vision_select_layer", -2},
            {"mm_vision_tower", towerSetting},
            {"mm_use_im_patch_token", false},
            {"mm_use_im_start_end", false},
            {"tie_word_embeddings", false},
            {"torch_dtype", "float16"}};
}

// Whether a canonical fixture tensor is part of an unfilled checkpoint with twig_K + twig_T = `kept`
// backbone layers: not the final norm, not lm_head, no layer from `kept` on.
bool inUnfilled(const std::string& canonical, int kept) {
    if (canonical == "language_model.model.norm.weight" || canonical == "language_model.lm_head.weight")
        return false;
    const std::string layers = "language_model.model.layers.";
    if (canonical.rfind(layers, 0) != 0) return true;
    return std::stoi(canonical.substr(layers.size())) < kept;
}

}  // namespace

std::string writeOriginalLlava(const std::string& root, const std::string& clipName,
                               const std::string& towerSetting) {
    const std::string modelDir = root + "/llava-v1.5-tiny";
    const std::string clipDir = root + "/" + clipName;
    fs::create_directories(modelDir);
    fs::create_directories(clipDir);
    writeJson(modelDir + "/config.json", originalConfig(towerSetting));
    auto llm = relabel(models::LlavaKeyLayout::Original);
    llm.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", torch::ones({8}));  // ignored buffer
    io::saveTensors(modelDir + "/model.safetensors", llm, {{"format", "pt"}});
    fs::copy_file(fixture() + "/tokenizer.model", modelDir + "/tokenizer.model",
                  fs::copy_options::overwrite_existing);
    writeJson(clipDir + "/config.json", {{"model_type", "clip_vision_model"},
                                         {"hidden_size", 32},
                                         {"intermediate_size", 64},
                                         {"num_hidden_layers", 3},
                                         {"num_attention_heads", 4},
                                         {"image_size", 336},
                                         {"patch_size", 14},
                                         {"projection_dim", 32},
                                         {"hidden_act", "quick_gelu"},
                                         {"layer_norm_eps", 1e-5}});
    auto clip = relabel(models::LlavaKeyLayout::ClipFolder);
    clip.emplace_back("text_model.embeddings.token_embedding.weight", torch::zeros({10, 8}));  // ignored
    clip.emplace_back("logit_scale", torch::ones({}));
    clip.emplace_back("vision_model.embeddings.position_ids", torch::arange(577).unsqueeze(0));
    io::saveTensors(clipDir + "/model.safetensors", clip);
    return modelDir;
}

std::string writeFilledCheckpoint(const std::string& dir) {
    fs::create_directories(dir);
    for (const char* f : {"tokenizer.model", "preprocessor_config.json"})
        fs::copy_file(fixture() + "/" + f, dir + "/" + f, fs::copy_options::overwrite_existing);
    fs::copy_file(fixture() + "/model.safetensors", dir + "/model-00001-of-00002.safetensors",
                  fs::copy_options::overwrite_existing);
    const std::string twig = scratchDir("twig");
    {
        torch::NoGradGuard noGrad;
        auto model = models::loadLlava(fixture(), {}, JobContext::none());
        saveRpn(initRpnFromBackbone(*model, {3, 2, true}), twig);
    }
    fs::copy_file(twig + "/model.safetensors", dir + "/model-00002-of-00002.safetensors",
                  fs::copy_options::overwrite_existing);
    nlohmann::json map = nlohmann::json::object();
    for (const auto& name : io::SafetensorsArchive::open(fixture() + "/model.safetensors")->names())
        map[name] = "model-00001-of-00002.safetensors";
    for (const auto& name : io::SafetensorsArchive::open(twig + "/model.safetensors")->names())
        map[name] = "model-00002-of-00002.safetensors";
    std::ofstream(dir + "/model.safetensors.index.json") << nlohmann::json{{"weight_map", map}}.dump();
    nlohmann::json config;
    std::ifstream(fixture() + "/config.json") >> config;
    config["twig_K"] = 3;
    config["twig_T"] = 2;
    config["roi_multi_head"] = true;
    std::ofstream(dir + "/config.json") << config.dump(2);
    return dir;
}

std::string writeUnfilledCheckpoint(const std::string& dir, int K, int T, models::LlavaKeyLayout layout,
                                    const std::string& towerSetting) {
    fs::create_directories(dir);
    const bool original = layout == models::LlavaKeyLayout::Original;
    const auto fixtureWeights =
        io::loadTensors(*io::SafetensorsArchive::open(fixture() + "/model.safetensors"));
    NamedTensors tensors;
    for (const auto& [name, t] : fixtureWeights) {
        if (!inUnfilled(name, K + T)) continue;
        const std::string key = models::llavaStoredKey(name, layout);
        if (!key.empty()) tensors.emplace_back(key, t);
    }
    {
        torch::NoGradGuard noGrad;
        auto model = models::loadLlava(fixture(), {}, JobContext::none());
        for (auto& [name, t] : initRpnFromBackbone(*model, {K, T, true})->checkpointTensors())
            tensors.emplace_back(name, t.clone());
    }
    io::saveTensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});

    nlohmann::json config;
    if (original) {
        config = originalConfig(towerSetting);
    } else {
        std::ifstream(fixture() + "/config.json") >> config;
    }
    config["twig_K"] = K;
    config["twig_T"] = T;
    config["roi_multi_head"] = true;
    writeJson(dir + "/config.json", config);
    for (const char* f : {"tokenizer.model", "preprocessor_config.json"}) {
        if (original && std::string(f) != "tokenizer.model") continue;
        fs::copy_file(fixture() + "/" + f, dir + "/" + f, fs::copy_options::overwrite_existing);
    }
    return dir;
}

}  // namespace sdrpn::test
