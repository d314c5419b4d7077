// Model configuration readers: llava-hf (nested text_config / vision_config, hub and transformers-5
// forms), original LLaVA (flat, mm_* fields) and CLIP folders. Fields a file leaves out get the
// reference implementation's class defaults (mllm_reference.md §2.1).
//
//   LlavaConfig cfg = readLlavaConfig("/models/llava-1.5-7b-hf");  // folder or config.json
//
// Errors throw sdrpn::Error naming the file and the key (missing file, not JSON, wrong type, bad value).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sdrpn::io {

// CLIPVisionConfig with its defaults.
struct ClipVisionConfig {
    int hiddenSize = 768;
    int intermediateSize = 3072;
    int numHiddenLayers = 12;
    int numAttentionHeads = 12;
    int numChannels = 3;
    int imageSize = 224;
    int patchSize = 32;
    int projectionDim = 512;
    double layerNormEps = 1e-5;
    std::string hiddenAct = "quick_gelu";

    int gridSide() const { return imageSize / patchSize; }
    int numPatches() const { return gridSide() * gridSide(); }
    int headDim() const { return hiddenSize / numAttentionHeads; }
};

// LlamaConfig with its defaults.
struct LlamaConfig {
    int vocabSize = 32000;
    int hiddenSize = 4096;
    int intermediateSize = 11008;
    int numHiddenLayers = 32;
    int numAttentionHeads = 32;
    int numKeyValueHeads = 32;  // defaults to numAttentionHeads when absent
    int headDim = 128;          // defaults to hiddenSize / numAttentionHeads when absent
    int maxPositionEmbeddings = 2048;
    double rmsNormEps = 1e-6;
    double ropeTheta = 10000.0;  // `rope_theta` or transformers-5 `rope_parameters.rope_theta`
    std::string hiddenAct = "silu";
    bool attentionBias = false;  // q/k/v/o projections carry a bias
    bool qkvBiasOnly = false;    // with attentionBias: o_proj has none (Qwen2)
    bool mlpBias = false;
    bool tieWordEmbeddings = false;
    std::int64_t bosTokenId = 1;
    std::int64_t eosTokenId = 2;
    std::int64_t padTokenId = -1;  // -1: none
};

enum class LlavaLayout {
    Hf,        // llava-hf: LlavaForConditionalGeneration, tower inside the checkpoint
    Original,  // liuhaotian/llava-v1.5: LlavaLlamaForCausalLM, tower in a separate CLIP folder
};

struct LlavaConfig {
    LlavaLayout layout = LlavaLayout::Hf;
    std::string modelType = "llava";
    std::string sourcePath;  // the config.json that was read
    LlamaConfig text;
    ClipVisionConfig vision;
    std::int64_t imageTokenIndex = 32000;  // Hf: the added <image> token; Original: -200 sentinel
    int visionFeatureLayer = -2;
    std::string visionFeatureSelectStrategy = "default";  // "default" drops CLS, "full" keeps it
    std::string projectorHiddenAct = "gelu";
    std::string projectorType = "mlp2x_gelu";
    bool projectorBias = true;
    int imageSeqLength = 576;
    std::string imageAspectRatio;  // Original: "pad"; Hf: "" (preprocessor decides)
    std::string visionTowerName;   // Original: `mm_vision_tower` as written in the config
};

// Reads `<dir>/config.json` (or the given .json). For the Original layout the vision config keeps the
// CLIP ViT-L/14-336 numbers until resolveVisionTower() reads the tower's own config.
LlavaConfig readLlavaConfig(const std::string& pathOrDir);
LlavaConfig parseLlavaConfig(const std::string& jsonText, const std::string& sourceName);

// Reads a CLIP folder's config.json: a full CLIPModel config (`vision_config` inside) or a
// CLIPVisionModel config. Throws naming the file.
ClipVisionConfig readClipVisionConfig(const std::string& pathOrDir);

// Qwen2.5-VL vision tower (`vision_config`; Qwen2_5_VLVisionConfig defaults = the 7B tower).
struct QwenVisionConfig {
    int depth = 32;
    int hiddenSize = 1280;
    int intermediateSize = 3420;
    int numHeads = 16;
    int inChannels = 3;
    int patchSize = 14;
    int temporalPatchSize = 2;
    int spatialMergeSize = 2;
    int windowSize = 112;
    int outHiddenSize = 3584;
    int tokensPerSecond = 2;
    std::vector<int> fullattBlockIndexes{7, 15, 23, 31};
    std::string hiddenAct = "silu";
    double ropeTheta = 10000.0;  // vision RoPE base
    double rmsNormEps = 1e-6;

    int headDim() const { return hiddenSize / numHeads; }
    int patchValues() const { return inChannels * temporalPatchSize * patchSize * patchSize; }  // 1176
};

// Qwen2.5-VL (`model_type` "qwen2_5_vl"): flat hub configs (LLM fields at the top level, `rope_scaling`)
// and nested transformers-5 configs (`text_config`, `rope_parameters`).
struct QwenVlConfig {
    std::string modelType = "qwen2_5_vl";
    std::string sourcePath;
    LlamaConfig text;                           // Qwen2: attentionBias = true (q/k/v bias, o_proj without)
    std::vector<int> mropeSection{16, 24, 24};  // t, h, w sections over headDim / 2
    QwenVisionConfig vision;
    std::int64_t imageTokenId = 151655;
    std::int64_t videoTokenId = 151656;
    std::int64_t visionStartTokenId = 151652;
    std::int64_t visionEndTokenId = 151653;
};
QwenVlConfig readQwenVlConfig(const std::string& pathOrDir);
QwenVlConfig parseQwenVlConfig(const std::string& jsonText, const std::string& sourceName);

// SigLIP vision tower (SiglipVisionConfig defaults).
struct SiglipVisionConfig {
    int hiddenSize = 768;
    int intermediateSize = 3072;
    int numHiddenLayers = 12;
    int numAttentionHeads = 12;
    int numChannels = 3;
    int imageSize = 224;
    int patchSize = 16;
    double layerNormEps = 1e-6;
    std::string hiddenAct = "gelu_pytorch_tanh";

    int gridSide() const { return imageSize / patchSize; }
    int numPatches() const { return gridSide() * gridSide(); }
    int headDim() const { return hiddenSize / numAttentionHeads; }
};

// DeepSeek-VL, SigLIP variant (`model_type` "deepseek_vl", transformers-5 nested config): SigLIP tower,
// two-layer aligner, LLaMA-style decoder.
struct DeepseekVlConfig {
    std::string modelType = "deepseek_vl";
    std::string sourcePath;
    LlamaConfig text;
    SiglipVisionConfig vision;
    std::int64_t imageTokenId = 100015;
};
DeepseekVlConfig readDeepseekVlConfig(const std::string& pathOrDir);
DeepseekVlConfig parseDeepseekVlConfig(const std::string& jsonText, const std::string& sourceName);

// Just `model_type` (and `architectures[0]` when present) for the backbone registry.
struct ModelTypeInfo {
    std::string modelType;
    std::string architecture;
};
ModelTypeInfo readModelType(const std::string& pathOrDir);

}  // namespace sdrpn::io
