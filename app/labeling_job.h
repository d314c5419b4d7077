// LabelingJob: the studio's "Label a dataset…" job. It runs sdrpn::data::runLabeling with a PipelineTeacher
// over the ModelSession's loaded model, as one JobManager job (progress with rate and ETA in the Jobs
// panel, cancel), and forwards each finished sample to the GUI thread as a log line.
//
//   auto* labeling = new LabelingJob(jobs, this);
//   LabelingJobOptions opt;  opt.dataset = "questions.jsonl";  opt.imageRoot = "/data";  opt.store =
//   "a.sdrpn"; JobId id = labeling->start(modelSession->pipelineModel(), opt);   // 0: not started,
//   lastError() says why connect(labeling, &LabelingJob::finished, this, [](JobManager::JobState s, QString
//   summary) { ... });
//
// Resume is running it again on the same store: samples already there are skipped. Cancel finishes the
// sample in flight, writes it, and ends the job Cancelled.
//
// Thread affinity: GUI thread; the labeling itself runs on a JobManager worker. Destroying the object while
// the job runs is safe (the job is cancelled; nothing is delivered to it afterwards).
#pragma once

#include <memory>

#include <QObject>
#include <QPointer>
#include <QString>

#include "app/job_manager.h"

namespace sdrpn::pipeline {
struct LoadedModel;
}

struct LabelingJobOptions {
    QString dataset;    // LLaVA JSON or JSONL
    QString imageRoot;  // the dataset's image folder
    QString store;      // label store, created when missing
    QString preset = QStringLiteral("llava-1.5-7b");
    QString settingsFile;  // label settings JSON; overrides `preset` when set
    qint64 limit = -1;     // at most this many samples (-1: all)
    int maxNewTokens = 128;
};

// One sample's worth of progress, on the GUI thread.
struct LabelingUpdate {
    qint64 total = 0, labeled = 0, alreadyThere = 0, failed = 0, remaining = 0;
    double samplesPerSecond = 0.0;
    double etaSeconds = -1.0;
    QString key;
    QString answer;
    QString message;  // "12/300 labeled, ... | 2.31 samples/s | ETA 2m05s"
};

class LabelingJob : public QObject {
    Q_OBJECT
public:
    explicit LabelingJob(JobManager* jobs, QObject* parent = nullptr);
    ~LabelingJob() override;

    // Starts the job; 0 when it cannot start (no model, a job already running, missing fields), with the
    // reason in lastError() and failedToStart().
    JobId start(std::shared_ptr<const sdrpn::pipeline::LoadedModel> model, const LabelingJobOptions& options);
    bool isRunning() const { return m_job != 0; }
    JobId job() const { return m_job; }
    QString lastError() const { return m_error; }
    const LabelingUpdate& lastUpdate() const { return m_last; }

public slots:
    void cancel();

signals:
    void started(JobId id);
    void updated(const LabelingUpdate& update);
    void logLine(const QString& line);
    // state: Succeeded, Failed or Cancelled; `summary` says what was done (and why it failed).
    void finished(JobManager::JobState state, const QString& summary);
    void failedToStart(const QString& reason);

private:
    void onUpdate(const LabelingUpdate& update);

    QPointer<JobManager> m_jobs;  // may go first when both are children of one window
    JobId m_job = 0;
    QString m_error;
    LabelingUpdate m_last;
};

Q_DECLARE_METATYPE(LabelingUpdate)
