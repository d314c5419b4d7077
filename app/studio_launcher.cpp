#include "app/studio_launcher.h"

#include <cstdio>
#include <cstdlib>
#include <memory>

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
    const QCommandLineOption visionTower(
        "vision-tower", QObject::tr("The CLIP folder of the original-layout LLaVA given with --model."),
        "DIR");
    const QCommandLineOption base(
        "base", QObject::tr("The base model that fills the unfilled SD-RPN checkpoint given with --model."),
        "DIR");
    const QCommandLineOption rpn("rpn",
                                 QObject::tr("Load the SD-RPN checkpoint DIR (a folder or a .safetensors) "
                                             "for the model."),
                                 "DIR");
    const QCommandLineOption rpnK("rpn-k",
                                  QObject::tr("With --rpn-t: an untrained RPN from backbone layers "
                                              "K .. K+T-1 (twiginit)."),
                                  "K");
    const QCommandLineOption rpnT("rpn-t", QObject::tr("With --rpn-k: the twig's number of layers."), "T");
    const QCommandLineOption sdrpn("sdrpn", QObject::tr("Ask with SD-RPN (needs an RPN)."));
    parser.addOptions({model, visionTower, base, device, dtype, image, question, maxTokens, rpn, rpnK, rpnT,
                       sdrpn, session, screenshot});
    parser.process(app);
    auto usageError = [](const QString& message) {
        std::fprintf(stderr, "sdrpn-studio: %s\n", message.toLocal8Bit().constData());
        std::exit(2);
    };
    auto positive = [&](const QCommandLineOption& option, const QString& name) {
        bool ok = false;
        const int value = parser.value(option).toInt(&ok);
        if (!ok || value < 1)
            usageError(
                QObject::tr("--%1 wants a positive whole number, not '%2'").arg(name, parser.value(option)));
        return value;
    };
    StudioOptions options;
    options.modelFolder = parser.value(model);
    options.visionTower = parser.value(visionTower);
    if (!options.visionTower.isEmpty() && options.modelFolder.isEmpty())
        usageError(
            QObject::tr("--vision-tower goes with --model DIR (the original-layout LLaVA it belongs to)"));
    options.baseModel = parser.value(base);
    if (!options.baseModel.isEmpty() && options.modelFolder.isEmpty())
        usageError(QObject::tr("--base goes with --model DIR (the unfilled SD-RPN checkpoint it fills)"));
    options.rpnPath = parser.value(rpn);
    if (parser.isSet(rpnK) || parser.isSet(rpnT)) {
        if (parser.isSet(rpn))
            usageError(QObject::tr("give either --rpn DIR or --rpn-k K --rpn-t T, not both"));
        if (!(parser.isSet(rpnK) && parser.isSet(rpnT)))
            usageError(QObject::tr("give both --rpn-k K and --rpn-t T to initialise the RPN from the model"));
        options.rpnK = positive(rpnK, QStringLiteral("rpn-k"));
        options.rpnT = positive(rpnT, QStringLiteral("rpn-t"));
    }
    if (parser.isSet(rpn) && options.rpnPath.isEmpty()) usageError(QObject::tr("--rpn wants a checkpoint"));
    options.sdrpn = parser.isSet(sdrpn);
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
    if (screenshotMode) {
        // Nobody to ask: a missing CLIP folder is a failure that names it.
        window.setAskFolderHandler([](const QString&, const QString&, const QString&) { return QString(); });
    }
    if (!options.visionTower.isEmpty()) window.setVisionTower(modelFolder, options.visionTower);
    if (!options.baseModel.isEmpty()) window.setBaseModel(modelFolder, options.baseModel);
    const bool wantsRpn = !options.rpnPath.isEmpty() || options.rpnK > 0;
    if (wantsRpn) {
        // The RPN belongs to the model: loaded once it is in (the model's own RPN, if any, is replaced).
        auto connection = std::make_shared<QMetaObject::Connection>();
        *connection = QObject::connect(
            window.modelSession(), &ModelSession::loaded, &window, [&window, &options, connection] {
                QObject::disconnect(*connection);
                if (!options.rpnPath.isEmpty()) {
                    window.openRpn(options.rpnPath);
                } else {
                    window.rpnSession()->initFromModel(window.modelSession()->pipelineModel(), options.rpnK,
                                                       options.rpnT);
                }
            });
    }
    if (options.sdrpn) window.askPanel()->setSdrpnEnabled(true);
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
        // A completion may have started the next job (the RPN after the model): wait for that one too.
        if (window.isBusy()) return;
        if (options.sdrpn && !window.rpnSession()->hasRpn() && failures.isEmpty())
            failures << QObject::tr(
                "--sdrpn: no RPN to ask with: give --rpn DIR or --rpn-k K --rpn-t T, or "
                "a model folder that is an SD-RPN checkpoint");
        if (!asked) {
            asked = true;
            QString reason;
            if (window.canAsk(&reason)) {
                if (window.ask(options.question)) return;  // the answer job is running now
                if (failures.isEmpty())
                    failures << QObject::tr("cannot ask the question: %1").arg(window.askPanel()->info());
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
