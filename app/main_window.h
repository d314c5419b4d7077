// MainWindow: the studio shell. Central ImageView; docks for the model card, the question and the jobs;
// menus File / Edit / View / Jobs / Help; status bar with messages, cursor read-out, zoom and progress.
//
// It owns the JobManager (all background work), the ModelSession (the current model and its load job) and
// the current image. Opening an image or a model starts a job; the window stays responsive meanwhile.
// Errors (corrupt image, bad model folder, unreadable session) go to the status bar and a non-modal
// message box, and are emitted as errorReported(); nothing here throws.
//
//   MainWindow w;                    // settings from QSettings ("SD-RPN Studio")
//   w.show();
//   w.openModel("/models/llava-1.5-7b-hf");
//   w.openImage("photo.jpg");
//
// Asking: AskPanel::askRequested -> ask() -> AskSession (an answer job with the ModelSession's loaded model
// and the current image); the answer streams into the AskPanel, Stop cancels, the time per stage follows.
// The result (geometry + attention maps) is kept by the AttentionController, which draws the selected
// layer / head / query as a HeatmapOverlay on the image and fills the Attention dock (layer strip); the
// status bar reads out the cell under the cursor. Changing the selection never runs the model.
//
// The centre shows the image up to three times side by side, zoom and pan kept in sync: the raw attention
// map, its denoised form (SD-RPN's pseudo-labels: foreground / background / ignore cells, sink cells, the
// foreground box; ThresholdController) and, after an SD-RPN answer, the RPN's RoI (blurred probabilities,
// components, crop box). The Thresholds dock edits the label and RoI settings; every edit redraws from the
// kept maps and logits without a job. File › Open RPN Checkpoint… (or the untrained twig of the model) and
// the SD-RPN box of the Question dock make Ask run the two-stage answer (RpnSession): baseline and RoI
// answers side by side with the time per stage.
//
// Keys: ←/→ layer, ↑/↓ head (when no text field or slider has the focus), O heat-map overlay, D denoised
// view, R RoI view; Help › Keyboard Shortcuts lists them all.
//
// Thread affinity: GUI thread.
#pragma once

#include <functional>
#include <optional>

#include <QImage>
#include <QList>
#include <QMap>
#include <QMainWindow>
#include <QPair>
#include <QPointer>
#include <QString>

#include "app/ask_session.h"
#include "app/job_manager.h"
#include "app/model_session.h"
#include "app/recent_files.h"
#include "app/rpn_session.h"
#include "app/session_file.h"

class AskPanel;
class AttentionController;
class AttentionPanel;
class HeatmapOverlay;
class ImageView;
class InteropTools;
class JobsPanel;
class ModelCardPanel;
class QAction;
class QDockWidget;
class QLabel;
class QMenu;
class QMessageBox;
class QProgressBar;
class QSplitter;
class StudioTools;
class ThresholdController;
class ThresholdPanel;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    struct Options {
        // Read and write QSettings (recent files, geometry, dock layout). Off for tests and --screenshot.
        bool useSettings = true;
    };

    explicit MainWindow(QWidget* parent = nullptr);
    explicit MainWindow(const Options& options, QWidget* parent = nullptr);
    ~MainWindow() override;

    JobManager* jobManager() const { return m_jobs; }
    ModelSession* modelSession() const { return m_model; }
    ImageView* imageView() const { return m_view; }
    AskPanel* askPanel() const { return m_ask; }
    AskSession* askSession() const { return m_asks; }
    AttentionPanel* attentionPanel() const { return m_attentionPanel; }
    AttentionController* attention() const { return m_attention; }
    std::shared_ptr<HeatmapOverlay> heatmapOverlay() const;
    ModelCardPanel* modelCardPanel() const { return m_card; }
    JobsPanel* jobsPanel() const { return m_jobsPanel; }
    // The denoised (labels) and RoI views beside the raw one; the Thresholds dock and its controller.
    ImageView* labelView() const { return m_labelView; }
    ImageView* roiView() const { return m_roiView; }
    ThresholdPanel* thresholdPanel() const { return m_thresholdPanel; }
    ThresholdController* thresholds() const { return m_thresholds; }
    RpnSession* rpnSession() const { return m_rpn; }
    // Plots, exports, labeling and training (Jobs › Label a dataset…, Train RPN…; the Plots and Training
    // docks; File › Export).
    StudioTools* studioTools() const { return m_tools; }
    bool isDenoisedViewVisible() const;
    bool isRoiViewVisible() const;
    // Every keyboard shortcut: (keys, what they do), as Help › Keyboard Shortcuts lists them.
    QList<QPair<QString, QString>> keyboardShortcuts() const;

    // The file the current image came from; empty for a pasted image or none.
    QString imagePath() const { return m_imagePath; }
    bool isBusy() const { return m_jobs->activeCount() > 0; }
    QString lastError() const { return m_lastError; }
    // Whether ask() can start now; when not, `reason` says why (no model, still loading, no image, ...).
    bool canAsk(QString* reason = nullptr) const;
    // The cell read-out of the status bar for image pixel `pixel` (empty when no map covers it).
    QString cellReadOut(const QPoint& pixel) const;
    StudioSession currentSession() const;
    QString aboutText() const;

    // Closing the window while jobs run asks first: `handler` gets the running jobs' titles and returns
    // true to cancel them and quit, false to keep the window open. Without a handler (the default) a
    // modal QMessageBox asks (Cancel / Quit). Tests and batch runs set one.
    using ConfirmCloseHandler = std::function<bool(const QStringList& runningJobs)>;
    void setConfirmCloseHandler(ConfirmCloseHandler handler) { m_confirmClose = std::move(handler); }
    // The question the default handler asks, e.g. "2 jobs are running (Label dataset, Train RPN). Cancel
    // them and quit?".
    static QString closeQuestion(const QStringList& runningJobs);
    // Asking the user for a folder (the CLIP folder of an original-layout LLaVA): `handler` gets a title, a
    // message naming what is looked for and a start folder, and returns the chosen folder (empty: none).
    // Without a handler (the default) a message box explains and a folder dialog asks. Tests and batch runs
    // set one.
    using AskFolderHandler =
        std::function<QString(const QString& title, const QString& message, const QString& startDir)>;
    void setAskFolderHandler(AskFolderHandler handler) { m_askFolder = std::move(handler); }
    // The CLIP folder to load the original-layout LLaVA in `modelFolder` with; remembered in QSettings
    // (when the window uses them) once the model has loaded with it.
    void setVisionTower(const QString& modelFolder, const QString& tower);
    // The base model that fills the unfilled SD-RPN checkpoint in `checkpointFolder` (asked for, like the
    // CLIP folder, when a checkpoint needs one and none is set); remembered in QSettings likewise.
    void setBaseModel(const QString& checkpointFolder, const QString& base);
    InteropTools* interopTools() const { return m_interop; }
    QStringList recentModels() const { return m_recentModels.entries(); }
    QStringList recentImages() const { return m_recentImages.entries(); }

public slots:
    void openModel(const QString& folder);
    // Decodes on a worker; imageLoaded() or imageLoadFailed() (plus an error message) follows.
    void openImage(const QString& path);
    // Shows an image that has no file (paste, drop of image data).
    void setPastedImage(const QImage& image);
    void pasteFromClipboard();
    // Opens what was dropped or pasted: a folder is a model, a session file a session, anything else an
    // image.
    void openPath(const QString& path);
    bool saveSession(const QString& path);
    // Restores asynchronously (model and image load as jobs); sessionRestored() when all is in place.
    bool openSession(const QString& path);
    bool exportView(const QString& path);
    // Loads an SD-RPN checkpoint (folder, config.json or .safetensors) for the loaded model as a job.
    bool openRpn(const QString& path);
    // An untrained RPN from the loaded model's own layers (twiginit), as a job.
    bool initRpnFromModel();
    void setDenoisedViewVisible(bool visible);
    void setRoiViewVisible(bool visible);
    void showKeyboardShortcuts();
    void setQuestion(const QString& question);
    // Asks `question` (the question box's text when empty) about the current image. False, with the reason
    // in the answer area and the status bar, when there is no model or image; an answer under way is
    // stopped first.
    bool ask(const QString& question = {});
    void stopAnswer();
    void showError(const QString& title, const QString& message);

signals:
    void imageLoaded(const QString& path);
    void imageLoadFailed(const QString& path, const QString& message);
    void errorReported(const QString& message);
    void sessionRestored();

protected:
    void closeEvent(QCloseEvent* event) override;
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;
    void keyPressEvent(QKeyEvent* event) override;

private slots:
    void openModelDialog();
    void openImageDialog();
    void saveSessionDialog();
    void openSessionDialog();
    void exportViewDialog();
    void showAbout();
    void onAskRequested(const QString& question);
    void openRpnDialog();
    void loadThresholdsDialog();
    void saveThresholdsDialog();

private:
    void buildActions();
    void buildMenus();
    void buildToolBar();
    void buildDocks();
    void buildStatusBar();
    void connectModelSession();
    void connectAskSession();
    void connectRpnSession();
    void connectThresholds();
    void buildStudioTools();
    QWidget* buildCentre();
    void syncViews(ImageView* source);
    void updateCaptions();
    void updateRpnStatus();
    void connectJobs();
    void rebuildRecentMenu();
    void updateTitle();
    void updateZoomLabel();
    void updateAskAvailability();
    void updateProgress();
    void restoreSettings();
    void saveSettings() const;
    void applyImage(const QImage& image, const QString& path);
    void maybeFinishSessionRestore();
    bool confirmClose();
    void askForVisionTower(const VisionTowerRequest& request);
    void askForBaseModel(const BaseModelRequest& request);
    // A folder the loading model needs: the test handler when set (it gets the model folder's parent), else
    // a question with a "Choose Folder…" button and a folder dialog that starts where `dialogKey` was last
    // used. Empty when declined.
    QString askForFolder(const QString& title, const QString& message, const QString& modelFolder,
                         const QString& dialogKey);
    void buildInteropTools();
    void applyModelDefaults(const QString& folder);
    QString dialogDir(const QString& key) const;
    void rememberDialogDir(const QString& key, const QString& path) const;

    Options m_options;
    JobManager* m_jobs = nullptr;
    ModelSession* m_model = nullptr;
    ImageView* m_view = nullptr;
    ModelCardPanel* m_card = nullptr;
    AskPanel* m_ask = nullptr;
    AskSession* m_asks = nullptr;
    AttentionPanel* m_attentionPanel = nullptr;
    AttentionController* m_attention = nullptr;
    JobsPanel* m_jobsPanel = nullptr;
    ImageView* m_labelView = nullptr;
    ImageView* m_roiView = nullptr;
    QWidget* m_labelPane = nullptr;
    QWidget* m_roiPane = nullptr;
    QLabel* m_rawCaption = nullptr;
    QLabel* m_labelCaption = nullptr;
    QLabel* m_roiCaption = nullptr;
    QSplitter* m_views = nullptr;
    bool m_syncingViews = false;
    std::shared_ptr<const QuestionResult> m_thresholdsMaps;  // the maps the thresholds label
    ThresholdPanel* m_thresholdPanel = nullptr;
    ThresholdController* m_thresholds = nullptr;
    RpnSession* m_rpn = nullptr;
    StudioTools* m_tools = nullptr;
    QMenu* m_exportMenu = nullptr;
    QDockWidget* m_thresholdDock = nullptr;
    QPointer<QMessageBox> m_shortcutsBox;
    QDockWidget* m_modelDock = nullptr;
    QDockWidget* m_askDock = nullptr;
    QDockWidget* m_attentionDock = nullptr;
    QDockWidget* m_jobsDock = nullptr;
    QMenu* m_recentMenu = nullptr;
    QLabel* m_pixelLabel = nullptr;
    QLabel* m_cellLabel = nullptr;
    QLabel* m_zoomLabel = nullptr;
    QLabel* m_progressLabel = nullptr;
    QProgressBar* m_progress = nullptr;
    QPointer<QMessageBox> m_errorBox;
    QPointer<QMessageBox> m_aboutBox;

    struct RunningJob {
        QString title;
        double fraction = -1;
        QString message;
    };
    QMap<JobId, RunningJob> m_running;

    QAction* m_openModelAction = nullptr;
    QAction* m_openImageAction = nullptr;
    QAction* m_saveSessionAction = nullptr;
    QAction* m_openSessionAction = nullptr;
    QAction* m_exportViewAction = nullptr;
    QAction* m_quitAction = nullptr;
    QAction* m_pasteAction = nullptr;
    QAction* m_zoomInAction = nullptr;
    QAction* m_zoomOutAction = nullptr;
    QAction* m_fitAction = nullptr;
    QAction* m_actualSizeAction = nullptr;
    QAction* m_cancelAllAction = nullptr;
    QAction* m_stopAnswerAction = nullptr;
    QAction* m_clearJobsAction = nullptr;
    QAction* m_openRpnAction = nullptr;
    QAction* m_twiginitAction = nullptr;
    QAction* m_loadThresholdsAction = nullptr;
    QAction* m_saveThresholdsAction = nullptr;
    QAction* m_overlayAction = nullptr;
    QAction* m_denoisedAction = nullptr;
    QAction* m_roiAction = nullptr;
    QAction* m_shortcutsAction = nullptr;
    QAction* m_aboutAction = nullptr;
    QAction* m_aboutQtAction = nullptr;

    RecentFiles m_recentModels;
    RecentFiles m_recentImages;
    QString m_imagePath;
    QByteArray m_pastedPng;  // kept for sessions: a pasted image has no file
    JobId m_imageJob = 0;
    quint64 m_imageRequest = 0;
    QString m_lastError;
    bool m_closing = false;
    ConfirmCloseHandler m_confirmClose;
    AskFolderHandler m_askFolder;
    InteropTools* m_interop = nullptr;

    // Session restore in progress: the view is applied once the image is in.
    struct PendingRestore {
        std::optional<ImageViewState> view;
        bool waitingForImage = false;
        bool waitingForModel = false;
        bool waitingForRpn = false;
        // Applied once the model, the image and the RPN are in (opening an image drops the maps).
        QString rpnPath;
        bool rpnUntrained = false;
        std::shared_ptr<const QuestionResult> maps;
        std::shared_ptr<const TwoStageAnswer> roi;
        int layerSlot = -1, head = -1, query = -1;
        QList<int> heads;             // a set of heads (empty: none)
        bool groundingHeads = false;  // the preset's grounding heads
        int answerToken = -1;         // the one answer token (-1: none saved)
        QString answer, roiAnswer;
    };
    std::optional<PendingRestore> m_restore;
};
