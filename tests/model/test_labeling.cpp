// Labeling end to end on the tiny LLaVA fixture (its tokenizer and weights): three images written by the
// test, a run cancelled after the first sample, a resume, every sample stored exactly once, and stored maps
// equal to what `ask` captures for the same question.
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "core/data/labeling.h"
#include "core/data/pipeline_teacher.h"
#include "core/io/image.h"
#include "core/pipeline/ask.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
using namespace sdrpn::data;

namespace {

// Grounding on layer 3 heads 1 and 2, sink = layer 1's head mean (the fixture has 6 layers, 4 heads).
LabelSettings fixtureSettings() {
    return LabelSettings::fromJsonText(
        R"({"preset": "llava-1.5-7b", "grounding": [{"layer": 3, "heads": [1, 2]}],
                                           "sink": [{"layer": 1, "heads": []}], "sink_threshold": 0.01})");
}

const char* kQuestions[] = {"What is written on the sign?", "What color is the car?", "Is there a dog?"};

// Three images of different sizes and contents, and a JSONL dataset that asks about them.
std::string writeDataset(const std::string& dir) {
    std::ofstream jsonl(dir + "/questions.jsonl");
    for (int i = 0; i < 3; ++i) {
        io::ImageRgb8 img;
        img.width = 200 + 60 * i;
        img.height = 150 + 20 * i;
        img.pixels.resize(std::size_t(img.width) * std::size_t(img.height) * 3);
        for (int y = 0; y < img.height; ++y)
            for (int x = 0; x < img.width; ++x) {
                std::uint8_t* p = img.at(x, y);
                p[0] = std::uint8_t((x * (i + 1)) % 256);
                p[1] = std::uint8_t((y * 3 + 40 * i) % 256);
                p[2] = std::uint8_t(((x / 20 + y / 20) % 2) * 200);
            }
        const std::string name = "img" + std::to_string(i) + ".png";
        io::saveImage(img, dir + "/" + name);
        jsonl << nlohmann::json{{"question_id", "s" + std::to_string(i)},
                                {"image", name},
                                {"question", kQuestions[i]}}
                     .dump()
              << "\n";
    }
    return dir + "/questions.jsonl";
}

std::shared_ptr<const pipeline::LoadedModel> loadFixture() {
    auto model = pipeline::loadModel(test::fixturePath("tiny-llava-hf"), {}, JobContext::none());
    if (!model) ADD_FAILURE() << model.message();
    return model ? model.value() : nullptr;
}

pipeline::AskOptions teacherOptions() {
    pipeline::AskOptions o = PipelineTeacher::defaultOptions();
    o.generation.maxNewTokens = 12;
    return o;
}

}  // namespace

TEST(Labeling, InterruptedAfterOneSampleThenResumedHoldsEverySampleOnce) {
    auto model = loadFixture();
    ASSERT_TRUE(model);
    const std::string dir = test::scratchDir();
    DatasetOptions dopt;
    dopt.imageRoot = dir;
    const Dataset data = readDataset(writeDataset(dir), dopt);
    ASSERT_EQ(data.samples.size(), 3u);
    const std::string storePath = dir + "/labels.sdrpn";
    PipelineTeacher teacher(model, teacherOptions());
    EXPECT_EQ(teacher.modelId(), "tiny-llava-hf");
    LabelingOptions options;
    options.settings = fixtureSettings();

    {
        LabelStore store = LabelStore::open(storePath);
        JobContext job;
        LabelingSummary s = runLabeling(data, store, teacher, options, job, [&](const LabelingProgress& p) {
            if (p.labeled == 1) job.requestCancel();  // as Ctrl-C after the first sample
        });
        EXPECT_TRUE(s.status.cancelled()) << s.status.message;
        EXPECT_EQ(s.labeled, 1);
        EXPECT_EQ(store.count(), 1);
    }
    {
        LabelStore store = LabelStore::open(storePath);
        JobContext job;
        LabelingSummary s = runLabeling(data, store, teacher, options, job);
        ASSERT_TRUE(s.status.ok()) << s.status.message;
        EXPECT_EQ(s.alreadyThere, 1);
        EXPECT_EQ(s.labeled, 2);
        EXPECT_TRUE(s.failed.empty());
    }
    LabelStore store = LabelStore::open(storePath);
    const std::vector<std::string> keys = store.keys(data.id);
    EXPECT_EQ(keys.size(), 3u);
    EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()), (std::set<std::string>{"s0", "s1", "s2"}));

    // A third run has nothing to do.
    JobContext job;
    LabelingSummary again = runLabeling(data, store, teacher, options, job);
    EXPECT_TRUE(again.status.ok());
    EXPECT_EQ(again.labeled, 0);
    EXPECT_EQ(again.alreadyThere, 3);
    EXPECT_EQ(store.count(), 3);

    // Each stored sample is what ask() gives for the same question: answer, geometry, maps within fp16.
    for (int i = 0; i < 3; ++i) {
        const Sample& sample = data.samples[std::size_t(i)];
        auto stored = store.get(data.id, sample.key);
        ASSERT_TRUE(stored) << sample.key;
        pipeline::AskOptions ask = teacherOptions();
        ask.question = sample.question;
        auto live = pipeline::ask(*model, io::loadImage(sample.imagePath), ask, JobContext::none());
        ASSERT_TRUE(live) << live.message();
        EXPECT_EQ(stored->answer, live->answer);
        EXPECT_EQ(stored->question, kQuestions[i]);
        EXPECT_EQ(stored->model, "tiny-llava-hf");
        EXPECT_EQ(stored->modelLayers, 6);
        EXPECT_EQ(stored->modelHeads, 4);
        EXPECT_EQ(stored->geometry.sourceWidth, 200 + 60 * i);
        EXPECT_EQ(stored->geometry.fit, live->geometry.fit);
        const int answerRows = int(live->maps.rowsOfKind(models::QueryKind::Answer).size());
        EXPECT_EQ(stored->answerTokens, answerRows);
        if (answerRows == 0) {
            EXPECT_TRUE(stored->maps.empty());
            continue;
        }
        ASSERT_EQ(stored->maps.size(), 3u);
        for (const auto& [layer, head] : std::vector<std::pair<int, int>>{{1, kHeadMean}, {3, 1}, {3, 2}}) {
            const StoredMap* m = stored->find(layer, head);
            ASSERT_NE(m, nullptr) << layer << " " << head;
            const GridMap want = attentionToImage(
                live->maps,
                {HeadGroup{layer, head == kHeadMean ? std::vector<int>{} : std::vector<int>{head}}});
            ASSERT_EQ(m->values.size(), want.values.size());
            for (std::size_t k = 0; k < want.values.size(); ++k)
                ASSERT_NEAR(m->values[k], want.values[k], std::abs(want.values[k]) * 4.9e-4 + 3e-8) << k;
        }
        // Labels come back from the store with the live recipe's result.
        const LabelSettings settings = fixtureSettings();
        const Labels fromStore = labelsOf(*stored, settings);
        const Labels fromLive =
            makeLabels(groundingMap(live->maps, settings), sinkMap(live->maps, settings), settings);
        EXPECT_EQ(fromStore.status, fromLive.status) << sample.key;
        EXPECT_EQ(fromStore.values.size(), 576u);
    }
}
