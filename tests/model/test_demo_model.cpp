// The bundled demo model: made from a fixed seed, in the llava-hf layout with LLaVA-1.5's image geometry.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "core/io/config.h"
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/pipeline/demo_model.h"
#include "core/text/tokenizer.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;
using namespace sdrpn;

namespace {
std::string makeDemo(const std::string& dir, pipeline::DemoModelOptions options = {}) {
    JobContext ctx;
    auto r = pipeline::makeDemoModel(dir, options, ctx);
    EXPECT_TRUE(r.ok()) << r.message();
    return dir;
}
}  // namespace

TEST(DemoModel, HasLlavaGeometryAndMarksRandomWeights) {
    const std::string dir = makeDemo(test::scratchDir() + "/demo");
    for (const char* f :
         {"config.json", "preprocessor_config.json", "tokenizer.model", "model.safetensors", "README.txt"})
        EXPECT_TRUE(fs::exists(fs::path(dir) / f)) << f;
    EXPECT_FALSE(fs::exists(fs::path(dir) / "tokenizer-corpus.txt.tmp"));

    io::LlavaConfig cfg = io::readLlavaConfig(dir);
    EXPECT_EQ(cfg.layout, io::LlavaLayout::Hf);
    EXPECT_EQ(cfg.vision.imageSize, 336);
    EXPECT_EQ(cfg.vision.patchSize, 14);
    EXPECT_EQ(cfg.vision.numPatches(), 576);
    EXPECT_GE(cfg.text.numHiddenLayers, 8);
    EXPECT_EQ(cfg.visionFeatureLayer, -2);

    auto archive = io::SafetensorsArchive::open(dir);
    ASSERT_EQ(archive->files().size(), 1u);
    EXPECT_EQ(archive->files()[0]->metadata().at(pipeline::kDemoMetadataKey), pipeline::kDemoMetadataValue);
    EXPECT_EQ(archive->info("language_model.model.embed_tokens.weight").shape,
              (std::vector<std::int64_t>{cfg.text.vocabSize, cfg.text.hiddenSize}));
    EXPECT_EQ(archive->info("vision_tower.vision_model.embeddings.position_embedding.weight").shape,
              (std::vector<std::int64_t>{577, cfg.vision.hiddenSize}));

    // The tokenizer round-trips text, and the image token sits right after its pieces.
    text::SentencePieceTokenizer tok(dir + "/tokenizer.model");
    EXPECT_EQ(cfg.imageTokenIndex, tok.spmVocabSize());
    EXPECT_LT(cfg.imageTokenIndex, cfg.text.vocabSize);
    const std::string q = "What is written on the sign?";
    EXPECT_EQ(tok.decode(tok.encode(q)), q);
}

TEST(DemoModel, SameSeedSameWeightsOtherSeedOtherWeights) {
    const std::string a = makeDemo(test::scratchDir() + "/a");
    const std::string b = makeDemo(test::scratchDir() + "/b");
    pipeline::DemoModelOptions other;
    other.seed = 99;
    const std::string c = makeDemo(test::scratchDir() + "/c", other);
    auto wa = io::SafetensorsArchive::open(a), wb = io::SafetensorsArchive::open(b),
         wc = io::SafetensorsArchive::open(c);
    ASSERT_EQ(wa->names(), wb->names());
    for (const auto& name : wa->names())
        EXPECT_TRUE(torch::equal(io::loadTensor(*wa, name), io::loadTensor(*wb, name))) << name;
    const std::string w = "language_model.model.layers.0.self_attn.q_proj.weight";
    EXPECT_FALSE(torch::equal(io::loadTensor(*wa, w), io::loadTensor(*wc, w)));
}

TEST(DemoModel, RefusesToOverwriteUnlessAsked) {
    const std::string dir = makeDemo(test::scratchDir() + "/demo");
    JobContext ctx;
    auto again = pipeline::makeDemoModel(dir, {}, ctx);
    ASSERT_FALSE(again.ok());
    EXPECT_NE(again.message().find(dir), std::string::npos);
    pipeline::DemoModelOptions overwrite;
    overwrite.overwrite = true;
    EXPECT_TRUE(pipeline::makeDemoModel(dir, overwrite, ctx).ok());
}

TEST(DemoModel, CancelLeavesNoWeights) {
    const std::string dir = test::scratchDir() + "/demo";
    JobContext ctx;
    ctx.requestCancel();
    auto r = pipeline::makeDemoModel(dir, {}, ctx);
    EXPECT_TRUE(r.status().cancelled());
    EXPECT_FALSE(fs::exists(fs::path(dir) / "model.safetensors"));
}
