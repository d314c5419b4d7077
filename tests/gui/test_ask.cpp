// Asking from the studio with the tiny LLaVA fixture: the model loads for answering, the answer streams into
// the Ask panel with the time per stage, the attention overlay lands on the original image (centre crop:
// only the visible region), changing layer / head / query recomputes without a job, Stop cancels, and
// asking without a model or an image says why.
#include <fstream>

#include <QSignalSpy>
#include <QTest>

#include "app/attention_controller.h"
#include "core/io/tensor_io.h"
#include "app/main_window.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/window_test_support.h"
#include "tests/support/test_support.h"
#include "widgets/ask_panel.h"
#include "widgets/attention_panel.h"
#include "widgets/heatmap_overlay.h"
#include "widgets/image_view.h"
#include "widgets/layer_strip.h"

namespace {

using sdrpn::test::fixturePath;
using sdrpn::test::noSettings;
using sdrpn::test::qs;
using sdrpn::test::readyWindow;
using sdrpn::test::waitForIdle;

}  // namespace

TEST(Ask, AnswersStreamsAndDrawsTheMapsOnTheImage) {
    auto window = readyWindow();
    ASSERT_EQ(window->modelSession()->state(), ModelSession::State::Ready)
        << window->lastError().toStdString();
    ASSERT_NE(window->modelSession()->pipelineModel(), nullptr);
    EXPECT_TRUE(window->askPanel()->isAskAvailable());
    // The card shows what the loaded backbone reports.
    EXPECT_TRUE(window->modelCardPanel()->displayedText().contains("Runs on: "))
        << window->modelCardPanel()->displayedText().toStdString();

    AskSession* asks = window->askSession();
    QSignalSpy pieces(asks, &AskSession::textReceived);
    QSignalSpy answered(asks, &AskSession::answered);
    window->askPanel()->setMaxNewTokens(6);
    ASSERT_TRUE(window->ask("What is written on the sign?"));
    EXPECT_TRUE(window->askPanel()->isBusy());
    ASSERT_TRUE(answered.wait(60000)) << window->lastError().toStdString();
    EXPECT_FALSE(window->askPanel()->isBusy());

    const auto result = asks->result();
    ASSERT_NE(result, nullptr);
    EXPECT_FALSE(result->answer.isEmpty());
    EXPECT_EQ(window->askPanel()->answer(), result->answer);
    EXPECT_GE(pieces.count(), 1);
    QString streamed;
    for (const auto& args : std::as_const(pieces)) streamed += args.at(0).toString();
    EXPECT_EQ(streamed.trimmed(), result->answer.trimmed());
    EXPECT_TRUE(window->askPanel()->info().contains("prefill")) << window->askPanel()->info().toStdString();
    EXPECT_TRUE(window->askPanel()->info().contains("decode"));

    // The overlay: 24 × 24 cells over the visible centre 480 × 480 of the 640 × 480 image (x 80 .. 560).
    const auto overlay = window->heatmapOverlay();
    ASSERT_FALSE(overlay->isEmpty());
    EXPECT_EQ(overlay->rows(), 24);
    EXPECT_EQ(overlay->cols(), 24);
    EXPECT_EQ(overlay->cells().front(), QRectF(80, 0, 20, 20));
    EXPECT_EQ(overlay->cells().back(), QRectF(540, 460, 20, 20));
    EXPECT_FALSE(overlay->cellAt(QPointF(40, 200)).has_value());  // the cropped-off side
    const auto range = overlay->valueRange();
    EXPECT_GT(range.second, range.first);
    EXPECT_EQ(window->attentionPanel()->layerStrip()->count(), 6);  // one thumbnail per layer
    EXPECT_FALSE(window->attentionPanel()->summary().isEmpty());
    // The hover read-out names the cell, the layer and the head.
    const QString readOut = window->cellReadOut(QPoint(85, 5));
    EXPECT_TRUE(readOut.contains("cell (0, 0)")) << readOut.toStdString();
    EXPECT_TRUE(readOut.contains("layer")) << readOut.toStdString();
    EXPECT_TRUE(window->cellReadOut(QPoint(10, 10)).isEmpty());

    // Re-selecting layer, head and query recomputes from the kept maps: no job runs.
    QSignalSpy jobs(window->jobManager(), &JobManager::jobAdded);
    QSignalSpy mapChanged(window->attention(), &AttentionController::mapChanged);
    AttentionPanel* panel = window->attentionPanel();
    const std::vector<float> before = overlay->values();
    const int layer = panel->layerIndex();
    panel->setLayerIndex(layer == 0 ? 1 : 0);
    EXPECT_NE(overlay->values(), before);
    const std::vector<float> otherLayer = overlay->values();
    QTest::keyClick(panel->layerStrip(), Qt::Key_Right);
    EXPECT_NE(overlay->values(), otherLayer);
    const std::vector<float> beforeHead = overlay->values();
    panel->setHeadIndex(2);
    EXPECT_NE(overlay->values(), beforeHead);
    EXPECT_EQ(window->attention()->selection().head, 2);
    const std::vector<float> beforeQuery = overlay->values();
    panel->setQueryIndex(int(QueryChoice::LastPrompt));
    EXPECT_NE(overlay->values(), beforeQuery);
    EXPECT_GE(mapChanged.count(), 4);

    // The look (smooth, grid lines, colour map) changes the drawing, not the values.
    const std::vector<float> shown = overlay->values();
    HeatmapStyle style = panel->style();
    style.smooth = true;
    style.gridLines = true;
    style.colorMap = ColorMap::Inferno;
    panel->setStyle(style);
    EXPECT_EQ(overlay->style(), style);
    EXPECT_EQ(overlay->values(), shown);
    const QString shots = qEnvironmentVariable("SDRPN_TEST_SHOTS");  // to look at the smooth overlay
    if (!shots.isEmpty()) (void)window->grab().save(shots + "/ask_smooth.png");
    EXPECT_EQ(jobs.count(), 0);
    EXPECT_FALSE(window->isBusy());

    // A new image drops the old answer's maps.
    QSignalSpy imageLoaded(window.get(), &MainWindow::imageLoaded);
    window->openImage(qs(fixturePath("tiny-llava-hf/image_336.png")));
    ASSERT_TRUE(imageLoaded.wait(20000));
    EXPECT_TRUE(overlay->isEmpty());
    EXPECT_EQ(asks->result(), nullptr);
}

TEST(Ask, ASessionKeepsTheQuestionAndTheAnswer) {
    const QString path = qs(sdrpn::test::scratchDir("ask_session")) + "/answered.sdrpn.json";
    QString answer;
    {
        auto window = readyWindow();
        QSignalSpy answered(window->askSession(), &AskSession::answered);
        window->askPanel()->setMaxNewTokens(4);
        ASSERT_TRUE(window->ask("What is written on the sign?"));
        ASSERT_TRUE(answered.wait(60000)) << window->lastError().toStdString();
        answer = window->askPanel()->answer();
        ASSERT_FALSE(answer.isEmpty());
        ASSERT_TRUE(window->saveSession(path));
    }
    MainWindow restored(noSettings());
    restored.show();
    QSignalSpy done(&restored, &MainWindow::sessionRestored);
    ASSERT_TRUE(restored.openSession(path));
    ASSERT_TRUE(done.count() == 1 || done.wait(60000));
    EXPECT_EQ(restored.askPanel()->question(), QStringLiteral("What is written on the sign?"));
    EXPECT_EQ(restored.askPanel()->answer(), answer);
    // The maps come back with the session (its sidecar), without asking again.
    EXPECT_FALSE(restored.heatmapOverlay()->isEmpty());
    EXPECT_TRUE(restored.askPanel()->isAskAvailable());
}

TEST(Ask, StopCancelsTheAnswer) {
    auto window = readyWindow();
    ASSERT_NE(window->modelSession()->pipelineModel(), nullptr) << window->lastError().toStdString();
    AskSession* asks = window->askSession();
    QSignalSpy pieces(asks, &AskSession::textReceived);
    QSignalSpy stopped(asks, &AskSession::stopped);
    QSignalSpy answered(asks, &AskSession::answered);
    QSignalSpy finished(window->jobManager(), &JobManager::jobFinished);
    // Long enough that it cannot end on its own before Stop (no end-of-answer token either).
    AskRequest request;
    request.question = "Describe the image.";
    request.maxNewTokens = 1200;
    request.stopAtEos = false;
    const JobId job =
        asks->ask(window->modelSession()->pipelineModel(), window->imageView()->image(), request);
    ASSERT_NE(job, 0u);
    EXPECT_TRUE(window->askPanel()->isBusy());
    ASSERT_TRUE(pieces.wait(60000));
    window->stopAnswer();
    ASSERT_TRUE(stopped.wait(60000));
    EXPECT_EQ(answered.count(), 0);
    EXPECT_FALSE(asks->isRunning());
    EXPECT_FALSE(window->askPanel()->isBusy());
    EXPECT_TRUE(window->askPanel()->info().contains("Stopped")) << window->askPanel()->info().toStdString();
    EXPECT_FALSE(window->askPanel()->answer().isEmpty());  // what arrived before Stop stays
    EXPECT_TRUE(window->heatmapOverlay()->isEmpty());
    ASSERT_GE(finished.count(), 1);
    EXPECT_EQ(finished.last().at(0).value<JobId>(), job);
    EXPECT_EQ(finished.last().at(1).value<JobManager::JobState>(), JobManager::JobState::Cancelled);
}

TEST(Ask, ClosingTheWindowWhileAnsweringCancelsAndWaits) {
    auto window = readyWindow();
    ASSERT_NE(window->modelSession()->pipelineModel(), nullptr) << window->lastError().toStdString();
    QSignalSpy pieces(window->askSession(), &AskSession::textReceived);
    AskRequest request;
    request.question = "Describe the image.";
    request.maxNewTokens = 1200;
    request.stopAtEos = false;
    window->askSession()->ask(window->modelSession()->pipelineModel(), window->imageView()->image(), request);
    ASSERT_TRUE(pieces.wait(60000));
    QStringList asked;
    window->setConfirmCloseHandler([&asked](const QStringList& jobs) {
        asked = jobs;
        return true;  // Quit
    });
    EXPECT_TRUE(window->close());
    EXPECT_FALSE(asked.isEmpty());
    EXPECT_EQ(window->jobManager()->activeCount(), 0);
    window.reset();
    QCoreApplication::processEvents();  // pieces still queued for the destroyed session are dropped
}

TEST(Ask, SaysWhyWhenThereIsNoModelOrNoImage) {
    MainWindow window(noSettings());
    window.show();
    QSignalSpy jobs(window.jobManager(), &JobManager::jobAdded);
    EXPECT_FALSE(window.askPanel()->isAskAvailable());
    EXPECT_FALSE(window.ask("What is written on the sign?"));
    EXPECT_TRUE(window.askPanel()->info().contains("model")) << window.askPanel()->info().toStdString();
    EXPECT_EQ(jobs.count(), 0);

    // A model but no image.
    QSignalSpy loaded(window.modelSession(), &ModelSession::loaded);
    window.openModel(qs(fixturePath("tiny-llava-hf")));
    ASSERT_TRUE(loaded.wait(60000)) << window.lastError().toStdString();
    EXPECT_FALSE(window.askPanel()->isAskAvailable());
    EXPECT_TRUE(window.askPanel()->askUnavailableReason().contains("image"));
    const int before = jobs.count();
    EXPECT_FALSE(window.ask("What is written on the sign?"));
    EXPECT_TRUE(window.askPanel()->info().contains("image")) << window.askPanel()->info().toStdString();
    EXPECT_EQ(jobs.count(), before);

    // With an image, Ask is available; an empty question is refused with a message.
    QSignalSpy imageLoaded(&window, &MainWindow::imageLoaded);
    window.openImage(qs(fixturePath("tiny-llava-hf/image_640x480.png")));
    ASSERT_TRUE(imageLoaded.wait(20000));
    EXPECT_TRUE(window.askPanel()->isAskAvailable());
    window.setQuestion("   ");
    EXPECT_FALSE(window.ask());
    EXPECT_TRUE(window.askPanel()->info().contains("question"));
}

TEST(Ask, AModelThatCannotAnswerFailsToLoadWithAClearMessage) {
    // A folder of a model family the studio has no backbone for: its type is named.
    const std::string dir = sdrpn::test::scratchDir("unknown_family");
    std::ofstream(dir + "/config.json") << R"({"model_type": "mystery_vl", "architectures": ["MysteryVL"]})";
    sdrpn::io::saveTensors(dir + "/model.safetensors", {{"w", torch::zeros({2})}});
    MainWindow window(noSettings());
    window.show();
    QSignalSpy failed(window.modelSession(), &ModelSession::loadFailed);
    window.openModel(qs(dir));
    ASSERT_TRUE(failed.wait(60000));
    EXPECT_EQ(window.modelSession()->state(), ModelSession::State::Failed);
    EXPECT_TRUE(window.lastError().contains("mystery_vl")) << window.lastError().toStdString();
    EXPECT_FALSE(window.askPanel()->isAskAvailable());
}
