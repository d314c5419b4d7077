// SD-RPN in the ask flow with the tiny LLaVA fixture: without an RPN the studio says what to do; a file
// that is no checkpoint is a clear error; the untrained twig of the model ("twiginit") answers twice
// (baseline and RoI, side by side, time per stage); the RoI view draws the blurred map, the components
// and the crop box; moving the RoI threshold re-runs the post-processing on the kept logits, no job.
#include <algorithm>
#include <functional>
#include <optional>

#include <QSignalSpy>
#include <QTest>

#include "app/attention_controller.h"
#include "app/main_window.h"
#include "app/threshold_controller.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/window_test_support.h"
#include "tests/support/test_support.h"
#include "widgets/ask_panel.h"
#include "widgets/heatmap_overlay.h"
#include "widgets/image_view.h"
#include "widgets/roi_overlay.h"
#include "widgets/threshold_panel.h"

namespace {

using sdrpn::test::fixturePath;
using sdrpn::test::noSettings;
using sdrpn::test::qs;
using sdrpn::test::readyWindow;
using sdrpn::test::waitForIdle;

// A threshold at which the RoI post-processing of `logits` zooms (kept components), searched from the top.
std::optional<double> zoomingThreshold(const TwoStageAnswer& answer, const sdrpn::RoiSettings& base) {
    sdrpn::RoiSettings s = base;
    std::vector<float> values = answer.roi.blurred;
    std::sort(values.begin(), values.end(), std::greater<>());
    for (std::size_t i = 1; i < values.size(); ++i) {
        s.threshold = (double(values[i]) + double(values[i - 1])) / 2.0;
        if (s.threshold <= 0 || values[i] == values[i - 1]) continue;
        const auto roi =
            sdrpn::postprocessRoi(answer.roiLogits, answer.rows, answer.cols, s, answer.geometry);
        if (roi.zoom()) return s.threshold;
    }
    return std::nullopt;
}

}  // namespace

TEST(SdrpnAsk, SaysWhatIsMissingAndReportsAWrongFile) {
    MainWindow bare(noSettings());
    QSignalSpy errors(&bare, &MainWindow::errorReported);
    EXPECT_FALSE(bare.initRpnFromModel());
    EXPECT_FALSE(bare.openRpn("/nowhere/rpn"));
    EXPECT_EQ(errors.count(), 2);
    EXPECT_TRUE(bare.lastError().contains("Open a model first")) << bare.lastError().toStdString();

    auto window = readyWindow();
    window->askPanel()->setSdrpnEnabled(true);
    EXPECT_FALSE(window->ask("What is written on the sign?"));
    EXPECT_TRUE(window->askPanel()->info().contains("RPN")) << window->askPanel()->info().toStdString();

    // An image is no checkpoint: a failed job with a message naming the file, no RPN.
    QSignalSpy failed(window->rpnSession(), &RpnSession::loadFailed);
    ASSERT_TRUE(window->openRpn(qs(fixturePath("tiny-llava-hf/image_640x480.png"))));
    ASSERT_TRUE(failed.count() > 0 || failed.wait(30000));
    const QString message = failed.first().at(0).toString();
    EXPECT_TRUE(message.contains("image_640x480.png")) << message.toStdString();
    EXPECT_FALSE(window->rpnSession()->hasRpn());
    EXPECT_EQ(window->rpnSession()->state(), RpnSession::State::Failed);
    EXPECT_FALSE(window->ask("What is written on the sign?"));
}

TEST(SdrpnAsk, UntrainedTwigAnswersTwiceAndDrawsTheRoi) {
    auto window = readyWindow();
    RpnSession* rpn = window->rpnSession();
    QSignalSpy loaded(rpn, &RpnSession::loaded);
    ASSERT_TRUE(window->initRpnFromModel());
    ASSERT_TRUE(loaded.count() > 0 || loaded.wait(60000)) << window->lastError().toStdString();
    EXPECT_TRUE(rpn->description().contains("twiginit")) << rpn->description().toStdString();
    EXPECT_TRUE(window->askPanel()->sdrpnEnabled());  // loading an RPN turns SD-RPN on
    EXPECT_TRUE(window->askPanel()->rpnStatus().contains("K3 T3"))
        << window->askPanel()->rpnStatus().toStdString();

    window->askPanel()->setMaxNewTokens(4);
    QSignalSpy answered(rpn, &RpnSession::answered);
    ASSERT_TRUE(window->ask("What is written on the sign?"));
    EXPECT_TRUE(window->askPanel()->isBusy());
    ASSERT_TRUE(answered.wait(120000)) << window->lastError().toStdString();
    auto result = rpn->result();
    ASSERT_NE(result, nullptr);
    EXPECT_EQ(result->rows, 24);
    EXPECT_EQ(result->roiLogits.size(), 24u * 24u);
    EXPECT_EQ(window->askPanel()->answer(), result->baselineAnswer);
    EXPECT_EQ(window->askPanel()->roiAnswer(), result->roiAnswer);
    EXPECT_TRUE(window->askPanel()->info().contains("pass 1")) << window->askPanel()->info().toStdString();
    EXPECT_TRUE(window->askPanel()->info().contains("crop encode"));
    EXPECT_TRUE(window->isRoiViewVisible());
    EXPECT_FALSE(window->thresholds()->roiHeatmap()->isEmpty());
    // The baseline's attention comes with it: the raw and denoised views have maps to show.
    ASSERT_NE(result->baselineResult, nullptr);
    EXPECT_FALSE(result->baselineResult->maps.empty());
    ASSERT_NE(window->attention()->result(), nullptr);
    EXPECT_EQ(window->attention()->result().get(), result->baselineResult.get());
    EXPECT_EQ(window->attention()->result()->answer, result->baselineAnswer);

    // Untrained logits are arbitrary: pick a threshold at which they zoom, then ask again with it.
    const auto threshold = zoomingThreshold(*result, window->thresholds()->roiSettings());
    ASSERT_TRUE(threshold.has_value());
    sdrpn::RoiSettings roi = window->thresholds()->roiSettings();
    roi.threshold = *threshold;
    window->thresholds()->setRoiSettings(roi);
    ASSERT_TRUE(window->ask());
    ASSERT_TRUE(answered.wait(120000)) << window->lastError().toStdString();
    result = rpn->result();
    ASSERT_TRUE(result->roi.zoom()) << result->roi.reason;
    EXPECT_FALSE(result->roiAnswerIsBaseline);
    EXPECT_GT(result->roiTokens, 0);
    EXPECT_FALSE(result->baselineAnswer.isEmpty());
    EXPECT_FALSE(result->roiAnswer.isEmpty());
    const QRectF crop = window->thresholds()->roiOverlay()->cropBox();
    const auto& box = result->roi.sourceBox;
    EXPECT_EQ(crop, QRectF(box.x0, box.y0, box.width(), box.height()));
    EXPECT_FALSE(window->thresholds()->roiOverlay()->components().empty());

    // The RoI threshold redraws from the kept logits: no job, one post-processing per edit.
    QSignalSpy jobs(window->jobManager(), &JobManager::jobAdded);
    QSignalSpy redrawn(window->thresholds(), &ThresholdController::roiChanged);
    const int before = window->thresholds()->roiRecomputeCount();
    window->thresholdPanel()->setValue(ThresholdPanel::Field::RoiThreshold, 0.999);
    EXPECT_EQ(jobs.count(), 0);
    EXPECT_EQ(redrawn.count(), 1);
    EXPECT_EQ(window->thresholds()->roiRecomputeCount(), before + 1);
    ASSERT_NE(window->thresholds()->roi(), nullptr);
    EXPECT_NEAR(window->thresholds()->roi()->threshold, 0.999, 1e-6);
    window->thresholds()->setRoiSettings(roi);
    EXPECT_EQ(window->thresholds()->roiOverlay()->cropBox(), crop);
    EXPECT_EQ(jobs.count(), 0);

    const QString shots = qEnvironmentVariable("SDRPN_TEST_SHOTS");
    if (!shots.isEmpty()) (void)window->grab().save(shots + "/sdrpn.png");
}
