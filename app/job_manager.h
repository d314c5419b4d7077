// JobManager: runs the studio's long operations (model loading, image decoding, and later answering,
// labeling, training) on worker threads and reports back on the GUI thread, after QGIS's QgsTaskManager.
//
// Every job gets its own sdrpn::JobContext (atomic cancel flag + progress callback). The work function runs
// on a worker thread and must not touch widgets; it returns an sdrpn::Result<T> (an exception it lets
// escape is caught on the worker and becomes a failed result: nothing crosses the thread). Progress and
// completion are forwarded to the GUI thread through queued calls; `done` runs there, and only if
// `receiver` still exists.
//
//   JobId id = jobs->run(tr("Inspect model"), this,
//       [folder](sdrpn::JobContext& ctx) { return sdrpn::inspectModel(folder, ctx); },
//       [this](sdrpn::Result<sdrpn::ModelCard> card) { showCard(card); });   // GUI thread
//   jobs->cancel(id);   // any time; the job sees ctx.cancelRequested() / throwIfCancelled()
//
// Shutdown (window close, destructor): every job is cancelled, the manager waits for the workers, then
// drops whatever completions are still queued, so no callback runs into a half-destroyed window.
//
// Thread affinity: create, call and destroy on the GUI thread; signals are emitted on the GUI thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

#include <QHash>
#include <QObject>
#include <QPointer>
#include <QString>
#include <QThreadPool>

#include "core/jobs.h"
#include "core/result.h"

using JobId = quint64;

class JobManager : public QObject {
    Q_OBJECT
public:
    enum class JobState { Queued, Running, Succeeded, Failed, Cancelled };
    Q_ENUM(JobState)

    explicit JobManager(QObject* parent = nullptr);
    ~JobManager() override;

    // Starts `work(JobContext&) -> sdrpn::Result<T>` on a worker thread; `done(sdrpn::Result<T>)` runs on
    // the GUI thread when it ends (ok, failed or cancelled), unless `receiver` was destroyed meanwhile.
    template <class Work, class Done>
    JobId run(const QString& title, QObject* receiver, Work work, Done done);

    // Same, for work whose outcome is only a status.
    JobId runStatus(const QString& title, QObject* receiver,
                    std::function<sdrpn::Status(sdrpn::JobContext&)> work,
                    std::function<void(const sdrpn::Status&)> done = {});

    int activeCount() const { return m_active.size(); }
    bool isActive(JobId id) const { return m_active.contains(id); }
    QString title(JobId id) const;
    bool isShutDown() const { return m_shutDown; }

public slots:
    void cancel(JobId id);
    void cancelAll();
    // Cancels every job, waits for the workers to finish and drops pending completions. Afterwards run()
    // refuses new jobs (they finish at once as cancelled). Idempotent.
    void shutdown();
    // Blocks the calling (GUI) thread until every worker has returned, without cancelling. For tests and
    // batch runs only: the completions are delivered afterwards, through the event loop.
    void waitForWorkers();

signals:
    void jobAdded(JobId id, const QString& title);
    void jobStarted(JobId id);
    // fraction in [0, 1], or -1 when the total is unknown; `message` is the job's own words.
    void jobProgress(JobId id, double fraction, const QString& message);
    void jobFinished(JobId id, JobManager::JobState state, const QString& message);
    void activeCountChanged(int active);
    void allJobsFinished();

private:
    struct Job;
    // `deliver` gets the job's final status; it runs on the GUI thread (see onFinished).
    JobId submit(const QString& title, QObject* receiver,
                 std::function<sdrpn::Status(sdrpn::JobContext&)> work,
                 std::function<void(const sdrpn::Status&)> deliver);
    void onStarted(JobId id);
    void onProgress(JobId id, double fraction, const QString& message);
    void onFinished(JobId id, const sdrpn::Status& status);

    QThreadPool m_pool;
    QHash<JobId, std::shared_ptr<Job>> m_active;
    JobId m_nextId = 1;
    bool m_shutDown = false;
};

Q_DECLARE_METATYPE(JobManager::JobState)

template <class Work, class Done>
JobId JobManager::run(const QString& title, QObject* receiver, Work work, Done done) {
    using R = std::invoke_result_t<Work&, sdrpn::JobContext&>;
    // The worker writes the result, then the GUI thread reads it: the queued call in between orders them.
    auto slot = std::make_shared<std::optional<R>>();
    auto workStatus = [slot, work = std::move(work)](sdrpn::JobContext& ctx) mutable -> sdrpn::Status {
        slot->emplace(work(ctx));
        return (*slot)->status();
    };
    auto deliver = [slot, done = std::move(done)](const sdrpn::Status& status) mutable {
        // No value: the job was cancelled before it started, or its work threw.
        if (slot->has_value()) {
            done(std::move(**slot));
        } else {
            done(R(status));
        }
    };
    return submit(title, receiver, std::move(workStatus), std::move(deliver));
}
