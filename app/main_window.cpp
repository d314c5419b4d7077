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
#include <QKeyEvent>
#include <QLabel>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QSettings>
#include <QSplitter>
#include <QStatusBar>
#include <QToolBar>
#include <QToolButton>
#include <QVBoxLayout>

#include <utility>

#include "app/attention_controller.h"
#include "app/image_io.h"
#include "app/interop_tools.h"
#include "app/studio_tools.h"
#include "app/threshold_controller.h"
#include "widgets/ask_panel.h"
#include "widgets/attention_panel.h"
#include "widgets/heatmap_overlay.h"
#include "widgets/image_view.h"
#include "widgets/jobs_panel.h"
#include "widgets/label_overlay.h"
#include "widgets/model_card_panel.h"
#include "widgets/roi_overlay.h"
#include "widgets/threshold_panel.h"

#ifndef SDRPN_VERSION
#define SDRPN_VERSION "dev"
#endif

namespace {

constexpr int kStateVersion = 4;  // bump when docks change so an old saved layout is not restored
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
    m_rpn = new RpnSession(m_jobs, this);
    setCentralWidget(buildCentre());

    buildActions();
    buildMenus();
    buildToolBar();
    buildDocks();
    buildStatusBar();
    m_attention = new AttentionController(m_view, m_attentionPanel, this);
    m_thresholds = new ThresholdController(m_thresholdPanel, m_labelView, m_roiView, this);
    // The attention panel's "Grounding heads" are the label settings' grounding groups.
    auto groundingToAttention = [this] {
        m_attention->setGroundingHeads(
            AttentionController::headsByLayer(m_thresholds->labelSettings().grounding));
    };
    groundingToAttention();
    connect(m_thresholds, &ThresholdController::labelsChanged, m_attention, groundingToAttention);
    connectJobs();
    connectModelSession();
    connectAskSession();
    connectRpnSession();
    connectThresholds();
    buildStudioTools();
    buildInteropTools();

    connect(m_view, &ImageView::viewChanged, this, &MainWindow::updateZoomLabel);
    auto hovered = [this](const QPoint& pixel, bool inside) {
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
    };
    auto dropped = [this](const QList<QUrl>& urls) {
        for (const QUrl& url : urls) {
            if (url.isLocalFile()) {
                openPath(url.toLocalFile());
            } else {
                showError(tr("Cannot open"), tr("%1: only local files can be opened").arg(url.toString()));
            }
        }
    };
    for (ImageView* view : {m_view, m_labelView, m_roiView}) {
        connect(view, &ImageView::hoveredPixelChanged, this, hovered);
        connect(view, &ImageView::urlsDropped, this, dropped);
        connect(view, &ImageView::imageDropped, this, &MainWindow::setPastedImage);
        connect(view, &ImageView::viewChanged, this, [this, view] { syncViews(view); });
    }
    connect(m_ask, &AskPanel::askRequested, this, &MainWindow::onAskRequested);
    connect(m_ask, &AskPanel::stopRequested, this, &MainWindow::stopAnswer);
    connect(m_ask, &AskPanel::historyChanged, this, [this](const QStringList& history) {
        if (m_options.useSettings) QSettings().setValue(QStringLiteral("ask/history"), history);
    });
    connect(m_card, &ModelCardPanel::openModelRequested, this, &MainWindow::openModelDialog);
    m_card->setDeviceChoices(availableLoadDevices());
    m_card->setLoadChoice(QString::fromStdString(m_model->loadOptions().device),
                          QString::fromStdString(m_model->loadOptions().dtype));
    connect(m_card, &ModelCardPanel::loadOptionsChanged, this,
            [this](const QString& device, const QString& dtype) {
                sdrpn::models::LoadOptions options = m_model->loadOptions();
                options.device = device.toStdString();
                options.dtype = dtype.toStdString();
                m_model->setLoadOptions(options);
                statusBar()->showMessage(tr("The next model loads on %1 in %2").arg(device, dtype),
                                         kStatusTimeoutMs);
            });

    resize(kDefaultSize);
    restoreSettings();
    updateTitle();
    updateZoomLabel();
    updateAskAvailability();
    updateProgress();
    updateRpnStatus();
    updateCaptions();
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

    m_exportViewAction = new QAction(tr("&View as PNG…"), this);
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

    m_openRpnAction = new QAction(tr("Open &RPN Checkpoint…"), this);
    m_openRpnAction->setShortcut(QKeySequence(tr("Ctrl+Shift+R")));
    m_openRpnAction->setStatusTip(
        tr("Load an SD-RPN checkpoint for the loaded model (a folder with model.twig_layers.*, or a "
           ".safetensors file)"));
    connect(m_openRpnAction, &QAction::triggered, this, &MainWindow::openRpnDialog);
    m_twiginitAction = new QAction(tr("&Untrained RPN from the Model (twiginit)"), this);
    m_twiginitAction->setStatusTip(
        tr("Build an RPN from the model's own layers, without training: shows the machinery, not a "
           "trained RoI"));
    connect(m_twiginitAction, &QAction::triggered, this, &MainWindow::initRpnFromModel);
    m_loadThresholdsAction = new QAction(tr("&Load Thresholds…"), this);
    m_loadThresholdsAction->setStatusTip(tr("Load label or RoI settings (JSON, as the CLI reads them)"));
    connect(m_loadThresholdsAction, &QAction::triggered, this, &MainWindow::loadThresholdsDialog);
    m_saveThresholdsAction = new QAction(tr("Save &Thresholds…"), this);
    m_saveThresholdsAction->setStatusTip(
        tr("Save the label settings and the RoI settings as JSON files for the CLI"));
    connect(m_saveThresholdsAction, &QAction::triggered, this, &MainWindow::saveThresholdsDialog);

    m_overlayAction = new QAction(tr("Attention &Overlay"), this);
    m_overlayAction->setCheckable(true);
    m_overlayAction->setChecked(true);
    m_overlayAction->setShortcut(QKeySequence(Qt::Key_O));
    m_denoisedAction = new QAction(tr("&Denoised View"), this);
    m_denoisedAction->setCheckable(true);
    m_denoisedAction->setChecked(true);
    m_denoisedAction->setShortcut(QKeySequence(Qt::Key_D));
    connect(m_denoisedAction, &QAction::toggled, this, &MainWindow::setDenoisedViewVisible);
    m_roiAction = new QAction(tr("&RoI View"), this);
    m_roiAction->setCheckable(true);
    m_roiAction->setChecked(false);
    m_roiAction->setShortcut(QKeySequence(Qt::Key_R));
    connect(m_roiAction, &QAction::toggled, this, &MainWindow::setRoiViewVisible);

    m_shortcutsAction = new QAction(tr("&Keyboard Shortcuts"), this);
    m_shortcutsAction->setShortcut(QKeySequence(Qt::Key_F1));
    connect(m_shortcutsAction, &QAction::triggered, this, &MainWindow::showKeyboardShortcuts);

    m_aboutAction = new QAction(tr("&About SD-RPN Studio"), this);
    m_aboutAction->setMenuRole(QAction::AboutRole);
    connect(m_aboutAction, &QAction::triggered, this, &MainWindow::showAbout);
    m_aboutQtAction = new QAction(tr("About &Qt"), this);
    m_aboutQtAction->setMenuRole(QAction::AboutQtRole);
    connect(m_aboutQtAction, &QAction::triggered, qApp, &QApplication::aboutQt);
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->setObjectName(QStringLiteral("FileMenu"));
    file->addAction(m_openModelAction);
    file->addAction(m_openImageAction);
    m_recentMenu = file->addMenu(tr("Open &Recent"));
    connect(m_recentMenu, &QMenu::aboutToShow, this, &MainWindow::rebuildRecentMenu);
    rebuildRecentMenu();
    file->addSeparator();
    file->addAction(m_openRpnAction);
    file->addAction(m_twiginitAction);
    file->addSeparator();
    file->addAction(m_openSessionAction);
    file->addAction(m_saveSessionAction);
    file->addSeparator();
    file->addAction(m_loadThresholdsAction);
    file->addAction(m_saveThresholdsAction);
    file->addSeparator();
    m_exportMenu = file->addMenu(tr("&Export"));
    m_exportMenu->addAction(m_exportViewAction);  // the figure, maps and boxes follow (buildStudioTools)
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
    view->addSeparator();
    view->addAction(m_overlayAction);
    view->addAction(m_denoisedAction);
    view->addAction(m_roiAction);
    view->addSeparator();
    // The arrows act when no text field or slider takes them (keyPressEvent); the menu shows the keys.
    const QString arrowText = QStringLiteral("%1\t%2");
    view->addAction(arrowText.arg(tr("Previous Layer"), QKeySequence(Qt::Key_Left).toString()), this,
                    [this] { m_attentionPanel->selectPreviousLayer(); });
    view->addAction(arrowText.arg(tr("Next Layer"), QKeySequence(Qt::Key_Right).toString()), this,
                    [this] { m_attentionPanel->selectNextLayer(); });
    view->addAction(arrowText.arg(tr("Previous Head"), QKeySequence(Qt::Key_Up).toString()), this,
                    [this] { m_attentionPanel->selectPreviousHead(); });
    view->addAction(arrowText.arg(tr("Next Head"), QKeySequence(Qt::Key_Down).toString()), this,
                    [this] { m_attentionPanel->selectNextHead(); });
    view->addSeparator();  // dock toggles are added in buildDocks()

    QMenu* jobs = menuBar()->addMenu(tr("&Jobs"));
    jobs->setObjectName(QStringLiteral("JobsMenu"));

    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(m_shortcutsAction);
    help->addSeparator();
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

    m_thresholdPanel = new ThresholdPanel;
    auto* thresholdScroll = new QScrollArea;
    thresholdScroll->setWidget(m_thresholdPanel);
    thresholdScroll->setWidgetResizable(true);
    thresholdScroll->setFrameShape(QFrame::NoFrame);
    m_thresholdDock = new QDockWidget(tr("Thresholds"), this);
    m_thresholdDock->setObjectName(QStringLiteral("ThresholdsDock"));
    m_thresholdDock->setWidget(thresholdScroll);
    addDockWidget(Qt::RightDockWidgetArea, m_thresholdDock);
    tabifyDockWidget(m_modelDock, m_thresholdDock);
    m_modelDock->raise();

    m_jobsPanel = new JobsPanel;
    m_jobsDock = new QDockWidget(tr("Jobs"), this);
    m_jobsDock->setObjectName(QStringLiteral("JobsDock"));
    m_jobsDock->setWidget(m_jobsPanel);
    addDockWidget(Qt::BottomDockWidgetArea, m_jobsDock);
    tabifyDockWidget(m_attentionDock, m_jobsDock);
    m_attentionDock->raise();

    resizeDocks({m_modelDock}, {420}, Qt::Horizontal);
    resizeDocks({m_modelDock, m_askDock}, {480, 320}, Qt::Vertical);
    resizeDocks({m_attentionDock}, {m_attentionPanel->sizeHint().height()}, Qt::Vertical);

    if (auto* view = menuBar()->findChild<QMenu*>(QStringLiteral("ViewMenu"))) {
        view->addAction(m_modelDock->toggleViewAction());
        view->addAction(m_thresholdDock->toggleViewAction());
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
    if (m_options.useSettings) {
        const QVariantMap towers = QSettings().value(QStringLiteral("models/visionTowers")).toMap();
        for (auto it = towers.begin(); it != towers.end(); ++it)
            m_model->setVisionTower(it.key(), it.value().toString());
    }
    if (m_options.useSettings) {
        const QVariantMap bases = QSettings().value(QStringLiteral("models/baseModels")).toMap();
        for (auto it = bases.begin(); it != bases.end(); ++it)
            m_model->setBaseModel(it.key(), it.value().toString());
    }
    connect(m_model, &ModelSession::baseModelNeeded, this, [this](const BaseModelRequest& request) {
        m_card->showError(request.modelFolder, request.message());
        QMetaObject::invokeMethod(
            this, [this, request] { askForBaseModel(request); }, Qt::QueuedConnection);
    });
    connect(m_model, &ModelSession::visionTowerNeeded, this, [this](const VisionTowerRequest& request) {
        m_card->showError(request.modelFolder, request.message());
        // Asked once the load job has finished, outside its completion.
        QMetaObject::invokeMethod(
            this, [this, request] { askForVisionTower(request); }, Qt::QueuedConnection);
    });
    connect(m_model, &ModelSession::loadStarted, this, [this](const QString& folder) {
        // An RPN reads its own backbone's hidden states: it goes with the model.
        m_rpn->clear();
        m_thresholds->setRoiAnswer(nullptr);
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
        updateRpnStatus();
        applyModelDefaults(folder);
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
    if (m_rpn->isRunning()) m_rpn->stop();
    m_rpn->clearResult();
    m_thresholds->setRoiAnswer(nullptr);
    m_imagePath = path;
    if (!path.isEmpty()) m_pastedPng.clear();
    m_tools->setImageFileName(path);
    m_view->setImage(image);
    m_labelView->setImage(image);
    m_roiView->setImage(image);
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
    s.roiAnswer = m_ask->roiAnswer();
    if (m_model->state() != ModelSession::State::Empty) s.modelFolder = m_model->folder();
    if (m_rpn->hasRpn()) {
        s.rpnPath = m_rpn->sourcePath();
        s.rpnUntrained = m_rpn->isUntrained();
    }
    s.labelSettings = toQJson(m_thresholds->labelSettings().toJson());
    s.roiSettings = toQJson(m_thresholds->roiSettings().toJson());
    s.hasView = m_view->hasImage();
    s.view = m_view->viewState();
    s.maps = m_attention->result();
    s.roi = m_thresholds->roiAnswer();
    if (s.maps) {
        s.layerSlot = m_attentionPanel->layerIndex();
        s.head = m_attentionPanel->headIndex();
        const QList<int> headSet = m_attentionPanel->headSet();
        s.heads.assign(headSet.begin(), headSet.end());
        s.groundingHeads = m_attentionPanel->headChoice() == AttentionPanel::HeadChoice::Grounding;
        s.answerToken = m_attentionPanel->answerTokenIndex();
        s.query = m_attentionPanel->queryIndex();
    }
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
    m_restore->rpnPath = session->rpnPath;
    m_restore->rpnUntrained = session->rpnUntrained;
    m_restore->maps = session->maps;
    m_restore->roi = session->roi;
    m_restore->layerSlot = session->layerSlot;
    m_restore->head = session->head;
    m_restore->query = session->query;
    m_restore->heads = QList<int>(session->heads.begin(), session->heads.end());
    m_restore->groundingHeads = session->groundingHeads;
    m_restore->answerToken = session->answerToken;
    m_restore->answer = session->answer;
    m_restore->roiAnswer = session->roiAnswer;
    setQuestion(session->question);
    if (m_asks->isRunning()) m_asks->stop();
    if (m_rpn->isRunning()) m_rpn->stop();
    m_asks->clearResult();
    m_rpn->clearResult();
    m_attention->setResult(nullptr);
    m_thresholds->setRoiAnswer(nullptr);
    QString settingsError;
    if (!session->labelSettings.isEmpty()) {
        auto settings = sdrpn::guarded([&] {
            return sdrpn::LabelSettings::fromJson(fromQJson(session->labelSettings), "label_settings");
        });
        if (settings.ok()) {
            m_thresholds->setLabelSettings(settings.value());
        } else {
            settingsError = QString::fromStdString(settings.message());
        }
    }
    if (!session->roiSettings.isEmpty()) {
        auto settings = sdrpn::guarded(
            [&] { return sdrpn::RoiSettings::fromJson(fromQJson(session->roiSettings), "roi_settings"); });
        if (settings.ok()) {
            m_thresholds->setRoiSettings(settings.value());
        } else {
            settingsError = QString::fromStdString(settings.message());
        }
    }
    if (!settingsError.isEmpty()) showError(tr("Cannot open session"), tr("%1: %2").arg(path, settingsError));

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
        m_labelView->clear();
        m_roiView->clear();
        updateTitle();
        updateAskAvailability();
    }
    statusBar()->showMessage(tr("Opening session %1…").arg(fileName(path)), kStatusTimeoutMs);
    maybeFinishSessionRestore();
    return true;
}

void MainWindow::maybeFinishSessionRestore() {
    if (!m_restore || m_restore->waitingForImage || m_restore->waitingForModel || m_restore->waitingForRpn)
        return;
    // The RPN belongs to the model: loaded once the model is in.
    if ((!m_restore->rpnPath.isEmpty() || m_restore->rpnUntrained) && m_model->pipelineModel()) {
        const QString rpnPath = std::exchange(m_restore->rpnPath, QString());
        const bool untrained = std::exchange(m_restore->rpnUntrained, false);
        const bool same = m_rpn->hasRpn() && m_rpn->model() == m_model->pipelineModel().get() &&
                          m_rpn->isUntrained() == untrained && m_rpn->sourcePath() == rpnPath;
        if (!same) {
            m_restore->waitingForRpn = true;
            const bool started = untrained ? initRpnFromModel() : openRpn(rpnPath);
            if (!m_restore) return;  // a load that failed at once finished the restore already
            if (started) return;     // RpnSession::stateChanged resumes here
            m_restore->waitingForRpn = false;
        }
    }
    // The answers and maps last: opening the image and loading the model drop the previous ones.
    const PendingRestore restore = *m_restore;
    m_restore.reset();
    m_ask->setAnswer(restore.answer);
    m_ask->setRoiAnswer(restore.roiAnswer);
    m_ask->setInfo(restore.maps || restore.answer.isEmpty()
                       ? QString()
                       : tr("The session keeps no maps for this answer: ask again to see where each layer "
                            "looks."));
    m_attention->setResult(restore.maps);
    if (restore.maps) {
        if (restore.query >= 0) m_attentionPanel->setQueryIndex(restore.query);
        m_attentionPanel->setHeadIndex(restore.head);
        if (restore.layerSlot >= 0) m_attentionPanel->setLayerIndex(restore.layerSlot);
        // The head set and the grounding choice go on top of the layer (grounding heads are per layer).
        if (restore.answerToken >= 0) m_attentionPanel->setAnswerTokenIndex(restore.answerToken);
        if (restore.groundingHeads) {
            m_attentionPanel->selectGroundingHeads();
        } else if (!restore.heads.isEmpty()) {
            m_attentionPanel->setHeadSet(restore.heads);
        }
    }
    m_thresholds->setRoiAnswer(restore.roi);
    if (restore.roi) setRoiViewVisible(true);
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
    m_ask->addToHistory(text);
    AskRequest request;
    request.question = text;
    request.maxNewTokens = m_ask->maxNewTokens();
    if (!m_ask->sdrpnEnabled()) {
        if (m_rpn->isRunning()) m_rpn->stop();
        return m_asks->ask(m_model->pipelineModel(), m_view->image(), request) != 0;
    }
    if (!m_rpn->hasRpn() || m_rpn->model() != m_model->pipelineModel().get()) {
        reason = m_rpn->state() == RpnSession::State::Loading
                     ? tr("Wait for the RPN to finish loading.")
                     : tr("SD-RPN needs an RPN: open a checkpoint (File › Open RPN Checkpoint…) or use "
                          "File › Untrained RPN from the Model.");
        m_ask->setInfo(reason, true);
        statusBar()->showMessage(reason, kStatusTimeoutMs);
        return false;
    }
    if (m_asks->isRunning()) m_asks->stop();
    return m_rpn->ask(m_model->pipelineModel(), m_view->image(), request, m_thresholds->roiSettings()) != 0;
}

void MainWindow::stopAnswer() {
    if (!m_asks->isRunning() && !m_rpn->isRunning()) return;
    m_asks->stop();
    m_rpn->stop();
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
    m_ask->setHistory(settings.value(QStringLiteral("ask/history")).toStringList());
}

void MainWindow::saveSettings() const {
    if (!m_options.useSettings) return;
    QSettings settings;
    settings.setValue(QStringLiteral("window/geometry"), saveGeometry());
    settings.setValue(QStringLiteral("window/state"), saveState(kStateVersion));
}

QString MainWindow::closeQuestion(const QStringList& runningJobs) {
    const QString names = runningJobs.join(QStringLiteral(", "));
    if (runningJobs.size() == 1) return tr("1 job is running (%1). Cancel it and quit?").arg(names);
    return tr("%1 jobs are running (%2). Cancel them and quit?").arg(runningJobs.size()).arg(names);
}

bool MainWindow::confirmClose() {
    if (m_jobs->isShutDown() || m_jobs->activeCount() == 0) return true;
    QStringList titles;
    for (const RunningJob& job : std::as_const(m_running)) titles << job.title;
    if (m_confirmClose) return m_confirmClose(titles);
    QMessageBox box(QMessageBox::Question, tr("Quit SD-RPN Studio"), closeQuestion(titles),
                    QMessageBox::NoButton, this);
    QPushButton* quit = box.addButton(tr("&Quit"), QMessageBox::DestructiveRole);
    QPushButton* cancel = box.addButton(QMessageBox::Cancel);
    box.setDefaultButton(cancel);
    box.setEscapeButton(cancel);
    box.exec();
    return box.clickedButton() == quit;
}

void MainWindow::closeEvent(QCloseEvent* event) {
    if (!confirmClose()) {
        event->ignore();
        return;
    }
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

// ------------------------------------------------------------------------------ views, thresholds, RPN

QWidget* MainWindow::buildCentre() {
    auto makePane = [](ImageView* view, QLabel** caption) {
        auto* pane = new QWidget;
        auto* layout = new QVBoxLayout(pane);
        layout->setContentsMargins(0, 0, 0, 0);
        layout->setSpacing(0);
        auto* label = new QLabel;
        label->setTextFormat(Qt::RichText);
        label->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Fixed);
        label->setContentsMargins(6, 3, 6, 3);
        label->setAutoFillBackground(true);
        label->setBackgroundRole(QPalette::AlternateBase);
        *caption = label;
        layout->addWidget(label);
        layout->addWidget(view, 1);
        return pane;
    };
    m_view = new ImageView;
    m_view->setObjectName(QStringLiteral("ImageView"));
    m_labelView = new ImageView;
    m_labelView->setObjectName(QStringLiteral("LabelView"));
    m_labelView->setPlaceholderText(tr("The denoised view: ask a question to see the labels."));
    m_roiView = new ImageView;
    m_roiView->setObjectName(QStringLiteral("RoiView"));
    m_roiView->setPlaceholderText(tr("The RoI view: ask with SD-RPN to see where the RPN zooms."));
    m_views = new QSplitter(Qt::Horizontal);
    m_views->setChildrenCollapsible(false);
    m_views->addWidget(makePane(m_view, &m_rawCaption));
    m_labelPane = makePane(m_labelView, &m_labelCaption);
    m_roiPane = makePane(m_roiView, &m_roiCaption);
    m_views->addWidget(m_labelPane);
    m_views->addWidget(m_roiPane);
    m_roiPane->hide();
    return m_views;
}

void MainWindow::syncViews(ImageView* source) {
    // One zoom and centre for every view: they show the same image.
    if (m_syncingViews || !source->hasImage()) return;
    m_syncingViews = true;
    const ImageViewState state = source->viewState();
    for (ImageView* view : {m_view, m_labelView, m_roiView}) {
        if (view == source || !view->hasImage()) continue;
        const ImageViewState other = view->viewState();
        if (other.fitToView != state.fitToView || other.zoom != state.zoom || other.center != state.center)
            view->setViewState(state);
    }
    m_syncingViews = false;
}

bool MainWindow::isDenoisedViewVisible() const {
    return !m_labelPane->isHidden();
}

bool MainWindow::isRoiViewVisible() const {
    return !m_roiPane->isHidden();
}

void MainWindow::setDenoisedViewVisible(bool visible) {
    if (visible == isDenoisedViewVisible()) return;
    m_labelPane->setVisible(visible);
    m_denoisedAction->setChecked(visible);
    QList<int> sizes;
    for (int i = 0; i < m_views->count(); ++i) sizes << 1000;
    m_views->setSizes(sizes);
    syncViews(m_view);
}

void MainWindow::setRoiViewVisible(bool visible) {
    if (visible == isRoiViewVisible()) return;
    m_roiPane->setVisible(visible);
    m_roiAction->setChecked(visible);
    QList<int> sizes;
    for (int i = 0; i < m_views->count(); ++i) sizes << 1000;
    m_views->setSizes(sizes);
    syncViews(m_view);
}

void MainWindow::updateCaptions() {
    auto caption = [](const QString& title, const QString& detail) {
        QString text = QStringLiteral("<b>%1</b>").arg(title.toHtmlEscaped());
        if (!detail.isEmpty()) text += QStringLiteral("&nbsp;&nbsp;") + detail;
        return text;
    };
    QString raw;
    if (m_attention && m_attention->result() && m_attention->selectedLayer() >= 0) {
        raw = tr("layer %1 · %2 · %3")
                  .arg(m_attention->selectedLayer())
                  .arg(m_attention->headText(), m_attention->queryText())
                  .toHtmlEscaped();
    }
    m_rawCaption->setText(caption(tr("Raw attention"), raw));

    auto swatch = [](const QColor& c) {
        return QStringLiteral("<span style=\"color:%1\">■</span>").arg(c.name());
    };
    QString labels;
    if (m_thresholds && m_thresholds->hasLabels()) {
        const LabelCounts n = m_thresholds->labelCounts();
        labels =
            tr("%1 fg %2 &nbsp;%3 bg %4 &nbsp;%5 ignore %6 &nbsp;%7 sinks %8")
                .arg(swatch(LabelOverlay::foregroundColor()))
                .arg(n.foreground)
                .arg(swatch(LabelOverlay::backgroundColor()))
                .arg(n.background)
                .arg(swatch(LabelOverlay::ignoreColor()))
                .arg(n.ignore)
                .arg(
                    QStringLiteral("<span style=\"color:%1\">✕</span>").arg(LabelOverlay::sinkColor().name()))
                .arg(n.sinks);
        if (!m_thresholds->labelMessage().isEmpty())
            labels += QStringLiteral("<br>") + m_thresholds->labelMessage().toHtmlEscaped();
    } else if (m_thresholds) {
        labels = m_thresholds->labelMessage().toHtmlEscaped();
    }
    m_labelCaption->setText(caption(tr("Denoised labels"), labels));
    m_roiCaption->setText(
        caption(tr("SD-RPN RoI"), m_thresholds ? m_thresholds->roiCaption().toHtmlEscaped() : QString()));
}

void MainWindow::connectThresholds() {
    // The maps follow the attention result; the grounding may follow the viewed layer and head.
    connect(m_attention, &AttentionController::mapChanged, this, [this] {
        if (m_thresholdsMaps != m_attention->result()) {
            m_thresholdsMaps = m_attention->result();
            m_thresholds->setMaps(m_thresholdsMaps);
            // Maps to label: the thresholds are what the user tunes next.
            if (m_thresholdsMaps) m_thresholdDock->raise();
        }
        if (m_attention->result()) {
            // The heads on show at this layer (one, a set, the grounding heads; none: every head).
            const std::vector<int> heads = m_attention->selection().chosenHeads();
            m_thresholdPanel->setViewSelection(m_attention->selectedLayer(),
                                               QList<int>(heads.begin(), heads.end()));
        }
        updateCaptions();
    });
    connect(m_thresholds, &ThresholdController::labelsChanged, this, &MainWindow::updateCaptions);
    connect(m_thresholds, &ThresholdController::roiChanged, this, &MainWindow::updateCaptions);
    connect(m_thresholdPanel, &ThresholdPanel::loadRequested, this, &MainWindow::loadThresholdsDialog);
    connect(m_thresholdPanel, &ThresholdPanel::saveRequested, this, &MainWindow::saveThresholdsDialog);
    connect(m_overlayAction, &QAction::toggled, m_attentionPanel, &AttentionPanel::setOverlayVisible);
    connect(m_attentionPanel, &AttentionPanel::overlayVisibilityChanged, m_overlayAction,
            &QAction::setChecked);
}

void MainWindow::updateRpnStatus() {
    QString text;
    switch (m_rpn->state()) {
        case RpnSession::State::Empty:
            text = m_model->pipelineModel() ? tr("no RPN: File › Open RPN Checkpoint… or Untrained RPN")
                                            : tr("no RPN (open a model first)");
            break;
        case RpnSession::State::Loading:
            text = tr("loading the RPN…");
            break;
        case RpnSession::State::Ready:
            text = tr("RPN: %1").arg(m_rpn->description());
            break;
        case RpnSession::State::Failed:
            text = tr("the RPN could not be loaded");
            break;
    }
    m_ask->setRpnStatus(text, m_rpn->state() == RpnSession::State::Failed ? m_rpn->errorMessage() : text);
    const bool model = m_model->pipelineModel() != nullptr;
    m_openRpnAction->setEnabled(model);
    m_twiginitAction->setEnabled(model);
}

void MainWindow::connectRpnSession() {
    connect(m_rpn, &RpnSession::stateChanged, this, &MainWindow::updateRpnStatus);
    connect(m_rpn, &RpnSession::stateChanged, this, [this](RpnSession::State state) {
        if (m_restore && m_restore->waitingForRpn && state != RpnSession::State::Loading) {
            m_restore->waitingForRpn = false;
            maybeFinishSessionRestore();
        }
    });
    connect(m_model, &ModelSession::stateChanged, this, &MainWindow::updateRpnStatus);
    connect(m_rpn, &RpnSession::loaded, this, [this](const QString& description) {
        statusBar()->showMessage(tr("RPN ready: %1").arg(description), kStatusTimeoutMs);
        m_ask->setSdrpnEnabled(true);
        setRoiViewVisible(true);
    });
    connect(m_rpn, &RpnSession::loadFailed, this,
            [this](const QString& message) { showError(tr("Cannot load the RPN"), message); });
    connect(m_rpn, &RpnSession::started, this, [this](const QString& question) {
        m_ask->clearAnswer();
        m_ask->setInfo(tr("Answering with SD-RPN: baseline, then the RoI crop…"));
        m_thresholds->setRoiAnswer(nullptr);
        // The maps of the previous answer no longer describe this one; the baseline's come with the answer.
        m_asks->clearResult();
        m_attention->setResult(nullptr, tr("Answering “%1”…").arg(question));
        statusBar()->showMessage(tr("Answering with SD-RPN…"));
    });
    connect(m_rpn, &RpnSession::runningChanged, this, [this](bool running) {
        m_ask->setBusy(running);
        m_stopAnswerAction->setEnabled(running);
    });
    connect(m_rpn, &RpnSession::baselineText, m_ask, &AskPanel::appendAnswer);
    connect(m_rpn, &RpnSession::roiText, m_ask, &AskPanel::appendRoiAnswer);
    connect(m_rpn, &RpnSession::answered, this, [this] {
        const auto result = m_rpn->result();
        m_ask->setAnswer(result->baselineAnswer);
        m_ask->setRoiAnswer(result->roiAnswer);
        QString info = describeTwoStageTimes(result->times);
        info +=
            result->roi.zoom()
                ? tr("\nRoI: %1 branch, crop %2 × %3 px, %4 RoI tokens%5")
                      .arg(QString::fromLatin1(sdrpn::roiBranchName(result->roi.branch)))
                      .arg(result->roi.sourceBox.width())
                      .arg(result->roi.sourceBox.height())
                      .arg(result->roiTokens)
                      .arg(result->kvReused ? tr(" (pass 2 reused the prefix's keys and values)") : QString())
                : tr("\nNo RoI above the threshold: the RoI answer is the baseline's.");
        m_ask->setInfo(info);
        if (result->baselineResult) m_attention->setResult(result->baselineResult);
        m_thresholds->setRoiAnswer(result);
        setRoiViewVisible(true);
        statusBar()->showMessage(tr("SD-RPN answered in %1 s").arg(result->times.total(), 0, 'f', 2),
                                 kStatusTimeoutMs);
    });
    connect(m_rpn, &RpnSession::stopped, this, [this] {
        m_ask->setInfo(tr("Stopped."));
        statusBar()->showMessage(tr("Answer stopped"), kStatusTimeoutMs);
    });
    connect(m_rpn, &RpnSession::failed, this, [this](const QString& message) {
        m_ask->setInfo(message, true);
        showError(tr("Cannot answer with SD-RPN"), message);
    });
    connect(m_ask, &AskPanel::sdrpnToggled, this, [this](bool on) {
        if (on && m_rpn->result()) setRoiViewVisible(true);
    });
}

void MainWindow::buildStudioTools() {
    m_tools = new StudioTools(this, m_jobs, m_model, m_attention, m_view, this);
    m_tools->addExportActions(m_exportMenu);
    if (auto* file = menuBar()->findChild<QMenu*>(QStringLiteral("FileMenu"))) {
        // After the session actions, before the export submenu.
        file->insertAction(m_exportMenu->menuAction(), m_tools->openStoreAction());
        file->insertSeparator(m_exportMenu->menuAction());
    }
    // Labeling and training first in the Jobs menu, before the panel toggle and the cancel actions.
    if (auto* jobs = menuBar()->findChild<QMenu*>(QStringLiteral("JobsMenu"))) {
        QAction* first = jobs->actions().value(0);
        jobs->insertAction(first, m_tools->labelAction());
        jobs->insertAction(first, m_tools->trainAction());
        jobs->insertAction(first, m_tools->evaluateAction());
        jobs->insertSeparator(first);
    }
    // The plots beside the model card and thresholds; the training curves and log beside the jobs.
    tabifyDockWidget(m_thresholdDock, m_tools->plotsDock());
    tabifyDockWidget(m_jobsDock, m_tools->trainingDock());
    m_modelDock->raise();
    m_attentionDock->raise();
    if (auto* view = menuBar()->findChild<QMenu*>(QStringLiteral("ViewMenu"))) {
        view->addAction(m_tools->plotsDock()->toggleViewAction());
        view->addAction(m_tools->trainingDock()->toggleViewAction());
        view->addAction(m_tools->storeDock()->toggleViewAction());
    }

    m_tools->setLabelSettings(m_thresholds->labelSettings());
    m_tools->setRpnSession(m_rpn);
    m_tools->setRoiSettings(m_thresholds->roiSettings());
    connect(m_thresholds, &ThresholdController::roiChanged, this,
            [this] { m_tools->setRoiSettings(m_thresholds->roiSettings()); });
    connect(m_thresholds, &ThresholdController::labelsChanged, this, [this] {
        // The labels also change with the maps; the plots need only the settings.
        if (m_thresholds->labelSettings().toJson() != m_tools->labelSettings().toJson())
            m_tools->setLabelSettings(m_thresholds->labelSettings());
        m_tools->setRpnSession(m_rpn);
        m_tools->setRoiSettings(m_thresholds->roiSettings());
        connect(m_thresholds, &ThresholdController::roiChanged, this,
                [this] { m_tools->setRoiSettings(m_thresholds->roiSettings()); });
    });
    connect(m_tools, &StudioTools::errorReported, this,
            [this](const QString& message) { showError(tr("SD-RPN Studio"), message); });
    connect(m_tools, &StudioTools::loadRpnRequested, this,
            [this](const QString& folder) { openRpn(folder); });
    connect(m_tools, &StudioTools::layerRequested, this, [this](int layer) {
        const auto result = m_attention->result();
        if (!result) return;
        const auto& layers = result->maps.layers;
        for (std::size_t slot = 0; slot < layers.size(); ++slot) {
            if (layers[slot].layer == layer) {
                m_attentionPanel->setLayerIndex(int(slot));
                return;
            }
        }
    });
}

bool MainWindow::openRpn(const QString& path) {
    if (path.isEmpty()) return false;
    if (!m_model->pipelineModel()) {
        showError(tr("Cannot load the RPN"),
                  tr("Open a model first: an RPN belongs to the model whose hidden states it reads."));
        return false;
    }
    statusBar()->showMessage(tr("Loading RPN %1…").arg(fileName(path)));
    return m_rpn->load(m_model->pipelineModel(), path) != 0;
}

bool MainWindow::initRpnFromModel() {
    if (!m_model->pipelineModel()) {
        showError(tr("Cannot make an RPN"),
                  tr("Open a model first: the untrained RPN is built from the model's own layers."));
        return false;
    }
    return m_rpn->initFromModel(m_model->pipelineModel()) != 0;
}

void MainWindow::setVisionTower(const QString& modelFolder, const QString& tower) {
    m_model->setVisionTower(
        QDir::cleanPath(QFileInfo(modelFolder).absoluteFilePath()),
        tower.isEmpty() ? QString() : QDir::cleanPath(QFileInfo(tower).absoluteFilePath()));
}

QString MainWindow::askForFolder(const QString& title, const QString& message, const QString& modelFolder,
                                 const QString& dialogKey) {
    if (m_askFolder) return m_askFolder(title, message, QFileInfo(modelFolder).absolutePath());
    QMessageBox box(QMessageBox::Question, title, message, QMessageBox::Cancel, this);
    QPushButton* choose = box.addButton(tr("Choose Folder…"), QMessageBox::AcceptRole);
    box.setDefaultButton(choose);
    box.exec();
    QString folder;
    if (box.clickedButton() == choose)
        folder = QFileDialog::getExistingDirectory(this, title, dialogDir(dialogKey));
    if (!folder.isEmpty()) rememberDialogDir(dialogKey, QFileInfo(folder).absolutePath());
    return folder;
}

void MainWindow::askForVisionTower(const VisionTowerRequest& request) {
    // Superseded by another load, or the window is going.
    if (m_closing || !m_model->isWaitingForVisionTower() || m_model->folder() != request.modelFolder) return;
    const QString title = tr("Choose the CLIP Folder");
    const QString message =
        request.message() + tr("\n\nChoose the CLIP vision tower folder (config.json and safetensors "
                               "weights, e.g. clip-vit-large-patch14-336).");
    const QString tower = askForFolder(title, message, request.modelFolder, QStringLiteral("clip"));
    // The question may have outlived the request (a model opened meanwhile, the window closed).
    if (m_closing || !m_model->isWaitingForVisionTower() || m_model->folder() != request.modelFolder) return;
    if (tower.isEmpty()) {
        m_model->declineVisionTower();
        return;
    }
    if (!QFileInfo::exists(tower + QStringLiteral("/config.json"))) {
        m_model->declineVisionTower(
            tr("%1 is not a CLIP folder: it has no config.json.").arg(QDir::toNativeSeparators(tower)));
        return;
    }
    setVisionTower(request.modelFolder, tower);
    m_model->load(request.modelFolder);
}

void MainWindow::setBaseModel(const QString& checkpointFolder, const QString& base) {
    m_model->setBaseModel(QDir::cleanPath(QFileInfo(checkpointFolder).absoluteFilePath()),
                          base.isEmpty() ? QString() : QDir::cleanPath(QFileInfo(base).absoluteFilePath()));
}

void MainWindow::askForBaseModel(const BaseModelRequest& request) {
    if (m_closing || !m_model->isWaitingForBaseModel() || m_model->folder() != request.modelFolder) return;
    const QString title = tr("Choose the Base Model");
    const QString message =
        request.message() + tr("\n\nChoose the base model folder (the LLaVA the checkpoint was trained "
                               "from, e.g. llava-v1.5-13b).");
    const QString base = askForFolder(title, message, request.modelFolder, QStringLiteral("model"));
    if (m_closing || !m_model->isWaitingForBaseModel() || m_model->folder() != request.modelFolder) return;
    if (base.isEmpty()) {
        m_model->declineBaseModel();
        return;
    }
    if (!QFileInfo::exists(base + QStringLiteral("/config.json"))) {
        m_model->declineBaseModel(
            tr("%1 is not a model folder: it has no config.json.").arg(QDir::toNativeSeparators(base)));
        return;
    }
    setBaseModel(request.modelFolder, base);
    m_model->load(request.modelFolder);
}

void MainWindow::buildInteropTools() {
    m_interop = new InteropTools(this, m_jobs, this);
    if (auto* file = menuBar()->findChild<QMenu*>(QStringLiteral("FileMenu")))
        file->insertAction(m_exportMenu->menuAction(), m_interop->convertAction());
    if (auto* jobs = menuBar()->findChild<QMenu*>(QStringLiteral("JobsMenu"))) {
        // After Label a dataset…: both fill a label store.
        const QList<QAction*> actions = jobs->actions();
        const int at = int(actions.indexOf(m_tools->labelAction()));
        jobs->insertAction(actions.value(at + 1), m_interop->importLabelsAction());
    }
    connect(m_interop, &InteropTools::errorReported, this,
            [this](const QString& message) { showError(tr("SD-RPN Studio"), message); });
    connect(m_interop, &InteropTools::importFinished, this,
            [this](const QString& store, const QString& imageRoot, const QString&) {
                m_tools->openLabelStore(store, imageRoot);
                statusBar()->showMessage(tr("Labels imported into %1").arg(fileName(store)),
                                         kStatusTimeoutMs);
            });
    connect(m_interop, &InteropTools::convertFinished, this, [this](const QString& folder, const QString&) {
        statusBar()->showMessage(tr("Converted weights written to %1").arg(folder), kStatusTimeoutMs);
    });
}

void MainWindow::applyModelDefaults(const QString& folder) {
    const sdrpn::ModelCard* card = m_model->card();
    if (!card) return;
    const QString base = m_model->baseModel(folder);
    if (m_options.useSettings && !base.isEmpty()) {
        QSettings settings;
        QVariantMap bases = settings.value(QStringLiteral("models/baseModels")).toMap();
        bases.insert(folder, base);
        settings.setValue(QStringLiteral("models/baseModels"), bases);
    }
    const QString tower = m_model->visionTower(folder);
    if (m_options.useSettings && !tower.isEmpty()) {
        QSettings settings;
        QVariantMap towers = settings.value(QStringLiteral("models/visionTowers")).toMap();
        towers.insert(folder, tower);
        settings.setValue(QStringLiteral("models/visionTowers"), towers);
    }
    const std::string preset = labelPresetForModel(*card);
    if (m_thresholds->selectModelPreset(preset))
        statusBar()->showMessage(
            tr("Model %1 ready; label preset %2").arg(fileName(folder), QString::fromStdString(preset)),
            kStatusTimeoutMs);
    // An SD-RPN checkpoint is the model and its RPN; a session being restored brings its own RPN.
    const bool restoringRpn = m_restore && (!m_restore->rpnPath.isEmpty() || m_restore->rpnUntrained);
    if (card->sdrpnCheckpoint && !restoringRpn) openRpn(folder);
}

void MainWindow::openRpnDialog() {
    const QString path = QFileDialog::getOpenFileName(
        this, tr("Open RPN Checkpoint"), dialogDir("rpn"),
        tr("SD-RPN checkpoints (*.safetensors config.json *.index.json);;All files (*)"));
    if (path.isEmpty()) return;
    rememberDialogDir("rpn", QFileInfo(path).absolutePath());
    openRpn(path);
}

void MainWindow::loadThresholdsDialog() {
    const QString path = QFileDialog::getOpenFileName(this, tr("Load Thresholds"), dialogDir("settings"),
                                                      tr("Settings (*.json);;All files (*)"));
    if (path.isEmpty()) return;
    rememberDialogDir("settings", QFileInfo(path).absolutePath());
    QString error;
    if (!m_thresholds->loadSettings(path, &error)) {
        showError(tr("Cannot load thresholds"), error);
        return;
    }
    statusBar()->showMessage(tr("Thresholds loaded from %1").arg(fileName(path)), kStatusTimeoutMs);
}

void MainWindow::saveThresholdsDialog() {
    QString path = QFileDialog::getSaveFileName(this, tr("Save Label Settings"), dialogDir("settings"),
                                                tr("Label settings (*.json)"));
    if (path.isEmpty()) return;
    if (!path.endsWith(QLatin1String(".json"), Qt::CaseInsensitive)) path += QLatin1String(".json");
    rememberDialogDir("settings", QFileInfo(path).absolutePath());
    // Two files, one per settings object, as the CLI takes them: labels.json and labels.roi.json.
    QString roiPath = path;
    roiPath.insert(roiPath.size() - 5, QLatin1String(".roi"));
    QString error;
    if (!m_thresholds->saveLabelSettings(path, &error) || !m_thresholds->saveRoiSettings(roiPath, &error)) {
        showError(tr("Cannot save thresholds"), error);
        return;
    }
    statusBar()->showMessage(
        tr("Label settings saved to %1, RoI settings to %2").arg(fileName(path), fileName(roiPath)),
        kStatusTimeoutMs);
}

QList<QPair<QString, QString>> MainWindow::keyboardShortcuts() const {
    QList<QPair<QString, QString>> list = {
        {tr("← / →"), tr("Previous / next layer")},
        {tr("↑ / ↓"), tr("Previous / next head choice (mean, grounding heads, set, then each head)")},
        {tr("Ctrl+Enter"), tr("Ask (in the question box)")},
        {tr("Esc"), tr("Stop the answer (in the question box)")},
        {tr("+ / −"), tr("Zoom in / out (in an image view)")},
        {tr("0 or F"), tr("Fit to the view (in an image view)")},
        {tr("1"), tr("Actual size (in an image view)")},
    };
    QStringList seen;
    for (const QMenu* menu : menuBar()->findChildren<QMenu*>()) {
        for (QAction* action : menu->actions()) {
            if (action->isSeparator() || action->menu()) continue;
            QString text = action->text();
            if (text.contains(QLatin1Char('\t'))) continue;  // the arrow keys, listed above
            text.remove(QLatin1Char('&'));
            QStringList sequences;
            for (const QKeySequence& sequence : action->shortcuts())
                sequences << sequence.toString(QKeySequence::NativeText);
            const QString keys = sequences.join(tr(" or "));
            if (keys.isEmpty() || seen.contains(text)) continue;
            seen << text;
            list.append({keys, text.remove(QStringLiteral("…"))});
        }
    }
    return list;
}

void MainWindow::showKeyboardShortcuts() {
    QString html = QStringLiteral("<table cellspacing=\"0\" cellpadding=\"3\">");
    for (const auto& [keys, what] : keyboardShortcuts())
        html += QStringLiteral("<tr><td><b>%1</b></td><td>&nbsp;&nbsp;%2</td></tr>")
                    .arg(keys.toHtmlEscaped(), what.toHtmlEscaped());
    html += QStringLiteral("</table>");
    if (!m_shortcutsBox) {
        m_shortcutsBox = new QMessageBox(this);
        m_shortcutsBox->setAttribute(Qt::WA_DeleteOnClose);
        m_shortcutsBox->setWindowTitle(tr("Keyboard Shortcuts"));
        m_shortcutsBox->setTextFormat(Qt::RichText);
        m_shortcutsBox->setStandardButtons(QMessageBox::Close);
        m_shortcutsBox->setWindowModality(Qt::NonModal);
    }
    m_shortcutsBox->setText(html);
    m_shortcutsBox->show();
    m_shortcutsBox->raise();
}

void MainWindow::keyPressEvent(QKeyEvent* event) {
    // Reached only when the focused widget (a text field, a slider, a spin box) did not use the key.
    const Qt::KeyboardModifiers mods = event->modifiers() & ~Qt::KeypadModifier;
    if (mods == Qt::NoModifier) {
        switch (event->key()) {
            case Qt::Key_Left:
                m_attentionPanel->selectPreviousLayer();
                event->accept();
                return;
            case Qt::Key_Right:
                m_attentionPanel->selectNextLayer();
                event->accept();
                return;
            case Qt::Key_Up:
                m_attentionPanel->selectPreviousHead();
                event->accept();
                return;
            case Qt::Key_Down:
                m_attentionPanel->selectNextHead();
                event->accept();
                return;
            default:
                break;
        }
    }
    QMainWindow::keyPressEvent(event);
}
