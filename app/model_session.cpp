#include "app/model_session.h"

#include <unistd.h>

#include <fstream>
#include <utility>

#include <QDir>
#include <QFileInfo>
#include <QLocale>

#include "core/models/registry.h"
#include "core/pipeline/ask.h"

sdrpn::models::LoadOptions defaultStudioLoadOptions() {
    sdrpn::models::LoadOptions options;
    if (torch::cuda::is_available()) {
        options.device = "cuda";
        options.dtype = "bf16";
    }
    return options;
}

sdrpn::Result<SessionModel> loadModelFolder(const std::string& folder,
                                            const sdrpn::models::LoadOptions& options,
                                            sdrpn::JobContext& ctx) {
    sdrpn::Result<sdrpn::ModelCard> card = sdrpn::inspectModel(folder, ctx);
    if (!card) return card.status();
    SessionModel model;
    model.card = std::move(card).value();
    if (!sdrpn::models::findBackboneLoader(model.card.modelType)) {
        std::string known;
        for (const std::string& type : sdrpn::models::supportedModelTypes())
            known += (known.empty() ? "" : ", ") + type;
        return sdrpn::Status::failed(folder + ": model type '" + model.card.modelType +
                                     "' can be inspected but not run yet (answering supports: " + known +
                                     ")");
    }
    if (model.card.needsBase && options.base.empty()) return model;
    model.baseModel = options.base;
    if (model.card.visionTowerMissing() && options.visionTower.empty()) return model;
    model.visionTower = options.visionTower.empty() ? model.card.visionTowerFolder : options.visionTower;
    // The same context carries the weights' progress and the cancel flag.
    sdrpn::Result<std::shared_ptr<const sdrpn::pipeline::LoadedModel>> loaded =
        sdrpn::pipeline::loadModel(folder, options, ctx);
    if (!loaded) return loaded.status();
    model.pipeline = std::move(loaded).value();
    return sdrpn::guarded([&]() -> SessionModel {
        const sdrpn::pipeline::LoadedModel& m = *model.pipeline;
        const sdrpn::models::BackboneInfo& b = m.backbone->info();
        LoadedModelInfo& info = model.info;
        info.modelType = b.modelType;
        info.device = b.device.str();
        info.computeDType = sdrpn::models::computeDTypeName(b.dtype);
        info.layers = b.layers;
        info.heads = b.heads;
        info.kvHeads = b.kvHeads;
        info.headDim = b.headDim;
        info.hidden = b.hidden;
        info.vocab = b.vocab;
        info.imageTokens = b.imageTokens;
        info.gridRows = b.grid.rows;
        info.gridCols = b.grid.cols;
        info.imageSize = b.imageSize;
        info.imageFit = m.family == sdrpn::pipeline::ModelFamily::Qwen2_5Vl
                            ? "resize"
                            : sdrpn::models::imageFitName(m.preprocess.fit);
        if (!m.tokenizer) info.tokenizerProblem = m.tokenizerError;
        info.chatTemplate = sdrpn::text::chatTemplateName(m.defaultTemplate);
        info.loadSeconds = m.loadSeconds;
        return std::move(model);
    });
}

namespace {

QString compactCount(std::int64_t n) {
    const double v = double(n);
    if (v >= 1e9) return QStringLiteral("%1 B").arg(v / 1e9, 0, 'f', 2);
    if (v >= 1e6) return QStringLiteral("%1 M").arg(v / 1e6, 0, 'f', 1);
    if (v >= 1e3) return QStringLiteral("%1 K").arg(v / 1e3, 0, 'f', 1);
    return QString::number(n);
}

}  // namespace

QString BaseModelRequest::message() const {
    const QString name = QFileInfo(QDir::cleanPath(modelFolder)).fileName();
    return QObject::tr(
               "%1 is an unfilled SD-RPN checkpoint: it holds the RPN and only the first %2 backbone layers, "
               "without the final norm and lm_head. The rest comes from its base model (the LLaVA it was "
               "trained on), chosen here or given with --base DIR; sdrpn merge-checkpoint writes a filled "
               "copy once.")
        .arg(name)
        .arg(twigK + twigT);
}

QString VisionTowerRequest::message() const {
    const QString name = QFileInfo(QDir::cleanPath(modelFolder)).fileName();
    QString text;
    if (towerName.isEmpty()) {
        text = QObject::tr(
                   "%1 is a LLaVA model in the original layout, and its config.json names no CLIP "
                   "vision tower (mm_vision_tower).")
                   .arg(name);
    } else {
        text = QObject::tr(
                   "%1 is a LLaVA model in the original layout: it needs its CLIP vision tower "
                   "'%2' (mm_vision_tower), which was not found.")
                   .arg(name, towerName);
    }
    if (!tried.isEmpty()) {
        text += QObject::tr("\nLooked in:");
        for (const QString& path : tried) text += QStringLiteral("\n  ") + QDir::toNativeSeparators(path);
    }
    return text;
}

ModelCardInfo describeModelCard(const sdrpn::ModelCard& card) {
    const QLocale locale(QLocale::English);
    ModelCardInfo info;
    const QString folder = QString::fromStdString(card.folder);
    info.folder = QDir::toNativeSeparators(QFileInfo(folder).absoluteFilePath());
    info.title = QFileInfo(QDir::cleanPath(info.folder)).fileName();
    if (info.title.isEmpty()) info.title = folder;
    info.subtitle = QString::fromStdString(card.architecture);

    auto add = [&info](const QString& label, const QString& value) { info.rows.append({label, value}); };
    add(QObject::tr("Model type"), QString::fromStdString(card.modelType));
    add(QObject::tr("LLM layers"), QString::number(card.llmLayers));
    QString heads = QString::number(card.llmHeads);
    if (card.llmKvHeads > 0 && card.llmKvHeads != card.llmHeads)
        heads += QObject::tr(" (%1 key/value)").arg(card.llmKvHeads);
    add(QObject::tr("Attention heads"), heads);
    add(QObject::tr("Hidden size"), QString::number(card.llmHidden));
    add(QObject::tr("Vision layers"), QString::number(card.visionLayers));
    if (card.imageSize > 0) {
        add(QObject::tr("Vision input"),
            QObject::tr("%1 px, patch %2").arg(card.imageSize).arg(card.patchSize));
    } else {
        add(QObject::tr("Vision input"), QObject::tr("dynamic, patch %1").arg(card.patchSize));
    }
    if (card.gridRows > 0 && card.gridCols > 0) {
        add(QObject::tr("Image grid"), QObject::tr("%1 × %2 = %3 tokens")
                                           .arg(card.gridRows)
                                           .arg(card.gridCols)
                                           .arg(card.gridRows * card.gridCols));
    } else {
        add(QObject::tr("Image grid"), QObject::tr("follows the image"));
    }
    add(QObject::tr("Weights dtype"), QString::fromStdString(card.dtype));
    add(QObject::tr("Parameters"),
        QStringLiteral("%1 (%2)").arg(locale.toString(qlonglong(card.parameterCount)),
                                      compactCount(card.parameterCount)));
    add(QObject::tr("Weights size"), locale.formattedDataSize(qint64(card.weightBytes)));

    if (card.sdrpnCheckpoint) {
        add(QObject::tr("SD-RPN"),
            QObject::tr("checkpoint with its RPN (twig_K %1, twig_T %2), loaded with the model")
                .arg(card.twigK)
                .arg(card.twigT));
    }
    if (card.needsBase)
        add(QObject::tr("Base model"),
            QObject::tr("needed: an unfilled checkpoint (backbone layers 0–%1 only)")
                .arg(card.twigK + card.twigT - 1));
    if (card.needsVisionTower) {
        add(QObject::tr("Vision tower"),
            card.visionTowerFolder.empty()
                ? QObject::tr("'%1' not found").arg(QString::fromStdString(card.visionTowerName))
                : QDir::toNativeSeparators(QString::fromStdString(card.visionTowerFolder)));
    }
    if (card.randomWeights) {
        info.warning = QObject::tr(
            "Demo model: random weights. Its answers and attention maps are meaningless; "
            "it is here to try the studio.");
    }
    // The demo warning is already the banner; other notes get a row.
    QString note = QString::fromStdString(card.note);
    if (card.randomWeights) {
        const int cut = note.indexOf(QLatin1Char(';'));
        note = cut < 0 ? QString() : note.mid(cut + 1).trimmed();
    }
    if (!note.isEmpty()) add(QObject::tr("Note"), note);
    return info;
}

ModelCardInfo describeModel(const SessionModel& model) {
    ModelCardInfo info = describeModelCard(model.card);
    if (!model.pipeline) return info;
    const LoadedModelInfo& m = model.info;
    // The backbone's own numbers replace the inspected ones where both exist.
    auto set = [&info](const QString& label, const QString& value) {
        for (auto& row : info.rows) {
            if (row.first == label) {
                row.second = value;
                return;
            }
        }
        info.rows.append({label, value});
    };
    set(QObject::tr("LLM layers"), QString::number(m.layers));
    QString heads = QObject::tr("%1, head size %2").arg(m.heads).arg(m.headDim);
    if (m.kvHeads > 0 && m.kvHeads != m.heads) heads += QObject::tr(" (%1 key/value)").arg(m.kvHeads);
    set(QObject::tr("Attention heads"), heads);
    set(QObject::tr("Hidden size"), QString::number(m.hidden));
    set(QObject::tr("Vocabulary"), QLocale(QLocale::English).toString(qlonglong(m.vocab)));
    if (m.gridRows > 0) {
        set(QObject::tr("Image grid"),
            QObject::tr("%1 × %2 = %3 tokens").arg(m.gridRows).arg(m.gridCols).arg(m.gridRows * m.gridCols));
    } else {
        set(QObject::tr("Image grid"),
            QObject::tr("dynamic: 28 × 28 px per token at the image's own aspect"));
    }
    const QString fit = QString::fromStdString(m.imageFit);
    set(QObject::tr("Image fit"),
        fit == QLatin1String("pad")      ? QObject::tr("pad to square (whole image seen)")
        : fit == QLatin1String("resize") ? QObject::tr("resize (whole image, own aspect)")
                                         : QObject::tr("centre crop (sides cut off)"));
    if (!m.tokenizerProblem.empty())
        set(QObject::tr("Tokenizer"),
            QObject::tr("none: %1").arg(QString::fromStdString(m.tokenizerProblem)));
    set(QObject::tr("Chat template"), QString::fromStdString(m.chatTemplate));
    if (!model.visionTower.empty())
        set(QObject::tr("Vision tower"), QDir::toNativeSeparators(QString::fromStdString(model.visionTower)));
    if (!model.baseModel.empty())
        set(QObject::tr("Base model"), QDir::toNativeSeparators(QString::fromStdString(model.baseModel)));
    set(QObject::tr("Runs on"),
        QObject::tr("%1, %2").arg(QString::fromStdString(m.device), QString::fromStdString(m.computeDType)));
    set(QObject::tr("Loaded in"), QObject::tr("%1 s").arg(m.loadSeconds, 0, 'f', 2));
    if (const std::int64_t rss = processResidentBytes(); rss > 0)
        set(QObject::tr("Memory in use (process RSS)"),
            QLocale(QLocale::English).formattedDataSize(qint64(rss)));
    return info;
}

std::int64_t processResidentBytes() {
    // statm: size resident shared text lib data dt, in pages.
    std::ifstream statm("/proc/self/statm");
    std::int64_t size = 0, resident = 0;
    if (!(statm >> size >> resident)) return 0;
    const long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? resident * std::int64_t(page) : 0;
}

QStringList availableLoadDevices() {
    QStringList devices{QStringLiteral("cpu")};
    if (torch::cuda::is_available()) devices << QStringLiteral("cuda");
    return devices;
}

ModelSession::ModelSession(JobManager* jobs, QObject* parent)
    : QObject(parent), m_jobs(jobs), m_options(defaultStudioLoadOptions()) {
    connect(m_jobs, &JobManager::jobProgress, this,
            [this](JobId id, double fraction, const QString& message) {
                if (id == m_loadJob && m_state == State::Loading) emit loadProgress(fraction, message);
            });
}

bool ModelSession::canAnswer(QString* reason) const {
    QString why;
    if (m_state == State::Loading) {
        why = tr("Wait for the model to finish loading.");
    } else if (m_state != State::Ready) {
        why = tr("Open a model first (File › Open Model…).");
    } else if (!m_model || !m_model->pipeline) {
        why = tr("The model is not loaded for answering.");
    } else {
        if (reason) reason->clear();
        return true;
    }
    if (reason) *reason = why;
    return false;
}

void ModelSession::setVisionTower(const QString& folder, const QString& tower) {
    const QString key = QDir::cleanPath(folder);
    if (tower.isEmpty()) {
        m_visionTowers.remove(key);
    } else {
        m_visionTowers.insert(key, QDir::cleanPath(tower));
    }
}

QString ModelSession::visionTower(const QString& folder) const {
    return m_visionTowers.value(QDir::cleanPath(folder));
}

void ModelSession::setBaseModel(const QString& folder, const QString& base) {
    const QString key = QDir::cleanPath(folder);
    if (base.isEmpty()) {
        m_baseModels.remove(key);
    } else {
        m_baseModels.insert(key, QDir::cleanPath(base));
    }
}

QString ModelSession::baseModel(const QString& folder) const {
    return m_baseModels.value(QDir::cleanPath(folder));
}

void ModelSession::declineBaseModel(const QString& reason) {
    if (!m_baseRequest) return;
    const BaseModelRequest request = *std::exchange(m_baseRequest, std::nullopt);
    m_error = request.message() + QLatin1Char('\n') +
              (reason.isEmpty() ? tr("No base model was chosen: open the checkpoint again and choose it, or "
                                     "start the studio with --base DIR.")
                                : reason);
    emit loadFailed(request.modelFolder, m_error);
}

void ModelSession::declineVisionTower(const QString& reason) {
    if (!m_towerRequest) return;
    const VisionTowerRequest request = *std::exchange(m_towerRequest, std::nullopt);
    m_error =
        request.message() + QLatin1Char('\n') +
        (reason.isEmpty() ? tr("No CLIP folder was chosen: open the model again and choose it, or start "
                               "the studio with --vision-tower DIR.")
                          : reason);
    emit loadFailed(request.modelFolder, m_error);
}

JobId ModelSession::load(const QString& folder) {
    cancelLoad();
    m_model.reset();
    m_towerRequest.reset();
    m_baseRequest.reset();
    m_folder = folder;
    m_error.clear();
    const std::string path = QDir::cleanPath(folder).toStdString();
    sdrpn::models::LoadOptions options = m_options;
    const QString tower = visionTower(folder);
    if (!tower.isEmpty()) {
        // A remembered folder that has gone is forgotten: the load asks again.
        if (QFileInfo::exists(tower + QStringLiteral("/config.json"))) {
            options.visionTower = tower.toStdString();
        } else {
            m_visionTowers.remove(QDir::cleanPath(folder));
        }
    }
    const QString base = baseModel(folder);
    if (!base.isEmpty()) {
        if (QFileInfo::exists(base + QStringLiteral("/config.json"))) {
            options.base = base.toStdString();
        } else {
            m_baseModels.remove(QDir::cleanPath(folder));
        }
    }
    const QString name = QFileInfo(QDir::cleanPath(folder)).fileName();
    setState(State::Loading);
    emit loadStarted(folder);
    const quint64 request = ++m_request;
    const JobId id = m_jobs->run(
        tr("Load model %1").arg(name.isEmpty() ? folder : name), this,
        [path, options](sdrpn::JobContext& ctx) { return loadModelFolder(path, options, ctx); },
        [this, folder, request](sdrpn::Result<SessionModel> result) {
            // Only the latest request counts; an older one was cancelled and may still finish.
            if (request != m_request) return;
            m_loadJob = 0;
            if (result.ok() && !result.value().pipeline && result.value().card.needsBase &&
                result.value().baseModel.empty()) {
                // An unfilled SD-RPN checkpoint without its base model: the owner asks for it.
                const sdrpn::ModelCard& card = result.value().card;
                BaseModelRequest request;
                request.modelFolder = folder;
                request.twigK = card.twigK;
                request.twigT = card.twigT;
                m_error = request.message();
                m_baseRequest = request;
                setState(State::Failed);
                emit baseModelNeeded(request);
            } else if (result.ok() && !result.value().pipeline) {
                // Original LLaVA layout without its CLIP folder: the owner asks for it.
                const sdrpn::ModelCard& card = result.value().card;
                VisionTowerRequest request;
                request.modelFolder = folder;
                request.towerName = QString::fromStdString(card.visionTowerName);
                for (const std::string& p : card.visionTowerTried) request.tried << QString::fromStdString(p);
                m_error = request.message();
                m_towerRequest = request;
                setState(State::Failed);
                emit visionTowerNeeded(request);
            } else if (result.ok()) {
                m_model = std::make_shared<const SessionModel>(std::move(result).value());
                setState(State::Ready);
                emit loaded(folder);
            } else if (result.status().cancelled()) {
                setState(State::Empty);
                m_folder.clear();
                emit loadCancelled(folder);
            } else {
                m_error = QString::fromStdString(result.message());
                setState(State::Failed);
                emit loadFailed(folder, m_error);
            }
            emit answerAvailabilityChanged();
        });
    m_loadJob = id;
    emit answerAvailabilityChanged();
    return id;
}

void ModelSession::cancelLoad() {
    if (m_state != State::Loading) return;
    ++m_request;  // the cancelled job's completion is ignored
    m_jobs->cancel(m_loadJob);
    m_loadJob = 0;
    const QString folder = m_folder;
    m_folder.clear();
    setState(State::Empty);
    emit loadCancelled(folder);
    emit answerAvailabilityChanged();
}

void ModelSession::unload() {
    cancelLoad();
    m_towerRequest.reset();
    m_model.reset();
    m_folder.clear();
    m_error.clear();
    setState(State::Empty);
    emit answerAvailabilityChanged();
}

void ModelSession::setState(State state) {
    if (state == m_state) return;
    m_state = state;
    emit stateChanged(state);
}
