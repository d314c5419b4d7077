// EvaluationJob: the studio's "Evaluate…" job. It runs sdrpn::pipeline::evaluate (baseline and SD-RPN on
// every sample of a dataset, sdrpn.md §6) with the ModelSession's model and the RpnSession's RPN as one
// JobManager job: progress with rate and ETA in the Jobs panel, cancel. When it ends, the report's Markdown
// summary is delivered (finished()) and, when asked, its JSON is written next to the dataset
// (<dataset>.eval.json).
//
//   auto* eval = new EvaluationJob(jobs, this);
//   EvaluationJobOptions opt;  opt.dataset = "textvqa_val.jsonl";  opt.imageRoot = "/data";
//   JobId id = eval->start(model->pipelineModel(), rpn->rpn(), opt);   // 0: not started, lastError()
//   connect(eval, &EvaluationJob::finished, this, [](JobManager::JobState s, QString markdown) { ... });
//
// Cancel drops the sample in flight; the summary then covers the samples finished before it.
//
// Thread affinity: GUI thread; the evaluation runs on a JobManager worker. The model and the RPN are shared
// read-only. Destroying the object while the job runs is safe (the job is cancelled).
#pragma once

#include <memory>

#include <QObject>
#include <QPointer>
#include <QString>

#include "app/job_manager.h"
#include "core/sdrpn/roi.h"

namespace sdrpn {
class Rpn;
}
namespace sdrpn::pipeline {
struct LoadedModel;
struct EvalReport;
}  // namespace sdrpn::pipeline

struct EvaluationJobOptions {
    QString dataset;    // JSONL or LLaVA JSON
    QString imageRoot;  // the dataset's image folder
    qint64 limit = -1;  // at most this many samples (-1: all)
    QString postPrompt;
    int maxNewTokens = 128;
    sdrpn::RoiSettings roi;   // SD-RPN's thresholds
    bool saveReport = false;  // write reportPath(dataset)
};

class EvaluationJob : public QObject {
    Q_OBJECT
public:
    explicit EvaluationJob(JobManager* jobs, QObject* parent = nullptr);
    ~EvaluationJob() override;

    // Where a saved report goes: next to the dataset, "<name>.eval.json".
    static QString reportPath(const QString& dataset);

    // 0 when it cannot start (no model, no RPN, a job running, no dataset), with the reason in lastError()
    // and failedToStart().
    JobId start(std::shared_ptr<const sdrpn::pipeline::LoadedModel> model,
                std::shared_ptr<const sdrpn::Rpn> rpn, const EvaluationJobOptions& options);
    bool isRunning() const { return m_job != 0; }
    JobId job() const { return m_job; }
    QString lastError() const { return m_error; }
    // The last finished run's Markdown summary (evalReportMarkdown without the per-sample table) and report.
    QString lastSummary() const { return m_summary; }
    std::shared_ptr<const sdrpn::pipeline::EvalReport> lastReport() const { return m_report; }

public slots:
    void cancel();

signals:
    void started(JobId id);
    void logLine(const QString& line);
    // state: Succeeded, Failed or Cancelled; `summary` is the Markdown summary (with the failure's reason).
    void finished(JobManager::JobState state, const QString& summary);
    void failedToStart(const QString& reason);

private:
    QPointer<JobManager> m_jobs;
    JobId m_job = 0;
    QString m_error;
    QString m_summary;
    std::shared_ptr<const sdrpn::pipeline::EvalReport> m_report;
};
