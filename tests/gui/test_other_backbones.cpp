// The studio with the Qwen2.5-VL and DeepSeek-VL fixtures: Qwen opens, answers, and draws its own merged grid
// (17 × 23 cells of 28 px on the 644 × 476 resized image, mapped back onto the whole 640 × 480 source); the
// card describes the dynamic grid. DeepSeek-VL's fixture has no tokenizer: it opens, its card says so, and
// asking gives a message naming the missing tokenizer.
#include <QSignalSpy>
#include <QTest>

#include "app/main_window.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/window_test_support.h"
#include "tests/support/test_support.h"
#include "widgets/ask_panel.h"
#include "widgets/attention_panel.h"
#include "widgets/heatmap_overlay.h"
#include "widgets/layer_strip.h"
#include "widgets/model_card_panel.h"

namespace {

using sdrpn::test::fixturePath;
using sdrpn::test::noSettings;
using sdrpn::test::qs;
using sdrpn::test::waitForIdle;

std::unique_ptr<MainWindow> windowWith(const std::string& fixture) {
    auto window = std::make_unique<MainWindow>(noSettings());
    window->resize(1400, 900);
    window->show();
    window->openModel(qs(fixturePath(fixture)));
    window->openImage(qs(fixturePath("tiny-qwen2_5-vl/image_640x480.png")));
    EXPECT_TRUE(waitForIdle(window->jobManager()));
    return window;
}

}  // namespace

TEST(OtherBackbones, QwenAnswersAndDrawsItsOwnGrid) {
    auto window = windowWith("tiny-qwen2_5-vl");
    ASSERT_EQ(window->modelSession()->state(), ModelSession::State::Ready)
        << window->lastError().toStdString();
    const QString card = window->modelCardPanel()->displayedText();
    EXPECT_TRUE(card.contains("dynamic")) << card.toStdString();
    EXPECT_TRUE(card.contains("qwen2_vl")) << card.toStdString();

    QSignalSpy answered(window->askSession(), &AskSession::answered);
    window->askPanel()->setMaxNewTokens(3);
    ASSERT_TRUE(window->ask("What is written on the sign?"));
    ASSERT_TRUE(answered.wait(60000)) << window->lastError().toStdString();

    const auto overlay = window->heatmapOverlay();
    ASSERT_FALSE(overlay->isEmpty());
    EXPECT_EQ(overlay->rows(), 17);
    EXPECT_EQ(overlay->cols(), 23);
    // 28 px cells of the 644 × 476 image, scaled by 640 / 644 and 480 / 476: the grid covers the whole image.
    const QRectF first = overlay->cells().front(), last = overlay->cells().back();
    EXPECT_NEAR(first.left(), 0.0, 1e-9);
    EXPECT_NEAR(first.top(), 0.0, 1e-9);
    EXPECT_NEAR(first.width(), 28.0 * 640.0 / 644.0, 1e-6);
    EXPECT_NEAR(first.height(), 28.0 * 480.0 / 476.0, 1e-6);
    EXPECT_NEAR(last.right(), 640.0, 1e-6);
    EXPECT_NEAR(last.bottom(), 480.0, 1e-6);
    EXPECT_EQ(window->attentionPanel()->layerStrip()->count(), 4);
    const QString readOut = window->cellReadOut(QPoint(630, 470));
    EXPECT_TRUE(readOut.contains("cell (16, 22)")) << readOut.toStdString();
}

TEST(OtherBackbones, DeepseekOpensAndSaysItHasNoTokenizer) {
    auto window = windowWith("tiny-deepseek-vl");
    ASSERT_EQ(window->modelSession()->state(), ModelSession::State::Ready)
        << window->lastError().toStdString();
    const QString card = window->modelCardPanel()->displayedText();
    EXPECT_TRUE(card.contains("24 × 24 = 576 tokens")) << card.toStdString();
    EXPECT_TRUE(card.contains("Tokenizer: none")) << card.toStdString();

    window->ask("What is written on the sign?");
    waitForIdle(window->jobManager());
    EXPECT_TRUE(window->lastError().contains("tokenizer")) << window->lastError().toStdString();
}
