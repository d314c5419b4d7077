// An original-layout LLaVA folder whose CLIP tower is not beside it: the studio asks for the CLIP folder
// (through the window's ask-for-folder hook here, never a real dialog), loads the model with the folder it
// got and remembers it for that model folder; cancelling the question leaves a message naming the tower.
#include <QSignalSpy>

#include "app/main_window.h"
#include "app/model_session.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/window_test_support.h"
#include "tests/support/llava_layouts.h"
#include "tests/support/test_support.h"
#include "widgets/model_card_panel.h"

namespace {

using sdrpn::test::noSettings;
using sdrpn::test::qs;
using sdrpn::test::waitForIdle;

constexpr const char* kTower = "openai/clip-vit-large-patch14-336";

struct Question {
    int count = 0;
    QString title, message, startDir;
};

// Waits until `spy` has seen `count` emissions (some may already have come).
bool waitFor(QSignalSpy& spy, int count = 1) {
    while (spy.count() < count)
        if (!spy.wait(60000)) return false;
    return true;
}

}  // namespace

TEST(VisionTower, AsksForTheClipFolderAndLoadsWithIt) {
    const std::string root = sdrpn::test::scratchDir("gui_tower");
    const QString modelDir = qs(sdrpn::test::writeOriginalLlava(root, "my-clip", kTower));
    const QString clipDir = qs(root + "/my-clip");
    MainWindow window(noSettings());
    Question question;
    window.setAskFolderHandler([&](const QString& title, const QString& message, const QString& start) {
        ++question.count;
        question.title = title;
        question.message = message;
        question.startDir = start;
        return clipDir;
    });
    QSignalSpy loaded(window.modelSession(), &ModelSession::loaded);
    QSignalSpy needed(window.modelSession(), &ModelSession::visionTowerNeeded);
    window.openModel(modelDir);
    ASSERT_TRUE(waitFor(loaded)) << window.lastError().toStdString();
    EXPECT_EQ(needed.count(), 1);
    EXPECT_EQ(question.count, 1);
    // The question names what was looked for and where.
    EXPECT_TRUE(question.message.contains(QLatin1String(kTower))) << question.message.toStdString();
    EXPECT_TRUE(question.message.contains(qs(root + "/clip-vit-large-patch14-336")))
        << question.message.toStdString();
    EXPECT_TRUE(question.title.contains(QStringLiteral("CLIP")));
    EXPECT_EQ(question.startDir, qs(root));

    ASSERT_EQ(window.modelSession()->state(), ModelSession::State::Ready);
    ASSERT_TRUE(window.modelSession()->model());
    EXPECT_EQ(qs(window.modelSession()->model()->visionTower), clipDir);
    EXPECT_EQ(window.modelSession()->visionTower(modelDir), clipDir);
    const QString text = window.modelCardPanel()->displayedText();
    EXPECT_TRUE(text.contains(QStringLiteral("Vision tower: ") + clipDir)) << text.toStdString();
    QString reason;
    EXPECT_TRUE(window.modelSession()->canAnswer(&reason)) << reason.toStdString();

    // Opened again: the folder is remembered, nothing is asked.
    window.openModel(modelDir);
    ASSERT_TRUE(waitFor(loaded, 2)) << window.lastError().toStdString();
    EXPECT_EQ(question.count, 1);
    EXPECT_EQ(window.modelSession()->state(), ModelSession::State::Ready);
}

TEST(VisionTower, CancellingTheQuestionLeavesAClearMessage) {
    const std::string root = sdrpn::test::scratchDir("gui_tower_cancel");
    const QString modelDir = qs(sdrpn::test::writeOriginalLlava(root, "my-clip", kTower));
    MainWindow window(noSettings());
    int asked = 0;
    window.setAskFolderHandler([&](const QString&, const QString&, const QString&) {
        ++asked;
        return QString();
    });
    QSignalSpy failed(window.modelSession(), &ModelSession::loadFailed);
    window.openModel(modelDir);
    ASSERT_TRUE(waitFor(failed));
    ASSERT_TRUE(waitForIdle(window.jobManager()));
    EXPECT_EQ(asked, 1);
    EXPECT_EQ(window.modelSession()->state(), ModelSession::State::Failed);
    EXPECT_FALSE(window.modelSession()->model());
    const QString message = failed.first().at(1).toString();
    EXPECT_TRUE(message.contains(QLatin1String(kTower))) << message.toStdString();
    EXPECT_TRUE(message.contains(QStringLiteral("No CLIP folder was chosen"))) << message.toStdString();
    EXPECT_TRUE(message.contains(QStringLiteral("--vision-tower"))) << message.toStdString();
    EXPECT_EQ(window.lastError(), message);
    QString reason;
    EXPECT_FALSE(window.canAsk(&reason));
    EXPECT_FALSE(reason.isEmpty());
    EXPECT_TRUE(window.modelSession()->visionTower(modelDir).isEmpty());
}

TEST(VisionTower, AFolderWithoutConfigIsRefusedByName) {
    const std::string root = sdrpn::test::scratchDir("gui_tower_bad");
    const QString modelDir = qs(sdrpn::test::writeOriginalLlava(root, "my-clip", kTower));
    const QString notClip = qs(sdrpn::test::scratchDir("gui_tower_bad_pick"));
    MainWindow window(noSettings());
    int asked = 0;
    window.setAskFolderHandler([&](const QString&, const QString&, const QString&) {
        ++asked;
        return notClip;
    });
    QSignalSpy failed(window.modelSession(), &ModelSession::loadFailed);
    window.openModel(modelDir);
    ASSERT_TRUE(waitFor(failed));
    EXPECT_EQ(asked, 1);  // asked once, not again and again
    const QString message = failed.first().at(1).toString();
    EXPECT_TRUE(message.contains(notClip)) << message.toStdString();
    EXPECT_TRUE(message.contains(QStringLiteral("config.json"))) << message.toStdString();
    EXPECT_EQ(window.modelSession()->state(), ModelSession::State::Failed);
}
