// Faults inside one process on the tiny LLaVA fixture: the model folder deleted while it loads, a
// preprocessor_config.json that does not fit the vision tower, NaN and infinite weights, and prompts beyond
// the model's context (max_position_embeddings, 2048 here). Each ends in a Result that names the culprit;
// none crashes.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "core/io/image.h"
#include "core/io/tensor_io.h"
#include "core/models/decoder_backbone.h"
#include "core/pipeline/ask.h"
#include "tests/support/job_outputs.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
using namespace sdrpn::pipeline;
namespace fs = std::filesystem;

namespace {

// A copy of the fixture folder (the original stays as it is).
std::string copyOfFixture(const std::string& tag) {
    const std::string dir = test::scratchDir(tag) + "/model";
    fs::copy(test::fixturePath("tiny-llava-hf"), dir, fs::copy_options::recursive);
    return dir;
}

// The copy with `value` written into element 0 of every tensor whose name contains `part`.
std::string withPoisonedWeights(const std::string& tag, const std::string& part, float value) {
    const std::string dir = copyOfFixture(tag);
    auto weights = test::readWeights(dir + "/model.safetensors");
    int hit = 0;
    for (auto& [key, t] : weights)
        if (key.find(part) != std::string::npos) {
            t.view(-1)[0] = value;
            ++hit;
        }
    EXPECT_GT(hit, 0) << "no tensor named *" << part << "*";
    std::vector<std::pair<std::string, torch::Tensor>> list(weights.begin(), weights.end());
    io::saveTensors(dir + "/model.safetensors", list, {{"format", "pt"}});
    return dir;
}

AskOptions shortAnswer(const std::string& question, int tokens = 4) {
    AskOptions o;
    o.question = question;
    o.generation.maxNewTokens = tokens;
    return o;
}

std::string words(int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += i % 2 ? "red " : "blue ";
    return s;
}

}  // namespace

TEST(Faults, AModelFolderDeletedWhileLoadingEndsInAMessageOrALoadedModel) {
    // Deleted at the first progress report (after config.json, before or while the weights are read), and
    // at the last; on Linux an open or mapped file outlives its name, so either outcome is sound, but a
    // failure must name the folder and nothing may crash.
    for (const bool atFirst : {true, false}) {
        const std::string dir = copyOfFixture(atFirst ? "deleted-first" : "deleted-last");
        JobContext job;
        bool deleted = false;
        job.onProgress = [&](const Progress& p) {
            if (deleted || (!atFirst && p.done < p.total)) return;
            std::error_code ec;
            fs::remove_all(dir, ec);
            deleted = true;
        };
        auto model = loadModel(dir, {}, job);
        EXPECT_TRUE(deleted) << "loading reported no progress";
        EXPECT_FALSE(fs::exists(dir));
        if (!model.ok()) {
            EXPECT_NE(model.message().find(dir), std::string::npos) << model.message();
            continue;
        }
        // Loaded: the weights were read before the names went; it answers as usual.
        const io::ImageRgb8 image = io::loadImage(test::fixturePath("tiny-llava-hf") + "/image_336.png");
        auto r = ask(*model.value(), image, shortAnswer("What is this?"), JobContext::none());
        EXPECT_TRUE(r.ok()) << r.message();
    }
}

TEST(Faults, APreprocessorConfigThatDoesNotFitTheVisionTowerIsRefusedAtLoad) {
    const std::string dir = copyOfFixture("preprocessor");
    std::ofstream(dir + "/preprocessor_config.json")
        << R"({"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}})";
    auto model = loadModel(dir, {}, JobContext::none());
    ASSERT_FALSE(model.ok());
    EXPECT_NE(model.message().find(dir + "/preprocessor_config.json"), std::string::npos) << model.message();
    EXPECT_NE(model.message().find("image_size 336"), std::string::npos) << model.message();

    std::ofstream(dir + "/preprocessor_config.json") << R"({"size": {"shortest_edge": 1e300}})";
    auto absurd = loadModel(dir, {}, JobContext::none());
    ASSERT_FALSE(absurd.ok());
    EXPECT_NE(absurd.message().find("size.shortest_edge"), std::string::npos) << absurd.message();
}

TEST(Faults, NanOrInfiniteWeightsAreNamedInsteadOfAnsweringGarbage) {
    const io::ImageRgb8 image = io::loadImage(test::fixturePath("tiny-llava-hf") + "/image_336.png");
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    for (const auto& [part, value] :
         std::vector<std::pair<std::string, float>>{{"lm_head.weight", nan},
                                                    {"layers.0.input_layernorm.weight", inf},
                                                    {"multi_modal_projector.linear_1.weight", nan}}) {
        SCOPED_TRACE(part);
        // One value is enough: the first logit, every hidden state after layer 0, or every image feature.
        const std::string dir = withPoisonedWeights("poisoned", part, value);
        auto model = loadModel(dir, {}, JobContext::none());
        ASSERT_TRUE(model.ok()) << model.message();
        AskOptions o = shortAnswer("What is this?");
        auto r = ask(*model.value(), image, o, JobContext::none());
        ASSERT_FALSE(r.ok()) << "answered: " << r.value().answer;
        EXPECT_NE(r.message().find("NaN or infinite"), std::string::npos) << r.message();
        EXPECT_NE(r.message().find(dir), std::string::npos) << r.message();
    }
}

TEST(Faults, APromptBeyondTheContextIsRefusedAndTheAnswerStopsAtItsEnd) {
    auto loaded = loadModel(test::fixturePath("tiny-llava-hf"), {}, JobContext::none());
    ASSERT_TRUE(loaded.ok()) << loaded.message();
    const LoadedModel& model = *loaded.value();
    const auto* decoder = dynamic_cast<const models::DecoderBackbone*>(model.backbone.get());
    ASSERT_NE(decoder, nullptr);
    const std::int64_t context = decoder->text()->config().maxPositionEmbeddings;
    ASSERT_EQ(context, 2048);
    const io::ImageRgb8 image = io::loadImage(test::fixturePath("tiny-llava-hf") + "/image_336.png");

    // Far beyond: refused before any compute, naming both numbers.
    auto r = ask(model, image, shortAnswer(words(4000)), JobContext::none());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("more than the model's context of 2048 tokens"), std::string::npos)
        << r.message();
    EXPECT_NE(r.message().find("max_position_embeddings"), std::string::npos) << r.message();

    // A prompt that leaves room for a few tokens: the answer stops at the context's end, not after 64.
    // Bisect the question's length: `lo` words fit, `hi` do not.
    int lo = 0, hi = 4000, n = 0;
    std::int64_t promptTokens = 0;
    for (int tries = 0; tries < 30 && hi - lo > 1; ++tries) {
        n = (lo + hi) / 2;
        auto probe = ask(model, image, shortAnswer(words(n), 1), JobContext::none());
        if (!probe.ok()) {
            hi = n;
            continue;
        }
        promptTokens = probe.value().generation.promptTokens;
        if (context - promptTokens >= 3 && context - promptTokens <= 40) break;
        (context - promptTokens > 40 ? lo : hi) = n;
    }
    ASSERT_GE(context - promptTokens, 3);
    ASSERT_LE(context - promptTokens, 40);
    AskOptions o = shortAnswer(words(n), 64);
    o.generation.stopAtEos = false;
    auto near = ask(model, image, o, JobContext::none());
    ASSERT_TRUE(near.ok()) << near.message();
    EXPECT_EQ(std::int64_t(near.value().generation.tokens.size()), context - promptTokens);
    EXPECT_EQ(near.value().generation.stopReason, models::StopReason::MaxTokens);
}
