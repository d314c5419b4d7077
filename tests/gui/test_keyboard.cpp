// The studio's keyboard: ←/→ scrub the layers and ↑/↓ the heads wherever the focus does not need the
// arrows itself (a slider keeps them), O / D / R toggle the heat-map overlay, the denoised view and the
// RoI view, and Help › Keyboard Shortcuts lists every shortcut.
#include <algorithm>

#include <QMessageBox>
#include <QPlainTextEdit>
#include <QSignalSpy>
#include <QSlider>
#include <QTest>

#include "app/attention_controller.h"
#include "app/main_window.h"
#include "app/threshold_controller.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/window_test_support.h"
#include "tests/support/test_support.h"
#include "widgets/ask_panel.h"
#include "widgets/attention_panel.h"
#include "widgets/image_view.h"
#include "widgets/layer_strip.h"
#include "widgets/threshold_panel.h"

namespace {

using sdrpn::test::fixturePath;
using sdrpn::test::qs;
using sdrpn::test::readyWindow;
using sdrpn::test::waitForIdle;

std::unique_ptr<MainWindow> answeredWindow() {
    auto window = readyWindow();
    QSignalSpy answered(window->askSession(), &AskSession::answered);
    window->askPanel()->setMaxNewTokens(4);
    EXPECT_TRUE(window->ask("What is written on the sign?"));
    EXPECT_TRUE(answered.wait(60000)) << window->lastError().toStdString();
    window->activateWindow();
    EXPECT_TRUE(QTest::qWaitForWindowActive(window.get()));
    return window;
}

}  // namespace

TEST(Keyboard, ArrowsScrubLayersAndHeads) {
    auto window = answeredWindow();
    AttentionPanel* panel = window->attentionPanel();
    ImageView* view = window->imageView();
    view->setFocus();
    const int layer = panel->layerIndex();
    ASSERT_GE(layer, 1);
    ASSERT_EQ(panel->headIndex(), -1);

    QTest::keyClick(view, Qt::Key_Right);
    EXPECT_EQ(panel->layerIndex(), layer + 1);
    QTest::keyClick(view, Qt::Key_Left);
    QTest::keyClick(view, Qt::Key_Left);
    EXPECT_EQ(panel->layerIndex(), layer - 1);
    EXPECT_EQ(window->attention()->selectedLayer(), layer - 1);

    // The head walk: mean of heads, the grounding heads (the fixture model is smaller than the preset, so
    // the grounding follows the viewed layer and this layer has some), set of heads…, head 0, head 1, ...
    using Choice = AttentionPanel::HeadChoice;
    ASSERT_EQ(panel->headChoice(), Choice::Mean);
    ASSERT_TRUE(panel->hasGroundingHeads());
    QTest::keyClick(view, Qt::Key_Down);
    EXPECT_EQ(panel->headChoice(), Choice::Grounding);
    QTest::keyClick(view, Qt::Key_Down);
    EXPECT_EQ(panel->headChoice(), Choice::Set);
    QTest::keyClick(view, Qt::Key_Down);
    EXPECT_EQ(panel->headIndex(), 0);
    QTest::keyClick(view, Qt::Key_Down);
    EXPECT_EQ(panel->headIndex(), 1);
    QTest::keyClick(view, Qt::Key_Up);
    EXPECT_EQ(panel->headIndex(), 0);
    QTest::keyClick(view, Qt::Key_Up);
    EXPECT_EQ(panel->headChoice(), Choice::Set);
    QTest::keyClick(view, Qt::Key_Up);
    EXPECT_EQ(panel->headChoice(), Choice::Grounding);
    QTest::keyClick(view, Qt::Key_Up);
    QTest::keyClick(view, Qt::Key_Up);  // stays at the mean
    EXPECT_EQ(panel->headChoice(), Choice::Mean);
    EXPECT_EQ(panel->headIndex(), -1);

    // The denoised view follows the viewed layer and head: the grounding heads and the set (every head
    // so far) leave it at every head, head 0 makes it head 0.
    for (int i = 0; i < 3; ++i) QTest::keyClick(window->labelView(), Qt::Key_Down);
    EXPECT_EQ(panel->headIndex(), 0);
    ASSERT_TRUE(window->thresholdPanel()->followView());
    const auto& grounding = window->thresholds()->labelSettings().grounding;
    ASSERT_EQ(grounding.size(), 1u);
    EXPECT_EQ(grounding[0].layer, layer - 1);
    EXPECT_EQ(grounding[0].heads, std::vector<int>{0});

    // The layer strip keeps ←/→ and gives ↑/↓ to the heads too.
    panel->layerStrip()->setFocus();
    QTest::keyClick(panel->layerStrip(), Qt::Key_Right);
    EXPECT_EQ(panel->layerIndex(), layer);
    QTest::keyClick(panel->layerStrip(), Qt::Key_Down);
    EXPECT_EQ(panel->headIndex(), 1);
    EXPECT_EQ(panel->layerIndex(), layer);

    // A focused slider keeps its arrows.
    QSlider* alpha = window->thresholdPanel()->slider(ThresholdPanel::Field::ForegroundRatio);
    alpha->setFocus();
    const int before = alpha->value();
    QTest::keyClick(alpha, Qt::Key_Right);
    EXPECT_NE(alpha->value(), before);
    EXPECT_EQ(panel->layerIndex(), layer);
}

TEST(Keyboard, LettersToggleTheViewsAndHelpListsEveryShortcut) {
    auto window = answeredWindow();
    ImageView* view = window->imageView();
    view->setFocus();

    ASSERT_TRUE(window->attentionPanel()->overlayVisible());
    QTest::keyClick(view, Qt::Key_O);
    EXPECT_FALSE(window->attentionPanel()->overlayVisible());
    EXPECT_FALSE(window->heatmapOverlay()->isVisible());
    QTest::keyClick(view, Qt::Key_O);
    EXPECT_TRUE(window->heatmapOverlay()->isVisible());

    ASSERT_TRUE(window->isDenoisedViewVisible());
    QTest::keyClick(view, Qt::Key_D);
    EXPECT_FALSE(window->isDenoisedViewVisible());
    QTest::keyClick(view, Qt::Key_D);
    EXPECT_TRUE(window->isDenoisedViewVisible());

    ASSERT_FALSE(window->isRoiViewVisible());
    QTest::keyClick(view, Qt::Key_R);
    EXPECT_TRUE(window->isRoiViewVisible());
    QTest::keyClick(view, Qt::Key_R);
    EXPECT_FALSE(window->isRoiViewVisible());

    // Typing in the question box types.
    QWidget* question = window->askPanel()->findChild<QPlainTextEdit*>();
    ASSERT_NE(question, nullptr);
    question->setFocus();
    window->askPanel()->setQuestion({});
    QTest::keyClicks(question, "rod");
    EXPECT_EQ(window->askPanel()->question(), "rod");
    EXPECT_FALSE(window->isRoiViewVisible());
    EXPECT_TRUE(window->isDenoisedViewVisible());

    const auto shortcuts = window->keyboardShortcuts();
    QStringList keys, what;
    for (const auto& [k, w] : shortcuts) {
        keys << k;
        what << w;
    }
    for (const char* expected : {"← / →", "↑ / ↓", "O", "D", "R", "Ctrl+Enter", "Esc", "F1"})
        EXPECT_TRUE(keys.contains(expected))
            << expected << " missing from " << keys.join(" | ").toStdString();
    EXPECT_TRUE(what.contains("Open RPN Checkpoint")) << what.join(" | ").toStdString();
    // Every action with a shortcut is listed.
    for (QAction* action : window->findChildren<QAction*>()) {
        if (action->shortcut().isEmpty()) continue;
        EXPECT_TRUE(keys.contains(action->shortcut().toString(QKeySequence::NativeText)) ||
                    std::any_of(keys.begin(), keys.end(),
                                [&](const QString& k) {
                                    return k.contains(action->shortcut().toString(QKeySequence::NativeText));
                                }))
            << action->text().toStdString();
    }
    window->showKeyboardShortcuts();
    auto* box = window->findChild<QMessageBox*>();
    ASSERT_NE(box, nullptr);
    EXPECT_TRUE(box->isVisible());
    EXPECT_TRUE(box->text().contains("Next layer") || box->text().contains("next layer"));
}
