// pipeline::isSdrpnCheckpoint: a model folder is an SD-RPN checkpoint when its config.json names a twig
// (twig_K); anything else, a broken config included, is not one. pipeline::isUnfilledSdrpnCheckpoint: such a
// checkpoint whose weights lack the final norm, lm_head (unless tied) or the last layer, in any key layout.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/io/safetensors.h"
#include "core/pipeline/sdrpn_checkpoint.h"
#include "tests/support/test_support.h"

using sdrpn::pipeline::isSdrpnCheckpoint;
using sdrpn::pipeline::isUnfilledSdrpnCheckpoint;

namespace {

std::string folderWithConfig(const std::string& tag, const std::string& config) {
    const std::string dir = sdrpn::test::scratchDir(tag);
    std::ofstream(dir + "/config.json") << config;
    return dir;
}

// A folder with `config` and a model.safetensors holding a one-element tensor per name.
std::string folderWithWeights(const std::string& tag, const std::string& config,
                              const std::vector<std::string>& names) {
    const std::string dir = folderWithConfig(tag, config);
    static const float kOne = 1.0f;
    std::vector<sdrpn::io::TensorRecord> records;
    for (const auto& name : names) records.push_back({name, sdrpn::io::DType::F32, {1}, &kOne});
    sdrpn::io::writeSafetensors(dir + "/model.safetensors", records);
    return dir;
}

const char* kTwigConfig = R"({"model_type": "llava", "twig_K": 1, "twig_T": 1, "num_hidden_layers": 3})";

// An original-layout twig checkpoint's keys: layers 0 .. layers-1, the twig, optionally norm and lm_head.
std::vector<std::string> originalKeys(int layers, bool norm, bool lmHead) {
    std::vector<std::string> names = {"model.embed_tokens.weight", "model.mm_projector.0.weight",
                                      "model.twig_layers.0.self_attn.q_proj.weight",
                                      "model.twig_norm.weight"};
    for (int i = 0; i < layers; ++i)
        names.push_back("model.layers." + std::to_string(i) + ".mlp.up_proj.weight");
    if (norm) names.push_back("model.norm.weight");
    if (lmHead) names.push_back("lm_head.weight");
    return names;
}

}  // namespace

TEST(SdrpnCheckpoint, UnfilledWhenTheFinalNormLmHeadOrLastLayerIsMissing) {
    EXPECT_FALSE(
        isUnfilledSdrpnCheckpoint(folderWithWeights("full", kTwigConfig, originalKeys(3, true, true))));
    // The released trained checkpoints: layers [0, K+T), no norm, no lm_head.
    EXPECT_TRUE(
        isUnfilledSdrpnCheckpoint(folderWithWeights("released", kTwigConfig, originalKeys(2, false, false))));
    EXPECT_TRUE(
        isUnfilledSdrpnCheckpoint(folderWithWeights("no_norm", kTwigConfig, originalKeys(3, false, true))));
    EXPECT_TRUE(
        isUnfilledSdrpnCheckpoint(folderWithWeights("no_head", kTwigConfig, originalKeys(3, true, false))));
    EXPECT_TRUE(
        isUnfilledSdrpnCheckpoint(folderWithWeights("no_last", kTwigConfig, originalKeys(2, true, true))));
    // Tied embeddings need no lm_head (top level or in text_config).
    EXPECT_FALSE(isUnfilledSdrpnCheckpoint(folderWithWeights(
        "tied", R"({"twig_K": 1, "text_config": {"num_hidden_layers": 3, "tie_word_embeddings": true}})",
        originalKeys(3, true, false))));
    // Not a twig checkpoint: never "unfilled", whatever it lacks.
    EXPECT_FALSE(isUnfilledSdrpnCheckpoint(
        folderWithWeights("plain", R"({"model_type": "llava"})", originalKeys(1, false, false))));
    EXPECT_FALSE(isUnfilledSdrpnCheckpoint(folderWithConfig("no_weights", kTwigConfig)));
    // The loaders' message says what is missing and what to do.
    const std::string two = folderWithWeights("two_layers", kTwigConfig, originalKeys(1, false, false));
    const std::string message = sdrpn::models::unfilledCheckpointMessage(two);
    EXPECT_NE(
        message.find(two + " is an unfilled SD-RPN checkpoint: it lacks backbone layers 1..2, the final "
                           "norm and lm_head"),
        std::string::npos)
        << message;
    EXPECT_NE(message.find("--base DIR"), std::string::npos) << message;
    EXPECT_FALSE(isUnfilledSdrpnCheckpoint("/nonexistent/model"));
}

TEST(SdrpnCheckpoint, UnfilledIsJudgedInEveryKeyLayout) {
    // llava-hf hub and transformers >= 4.52 (Qwen2.5-VL, DeepSeek-VL alike) names of a complete model.
    EXPECT_FALSE(isUnfilledSdrpnCheckpoint(folderWithWeights(
        "hub", kTwigConfig,
        {"language_model.model.layers.2.mlp.up_proj.weight", "language_model.model.norm.weight",
         "language_model.lm_head.weight", "model.twig_norm.weight"})));
    EXPECT_FALSE(isUnfilledSdrpnCheckpoint(
        folderWithWeights("transformers", kTwigConfig,
                          {"model.language_model.layers.2.mlp.up_proj.weight",
                           "model.language_model.norm.weight", "lm_head.weight", "model.twig_norm.weight"})));
    EXPECT_TRUE(isUnfilledSdrpnCheckpoint(folderWithWeights(
        "hub_unfilled", kTwigConfig,
        {"language_model.model.layers.1.mlp.up_proj.weight", "model.twig_layers.2.mlp.up_proj.weight"})));
    // Vision tower layers do not count as backbone layers.
    EXPECT_TRUE(isUnfilledSdrpnCheckpoint(folderWithWeights(
        "vision", kTwigConfig,
        {"model.layers.1.mlp.up_proj.weight", "vision_tower.vision_model.encoder.layers.5.mlp.fc1.weight",
         "model.norm.weight", "lm_head.weight"})));
}

TEST(SdrpnCheckpoint, TwigKInTheConfigMakesACheckpoint) {
    EXPECT_TRUE(
        isSdrpnCheckpoint(folderWithConfig("twig", R"({"model_type": "llava", "twig_K": 15, "twig_T": 3})")));
    EXPECT_FALSE(isSdrpnCheckpoint(folderWithConfig("plain", R"({"model_type": "llava", "twig_T": 3})")));
    EXPECT_FALSE(isSdrpnCheckpoint(sdrpn::test::fixturePath("tiny-llava-hf")));
}

TEST(SdrpnCheckpoint, BrokenOrMissingConfigIsNoCheckpoint) {
    EXPECT_FALSE(isSdrpnCheckpoint(folderWithConfig("broken", R"({"twig_K": )")));
    EXPECT_FALSE(isSdrpnCheckpoint(folderWithConfig("array", R"(["twig_K"])")));
    EXPECT_FALSE(isSdrpnCheckpoint(sdrpn::test::scratchDir("empty")));
    EXPECT_FALSE(isSdrpnCheckpoint("/nonexistent/model"));
    // A config.json that is a folder is not read.
    const std::string odd = sdrpn::test::scratchDir("odd");
    std::filesystem::create_directories(odd + "/config.json");
    EXPECT_FALSE(isSdrpnCheckpoint(odd));
}
