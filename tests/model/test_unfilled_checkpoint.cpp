// Unfilled SD-RPN checkpoints (the trained checkpoints as released: backbone layers [0, K+T), the twig and
// the vision weights, no final norm or lm_head) on the tiny LLaVA fixture: without a base model they are
// refused with a message saying what they are; with the fixture as base (LoadOptions::base, --base) they
// give the fixture's reference logits and their RPN; merge-checkpoint writes a filled copy that needs no
// base; mismatched bases and occupied output folders fail naming the culprit. Needs the sdrpn executable
// for the command-line tests.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/llava.h"
#include "core/pipeline/checkpoint_merge.h"
#include "core/pipeline/model_card.h"
#include "core/pipeline/sdrpn_checkpoint.h"
#include "core/sdrpn/rpn.h"
#include "tests/support/llava_layouts.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
using namespace sdrpn::models;
namespace fs = std::filesystem;

namespace {

constexpr double kTol = 1e-4;  // as the fixture's parity tests
constexpr int kK = 3, kT = 2;  // the unfilled checkpoint keeps layers 0..4 of 6

std::string fixture() {
    return test::fixturePath("tiny-llava-hf");
}

std::map<std::string, torch::Tensor>& reference() {
    static auto* ref = new std::map<std::string, torch::Tensor>(
        io::loadTensors(*io::SafetensorsArchive::open(fixture() + "/reference.safetensors")));
    return *ref;
}

// The fixture's reference prompt through every layer: all rows' logits.
torch::Tensor promptLogits(const LlavaModel& model) {
    torch::NoGradGuard noGrad;
    const auto& ref = reference();
    const torch::Tensor ids = ref.at("input_ids").contiguous();
    const std::vector<std::int64_t> tokens(ids.data_ptr<std::int64_t>(),
                                           ids.data_ptr<std::int64_t>() + ids.numel());
    const torch::Tensor features = model.encodeImage(ref.at("pixel_values.336"));
    auto ctx = model.newContext();
    PrefillOptions options;
    options.allLogits = true;
    return model.prefill(*ctx, PromptInput::fromTokenIds(tokens, 512, {features}), options).logits;
}

LoadOptions withBase(const std::string& base) {
    LoadOptions options;
    options.base = base;
    return options;
}

std::string errorOf(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// A copy of the fixture whose config.json or weights are changed by `edit` / `reshape`.
std::string editedFixture(const std::string& tag, const std::function<void(nlohmann::json&)>& edit,
                          const std::vector<std::string>& reshape = {}) {
    const std::string dir = test::scratchDir(tag);
    nlohmann::json config;
    std::ifstream(fixture() + "/config.json") >> config;
    if (edit) edit(config);
    std::ofstream(dir + "/config.json") << config.dump(2);
    auto weights = io::loadTensors(*io::SafetensorsArchive::open(fixture() + "/model.safetensors"));
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (auto& [name, t] : weights) {
        const bool change = std::find(reshape.begin(), reshape.end(), name) != reshape.end();
        tensors.emplace_back(name, change ? torch::zeros({t.size(0) / 2, t.size(1)}, t.options()) : t);
    }
    io::saveTensors(dir + "/model.safetensors", tensors);
    return dir;
}

class UnfilledCheckpoint : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        s_unfilled =
            new std::string(test::writeUnfilledCheckpoint(test::scratchDir("unfilled") + "/ckpt", kK, kT));
    }
    static void TearDownTestSuite() {
        delete s_unfilled;
        s_unfilled = nullptr;
    }
    static const std::string& unfilled() { return *s_unfilled; }
    static std::string* s_unfilled;
};

std::string* UnfilledCheckpoint::s_unfilled = nullptr;

TEST_F(UnfilledCheckpoint, IsRecognisedAndReportedByTheModelCard) {
    EXPECT_TRUE(pipeline::isSdrpnCheckpoint(unfilled()));
    EXPECT_TRUE(pipeline::isUnfilledSdrpnCheckpoint(unfilled()));
    EXPECT_FALSE(pipeline::isUnfilledSdrpnCheckpoint(fixture()));
    const std::string filled = test::writeFilledCheckpoint(test::scratchDir("filled") + "/ckpt");
    EXPECT_FALSE(pipeline::isUnfilledSdrpnCheckpoint(filled));

    JobContext job;
    auto card = inspectModel(unfilled(), job);
    ASSERT_TRUE(card) << card.message();
    EXPECT_TRUE(card->sdrpnCheckpoint);
    EXPECT_TRUE(card->needsBase);
    EXPECT_TRUE(contains(card->note, "unfilled SD-RPN checkpoint")) << card->note;
    auto filledCard = inspectModel(filled, job);
    ASSERT_TRUE(filledCard) << filledCard.message();
    EXPECT_FALSE(filledCard->needsBase);
}

TEST_F(UnfilledCheckpoint, WithoutBaseFailsSayingWhatItIs) {
    const std::string message = errorOf([&] { loadLlava(unfilled(), {}, JobContext::none()); });
    EXPECT_TRUE(contains(message, unfilled() + " is an unfilled SD-RPN checkpoint")) << message;
    EXPECT_TRUE(contains(message, "it lacks backbone layer 5, the final norm and lm_head")) << message;
    EXPECT_TRUE(contains(message, "the final norm")) << message;
    EXPECT_TRUE(contains(message, "lm_head")) << message;
    EXPECT_TRUE(contains(message, "--base DIR")) << message;
    EXPECT_TRUE(contains(message, "merge-checkpoint")) << message;
    EXPECT_FALSE(contains(message, "missing:")) << message;  // not the list of missing tensors
}

TEST_F(UnfilledCheckpoint, WithBaseGivesTheReferenceLogitsAndItsRpn) {
    torch::NoGradGuard noGrad;
    auto model = loadLlava(unfilled(), withBase(fixture()), JobContext::none());
    EXPECT_TENSOR_NEAR(promptLogits(*model), reference().at("logits"), kTol);

    // Its twig is the twiginit of the fixture (what writeUnfilledCheckpoint stored).
    Rpn rpn = loadRpn(unfilled(), *model);
    EXPECT_EQ(rpn->config(), (RpnConfig{kK, kT, true}));
    auto fixtureModel = loadLlava(fixture(), {}, JobContext::none());
    const auto expected = initRpnFromBackbone(*fixtureModel, {kK, kT, true})->checkpointTensors();
    const auto loaded = rpn->checkpointTensors();
    ASSERT_EQ(loaded.size(), expected.size());
    for (std::size_t i = 0; i < loaded.size(); ++i) {
        EXPECT_EQ(loaded[i].first, expected[i].first);
        EXPECT_TRUE(torch::equal(loaded[i].second, expected[i].second)) << loaded[i].first;
    }
}

TEST_F(UnfilledCheckpoint, MismatchedBaseFailsNamingTheTensor) {
    // Two tensors of another shape: the first in canonical-name order is named.
    const std::string base = editedFixture("reshaped", nullptr,
                                           {"language_model.model.layers.1.self_attn.k_proj.weight",
                                            "language_model.model.layers.0.self_attn.q_proj.weight"});
    const std::string expected = "base model " + base + " does not match " + unfilled() +
                                 ": language_model.model.layers.0.self_attn.q_proj.weight is [64, 64] in the "
                                 "checkpoint and [32, 64] in the base";
    const std::string loadError = errorOf([&] { loadLlava(unfilled(), withBase(base), JobContext::none()); });
    EXPECT_TRUE(contains(loadError, expected)) << loadError;
    const std::string out = test::scratchDir("mismatch_out") + "/merged";
    const std::string mergeError =
        errorOf([&] { pipeline::mergeCheckpoint(unfilled(), base, out, JobContext::none()); });
    EXPECT_TRUE(contains(mergeError, expected)) << mergeError;
    EXPECT_FALSE(fs::exists(out));

    // A config that differs is named by its key.
    const std::string wider =
        editedFixture("wider", [](nlohmann::json& c) { c["text_config"]["num_hidden_layers"] = 8; });
    const std::string configError =
        errorOf([&] { loadLlava(unfilled(), withBase(wider), JobContext::none()); });
    EXPECT_TRUE(
        contains(configError, "does not match " + unfilled() +
                                  ": config num_hidden_layers is 6 in the checkpoint and 8 in the base"))
        << configError;
}

TEST_F(UnfilledCheckpoint, MergedCopyLoadsWithoutBase) {
    const std::string out = test::scratchDir("merged") + "/filled";
    JobContext job;
    std::int64_t reports = 0;
    job.onProgress = [&](const Progress&) { ++reports; };
    pipeline::MergeOptions options;
    options.maxShardBytes = 200'000;  // several shards and an index
    const pipeline::MergeReport report = pipeline::mergeCheckpoint(unfilled(), fixture(), out, job, options);
    EXPECT_GT(reports, 10);
    EXPECT_GT(report.shards.size(), 1u);
    // Layer 5 (9 tensors), the final norm and lm_head.
    EXPECT_EQ(report.baseTensors, 11u);
    EXPECT_TRUE(fs::exists(out + "/model.safetensors.index.json"));
    EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
    for (const char* f : {"config.json", "tokenizer.model", "preprocessor_config.json"})
        EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
    EXPECT_FALSE(fs::exists(out + "/reference.safetensors"));  // base weight files are not copied

    // Every checkpoint tensor as stored, the base's under their own (llava-hf) names.
    auto merged = io::SafetensorsArchive::open(out);
    auto checkpoint = io::SafetensorsArchive::open(unfilled());
    for (const auto& name : checkpoint->names()) {
        ASSERT_TRUE(merged->contains(name)) << name;
        EXPECT_EQ(merged->info(name).shape, checkpoint->info(name).shape) << name;
        EXPECT_EQ(merged->info(name).dtype, checkpoint->info(name).dtype) << name;
    }
    for (const char* name : {"language_model.model.norm.weight", "language_model.lm_head.weight",
                             "language_model.model.layers.5.mlp.down_proj.weight"})
        EXPECT_TRUE(merged->contains(name)) << name;
    EXPECT_FALSE(pipeline::isUnfilledSdrpnCheckpoint(out));
    EXPECT_TRUE(pipeline::isSdrpnCheckpoint(out));

    torch::NoGradGuard noGrad;
    auto model = loadLlava(out, {}, JobContext::none());
    EXPECT_TENSOR_NEAR(promptLogits(*model), reference().at("logits"), kTol);
    EXPECT_EQ(loadRpn(out, *model)->config(), (RpnConfig{kK, kT, true}));
}

TEST_F(UnfilledCheckpoint, MergeIntoAnOriginalLayoutCheckpointUsesItsKeyNames) {
    // An original-LLaVA checkpoint (model.* keys, vision tower in a CLIP folder) filled from the llava-hf
    // fixture: the base's tensors get original names and no vision tower is added.
    const std::string root = test::scratchDir("original");
    const std::string clip =
        fs::path(test::writeOriginalLlava(root, "clip-tiny", "clip-tiny")).parent_path() / "clip-tiny";
    const std::string ckpt = test::writeUnfilledCheckpoint(root + "/ckpt", kK, kT, LlavaKeyLayout::Original);
    EXPECT_TRUE(pipeline::isUnfilledSdrpnCheckpoint(ckpt));
    LoadOptions options = withBase(fixture());
    options.visionTower = clip;
    {
        torch::NoGradGuard noGrad;
        auto model = loadLlava(ckpt, options, JobContext::none());
        EXPECT_TENSOR_NEAR(promptLogits(*model), reference().at("logits"), kTol);
    }

    const std::string out = root + "/filled";
    const auto report = pipeline::mergeCheckpoint(ckpt, fixture(), out, JobContext::none());
    EXPECT_EQ(report.shards, std::vector<std::string>{"model.safetensors"});
    EXPECT_EQ(report.baseTensors, 11u);
    auto merged = io::SafetensorsArchive::open(out);
    for (const char* name : {"model.norm.weight", "lm_head.weight", "model.layers.5.mlp.down_proj.weight"})
        EXPECT_TRUE(merged->contains(name)) << name;
    for (const auto& name : merged->names()) {
        EXPECT_EQ(name.find("language_model."), std::string::npos) << name;
        EXPECT_EQ(name.find("vision_tower"), std::string::npos) << name;
    }
    LoadOptions towerOnly;
    towerOnly.visionTower = clip;
    torch::NoGradGuard noGrad;
    auto model = loadLlava(out, towerOnly, JobContext::none());
    EXPECT_TENSOR_NEAR(promptLogits(*model), reference().at("logits"), kTol);
}

TEST_F(UnfilledCheckpoint, MergeRefusesAnOccupiedFolderAndLeavesNothingWhenCancelled) {
    const std::string occupied = test::scratchDir("occupied");
    std::ofstream(occupied + "/notes.txt") << "mine";
    const std::string message =
        errorOf([&] { pipeline::mergeCheckpoint(unfilled(), fixture(), occupied, JobContext::none()); });
    EXPECT_TRUE(contains(message, occupied + " already exists and is not empty")) << message;
    EXPECT_TRUE(fs::exists(occupied + "/notes.txt"));

    // An empty folder is fine.
    const std::string empty = test::scratchDir("empty_out");
    EXPECT_NO_THROW(pipeline::mergeCheckpoint(unfilled(), fixture(), empty, JobContext::none()));
    EXPECT_TRUE(fs::exists(empty + "/model.safetensors"));

    const std::string parent = test::scratchDir("cancelled");
    JobContext job;
    int tensors = 0;
    job.onProgress = [&](const Progress&) {
        if (++tensors == 5) job.requestCancel();
    };
    auto result = pipeline::tryMergeCheckpoint(unfilled(), fixture(), parent + "/out", job);
    EXPECT_TRUE(result.status().cancelled()) << result.message();
    EXPECT_TRUE(fs::is_empty(parent));  // neither the folder nor its temporary
}

// ---- the command line ------------------------------------------------------------------------------------

const std::string kSdrpn = test::sdrpnExecutable();

class UnfilledCheckpointCli : public UnfilledCheckpoint {
protected:
    void SetUp() override {
        if (!fs::exists(kSdrpn)) GTEST_FAIL() << kSdrpn << " is missing: build the sdrpn target first";
    }
};

std::string roiCommand(const std::string& modelDir, const std::string& extra) {
    return kSdrpn + " roi --model " + test::shellQuote(modelDir) + " --image " +
           test::shellQuote(fixture() + "/image_640x480.png") + " --question " +
           test::shellQuote("What is written on the sign?") + " --max-new-tokens 4 --no-baseline --quiet " +
           extra;
}

TEST_F(UnfilledCheckpointCli, RoiTakesTheBaseModel) {
    std::string out;
    EXPECT_EQ(test::runCommand(roiCommand(unfilled(), ""), &out), 1) << out;
    EXPECT_TRUE(contains(out, "is an unfilled SD-RPN checkpoint")) << out;

    std::string withBase;
    ASSERT_EQ(test::runCommand(roiCommand(unfilled(), "--base " + test::shellQuote(fixture())), &withBase), 0)
        << withBase;
    // The same answer as the filled checkpoint with the same twig.
    const std::string filled = test::writeFilledCheckpoint(test::scratchDir("cli_filled") + "/ckpt");
    std::string fromFilled;
    ASSERT_EQ(test::runCommand(roiCommand(filled, ""), &fromFilled), 0) << fromFilled;
    EXPECT_EQ(withBase, fromFilled);
}

TEST_F(UnfilledCheckpointCli, MergeCheckpointWritesALoadableFolder) {
    const std::string out = test::scratchDir("cli_merge") + "/filled";
    const std::string merge = kSdrpn + " merge-checkpoint --rpn " + test::shellQuote(unfilled()) +
                              " --base " + test::shellQuote(fixture()) + " --out " + test::shellQuote(out) +
                              " --quiet";
    std::string text;
    ASSERT_EQ(test::runCommand(merge, &text), 0) << text;
    EXPECT_TRUE(contains(text, "wrote " + out + ": ")) << text;
    EXPECT_TRUE(contains(text, " 11 from the base")) << text;
    std::string answer;
    EXPECT_EQ(test::runCommand(roiCommand(out, ""), &answer), 0) << answer;

    // Again into the now occupied folder: refused.
    EXPECT_EQ(test::runCommand(merge, &text), 1) << text;
    EXPECT_TRUE(contains(text, "already exists and is not empty")) << text;
    // Usage errors name the option.
    EXPECT_EQ(test::runCommand(kSdrpn + " merge-checkpoint --rpn " + unfilled(), &text), 2) << text;
    EXPECT_TRUE(contains(text, "--base")) << text;
}

}  // namespace
