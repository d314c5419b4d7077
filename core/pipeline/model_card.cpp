#include "core/pipeline/model_card.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/io/config.h"
#include "core/io/safetensors.h"
#include "core/models/vision_tower.h"
#include "core/pipeline/demo_model.h"
#include "core/pipeline/sdrpn_checkpoint.h"

namespace sdrpn {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json readJsonFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path.string() + ": cannot open");
    std::stringstream buffer;
    buffer << in.rdbuf();
    try {
        return json::parse(buffer.str());
    } catch (const json::exception& e) {
        throw Error(path.string() + ": not valid JSON (" + e.what() + ")");
    }
}

int intAt(const json& object, std::initializer_list<const char*> keys) {
    if (!object.is_object()) return 0;
    for (const char* key : keys) {
        auto it = object.find(key);
        if (it != object.end() && it->is_number_integer()) return it->get<int>();
    }
    return 0;
}

const json& objectAt(const json& object, std::initializer_list<const char*> keys) {
    static const json kEmpty = json::object();
    for (const char* key : keys) {
        auto it = object.find(key);
        if (it != object.end() && it->is_object()) return *it;
    }
    return kEmpty;
}

std::string derivedArchitecture(const std::string& modelType, bool originalLlava) {
    if (originalLlava) return "LlavaLlamaForCausalLM";
    static const std::map<std::string, std::string> kNames = {
        {"llava", "LlavaForConditionalGeneration"},
        {"qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration"},
        {"deepseek_vl", "DeepseekVLForConditionalGeneration"},
    };
    auto it = kNames.find(modelType);
    return it != kNames.end() ? it->second : modelType;
}

// Returns true for the original LLaVA layout (vision tower in its own folder).
bool fillFromLlava(ModelCard& card, const std::string& folder) {
    io::LlavaConfig cfg = io::readLlavaConfig(folder);
    card.llmLayers = cfg.text.numHiddenLayers;
    card.llmHeads = cfg.text.numAttentionHeads;
    card.llmKvHeads = cfg.text.numKeyValueHeads;
    card.llmHidden = cfg.text.hiddenSize;
    card.visionLayers = cfg.vision.numHiddenLayers;
    card.imageSize = cfg.vision.imageSize;
    card.patchSize = cfg.vision.patchSize;
    if (cfg.vision.patchSize > 0) {
        card.gridRows = card.gridCols = cfg.vision.gridSide();
    }
    if (cfg.layout == io::LlavaLayout::Original) {
        card.note = "original LLaVA layout: vision tower '" + cfg.visionTowerName +
                    "' is read from its own folder (not counted here)";
        card.visionTowerName = cfg.visionTowerName;
    }
    return cfg.layout == io::LlavaLayout::Original;
}

// Qwen2.5-VL (flat hub form or nested transformers-5 form), DeepSeek-VL and anything else with the usual
// keys: best effort, since only the numbers for the card are needed here.
void fillFromGenericConfig(ModelCard& card, const fs::path& configPath) {
    const json root = readJsonFile(configPath);
    if (!root.is_object()) throw Error(configPath.string() + ": not a JSON object");
    const json& textNested = objectAt(root, {"text_config", "language_config"});
    const json& text = textNested.empty() ? root : textNested;
    const json& vision = objectAt(root, {"vision_config"});
    card.llmLayers = intAt(text, {"num_hidden_layers", "n_layer", "num_layers"});
    card.llmHeads = intAt(text, {"num_attention_heads", "n_head"});
    card.llmKvHeads = intAt(text, {"num_key_value_heads"});
    if (card.llmKvHeads == 0) card.llmKvHeads = card.llmHeads;
    card.llmHidden = intAt(text, {"hidden_size", "n_embd"});
    card.visionLayers = intAt(vision, {"num_hidden_layers", "depth", "layers"});
    const json& visionParams = objectAt(vision, {"params"});
    card.imageSize = intAt(vision, {"image_size"});
    if (card.imageSize == 0) card.imageSize = intAt(visionParams, {"image_size"});
    card.patchSize = intAt(vision, {"patch_size"});
    if (card.patchSize == 0) card.patchSize = intAt(visionParams, {"patch_size"});
    if (card.modelType == "qwen2_5_vl") {
        card.imageSize = 0;  // dynamic resolution: the grid follows the image
        const int merge = intAt(vision, {"spatial_merge_size"});
        card.note = "dynamic resolution: the image grid depends on the image (patch " +
                    std::to_string(card.patchSize) + ", merge " + std::to_string(merge > 0 ? merge : 2) + ")";
    } else if (card.imageSize > 0 && card.patchSize > 0) {
        card.gridRows = card.gridCols = card.imageSize / card.patchSize;
    }
}

ModelCard inspect(const std::string& folder, JobContext& ctx) {
    ModelCard card;
    card.folder = folder;
    const fs::path dir(folder);
    std::error_code ec;
    if (!fs::exists(dir, ec)) throw Error(folder + ": no such folder");
    if (!fs::is_directory(dir, ec)) throw Error(folder + ": not a folder (pick the model's folder)");
    const fs::path configPath = dir / "config.json";
    if (!fs::exists(configPath, ec)) throw Error(configPath.string() + ": missing (not a model folder?)");

    ctx.report(0, 0, "reading config.json");
    ctx.throwIfCancelled();
    io::ModelTypeInfo type = io::readModelType(folder);
    card.modelType = type.modelType;
    bool originalLlava = false;
    if (card.modelType.rfind("llava", 0) == 0) {
        originalLlava = fillFromLlava(card, folder);
    } else {
        fillFromGenericConfig(card, configPath);
    }
    card.architecture =
        type.architecture.empty() ? derivedArchitecture(card.modelType, originalLlava) : type.architecture;

    ctx.report(0, 0, "opening weights");
    ctx.throwIfCancelled();
    auto archive = io::SafetensorsArchive::open(folder);
    for (const auto& file : archive->files()) {
        // The demo model generator marks its random weights in every file's __metadata__.
        auto it = file->metadata().find(pipeline::kDemoMetadataKey);
        if (it != file->metadata().end() && it->second == pipeline::kDemoMetadataValue)
            card.randomWeights = true;
    }

    const std::vector<std::string> names = archive->names();
    if (originalLlava) {
        // The loader reads the tower from its own folder only when the weights hold none.
        const bool towerInside = std::any_of(names.begin(), names.end(), [](const std::string& name) {
            return name.find("vision_tower") != std::string::npos &&
                   name.find("embeddings.patch_embedding.weight") != std::string::npos;
        });
        if (!towerInside) {
            const models::VisionTowerLookup tower = models::findVisionTower(folder, card.visionTowerName);
            card.needsVisionTower = true;
            card.visionTowerFolder = tower.folder;
            card.visionTowerTried = tower.tried;
        }
    }
    const auto total = static_cast<std::int64_t>(names.size());
    std::map<io::DType, std::uint64_t> bytesByDtype;
    std::int64_t done = 0;
    for (const std::string& name : names) {
        if (done % 256 == 0) {
            ctx.throwIfCancelled();
            ctx.report(done, total, "reading tensor headers");
        }
        const io::TensorInfo& info = archive->info(name);
        card.parameterCount += info.numel();
        card.weightBytes += info.nbytes();
        bytesByDtype[info.dtype] += info.nbytes();
        ++done;
    }
    ctx.report(total, total, "done");

    io::DType dominant = io::DType::F32;
    std::uint64_t most = 0;
    for (const auto& [dtype, bytes] : bytesByDtype) {
        if (bytes > most) {
            most = bytes;
            dominant = dtype;
        }
    }
    card.dtype = bytesByDtype.empty() ? std::string("none") : std::string(io::dtypeName(dominant));

    if (pipeline::isSdrpnCheckpoint(folder)) {
        card.sdrpnCheckpoint = true;
        const json config = readJsonFile(configPath);
        card.twigK = intAt(config, {"twig_K"});
        card.twigT = intAt(config, {"twig_T"});
        card.needsBase = pipeline::isUnfilledSdrpnCheckpoint(folder);
        if (card.needsBase) {
            const std::string unfilled =
                "unfilled SD-RPN checkpoint: needs its base model for the layers from K+T on, the final "
                "norm and lm_head";
            card.note = card.note.empty() ? unfilled : unfilled + "; " + card.note;
        }
    }
    if (card.randomWeights) {
        const std::string demo = "demo model: random weights (answers and maps are meaningless)";
        card.note = card.note.empty() ? demo : demo + "; " + card.note;
    }
    return card;
}

}  // namespace

Result<ModelCard> inspectModel(const std::string& folder, JobContext& ctx) {
    return guarded([&] { return inspect(folder, ctx); });
}

}  // namespace sdrpn
