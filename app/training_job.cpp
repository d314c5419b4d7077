#include "app/training_job.h"

#include <cmath>
#include <optional>

#include <QDir>
#include <QPointer>

#include "core/pipeline/train_rpn.h"

namespace {

QString durationText(double seconds) {
    if (!(seconds >= 0)) return QStringLiteral("?");
    const qint64 s = qint64(std::llround(seconds));
    if (s >= 3600) return QStringLiteral("%1h%2m").arg(s / 3600).arg((s % 3600) / 60, 2, 10, QChar('0'));
    if (s >= 60) return QStringLiteral("%1m%2s").arg(s / 60).arg(s % 60, 2, 10, QChar('0'));
    return QStringLiteral("%1s").arg(s);
}

// The newest checkpoint-<step> folder of `outDir` ("" when none).
QString newestCheckpoint(const QString& outDir) {
    QString best;
    qint64 bestStep = -1;
    const QStringList names =
        QDir(outDir).entryList({QStringLiteral("checkpoint-*")}, QDir::Dirs | QDir::NoDotAndDotDot);
    for (const QString& name : names) {
        bool ok = false;
        const qint64 step = name.mid(int(qstrlen("checkpoint-"))).toLongLong(&ok);
        if (ok && step > bestStep) {
            bestStep = step;
            best = QDir(outDir).filePath(name);
        }
    }
    return best;
}

}  // namespace

QString trainingProgressText(const TrainingPoint& p) {
    QString text = p.totalSteps > 0 ? QObject::tr("step %1/%2").arg(p.step).arg(p.totalSteps)
                                    : QObject::tr("step %1").arg(p.step);
    text += QObject::tr(" · loss %1 · lr %2").arg(p.loss, 0, 'f', 4).arg(p.lr, 0, 'g', 3);
    if (p.etaSeconds >= 0) text += QObject::tr(" · ETA %1").arg(durationText(p.etaSeconds));
    return text;
}

TrainingJob::TrainingJob(JobManager* jobs, QObject* parent) : QObject(parent), m_jobs(jobs) {
    qRegisterMetaType<TrainingPoint>("TrainingPoint");
}

TrainingJob::~TrainingJob() {
    cancel();
}

void TrainingJob::cancel() {
    if (m_job && m_jobs) m_jobs->cancel(m_job);
}

JobId TrainingJob::start(std::shared_ptr<const sdrpn::pipeline::LoadedModel> model,
                         const TrainingJobOptions& options) {
    auto refuse = [this](const QString& why) -> JobId {
        m_error = why;
        emit failedToStart(why);
        return 0;
    };
    if (!m_jobs || m_jobs->isShutDown()) return refuse(tr("the studio is shutting down"));
    if (m_job) return refuse(tr("a training run is already going"));
    if (!model) return refuse(tr("load a model first: the RPN is trained on the loaded backbone"));
    if (options.store.isEmpty()) return refuse(tr("choose a label store"));
    if (options.outDir.isEmpty()) return refuse(tr("choose an output folder"));
    m_error.clear();
    m_outDir = options.outDir;
    m_lastCheckpoint.clear();
    m_points = 0;

    sdrpn::pipeline::TrainOptions train;
    train.store = options.store.toStdString();
    train.imageRoot = options.imageRoot.toStdString();
    train.outDir = options.outDir.toStdString();
    train.epochs = std::max(1, options.epochs);
    train.maxSteps = options.maxSteps > 0 ? options.maxSteps : -1;
    train.limit = options.limit > 0 ? options.limit : -1;
    train.batch = std::max(1, options.batch);
    train.accum = std::max(1, options.accum);
    train.lr = options.lr;
    train.saveEvery = std::max<qint64>(0, options.saveEvery);
    train.resume = options.resume;

    // Step metrics travel through `relay`, an object on this (GUI) thread that the worker keeps alive while
    // it runs: queued calls keep the steps in order and reach this object only if it still exists.
    std::shared_ptr<QObject> relay(new QObject, [](QObject* o) { o->deleteLater(); });
    QPointer<TrainingJob> self(this);
    auto summary = std::make_shared<std::optional<sdrpn::pipeline::TrainSummary>>();

    auto work = [model, train, relay, self, summary](sdrpn::JobContext& job) -> sdrpn::Status {
        auto onStep = [&job, relay, self](const sdrpn::pipeline::TrainMetrics& m) {
            TrainingPoint p;
            p.step = m.step;
            p.totalSteps = m.totalSteps;
            p.epoch = m.epoch;
            p.loss = m.loss;
            p.lr = m.lr;
            p.gradNorm = m.gradNorm;
            p.validCells = m.validCells;
            p.samples = m.samples;
            p.seconds = m.seconds;
            p.etaSeconds = m.etaSeconds;
            job.report(m.step, m.totalSteps, trainingProgressText(p).toStdString());
            QMetaObject::invokeMethod(
                relay.get(),
                [self, p] {
                    if (self) self->onStep(p);
                },
                Qt::QueuedConnection);
        };
        sdrpn::Result<sdrpn::pipeline::TrainSummary> r =
            sdrpn::pipeline::trainRpn(*model, train, job, onStep);
        if (!r) return r.status();
        *summary = r.value();
        // The run's own status: a cancelled run returns its summary (with the checkpoint) as a value.
        return r.value().status;
    };
    auto done = [this, summary](const sdrpn::Status& status) {
        m_job = 0;
        const JobManager::JobState state = status.ok()          ? JobManager::JobState::Succeeded
                                           : status.cancelled() ? JobManager::JobState::Cancelled
                                                                : JobManager::JobState::Failed;
        QString text;
        if (summary->has_value()) {
            const sdrpn::pipeline::TrainSummary& s = **summary;
            m_lastCheckpoint = QString::fromStdString(s.lastCheckpoint);
            text = tr("%1 steps on %2 samples (%3 left out), loss %4 → %5 in %6")
                       .arg(s.steps)
                       .arg(s.samplesUsed)
                       .arg(s.skipped)
                       .arg(s.firstLoss, 0, 'f', 4)
                       .arg(s.lastLoss, 0, 'f', 4)
                       .arg(durationText(s.seconds));
            for (const std::string& reason : s.skippedReasons)
                emit logLine(tr("left out %1").arg(QString::fromStdString(reason)));
            if (!status.ok() && !status.cancelled())
                text = QString::fromStdString(status.message) + " (" + text + ")";
        } else {
            text = QString::fromStdString(status.message);
        }
        if (m_lastCheckpoint.isEmpty()) m_lastCheckpoint = newestCheckpoint(m_outDir);
        if (state == JobManager::JobState::Cancelled)
            text = tr("cancelled at a checkpoint (%1); train again with Resume to continue")
                       .arg(m_lastCheckpoint.isEmpty() ? tr("none written") : m_lastCheckpoint);
        if (state == JobManager::JobState::Failed) m_error = text;
        emit logLine(text);
        emit finished(state, text);
        if (state == JobManager::JobState::Succeeded) emit rpnReady(m_outDir);
    };
    m_job = m_jobs->runStatus(tr("Train RPN → %1").arg(QDir(options.outDir).dirName()), this, std::move(work),
                              std::move(done));
    emit started(m_job);
    emit logLine(tr("training on %1 into %2%3")
                     .arg(options.store, options.outDir, options.resume ? tr(" (resuming)") : QString()));
    return m_job;
}

void TrainingJob::onStep(const TrainingPoint& point) {
    ++m_points;
    emit stepFinished(point);
}
