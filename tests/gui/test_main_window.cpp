// MainWindow: images (open, corrupt, paste), models (fixture, demo, bad folder), Ask availability,
// sessions (round trip), export, and closing while a job runs.
#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include <QClipboard>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QGuiApplication>
#include <QMessageBox>
#include <QMimeData>
#include <QSettings>
#include <QSignalSpy>

#include "app/main_window.h"
#include "core/pipeline/demo_model.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/window_test_support.h"
#include "tests/support/test_support.h"
#include "widgets/ask_panel.h"
#include "widgets/image_view.h"
#include "widgets/jobs_panel.h"
#include "widgets/model_card_panel.h"

namespace {

using sdrpn::test::fixturePath;
using sdrpn::test::noSettings;
using sdrpn::test::qs;
using sdrpn::test::scratchDir;
using sdrpn::test::waitForIdle;

QString llavaFixture() {
    return qs(fixturePath("tiny-llava-hf"));
}
QString fixtureImage() {
    return qs(fixturePath("tiny-llava-hf/image_640x480.png"));
}

// The bundled demo model (random weights), made small so that it is quick to write and load.
QString makeDemoFolder() {
    const QString dir = qs(scratchDir("demo"));
    sdrpn::pipeline::DemoModelOptions options;
    options.textHidden = 64;
    options.textLayers = 2;
    options.textHeads = 4;
    options.textIntermediate = 128;
    options.visionLayers = 1;
    options.overwrite = true;
    const auto made = sdrpn::pipeline::makeDemoModel(dir.toStdString(), options, sdrpn::JobContext::none());
    EXPECT_TRUE(made.ok()) << made.message();
    return dir;
}

}  // namespace

TEST(MainWindow, OpensAnImageInTheBackground) {
    MainWindow window(noSettings());
    window.resize(1400, 900);
    window.show();
    QSignalSpy loaded(&window, &MainWindow::imageLoaded);
    window.openImage(fixtureImage());
    EXPECT_TRUE(window.isBusy());
    ASSERT_TRUE(loaded.wait(20000));
    EXPECT_EQ(window.imagePath(), QFileInfo(fixtureImage()).absoluteFilePath());
    EXPECT_EQ(window.imageView()->image().size(), QSize(640, 480));
    EXPECT_TRUE(window.imageView()->isFitToView());
    EXPECT_TRUE(window.windowTitle().contains("image_640x480.png"));
    EXPECT_EQ(window.recentImages().value(0), window.imagePath());
    EXPECT_GE(window.jobsPanel()->jobCount(), 1);
}

TEST(MainWindow, ACorruptImageShowsAnErrorAndKeepsRunning) {
    MainWindow window(noSettings());
    window.show();
    const QString corrupt = qs(scratchDir("corrupt")) + "/broken.png";
    {
        std::ofstream out(corrupt.toStdString(), std::ios::binary);
        out << "\x89PNG\r\n\x1a\n this is not really a PNG file";
    }
    QSignalSpy errors(&window, &MainWindow::errorReported);
    QSignalSpy failed(&window, &MainWindow::imageLoadFailed);
    window.openImage(corrupt);
    ASSERT_TRUE(failed.wait(20000));
    ASSERT_GE(errors.count(), 1);
    EXPECT_TRUE(window.lastError().contains("broken.png")) << window.lastError().toStdString();
    EXPECT_FALSE(window.imageView()->hasImage());

    // A missing file too; and afterwards a good image still opens.
    window.openImage(qs(scratchDir("missing")) + "/nope.jpg");
    ASSERT_TRUE(failed.wait(20000));
    EXPECT_TRUE(window.lastError().contains("nope.jpg"));
    QSignalSpy loaded(&window, &MainWindow::imageLoaded);
    window.openImage(fixtureImage());
    ASSERT_TRUE(loaded.wait(20000));
    EXPECT_TRUE(window.imageView()->hasImage());
}

TEST(MainWindow, PastesAnImageOrAFileFromTheClipboard) {
    MainWindow window(noSettings());
    window.show();
    QImage image(50, 40, QImage::Format_RGB32);
    image.fill(Qt::magenta);
    QGuiApplication::clipboard()->setImage(image);
    window.pasteFromClipboard();
    ASSERT_TRUE(window.imageView()->hasImage());
    EXPECT_EQ(window.imageView()->image().size(), QSize(50, 40));
    EXPECT_TRUE(window.imagePath().isEmpty());
    EXPECT_TRUE(window.windowTitle().contains("pasted image"));

    auto* mime = new QMimeData;
    mime->setUrls({QUrl::fromLocalFile(fixtureImage())});
    QGuiApplication::clipboard()->setMimeData(mime);
    QSignalSpy loaded(&window, &MainWindow::imageLoaded);
    window.pasteFromClipboard();
    ASSERT_TRUE(loaded.wait(20000));
    EXPECT_EQ(window.imageView()->image().size(), QSize(640, 480));
    EXPECT_EQ(window.imagePath(), QFileInfo(fixtureImage()).absoluteFilePath());
}

TEST(MainWindow, ABadModelFolderShowsAnError) {
    MainWindow window(noSettings());
    window.show();
    QSignalSpy errors(&window, &MainWindow::errorReported);
    QSignalSpy failed(window.modelSession(), &ModelSession::loadFailed);
    const QString empty = qs(scratchDir("not_a_model"));
    window.openModel(empty);
    ASSERT_TRUE(failed.wait(20000));
    EXPECT_EQ(window.modelSession()->state(), ModelSession::State::Failed);
    EXPECT_TRUE(window.lastError().contains("config.json")) << window.lastError().toStdString();
    EXPECT_GE(errors.count(), 1);
    EXPECT_TRUE(window.modelCardPanel()->displayedText().contains("config.json"));

    // A config.json that is not JSON names the file too.
    const QString broken = qs(scratchDir("broken_config"));
    {
        std::ofstream out((broken + "/config.json").toStdString());
        out << "{ not json";
    }
    window.openModel(broken);
    ASSERT_TRUE(failed.wait(20000));
    EXPECT_TRUE(window.lastError().contains("config.json")) << window.lastError().toStdString();
}

TEST(MainWindow, LoadsTheFixtureModelCard) {
    MainWindow window(noSettings());
    window.show();
    QSignalSpy loaded(window.modelSession(), &ModelSession::loaded);
    window.openModel(llavaFixture());
    EXPECT_EQ(window.modelSession()->state(), ModelSession::State::Loading);
    ASSERT_TRUE(loaded.wait(30000)) << window.lastError().toStdString();
    const sdrpn::ModelCard* card = window.modelSession()->card();
    ASSERT_NE(card, nullptr);
    EXPECT_EQ(card->modelType, "llava");
    EXPECT_EQ(card->llmLayers, 6);
    EXPECT_EQ(card->llmHeads, 4);
    EXPECT_EQ(card->gridRows, 24);
    EXPECT_EQ(card->dtype, "F16");
    EXPECT_FALSE(card->randomWeights);
    const QString text = window.modelCardPanel()->displayedText();
    EXPECT_TRUE(text.contains("24 × 24")) << text.toStdString();
    EXPECT_TRUE(text.contains("F16"));
    EXPECT_FALSE(window.modelCardPanel()->isWarningVisible());
    EXPECT_FALSE(window.aboutText().contains("random weights"));
    EXPECT_EQ(window.recentModels().value(0), QDir::cleanPath(QFileInfo(llavaFixture()).absoluteFilePath()));

    // Loaded for answering; Ask waits for an image, with a reason, and the question text is kept.
    EXPECT_TRUE(window.modelSession()->canAnswer());
    window.setQuestion("What is written on the sign?");
    EXPECT_FALSE(window.askPanel()->isAskAvailable());
    EXPECT_TRUE(window.askPanel()->askUnavailableReason().contains("image"));
    EXPECT_EQ(window.askPanel()->question(), QStringLiteral("What is written on the sign?"));
}

TEST(MainWindow, SaysPlainlyWhenTheModelIsTheDemoWithRandomWeights) {
    MainWindow window(noSettings());
    window.show();
    QSignalSpy loaded(window.modelSession(), &ModelSession::loaded);
    window.openModel(makeDemoFolder());
    ASSERT_TRUE(loaded.wait(30000)) << window.lastError().toStdString();
    EXPECT_TRUE(window.modelSession()->isDemoModel());
    EXPECT_TRUE(window.modelCardPanel()->isWarningVisible());
    EXPECT_TRUE(window.modelCardPanel()->displayedText().contains("random weights"));
    EXPECT_TRUE(window.aboutText().contains("demo model with random weights"));

    // Help › About shows it, without blocking.
    QAction* about = nullptr;
    for (QAction* action : window.findChildren<QAction*>())
        if (action->text() == QStringLiteral("&About SD-RPN Studio")) about = action;
    ASSERT_NE(about, nullptr);
    about->trigger();
    QMessageBox* box = window.findChild<QMessageBox*>();
    ASSERT_NE(box, nullptr);
    EXPECT_TRUE(box->isVisible());
    EXPECT_TRUE(box->text().contains("random weights"));
    const QString shots = qEnvironmentVariable("SDRPN_TEST_SHOTS");  // to look at the dialog
    if (!shots.isEmpty()) (void)box->grab().save(shots + "/about.png");
}

TEST(MainWindow, SessionRoundTripRestoresTheSameState) {
    const QString sessionPath = qs(scratchDir("session")) + "/one.sdrpn.json";
    StudioSession saved;
    {
        MainWindow window(noSettings());
        window.resize(1400, 900);
        window.show();
        window.openModel(llavaFixture());
        window.openImage(fixtureImage());
        window.setQuestion("How many cells does the grid have?");
        ASSERT_TRUE(waitForIdle(window.jobManager()));
        ASSERT_TRUE(window.imageView()->hasImage());
        ImageViewState state;
        state.fitToView = false;
        state.zoom = 2.3456789;
        state.center = QPointF(101.25, 77.125);
        window.imageView()->setViewState(state);
        saved = window.currentSession();
        ASSERT_TRUE(window.saveSession(sessionPath));
    }
    MainWindow restored(noSettings());
    restored.resize(1200, 800);  // a different window: zoom and centre are kept in image terms
    restored.show();
    QSignalSpy done(&restored, &MainWindow::sessionRestored);
    ASSERT_TRUE(restored.openSession(sessionPath));
    ASSERT_TRUE(done.count() == 1 || done.wait(30000));
    const StudioSession back = restored.currentSession();
    EXPECT_EQ(back.imagePath, saved.imagePath);
    EXPECT_EQ(back.question, saved.question);
    EXPECT_EQ(back.modelFolder, saved.modelFolder);
    EXPECT_EQ(restored.modelSession()->state(), ModelSession::State::Ready);
    EXPECT_FALSE(back.view.fitToView);
    EXPECT_EQ(back.view.zoom, 2.3456789);
    EXPECT_EQ(back.view.center, QPointF(101.25, 77.125));
}

TEST(MainWindow, SessionKeepsAPastedImage) {
    const QString sessionPath = qs(scratchDir("session_paste")) + "/pasted.sdrpn.json";
    QImage pasted(37, 23, QImage::Format_RGB32);
    for (int y = 0; y < pasted.height(); ++y)
        for (int x = 0; x < pasted.width(); ++x) pasted.setPixelColor(x, y, QColor(x * 6, y * 10, 128));
    {
        MainWindow window(noSettings());
        window.show();
        window.setPastedImage(pasted);
        EXPECT_TRUE(window.imagePath().isEmpty());
        ASSERT_TRUE(window.saveSession(sessionPath));
    }
    MainWindow restored(noSettings());
    restored.show();
    QSignalSpy done(&restored, &MainWindow::sessionRestored);
    ASSERT_TRUE(restored.openSession(sessionPath));
    ASSERT_TRUE(done.count() == 1 || done.wait(10000));
    const QImage back = restored.imageView()->image().convertToFormat(QImage::Format_RGB32);
    ASSERT_EQ(back.size(), pasted.size());
    EXPECT_EQ(back, pasted);
    EXPECT_TRUE(restored.imageView()->isFitToView());
}

TEST(MainWindow, AnUnreadableSessionShowsAnError) {
    MainWindow window(noSettings());
    window.show();
    const QString path = qs(scratchDir("bad_session")) + "/bad.sdrpn.json";
    {
        std::ofstream out(path.toStdString());
        out << R"({"format": "something-else", "version": 1})";
    }
    QSignalSpy errors(&window, &MainWindow::errorReported);
    EXPECT_FALSE(window.openSession(path));
    EXPECT_EQ(errors.count(), 1);
    EXPECT_TRUE(window.lastError().contains("bad.sdrpn.json"));
}

TEST(MainWindow, ExportsTheViewAsPng) {
    MainWindow window(noSettings());
    window.resize(1400, 900);
    window.show();
    QSignalSpy loaded(&window, &MainWindow::imageLoaded);
    window.openImage(fixtureImage());
    ASSERT_TRUE(loaded.wait(20000));
    const QString path = qs(scratchDir("export")) + "/view.png";
    ASSERT_TRUE(window.exportView(path));
    const QImage exported(path);
    EXPECT_EQ(exported.size(), window.imageView()->size() * window.imageView()->devicePixelRatio());
}

TEST(MainWindow, ClosingWhileAJobRunsCancelsAndWaits) {
    std::atomic<bool> sawCancel{false};
    std::atomic<bool> returned{false};
    auto window = std::make_unique<MainWindow>(noSettings());
    window->show();
    QSignalSpy started(window->jobManager(), &JobManager::jobStarted);
    const JobId endless =
        window->jobManager()->runStatus("endless", window.get(), [&](sdrpn::JobContext& ctx) {
            while (!ctx.cancelRequested()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
            sawCancel = true;
            returned = true;
            return sdrpn::Status::cancelledStatus();
        });
    // A model load is in flight as well.
    window->openModel(llavaFixture());
    auto endlessStarted = [&] {
        for (const QList<QVariant>& args : std::as_const(started))
            if (args.at(0).value<JobId>() == endless) return true;
        return false;
    };
    while (!endlessStarted()) ASSERT_TRUE(started.wait(10000));
    QStringList asked;
    window->setConfirmCloseHandler([&asked](const QStringList& jobs) {
        asked = jobs;
        return true;  // Quit
    });
    EXPECT_TRUE(window->close());
    EXPECT_FALSE(asked.isEmpty());
    EXPECT_TRUE(sawCancel);
    EXPECT_TRUE(returned);
    EXPECT_TRUE(window->jobManager()->isShutDown());
    EXPECT_EQ(window->jobManager()->activeCount(), 0);
    window.reset();
    QCoreApplication::processEvents();  // queued completions for the destroyed window are dropped
}

TEST(MainWindow, RemembersRecentFilesAndGeometryInQSettings) {
    QSettings().clear();  // Qt's test location (QStandardPaths test mode), not the user's settings
    {
        MainWindow window;
        window.show();
        window.resize(1111, 777);
        QSignalSpy loaded(&window, &MainWindow::imageLoaded);
        window.openImage(fixtureImage());
        ASSERT_TRUE(loaded.wait(20000));
        window.openModel(llavaFixture());
        ASSERT_TRUE(waitForIdle(window.jobManager()));
        window.close();
    }
    MainWindow again;
    EXPECT_EQ(again.recentImages().value(0), QFileInfo(fixtureImage()).absoluteFilePath());
    EXPECT_EQ(again.recentModels().value(0), QDir::cleanPath(QFileInfo(llavaFixture()).absoluteFilePath()));
    EXPECT_EQ(again.size(), QSize(1111, 777));
    QSettings().clear();
}
