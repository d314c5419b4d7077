#include "core/models/random_qwen.h"

#include <nlohmann/json.hpp>

#include "core/models/llama.h"
#include "core/models/random_llava.h"
#include "core/result.h"

namespace sdrpn::models {

namespace {

struct Shape {
    const char* name;
    int visionDepth, visionHidden, visionIntermediate, visionHeads;
    std::vector<int> fullatt;
    int textHidden, textIntermediate, textLayers, textHeads, textKvHeads;
    std::vector<int> mropeSection;
    std::int64_t vocab, imageToken, videoToken, visionStart, visionEnd;
};

const std::vector<Shape>& shapes() {
    static const std::vector<Shape> s = {
        {"qwen2.5-vl-7b",
         32,
         1280,
         3420,
         16,
         {7, 15, 23, 31},
         3584,
         18944,
         28,
         28,
         4,
         {16, 24, 24},
         152064,
         151655,
         151656,
         151652,
         151653},
        {"qwen2.5-vl-demo", 2, 64, 128, 2, {1}, 256, 688, 8, 8, 2, {4, 6, 6}, 1024, 1000, 1001, 1002, 1003},
    };
    return s;
}

}  // namespace

std::vector<std::string> randomQwenVlPresets() {
    std::vector<std::string> out;
    for (const auto& s : shapes()) out.emplace_back(s.name);
    return out;
}

io::QwenVlConfig randomQwenVlConfig(const std::string& preset) {
    const Shape* s = nullptr;
    for (const auto& shape : shapes())
        if (preset == shape.name) s = &shape;
    if (!s) {
        std::string known;
        for (const auto& n : randomQwenVlPresets()) known += (known.empty() ? "" : ", ") + n;
        throw Error("unknown model shape '" + preset + "' (known: " + known + ")");
    }
    using nlohmann::json;
    json text = {{"model_type", "qwen2_5_vl_text"},
                 {"vocab_size", s->vocab},
                 {"hidden_size", s->textHidden},
                 {"intermediate_size", s->textIntermediate},
                 {"num_hidden_layers", s->textLayers},
                 {"num_attention_heads", s->textHeads},
                 {"num_key_value_heads", s->textKvHeads},
                 {"max_position_embeddings", 128000},
                 {"rms_norm_eps", 1e-6},
                 {"rope_theta", 1000000.0},
                 {"rope_scaling", {{"type", "mrope"}, {"mrope_section", s->mropeSection}}},
                 {"bos_token_id", 151643 < s->vocab ? 151643 : 1},
                 {"eos_token_id", 151645 < s->vocab ? 151645 : 2},
                 {"tie_word_embeddings", false}};
    json vision = {{"depth", s->visionDepth},
                   {"hidden_size", s->visionHidden},
                   {"intermediate_size", s->visionIntermediate},
                   {"num_heads", s->visionHeads},
                   {"in_chans", 3},
                   {"patch_size", 14},
                   {"temporal_patch_size", 2},
                   {"spatial_merge_size", 2},
                   {"window_size", 112},
                   {"out_hidden_size", s->textHidden},
                   {"tokens_per_second", 2},
                   {"fullatt_block_indexes", s->fullatt},
                   {"hidden_act", "silu"}};
    json config = {{"architectures", {"Qwen2_5_VLForConditionalGeneration"}},
                   {"model_type", "qwen2_5_vl"},
                   {"image_token_id", s->imageToken},
                   {"video_token_id", s->videoToken},
                   {"vision_start_token_id", s->visionStart},
                   {"vision_end_token_id", s->visionEnd},
                   {"tie_word_embeddings", false},
                   {"text_config", text},
                   {"vision_config", vision}};
    return io::parseQwenVlConfig(config.dump(), "random " + preset);
}

std::shared_ptr<const Qwen2_5VlModel> makeRandomQwenVl(const io::QwenVlConfig& cfg, torch::Device device,
                                                       torch::ScalarType dtype, std::uint64_t seed,
                                                       bool deterministic) {
    checkComputeSupport(device, dtype);
    auto weights = randomWeightsFor(qwenVlWeightSpecs(cfg), device, dtype, seed, deterministic);
    fuseLlamaProjections(weights, cfg.text, "");
    return std::make_shared<const Qwen2_5VlModel>(cfg, weights, device, dtype, "random weights");
}

}  // namespace sdrpn::models
