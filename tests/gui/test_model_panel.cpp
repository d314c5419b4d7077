// The model dock's load choices: the devices LibTorch offers and fp32 / bf16, applied at the next load; the
// card of a loaded model names where it runs and the memory in use (the process's resident size).
#include <QComboBox>

#include <torch/cuda.h>

#include "app/main_window.h"
#include "app/model_session.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/window_test_support.h"
#include "tests/support/test_support.h"
#include "widgets/model_card_panel.h"

namespace {

using sdrpn::test::fixturePath;
using sdrpn::test::noSettings;
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
