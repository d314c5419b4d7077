// StudioTools: plots, exports and the labeling / training jobs of the studio, packaged so that the main
// window adds them in a few lines. It creates
//   - the Plots dock: LayerStatsPlot (mass on the image, entropy, sink mass per layer for the current head
//     and query selection; click a layer → layerRequested) and MapHistogram (the current map with the
//     τs, β·max and α·max lines of the current label settings), refreshed on AttentionController::mapChanged;
//   - the Training dock: live TrainingCurves and the jobs' log;
//   - the Label store dock: a StoreBrowser over the store a labeling job writes, or one opened by hand;
//   - the evaluation job (Jobs > Evaluate…: baseline against SD-RPN on a dataset; its summary goes to the
//     Training dock's log);
//   - actions: Jobs > Label a dataset…, Jobs > Train RPN…, Jobs > Evaluate…, File > Export figure / maps /
//   boxes, File > Open
//     Label Store….
//
//   auto* tools = new StudioTools(this, jobs, modelSession, attention, imageView, this);
//   tools->addJobActions(jobsMenu);
//   tools->addExportActions(fileMenu);
//   connect(tools, &StudioTools::layerRequested, layerStrip, &LayerStrip::select);   // the window's choice
//   connect(tools, &StudioTools::loadRpnRequested, this, &MainWindow::loadRpn);
//
// The statistics come from the core (core/sdrpn/map_stats.h) on the controller's kept maps; nothing here
// runs the model except the jobs, which run on JobManager workers.
//
// Thread affinity: GUI thread.
#pragma once

#include <QObject>
#include <QPointer>
#include <QString>
#include <QVector>

#include "app/export.h"
#include "app/job_manager.h"
#include "app/labeling_job.h"
#include "app/training_job.h"
#include "app/evaluation_job.h"
#include "core/sdrpn/roi.h"
#include "core/sdrpn/labels.h"
#include "widgets/job_dialogs.h"

class AttentionController;
class ImageView;
class LayerStatsPlot;
class MapHistogram;
class ModelSession;
class QAction;
class QDockWidget;
class QMainWindow;
class QMenu;
class QPlainTextEdit;
class RpnSession;
class StoreBrowser;
class TrainingCurves;

class StudioTools : public QObject {
    Q_OBJECT
public:
    // The docks are added to `window` (right side, tabbed); `attention` and `view` may be null (no plots or
    // figure export then).
    StudioTools(QMainWindow* window, JobManager* jobs, ModelSession* model, AttentionController* attention,
                ImageView* view, QObject* parent = nullptr);
    ~StudioTools() override;

    void addJobActions(QMenu* menu);     // Label a dataset…, Train RPN…, Evaluate…, then a separator
    void addExportActions(QMenu* menu);  // Export figure…, Export maps…, Export boxes…

    // The thresholds the histogram draws, the sink statistics use and the box export labels with.
    void setLabelSettings(const sdrpn::LabelSettings& settings);
    const sdrpn::LabelSettings& labelSettings() const { return m_settings; }
    // The RPN that evaluations use, and the RoI thresholds they run with.
    void setRpnSession(RpnSession* rpn);
    void setRoiSettings(const sdrpn::RoiSettings& settings) { m_roiSettings = settings; }
    // The current image's file (its name goes into the COCO export; "" for a pasted image).
    void setImageFileName(const QString& path);

    QDockWidget* plotsDock() const { return m_plotsDock; }
    QDockWidget* trainingDock() const { return m_trainingDock; }
    QDockWidget* storeDock() const { return m_storeDock; }
    StoreBrowser* storeBrowser() const { return m_storeBrowser; }
    QAction* openStoreAction() const { return m_openStoreAction; }
    LayerStatsPlot* layerStatsPlot() const { return m_statsPlot; }
    MapHistogram* mapHistogram() const { return m_histogram; }
    TrainingCurves* trainingCurves() const { return m_curves; }
    LabelingJob* labelingJob() const { return m_labeling; }
    TrainingJob* trainingJob() const { return m_training; }
    EvaluationJob* evaluationJob() const { return m_evaluation; }
    QAction* evaluateAction() const { return m_evaluateAction; }
    QAction* labelAction() const { return m_labelAction; }
    QAction* trainAction() const { return m_trainAction; }
    QAction* exportFigureAction() const { return m_exportFigureAction; }
    QAction* exportMapsAction() const { return m_exportMapsAction; }
    QAction* exportBoxesAction() const { return m_exportBoxesAction; }
    QString logText() const;

    // What the export actions write, without dialogs (also for tests and batch use). The figure is the
    // current image with the heat-map overlay, a colour bar and a caption; maps are every layer's map for the
    // current head and query (.npy: one [layers, rows, cols] array; otherwise safetensors); boxes are the
    // pseudo-label foreground box of the current answer (COCO JSON, source pixels).
    sdrpn::Status exportFigure(const QString& path) const;
    sdrpn::Status exportMaps(const QString& path) const;
    sdrpn::Status exportBoxes(const QString& path) const;
    FigureSpec currentFigure() const;
    std::vector<ExportMap> currentMaps() const;

public slots:
    // The dialogs (modal); accepted values start the job.
    void labelDatasetDialog();
    void trainRpnDialog();
    JobId startLabeling(const LabelingJobOptions& options);
    JobId startTraining(const TrainingJobOptions& options);
    // Needs a loaded model and RPN; otherwise errorReported() says which is missing and 0 is returned.
    void evaluateDialog();
    JobId startEvaluation(const EvaluationJobOptions& options);
    void exportFigureDialog();
    void exportMapsDialog();
    void exportBoxesDialog();
    // Shows a label store in the Label store dock (read-only); false, with errorReported(), when `path` is
    // not one. `imageRoot` ("" = the store's folder) is where the preview looks for the images.
    bool openLabelStore(const QString& path, const QString& imageRoot = {});
    void openLabelStoreDialog();
    // Recomputes the plots from the controller's current maps and selection.
    void refreshPlots();

signals:
    // A click in the layer plot: the decoder layer the user picked.
    void layerRequested(int layer);
    // The user accepted loading a finished run's RPN from `folder`.
    void loadRpnRequested(const QString& folder);
    // A training run finished normally; the offer to load it is shown unless offersRpnLoad is off.
    void trainingFinished(const QString& folder);
    void errorReported(const QString& message);

public:
    // Ask (non-modal message box) whether to load a finished run's RPN. Off for tests and batch runs.
    bool offersRpnLoad = true;

private:
    void buildDocks();
    void buildActions();
    void appendLog(const QString& line);
    void updateActions();
    void reportError(const QString& title, const sdrpn::Status& status);
    void offerRpn(const QString& folder);

    QPointer<QMainWindow> m_window;
    JobManager* m_jobs;
    QPointer<ModelSession> m_model;
    QPointer<AttentionController> m_attention;
    QPointer<ImageView> m_view;
    sdrpn::LabelSettings m_settings;
    QString m_imageFileName;

    LabelingJob* m_labeling = nullptr;
    TrainingJob* m_training = nullptr;
    EvaluationJob* m_evaluation = nullptr;
    QPointer<RpnSession> m_rpn;
    sdrpn::RoiSettings m_roiSettings;
    QAction* m_evaluateAction = nullptr;
    EvalDialogValues m_lastEval;
    QDockWidget* m_plotsDock = nullptr;
    QDockWidget* m_trainingDock = nullptr;
    LayerStatsPlot* m_statsPlot = nullptr;
    MapHistogram* m_histogram = nullptr;
    TrainingCurves* m_curves = nullptr;
    QPlainTextEdit* m_log = nullptr;
    QDockWidget* m_storeDock = nullptr;
    StoreBrowser* m_storeBrowser = nullptr;
    QAction* m_openStoreAction = nullptr;
    QAction* m_labelAction = nullptr;
    QAction* m_trainAction = nullptr;
    QAction* m_exportFigureAction = nullptr;
    QAction* m_exportMapsAction = nullptr;
    QAction* m_exportBoxesAction = nullptr;

    LabelDialogValues m_lastLabel;
    TrainDialogValues m_lastTrain;
    // Per-layer statistics cache: recomputed only when the maps, the head / query or the settings change.
    const void* m_statsFor = nullptr;
    QString m_statsKey;  // the head / query selection the stats were computed for
    QVector<double> m_layers, m_mass, m_entropy, m_sink;
};
