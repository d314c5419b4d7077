// TrainingJob: the studio's "Train RPN…" job. It runs sdrpn::pipeline::trainRpn on the ModelSession's loaded
// model as one JobManager job (progress with ETA in the Jobs panel, cancel) and forwards every optimizer
// step's metrics to the GUI thread, in order, for the live curves.
//
//   auto* training = new TrainingJob(jobs, this);
//   connect(training, &TrainingJob::stepFinished, curves, [=](const TrainingPoint& p) {
//       curves->appendPoint(p.step, p.loss, p.lr);
//   });
//   connect(training, &TrainingJob::rpnReady, this, [](QString folder) { offerToLoad(folder); });
//   TrainingJobOptions opt;  opt.store = "labels.sdrpn";  opt.imageRoot = "/data";  opt.outDir = "runs/rpn";
//   training->start(modelSession->pipelineModel(), opt);
//
// Resume is running it again with `resume` on the same out folder: it continues from the newest checkpoint.
// Cancel stops after the optimizer step in flight, writes a checkpoint (lastCheckpoint()) and ends the job
// Cancelled.
//
// Thread affinity: GUI thread; training runs on a JobManager worker. Destroying the object while the job
// runs cancels it; nothing is delivered to it afterwards.
#pragma once

#include <memory>

#include <QObject>
#include <QPointer>
#include <QString>

#include "app/job_manager.h"

namespace sdrpn::pipeline {
struct LoadedModel;
}

struct TrainingJobOptions {
    QString store;
    QString imageRoot;
    QString outDir;
    int epochs = 1;
    qint64 maxSteps = -1;  // -1: the epochs decide
    qint64 limit = -1;     // samples used (-1: all)
    int batch = 8;
    int accum = 1;
    double lr = 5e-5;
    qint64 saveEvery = 0;  // checkpoint every N steps (0: at the end and on cancel)
    bool resume = false;
};

// One optimizer step's metrics (sdrpn::pipeline::TrainMetrics), on the GUI thread.
struct TrainingPoint {
    qint64 step = 0;
    qint64 totalSteps = 0;
    int epoch = 0;
    double loss = 0.0;
    double lr = 0.0;
    double gradNorm = 0.0;
    qint64 validCells = 0;
    qint64 samples = 0;
    double seconds = 0.0;
    double etaSeconds = -1.0;
};

// "step 12/300 · loss 0.4132 · lr 4.9e-05 · ETA 3m10s"
QString trainingProgressText(const TrainingPoint& point);

class TrainingJob : public QObject {
    Q_OBJECT
public:
    explicit TrainingJob(JobManager* jobs, QObject* parent = nullptr);
    ~TrainingJob() override;

    // 0 when it cannot start (no model, a run already going, missing fields); lastError() says why.
    JobId start(std::shared_ptr<const sdrpn::pipeline::LoadedModel> model, const TrainingJobOptions& options);
    bool isRunning() const { return m_job != 0; }
    JobId job() const { return m_job; }
    QString lastError() const { return m_error; }
    QString outDir() const { return m_outDir; }
    // The newest checkpoint the last run wrote ("" when none).
    QString lastCheckpoint() const { return m_lastCheckpoint; }
    int pointCount() const { return m_points; }

public slots:
    void cancel();

signals:
    void started(JobId id);
    void stepFinished(const TrainingPoint& point);
    void logLine(const QString& line);
    void finished(JobManager::JobState state, const QString& summary);
    // A run that ended normally: its RPN (model.safetensors + config.json) is in `folder`.
    void rpnReady(const QString& folder);
    void failedToStart(const QString& reason);

private:
    void onStep(const TrainingPoint& point);

    QPointer<JobManager> m_jobs;  // may go first when both are children of one window
    JobId m_job = 0;
    QString m_error;
    QString m_outDir;
    QString m_lastCheckpoint;
    int m_points = 0;
};

Q_DECLARE_METATYPE(TrainingPoint)
