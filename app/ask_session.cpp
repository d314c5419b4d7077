#include "app/ask_session.h"

#include <algorithm>
#include <mutex>

#include <QMetaObject>
#include <QStringList>

#include "app/image_io.h"
#include "core/pipeline/ask.h"

namespace {

QString formatSeconds(double s) {
    if (s < 1.0) return QObject::tr("%1 ms").arg(s * 1000.0, 0, 'f', s < 0.01 ? 1 : 0);
    return QObject::tr("%1 s").arg(s, 0, 'f', 2);
}

}  // namespace

QString describeTimings(const AnswerTimings& t) {
    QStringList parts;
    parts << QObject::tr("preprocess %1").arg(formatSeconds(t.preprocess));
    parts << QObject::tr("vision %1").arg(formatSeconds(t.vision));
    parts << QObject::tr("prefill %1").arg(formatSeconds(t.prefill));
    QString decode = QObject::tr("decode %1").arg(formatSeconds(t.decode));
    if (t.answerTokens > 0) {
        decode +=
            t.answerTokens == 1 ? QObject::tr(" (1 token") : QObject::tr(" (%1 tokens").arg(t.answerTokens);
        if (t.answerTokens > 1)
            decode += QObject::tr(", %1/token").arg(formatSeconds(t.decode / t.answerTokens));
        decode += QLatin1Char(')');
    }
    parts << decode;
    parts << QObject::tr("maps %1").arg(formatSeconds(t.capture));
    return QObject::tr("%1 in all: %2").arg(formatSeconds(t.total()), parts.join(QStringLiteral(" · ")));
}

// Carries answer pieces from the worker to the session. The session clears `target` (under the mutex) when
// it is destroyed, so a worker that outlives it posts nothing; Qt drops calls already posted to a
// destroyed object.
struct AskSession::Relay {
    std::mutex mutex;
    AskSession* target = nullptr;

    void post(quint64 request, const std::string& piece) {
        const QString text = QString::fromStdString(piece);
        std::lock_guard<std::mutex> lock(mutex);
        if (!target) return;
        AskSession* session = target;
        QMetaObject::invokeMethod(
            session, [session, request, text] { session->onText(request, text); }, Qt::QueuedConnection);
    }
};

AskSession::AskSession(JobManager* jobs, QObject* parent)
    : QObject(parent), m_jobs(jobs), m_relay(std::make_shared<Relay>()) {
    m_relay->target = this;
}

AskSession::~AskSession() {
    std::lock_guard<std::mutex> lock(m_relay->mutex);
    m_relay->target = nullptr;
}

JobId AskSession::ask(std::shared_ptr<const sdrpn::pipeline::LoadedModel> model, const QImage& image,
                      const AskRequest& request) {
    if (m_job != 0) {
        // Superseded: its completion is ignored, its remaining pieces too.
        m_jobs->cancel(m_job);
        m_job = 0;
        emit runningChanged(false);
    }
    const quint64 id = ++m_request;
    m_text.clear();
    m_result.reset();
    if (!model) {
        emit failed(tr("No model is loaded: open a model folder first (File › Open Model…)."));
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

    sdrpn::pipeline::AskOptions options;
    options.question = question.toStdString();
    options.generation.maxNewTokens = std::max(1, request.maxNewTokens);
    options.generation.stopAtEos = request.stopAtEos;
    options.generation.keepStepLogits = false;  // the studio shows text and maps, not logits
    const QSize imageSize = image.size();
    std::shared_ptr<Relay> relay = m_relay;

    emit started(question);
    m_job = m_jobs->run(
        tr("Answer “%1”").arg(question.size() > 40 ? question.left(39) + QStringLiteral("…") : question),
        this,
        [model, image, options, relay, id, question,
         imageSize](sdrpn::JobContext& ctx) -> sdrpn::Result<std::shared_ptr<const QuestionResult>> {
            const sdrpn::io::ImageRgb8 rgb = toImageRgb8(image);
            sdrpn::Result<sdrpn::pipeline::AskResult> answer =
                sdrpn::pipeline::ask(*model, rgb, options, ctx,
                                     [&relay, id](const std::string& piece) { relay->post(id, piece); });
            if (!answer) return answer.status();
            sdrpn::pipeline::AskResult& r = answer.value();
            auto out = std::make_shared<QuestionResult>();
            out->question = question;
            out->answer = QString::fromStdString(r.answer);
            out->imageSize = imageSize;
            out->geometry = r.geometry;
            out->maps = std::move(r.maps);
            out->timings.preprocess = r.timings.preprocess;
            out->timings.vision = r.timings.vision;
            out->timings.prefill = r.timings.prefill;
            out->timings.decode = r.timings.decode;
            out->timings.capture = r.timings.capture;
            out->timings.answerTokens = int(r.generation.tokens.size());
            out->hitTokenLimit = r.generation.stopReason == sdrpn::models::StopReason::MaxTokens;
            return std::shared_ptr<const QuestionResult>(std::move(out));
        },
        [this, id](sdrpn::Result<std::shared_ptr<const QuestionResult>> result) {
            if (id != m_request) return;  // superseded: a newer ask() owns the panel
            m_job = 0;
            emit runningChanged(false);
            if (result.ok()) {
                m_result = std::move(result).value();
                // The decoded answer is the reference: streamed pieces may differ in leading spaces.
                m_text = m_result->answer;
                emit answered();
            } else if (result.status().cancelled()) {
                emit stopped();
            } else {
                emit failed(QString::fromStdString(result.message()));
            }
        });
    emit runningChanged(true);
    return m_job;
}

void AskSession::stop() {
    if (m_job == 0) return;
    m_jobs->cancel(m_job);
}

void AskSession::clearResult() {
    m_result.reset();
}

void AskSession::onText(quint64 request, const QString& piece) {
    if (request != m_request || m_job == 0) return;
    m_text += piece;
    emit textReceived(piece);
}
