// Loading LLaVA-1.5 from every supported layout gives the same model: the fixture re-saved with the newer
// transformers key names, as two shards with mixed F16/F32 tensors, and in the original layout with a
// separate CLIP folder. Missing or wrong-shaped tensors are named; cancel during load is not a failure.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/llava.h"
#include "core/models/registry.h"
#include "core/models/vision_tower.h"
#include "core/pipeline/model_card.h"
#include "tests/support/llava_layouts.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;
using namespace sdrpn;
using namespace sdrpn::models;

namespace {

constexpr double kTol = 1e-4;
constexpr std::int64_t kImageStart = 49;
constexpr std::int64_t kImageTokens = 576;

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

std::string fixture() {
    return test::fixturePath("tiny-llava-hf");
}

const std::map<std::string, torch::Tensor>& reference() {
    static const auto ref =
        io::loadTensors(*io::SafetensorsArchive::open(fixture() + "/reference.safetensors"));
    return ref;
}

// The fixture's weights under canonical (hub) names, as stored (fp16).
const std::map<std::string, torch::Tensor>& fixtureWeights() {
    static const auto w = io::loadTensors(*io::SafetensorsArchive::open(fixture() + "/model.safetensors"));
    return w;
}

NamedTensors relabel(LlavaKeyLayout layout) {
    NamedTensors out;
    for (const auto& [name, t] : fixtureWeights()) {
        const std::string key = llavaStoredKey(name, layout);
        if (!key.empty()) out.emplace_back(key, t);
    }
    return out;
}

void copyFile(const std::string& from, const std::string& to) {
    fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

void writeJson(const std::string& path, const nlohmann::json& j) {
    std::ofstream(path) << j.dump(2);
}

std::vector<std::int64_t> inputIds() {
    auto t = reference().at("input_ids").contiguous();
    return std::vector<std::int64_t>(t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + t.numel());
}

// Full-sequence logits of the reference prompt and image.
torch::Tensor logitsOf(const LlavaModel& model, std::vector<std::int64_t> ids) {
    torch::NoGradGuard noGrad;
    PromptInput p;
    p.ids = std::move(ids);
    p.images = {model.encodeImage(reference().at("pixel_values.336"))};
    PrefillOptions o;
    o.allLogits = true;
    auto ctx = model.newContext();
    return model.prefill(*ctx, p, o).logits;
}

std::string loadError(const std::string& dir, const LoadOptions& options = {}) {
    auto r = tryLoadLlava(dir, options, JobContext::none());
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status().code, StatusCode::Failed);
    return r.message();
}

TEST(LlavaKeys, NormaliserMapsEveryLayout) {
    for (const auto& [name, t] : fixtureWeights()) {
        (void)t;
        for (auto layout : {LlavaKeyLayout::Hub, LlavaKeyLayout::Transformers, LlavaKeyLayout::Original}) {
            const std::string stored = llavaStoredKey(name, layout);
            if (!stored.empty()) {
                EXPECT_EQ(normaliseLlavaKey(stored), name) << stored;
            }
        }
        const std::string clip = llavaStoredKey(name, LlavaKeyLayout::ClipFolder);
        if (!clip.empty()) {
            EXPECT_EQ(normaliseClipKey(clip), name) << clip;
        }
    }
    EXPECT_EQ(normaliseLlavaKey("model.vision_tower.vision_tower.vision_model.pre_layrnorm.weight"),
              "vision_tower.vision_model.pre_layrnorm.weight");
    EXPECT_EQ(normaliseLlavaKey("model.vision_tower.encoder.layers.0.mlp.fc1.weight"),
              "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight");
    EXPECT_EQ(normaliseLlavaKey("vision_tower.vision_model.embeddings.position_ids"), "");
    EXPECT_EQ(normaliseLlavaKey("language_model.model.layers.3.self_attn.rotary_emb.inv_freq"), "");
    EXPECT_EQ(normaliseLlavaKey("model.image_newline"), "");
    EXPECT_EQ(normaliseClipKey("text_model.encoder.layers.0.mlp.fc1.weight"), "");
    EXPECT_EQ(llavaStoredKey("language_model.lm_head.weight", LlavaKeyLayout::Transformers),
              "lm_head.weight");
    EXPECT_EQ(llavaStoredKey("multi_modal_projector.linear_2.bias", LlavaKeyLayout::Original),
              "model.mm_projector.2.bias");
}

TEST(LlavaLoading, NewerTransformersKeyLayout) {
    const std::string dir = test::scratchDir("transformers");
    copyFile(fixture() + "/config.json", dir + "/config.json");
    auto tensors = relabel(LlavaKeyLayout::Transformers);
    tensors.emplace_back("model.vision_tower.vision_model.embeddings.position_ids",
                         torch::arange(577).unsqueeze(0));
    io::saveTensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
    auto r = tryLoadLlava(dir, LoadOptions{}, JobContext::none());
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_TENSOR_NEAR(logitsOf(*r.value(), inputIds()), reference().at("logits"), kTol);
}

TEST(LlavaLoading, TwoShardsWithMixedF16AndF32) {
    const std::string dir = test::scratchDir("sharded");
    copyFile(fixture() + "/config.json", dir + "/config.json");
    NamedTensors shards[2];
    nlohmann::json weightMap = nlohmann::json::object();
    std::int64_t total = 0;
    std::size_t i = 0;
    for (const auto& [name, t] : fixtureWeights()) {
        const int shard = int(i % 2);
        // Every third tensor widened to F32: the loader converts whatever it finds.
        auto stored = (i % 3 == 0) ? t.to(torch::kFloat) : t;
        shards[shard].emplace_back(name, stored);
        const std::string file = "model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors";
        weightMap[name] = file;
        total += stored.numel() * std::int64_t(stored.element_size());
        ++i;
    }
    io::saveTensors(dir + "/model-00001-of-00002.safetensors", shards[0], {{"format", "pt"}});
    io::saveTensors(dir + "/model-00002-of-00002.safetensors", shards[1], {{"format", "pt"}});
    writeJson(dir + "/model.safetensors.index.json",
              {{"metadata", {{"total_size", total}}}, {"weight_map", weightMap}});
    auto r = tryLoadLlava(dir, LoadOptions{}, JobContext::none());
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_TENSOR_NEAR(logitsOf(*r.value(), inputIds()), reference().at("logits"), kTol);
}

TEST(LlavaLoading, Bf16StoredTensorsAreConverted) {
    const std::string dir = test::scratchDir("bf16");
    copyFile(fixture() + "/config.json", dir + "/config.json");
    NamedTensors tensors;
    const std::string norm = "language_model.model.norm.weight";
    for (const auto& [name, t] : fixtureWeights())
        tensors.emplace_back(name, name == norm ? t.to(torch::kBFloat16) : t);
    io::saveTensors(dir + "/model.safetensors", tensors);
    auto r = tryLoadLlava(dir, LoadOptions{}, JobContext::none());
    ASSERT_TRUE(r.ok()) << r.message();
    auto loaded = r.value()->finalNormWeight();
    EXPECT_EQ(loaded.scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::equal(loaded, fixtureWeights().at(norm).to(torch::kBFloat16).to(torch::kFloat)));
}

TEST(LlavaLoading, OriginalLayoutWithSeparateClipFolder) {
    const std::string root = test::scratchDir("original");
    const std::string modelDir =
        test::writeOriginalLlava(root, "clip-vit-tiny-336", "openai/clip-vit-tiny-336");
    // `mm_vision_tower` is a hub name: its last component is found beside the model folder.
    auto r = tryLoadLlava(modelDir, LoadOptions{}, JobContext::none());
    ASSERT_TRUE(r.ok()) << r.message();
    const LlavaModel& model = *r.value();
    EXPECT_EQ(model.config().layout, io::LlavaLayout::Original);
    EXPECT_EQ(model.info().imageSentinel, -200);
    EXPECT_EQ(model.info().imageTokenId, -1);
    EXPECT_EQ(model.info().architecture, "LlavaLlamaForCausalLM");

    // The original prompt: one -200 sentinel where llava-hf has 576 image tokens.
    auto ids = inputIds();
    std::vector<std::int64_t> original(ids.begin(), ids.begin() + kImageStart);
    original.push_back(-200);
    original.insert(original.end(), ids.begin() + kImageStart + kImageTokens, ids.end());
    EXPECT_TENSOR_NEAR(logitsOf(model, original), reference().at("logits"), kTol);

    // Through the registry as well.
    auto viaRegistry = tryLoadBackbone(modelDir, LoadOptions{}, JobContext::none());
    ASSERT_TRUE(viaRegistry.ok()) << viaRegistry.message();
}

TEST(LlavaLoading, VisionTowerOptionOverridesTheConfig) {
    const std::string root = test::scratchDir("override");
    const std::string modelDir = test::writeOriginalLlava(root, "my-clip", "/nonexistent/clip");
    const std::string err = loadError(modelDir);
    EXPECT_NE(err.find("/nonexistent/clip"), std::string::npos) << err;
    EXPECT_NE(err.find("mm_vision_tower"), std::string::npos) << err;

    LoadOptions options;
    options.visionTower = root + "/my-clip";
    auto r = tryLoadLlava(modelDir, options, JobContext::none());
    ASSERT_TRUE(r.ok()) << r.message();

    options.visionTower = root + "/missing";
    EXPECT_NE(loadError(modelDir, options).find(root + "/missing"), std::string::npos);
}

TEST(LlavaLoading, VisionTowerLookupIsPlainData) {
    const std::string root = test::scratchDir("lookup");
    const std::string modelDir =
        test::writeOriginalLlava(root, "clip-vit-tiny-336", "openai/clip-vit-tiny-336");
    VisionTowerLookup found = findVisionTower(modelDir, "openai/clip-vit-tiny-336");
    ASSERT_TRUE(found.found());
    EXPECT_EQ(found.folder, fs::path(root + "/clip-vit-tiny-336").lexically_normal().string());
    EXPECT_EQ(found.tried.size(), 4u);  // inside and beside the model folder, full name and last component
    EXPECT_FALSE(found.explicitFolder);

    const std::string lost = test::scratchDir("lookup_missing");
    const std::string lostDir =
        test::writeOriginalLlava(lost, "my-clip", "openai/clip-vit-large-patch14-336");
    VisionTowerLookup missing = findVisionTower(lostDir, "openai/clip-vit-large-patch14-336");
    EXPECT_FALSE(missing.found());
    EXPECT_EQ(missing.name, "openai/clip-vit-large-patch14-336");
    ASSERT_EQ(missing.tried.size(), 4u);
    EXPECT_EQ(missing.tried[3], fs::path(lost + "/clip-vit-large-patch14-336").lexically_normal().string());
    // The loader's message is built from the same lookup: every folder tried is named.
    const std::string err = loadError(lostDir);
    EXPECT_NE(err.find("not found; tried:"), std::string::npos) << err;
    for (const auto& p : missing.tried) EXPECT_NE(err.find(p), std::string::npos) << p << "\n" << err;

    VisionTowerLookup given = findVisionTower(lostDir, "ignored", lost + "/my-clip");
    EXPECT_TRUE(given.explicitFolder);
    EXPECT_EQ(given.folder, lost + "/my-clip");
    EXPECT_FALSE(findVisionTower(lostDir, "ignored", lost + "/nope").found());
    EXPECT_TRUE(findVisionTower(lostDir, "").tried.empty());

    // The card says so without loading anything.
    JobContext ctx;
    auto card = inspectModel(lostDir, ctx);
    ASSERT_TRUE(card.ok()) << card.message();
    EXPECT_TRUE(card->needsVisionTower);
    EXPECT_TRUE(card->visionTowerMissing());
    EXPECT_EQ(card->visionTowerName, "openai/clip-vit-large-patch14-336");
    EXPECT_EQ(card->visionTowerTried, missing.tried);
    auto foundCard = inspectModel(modelDir, ctx);
    ASSERT_TRUE(foundCard.ok()) << foundCard.message();
    EXPECT_TRUE(foundCard->needsVisionTower);
    EXPECT_FALSE(foundCard->visionTowerMissing());
    EXPECT_EQ(foundCard->visionTowerFolder, found.folder);
    auto hubCard = inspectModel(fixture(), ctx);
    ASSERT_TRUE(hubCard.ok()) << hubCard.message();
    EXPECT_FALSE(hubCard->needsVisionTower);
    EXPECT_FALSE(hubCard->sdrpnCheckpoint);
}

TEST(LlavaLoading, RelativeVisionTowerPath) {
    const std::string root = test::scratchDir("relative");
    const std::string modelDir = test::writeOriginalLlava(root, "llava-v1.5-tiny/clip", "clip");
    auto r = tryLoadLlava(modelDir, LoadOptions{}, JobContext::none());
    ASSERT_TRUE(r.ok()) << r.message();
}

TEST(LlavaLoading, MissingAndWrongShapedTensorsAreNamed) {
    const std::string dir = test::scratchDir("broken");
    copyFile(fixture() + "/config.json", dir + "/config.json");
    NamedTensors tensors;
    for (const auto& [name, t] : fixtureWeights()) {
        if (name == "language_model.model.layers.4.mlp.up_proj.weight") continue;
        if (name == "vision_tower.vision_model.encoder.layers.2.self_attn.q_proj.bias")
            continue;  // unused layer
        if (name == "multi_modal_projector.linear_1.weight")
            tensors.emplace_back(name, torch::zeros({64, 31}, torch::kHalf));
        else
            tensors.emplace_back(name, t);
    }
    io::saveTensors(dir + "/model.safetensors", tensors);
    const std::string err = loadError(dir);
    EXPECT_NE(err.find(dir), std::string::npos) << err;
    EXPECT_NE(err.find("missing: language_model.model.layers.4.mlp.up_proj.weight (expected [160, 64])"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find("missing: vision_tower.vision_model.encoder.layers.2.self_attn.q_proj.bias"),
              std::string::npos)
        << err;
    EXPECT_NE(
        err.find("shape mismatch: multi_modal_projector.linear_1.weight expected [64, 32] found [64, 31]"),
        std::string::npos)
        << err;
    EXPECT_NE(err.find("3 of"), std::string::npos) << err;
}

TEST(LlavaLoading, IntegerTensorIsRefused) {
    const std::string dir = test::scratchDir("int");
    copyFile(fixture() + "/config.json", dir + "/config.json");
    NamedTensors tensors;
    for (const auto& [name, t] : fixtureWeights())
        tensors.emplace_back(name, name == "language_model.model.norm.weight" ? t.to(torch::kInt) : t);
    io::saveTensors(dir + "/model.safetensors", tensors);
    const std::string err = loadError(dir);
    EXPECT_NE(err.find("language_model.model.norm.weight is I32"), std::string::npos) << err;
}

TEST(LlavaLoading, MissingFolderAndBadOptions) {
    EXPECT_NE(loadError("/nonexistent/llava").find("/nonexistent/llava"), std::string::npos);
    LoadOptions badDtype;
    badDtype.dtype = "fp8";
    EXPECT_NE(loadError(fixture(), badDtype).find("fp8"), std::string::npos);
    LoadOptions badDevice;
    badDevice.device = "tpu";
    EXPECT_NE(loadError(fixture(), badDevice).find("tpu"), std::string::npos);
}

TEST(LlavaLoading, CancelDuringLoadReturnsCancelled) {
    JobContext job;
    int reports = 0;
    job.onProgress = [&](const Progress& p) {
        if (p.total > 0 && p.done > 0 && ++reports == 5) job.requestCancel();
    };
    auto r = tryLoadLlava(fixture(), LoadOptions{}, job);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status().code, StatusCode::Cancelled);
    EXPECT_EQ(reports, 5);
}

TEST(LlavaLoading, ProgressCoversAllBytes) {
    JobContext job;
    Progress last;
    std::int64_t calls = 0;
    job.onProgress = [&](const Progress& p) {
        if (p.total > 0) last = p;
        ++calls;
    };
    auto r = tryLoadLlava(fixture(), LoadOptions{}, job);
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_GT(calls, 100);
    EXPECT_EQ(last.done, last.total);
}

TEST(LlavaLoading, Bf16ComputeIsCloseToFp32) {
    LoadOptions options;
    options.dtype = "bf16";
    auto r = tryLoadLlava(fixture(), options, JobContext::none());
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r.value()->info().dtype, torch::kBFloat16);
    auto logits = logitsOf(*r.value(), inputIds());
    EXPECT_EQ(logits.scalar_type(), torch::kFloat);
    // bf16 keeps ~3 significant digits; the argmax of the last row survives.
    EXPECT_TENSOR_NEAR(logits[-1], reference().at("logits")[-1], 0.1);
}

TEST(LlavaLoading, Fp16ComputeRunsOrIsRefusedClearly) {
    LoadOptions options;
    options.dtype = "fp16";
    auto r = tryLoadLlava(fixture(), options, JobContext::none());
    if (!r.ok()) {
        // LibTorch before 2.1 has no half-precision matmul on the CPU.
        EXPECT_NE(r.message().find("fp16"), std::string::npos) << r.message();
        EXPECT_NE(r.message().find("cpu"), std::string::npos) << r.message();
        return;
    }
    auto logits = logitsOf(*r.value(), inputIds());
    EXPECT_TENSOR_NEAR(logits[-1], reference().at("logits")[-1], 0.05);
}

}  // namespace
