#include "app/job_manager.h"

#include <algorithm>

#include <QThread>

namespace {
// Progress from a worker reaches the GUI at most this often (plus the first and the last report).
constexpr std::chrono::milliseconds kProgressInterval(40);
}  // namespace

struct JobManager::Job {
    JobId id = 0;
    QString title;
    JobState state = JobState::Queued;
    QPointer<QObject> receiver;
    bool hasReceiver = false;
    sdrpn::JobContext ctx;
    std::function<sdrpn::Status(sdrpn::JobContext&)> work;
    std::function<void(const sdrpn::Status&)> deliver;

    std::mutex progressMutex;  // the progress callback may be called from several threads of one job
    std::chrono::steady_clock::time_point lastProgress{};
    std::string lastMessage;
};

JobManager::JobManager(QObject* parent) : QObject(parent) {
    qRegisterMetaType<JobManager::JobState>("JobManager::JobState");
    qRegisterMetaType<JobId>("JobId");
    // Jobs mostly wait on disk or on LibTorch's own thread pool; a few more threads than cores keeps a
    // long job (training) from holding up a short one (opening an image).
    m_pool.setMaxThreadCount(std::max(4, QThread::idealThreadCount()));
    m_pool.setObjectName(QStringLiteral("sdrpn-jobs"));
}

JobManager::~JobManager() {
    shutdown();
}

JobId JobManager::runStatus(const QString& title, QObject* receiver,
                            std::function<sdrpn::Status(sdrpn::JobContext&)> work,
                            std::function<void(const sdrpn::Status&)> done) {
    return submit(title, receiver, std::move(work), [done = std::move(done)](const sdrpn::Status& status) {
        if (done) done(status);
    });
}

JobId JobManager::submit(const QString& title, QObject* receiver,
                         std::function<sdrpn::Status(sdrpn::JobContext&)> work,
                         std::function<void(const sdrpn::Status&)> deliver) {
    auto job = std::make_shared<Job>();
    job->id = m_nextId++;
    job->title = title;
    job->receiver = receiver;
    job->hasReceiver = receiver != nullptr;
    job->work = std::move(work);
    job->deliver = std::move(deliver);
    const JobId id = job->id;
    if (m_shutDown) return id;  // refused: nothing runs, nothing is delivered

    Job* raw = job.get();
    // Runs on the worker thread: throttle, then hop to the GUI thread.
    job->ctx.onProgress = [this, raw, id](const sdrpn::Progress& p) {
        const auto now = std::chrono::steady_clock::now();
        {
            std::lock_guard<std::mutex> lock(raw->progressMutex);
            const bool last = p.total > 0 && p.done >= p.total;
            if (!last && p.message == raw->lastMessage && now - raw->lastProgress < kProgressInterval) return;
            raw->lastProgress = now;
            raw->lastMessage = p.message;
        }
        const double fraction = p.total > 0 ? std::clamp(p.fraction(), 0.0, 1.0) : -1.0;
        const QString message = QString::fromStdString(p.message);
        QMetaObject::invokeMethod(
            this, [this, id, fraction, message] { onProgress(id, fraction, message); }, Qt::QueuedConnection);
    };

    m_active.insert(id, job);
    emit jobAdded(id, title);
    emit activeCountChanged(m_active.size());

    m_pool.start([this, job] {
        const JobId id = job->id;
        sdrpn::Status status;
        if (job->ctx.cancelRequested()) {
            status = sdrpn::Status::cancelledStatus();
        } else {
            QMetaObject::invokeMethod(
                this, [this, id] { onStarted(id); }, Qt::QueuedConnection);
            try {
                status = job->work(job->ctx);
            } catch (...) {
                status = sdrpn::statusFromCurrentException();
            }
            // A job that saw the cancel flag and still returned "ok" did finish its work: keep its result.
        }
        job->work = nullptr;  // free what the work captured on this thread, not later on the GUI thread
        QMetaObject::invokeMethod(
            this, [this, id, status] { onFinished(id, status); }, Qt::QueuedConnection);
    });
    return id;
}

QString JobManager::title(JobId id) const {
    auto it = m_active.find(id);
    return it == m_active.end() ? QString() : (*it)->title;
}

void JobManager::cancel(JobId id) {
    auto it = m_active.find(id);
    if (it != m_active.end()) (*it)->ctx.requestCancel();
}

void JobManager::cancelAll() {
    for (const auto& job : std::as_const(m_active)) job->ctx.requestCancel();
}

void JobManager::shutdown() {
    if (m_shutDown) return;
    m_shutDown = true;
    cancelAll();
    m_pool.waitForDone();
    // Completions still queued for this object find m_shutDown set and return; the jobs and what their
    // callbacks captured are released here, on the GUI thread.
    m_active.clear();
}

void JobManager::waitForWorkers() {
    m_pool.waitForDone();
}

void JobManager::onStarted(JobId id) {
    if (m_shutDown) return;
    auto it = m_active.find(id);
    if (it == m_active.end()) return;
    (*it)->state = JobState::Running;
    emit jobStarted(id);
}

void JobManager::onProgress(JobId id, double fraction, const QString& message) {
    if (m_shutDown || !m_active.contains(id)) return;
    emit jobProgress(id, fraction, message);
}

void JobManager::onFinished(JobId id, const sdrpn::Status& status) {
    if (m_shutDown) return;
    std::shared_ptr<Job> job = m_active.take(id);
    if (!job) return;
    job->state = status.ok()          ? JobState::Succeeded
                 : status.cancelled() ? JobState::Cancelled
                                      : JobState::Failed;
    QString message = QString::fromStdString(status.message);
    if (job->deliver && (!job->hasReceiver || job->receiver)) {
        // A completion handler must not throw into the event loop; report it as the job's failure.
        try {
            job->deliver(status);
        } catch (const std::exception& e) {
            job->state = JobState::Failed;
            message = QString::fromUtf8(e.what());
        } catch (...) {
            job->state = JobState::Failed;
            message = tr("unknown error while finishing the job");
        }
    }
    job->deliver = nullptr;
    emit jobFinished(id, job->state, message);
    emit activeCountChanged(m_active.size());
    if (m_active.isEmpty()) emit allJobsFinished();
}
