// The model dock's load choices: the devices LibTorch offers and fp32 / bf16, applied at the next load; the
// card of a loaded model names where it runs and the memory in use (the process's resident size). What a
// model brings along: an SD-RPN checkpoint its RPN, the demo model (and paper models by name) its label
// preset.
#include <QComboBox>

#include <torch/cuda.h>

#include "app/main_window.h"
#include "app/model_session.h"
#include "app/rpn_session.h"
#include "app/threshold_controller.h"
#include "core/pipeline/demo_model.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/window_test_support.h"
#include "tests/support/llava_layouts.h"
#include "tests/support/test_support.h"
#include "widgets/ask_panel.h"
#include "widgets/model_card_panel.h"
#include "widgets/threshold_panel.h"

namespace {

using sdrpn::test::fixturePath;
using sdrpn::test::noSettings;
using sdrpn::test::qs;
using sdrpn::test::waitForIdle;

}  // namespace

TEST(ModelPanel, OffersTheDevicesAndDtypes) {
    MainWindow window(noSettings());
    ModelCardPanel* card = window.modelCardPanel();
    const QStringList devices = availableLoadDevices();
    ASSERT_EQ(card->deviceBox()->count(), devices.size());
    EXPECT_EQ(card->deviceBox()->itemText(0), QStringLiteral("cpu"));
    EXPECT_EQ(devices.contains(QStringLiteral("cuda")), torch::cuda::is_available());
    EXPECT_EQ(card->dtypeBox()->count(), 2);
    // The choice shown is what the next load uses.
    EXPECT_EQ(card->device().toStdString(), window.modelSession()->loadOptions().device);
    EXPECT_EQ(card->dtype().toStdString(), window.modelSession()->loadOptions().dtype);
}

TEST(ModelPanel, TheChoiceAppliesAtTheNextLoad) {
    MainWindow window(noSettings());
    ModelCardPanel* card = window.modelCardPanel();
    card->deviceBox()->setCurrentText(QStringLiteral("cpu"));
    card->dtypeBox()->setCurrentText(QStringLiteral("bf16"));
    EXPECT_EQ(window.modelSession()->loadOptions().device, "cpu");
    EXPECT_EQ(window.modelSession()->loadOptions().dtype, "bf16");

    window.openModel(QString::fromStdString(fixturePath("tiny-llava-hf")));
    ASSERT_TRUE(waitForIdle(window.jobManager()));
    ASSERT_EQ(window.modelSession()->state(), ModelSession::State::Ready);
    const QString text = card->displayedText();
    EXPECT_TRUE(text.contains(QStringLiteral("Runs on: cpu, bf16"))) << text.toStdString();
    EXPECT_TRUE(text.contains(QStringLiteral("Memory in use (process RSS): "))) << text.toStdString();
    EXPECT_GT(processResidentBytes(), 0);
}

// An SD-RPN checkpoint folder opened as the model brings its RPN: loaded from the same folder once the
// backbone is in, and the SD-RPN switch is on. Another model drops it.
TEST(ModelPanel, SdrpnCheckpointFolderLoadsItsRpn) {
    const QString filled =
        qs(sdrpn::test::writeFilledCheckpoint(sdrpn::test::scratchDir("gui_filled") + "/llava-tiny-filled"));
    MainWindow window(noSettings());
    window.show();
    EXPECT_FALSE(window.askPanel()->sdrpnEnabled());
    window.openModel(filled);
    ASSERT_TRUE(waitForIdle(window.jobManager()));
    ASSERT_EQ(window.modelSession()->state(), ModelSession::State::Ready) << window.lastError().toStdString();
    ASSERT_TRUE(window.modelSession()->card()->sdrpnCheckpoint);
    RpnSession* rpn = window.rpnSession();
    ASSERT_TRUE(rpn->hasRpn()) << rpn->errorMessage().toStdString();
    EXPECT_EQ(rpn->sourcePath(), filled);
    EXPECT_FALSE(rpn->isUntrained());
    EXPECT_TRUE(rpn->description().contains(QStringLiteral("K3 T2"))) << rpn->description().toStdString();
    EXPECT_EQ(rpn->model(), window.modelSession()->pipelineModel().get());
    EXPECT_TRUE(window.askPanel()->sdrpnEnabled());
    const QString text = window.modelCardPanel()->displayedText();
    EXPECT_TRUE(text.contains(QStringLiteral("twig_K 3, twig_T 2"))) << text.toStdString();

    // A plain model has no RPN of its own.
    window.openModel(qs(fixturePath("tiny-llava-hf")));
    ASSERT_TRUE(waitForIdle(window.jobManager()));
    ASSERT_EQ(window.modelSession()->state(), ModelSession::State::Ready);
    EXPECT_FALSE(window.modelSession()->card()->sdrpnCheckpoint);
    EXPECT_FALSE(rpn->hasRpn());
}

// The bundled demo model (its random-weights marker) selects the `demo` label preset, unless the label
// settings were edited since the previous model loaded.
TEST(ModelPanel, DemoModelSelectsTheDemoPreset) {
    const std::string demo = sdrpn::test::scratchDir("gui_demo") + "/demo";
    sdrpn::JobContext ctx;
    ASSERT_TRUE(sdrpn::pipeline::makeDemoModel(demo, sdrpn::pipeline::DemoModelOptions{}, ctx).ok());
    MainWindow window(noSettings());
    ThresholdController* thresholds = window.thresholds();
    ASSERT_NE(thresholds->labelSettings().preset, "demo");

    window.openModel(qs(demo));
    ASSERT_TRUE(waitForIdle(window.jobManager()));
    ASSERT_EQ(window.modelSession()->state(), ModelSession::State::Ready) << window.lastError().toStdString();
    ASSERT_TRUE(window.modelSession()->isDemoModel());
    EXPECT_EQ(thresholds->labelSettings(), sdrpn::LabelSettings::fromPreset("demo"));
    EXPECT_EQ(window.thresholdPanel()->labelSettings().value("preset").toString(), QStringLiteral("demo"));
    EXPECT_FALSE(thresholds->labelSettingsEdited());

    // An edit by hand survives the next model, even the demo again.
    window.thresholdPanel()->setValue(ThresholdPanel::Field::ForegroundRatio, 0.35);
    EXPECT_TRUE(thresholds->labelSettingsEdited());
    const sdrpn::LabelSettings edited = thresholds->labelSettings();
    EXPECT_EQ(edited.preset, "custom");
    window.openModel(qs(demo));
    ASSERT_TRUE(waitForIdle(window.jobManager()));
    EXPECT_EQ(thresholds->labelSettings(), edited);

    // A model whose name matches no preset leaves the settings alone; no edit since then: the demo's
    // preset comes back with the demo.
    window.openModel(qs(fixturePath("tiny-llava-hf")));
    ASSERT_TRUE(waitForIdle(window.jobManager()));
    EXPECT_EQ(thresholds->labelSettings(), edited);
    window.openModel(qs(demo));
    ASSERT_TRUE(waitForIdle(window.jobManager()));
    EXPECT_EQ(thresholds->labelSettings().preset, "demo");
}

// Which preset a model gets: the demo by its marker, paper models by their folder's name when the model has
// the preset's layers and heads.
TEST(ModelPanel, LabelPresetForModelMatchesTheFolderName) {
    struct Row {
        std::string folder;
        int layers, heads;
        bool demo;
        std::string preset;
    };
    const std::vector<Row> rows = {
        {"/models/llava-1.5-7b-hf", 32, 32, false, "llava-1.5-7b"},
        {"/models/llava-v1.5-13b", 40, 40, false, "llava-1.5-13b"},
        {"/models/LLaVA_1.5_7B-sdrpn-filled", 32, 32, false, "llava-1.5-7b"},
        {"/cache/models--Qwen--Qwen2.5-VL-7B-Instruct/snapshots/0a1b2c", 28, 28, false, "qwen2.5-vl-7b"},
        {"/models/Qwen2.5-VL-3B-Instruct", 36, 16, false, "qwen2.5-vl-3b"},
        {"/models/llava-1.5-7b-tiny", 6, 4, false, ""},  // too small for the preset's layer 14
        {"/models/demo-llava", 8, 8, false, ""},         // "demo" goes by the marker only
        {"/anywhere/random-name", 8, 8, true, "demo"},
        {"/models/my-model", 32, 32, false, ""},
    };
    for (const Row& row : rows) {
        sdrpn::ModelCard card;
        card.folder = row.folder;
        card.llmLayers = row.layers;
        card.llmHeads = row.heads;
        card.randomWeights = row.demo;
        EXPECT_EQ(labelPresetForModel(card), row.preset) << row.folder;
    }
}
