#include "app/studio_launcher.h"

#include <cstdio>
#include <cstdlib>

#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <QIcon>
#include <QPixmap>
#include <QTimer>

#include "app/main_window.h"
#include "widgets/ask_panel.h"

#ifndef SDRPN_VERSION
#define SDRPN_VERSION "dev"
#endif

void configureStudioApplication(QApplication& app) {
    QCoreApplication::setOrganizationName(QStringLiteral("SD-RPN Studio"));
    QCoreApplication::setApplicationName(QStringLiteral("SD-RPN Studio"));
    QCoreApplication::setApplicationVersion(QStringLiteral(SDRPN_VERSION));
    QGuiApplication::setDesktopFileName(QStringLiteral("sdrpn-studio"));
    // Compiled into sdrpn-studio from resources/studio.qrc; absent (a null icon) in test executables.
    app.setWindowIcon(QIcon(QStringLiteral(":/icons/sdrpn-studio.png")));
}

StudioOptions parseStudioOptions(const QApplication& app) {
    QCommandLineParser parser;
    parser.setApplicationDescription(QObject::tr("SD-RPN Studio: see where a multimodal LLM looks."));
    parser.addHelpOption();
    parser.addVersionOption();
    const QCommandLineOption model({"m", "model"}, QObject::tr("Open the model folder DIR."), "DIR");
    const QCommandLineOption image({"i", "image"}, QObject::tr("Open the image FILE."), "FILE");
    const QCommandLineOption question({"q", "question"}, QObject::tr("Put TEXT in the question box."),
                                      "TEXT");
    const QCommandLineOption device("device", QObject::tr("Run the model on DEVICE: cpu, cuda or cuda:N."),
                                    "DEVICE");
    const QCommandLineOption dtype("dtype", QObject::tr("Compute in DTYPE: fp32, bf16 or fp16."), "DTYPE");
    const QCommandLineOption maxTokens("max-new-tokens", QObject::tr("Answer with at most N tokens."), "N");
    // Not "--session": QGuiApplication takes that one for X11 session management.
    const QCommandLineOption session("session-file", QObject::tr("Open the saved studio session FILE."),
                                     "FILE");
    const QCommandLineOption screenshot(
        "screenshot",
        QObject::tr("Wait until everything has loaded, save a picture of the window to FILE, exit."), "FILE");
    parser.addOptions({model, device, dtype, image, question, maxTokens, session, screenshot});
    parser.process(app);
    StudioOptions options;
    options.modelFolder = parser.value(model);
    options.device = parser.value(device);
    options.dtype = parser.value(dtype);
    options.imagePath = parser.value(image);
    options.question = parser.value(question);
    if (parser.isSet(maxTokens)) {
        bool ok = false;
        options.maxNewTokens = parser.value(maxTokens).toInt(&ok);
        if (!ok || options.maxNewTokens < 1) {
            std::fprintf(stderr, "sdrpn-studio: --max-new-tokens wants a positive whole number, not '%s'\n",
                         parser.value(maxTokens).toLocal8Bit().constData());
            std::exit(2);
        }
    }
    options.sessionPath = parser.value(session);
    options.screenshotPath = parser.value(screenshot);
    return options;
}

namespace {

void printError(const QString& message) {
    std::fprintf(stderr, "sdrpn-studio: %s\n", message.toLocal8Bit().constData());
    std::fflush(stderr);
}

}  // namespace

int runStudio(QApplication& app, const StudioOptions& options) {
    const bool screenshotMode = !options.screenshotPath.isEmpty();
    MainWindow::Options windowOptions;
    windowOptions.useSettings = !screenshotMode;
    MainWindow window(windowOptions);

    QStringList failures;
    if (screenshotMode) {
        QObject::connect(&window, &MainWindow::errorReported, &window,
                         [&failures](const QString& message) { failures << message; });
    }
    if (!options.device.isEmpty() || !options.dtype.isEmpty()) {
        sdrpn::models::LoadOptions load = window.modelSession()->loadOptions();
        if (!options.device.isEmpty()) load.device = options.device.toStdString();
        if (!options.dtype.isEmpty()) load.dtype = options.dtype.toStdString();
        window.modelSession()->setLoadOptions(load);
        window.modelCardPanel()->setLoadChoice(QString::fromStdString(load.device),
                                               QString::fromStdString(load.dtype));
    }
    window.show();
    if (!options.sessionPath.isEmpty()) window.openSession(options.sessionPath);
    QString modelFolder = options.modelFolder, imagePath = options.imagePath;
    if (modelFolder.isEmpty() && options.sessionPath.isEmpty()) {
        // Installed: the packaged demo model and sample image (share/sdrpn-studio beside bin/).
        const QDir share(QCoreApplication::applicationDirPath() + QStringLiteral("/../share/sdrpn-studio"));
        if (QFileInfo::exists(share.filePath(QStringLiteral("models/demo/model.safetensors")))) {
            modelFolder = QDir::cleanPath(share.filePath(QStringLiteral("models/demo")));
            if (imagePath.isEmpty() &&
                QFileInfo::exists(share.filePath(QStringLiteral("samples/street.png"))))
                imagePath = QDir::cleanPath(share.filePath(QStringLiteral("samples/street.png")));
        }
    }
    if (!modelFolder.isEmpty()) window.openModel(modelFolder);
    if (!imagePath.isEmpty()) window.openImage(imagePath);
    if (!options.question.isEmpty()) window.setQuestion(options.question);
    if (options.maxNewTokens > 0) window.askPanel()->setMaxNewTokens(options.maxNewTokens);
    if (!screenshotMode) return app.exec();

    bool taken = false;
    auto takeScreenshot = [&] {
        if (taken) return;
        taken = true;
        // Let pending layout and paint requests settle before rendering.
        QCoreApplication::sendPostedEvents(nullptr, QEvent::LayoutRequest);
        const QPixmap picture = window.grab();
        int code = failures.isEmpty() ? 0 : 1;
        for (const QString& failure : std::as_const(failures)) printError(failure);
        if (picture.isNull() || !picture.save(options.screenshotPath, "PNG")) {
            printError(QObject::tr("%1: cannot write the screenshot").arg(options.screenshotPath));
            code = 2;
        }
        QCoreApplication::exit(code);
    };
    QTimer watchdog;
    watchdog.setSingleShot(true);
    QObject::connect(&watchdog, &QTimer::timeout, &window, [&] {
        failures << QObject::tr("gave up waiting for the jobs to finish after %1 s")
                        .arg(kScreenshotTimeoutMs / 1000);
        window.jobManager()->cancelAll();
        takeScreenshot();
    });
    watchdog.start(kScreenshotTimeoutMs);
    // With a question, the picture shows its answer: once the model and the image are in (every load job
    // has finished), ask, and take the picture when that job has finished too. Queued: the last
    // completion's own updates (model ready, image shown) run first.
    bool asked = options.question.isEmpty();
    auto onIdle = [&] {
        if (!asked) {
            asked = true;
            QString reason;
            if (window.canAsk(&reason)) {
                if (window.ask(options.question)) return;  // the answer job is running now
            } else if (!options.modelFolder.isEmpty() && !options.imagePath.isEmpty() && failures.isEmpty()) {
                failures << QObject::tr("cannot ask the question: %1").arg(reason);
            }
        }
        takeScreenshot();
    };
    QObject::connect(window.jobManager(), &JobManager::allJobsFinished, &window, onIdle,
                     Qt::QueuedConnection);
    if (!window.isBusy()) QTimer::singleShot(0, &window, onIdle);
    return app.exec();
}
