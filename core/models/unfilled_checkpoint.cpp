#include "core/models/unfilled_checkpoint.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "core/result.h"

namespace sdrpn::models {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool endsWith(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// What a twig checkpoint holds of the backbone's tail. `valid` is false when the folder is no SD-RPN
// checkpoint or cannot be read.
struct Tail {
    bool valid = false;
    bool finalNorm = false;
    bool lmHead = false;
    bool lmHeadNeeded = true;  // false with tied word embeddings
    int layers = 0;            // num_hidden_layers of the config (0: unknown)
    int storedLayers = 0;      // 1 + the highest backbone layer index stored
    bool lastLayerMissing() const { return layers > 0 && storedLayers < layers; }
    bool unfilled() const { return valid && (!finalNorm || (lmHeadNeeded && !lmHead) || lastLayerMissing()); }
};

const json* textSection(const json& root) {
    for (const char* key : {"text_config", "language_config"}) {
        auto it = root.find(key);
        if (it != root.end() && it->is_object()) return &*it;
    }
    return nullptr;
}

// root[key] or text_config[key].
const json* configValue(const json& root, const char* key) {
    if (const json* text = textSection(root)) {
        auto it = text->find(key);
        if (it != text->end()) return &*it;
    }
    auto it = root.find(key);
    return it == root.end() ? nullptr : &*it;
}

// The backbone layer index of a stored key ("model.layers.7.…", "language_model.model.layers.7.…",
// "model.language_model.layers.7.…"), or -1.
int backboneLayerOf(const std::string& name) {
    for (const char* marker : {"model.layers.", "language_model.layers."}) {
        const std::string m(marker);
        const auto pos = name.find(m);
        if (pos == std::string::npos) continue;
        if (pos > 0 && name[pos - 1] != '.') continue;  // e.g. "vision_model.layers." is no match
        const char* digits = name.c_str() + pos + m.size();
        char* end = nullptr;
        const long index = std::strtol(digits, &end, 10);
        if (end != digits && *end == '.') return int(index);
    }
    return -1;
}

Tail readTail(const std::string& folder) {
    Tail tail;
    std::error_code ec;
    const fs::path config = fs::path(folder) / "config.json";
    if (!fs::is_regular_file(config, ec)) return tail;
    std::ifstream in(config);
    const json root = json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!root.is_object() || !root.contains("twig_K")) return tail;
    if (const json* tie = configValue(root, "tie_word_embeddings"); tie && tie->is_boolean())
        tail.lmHeadNeeded = !tie->get<bool>();
    if (const json* n = configValue(root, "num_hidden_layers"); n && n->is_number_integer())
        tail.layers = n->get<int>();
    std::vector<std::string> names;
    try {
        names = io::SafetensorsArchive::open(folder)->names();
    } catch (const std::exception&) {
        return tail;
    }
    tail.valid = true;
    for (const auto& name : names) {
        if (name == "model.norm.weight" || endsWith(name, ".model.norm.weight") ||
            endsWith(name, "language_model.norm.weight"))
            tail.finalNorm = true;
        if (name == "lm_head.weight" || endsWith(name, ".lm_head.weight")) tail.lmHead = true;
        if (name.find("twig") != std::string::npos) continue;
        const int layer = backboneLayerOf(name);
        if (layer + 1 > tail.storedLayers) tail.storedLayers = layer + 1;
    }
    return tail;
}

}  // namespace

bool isUnfilledSdrpnCheckpoint(const std::string& folder) {
    return readTail(folder).unfilled();
}

std::string unfilledCheckpointMessage(const std::string& folder) {
    const Tail tail = readTail(folder);
    std::vector<std::string> missing;
    if (tail.lastLayerMissing())
        missing.push_back(tail.storedLayers + 1 == tail.layers
                              ? "backbone layer " + std::to_string(tail.storedLayers)
                              : "backbone layers " + std::to_string(tail.storedLayers) + ".." +
                                    std::to_string(tail.layers - 1));
    if (!tail.finalNorm) missing.push_back("the final norm");
    if (tail.lmHeadNeeded && !tail.lmHead) missing.push_back("lm_head");
    std::string lacks;
    for (std::size_t i = 0; i < missing.size(); ++i)
        lacks += (i == 0 ? "" : i + 1 == missing.size() ? " and " : ", ") + missing[i];
    return folder + " is an unfilled SD-RPN checkpoint: it lacks " + (lacks.empty() ? "weights" : lacks) +
           ", which come from the base model it was trained from. Pass that model's folder with --base DIR "
           "(the studio asks for it), or write a filled copy with `sdrpn merge-checkpoint --rpn " +
           folder + " --base DIR --out NEW_DIR`";
}

std::string baseMismatchPrefix(const std::string& checkpointDir, const std::string& baseDir) {
    return "base model " + baseDir + " does not match " + checkpointDir;
}

void checkBaseConfig(const io::LlamaConfig& checkpoint, const io::LlamaConfig& base,
                     const std::string& checkpointDir, const std::string& baseDir) {
    const struct {
        const char* key;
        int checkpoint;
        int base;
    } kFields[] = {
        {"hidden_size", checkpoint.hiddenSize, base.hiddenSize},
        {"num_hidden_layers", checkpoint.numHiddenLayers, base.numHiddenLayers},
        {"vocab_size", checkpoint.vocabSize, base.vocabSize},
        {"intermediate_size", checkpoint.intermediateSize, base.intermediateSize},
        {"num_attention_heads", checkpoint.numAttentionHeads, base.numAttentionHeads},
        {"num_key_value_heads", checkpoint.numKeyValueHeads, base.numKeyValueHeads},
    };
    for (const auto& f : kFields)
        if (f.checkpoint != f.base)
            throw Error(baseMismatchPrefix(checkpointDir, baseDir) + ": config " + f.key + " is " +
                        std::to_string(f.checkpoint) + " in the checkpoint and " + std::to_string(f.base) +
                        " in the base");
}

}  // namespace sdrpn::models
