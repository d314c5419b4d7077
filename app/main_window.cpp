#include "app/main_window.h"

#include <QApplication>
#include <QBuffer>
#include <QClipboard>
#include <QCloseEvent>
#include <QDir>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QImageReader>
#include <QLabel>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QScrollArea>
#include <QSettings>
#include <QStatusBar>
#include <QToolBar>
#include <QToolButton>

#include "app/attention_controller.h"
#include "app/image_io.h"
#include "widgets/ask_panel.h"
#include "widgets/attention_panel.h"
#include "widgets/heatmap_overlay.h"
#include "widgets/image_view.h"
#include "widgets/jobs_panel.h"
#include "widgets/model_card_panel.h"

#ifndef SDRPN_VERSION
#define SDRPN_VERSION "dev"
#endif

namespace {

constexpr int kStateVersion = 2;  // bump when docks change so an old saved layout is not restored
constexpr int kStatusTimeoutMs = 8000;
const QSize kDefaultSize(1400, 900);

QString fileName(const QString& path) {
    const QString name = QFileInfo(QDir::cleanPath(path)).fileName();
    return name.isEmpty() ? path : name;
}

bool isSessionFile(const QFileInfo& info) {
    return info.fileName().endsWith(QLatin1String(".sdrpn.json"), Qt::CaseInsensitive) ||
           (info.suffix().compare(QLatin1String("json"), Qt::CaseInsensitive) == 0 &&
            info.fileName().compare(QLatin1String("config.json"), Qt::CaseInsensitive) != 0);
}

QString imageFileFilter() {
    QStringList patterns;
    for (const QByteArray& format : QImageReader::supportedImageFormats())
        patterns << QStringLiteral("*.") + QString::fromLatin1(format);
    patterns.removeDuplicates();
    return QObject::tr("Images (%1);;All files (*)").arg(patterns.join(QLatin1Char(' ')));
}

JobsPanel::Outcome toOutcome(JobManager::JobState state) {
    switch (state) {
        case JobManager::JobState::Succeeded:
            return JobsPanel::Outcome::Succeeded;
        case JobManager::JobState::Cancelled:
            return JobsPanel::Outcome::Cancelled;
        default:
            return JobsPanel::Outcome::Failed;
    }
}

}  // namespace

MainWindow::MainWindow(QWidget* parent) : MainWindow(Options{}, parent) {}

MainWindow::MainWindow(const Options& options, QWidget* parent)
    : QMainWindow(parent),
      m_options(options),
      m_recentModels(QStringLiteral("recent/models"), options.useSettings),
      m_recentImages(QStringLiteral("recent/images"), options.useSettings) {
    setObjectName(QStringLiteral("MainWindow"));
    setAcceptDrops(true);
    setDockOptions(QMainWindow::AnimatedDocks | QMainWindow::AllowTabbedDocks);

    m_jobs = new JobManager(this);
    m_model = new ModelSession(m_jobs, this);
    m_asks = new AskSession(m_jobs, this);
    m_view = new ImageView;
    m_view->setObjectName(QStringLiteral("ImageView"));
    setCentralWidget(m_view);

    buildActions();
    buildMenus();
    buildToolBar();
    buildDocks();
    buildStatusBar();
    m_attention = new AttentionController(m_view, m_attentionPanel, this);
    connectJobs();
    connectModelSession();
    connectAskSession();

    connect(m_view, &ImageView::viewChanged, this, &MainWindow::updateZoomLabel);
    connect(m_view, &ImageView::hoveredPixelChanged, this, [this](const QPoint& pixel, bool inside) {
        if (!inside) {
            m_pixelLabel->clear();
            m_cellLabel->clear();
            return;
        }
        m_cellLabel->setText(cellReadOut(pixel));
        const QColor c = m_view->image().pixelColor(pixel);
        m_pixelLabel->setText(tr("x %1  y %2   RGB %3 %4 %5")
                                  .arg(pixel.x())
                                  .arg(pixel.y())
                                  .arg(c.red())
                                  .arg(c.green())
                                  .arg(c.blue()));
    });
    connect(m_view, &ImageView::urlsDropped, this, [this](const QList<QUrl>& urls) {
        for (const QUrl& url : urls) {
            if (url.isLocalFile()) {
                openPath(url.toLocalFile());
            } else {
                showError(tr("Cannot open"), tr("%1: only local files can be opened").arg(url.toString()));
            }
        }
    });
    connect(m_view, &ImageView::imageDropped, this, &MainWindow::setPastedImage);
    connect(m_ask, &AskPanel::askRequested, this, &MainWindow::onAskRequested);
    connect(m_ask, &AskPanel::stopRequested, this, &MainWindow::stopAnswer);
    connect(m_card, &ModelCardPanel::openModelRequested, this, &MainWindow::openModelDialog);

    resize(kDefaultSize);
    restoreSettings();
    updateTitle();
    updateZoomLabel();
    updateAskAvailability();
    updateProgress();
    statusBar()->showMessage(tr("Ready"), kStatusTimeoutMs);
}

MainWindow::~MainWindow() {
    // Jobs first: their completions refer to the widgets destroyed after this body.
    m_jobs->shutdown();
}

// ----------------------------------------------------------------------------------------------- building

void MainWindow::buildActions() {
    m_openModelAction = new QAction(tr("Open &Model…"), this);
    m_openModelAction->setShortcut(QKeySequence(tr("Ctrl+Shift+O")));
    m_openModelAction->setStatusTip(tr("Open a model folder (config.json and safetensors weights)"));
    connect(m_openModelAction, &QAction::triggered, this, &MainWindow::openModelDialog);

    m_openImageAction = new QAction(tr("Open &Image…"), this);
    m_openImageAction->setShortcut(QKeySequence::Open);
    m_openImageAction->setStatusTip(tr("Open an image file"));
    connect(m_openImageAction, &QAction::triggered, this, &MainWindow::openImageDialog);

    m_saveSessionAction = new QAction(tr("&Save Session…"), this);
    m_saveSessionAction->setShortcut(QKeySequence::Save);
    connect(m_saveSessionAction, &QAction::triggered, this, &MainWindow::saveSessionDialog);

    m_openSessionAction = new QAction(tr("Open Sess&ion…"), this);
    m_openSessionAction->setShortcut(QKeySequence(tr("Ctrl+Alt+O")));
    connect(m_openSessionAction, &QAction::triggered, this, &MainWindow::openSessionDialog);

    m_exportViewAction = new QAction(tr("&Export View as PNG…"), this);
    m_exportViewAction->setShortcut(QKeySequence(tr("Ctrl+E")));
    connect(m_exportViewAction, &QAction::triggered, this, &MainWindow::exportViewDialog);

    m_quitAction = new QAction(tr("&Quit"), this);
    m_quitAction->setShortcut(QKeySequence::Quit);
    m_quitAction->setMenuRole(QAction::QuitRole);
    connect(m_quitAction, &QAction::triggered, this, &QWidget::close);

    m_pasteAction = new QAction(tr("&Paste Image"), this);
    m_pasteAction->setShortcut(QKeySequence::Paste);
    m_pasteAction->setStatusTip(tr("Show the image (or image file) on the clipboard"));
    connect(m_pasteAction, &QAction::triggered, this, &MainWindow::pasteFromClipboard);

    m_zoomInAction = new QAction(tr("Zoom &In"), this);
    m_zoomInAction->setShortcuts({QKeySequence::ZoomIn, QKeySequence(tr("Ctrl+="))});
    connect(m_zoomInAction, &QAction::triggered, m_view, &ImageView::zoomIn);
    m_zoomOutAction = new QAction(tr("Zoom &Out"), this);
    m_zoomOutAction->setShortcut(QKeySequence::ZoomOut);
    connect(m_zoomOutAction, &QAction::triggered, m_view, &ImageView::zoomOut);
    m_fitAction = new QAction(tr("&Fit to Window"), this);
    m_fitAction->setShortcut(QKeySequence(tr("Ctrl+0")));
    connect(m_fitAction, &QAction::triggered, m_view, &ImageView::zoomToFit);
    m_actualSizeAction = new QAction(tr("&Actual Size (100%)"), this);
    m_actualSizeAction->setShortcut(QKeySequence(tr("Ctrl+1")));
    connect(m_actualSizeAction, &QAction::triggered, m_view, &ImageView::zoomToActualSize);

    m_stopAnswerAction = new QAction(tr("&Stop Answer"), this);
    m_stopAnswerAction->setEnabled(false);
    connect(m_stopAnswerAction, &QAction::triggered, this, &MainWindow::stopAnswer);

    m_cancelAllAction = new QAction(tr("&Cancel All Jobs"), this);
    connect(m_cancelAllAction, &QAction::triggered, m_jobs, &JobManager::cancelAll);

    m_aboutAction = new QAction(tr("&About SD-RPN Studio"), this);
    m_aboutAction->setMenuRole(QAction::AboutRole);
    connect(m_aboutAction, &QAction::triggered, this, &MainWindow::showAbout);
    m_aboutQtAction = new QAction(tr("About &Qt"), this);
    m_aboutQtAction->setMenuRole(QAction::AboutQtRole);
    connect(m_aboutQtAction, &QAction::triggered, qApp, &QApplication::aboutQt);
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(m_openModelAction);
    file->addAction(m_openImageAction);
    m_recentMenu = file->addMenu(tr("Open &Recent"));
    connect(m_recentMenu, &QMenu::aboutToShow, this, &MainWindow::rebuildRecentMenu);
    rebuildRecentMenu();
    file->addSeparator();
    file->addAction(m_openSessionAction);
    file->addAction(m_saveSessionAction);
    file->addSeparator();
    file->addAction(m_exportViewAction);
    file->addSeparator();
    file->addAction(m_quitAction);

    QMenu* edit = menuBar()->addMenu(tr("&Edit"));
    edit->addAction(m_pasteAction);

    QMenu* view = menuBar()->addMenu(tr("&View"));
    view->setObjectName(QStringLiteral("ViewMenu"));
    view->addAction(m_zoomInAction);
    view->addAction(m_zoomOutAction);
    view->addAction(m_fitAction);
    view->addAction(m_actualSizeAction);
    view->addSeparator();  // dock toggles are added in buildDocks()

    QMenu* jobs = menuBar()->addMenu(tr("&Jobs"));
    jobs->setObjectName(QStringLiteral("JobsMenu"));

    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(m_aboutAction);
    help->addAction(m_aboutQtAction);
}

void MainWindow::buildToolBar() {
    QToolBar* bar = addToolBar(tr("Main"));
    bar->setObjectName(QStringLiteral("MainToolBar"));
    bar->setMovable(false);
    bar->setToolButtonStyle(Qt::ToolButtonTextOnly);
    bar->addAction(m_openModelAction);
    bar->addAction(m_openImageAction);
    bar->addSeparator();
    bar->addAction(m_zoomOutAction);
    bar->addAction(m_zoomInAction);
    bar->addAction(m_fitAction);
    bar->addAction(m_actualSizeAction);
    // Short labels on the toolbar; the menus keep the long ones.
    const QList<QPair<QAction*, QString>> shortText = {{m_openModelAction, tr("Open Model")},
                                                       {m_openImageAction, tr("Open Image")},
                                                       {m_zoomOutAction, tr("Zoom −")},
                                                       {m_zoomInAction, tr("Zoom +")},
                                                       {m_fitAction, tr("Fit")},
                                                       {m_actualSizeAction, tr("100%")}};
    for (const auto& [action, text] : shortText) {
        if (QWidget* button = bar->widgetForAction(action)) {
            button->setToolTip(action->text().remove(QLatin1Char('&')).remove(QStringLiteral("…")) + "  (" +
                               action->shortcut().toString(QKeySequence::NativeText) + ")");
            if (auto* tool = qobject_cast<QToolButton*>(button)) tool->setText(text);
        }
    }
}

void MainWindow::buildDocks() {
    setCorner(Qt::BottomRightCorner, Qt::RightDockWidgetArea);
    setCorner(Qt::TopRightCorner, Qt::RightDockWidgetArea);

    m_card = new ModelCardPanel;
    auto* cardScroll = new QScrollArea;
    cardScroll->setWidget(m_card);
    cardScroll->setWidgetResizable(true);
    cardScroll->setFrameShape(QFrame::NoFrame);
    m_modelDock = new QDockWidget(tr("Model"), this);
    m_modelDock->setObjectName(QStringLiteral("ModelDock"));
    m_modelDock->setWidget(cardScroll);
    addDockWidget(Qt::RightDockWidgetArea, m_modelDock);

    m_ask = new AskPanel;
    m_askDock = new QDockWidget(tr("Question"), this);
    m_askDock->setObjectName(QStringLiteral("QuestionDock"));
    m_askDock->setWidget(m_ask);
    addDockWidget(Qt::RightDockWidgetArea, m_askDock);

    m_attentionPanel = new AttentionPanel;
    m_attentionDock = new QDockWidget(tr("Attention"), this);
    m_attentionDock->setObjectName(QStringLiteral("AttentionDock"));
    m_attentionDock->setWidget(m_attentionPanel);
    addDockWidget(Qt::BottomDockWidgetArea, m_attentionDock);

    m_jobsPanel = new JobsPanel;
    m_jobsDock = new QDockWidget(tr("Jobs"), this);
    m_jobsDock->setObjectName(QStringLiteral("JobsDock"));
    m_jobsDock->setWidget(m_jobsPanel);
    addDockWidget(Qt::BottomDockWidgetArea, m_jobsDock);
    tabifyDockWidget(m_attentionDock, m_jobsDock);
    m_attentionDock->raise();

    resizeDocks({m_modelDock}, {420}, Qt::Horizontal);
    resizeDocks({m_modelDock, m_askDock}, {400, 400}, Qt::Vertical);
    resizeDocks({m_attentionDock}, {m_attentionPanel->sizeHint().height()}, Qt::Vertical);

    if (auto* view = menuBar()->findChild<QMenu*>(QStringLiteral("ViewMenu"))) {
        view->addAction(m_modelDock->toggleViewAction());
        view->addAction(m_askDock->toggleViewAction());
        view->addAction(m_attentionDock->toggleViewAction());
        view->addAction(m_jobsDock->toggleViewAction());
    }
    if (auto* jobs = menuBar()->findChild<QMenu*>(QStringLiteral("JobsMenu"))) {
        QAction* show = m_jobsDock->toggleViewAction();
        show->setText(tr("Show &Jobs Panel"));
        show->setShortcut(QKeySequence(tr("Ctrl+J")));
        jobs->addAction(show);
        jobs->addSeparator();
        jobs->addAction(m_stopAnswerAction);
        jobs->addAction(m_cancelAllAction);
        m_clearJobsAction =
            jobs->addAction(tr("C&lear Finished Jobs"), m_jobsPanel, &JobsPanel::clearFinished);
    }
}

void MainWindow::buildStatusBar() {
    m_progressLabel = new QLabel;
    m_progress = new QProgressBar;
    m_progress->setFixedWidth(160);
    m_progress->setMaximumHeight(16);
    m_progress->setTextVisible(false);
    m_cellLabel = new QLabel;
    m_pixelLabel = new QLabel;
    m_pixelLabel->setMinimumWidth(220);
    m_zoomLabel = new QLabel;
    m_zoomLabel->setMinimumWidth(90);
    m_zoomLabel->setAlignment(Qt::AlignRight | Qt::AlignVCenter);
    statusBar()->addPermanentWidget(m_progressLabel);
    statusBar()->addPermanentWidget(m_progress);
    statusBar()->addPermanentWidget(m_cellLabel);
    statusBar()->addPermanentWidget(m_pixelLabel);
    statusBar()->addPermanentWidget(m_zoomLabel);
}

void MainWindow::connectJobs() {
    connect(m_jobs, &JobManager::jobAdded, this, [this](JobId id, const QString& title) {
        m_jobsPanel->addJob(id, title);
        m_running.insert(id, RunningJob{title, -1, QString()});
        updateProgress();
    });
    connect(m_jobs, &JobManager::jobStarted, this, [this](JobId id) { m_jobsPanel->setJobRunning(id); });
    connect(m_jobs, &JobManager::jobProgress, this,
            [this](JobId id, double fraction, const QString& message) {
                m_jobsPanel->setJobProgress(id, fraction, message);
                auto it = m_running.find(id);
                if (it != m_running.end()) {
                    it->fraction = fraction;
                    it->message = message;
                }
                updateProgress();
            });
    connect(m_jobs, &JobManager::jobFinished, this,
            [this](JobId id, JobManager::JobState state, const QString& message) {
                m_jobsPanel->setJobFinished(id, toOutcome(state), message);
                m_running.remove(id);
                updateProgress();
            });
    connect(m_jobsPanel, &JobsPanel::cancelRequested, m_jobs, &JobManager::cancel);
    connect(m_jobsPanel, &JobsPanel::cancelAllRequested, m_jobs, &JobManager::cancelAll);
}

void MainWindow::connectModelSession() {
    connect(m_model, &ModelSession::loadStarted, this, [this](const QString& folder) {
        m_card->showLoading(folder, -1, tr("Starting…"));
        statusBar()->showMessage(tr("Loading model %1…").arg(fileName(folder)));
        updateTitle();
    });
    connect(m_model, &ModelSession::loadProgress, this, [this](double fraction, const QString& message) {
        m_card->showLoading(m_model->folder(), fraction, message);
    });
    connect(m_model, &ModelSession::loaded, this, [this](const QString& folder) {
        if (const auto model = m_model->model()) m_card->showCard(describeModel(*model));
        m_recentModels.add(folder);
        QString message = tr("Model %1 ready").arg(fileName(folder));
        if (m_model->isDemoModel()) message += tr(" (demo model: random weights)");
        statusBar()->showMessage(message, kStatusTimeoutMs);
        updateTitle();
        if (m_restore) {
            m_restore->waitingForModel = false;
            maybeFinishSessionRestore();
        }
    });
    connect(m_model, &ModelSession::loadFailed, this, [this](const QString& folder, const QString& message) {
        m_card->showError(folder, message);
        showError(tr("Cannot load model"), message);
        updateTitle();
        if (m_restore) {
            m_restore->waitingForModel = false;
            maybeFinishSessionRestore();
        }
    });
    connect(m_model, &ModelSession::loadCancelled, this, [this](const QString& folder) {
        if (m_model->state() != ModelSession::State::Loading) m_card->showEmpty();
        statusBar()->showMessage(tr("Loading %1 cancelled").arg(fileName(folder)), kStatusTimeoutMs);
        updateTitle();
        if (m_restore && m_model->state() != ModelSession::State::Loading) {
            m_restore->waitingForModel = false;
            maybeFinishSessionRestore();
        }
    });
    connect(m_model, &ModelSession::answerAvailabilityChanged, this, &MainWindow::updateAskAvailability);
}

// ---------------------------------------------------------------------------------------------- opening

void MainWindow::openModel(const QString& folder) {
    if (folder.isEmpty()) return;
    m_model->load(QDir::cleanPath(QFileInfo(folder).absoluteFilePath()));
}

void MainWindow::openImage(const QString& path) {
    if (path.isEmpty()) return;
    const QString absolute = QDir::cleanPath(QFileInfo(path).absoluteFilePath());
    if (m_imageJob != 0) m_jobs->cancel(m_imageJob);
    const quint64 request = ++m_imageRequest;
    statusBar()->showMessage(tr("Opening %1…").arg(fileName(absolute)));
    m_imageJob = m_jobs->run(
        tr("Open image %1").arg(fileName(absolute)), this,
        [absolute](sdrpn::JobContext& ctx) { return readImageFile(absolute, ctx); },
        [this, absolute, request](sdrpn::Result<QImage> result) {
            if (request != m_imageRequest) return;  // superseded by a later open
            m_imageJob = 0;
            if (result.ok()) {
                applyImage(result.value(), absolute);
                m_recentImages.add(absolute);
                emit imageLoaded(absolute);
            } else if (result.status().cancelled()) {
                statusBar()->showMessage(tr("Opening %1 cancelled").arg(fileName(absolute)),
                                         kStatusTimeoutMs);
            } else {
                const QString message = QString::fromStdString(result.message());
                showError(tr("Cannot open image"), message);
                emit imageLoadFailed(absolute, message);
            }
            updateAskAvailability();
            if (m_restore) {
                m_restore->waitingForImage = false;
                m_restore->view.reset();
                maybeFinishSessionRestore();
            }
        });
    updateAskAvailability();
}

void MainWindow::setPastedImage(const QImage& image) {
    if (image.isNull()) {
        showError(tr("Cannot paste"), tr("The clipboard image could not be decoded."));
        return;
    }
    QBuffer buffer(&m_pastedPng);
    m_pastedPng.clear();
    buffer.open(QIODevice::WriteOnly);
    image.save(&buffer, "PNG");
    applyImage(image, QString());
}

void MainWindow::applyImage(const QImage& image, const QString& path) {
    // The answer and its maps belong to the previous image.
    if (m_asks->isRunning()) m_asks->stop();
    if (m_attention->result()) {
        m_asks->clearResult();
        m_attention->setResult(nullptr);
    }
    m_imagePath = path;
    if (!path.isEmpty()) m_pastedPng.clear();
    m_view->setImage(image);
    if (m_restore && m_restore->view) {
        m_view->setViewState(*m_restore->view);
        m_restore->view.reset();
    }
    const QString what = path.isEmpty() ? tr("pasted image") : fileName(path);
    statusBar()->showMessage(tr("Opened %1 (%2 × %3)").arg(what).arg(image.width()).arg(image.height()),
                             kStatusTimeoutMs);
    updateTitle();
    updateZoomLabel();
    updateAskAvailability();
}

void MainWindow::pasteFromClipboard() {
    const QMimeData* mime = QGuiApplication::clipboard()->mimeData();
    if (mime && mime->hasImage()) {
        setPastedImage(qvariant_cast<QImage>(mime->imageData()));
        return;
    }
    if (mime && mime->hasUrls()) {
        for (const QUrl& url : mime->urls()) {
            if (url.isLocalFile()) {
                openPath(url.toLocalFile());
                return;
            }
        }
    }
    if (mime && mime->hasText()) {
        QString text = mime->text().trimmed();
        if (text.startsWith(QLatin1String("file://"))) text = QUrl(text).toLocalFile();
        if (!text.isEmpty() && !text.contains(QLatin1Char('\n')) && QFileInfo::exists(text)) {
            openPath(text);
            return;
        }
    }
    statusBar()->showMessage(tr("Nothing to paste: the clipboard holds no image and no file"),
                             kStatusTimeoutMs);
}

void MainWindow::openPath(const QString& path) {
    const QFileInfo info(path);
    if (info.isDir()) {
        openModel(path);
    } else if (info.fileName() == QLatin1String("config.json") ||
               info.suffix().compare(QLatin1String("safetensors"), Qt::CaseInsensitive) == 0) {
        openModel(info.absolutePath());
    } else if (isSessionFile(info)) {
        openSession(path);
    } else {
        openImage(path);
    }
}

// --------------------------------------------------------------------------------------------- sessions

StudioSession MainWindow::currentSession() const {
    StudioSession s;
    s.imagePath = m_imagePath;
    if (m_imagePath.isEmpty() && m_view->hasImage()) s.imagePng = m_pastedPng;
    s.question = m_ask->question();
    s.answer = m_ask->answer();
    if (m_model->state() != ModelSession::State::Empty) s.modelFolder = m_model->folder();
    s.hasView = m_view->hasImage();
    s.view = m_view->viewState();
    return s;
}

bool MainWindow::saveSession(const QString& path) {
    QString error;
    if (!saveSessionFile(path, currentSession(), &error)) {
        showError(tr("Cannot save session"), error);
        return false;
    }
    statusBar()->showMessage(tr("Session saved to %1").arg(fileName(path)), kStatusTimeoutMs);
    return true;
}

bool MainWindow::openSession(const QString& path) {
    QString error;
    std::optional<StudioSession> session = loadSessionFile(path, &error);
    if (!session) {
        showError(tr("Cannot open session"), error);
        return false;
    }
    m_restore = PendingRestore{};
    if (session->hasView) m_restore->view = session->view;
    setQuestion(session->question);
    m_ask->setAnswer(session->answer);
    m_ask->setInfo(QString());
    if (m_asks->isRunning()) m_asks->stop();
    m_asks->clearResult();
    m_attention->setResult(nullptr,
                           session->answer.isEmpty()
                               ? QString()
                               : tr("Sessions keep the answer but not its maps yet: ask again to see "
                                    "where each layer looks."));

    if (!session->modelFolder.isEmpty()) {
        const bool same =
            m_model->folder() == session->modelFolder && (m_model->state() == ModelSession::State::Ready ||
                                                          m_model->state() == ModelSession::State::Loading);
        if (!same) {
            m_restore->waitingForModel = true;
            openModel(session->modelFolder);
        } else if (m_model->state() == ModelSession::State::Loading) {
            m_restore->waitingForModel = true;
        }
    }
    if (!session->imagePng.isEmpty()) {
        const QImage image = QImage::fromData(session->imagePng, "PNG");
        if (image.isNull()) {
            showError(tr("Cannot open session"), tr("%1: the embedded image is not a valid PNG").arg(path));
        } else {
            m_pastedPng = session->imagePng;
            applyImage(image, QString());
        }
    } else if (!session->imagePath.isEmpty()) {
        m_restore->waitingForImage = true;
        openImage(session->imagePath);
    } else {
        m_imagePath.clear();
        m_pastedPng.clear();
        m_view->clear();
        updateTitle();
        updateAskAvailability();
    }
    statusBar()->showMessage(tr("Opening session %1…").arg(fileName(path)), kStatusTimeoutMs);
    maybeFinishSessionRestore();
    return true;
}

void MainWindow::maybeFinishSessionRestore() {
    if (!m_restore || m_restore->waitingForImage || m_restore->waitingForModel) return;
    m_restore.reset();
    statusBar()->showMessage(tr("Session restored"), kStatusTimeoutMs);
    emit sessionRestored();
}

bool MainWindow::exportView(const QString& path) {
    if (!m_view->hasImage()) {
        showError(tr("Cannot export view"), tr("There is no image to export."));
        return false;
    }
    const QPixmap pixmap = m_view->grab();
    if (!pixmap.save(path, "PNG")) {
        showError(tr("Cannot export view"), tr("%1: cannot write the PNG file").arg(path));
        return false;
    }
    statusBar()->showMessage(tr("View exported to %1").arg(fileName(path)), kStatusTimeoutMs);
    return true;
}

void MainWindow::setQuestion(const QString& question) {
    m_ask->setQuestion(question);
}

// ---------------------------------------------------------------------------------------------- dialogs

QString MainWindow::dialogDir(const QString& key) const {
    if (!m_options.useSettings) return QDir::currentPath();
    return QSettings().value(QStringLiteral("dialogs/") + key, QDir::homePath()).toString();
}

void MainWindow::rememberDialogDir(const QString& key, const QString& path) const {
    if (m_options.useSettings) QSettings().setValue(QStringLiteral("dialogs/") + key, path);
}

void MainWindow::openModelDialog() {
    const QString folder =
        QFileDialog::getExistingDirectory(this, tr("Open Model Folder"), dialogDir("model"));
    if (folder.isEmpty()) return;
    rememberDialogDir("model", QFileInfo(folder).absolutePath());
    openModel(folder);
}

void MainWindow::openImageDialog() {
    const QString path =
        QFileDialog::getOpenFileName(this, tr("Open Image"), dialogDir("image"), imageFileFilter());
    if (path.isEmpty()) return;
    rememberDialogDir("image", QFileInfo(path).absolutePath());
    openImage(path);
}

void MainWindow::saveSessionDialog() {
    QString path = QFileDialog::getSaveFileName(this, tr("Save Session"), dialogDir("session"),
                                                tr("SD-RPN sessions (*.sdrpn.json);;JSON (*.json)"));
    if (path.isEmpty()) return;
    if (!path.endsWith(QLatin1String(".json"), Qt::CaseInsensitive)) path += QLatin1String(".sdrpn.json");
    rememberDialogDir("session", QFileInfo(path).absolutePath());
    saveSession(path);
}

void MainWindow::openSessionDialog() {
    const QString path =
        QFileDialog::getOpenFileName(this, tr("Open Session"), dialogDir("session"),
                                     tr("SD-RPN sessions (*.sdrpn.json *.json);;All files (*)"));
    if (path.isEmpty()) return;
    rememberDialogDir("session", QFileInfo(path).absolutePath());
    openSession(path);
}

void MainWindow::exportViewDialog() {
    QString path = QFileDialog::getSaveFileName(this, tr("Export View as PNG"), dialogDir("export"),
                                                tr("PNG images (*.png)"));
    if (path.isEmpty()) return;
    if (!path.endsWith(QLatin1String(".png"), Qt::CaseInsensitive)) path += QLatin1String(".png");
    rememberDialogDir("export", QFileInfo(path).absolutePath());
    exportView(path);
}

QString MainWindow::aboutText() const {
    QString text =
        tr("<h3>SD-RPN Studio %1</h3>"
           "<p>See where a multimodal LLM looks: text-to-image attention, its denoised form, and the "
           "regions of interest a self-distilled RoI predictor (SD-RPN) picks for fine-grained "
           "questions.</p>")
            .arg(QStringLiteral(SDRPN_VERSION));
    const sdrpn::ModelCard* card = m_model->card();
    if (card) {
        text += tr("<p><b>Loaded model:</b> %1 (%2, %3)</p>")
                    .arg(fileName(m_model->folder()).toHtmlEscaped(),
                         QString::fromStdString(card->architecture).toHtmlEscaped(),
                         QString::fromStdString(card->dtype));
        if (card->randomWeights) {
            text +=
                tr("<p><b>This is the bundled demo model with random weights.</b> Its answers and "
                   "attention maps are meaningless; it is there to try the studio without a real "
                   "checkpoint.</p>");
        }
    } else {
        text += tr("<p><b>Loaded model:</b> none</p>");
    }
    text += tr("<p>Qt %1</p>").arg(QString::fromLatin1(qVersion()));
    return text;
}

void MainWindow::showAbout() {
    if (!m_aboutBox) {
        m_aboutBox = new QMessageBox(this);
        m_aboutBox->setAttribute(Qt::WA_DeleteOnClose);
        m_aboutBox->setWindowTitle(tr("About SD-RPN Studio"));
        m_aboutBox->setTextFormat(Qt::RichText);
        m_aboutBox->setStandardButtons(QMessageBox::Close);
        m_aboutBox->setWindowModality(Qt::NonModal);
        const QIcon icon = QApplication::windowIcon();
        if (!icon.isNull()) m_aboutBox->setIconPixmap(icon.pixmap(64, 64));
    }
    m_aboutBox->setText(aboutText());
    m_aboutBox->show();
    m_aboutBox->raise();
}

// ------------------------------------------------------------------------------------------------- misc

void MainWindow::onAskRequested(const QString& question) {
    ask(question);
}

bool MainWindow::canAsk(QString* reason) const {
    QString why;
    if (!m_model->canAnswer(&why)) {
        if (m_model->state() == ModelSession::State::Failed)
            why = tr("The model could not be loaded: open another model folder (File › Open Model…).");
    } else if (!m_view->hasImage()) {
        why = m_imageJob != 0 ? tr("Wait for the image to finish loading.")
                              : tr("Open an image first (File › Open Image…, drop or paste one).");
    }
    if (reason) *reason = why;
    return why.isEmpty();
}

bool MainWindow::ask(const QString& question) {
    const QString text = (question.isEmpty() ? m_ask->question() : question).trimmed();
    QString reason;
    if (!canAsk(&reason)) {
        m_ask->setInfo(reason, true);
        statusBar()->showMessage(reason, kStatusTimeoutMs);
        return false;
    }
    if (text.isEmpty()) {
        reason = tr("Type a question first.");
        m_ask->setInfo(reason, true);
        statusBar()->showMessage(reason, kStatusTimeoutMs);
        return false;
    }
    if (text != m_ask->question().trimmed()) m_ask->setQuestion(text);
    AskRequest request;
    request.question = text;
    request.maxNewTokens = m_ask->maxNewTokens();
    return m_asks->ask(m_model->pipelineModel(), m_view->image(), request) != 0;
}

void MainWindow::stopAnswer() {
    if (!m_asks->isRunning()) return;
    m_asks->stop();
    statusBar()->showMessage(tr("Stopping the answer…"), kStatusTimeoutMs);
}

std::shared_ptr<HeatmapOverlay> MainWindow::heatmapOverlay() const {
    return m_attention->overlay();
}

QString MainWindow::cellReadOut(const QPoint& pixel) const {
    return m_attention->readOut(pixel);
}

void MainWindow::connectAskSession() {
    connect(m_asks, &AskSession::started, this, [this](const QString& question) {
        m_ask->clearAnswer();
        m_ask->setInfo(tr("Answering…"));
        m_attention->setResult(nullptr, tr("Answering “%1”…").arg(question));
        statusBar()->showMessage(tr("Answering…"));
    });
    connect(m_asks, &AskSession::runningChanged, this, [this](bool running) {
        m_ask->setBusy(running);
        m_stopAnswerAction->setEnabled(running);
    });
    connect(m_asks, &AskSession::textReceived, m_ask, &AskPanel::appendAnswer);
    connect(m_asks, &AskSession::answered, this, [this] {
        const auto result = m_asks->result();
        m_ask->setAnswer(result->answer);
        QString info = describeTimings(result->timings);
        if (result->hitTokenLimit)
            info += tr("\nThe answer reached the limit of %1 tokens.").arg(result->timings.answerTokens);
        m_ask->setInfo(info);
        m_attention->setResult(result);
        statusBar()->showMessage(tr("Answered in %1 s").arg(result->timings.total(), 0, 'f', 2),
                                 kStatusTimeoutMs);
    });
    connect(m_asks, &AskSession::stopped, this, [this] {
        m_ask->setInfo(tr("Stopped. The maps of a stopped answer are not kept: ask again to see them."));
        m_attention->setResult(nullptr, tr("The answer was stopped: ask again to see the maps."));
        statusBar()->showMessage(tr("Answer stopped"), kStatusTimeoutMs);
    });
    connect(m_asks, &AskSession::failed, this, [this](const QString& message) {
        m_ask->setInfo(message, true);
        m_attention->setResult(nullptr, tr("The answer failed."));
        showError(tr("Cannot answer"), message);
    });
}

void MainWindow::showError(const QString& title, const QString& message) {
    m_lastError = message;
    statusBar()->showMessage(title + QStringLiteral(": ") + message, 2 * kStatusTimeoutMs);
    if (!m_closing) {
        if (!m_errorBox) {
            m_errorBox = new QMessageBox(this);
            m_errorBox->setIcon(QMessageBox::Warning);
            m_errorBox->setAttribute(Qt::WA_DeleteOnClose);
            m_errorBox->setStandardButtons(QMessageBox::Ok);
            m_errorBox->setWindowModality(Qt::NonModal);
        }
        m_errorBox->setWindowTitle(title);
        m_errorBox->setText(title);
        m_errorBox->setInformativeText(message);
        m_errorBox->show();
    }
    emit errorReported(message);
}

void MainWindow::rebuildRecentMenu() {
    m_recentMenu->clear();
    const QStringList models = m_recentModels.entries();
    const QStringList images = m_recentImages.entries();
    auto addEntries = [this](const QString& section, const QStringList& paths, bool model) {
        if (paths.isEmpty()) return;
        m_recentMenu->addSection(section);
        for (const QString& path : paths) {
            QAction* action = m_recentMenu->addAction(fileName(path));
            action->setToolTip(path);
            action->setStatusTip(path);
            connect(action, &QAction::triggered, this, [this, path, model] {
                if (!QFileInfo::exists(path)) {
                    (model ? m_recentModels : m_recentImages).remove(path);
                    showError(tr("Cannot open"), tr("%1: no longer exists").arg(path));
                } else if (model) {
                    openModel(path);
                } else {
                    openImage(path);
                }
            });
        }
    };
    addEntries(tr("Models"), models, true);
    addEntries(tr("Images"), images, false);
    if (models.isEmpty() && images.isEmpty()) {
        m_recentMenu->addAction(tr("No recent files"))->setEnabled(false);
        return;
    }
    m_recentMenu->addSeparator();
    m_recentMenu->addAction(tr("Clear Recent"), this, [this] {
        m_recentModels.clear();
        m_recentImages.clear();
    });
}

void MainWindow::updateTitle() {
    QStringList parts;
    if (m_view->hasImage()) parts << (m_imagePath.isEmpty() ? tr("pasted image") : fileName(m_imagePath));
    if (m_model->state() != ModelSession::State::Empty) parts << fileName(m_model->folder());
    parts << tr("SD-RPN Studio");
    setWindowTitle(parts.join(QStringLiteral(" — ")));
}

void MainWindow::updateZoomLabel() {
    if (!m_view->hasImage()) {
        m_zoomLabel->setText(QString());
        return;
    }
    const QString percent =
        QStringLiteral("%1%").arg(m_view->zoom() * 100.0, 0, 'f', m_view->zoom() < 0.1 ? 1 : 0);
    m_zoomLabel->setText(m_view->isFitToView() ? tr("Fit %1").arg(percent) : percent);
}

void MainWindow::updateAskAvailability() {
    QString reason;
    const bool available = canAsk(&reason);
    m_ask->setAskAvailable(available, reason);
}

void MainWindow::updateProgress() {
    if (m_running.isEmpty()) {
        m_progress->hide();
        m_progressLabel->hide();
        return;
    }
    const RunningJob& latest = m_running.last();
    QString text = latest.title;
    if (m_running.size() > 1) text = tr("%1 (+%2 more)").arg(latest.title).arg(m_running.size() - 1);
    m_progressLabel->setText(text);
    if (latest.fraction < 0) {
        m_progress->setRange(0, 0);
    } else {
        m_progress->setRange(0, 1000);
        m_progress->setValue(int(latest.fraction * 1000));
    }
    m_progressLabel->show();
    m_progress->show();
}

// ------------------------------------------------------------------------------------ window lifecycle

void MainWindow::restoreSettings() {
    if (!m_options.useSettings) return;
    QSettings settings;
    const QByteArray geometry = settings.value(QStringLiteral("window/geometry")).toByteArray();
    if (!geometry.isEmpty()) restoreGeometry(geometry);
    const QByteArray state = settings.value(QStringLiteral("window/state")).toByteArray();
    if (!state.isEmpty()) restoreState(state, kStateVersion);
}

void MainWindow::saveSettings() const {
    if (!m_options.useSettings) return;
    QSettings settings;
    settings.setValue(QStringLiteral("window/geometry"), saveGeometry());
    settings.setValue(QStringLiteral("window/state"), saveState(kStateVersion));
}

void MainWindow::closeEvent(QCloseEvent* event) {
    m_closing = true;
    saveSettings();
    if (m_errorBox) m_errorBox->close();
    if (m_aboutBox) m_aboutBox->close();
    // Cancel, wait, then nothing of the jobs reaches the widgets again.
    m_jobs->shutdown();
    event->accept();
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
    if (event->mimeData()->hasUrls() || event->mimeData()->hasImage()) event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event) {
    const QMimeData* mime = event->mimeData();
    if (mime->hasUrls()) {
        for (const QUrl& url : mime->urls())
            if (url.isLocalFile()) openPath(url.toLocalFile());
    } else if (mime->hasImage()) {
        setPastedImage(qvariant_cast<QImage>(mime->imageData()));
    }
    event->acceptProposedAction();
}
