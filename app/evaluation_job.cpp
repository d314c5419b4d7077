#include "app/evaluation_job.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include <QDir>
#include <QFileInfo>

#include "core/data/dataset.h"
#include "core/pipeline/evaluate.h"

namespace {

std::string formatSeconds(double seconds) {
    const long s = std::lround(std::max(0.0, seconds));
    char text[32];
    if (s >= 3600) {
        std::snprintf(text, sizeof text, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    } else if (s >= 60) {
        std::snprintf(text, sizeof text, "%ldm%02lds", s / 60, s % 60);
    } else {
        std::snprintf(text, sizeof text, "%lds", s);
    }
    return text;
}

}  // namespace

EvaluationJob::EvaluationJob(JobManager* jobs, QObject* parent) : QObject(parent), m_jobs(jobs) {}

EvaluationJob::~EvaluationJob() {
    cancel();
}

void EvaluationJob::cancel() {
    if (m_job && m_jobs) m_jobs->cancel(m_job);
}

QString EvaluationJob::reportPath(const QString& dataset) {
    const QFileInfo info(dataset);
    return info.absoluteDir().filePath(info.completeBaseName() + QStringLiteral(".eval.json"));
}

JobId EvaluationJob::start(std::shared_ptr<const sdrpn::pipeline::LoadedModel> model,
                           std::shared_ptr<const sdrpn::Rpn> rpn, const EvaluationJobOptions& options) {
    auto refuse = [this](const QString& why) -> JobId {
        m_error = why;
        emit failedToStart(why);
        return 0;
    };
    if (!m_jobs || m_jobs->isShutDown()) return refuse(tr("the studio is shutting down"));
    if (m_job) return refuse(tr("an evaluation is already running"));
    if (!model) return refuse(tr("load a model first"));
    if (!rpn)
        return refuse(
            tr("load an RPN first (File › Open RPN Checkpoint…, or the untrained twig of the model)"));
    if (options.dataset.isEmpty()) return refuse(tr("choose a dataset file"));
    m_error.clear();

    auto report = std::make_shared<sdrpn::pipeline::EvalReport>();
    const EvaluationJobOptions opt = options;
    const QString savePath = reportPath(options.dataset);

    auto work = [model, rpn, opt, report, savePath](sdrpn::JobContext& job) -> sdrpn::Status {
        sdrpn::data::DatasetOptions datasetOptions;
        datasetOptions.imageRoot = opt.imageRoot.toStdString();
        datasetOptions.limit = opt.limit > 0 ? opt.limit : -1;
        auto dataset = sdrpn::data::openDataset(opt.dataset.toStdString(), datasetOptions);
        if (!dataset) return dataset.status();
        sdrpn::pipeline::EvalOptions evalOptions;
        evalOptions.postPrompt = opt.postPrompt.toStdString();
        evalOptions.maxNewTokens = std::max(1, opt.maxNewTokens);
        evalOptions.roi = opt.roi;
        // evaluate() reports "done/total key"; the job's progress adds the rate and the ETA.
        const auto start = std::chrono::steady_clock::now();
        auto onSample = [&job, start](const sdrpn::pipeline::EvalRow*, std::int64_t done, std::int64_t total,
                                      const std::string& key) {
            const double elapsed =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            std::string message = std::to_string(done) + "/" + std::to_string(total) + " " + key;
            if (done > 0 && elapsed > 0) {
                const double rate = double(done) / elapsed;
                char text[64];
                std::snprintf(text, sizeof text, " | %.2f samples/s", rate);
                message += text;
                if (total > done) message += " | ETA " + formatSeconds(double(total - done) / rate);
            }
            job.report(done, total, message);
        };
        *report = sdrpn::pipeline::evaluate(*model, *rpn, dataset.value(), evalOptions, job, onSample);
        if (opt.saveReport && (report->status.ok() || !report->rows.empty())) {
            const sdrpn::Status saved = sdrpn::guarded([&] {
                                            sdrpn::pipeline::writeEvalJson(savePath.toStdString(), *report);
                                        }).status();
            if (!saved.ok() && report->status.ok()) return saved;
        }
        return report->status;
    };
    auto done = [this, report, opt, savePath](const sdrpn::Status& status) {
        m_job = 0;
        const JobManager::JobState state = status.ok()          ? JobManager::JobState::Succeeded
                                           : status.cancelled() ? JobManager::JobState::Cancelled
                                                                : JobManager::JobState::Failed;
        QString text = QString::fromStdString(sdrpn::pipeline::evalReportMarkdown(*report, false));
        if (state == JobManager::JobState::Failed)
            text = QString::fromStdString(status.message) + QStringLiteral("\n\n") + text;
        if (state == JobManager::JobState::Cancelled)
            text = tr("Cancelled: the summary covers the samples finished before.") + QStringLiteral("\n\n") +
                   text;
        for (const auto& s : report->skipped)
            emit logLine(tr("skipped %1 (%2): %3")
                             .arg(QString::fromStdString(s.key), QString::fromStdString(s.image),
                                  QString::fromStdString(s.reason)));
        if (opt.saveReport && QFileInfo::exists(savePath))
            emit logLine(tr("report saved to %1").arg(savePath));
        emit logLine(text);
        m_summary = text;
        m_report = report;
        if (state == JobManager::JobState::Failed) m_error = QString::fromStdString(status.message);
        emit finished(state, text);
    };
    const QString title = tr("Evaluate %1").arg(QFileInfo(options.dataset).fileName());
    m_job = m_jobs->runStatus(title, this, std::move(work), std::move(done));
    emit started(m_job);
    emit logLine(tr("evaluating %1 (baseline and SD-RPN)").arg(options.dataset));
    return m_job;
}
