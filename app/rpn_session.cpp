#include "app/rpn_session.h"

#include <algorithm>
#include <mutex>

#include <QDir>
#include <QFileInfo>
#include <QMetaObject>
#include <QStringList>

#include "app/image_io.h"
#include "core/pipeline/two_stage.h"
#include "core/sdrpn/rpn.h"

namespace {

QString formatSeconds(double s) {
    if (s < 1.0) return QObject::tr("%1 ms").arg(s * 1000.0, 0, 'f', s < 0.01 ? 1 : 0);
    return QObject::tr("%1 s").arg(s, 0, 'f', 2);
}

QString configText(const sdrpn::RpnConfig& c) {
    return QObject::tr("K%1 T%2%3")
        .arg(c.K)
        .arg(c.T)
        .arg(c.multiHead ? QObject::tr(" · multi-head") : QString());
}

// A picked file inside a checkpoint folder (config.json, a shard, the index) stands for the folder; a lone
// .safetensors (as `sdrpn train` writes) is read as is.
QString checkpointPath(const QString& path) {
    const QFileInfo info(path);
    if (info.isDir()) return QDir::cleanPath(info.absoluteFilePath());
    const QString name = info.fileName();
    if (name.compare(QLatin1String("config.json"), Qt::CaseInsensitive) == 0 ||
        name.endsWith(QLatin1String(".safetensors.index.json"), Qt::CaseInsensitive) ||
        (name.endsWith(QLatin1String(".safetensors"), Qt::CaseInsensitive) &&
         QFileInfo::exists(info.absolutePath() + QLatin1String("/config.json"))))
        return QDir::cleanPath(info.absolutePath());
    return QDir::cleanPath(info.absoluteFilePath());
}

}  // namespace

QString describeTwoStageTimes(const TwoStageTimes& t) {
    QStringList parts;
    parts << QObject::tr("vision %1").arg(formatSeconds(t.vision));
    parts << QObject::tr("pass 1 %1").arg(formatSeconds(t.pass1));
    parts << QObject::tr("RPN %1").arg(formatSeconds(t.rpn));
    parts << QObject::tr("RoI %1").arg(formatSeconds(t.postprocess));
    parts << QObject::tr("crop encode %1").arg(formatSeconds(t.cropEncode));
    parts << QObject::tr("pass 2 %1").arg(formatSeconds(t.pass2));
    parts << QObject::tr("decode %1 (baseline %2)")
                 .arg(formatSeconds(t.decode), formatSeconds(t.baselineDecode));
    return QObject::tr("%1 in all: %2").arg(formatSeconds(t.total()), parts.join(QStringLiteral(" · ")));
}

struct RpnSession::Loaded {
    sdrpn::Rpn rpn{nullptr};
    QString description;
};

// Carries answer pieces from the worker to the session (as AskSession's relay).
struct RpnSession::Relay {
    std::mutex mutex;
    RpnSession* target = nullptr;

    void post(quint64 request, bool roi, const std::string& piece) {
        const QString text = QString::fromStdString(piece);
        std::lock_guard<std::mutex> lock(mutex);
        if (!target) return;
        RpnSession* session = target;
        QMetaObject::invokeMethod(
            session, [session, request, roi, text] { session->onText(request, roi, text); },
            Qt::QueuedConnection);
    }
};

RpnSession::RpnSession(JobManager* jobs, QObject* parent)
    : QObject(parent), m_jobs(jobs), m_relay(std::make_shared<Relay>()) {
    m_relay->target = this;
}

RpnSession::~RpnSession() {
    std::lock_guard<std::mutex> lock(m_relay->mutex);
    m_relay->target = nullptr;
}

void RpnSession::setState(State state) {
    if (state == m_state) return;
    m_state = state;
    emit stateChanged(state);
}

JobId RpnSession::load(std::shared_ptr<const sdrpn::pipeline::LoadedModel> model, const QString& path) {
    if (!model) {
        m_error = tr("Open a model first: an RPN belongs to the model whose hidden states it reads.");
        setState(State::Failed);
        emit loadFailed(m_error);
        return 0;
    }
    const QString source = checkpointPath(path);
    if (!QFileInfo::exists(source)) {
        m_error = tr("%1: no such file or folder").arg(source);
        setState(State::Failed);
        emit loadFailed(m_error);
        return 0;
    }
    const QString name = QFileInfo(source).fileName();
    m_loadingPath = path;
    m_loadingUntrained = false;
    return startLoad(
        model, tr("Load RPN %1").arg(name),
        [model, source, name](sdrpn::JobContext& ctx) -> sdrpn::Result<std::shared_ptr<const Loaded>> {
            sdrpn::Result<sdrpn::Rpn> rpn = sdrpn::tryLoadRpn(source.toStdString(), *model->backbone, ctx);
            if (!rpn) return rpn.status();
            auto out = std::make_shared<Loaded>();
            out->rpn = std::move(rpn).value();
            out->description = QObject::tr("%1 · %2").arg(name, configText(out->rpn->config()));
            return std::shared_ptr<const Loaded>(std::move(out));
        });
}

JobId RpnSession::initFromModel(std::shared_ptr<const sdrpn::pipeline::LoadedModel> model, int K, int T) {
    if (!model) {
        m_error = tr("Open a model first: the untrained RPN is built from the model's own layers.");
        setState(State::Failed);
        emit loadFailed(m_error);
        return 0;
    }
    m_loadingPath.clear();
    m_loadingUntrained = true;
    return startLoad(model, tr("Untrained RPN from the model"),
                     [model, K, T](sdrpn::JobContext&) -> sdrpn::Result<std::shared_ptr<const Loaded>> {
                         return sdrpn::guarded([&] {
                             const int layers = model->backbone->info().layers;
                             sdrpn::RpnConfig config;
                             config.K = K > 0 ? K : std::max(1, std::min(15, layers / 2));
                             config.T = T > 0 ? T : std::max(1, std::min(3, layers - config.K));
                             // The studio never trains this copy: share the backbone's tensors.
                             auto out = std::make_shared<Loaded>();
                             out->rpn = sdrpn::initRpnFromBackbone(*model->backbone, config, true);
                             out->description =
                                 QObject::tr("untrained (twiginit) · %1").arg(configText(config));
                             return std::shared_ptr<const Loaded>(std::move(out));
                         });
                     });
}

JobId RpnSession::startLoad(
    std::shared_ptr<const sdrpn::pipeline::LoadedModel> model, const QString& title,
    std::function<sdrpn::Result<std::shared_ptr<const Loaded>>(sdrpn::JobContext&)> work) {
    if (m_loadJob != 0) m_jobs->cancel(m_loadJob);
    const quint64 request = ++m_loadRequest;
    m_error.clear();
    setState(State::Loading);
    m_loadJob = m_jobs->run(title, this, std::move(work),
                            [this, request, model](sdrpn::Result<std::shared_ptr<const Loaded>> result) {
                                if (request != m_loadRequest) return;
                                m_loadJob = 0;
                                if (result.ok()) {
                                    const auto& made = result.value();
                                    m_rpn = std::shared_ptr<const sdrpn::Rpn>(made, &made->rpn);
                                    m_model = model;
                                    m_description = made->description;
                                    m_path = m_loadingPath;
                                    m_untrained = m_loadingUntrained;
                                    setState(State::Ready);
                                    emit loaded(m_description);
                                } else if (result.status().cancelled()) {
                                    setState(m_rpn ? State::Ready : State::Empty);
                                } else {
                                    m_error = QString::fromStdString(result.message());
                                    setState(m_rpn ? State::Ready : State::Failed);
                                    emit loadFailed(m_error);
                                }
                            });
    return m_loadJob;
}

void RpnSession::clear() {
    if (m_loadJob != 0) {
        ++m_loadRequest;
        m_jobs->cancel(m_loadJob);
        m_loadJob = 0;
    }
    stop();
    m_rpn.reset();
    m_model.reset();
    m_result.reset();
    m_description.clear();
    m_path.clear();
    m_untrained = false;
    m_error.clear();
    setState(State::Empty);
}

JobId RpnSession::ask(std::shared_ptr<const sdrpn::pipeline::LoadedModel> model, const QImage& image,
                      const AskRequest& request, const sdrpn::RoiSettings& roi) {
    if (m_askJob != 0) {
        m_jobs->cancel(m_askJob);
        m_askJob = 0;
        emit runningChanged(false);
    }
    const quint64 id = ++m_askRequest;
    m_result.reset();
    if (!model) {
        emit failed(tr("No model is loaded: open a model folder first (File › Open Model…)."));
        return 0;
    }
    if (!m_rpn) {
        emit failed(
            tr("No RPN is loaded: open an SD-RPN checkpoint (File › Open RPN Checkpoint…) or use "
               "File › Untrained RPN from the Model."));
        return 0;
    }
    if (m_model.get() != model.get()) {
        emit failed(tr("The RPN was made for another model: open it again for the current model."));
        return 0;
    }
    if (image.isNull()) {
        emit failed(tr("No image is open: open an image first (File › Open Image…)."));
        return 0;
    }
    const QString question = request.question.trimmed();
    if (question.isEmpty()) {
        emit failed(tr("The question is empty."));
        return 0;
    }

    sdrpn::pipeline::TwoStageOptions options;
    options.question = question.toStdString();
    options.generation.maxNewTokens = std::max(1, request.maxNewTokens);
    options.generation.stopAtEos = request.stopAtEos;
    options.roi = roi;
    options.baseline = true;
    options.capture = sdrpn::pipeline::AskOptions::defaultCapture();
    const QSize imageSize = image.size();
    std::shared_ptr<Relay> relay = m_relay;
    std::shared_ptr<const sdrpn::Rpn> rpn = m_rpn;

    emit started(question);
    m_askJob = m_jobs->run(
        tr("SD-RPN answer “%1”")
            .arg(question.size() > 40 ? question.left(39) + QStringLiteral("…") : question),
        this,
        [model, rpn, image, options, relay, id, question,
         imageSize](sdrpn::JobContext& ctx) -> sdrpn::Result<std::shared_ptr<const TwoStageAnswer>> {
            const sdrpn::io::ImageRgb8 rgb = toImageRgb8(image);
            auto answer = sdrpn::pipeline::answerTwoStage(
                *model, *rpn, rgb, options, ctx,
                [&relay, id](sdrpn::pipeline::AnswerStage stage, const std::string& piece) {
                    relay->post(id, stage == sdrpn::pipeline::AnswerStage::Roi, piece);
                });
            if (!answer) return answer.status();
            sdrpn::pipeline::TwoStageResult& r = answer.value();
            auto out = std::make_shared<TwoStageAnswer>();
            out->question = question;
            out->baselineAnswer = QString::fromStdString(r.baseline.text);
            out->roiAnswer = QString::fromStdString(r.roiAnswer.text);
            out->roiAnswerIsBaseline = r.roiAnswerIsBaseline;
            out->imageSize = imageSize;
            out->geometry = r.geometry;
            out->rows = r.roi.rows;
            out->cols = r.roi.cols;
            out->roiLogits = r.roi.logits;
            out->roiSettings = r.roiSettings;
            out->roi = std::move(r.roi);
            out->roiTokens = int(r.roiTokens);
            out->qwenRoi = model->family == sdrpn::pipeline::ModelFamily::Qwen2_5Vl;
            out->cropGrid = r.cropGrid;
            out->kvReused = r.kvReused;
            const auto& t = r.timings;
            out->times = {t.preprocess, t.vision, t.pass1,  t.rpn,           t.postprocess,
                          t.cropEncode, t.pass2,  t.decode, t.baselineDecode};
            auto baseline = std::make_shared<QuestionResult>();
            baseline->question = question;
            baseline->answer = out->baselineAnswer;
            baseline->imageSize = imageSize;
            baseline->geometry = r.geometry;
            baseline->maps = std::move(r.maps);
            baseline->timings.preprocess = t.preprocess;
            baseline->timings.vision = t.vision;
            baseline->timings.prefill = t.pass1;
            baseline->timings.decode = t.baselineDecode;
            baseline->timings.answerTokens = int(r.baseline.tokens.size());
            baseline->hitTokenLimit = r.baseline.stopReason == sdrpn::models::StopReason::MaxTokens;
            out->baselineResult = std::move(baseline);
            return std::shared_ptr<const TwoStageAnswer>(std::move(out));
        },
        [this, id](sdrpn::Result<std::shared_ptr<const TwoStageAnswer>> result) {
            if (id != m_askRequest) return;
            m_askJob = 0;
            emit runningChanged(false);
            if (result.ok()) {
                m_result = std::move(result).value();
                emit answered();
            } else if (result.status().cancelled()) {
                emit stopped();
            } else {
                emit failed(QString::fromStdString(result.message()));
            }
        });
    emit runningChanged(true);
    return m_askJob;
}

void RpnSession::stop() {
    if (m_askJob != 0) m_jobs->cancel(m_askJob);
}

void RpnSession::clearResult() {
    m_result.reset();
}

void RpnSession::onText(quint64 request, bool roi, const QString& piece) {
    if (request != m_askRequest || m_askJob == 0) return;
    if (roi) {
        emit roiText(piece);
    } else {
        emit baselineText(piece);
    }
}
