// AskSession: one question at a time through the core (sdrpn::pipeline::ask) as a JobManager job, and the
// current question's result: the answer, the time per stage, the grid geometry and the captured attention
// maps (plain data the studio draws from; widgets never see it).
//
//   auto* asks = new AskSession(jobs, this);
//   connect(asks, &AskSession::textReceived, panel, &AskPanel::appendAnswer);   // streamed, GUI thread
//   connect(asks, &AskSession::answered, this, [&] { draw(asks->result()); });
//   AskRequest request;  request.question = "What is written on the sign?";  request.maxNewTokens = 64;
//   asks->ask(modelSession->pipelineModel(), view->image(), request);
//   asks->stop();                                                               // cancels; stopped() follows
//
// The loaded model is shared read-only with the job; the image is converted to the core's ImageRgb8 on the
// worker. Answer pieces come from the worker through queued calls, in order, before the completion. Exactly
// one of answered(), failed() or stopped() ends every ask() (none for an ask superseded by a newer one).
//
// Thread affinity: GUI thread. The answer itself runs on a JobManager worker.
#pragma once

#include <memory>

#include <QImage>
#include <QObject>
#include <QSize>
#include <QString>

#include "app/job_manager.h"
#include "core/models/capture.h"
#include "core/models/geometry.h"

namespace sdrpn::pipeline {
struct LoadedModel;
}

struct AskRequest {
    QString question;
    int maxNewTokens = 128;
    bool stopAtEos = true;  // false: always decode maxNewTokens tokens
};

// Seconds per stage of one answer.
struct AnswerTimings {
    double preprocess = 0, vision = 0, prefill = 0, decode = 0, capture = 0;
    int answerTokens = 0;
    double total() const { return preprocess + vision + prefill + decode; }
};

// "preprocess 3 ms · vision 41 ms · prefill 120 ms · decode 0.85 s (24 tokens, 35 ms/token) · maps 9 ms"
QString describeTimings(const AnswerTimings& timings);

struct QuestionResult {
    QString question;
    QString answer;
    QSize imageSize;  // the source image the geometry refers to
    sdrpn::models::GridGeometry geometry;
    sdrpn::models::AttentionMaps maps;
    AnswerTimings timings;
    bool hitTokenLimit = false;  // stopped at maxNewTokens rather than at the end of the answer
};

class AskSession : public QObject {
    Q_OBJECT
public:
    explicit AskSession(JobManager* jobs, QObject* parent = nullptr);
    ~AskSession() override;

    // Starts answering `request.question` about `image` with `model`; an answer under way is stopped
    // first. Returns the job id (0 when nothing started: no model, no image, empty question; failed()
    // says why).
    JobId ask(std::shared_ptr<const sdrpn::pipeline::LoadedModel> model, const QImage& image,
              const AskRequest& request);

    bool isRunning() const { return m_job != 0; }
    JobId job() const { return m_job; }
    // The answer text received so far (streaming) or the final answer.
    QString answerText() const { return m_text; }
    // The last completed answer; nullptr before one, after clearResult(), or after a failed / stopped ask.
    std::shared_ptr<const QuestionResult> result() const { return m_result; }

public slots:
    void stop();
    void clearResult();

signals:
    void started(const QString& question);
    void textReceived(const QString& piece);
    void answered();
    void failed(const QString& message);
    void stopped();
    void runningChanged(bool running);

private:
    struct Relay;
    void onText(quint64 request, const QString& piece);
    void finish(quint64 request);

    JobManager* m_jobs;
    JobId m_job = 0;
    quint64 m_request = 0;  // identifies the latest ask()
    QString m_text;
    std::shared_ptr<const QuestionResult> m_result;
    std::shared_ptr<Relay> m_relay;
};
