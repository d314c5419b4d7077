// A saved session holds everything: image, question, answers, label and RoI settings, the RPN and the
// captured maps (sidecar <session>.maps.safetensors). Reopened in a new window, the raw, denoised and RoI
// views show the same maps, labels and RoI, without running the model.
#include <QFileInfo>
#include <QJsonArray>
#include <QSignalSpy>

#include "app/attention_controller.h"
#include "app/main_window.h"
#include "app/threshold_controller.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/window_test_support.h"
#include "tests/support/test_support.h"
#include "widgets/ask_panel.h"
#include "widgets/attention_panel.h"
#include "widgets/heatmap_overlay.h"

namespace {

using sdrpn::test::fixturePath;
using sdrpn::test::noSettings;
using sdrpn::test::qs;
using sdrpn::test::scratchDir;
using sdrpn::test::waitForIdle;

}  // namespace

TEST(SessionRoundTrip, ReopeningRestoresAnswersSettingsMapsAndRoiWithoutAsking) {
    auto window = std::make_unique<MainWindow>(noSettings());
    window->resize(1400, 900);
    window->show();
    window->openModel(qs(fixturePath("tiny-llava-hf")));
    window->openImage(qs(fixturePath("tiny-llava-hf/image_640x480.png")));
    ASSERT_TRUE(waitForIdle(window->jobManager()));
    ASSERT_NE(window->modelSession()->pipelineModel(), nullptr) << window->lastError().toStdString();

    // Plain answer first: the maps.
    QSignalSpy answered(window->askSession(), &AskSession::answered);
    window->askPanel()->setMaxNewTokens(4);
    ASSERT_TRUE(window->ask("What is in the picture?"));
    ASSERT_TRUE(answered.wait(60000)) << window->lastError().toStdString();
    // Then an SD-RPN answer with the untrained twig: the RoI.
    QSignalSpy rpnLoaded(window->rpnSession(), &RpnSession::loaded);
    ASSERT_TRUE(window->initRpnFromModel());
    ASSERT_TRUE(rpnLoaded.wait(60000)) << window->lastError().toStdString();
    QSignalSpy roiAnswered(window->rpnSession(), &RpnSession::answered);
    window->askPanel()->setSdrpnEnabled(true);
    ASSERT_TRUE(window->ask("What is in the picture?"));
    ASSERT_TRUE(roiAnswered.wait(60000)) << window->lastError().toStdString();

    // Tuned settings and a chosen layer / head.
    sdrpn::LabelSettings label = window->thresholds()->labelSettings();
    label.foregroundRatio = 0.35;
    window->thresholds()->setLabelSettings(label);
    sdrpn::RoiSettings roi = window->thresholds()->roiSettings();
    window->thresholds()->setRoiSettings(roi);
    // A set of heads and one answer token (the last one fed back).
    ASSERT_TRUE(window->attentionPanel()->setHeadSet({0, 2}));
    const int answerRows = int(queryRows(window->attention()->result()->maps, QueryChoice::Answer).size());
    ASSERT_GE(answerRows, 1);
    window->attentionPanel()->setQueryIndex(int(QueryChoice::AnswerToken));
    window->attentionPanel()->setAnswerTokenIndex(answerRows - 1);
    window->attentionPanel()->setLayerIndex(2);
    ASSERT_EQ(window->attention()->selection().chosenHeads(), (std::vector<int>{0, 2}));
    ASSERT_EQ(window->attention()->selection().answerToken, answerRows - 1);

    const auto maps = window->attention()->result();
    ASSERT_NE(maps, nullptr);
    ASSERT_NE(window->thresholds()->roiAnswer(), nullptr);
    ASSERT_NE(window->thresholds()->roi(), nullptr);
    const std::vector<float> shown = window->heatmapOverlay()->values();
    const LabelCounts counts = window->thresholds()->labelCounts();
    const QString answer = window->askPanel()->answer();
    const QString roiAnswer = window->askPanel()->roiAnswer();
    const auto roiBox = window->thresholds()->roi()->sourceBox;
    const auto roiLogits = window->thresholds()->roiAnswer()->roiLogits;

    const QString path = qs(scratchDir("session-roundtrip")) + "/all.sdrpn.json";
    ASSERT_TRUE(window->saveSession(path)) << window->lastError().toStdString();
    EXPECT_TRUE(QFileInfo::exists(sessionMapsPath(path))) << sessionMapsPath(path).toStdString();
    window.reset();

    auto again = std::make_unique<MainWindow>(noSettings());
    again->resize(1400, 900);
    again->show();
    QSignalSpy restored(again.get(), &MainWindow::sessionRestored);
    QSignalSpy asks(again->askSession(), &AskSession::started);
    QSignalSpy rpnAsks(again->rpnSession(), &RpnSession::started);
    ASSERT_TRUE(again->openSession(path));
    ASSERT_TRUE(restored.wait(60000)) << again->lastError().toStdString();
    EXPECT_EQ(asks.count(), 0);
    EXPECT_EQ(rpnAsks.count(), 0);

    // The maps, exactly.
    const auto back = again->attention()->result();
    ASSERT_NE(back, nullptr);
    EXPECT_EQ(back->question, maps->question);
    EXPECT_EQ(back->imageSize, maps->imageSize);
    EXPECT_EQ(back->maps.heads, maps->maps.heads);
    EXPECT_EQ(back->maps.imageKeys, maps->maps.imageKeys);
    EXPECT_EQ(back->maps.imageKeyPositions, maps->maps.imageKeyPositions);
    ASSERT_EQ(back->maps.rows.size(), maps->maps.rows.size());
    for (std::size_t i = 0; i < maps->maps.rows.size(); ++i) {
        EXPECT_EQ(back->maps.rows[i].position, maps->maps.rows[i].position);
        EXPECT_EQ(back->maps.rows[i].token, maps->maps.rows[i].token);
        EXPECT_EQ(back->maps.rows[i].kind, maps->maps.rows[i].kind);
    }
    ASSERT_EQ(back->maps.layers.size(), maps->maps.layers.size());
    for (std::size_t i = 0; i < maps->maps.layers.size(); ++i) {
        EXPECT_EQ(back->maps.layers[i].layer, maps->maps.layers[i].layer);
        EXPECT_EQ(back->maps.layers[i].values, maps->maps.layers[i].values);
    }
    EXPECT_EQ(back->geometry.sourceWidth, maps->geometry.sourceWidth);
    EXPECT_EQ(back->geometry.cropLeft, maps->geometry.cropLeft);
    EXPECT_EQ(back->geometry.scaleX, maps->geometry.scaleX);

    // The same view: layer, heads, query token, the drawn values; the labels; the RoI.
    EXPECT_EQ(again->attentionPanel()->layerIndex(), 2);
    EXPECT_EQ(again->attentionPanel()->headChoice(), AttentionPanel::HeadChoice::Set);
    EXPECT_EQ(again->attentionPanel()->headSet(), (QList<int>{0, 2}));
    EXPECT_EQ(again->attentionPanel()->queryIndex(), int(QueryChoice::AnswerToken));
    EXPECT_EQ(again->attentionPanel()->answerTokenIndex(), answerRows - 1);
    EXPECT_EQ(again->heatmapOverlay()->values(), shown);
    EXPECT_DOUBLE_EQ(again->thresholds()->labelSettings().foregroundRatio, 0.35);
    EXPECT_EQ(again->thresholds()->roiSettings().toJson(), roi.toJson());
    EXPECT_TRUE(again->thresholds()->hasLabels());
    EXPECT_EQ(again->thresholds()->labelCounts(), counts);
    ASSERT_NE(again->thresholds()->roiAnswer(), nullptr);
    EXPECT_EQ(again->thresholds()->roiAnswer()->roiLogits, roiLogits);
    ASSERT_NE(again->thresholds()->roi(), nullptr);
    EXPECT_EQ(again->thresholds()->roi()->sourceBox.x0, roiBox.x0);
    EXPECT_EQ(again->thresholds()->roi()->sourceBox.y1, roiBox.y1);
    EXPECT_TRUE(again->isRoiViewVisible());

    // Answers, question, RPN.
    EXPECT_EQ(again->askPanel()->answer(), answer);
    EXPECT_EQ(again->askPanel()->roiAnswer(), roiAnswer);
    EXPECT_EQ(again->askPanel()->question(), "What is in the picture?");
    EXPECT_TRUE(again->rpnSession()->hasRpn());
    EXPECT_TRUE(again->rpnSession()->isUntrained());
    EXPECT_EQ(again->imagePath(),
              QFileInfo(qs(fixturePath("tiny-llava-hf/image_640x480.png"))).absoluteFilePath());
}

TEST(SessionRoundTrip, ASessionWithoutMapsWritesNoSidecar) {
    StudioSession s;
    s.question = "q";
    s.answer = "a";
    const QString path = qs(scratchDir("session-nomaps")) + "/plain.sdrpn.json";
    QString error;
    ASSERT_TRUE(saveSessionFile(path, s, &error)) << error.toStdString();
    EXPECT_FALSE(QFileInfo::exists(sessionMapsPath(path)));
    const auto back = loadSessionFile(path, &error);
    ASSERT_TRUE(back) << error.toStdString();
    EXPECT_EQ(back->answer, "a");
    EXPECT_EQ(back->maps, nullptr);
}

TEST(SessionRoundTrip, TheAttentionSelectionSurvivesTheJson) {
    StudioSession s;
    s.layerSlot = 3;
    s.heads = {0, 2, 5};
    s.query = int(QueryChoice::AnswerToken);
    s.answerToken = 2;
    QString error;
    auto back = sessionFromJson(sessionToJson(s), {}, &error);
    ASSERT_TRUE(back) << error.toStdString();
    EXPECT_EQ(back->layerSlot, 3);
    EXPECT_EQ(back->head, -1);
    EXPECT_EQ(back->heads, (std::vector<int>{0, 2, 5}));
    EXPECT_FALSE(back->groundingHeads);
    EXPECT_EQ(back->query, int(QueryChoice::AnswerToken));
    EXPECT_EQ(back->answerToken, 2);

    StudioSession one;
    one.head = 4;
    one.groundingHeads = false;
    back = sessionFromJson(sessionToJson(one), {}, &error);
    ASSERT_TRUE(back) << error.toStdString();
    EXPECT_EQ(back->head, 4);
    EXPECT_TRUE(back->heads.empty());
    EXPECT_EQ(back->answerToken, -1);

    StudioSession grounding;
    grounding.groundingHeads = true;
    back = sessionFromJson(sessionToJson(grounding), {}, &error);
    ASSERT_TRUE(back) << error.toStdString();
    EXPECT_TRUE(back->groundingHeads);
    EXPECT_EQ(back->head, -1);
}

TEST(SessionRoundTrip, AnOlderSelectionWithOneHeadStillOpens) {
    // What version 2 files held before head sets: "head" alone.
    const QJsonObject json{{"format", kSessionFormat},
                           {"version", 2},
                           {"question", "q"},
                           {"selection", QJsonObject{{"layer", 1}, {"head", 3}, {"query", 2}}}};
    QString error;
    const auto back = sessionFromJson(json, {}, &error);
    ASSERT_TRUE(back) << error.toStdString();
    EXPECT_EQ(back->layerSlot, 1);
    EXPECT_EQ(back->head, 3);
    EXPECT_TRUE(back->heads.empty());
    EXPECT_FALSE(back->groundingHeads);
    EXPECT_EQ(back->query, 2);
    EXPECT_EQ(back->answerToken, -1);

    // A malformed set of heads names the key.
    QJsonObject bad = json;
    bad["selection"] = QJsonObject{{"heads", QJsonArray{0, "two"}}};
    EXPECT_FALSE(sessionFromJson(bad, {}, &error));
    EXPECT_TRUE(error.contains("selection.heads")) << error.toStdString();
}
