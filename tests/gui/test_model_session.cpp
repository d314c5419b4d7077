// Model loading through ModelSession: the core's inspectModel on every fixture family, progress, cancel,
// the full load for answering, and the card the panel shows.
#include <QSignalSpy>

#include "app/model_session.h"
#include "core/pipeline/model_card.h"
#include "tests/gui/gui_test_support.h"
#include "tests/support/test_support.h"

using sdrpn::test::fixturePath;

TEST(InspectModel, ReadsTheLlavaFixture) {
    sdrpn::JobContext ctx;
    int reports = 0;
    ctx.onProgress = [&](const sdrpn::Progress&) { ++reports; };
    auto card = sdrpn::inspectModel(fixturePath("tiny-llava-hf"), ctx);
    ASSERT_TRUE(card.ok()) << card.message();
    EXPECT_EQ(card->modelType, "llava");
    EXPECT_EQ(card->architecture, "LlavaForConditionalGeneration");
    EXPECT_EQ(card->llmLayers, 6);
    EXPECT_EQ(card->llmHeads, 4);
    EXPECT_EQ(card->llmKvHeads, 4);
    EXPECT_EQ(card->llmHidden, 64);
    EXPECT_EQ(card->visionLayers, 3);
    EXPECT_EQ(card->imageSize, 336);
    EXPECT_EQ(card->patchSize, 14);
    EXPECT_EQ(card->gridRows, 24);
    EXPECT_EQ(card->gridCols, 24);
    EXPECT_EQ(card->dtype, "F16");
    EXPECT_GT(card->parameterCount, 100000);
    EXPECT_EQ(card->weightBytes, std::uint64_t(card->parameterCount) * 2);  // all F16
    EXPECT_FALSE(card->randomWeights);
    EXPECT_GT(reports, 1);
}

TEST(InspectModel, ReadsQwenAndDeepseekFixtures) {
    auto qwen = sdrpn::inspectModel(fixturePath("tiny-qwen2_5-vl"), sdrpn::JobContext::none());
    ASSERT_TRUE(qwen.ok()) << qwen.message();
    EXPECT_EQ(qwen->modelType, "qwen2_5_vl");
    EXPECT_EQ(qwen->llmLayers, 4);
    EXPECT_EQ(qwen->llmKvHeads, 2);
    EXPECT_EQ(qwen->visionLayers, 4);
    EXPECT_EQ(qwen->patchSize, 14);
    EXPECT_EQ(qwen->gridRows, 0);  // dynamic resolution
    EXPECT_FALSE(qwen->note.empty());

    auto deepseek = sdrpn::inspectModel(fixturePath("tiny-deepseek-vl"), sdrpn::JobContext::none());
    ASSERT_TRUE(deepseek.ok()) << deepseek.message();
    EXPECT_EQ(deepseek->modelType, "deepseek_vl");
    EXPECT_EQ(deepseek->imageSize, 384);
    EXPECT_EQ(deepseek->gridRows, 24);
    EXPECT_EQ(deepseek->visionLayers, 3);
}

TEST(InspectModel, NamesWhatIsWrong) {
    auto missing = sdrpn::inspectModel("/nonexistent/model", sdrpn::JobContext::none());
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.message().find("/nonexistent/model"), std::string::npos);

    const std::string empty = sdrpn::test::scratchDir("empty_model");
    auto noConfig = sdrpn::inspectModel(empty, sdrpn::JobContext::none());
    ASSERT_FALSE(noConfig.ok());
    EXPECT_NE(noConfig.message().find("config.json"), std::string::npos);
}

TEST(InspectModel, HonoursCancel) {
    sdrpn::JobContext ctx;
    ctx.requestCancel();
    auto card = sdrpn::inspectModel(fixturePath("tiny-llava-hf"), ctx);
    EXPECT_TRUE(card.status().cancelled());
}

TEST(ModelSession, LoadsReportsAndDescribesTheCard) {
    JobManager jobs;
    ModelSession session(&jobs);
    QSignalSpy loaded(&session, &ModelSession::loaded);
    QSignalSpy states(&session, &ModelSession::stateChanged);
    session.load(QString::fromStdString(fixturePath("tiny-llava-hf")));
    EXPECT_EQ(session.state(), ModelSession::State::Loading);
    EXPECT_EQ(session.card(), nullptr);
    ASSERT_TRUE(loaded.wait(30000)) << session.errorMessage().toStdString();
    EXPECT_EQ(session.state(), ModelSession::State::Ready);
    ASSERT_NE(session.card(), nullptr);
    QString reason;
    EXPECT_TRUE(session.canAnswer(&reason)) << reason.toStdString();
    ASSERT_NE(session.pipelineModel(), nullptr);
    EXPECT_EQ(session.model()->info.layers, 6);
    EXPECT_EQ(session.model()->info.heads, 4);
    EXPECT_EQ(session.model()->info.imageTokens, 576);
    EXPECT_EQ(session.model()->info.imageFit, "crop");

    const ModelCardInfo info = describeModel(*session.model());
    EXPECT_EQ(info.title, QStringLiteral("tiny-llava-hf"));
    EXPECT_EQ(info.subtitle, QStringLiteral("LlavaForConditionalGeneration"));
    EXPECT_TRUE(info.warning.isEmpty());
    QStringList labels;
    for (const auto& row : info.rows) labels << row.first;
    for (const char* expected : {"LLM layers", "Attention heads", "Image grid", "Weights dtype", "Parameters",
                                 "Weights size", "Vocabulary", "Image fit", "Runs on", "Loaded in"})
        EXPECT_TRUE(labels.contains(expected)) << expected;
}

TEST(ModelSession, CancelStopsTheLoadAndKeepsNoModel) {
    JobManager jobs;
    ModelSession session(&jobs);
    QSignalSpy cancelled(&session, &ModelSession::loadCancelled);
    QSignalSpy loaded(&session, &ModelSession::loaded);
    session.load(QString::fromStdString(fixturePath("tiny-llava-hf")));
    session.cancelLoad();
    EXPECT_EQ(cancelled.count(), 1);
    ASSERT_TRUE(sdrpn::test::waitForIdle(&jobs));
    EXPECT_EQ(loaded.count(), 0);
    EXPECT_EQ(session.state(), ModelSession::State::Empty);
    EXPECT_EQ(session.pipelineModel(), nullptr);
    EXPECT_FALSE(session.canAnswer());
}

TEST(ModelSession, LoadModelFolderNamesWhatIsWrong) {
    auto missing = loadModelFolder("/nonexistent/model", {}, sdrpn::JobContext::none());
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.message().find("/nonexistent/model"), std::string::npos);
    sdrpn::JobContext cancelled;
    cancelled.requestCancel();
    EXPECT_TRUE(loadModelFolder(fixturePath("tiny-llava-hf"), {}, cancelled).status().cancelled());
}

TEST(ModelSession, ANewLoadSupersedesTheOneInFlight) {
    JobManager jobs;
    ModelSession session(&jobs);
    QSignalSpy loaded(&session, &ModelSession::loaded);
    QSignalSpy cancelled(&session, &ModelSession::loadCancelled);
    session.load(QString::fromStdString(fixturePath("tiny-qwen2_5-vl")));
    session.load(QString::fromStdString(fixturePath("tiny-llava-hf")));
    EXPECT_EQ(cancelled.count(), 1);
    ASSERT_TRUE(sdrpn::test::waitForIdle(&jobs));
    ASSERT_EQ(loaded.count(), 1);
    EXPECT_TRUE(loaded.at(0).at(0).toString().endsWith("tiny-llava-hf"));
    EXPECT_EQ(session.card()->modelType, "llava");
}
