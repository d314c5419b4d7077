#include "app/labeling_job.h"

#include <fstream>
#include <sstream>

#include <QFileInfo>
#include <QPointer>

#include "core/data/labeling.h"
#include "core/data/pipeline_teacher.h"

namespace {

std::string readText(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw sdrpn::Error(path + ": cannot read the label settings file");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

QString summaryText(const sdrpn::data::LabelingSummary& s) {
    QString text = QObject::tr("%1 labeled, %2 already there, %3 failed, %4 without an image (%5 samples)")
                       .arg(s.labeled)
                       .arg(s.alreadyThere)
                       .arg(qulonglong(s.failed.size()))
                       .arg(s.noImage)
                       .arg(s.total);
    if (!s.status.ok() && !s.status.cancelled())
        text = QString::fromStdString(s.status.message) + QStringLiteral(" (") + text + QStringLiteral(")");
    return text;
}

}  // namespace

LabelingJob::LabelingJob(JobManager* jobs, QObject* parent) : QObject(parent), m_jobs(jobs) {
    qRegisterMetaType<LabelingUpdate>("LabelingUpdate");
}

LabelingJob::~LabelingJob() {
    cancel();
}

void LabelingJob::cancel() {
    if (m_job && m_jobs) m_jobs->cancel(m_job);
}

JobId LabelingJob::start(std::shared_ptr<const sdrpn::pipeline::LoadedModel> model,
                         const LabelingJobOptions& options) {
    auto refuse = [this](const QString& why) -> JobId {
        m_error = why;
        emit failedToStart(why);
        return 0;
    };
    if (!m_jobs || m_jobs->isShutDown()) return refuse(tr("the studio is shutting down"));
    if (m_job) return refuse(tr("a labeling job is already running"));
    if (!model) return refuse(tr("load a model first: the teacher is the loaded model"));
    if (options.dataset.isEmpty()) return refuse(tr("choose a dataset file"));
    if (options.store.isEmpty()) return refuse(tr("choose a label store"));
    m_error.clear();
    m_last = LabelingUpdate{};

    // Per-sample updates travel through `relay`, an object on this (GUI) thread that the worker keeps alive
    // while it runs; the update reaches this object only if it still exists.
    std::shared_ptr<QObject> relay(new QObject, [](QObject* o) { o->deleteLater(); });
    QPointer<LabelingJob> self(this);
    auto summary = std::make_shared<sdrpn::data::LabelingSummary>();
    const LabelingJobOptions opt = options;

    auto work = [model, opt, relay, self, summary](sdrpn::JobContext& job) -> sdrpn::Status {
        sdrpn::data::DatasetOptions datasetOptions;
        datasetOptions.imageRoot = opt.imageRoot.toStdString();
        datasetOptions.limit = opt.limit > 0 ? opt.limit : -1;
        auto dataset = sdrpn::data::openDataset(opt.dataset.toStdString(), datasetOptions);
        if (!dataset) return dataset.status();
        auto settings = sdrpn::guarded([&] {
            if (!opt.settingsFile.isEmpty()) {
                const std::string file = opt.settingsFile.toStdString();
                return sdrpn::LabelSettings::fromJsonText(readText(file), file);
            }
            return sdrpn::LabelSettings::fromPreset(opt.preset.toStdString());
        });
        if (!settings) return settings.status();
        auto store = sdrpn::guarded([&] { return sdrpn::data::LabelStore::open(opt.store.toStdString()); });
        if (!store) return store.status();

        sdrpn::data::LabelingOptions labeling;
        labeling.settings = settings.value();
        sdrpn::pipeline::AskOptions ask = sdrpn::data::PipelineTeacher::defaultOptions();
        ask.generation.maxNewTokens = std::max(1, opt.maxNewTokens);
        const sdrpn::data::PipelineTeacher teacher(model, ask);

        auto onProgress = [relay, self](const sdrpn::data::LabelingProgress& p) {
            LabelingUpdate u;
            u.total = p.total;
            u.labeled = p.labeled;
            u.alreadyThere = p.alreadyThere;
            u.failed = p.failed;
            u.remaining = p.remaining;
            u.samplesPerSecond = p.samplesPerSecond;
            u.etaSeconds = p.etaSeconds;
            u.key = QString::fromStdString(p.key);
            u.answer = QString::fromStdString(p.answer);
            u.message = QString::fromStdString(sdrpn::data::formatProgress(p));
            QMetaObject::invokeMethod(
                relay.get(),
                [self, u] {
                    if (self) self->onUpdate(u);
                },
                Qt::QueuedConnection);
        };
        *summary =
            sdrpn::data::runLabeling(dataset.value(), store.value(), teacher, labeling, job, onProgress);
        return summary->status;
    };
    auto done = [this, summary](const sdrpn::Status& status) {
        m_job = 0;
        const JobManager::JobState state = status.ok()          ? JobManager::JobState::Succeeded
                                           : status.cancelled() ? JobManager::JobState::Cancelled
                                                                : JobManager::JobState::Failed;
        // A job that failed before labeling (dataset, settings, store) has no summary to show.
        const QString text = summary->total > 0 || status.ok() || status.cancelled()
                                 ? summaryText(*summary)
                                 : QString::fromStdString(status.message);
        for (const auto& f : summary->failed)
            emit logLine(tr("failed %1 (%2): %3")
                             .arg(QString::fromStdString(f.key), QString::fromStdString(f.image),
                                  QString::fromStdString(f.reason)));
        if (state == JobManager::JobState::Cancelled)
            emit logLine(tr("cancelled; label again with the same store to resume"));
        emit logLine(text);
        if (state == JobManager::JobState::Failed) m_error = text;
        emit finished(state, text);
    };
    const QString title = tr("Label %1").arg(QFileInfo(options.dataset).fileName());
    m_job = m_jobs->runStatus(title, this, std::move(work), std::move(done));
    emit started(m_job);
    emit logLine(tr("labeling %1 into %2").arg(options.dataset, options.store));
    return m_job;
}

void LabelingJob::onUpdate(const LabelingUpdate& update) {
    m_last = update;
    emit updated(update);
    if (!update.key.isEmpty())
        emit logLine(update.answer.isEmpty() ? tr("%1: skipped or failed").arg(update.key)
                                             : tr("%1: %2").arg(update.key, update.answer));
}
