// The attention explorer's head and query choices: the head picker (mean of heads, the label settings'
// grounding heads of the layer, a typed set of heads, one head) and the one-answer-token query, first on
// the panel alone, then through the AttentionController on hand-made maps, then in the window with the
// fixture model, where the grounding entry follows the threshold panel's grounding layer.
#include <memory>

#include <QComboBox>
#include <QLabel>
#include <QLineEdit>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStandardItemModel>
#include <QTest>

#include "app/attention_controller.h"
#include "app/main_window.h"
#include "app/threshold_controller.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/hand_maps.h"
#include "tests/gui/window_test_support.h"
#include "tests/support/test_support.h"
#include "widgets/ask_panel.h"
#include "widgets/attention_panel.h"
#include "widgets/heatmap_overlay.h"
#include "widgets/image_view.h"
#include "widgets/threshold_panel.h"

using sdrpn::models::AttentionMaps;
using sdrpn::models::ImageFit;
using sdrpn::models::QueryKind;

namespace {

// The head picker's combo box and its "Set of heads…" line edit.
QComboBox* headCombo(AttentionPanel& panel) {
    for (QComboBox* combo : panel.findChildren<QComboBox*>())
        if (combo->findText(QStringLiteral("Mean of heads")) >= 0) return combo;
    return nullptr;
}

bool entryEnabled(QComboBox* combo, int index) {
    const auto* model = qobject_cast<QStandardItemModel*>(combo->model());
    return model && model->item(index) && model->item(index)->isEnabled();
}

// 2 layers (decoder layers 3 and 5), 4 heads, a 2 × 2 grid; rows: last prompt, 3 answer tokens.
// value(layer slot, head, row, key) = 100·slot + kHandValues[head][row][key] (hand_maps.h).
std::shared_ptr<QuestionResult> handMadeResult() {
    auto result = std::make_shared<QuestionResult>();
    result->imageSize = QSize(28, 28);
    result->geometry = sdrpn::models::makeGridGeometry(28, 28, ImageFit::Pad, 28, 14);
    result->maps = sdrpn::test::handMadeMaps(2);
    return result;
}

// The mean over `heads` × `rows` of one layer slot, straight from AttentionMaps::at.
std::vector<float> handMean(const AttentionMaps& maps, int slot, const std::vector<int>& heads,
                            const std::vector<std::size_t>& rows) {
    std::vector<float> out;
    for (std::int64_t key = 0; key < maps.imageKeys; ++key) {
        double sum = 0;
        for (int h : heads)
            for (std::size_t r : rows) sum += maps.at(std::size_t(slot), h, r, key);
        out.push_back(float(sum / double(heads.size() * rows.size())));
    }
    return out;
}

void expectNear(const std::vector<float>& got, const std::vector<float>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t i = 0; i < got.size(); ++i)
        EXPECT_NEAR(got[i], want[i], 1e-5f * (1 + std::abs(want[i])));
}

}  // namespace

TEST(HeadSelection, HeadListsParseAndFormat) {
    QString error;
    EXPECT_EQ(AttentionPanel::parseHeadList("0,3,5-7", 8, &error), (QList<int>{0, 3, 5, 6, 7}));
    EXPECT_EQ(AttentionPanel::parseHeadList(" 2 , 0,,2 ", 8, &error), (QList<int>{0, 2}));
    EXPECT_EQ(AttentionPanel::parseHeadList("4 - 5", 8, &error), (QList<int>{4, 5}));

    EXPECT_FALSE(AttentionPanel::parseHeadList("0,x", 8, &error));
    EXPECT_TRUE(error.contains("x")) << error.toStdString();
    EXPECT_FALSE(AttentionPanel::parseHeadList("1,9", 8, &error));
    EXPECT_TRUE(error.contains("9") && error.contains("out of range") && error.contains("7"))
        << error.toStdString();
    EXPECT_FALSE(AttentionPanel::parseHeadList("6-3", 8, &error));
    EXPECT_TRUE(error.contains("backwards")) << error.toStdString();
    EXPECT_FALSE(AttentionPanel::parseHeadList(" , ", 8, &error));
    EXPECT_FALSE(error.isEmpty());
    EXPECT_FALSE(AttentionPanel::parseHeadList("-1", 8, &error));
    EXPECT_FALSE(AttentionPanel::parseHeadList("99999999999", 8, &error));

    EXPECT_EQ(AttentionPanel::formatHeadList({7, 0, 1, 2, 3}), QStringLiteral("0-3,7"));
    EXPECT_EQ(AttentionPanel::formatHeadList({0, 2}), QStringLiteral("0,2"));
    const QList<int> heads{1, 2, 4, 5, 6, 9};
    EXPECT_EQ(AttentionPanel::parseHeadList(AttentionPanel::formatHeadList(heads), 10), heads);
}

TEST(HeadSelection, PanelWalksTheEnabledEntriesAndDescribesTheChoice) {
    AttentionPanel panel;
    panel.setHeadCount(4);
    QComboBox* combo = headCombo(panel);
    ASSERT_NE(combo, nullptr);
    EXPECT_EQ(combo->count(), 3 + 4);
    EXPECT_EQ(panel.headChoice(), AttentionPanel::HeadChoice::Mean);
    EXPECT_EQ(panel.headDescription(), QStringLiteral("mean of heads"));

    // No grounding heads: the entry is disabled and the walk skips it.
    EXPECT_FALSE(entryEnabled(combo, 1));
    panel.selectNextHead();
    EXPECT_EQ(panel.headChoice(), AttentionPanel::HeadChoice::Set);
    // The set starts from the heads shown before (the mean: every head).
    EXPECT_EQ(panel.headSet(), (QList<int>{0, 1, 2, 3}));
    panel.selectNextHead();
    EXPECT_EQ(panel.headIndex(), 0);
    EXPECT_EQ(panel.headDescription(), QStringLiteral("head 0"));
    panel.selectPreviousHead();
    panel.selectPreviousHead();
    EXPECT_EQ(panel.headChoice(), AttentionPanel::HeadChoice::Mean);

    // Grounding heads for this layer: enabled, listed in the tooltip, on the walk.
    QSignalSpy changed(&panel, &AttentionPanel::selectionChanged);
    panel.setGroundingHeads({3, 1});
    EXPECT_EQ(changed.count(), 0);  // giving the heads selects nothing
    EXPECT_TRUE(entryEnabled(combo, 1));
    EXPECT_TRUE(combo->itemData(1, Qt::ToolTipRole).toString().contains("1,3"))
        << combo->itemData(1, Qt::ToolTipRole).toString().toStdString();
    panel.selectNextHead();
    EXPECT_EQ(panel.headChoice(), AttentionPanel::HeadChoice::Grounding);
    EXPECT_EQ(panel.headIndex(), -1);
    EXPECT_EQ(panel.headDescription(), QStringLiteral("grounding heads 1,3"));
    EXPECT_EQ(changed.count(), 1);
    // The layer changes to one without: the choice stays, the entry is disabled, the description says so.
    panel.clearGroundingHeads();
    EXPECT_FALSE(entryEnabled(combo, 1));
    EXPECT_EQ(panel.headChoice(), AttentionPanel::HeadChoice::Grounding);
    EXPECT_TRUE(panel.headDescription().startsWith("mean of heads")) << panel.headDescription().toStdString();

    EXPECT_TRUE(panel.setHeadSet({2, 0}));
    EXPECT_EQ(panel.headDescription(), QStringLiteral("heads 0,2"));
    EXPECT_FALSE(panel.setHeadSet({1, 4}));  // head 4 of 4: out of range, no change
    EXPECT_EQ(panel.headSet(), (QList<int>{0, 2}));
    panel.setHeadIndex(3);
    EXPECT_EQ(panel.headDescription(), QStringLiteral("head 3"));
    EXPECT_TRUE(panel.headSet().isEmpty());
    panel.selectNextHead();  // the last entry: stays
    EXPECT_EQ(panel.headIndex(), 3);

    // Fewer heads: a set that no longer fits gives way to the mean.
    EXPECT_TRUE(panel.setHeadSet({0, 3}));
    panel.setHeadCount(2);
    EXPECT_EQ(panel.headChoice(), AttentionPanel::HeadChoice::Mean);
}

TEST(HeadSelection, TypedSetIsValidatedWithAClearMessage) {
    AttentionPanel panel;
    panel.resize(900, 220);
    panel.show();
    panel.setHeadCount(8);
    QComboBox* combo = headCombo(panel);
    ASSERT_NE(combo, nullptr);
    auto* edit = panel.findChild<QLineEdit*>(QStringLiteral("headSetEdit"));
    ASSERT_NE(edit, nullptr);
    EXPECT_FALSE(edit->isVisible());

    combo->setCurrentIndex(combo->findText(QStringLiteral("Set of heads…")));
    EXPECT_TRUE(edit->isVisible());
    QSignalSpy changed(&panel, &AttentionPanel::selectionChanged);
    edit->clear();
    QTest::keyClicks(edit, "0,2");
    EXPECT_EQ(panel.headSet(), (QList<int>{0, 2}));
    EXPECT_GE(changed.count(), 1);

    // Bad text: a message, and the last good set stays on show.
    const int before = changed.count();
    QTest::keyClicks(edit, ",9");
    EXPECT_EQ(panel.headSet(), (QList<int>{0, 2}));
    EXPECT_EQ(changed.count(), before);
    QLabel* message = nullptr;
    for (QLabel* label : panel.findChildren<QLabel*>())
        if (label->isVisible() && label->text().contains("out of range")) message = label;
    ASSERT_NE(message, nullptr);
    EXPECT_TRUE(message->text().contains("9") && message->text().contains("0 to 7"))
        << message->text().toStdString();
    edit->setText("1-3");
    EXPECT_EQ(panel.headSet(), (QList<int>{1, 2, 3}));
    EXPECT_FALSE(message->isVisible());
}

TEST(HeadSelection, OneAnswerTokenHasASpinBoxForThatChoiceOnly) {
    AttentionPanel panel;
    panel.resize(900, 220);
    panel.show();
    panel.setQueryOptions({"last", "question", "answer", "one answer token"}, {true, true, true, true}, 2);
    panel.setAnswerTokenChoice(3, 5);
    auto* spin = panel.findChild<QSpinBox*>(QStringLiteral("answerTokenSpin"));
    ASSERT_NE(spin, nullptr);
    EXPECT_FALSE(spin->isVisible());
    EXPECT_EQ(spin->maximum(), 4);

    QSignalSpy changed(&panel, &AttentionPanel::selectionChanged);
    spin->setValue(2);  // not the token query: nothing to recompute
    EXPECT_EQ(changed.count(), 0);
    panel.setQueryIndex(3);
    EXPECT_TRUE(spin->isVisible());
    EXPECT_EQ(changed.count(), 1);
    panel.setAnswerTokenIndex(4);
    EXPECT_EQ(panel.answerTokenIndex(), 4);
    EXPECT_EQ(changed.count(), 2);
    // Fewer tokens: the index is clamped into range.
    panel.setAnswerTokenChoice(3, 2);
    EXPECT_EQ(panel.answerTokenIndex(), 1);
    EXPECT_EQ(changed.count(), 3);
    panel.setQueryIndex(0);
    EXPECT_FALSE(spin->isVisible());
}

TEST(HeadSelection, ControllerAveragesTheChosenHeadsAndTheGroundingHeadsPerLayer) {
    ImageView view;
    AttentionPanel panel;
    AttentionController controller(&view, &panel);
    const auto result = handMadeResult();
    const AttentionMaps& maps = result->maps;
    controller.setResult(result);
    panel.setLayerIndex(0);  // decoder layer 3
    panel.setQueryIndex(int(QueryChoice::LastPrompt));
    const auto overlay = controller.overlay();
    expectNear(overlay->values(), handMean(maps, 0, {0, 1, 2, 3}, {0}));

    // A set of heads {0, 2}: its hand mean, not the mean of all.
    QSignalSpy changed(&controller, &AttentionController::mapChanged);
    ASSERT_TRUE(panel.setHeadSet({0, 2}));
    EXPECT_GE(changed.count(), 1);
    expectNear(overlay->values(), handMean(maps, 0, {0, 2}, {0}));
    EXPECT_TRUE(panel.summary().contains("heads 0,2")) << panel.summary().toStdString();
    // The cached per-layer grids follow: layer 5 with the same set.
    panel.setLayerIndex(1);
    expectNear(overlay->values(), handMean(maps, 1, {0, 2}, {0}));

    // One answer token: its row alone.
    panel.setQueryIndex(int(QueryChoice::AnswerToken));
    panel.setAnswerTokenIndex(1);
    expectNear(overlay->values(), handMean(maps, 1, {0, 2}, {2}));
    EXPECT_TRUE(panel.summary().contains("answer token 1")) << panel.summary().toStdString();
    const QString readOut = controller.readOut(QPoint(3, 3));
    EXPECT_TRUE(readOut.contains("cell (0, 0)") && readOut.contains("heads 0,2") &&
                readOut.contains("answer token 1"))
        << readOut.toStdString();
    panel.setAnswerTokenIndex(2);
    expectNear(overlay->values(), handMean(maps, 1, {0, 2}, {3}));

    // Grounding heads: layer 3 has {1, 3}, layer 5 none.
    panel.setQueryIndex(int(QueryChoice::LastPrompt));
    controller.setGroundingHeads({{3, {1, 3}}});
    EXPECT_FALSE(panel.hasGroundingHeads());  // layer 5 is shown
    panel.setLayerIndex(0);
    EXPECT_TRUE(panel.hasGroundingHeads());
    EXPECT_EQ(panel.groundingHeads(), (QList<int>{1, 3}));
    panel.selectGroundingHeads();
    expectNear(overlay->values(), handMean(maps, 0, {1, 3}, {0}));
    EXPECT_TRUE(panel.summary().contains("grounding heads 1,3")) << panel.summary().toStdString();
    // Layer 5 falls back to the mean, and says so.
    panel.setLayerIndex(1);
    EXPECT_FALSE(panel.hasGroundingHeads());
    expectNear(overlay->values(), handMean(maps, 1, {0, 1, 2, 3}, {0}));
    EXPECT_TRUE(panel.summary().contains("no grounding heads")) << panel.summary().toStdString();
    // New grounding heads recompute the grids at once; an empty list is every head of the layer.
    controller.setGroundingHeads({{3, {}}, {5, {2}}});
    expectNear(overlay->values(), handMean(maps, 1, {2}, {0}));
    panel.setLayerIndex(0);
    expectNear(overlay->values(), handMean(maps, 0, {0, 1, 2, 3}, {0}));

    // The label settings' groups: a layer's groups merge; an empty one means every head.
    const auto byLayer =
        AttentionController::headsByLayer({{14, {24, 13}}, {14, {26, 13}}, {2, {}}, {2, {1}}});
    EXPECT_EQ(byLayer.at(14), (std::vector<int>{13, 24, 26}));
    EXPECT_TRUE(byLayer.at(2).empty());
    EXPECT_EQ(byLayer.size(), 2u);
}

TEST(HeadSelection, WindowSetOfHeadsAndGroundingEntryFollowTheThresholds) {
    auto window = sdrpn::test::readyWindow();
    QSignalSpy answered(window->askSession(), &AskSession::answered);
    window->askPanel()->setMaxNewTokens(4);
    ASSERT_TRUE(window->ask("What is written on the sign?"));
    ASSERT_TRUE(answered.wait(60000)) << window->lastError().toStdString();
    AttentionPanel* panel = window->attentionPanel();
    const auto result = window->attention()->result();
    ASSERT_NE(result, nullptr);
    const AttentionMaps& maps = result->maps;
    ASSERT_GE(maps.heads, 3);
    ASSERT_GE(maps.layers.size(), 2u);

    // "Set of heads…" typed as "0,2": the overlay shows the hand mean of heads 0 and 2.
    panel->setQueryIndex(int(QueryChoice::LastPrompt));
    const int slot = panel->layerIndex();
    const std::vector<float> mean = window->heatmapOverlay()->values();
    QComboBox* combo = headCombo(*panel);
    ASSERT_NE(combo, nullptr);
    combo->setCurrentIndex(combo->findText(QStringLiteral("Set of heads…")));
    auto* edit = panel->findChild<QLineEdit*>(QStringLiteral("headSetEdit"));
    ASSERT_NE(edit, nullptr);
    edit->selectAll();
    QTest::keyClicks(edit, "0,2");
    ASSERT_EQ(panel->headSet(), (QList<int>{0, 2}));
    const std::vector<std::size_t> rows = queryRows(maps, QueryChoice::LastPrompt);
    const TokenGrid grid = window->attention()->tokenGrid();
    std::vector<float> hand;
    for (std::size_t cell = 0; cell < grid.cells(); ++cell) {
        double sum = 0;
        for (int h : {0, 2})
            for (std::size_t r : rows)
                sum += maps.at(std::size_t(slot), h, r, grid.firstKey + std::int64_t(cell));
        hand.push_back(float(sum / (2.0 * double(rows.size()))));
    }
    expectNear(window->heatmapOverlay()->values(), hand);
    EXPECT_NE(window->heatmapOverlay()->values(), mean);
    // With "Follow view" on, the denoised view's grounding is this layer with that set.
    ASSERT_TRUE(window->thresholdPanel()->followView());
    const std::vector<sdrpn::HeadGroup> followed = window->thresholds()->labelSettings().grounding;
    ASSERT_EQ(followed.size(), 1u);
    EXPECT_EQ(followed[0].layer, maps.layers[std::size_t(slot)].layer);
    EXPECT_EQ(followed[0].heads, (std::vector<int>{0, 2}));

    // The grounding entry follows the threshold settings' grounding layer.
    window->thresholdPanel()->setFollowView(false);
    const int otherSlot = slot == 0 ? 1 : 0;
    const int groundingLayer = maps.layers[std::size_t(otherSlot)].layer;
    sdrpn::LabelSettings label = window->thresholds()->labelSettings();
    label.grounding = {{groundingLayer, {1}}};
    window->thresholds()->setLabelSettings(label);
    ASSERT_EQ(window->thresholds()->labelSettings().grounding, label.grounding);
    EXPECT_FALSE(panel->hasGroundingHeads());
    EXPECT_FALSE(entryEnabled(combo, 1));
    panel->setLayerIndex(otherSlot);
    EXPECT_TRUE(panel->hasGroundingHeads());
    EXPECT_TRUE(entryEnabled(combo, 1));
    EXPECT_EQ(panel->groundingHeads(), QList<int>{1});
    panel->selectGroundingHeads();
    EXPECT_EQ(window->attention()->selection().chosenHeads(), std::vector<int>{1});
    EXPECT_TRUE(panel->summary().contains("grounding heads 1")) << panel->summary().toStdString();
    // Moving the grounding group to another layer moves the entry with it.
    label.grounding = {{maps.layers[std::size_t(slot)].layer, {0, 2}}};
    window->thresholds()->setLabelSettings(label);
    EXPECT_FALSE(panel->hasGroundingHeads());
    EXPECT_TRUE(panel->summary().contains("no grounding heads")) << panel->summary().toStdString();
    panel->setLayerIndex(slot);
    EXPECT_EQ(panel->groundingHeads(), (QList<int>{0, 2}));
    expectNear(window->heatmapOverlay()->values(), hand);
}
