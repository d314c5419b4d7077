// Config readers: the tiny llava-hf fixture, the released 7B llava-hf and 13B original configs
// (mllm_reference.md §2.1, §2.2), transformers-5 fields, CLIP configs, and bad files.
#include "core/io/config.h"

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "core/result.h"
#include "tests/support/test_support.h"

using namespace sdrpn::io;

namespace {

std::string errorOf(const std::function<void()>& f) {
    try {
        f();
    } catch (const sdrpn::Error& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("unexpected exception type: ") + e.what();
    }
    return "no error";
}

std::string writeFile(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    return path;
}

// mllm_reference.md §2.1: llava-hf/llava-1.5-7b-hf config.json as saved by transformers 4.36.
const char* kLlava7bHf = R"({
  "architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",
  "ignore_index": -100, "image_token_index": 32000, "pad_token_id": 32001,
  "projector_hidden_act": "gelu", "vision_feature_layer": -2, "vision_feature_select_strategy": "default",
  "tie_word_embeddings": false, "torch_dtype": "float16", "vocab_size": 32064,
  "text_config": {"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"],
                  "max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05,
                  "torch_dtype": "float16", "vocab_size": 32064},
  "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096,
                    "model_type": "clip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 24,
                    "patch_size": 14, "projection_dim": 768, "vocab_size": 32000}
})";

// mllm_reference.md §2.2: liuhaotian/llava-v1.5-13b config.json.
const char* kLlava13bOriginal = R"({
  "architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava", "hidden_size": 5120,
  "intermediate_size": 13824, "num_attention_heads": 40, "num_hidden_layers": 40, "num_key_value_heads": 40,
  "rms_norm_eps": 1e-05, "max_position_embeddings": 4096, "vocab_size": 32000, "pad_token_id": 0,
  "bos_token_id": 1, "eos_token_id": 2, "image_aspect_ratio": "pad", "mm_hidden_size": 1024,
  "mm_projector_type": "mlp2x_gelu", "mm_vision_select_feature": "patch", "mm_vision_select_layer": -2,
  "mm_vision_tower": "openai/clip-vit-large-patch14-336", "mm_use_im_patch_token": false,
  "mm_use_im_start_end": false, "tie_word_embeddings": false, "torch_dtype": "float16",
  "transformers_version": "4.31.0", "use_mm_proj": true
})";

}  // namespace

TEST(Config, TinyLlavaHfFixture) {
    const std::string dir = sdrpn::test::fixturePath("tiny-llava-hf");
    LlavaConfig cfg = readLlavaConfig(dir);
    EXPECT_EQ(cfg.layout, LlavaLayout::Hf);
    EXPECT_EQ(cfg.modelType, "llava");
    EXPECT_EQ(cfg.sourcePath, dir + "/config.json");
    EXPECT_EQ(cfg.vision.hiddenSize, 32);
    EXPECT_EQ(cfg.vision.intermediateSize, 64);
    EXPECT_EQ(cfg.vision.numHiddenLayers, 3);
    EXPECT_EQ(cfg.vision.numAttentionHeads, 4);
    EXPECT_EQ(cfg.vision.imageSize, 336);
    EXPECT_EQ(cfg.vision.patchSize, 14);
    EXPECT_EQ(cfg.vision.numPatches(), 576);
    EXPECT_EQ(cfg.vision.hiddenAct, "quick_gelu");
    EXPECT_EQ(cfg.text.hiddenSize, 64);
    EXPECT_EQ(cfg.text.intermediateSize, 160);
    EXPECT_EQ(cfg.text.numHiddenLayers, 6);
    EXPECT_EQ(cfg.text.numAttentionHeads, 4);
    EXPECT_EQ(cfg.text.numKeyValueHeads, 4);
    EXPECT_EQ(cfg.text.headDim, 16);
    EXPECT_EQ(cfg.text.vocabSize, 514);
    EXPECT_DOUBLE_EQ(cfg.text.rmsNormEps, 1e-5);
    EXPECT_DOUBLE_EQ(cfg.text.ropeTheta, 10000.0);
    EXPECT_EQ(cfg.text.padTokenId, 513);
    EXPECT_EQ(cfg.imageTokenIndex, 512);
    EXPECT_EQ(cfg.visionFeatureLayer, -2);
    EXPECT_EQ(cfg.visionFeatureSelectStrategy, "default");
    EXPECT_EQ(cfg.projectorHiddenAct, "gelu");
    EXPECT_TRUE(cfg.projectorBias);
    EXPECT_EQ(cfg.imageSeqLength, 576);
    EXPECT_TRUE(cfg.imageAspectRatio.empty());

    // Same through the file path, and the registry view.
    EXPECT_EQ(readLlavaConfig(dir + "/config.json").text.vocabSize, 514);
    ModelTypeInfo type = readModelType(dir);
    EXPECT_EQ(type.modelType, "llava");
    EXPECT_EQ(type.architecture, "");  // "architectures": null
}

TEST(Config, Llava7bHfFillsClassDefaults) {
    LlavaConfig cfg = parseLlavaConfig(kLlava7bHf, "7b/config.json");
    EXPECT_EQ(cfg.layout, LlavaLayout::Hf);
    EXPECT_EQ(cfg.sourcePath, "7b/config.json");
    // LlamaConfig defaults for what text_config leaves out.
    EXPECT_EQ(cfg.text.hiddenSize, 4096);
    EXPECT_EQ(cfg.text.intermediateSize, 11008);
    EXPECT_EQ(cfg.text.numHiddenLayers, 32);
    EXPECT_EQ(cfg.text.numAttentionHeads, 32);
    EXPECT_EQ(cfg.text.numKeyValueHeads, 32);
    EXPECT_EQ(cfg.text.headDim, 128);
    EXPECT_EQ(cfg.text.maxPositionEmbeddings, 4096);
    EXPECT_DOUBLE_EQ(cfg.text.rmsNormEps, 1e-5);
    EXPECT_DOUBLE_EQ(cfg.text.ropeTheta, 10000.0);
    EXPECT_EQ(cfg.text.hiddenAct, "silu");
    EXPECT_FALSE(cfg.text.attentionBias);
    EXPECT_FALSE(cfg.text.tieWordEmbeddings);
    EXPECT_EQ(cfg.text.vocabSize, 32064);
    EXPECT_EQ(cfg.text.bosTokenId, 1);
    EXPECT_EQ(cfg.text.eosTokenId, 2);
    EXPECT_EQ(cfg.text.padTokenId, 32001);  // top level
    // CLIPVisionConfig defaults for what vision_config leaves out.
    EXPECT_EQ(cfg.vision.hiddenSize, 1024);
    EXPECT_EQ(cfg.vision.intermediateSize, 4096);
    EXPECT_EQ(cfg.vision.numHiddenLayers, 24);
    EXPECT_EQ(cfg.vision.numAttentionHeads, 16);
    EXPECT_EQ(cfg.vision.projectionDim, 768);
    EXPECT_EQ(cfg.vision.numChannels, 3);
    EXPECT_DOUBLE_EQ(cfg.vision.layerNormEps, 1e-5);
    EXPECT_EQ(cfg.vision.hiddenAct, "quick_gelu");
    EXPECT_EQ(cfg.vision.numPatches(), 576);
    // LlavaConfig defaults.
    EXPECT_EQ(cfg.imageTokenIndex, 32000);
    EXPECT_EQ(cfg.imageSeqLength, 576);
    EXPECT_TRUE(cfg.projectorBias);
    EXPECT_EQ(cfg.projectorType, "mlp2x_gelu");
}

TEST(Config, Llava13bHfOverridesAndNewerKeys) {
    // 13B dims in text_config; transformers-5 spellings: image_token_id, rope_parameters; GQA heads.
    const char* text = R"({"model_type": "llava", "image_token_id": 32000,
      "text_config": {"hidden_size": 5120, "intermediate_size": 13824, "num_attention_heads": 40,
                      "num_hidden_layers": 40, "num_key_value_heads": 8,
                      "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}},
      "vision_config": {"hidden_size": 1024, "num_attention_heads": 16, "image_size": 336, "patch_size": 14},
      "vision_feature_select_strategy": "full", "vision_feature_layer": -1,
      "multimodal_projector_bias": false, "image_seq_length": 577, "projector_hidden_act": "gelu"})";
    LlavaConfig cfg = parseLlavaConfig(text, "13b.json");
    EXPECT_EQ(cfg.text.hiddenSize, 5120);
    EXPECT_EQ(cfg.text.numKeyValueHeads, 8);
    EXPECT_EQ(cfg.text.headDim, 128);
    EXPECT_DOUBLE_EQ(cfg.text.ropeTheta, 500000.0);
    EXPECT_EQ(cfg.imageTokenIndex, 32000);
    EXPECT_EQ(cfg.visionFeatureSelectStrategy, "full");
    EXPECT_EQ(cfg.visionFeatureLayer, -1);
    EXPECT_FALSE(cfg.projectorBias);
    EXPECT_EQ(cfg.imageSeqLength, 577);
    EXPECT_EQ(cfg.vision.intermediateSize, 3072);  // CLIPVisionConfig default, as the reference class

    // Old spelling rope_theta, and a list of eos ids.
    cfg = parseLlavaConfig(
        R"({"model_type":"llava","text_config":{"rope_theta":1000000,"eos_token_id":[2,7]}})", "x.json");
    EXPECT_DOUBLE_EQ(cfg.text.ropeTheta, 1e6);
    EXPECT_EQ(cfg.text.eosTokenId, 2);
    // No vision_config at all: LlavaConfig's default tower (CLIP ViT-L/14-336).
    EXPECT_EQ(cfg.vision.hiddenSize, 1024);
    EXPECT_EQ(cfg.vision.imageSize, 336);
}

TEST(Config, Llava13bOriginalFlatForm) {
    LlavaConfig cfg = parseLlavaConfig(kLlava13bOriginal, "13b-orig/config.json");
    EXPECT_EQ(cfg.layout, LlavaLayout::Original);
    EXPECT_EQ(cfg.text.hiddenSize, 5120);
    EXPECT_EQ(cfg.text.intermediateSize, 13824);
    EXPECT_EQ(cfg.text.numAttentionHeads, 40);
    EXPECT_EQ(cfg.text.numHiddenLayers, 40);
    EXPECT_EQ(cfg.text.numKeyValueHeads, 40);
    EXPECT_EQ(cfg.text.headDim, 128);
    EXPECT_EQ(cfg.text.vocabSize, 32000);
    EXPECT_EQ(cfg.text.maxPositionEmbeddings, 4096);
    EXPECT_DOUBLE_EQ(cfg.text.rmsNormEps, 1e-5);
    EXPECT_EQ(cfg.text.padTokenId, 0);
    EXPECT_EQ(cfg.imageTokenIndex, -200);
    EXPECT_EQ(cfg.visionTowerName, "openai/clip-vit-large-patch14-336");
    EXPECT_EQ(cfg.imageAspectRatio, "pad");
    EXPECT_EQ(cfg.projectorType, "mlp2x_gelu");
    EXPECT_EQ(cfg.visionFeatureLayer, -2);
    EXPECT_EQ(cfg.visionFeatureSelectStrategy, "default");
    EXPECT_EQ(cfg.imageSeqLength, 576);
    // CLIP ViT-L/14-336 until the tower's own config is read.
    EXPECT_EQ(cfg.vision.hiddenSize, 1024);
    EXPECT_EQ(cfg.vision.intermediateSize, 4096);
    EXPECT_EQ(cfg.vision.numHiddenLayers, 24);
    EXPECT_EQ(cfg.vision.numAttentionHeads, 16);
    EXPECT_EQ(cfg.vision.imageSize, 336);
    EXPECT_EQ(cfg.vision.patchSize, 14);
    EXPECT_EQ(cfg.vision.projectionDim, 768);
}

TEST(Config, Llava7bOriginalWithoutArchitectures) {
    // Recognised by mm_vision_tower alone; 7B dims; defaults where keys are missing.
    LlavaConfig cfg = parseLlavaConfig(R"({"model_type":"llava_llama","mm_vision_tower":"clip-336",
        "mm_vision_select_feature":"cls_patch"})",
                                       "7b.json");
    EXPECT_EQ(cfg.layout, LlavaLayout::Original);
    EXPECT_EQ(cfg.modelType, "llava_llama");
    EXPECT_EQ(cfg.text.hiddenSize, 4096);
    EXPECT_EQ(cfg.visionFeatureSelectStrategy, "full");
    EXPECT_EQ(cfg.projectorType, "linear");
    EXPECT_EQ(cfg.imageAspectRatio, "square");
}

struct BadConfigCase {
    const char* label;
    const char* json;
    std::vector<std::string> mustMention;
};

class ConfigBadValue : public ::testing::TestWithParam<BadConfigCase> {};

TEST_P(ConfigBadValue, NamesFileKeyAndExpectation) {
    const BadConfigCase& c = GetParam();
    const std::string path = writeFile(sdrpn::test::scratchDir() + "/config.json", c.json);
    const std::string msg = errorOf([&] { readLlavaConfig(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const std::string& word : c.mustMention) EXPECT_NE(msg.find(word), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ConfigBadValue,
    ::testing::Values(BadConfigCase{"string_for_int",
                                    R"({"model_type":"llava","text_config":{"hidden_size":"4096"}})",
                                    {"'text_config.hidden_size'", "must be an integer", "a string"}},
                      BadConfigCase{"float_for_int",
                                    R"({"model_type":"llava","vision_config":{"patch_size":14.5}})",
                                    {"'vision_config.patch_size'", "must be an integer"}},
                      BadConfigCase{"string_for_number",
                                    R"({"model_type":"llava","text_config":{"rms_norm_eps":"1e-5"}})",
                                    {"'text_config.rms_norm_eps'", "must be a number"}},
                      BadConfigCase{"int_for_bool",
                                    R"({"model_type":"llava","multimodal_projector_bias":1})",
                                    {"'multimodal_projector_bias'", "true or false"}},
                      BadConfigCase{"int_for_string",
                                    R"({"model_type":"llava","projector_hidden_act":3})",
                                    {"'projector_hidden_act'", "must be a string"}},
                      BadConfigCase{"text_config_not_object",
                                    R"({"model_type":"llava","text_config":[1]})",
                                    {"'text_config'", "must be an object"}},
                      BadConfigCase{"rope_parameters_not_object",
                                    R"({"model_type":"llava","text_config":{"rope_parameters":5}})",
                                    {"'text_config.rope_parameters'", "must be an object"}},
                      BadConfigCase{"layer_list",
                                    R"({"model_type":"llava","vision_feature_layer":[-2,-5]})",
                                    {"'vision_feature_layer'", "must be an integer"}},
                      BadConfigCase{"bad_strategy",
                                    R"({"model_type":"llava","vision_feature_select_strategy":"cls"})",
                                    {"'vision_feature_select_strategy'", "\"cls\""}},
                      BadConfigCase{"zero_heads",
                                    R"({"model_type":"llava","text_config":{"num_attention_heads":0}})",
                                    {"'text_config.num_attention_heads'", "positive"}},
                      BadConfigCase{"heads_not_dividing",
                                    R"({"model_type":"llava","text_config":{"hidden_size":100}})",
                                    {"'text_config.num_attention_heads'", "hidden_size"}},
                      BadConfigCase{"kv_not_dividing",
                                    R"({"model_type":"llava","text_config":{"num_key_value_heads":5}})",
                                    {"'text_config.num_key_value_heads'"}},
                      BadConfigCase{"patch_not_dividing",
                                    R"({"model_type":"llava","vision_config":{"patch_size":15}})",
                                    {"'vision_config.patch_size'", "image_size"}},
                      BadConfigCase{"int_overflow",
                                    R"({"model_type":"llava","text_config":{"hidden_size":99999999999}})",
                                    {"'text_config.hidden_size'", "out of range"}},
                      BadConfigCase{"original_bad_feature",
                                    R"({"mm_vision_tower":"x","mm_vision_select_feature":"cls"})",
                                    {"'mm_vision_select_feature'"}},
                      BadConfigCase{"original_string_layers",
                                    R"({"mm_vision_tower":"x","num_hidden_layers":"40"})",
                                    {"'num_hidden_layers'", "must be an integer"}},
                      BadConfigCase{"not_llava",
                                    R"({"model_type":"bert","architectures":["BertModel"]})",
                                    {"not a LLaVA config", "bert"}},
                      BadConfigCase{"not_json", "{\"model_type\": ", {"not valid JSON"}},
                      BadConfigCase{"not_object", "[1,2]", {"JSON object"}},
                      BadConfigCase{"empty", "", {"not valid JSON"}}),
    [](const ::testing::TestParamInfo<BadConfigCase>& info) { return std::string(info.param.label); });

TEST(Config, MissingFileAndFolder) {
    const std::string dir = sdrpn::test::scratchDir();
    std::string msg = errorOf([&] { readLlavaConfig(dir); });  // folder without config.json
    EXPECT_NE(msg.find(dir + "/config.json"), std::string::npos) << msg;
    msg = errorOf([&] { readLlavaConfig(dir + "/nope.json"); });
    EXPECT_NE(msg.find("nope.json"), std::string::npos) << msg;
    msg = errorOf([&] { readClipVisionConfig(dir + "/nope.json"); });
    EXPECT_NE(msg.find("nope.json"), std::string::npos) << msg;
    msg = errorOf([&] { readModelType(dir); });
    EXPECT_NE(msg.find(dir + "/config.json"), std::string::npos) << msg;
}

TEST(Config, ClipVisionConfigForms) {
    const std::string dir = sdrpn::test::scratchDir();
    // Full CLIPModel config (as openai/clip-vit-large-patch14-336).
    writeFile(dir + "/config.json",
              R"({"architectures":["CLIPModel"],"model_type":"clip","projection_dim":768,
        "text_config":{"hidden_size":768},
        "vision_config":{"hidden_size":1024,"intermediate_size":4096,"num_attention_heads":16,
                         "num_hidden_layers":24,"image_size":336,"patch_size":14,"projection_dim":768,
                         "layer_norm_eps":1e-05,"hidden_act":"quick_gelu"}})");
    ClipVisionConfig cfg = readClipVisionConfig(dir);
    EXPECT_EQ(cfg.hiddenSize, 1024);
    EXPECT_EQ(cfg.numHiddenLayers, 24);
    EXPECT_EQ(cfg.imageSize, 336);
    EXPECT_EQ(cfg.patchSize, 14);
    EXPECT_EQ(cfg.gridSide(), 24);
    EXPECT_EQ(cfg.headDim(), 64);
    ModelTypeInfo type = readModelType(dir);
    EXPECT_EQ(type.modelType, "clip");
    EXPECT_EQ(type.architecture, "CLIPModel");

    // CLIPVisionModel config: fields at the top, defaults for the rest.
    writeFile(dir + "/vision.json",
              R"({"model_type":"clip_vision_model","hidden_size":32,"num_attention_heads":4,
        "image_size":336,"patch_size":14})");
    cfg = readClipVisionConfig(dir + "/vision.json");
    EXPECT_EQ(cfg.hiddenSize, 32);
    EXPECT_EQ(cfg.numHiddenLayers, 12);
    EXPECT_EQ(cfg.intermediateSize, 3072);
    EXPECT_EQ(cfg.projectionDim, 512);

    // Wrong type inside vision_config names the nested key.
    writeFile(dir + "/bad.json", R"({"model_type":"clip","vision_config":{"image_size":"336"}})");
    const std::string msg = errorOf([&] { readClipVisionConfig(dir + "/bad.json"); });
    EXPECT_NE(msg.find("bad.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'vision_config.image_size'"), std::string::npos) << msg;

    writeFile(dir + "/llama.json", R"({"model_type":"llama"})");
    EXPECT_THROW(readClipVisionConfig(dir + "/llama.json"), sdrpn::Error);
}

TEST(Config, ModelTypeOfOtherBackbones) {
    ModelTypeInfo qwen = readModelType(sdrpn::test::fixturePath("tiny-qwen2_5-vl"));
    EXPECT_FALSE(qwen.modelType.empty());
    const std::string dir = sdrpn::test::scratchDir();
    writeFile(dir + "/config.json", R"({"model_type":5})");
    const std::string msg = errorOf([&] { readModelType(dir); });
    EXPECT_NE(msg.find("'model_type'"), std::string::npos) << msg;
    writeFile(dir + "/config.json", R"({"architectures":"Qwen"})");
    EXPECT_THROW(readModelType(dir), sdrpn::Error);
}
