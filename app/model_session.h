// ModelSession: owns "the current model" of the studio and the job that loads it.
//
// Loading is a JobManager job; today it inspects the folder (sdrpn::inspectModel: config + safetensors
// headers, no weights in memory). The full load slots into loadModelFolder() behind the same job and the
// same signals: SessionModel gains the core's shared, read-only sdrpn::pipeline::LoadedModel (from
// sdrpn::pipeline::loadModel), and canAnswer() turns true once it is there; an answer job then calls
// sdrpn::pipeline::ask with that model (core/pipeline/ask.h).
//
//   auto* session = new ModelSession(jobs, this);
//   connect(session, &ModelSession::loaded, this, [&] { show(session->card()); });
//   connect(session, &ModelSession::loadFailed, this, [&](QString folder, QString msg) { error(msg); });
//   session->load("/models/llava-1.5-7b-hf");   // cancels a load already under way
//
// Thread affinity: GUI thread. The load itself runs on a JobManager worker.
#pragma once

#include <memory>
#include <optional>

#include <QObject>
#include <QString>

#include "app/job_manager.h"
#include "core/pipeline/model_card.h"
#include "widgets/model_card_panel.h"

// What one load produces; shared read-only with jobs once loaded.
struct SessionModel {
    sdrpn::ModelCard card;
    // Next: std::shared_ptr<const sdrpn::pipeline::LoadedModel> pipeline;  (backbone, tokenizer; later RPN)
};

// The body of the load job (worker thread): inspect, then (later) load weights. Never throws.
sdrpn::Result<SessionModel> loadModelFolder(const std::string& folder, sdrpn::JobContext& ctx);

// Turns a ModelCard into what ModelCardPanel shows.
ModelCardInfo describeModelCard(const sdrpn::ModelCard& card);

class ModelSession : public QObject {
    Q_OBJECT
public:
    enum class State { Empty, Loading, Ready, Failed };
    Q_ENUM(State)

    explicit ModelSession(JobManager* jobs, QObject* parent = nullptr);

    State state() const { return m_state; }
    // The folder being loaded, loaded or that failed; empty when Empty.
    QString folder() const { return m_folder; }
    // The loaded model's card; nullptr unless Ready. Jobs that need the model take model() (shared).
    const sdrpn::ModelCard* card() const { return m_model ? &m_model->card : nullptr; }
    std::shared_ptr<const SessionModel> model() const { return m_model; }
    QString errorMessage() const { return m_error; }
    JobId loadJob() const { return m_loadJob; }
    bool isDemoModel() const { return m_model && m_model->card.randomWeights; }

    // Whether Ask can run now; when not, `reason` says why in words for a tooltip.
    bool canAnswer(QString* reason = nullptr) const;

public slots:
    // Starts loading `folder` and returns the job id. A load in progress is cancelled first, and the
    // current model is released (two large models rarely fit in memory together).
    JobId load(const QString& folder);
    void cancelLoad();
    void unload();

signals:
    void stateChanged(ModelSession::State state);
    void loadStarted(const QString& folder);
    void loadProgress(double fraction, const QString& message);  // fraction -1: unknown
    void loaded(const QString& folder);
    void loadFailed(const QString& folder, const QString& message);
    void loadCancelled(const QString& folder);
    void answerAvailabilityChanged();

private:
    void setState(State state);

    JobManager* m_jobs;
    State m_state = State::Empty;
    QString m_folder;
    QString m_error;
    JobId m_loadJob = 0;
    quint64 m_request = 0;  // identifies the latest load() call
    std::shared_ptr<const SessionModel> m_model;
};
