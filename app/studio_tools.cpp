#include "app/studio_tools.h"

#include <cmath>

#include <QAction>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QMainWindow>
#include <QMenu>
#include <QMessageBox>
#include <QPainter>
#include <QPlainTextEdit>
#include <QSplitter>

#include "app/attention_controller.h"
#include "app/attention_maps.h"
#include "app/model_session.h"
#include "app/rpn_session.h"
#include "app/store_browser.h"
#include "core/sdrpn/map_stats.h"
#include "widgets/image_view.h"
#include "widgets/plots.h"

namespace {

sdrpn::models::QueryKind queryKind(QueryChoice choice) {
    switch (choice) {
        case QueryChoice::LastPrompt:
            return sdrpn::models::QueryKind::LastPrompt;
        case QueryChoice::Question:
            return sdrpn::models::QueryKind::Question;
        case QueryChoice::Answer:
        case QueryChoice::AnswerToken:
            break;
    }
    return sdrpn::models::QueryKind::Answer;
}

QVector<double> toQVector(const std::vector<double>& v) {
    return QVector<double>(v.begin(), v.end());
}

}  // namespace

StudioTools::StudioTools(QMainWindow* window, JobManager* jobs, ModelSession* model,
                         AttentionController* attention, ImageView* view, QObject* parent)
    : QObject(parent), m_window(window), m_jobs(jobs), m_model(model), m_attention(attention), m_view(view) {
    m_labeling = new LabelingJob(jobs, this);
    m_training = new TrainingJob(jobs, this);
    m_evaluation = new EvaluationJob(jobs, this);
    buildDocks();
    buildActions();

    connect(m_labeling, &LabelingJob::logLine, this, &StudioTools::appendLog);
    connect(m_training, &TrainingJob::logLine, this, &StudioTools::appendLog);
    connect(m_evaluation, &EvaluationJob::logLine, this, &StudioTools::appendLog);
    connect(m_evaluation, &EvaluationJob::failedToStart, this,
            [this](const QString& why) { emit errorReported(tr("Evaluation: %1").arg(why)); });
    connect(m_evaluation, &EvaluationJob::finished, this, [this] {
        updateActions();
        if (m_trainingDock) m_trainingDock->raise();
    });
    connect(m_labeling, &LabelingJob::failedToStart, this,
            [this](const QString& why) { emit errorReported(tr("Labeling: %1").arg(why)); });
    connect(m_training, &TrainingJob::failedToStart, this,
            [this](const QString& why) { emit errorReported(tr("Training: %1").arg(why)); });
    connect(m_training, &TrainingJob::stepFinished, this,
            [this](const TrainingPoint& p) { m_curves->appendPoint(double(p.step), p.loss, p.lr); });
    connect(m_training, &TrainingJob::rpnReady, this, [this](const QString& folder) {
        emit trainingFinished(folder);
        if (offersRpnLoad) offerRpn(folder);
    });
    connect(m_labeling, &LabelingJob::finished, this, [this] { updateActions(); });
    connect(m_training, &TrainingJob::finished, this, [this] { updateActions(); });
    if (m_attention) connect(m_attention, &AttentionController::mapChanged, this, &StudioTools::refreshPlots);
    if (m_model) connect(m_model, &ModelSession::stateChanged, this, &StudioTools::updateActions);
    updateActions();
}

StudioTools::~StudioTools() = default;

void StudioTools::buildDocks() {
    m_statsPlot = new LayerStatsPlot;
    m_histogram = new MapHistogram;
    m_histogram->setValueLabel(tr("attention"));
    auto* split = new QSplitter(Qt::Vertical);
    split->addWidget(m_statsPlot);
    split->addWidget(m_histogram);
    m_plotsDock = new QDockWidget(tr("Plots"), m_window);
    m_plotsDock->setObjectName(QStringLiteral("plotsDock"));
    m_plotsDock->setWidget(split);
    connect(m_statsPlot, &LayerStatsPlot::layerClicked, this, &StudioTools::layerRequested);

    m_curves = new TrainingCurves;
    m_log = new QPlainTextEdit;
    m_log->setReadOnly(true);
    m_log->setMaximumBlockCount(5000);
    auto* trainSplit = new QSplitter(Qt::Vertical);
    trainSplit->addWidget(m_curves);
    trainSplit->addWidget(m_log);
    m_trainingDock = new QDockWidget(tr("Training"), m_window);
    m_trainingDock->setObjectName(QStringLiteral("trainingDock"));
    m_trainingDock->setWidget(trainSplit);

    if (m_window) {
        m_window->addDockWidget(Qt::RightDockWidgetArea, m_plotsDock);
        m_window->addDockWidget(Qt::RightDockWidgetArea, m_trainingDock);
        m_window->tabifyDockWidget(m_plotsDock, m_trainingDock);
        m_plotsDock->raise();
    }

    m_storeBrowser = new StoreBrowser;
    m_storeBrowser->setLabelSettings(m_settings);
    m_storeDock = new QDockWidget(tr("Label store"), m_window);
    m_storeDock->setObjectName(QStringLiteral("storeDock"));
    m_storeDock->setWidget(m_storeBrowser);
    if (m_window) {
        m_window->addDockWidget(Qt::BottomDockWidgetArea, m_storeDock);
        m_storeDock->hide();
    }
}

void StudioTools::buildActions() {
    m_labelAction = new QAction(tr("&Label a dataset…"), this);
    m_labelAction->setStatusTip(tr("Pseudo-label a dataset with the loaded model, in the background"));
    connect(m_labelAction, &QAction::triggered, this, &StudioTools::labelDatasetDialog);
    m_trainAction = new QAction(tr("&Train RPN…"), this);
    m_trainAction->setStatusTip(tr("Train the region proposal network on a label store, in the background"));
    connect(m_trainAction, &QAction::triggered, this, &StudioTools::trainRpnDialog);
    m_evaluateAction = new QAction(tr("&Evaluate…"), this);
    m_evaluateAction->setStatusTip(tr(
        "Answer a dataset with the baseline and with SD-RPN, score both and time them, in the background"));
    connect(m_evaluateAction, &QAction::triggered, this, &StudioTools::evaluateDialog);
    m_exportFigureAction = new QAction(tr("Export &figure…"), this);
    m_exportFigureAction->setStatusTip(tr("The image with the map, a colour bar and a caption, as PNG"));
    connect(m_exportFigureAction, &QAction::triggered, this, &StudioTools::exportFigureDialog);
    m_exportMapsAction = new QAction(tr("Export &maps…"), this);
    m_exportMapsAction->setStatusTip(
        tr("Every layer's map for the current head and query (safetensors or NPY)"));
    connect(m_exportMapsAction, &QAction::triggered, this, &StudioTools::exportMapsDialog);
    m_exportBoxesAction = new QAction(tr("Export &boxes…"), this);
    m_exportBoxesAction->setStatusTip(tr("The pseudo-label box of the current answer as COCO JSON"));
    connect(m_exportBoxesAction, &QAction::triggered, this, &StudioTools::exportBoxesDialog);
    m_openStoreAction = new QAction(tr("Open &Label Store…"), this);
    m_openStoreAction->setStatusTip(tr("Browse the samples and labels of a label store (read-only)"));
    connect(m_openStoreAction, &QAction::triggered, this, &StudioTools::openLabelStoreDialog);
}

void StudioTools::addJobActions(QMenu* menu) {
    menu->addAction(m_labelAction);
    menu->addAction(m_trainAction);
    menu->addAction(m_evaluateAction);
    menu->addSeparator();
}

void StudioTools::addExportActions(QMenu* menu) {
    menu->addAction(m_exportFigureAction);
    menu->addAction(m_exportMapsAction);
    menu->addAction(m_exportBoxesAction);
}

void StudioTools::updateActions() {
    m_labelAction->setEnabled(!m_labeling->isRunning());
    m_trainAction->setEnabled(!m_training->isRunning());
    m_evaluateAction->setEnabled(!m_evaluation->isRunning());
}

void StudioTools::setLabelSettings(const sdrpn::LabelSettings& settings) {
    m_settings = settings;
    m_statsFor = nullptr;  // the sink mask depends on the settings
    refreshPlots();
    if (m_storeBrowser) m_storeBrowser->setLabelSettings(settings);
}

void StudioTools::setImageFileName(const QString& path) {
    m_imageFileName = QFileInfo(path).fileName();
}

void StudioTools::appendLog(const QString& line) {
    m_log->appendPlainText(line);
}

QString StudioTools::logText() const {
    return m_log->toPlainText();
}

void StudioTools::reportError(const QString& title, const sdrpn::Status& status) {
    const QString message = title + QStringLiteral(": ") + QString::fromStdString(status.message);
    appendLog(message);
    emit errorReported(message);
}

// ---- plots ---------------------------------------------------------------------------------------------

void StudioTools::refreshPlots() {
    const auto result = m_attention ? m_attention->result() : nullptr;
    if (!result || result->maps.empty()) {
        m_statsPlot->clear();
        m_histogram->clear();
        m_statsFor = nullptr;
        return;
    }
    const MapSelection sel = m_attention->selection();
    const TokenGrid grid = m_attention->tokenGrid();
    const auto& maps = result->maps;
    // The heads and query in words name the selection exactly (the grounding heads per layer included).
    const QString statsKey = m_attention->headText() + QLatin1Char('|') + m_attention->queryText();
    if (m_statsFor != result.get() || m_statsKey != statsKey) {
        std::vector<std::uint8_t> sinks;
        try {
            const sdrpn::GridMap sink = sdrpn::attentionToImage(maps, m_settings.sink, queryKind(sel.query));
            if (int(sink.values.size()) == int(grid.cells()))
                sinks = sdrpn::sinkCells(sink, m_settings.sinkThreshold);
        } catch (const std::exception&) {
            // No sink group, or its layer was not captured: no sink statistics (NaN, drawn as a gap).
        }
        std::vector<std::vector<float>> perLayer;
        m_layers.clear();
        for (std::size_t slot = 0; slot < maps.layers.size(); ++slot) {
            perLayer.push_back(attentionGrid(maps, m_attention->selectionAt(int(slot)), grid));
            m_layers << double(maps.layers[slot].layer);
        }
        const std::vector<sdrpn::MapStats> stats = sdrpn::mapStatsPerLayer(perLayer, sinks);
        std::vector<double> mass, entropy, sink;
        for (const auto& s : stats) {
            mass.push_back(s.imageMass);
            entropy.push_back(s.entropy);
            sink.push_back(s.sinkMass);
        }
        m_mass = toQVector(mass);
        m_entropy = toQVector(entropy);
        m_sink = toQVector(sink);
        m_statsPlot->setStats(m_layers, m_mass, m_entropy, m_sink);
        m_statsFor = result.get();
        m_statsKey = statsKey;
    }
    m_statsPlot->setCurrentLayer(m_attention->selectedLayer());

    const std::vector<float>& current = m_attention->currentGrid();
    if (current.empty()) {
        m_histogram->clear();
        return;
    }
    const sdrpn::Histogram h = sdrpn::histogram(current, 40);
    QVector<double> counts;
    for (std::int64_t c : h.counts) counts << double(c);
    m_histogram->setHistogram(h.min, h.max, counts);
    double peak = 0.0;
    for (float v : current)
        if (std::isfinite(v)) peak = std::max(peak, double(v));
    // sdrpn.md §2.6: foreground g' > α·max, background g' < β·max (relative to this map's peak here), and
    // the sink threshold τs on the sink map.
    m_histogram->setThresholds({{m_settings.sinkThreshold, tr("τs"), QColor(150, 60, 170)},
                                {m_settings.backgroundRatio * peak, tr("β·max"), QColor(40, 140, 60)},
                                {m_settings.foregroundRatio * peak, tr("α·max"), QColor(210, 50, 50)}});
}

// ---- exports -------------------------------------------------------------------------------------------

FigureSpec StudioTools::currentFigure() const {
    FigureSpec spec;
    if (!m_view || !m_view->hasImage()) return spec;
    spec.image = m_view->image();
    QStringList caption;
    if (m_model && !m_model->folder().isEmpty()) caption << QFileInfo(m_model->folder()).fileName();
    if (m_attention) {
        const auto overlay = m_attention->overlay();
        if (overlay && !overlay->isEmpty() && overlay->isVisible()) {
            spec.overlay = QImage(spec.image.size(), QImage::Format_ARGB32_Premultiplied);
            spec.overlay.fill(Qt::transparent);
            QPainter p(&spec.overlay);
            overlay->paint(p, QRectF(QPointF(0, 0), QSizeF(spec.image.size())), 1.0);
            p.end();
            const auto [lo, hi] = overlay->valueRange();
            spec.minValue = lo;
            spec.maxValue = hi;
            spec.colorMap = overlay->style().colorMap;
            spec.valueLabel = tr("attention");
        } else {
            spec.colorBar = false;
        }
        if (m_attention->selectedLayer() >= 0) caption << tr("layer %1").arg(m_attention->selectedLayer());
        if (m_attention->result()) caption << m_attention->headText() << m_attention->queryText();
    } else {
        spec.colorBar = false;
    }
    caption << tr("τs %1, α %2, β %3")
                   .arg(m_settings.sinkThreshold)
                   .arg(m_settings.foregroundRatio)
                   .arg(m_settings.backgroundRatio);
    spec.caption = viewCaption(caption);
    return spec;
}

sdrpn::Status StudioTools::exportFigure(const QString& path) const {
    return exportFigurePng(path, currentFigure());
}

std::vector<ExportMap> StudioTools::currentMaps() const {
    std::vector<ExportMap> out;
    const auto result = m_attention ? m_attention->result() : nullptr;
    if (!result) return out;
    const TokenGrid grid = m_attention->tokenGrid();
    for (std::size_t slot = 0; slot < result->maps.layers.size(); ++slot) {
        const MapSelection s = m_attention->selectionAt(int(slot));
        std::vector<float> values = attentionGrid(result->maps, s, grid);
        if (values.empty()) continue;
        // "head_mean", "head_4" or "heads_0_2"; "last_prompt", "question", "answer" or "answer_token_2".
        const std::vector<int> heads = s.chosenHeads();
        QString head = heads.empty()       ? QStringLiteral("head_mean")
                       : heads.size() == 1 ? QStringLiteral("head")
                                           : QStringLiteral("heads");
        for (int h : heads) head += QStringLiteral("_%1").arg(h);
        const QString query = s.query == QueryChoice::AnswerToken
                                  ? QStringLiteral("answer_token_%1").arg(s.answerToken)
                                  : QStringList{"last_prompt", "question", "answer"}.value(int(s.query));
        out.push_back({QStringLiteral("layer_%1.%2.%3").arg(result->maps.layers[slot].layer).arg(head, query),
                       grid.rows, grid.cols, std::move(values)});
    }
    return out;
}

sdrpn::Status StudioTools::exportMaps(const QString& path) const {
    const std::vector<ExportMap> maps = currentMaps();
    if (path.endsWith(QStringLiteral(".npy"), Qt::CaseInsensitive)) return exportMapsNpy(path, maps);
    std::map<std::string, std::string> metadata{{"format", "sdrpn-maps"}};
    if (m_model) metadata["model"] = QFileInfo(m_model->folder()).fileName().toStdString();
    if (const auto r = m_attention ? m_attention->result() : nullptr)
        metadata["question"] = r->question.toStdString();
    return exportMapsSafetensors(path, maps, metadata);
}

sdrpn::Status StudioTools::exportBoxes(const QString& path) const {
    const auto result = m_attention ? m_attention->result() : nullptr;
    if (!result)
        return sdrpn::Status::failed(path.toStdString() + ": there is no answer with maps to export");
    auto labels = sdrpn::guarded([&] {
        const sdrpn::GridMap grounding = sdrpn::groundingMap(result->maps, m_settings);
        const sdrpn::GridMap sink = sdrpn::sinkMap(result->maps, m_settings);
        return sdrpn::makeLabels(grounding, sink, m_settings, sdrpn::knownBackgroundMask(result->geometry));
    });
    if (!labels) return sdrpn::Status::failed(path.toStdString() + ": " + labels.message());
    CocoImage image;
    image.fileName = m_imageFileName.isEmpty() ? QStringLiteral("image.png") : m_imageFileName;
    image.width = result->geometry.sourceWidth;
    image.height = result->geometry.sourceHeight;
    if (labels.value().ok()) {
        const sdrpn::models::RectF r = result->geometry.gridBoxToSource(labels.value().box);
        image.boxes.push_back({QStringLiteral("foreground"), QRectF(r.x0, r.y0, r.width(), r.height())});
    }
    return exportCocoJson(path, {image});
}

void StudioTools::exportFigureDialog() {
    const QString path =
        QFileDialog::getSaveFileName(m_window, tr("Export figure"), QString(), tr("PNG images (*.png)"));
    if (path.isEmpty()) return;
    const sdrpn::Status s = exportFigure(path);
    if (!s.ok()) reportError(tr("Export figure"), s);
}

void StudioTools::exportMapsDialog() {
    const QString path = QFileDialog::getSaveFileName(m_window, tr("Export maps"), QString(),
                                                      tr("safetensors (*.safetensors);;NumPy (*.npy)"));
    if (path.isEmpty()) return;
    const sdrpn::Status s = exportMaps(path);
    if (!s.ok()) reportError(tr("Export maps"), s);
}

void StudioTools::exportBoxesDialog() {
    const QString path =
        QFileDialog::getSaveFileName(m_window, tr("Export boxes"), QString(), tr("COCO JSON (*.json)"));
    if (path.isEmpty()) return;
    const sdrpn::Status s = exportBoxes(path);
    if (!s.ok()) reportError(tr("Export boxes"), s);
}

// ---- jobs ----------------------------------------------------------------------------------------------

void StudioTools::labelDatasetDialog() {
    QStringList presets;
    for (const std::string& name : sdrpn::LabelSettings::presetNames())
        presets << QString::fromStdString(name);
    LabelDatasetDialog dialog(presets, m_window);
    dialog.setValues(m_lastLabel);
    if (dialog.exec() != QDialog::Accepted) return;
    m_lastLabel = dialog.values();
    LabelingJobOptions o;
    o.dataset = m_lastLabel.dataset;
    o.imageRoot = m_lastLabel.imageRoot;
    o.store = m_lastLabel.store;
    o.preset = m_lastLabel.preset;
    o.settingsFile = m_lastLabel.settingsFile;
    o.limit = m_lastLabel.limit > 0 ? m_lastLabel.limit : -1;
    o.maxNewTokens = m_lastLabel.maxNewTokens;
    // The next training run most likely learns from this store.
    if (m_lastTrain.store.isEmpty()) {
        m_lastTrain.store = o.store;
        m_lastTrain.imageRoot = o.imageRoot;
    }
    startLabeling(o);
}

void StudioTools::trainRpnDialog() {
    TrainRpnDialog dialog(m_window);
    dialog.setValues(m_lastTrain);
    if (dialog.exec() != QDialog::Accepted) return;
    m_lastTrain = dialog.values();
    TrainingJobOptions o;
    o.store = m_lastTrain.store;
    o.imageRoot = m_lastTrain.imageRoot;
    o.outDir = m_lastTrain.outDir;
    o.epochs = m_lastTrain.epochs;
    o.maxSteps = m_lastTrain.maxSteps > 0 ? m_lastTrain.maxSteps : -1;
    o.batch = m_lastTrain.batch;
    o.accum = m_lastTrain.accum;
    o.lr = m_lastTrain.lr;
    o.resume = m_lastTrain.resume;
    startTraining(o);
}

JobId StudioTools::startLabeling(const LabelingJobOptions& options) {
    const JobId id = m_labeling->start(m_model ? m_model->pipelineModel() : nullptr, options);
    if (id) {
        // Watch the store fill: the job creates it when missing, the browser opens it once it exists.
        m_storeBrowser->setImageRoot(options.imageRoot);
        QString error;
        if (m_storeBrowser->watch(options.store, &error)) {
            m_storeDock->show();
            m_storeDock->raise();
        }
    }
    updateActions();
    return id;
}

bool StudioTools::openLabelStore(const QString& path, const QString& imageRoot) {
    m_storeBrowser->setImageRoot(imageRoot);
    QString error;
    if (!m_storeBrowser->open(path, &error)) {
        reportError(tr("Open label store"), sdrpn::Status::failed(error.toStdString()));
        return false;
    }
    m_storeDock->show();
    m_storeDock->raise();
    return true;
}

void StudioTools::openLabelStoreDialog() {
    const QString path = QFileDialog::getOpenFileName(m_window, tr("Open label store"), QString(),
                                                      tr("Label stores (*.sdrpn);;All files (*)"));
    if (path.isEmpty()) return;
    openLabelStore(path, m_lastLabel.store == path ? m_lastLabel.imageRoot : QString());
}

JobId StudioTools::startTraining(const TrainingJobOptions& options) {
    m_curves->clear();
    m_curves->setTitle(QFileInfo(options.outDir).fileName());
    const JobId id = m_training->start(m_model ? m_model->pipelineModel() : nullptr, options);
    if (id && m_trainingDock) m_trainingDock->raise();
    updateActions();
    return id;
}

void StudioTools::offerRpn(const QString& folder) {
    auto* box = new QMessageBox(QMessageBox::Question, tr("Training finished"),
                                tr("The RPN trained into %1 is ready. Load it into the viewer?").arg(folder),
                                QMessageBox::Yes | QMessageBox::No, m_window);
    box->setAttribute(Qt::WA_DeleteOnClose);
    connect(box, &QMessageBox::finished, this, [this, folder](int result) {
        if (result == QMessageBox::Yes) emit loadRpnRequested(folder);
    });
    box->open();
}

void StudioTools::evaluateDialog() {
    // The prerequisites first: a dialog that cannot lead anywhere wastes the user's time.
    if (!m_model || !m_model->pipelineModel()) {
        emit errorReported(tr("Evaluation: load a model first (File › Open Model…)"));
        return;
    }
    if (!m_rpn || !m_rpn->rpn()) {
        emit errorReported(
            tr("Evaluation: load an RPN first (File › Open RPN Checkpoint…, or the untrained twig "
               "of the model)"));
        return;
    }
    EvaluateDialog dialog(m_window);
    dialog.setValues(m_lastEval);
    if (dialog.exec() != QDialog::Accepted) return;
    m_lastEval = dialog.values();
    EvaluationJobOptions o;
    o.dataset = m_lastEval.dataset;
    o.imageRoot = m_lastEval.imageRoot;
    o.limit = m_lastEval.limit > 0 ? m_lastEval.limit : -1;
    o.postPrompt = m_lastEval.postPrompt;
    o.maxNewTokens = m_lastEval.maxNewTokens;
    o.saveReport = m_lastEval.saveReport;
    startEvaluation(o);
}

JobId StudioTools::startEvaluation(const EvaluationJobOptions& options) {
    EvaluationJobOptions o = options;
    o.roi = m_roiSettings;
    const JobId id =
        m_evaluation->start(m_model ? m_model->pipelineModel() : nullptr, m_rpn ? m_rpn->rpn() : nullptr, o);
    updateActions();
    return id;
}

void StudioTools::setRpnSession(RpnSession* rpn) {
    m_rpn = rpn;
}
