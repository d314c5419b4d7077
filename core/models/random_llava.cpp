#include "core/models/random_llava.h"

#include <nlohmann/json.hpp>

#include "core/models/llama.h"
#include "core/result.h"

namespace sdrpn::models {

namespace {

struct Shape {
    const char* name;
    int visionHidden, visionIntermediate, visionLayers, visionHeads;
    int textHidden, textIntermediate, textLayers, textHeads;
    std::int64_t vocab, imageToken;
};

constexpr Shape kShapes[] = {
    {"llava-1.5-7b", 1024, 4096, 24, 16, 4096, 11008, 32, 32, 32064, 32000},
    {"llava-1.5-13b", 1024, 4096, 24, 16, 5120, 13824, 40, 40, 32064, 32000},
    {"demo", 64, 256, 4, 4, 256, 688, 8, 8, 1024, 1000},
};

const Shape* findShape(const std::string& preset) {
    for (const auto& s : kShapes)
        if (preset == s.name) return &s;
    return nullptr;
}

bool endsWith(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

std::vector<std::string> randomLlavaPresets() {
    std::vector<std::string> out;
    for (const auto& s : kShapes) out.emplace_back(s.name);
    return out;
}

io::LlavaConfig randomLlavaConfig(const std::string& preset) {
    const Shape* s = findShape(preset);
    if (!s) {
        std::string known;
        for (const auto& n : randomLlavaPresets()) known += (known.empty() ? "" : ", ") + n;
        throw Error("unknown model shape '" + preset + "' (known: " + known + ")");
    }
    using nlohmann::json;
    json text = {{"model_type", "llama"},
                 {"vocab_size", s->vocab},
                 {"hidden_size", s->textHidden},
                 {"intermediate_size", s->textIntermediate},
                 {"num_hidden_layers", s->textLayers},
                 {"num_attention_heads", s->textHeads},
                 {"num_key_value_heads", s->textHeads},
                 {"max_position_embeddings", 4096},
                 {"rms_norm_eps", 1e-5},
                 {"rope_theta", 10000.0},
                 {"bos_token_id", 1},
                 {"eos_token_id", 2},
                 {"pad_token_id", s->imageToken + 1}};
    json vision = {{"model_type", "clip_vision_model"},
                   {"hidden_size", s->visionHidden},
                   {"intermediate_size", s->visionIntermediate},
                   {"num_hidden_layers", s->visionLayers},
                   {"num_attention_heads", s->visionHeads},
                   {"image_size", 336},
                   {"patch_size", 14},
                   {"projection_dim", 768},
                   {"hidden_act", "quick_gelu"},
                   {"layer_norm_eps", 1e-5}};
    json config = {{"architectures", {"LlavaForConditionalGeneration"}},
                   {"model_type", "llava"},
                   {"image_token_index", s->imageToken},
                   {"projector_hidden_act", "gelu"},
                   {"vision_feature_layer", -2},
                   {"vision_feature_select_strategy", "default"},
                   {"image_seq_length", 576},
                   {"tie_word_embeddings", false},
                   {"text_config", text},
                   {"vision_config", vision}};
    return io::parseLlavaConfig(config.dump(), "random " + preset);
}

WeightMap randomWeightsFor(const std::vector<WeightSpec>& specs, torch::Device device,
                           torch::ScalarType dtype, std::uint64_t seed, bool deterministic, double qkStd) {
    torch::NoGradGuard noGrad;
    WeightMap w;
    if (!deterministic && device.is_cuda())
        torch::cuda::manual_seed(seed);
    else
        torch::manual_seed(seed);
    const auto drawOn = deterministic ? torch::Device(torch::kCPU) : device;
    const auto drawType = deterministic ? torch::kFloat : dtype;
    const auto opts = torch::TensorOptions().device(drawOn).dtype(drawType);
    for (const auto& spec : specs) {
        const auto& n = spec.name;
        torch::Tensor t;
        if (endsWith(n, ".bias")) {
            t = torch::zeros(spec.shape, opts);
        } else if (spec.shape.size() == 1 &&
                   (n.find("norm") != std::string::npos || n.find("ln_q") != std::string::npos)) {
            t = torch::ones(spec.shape, opts);  // layer_norm / rms norm weights
        } else {
            const bool qk = n.find("visual") == std::string::npos &&
                            n.find("vision_tower") == std::string::npos &&
                            (n.find("q_proj") != std::string::npos || n.find("k_proj") != std::string::npos);
            t = torch::randn(spec.shape, opts).mul_(qk && qkStd > 0 ? qkStd : 0.02);
        }
        w[n] = t.to(device, dtype);
    }
    return w;
}

WeightMap randomLlavaWeights(const io::LlavaConfig& cfg, torch::Device device, torch::ScalarType dtype,
                             std::uint64_t seed, bool deterministic) {
    const bool demo = cfg.text.hiddenSize <= 256;
    return randomWeightsFor(llavaWeightSpecs(cfg), device, dtype, seed, deterministic, demo ? 0.12 : 0.0);
}

std::shared_ptr<const LlavaModel> makeRandomLlava(const io::LlavaConfig& cfg, torch::Device device,
                                                  torch::ScalarType dtype, std::uint64_t seed,
                                                  bool deterministic) {
    checkComputeSupport(device, dtype);
    auto weights = randomLlavaWeights(cfg, device, dtype, seed, deterministic);
    fuseLlamaProjections(weights, cfg.text, "language_model.");
    return std::make_shared<const LlavaModel>(cfg, weights, device, dtype, "random weights");
}

}  // namespace sdrpn::models
