// JobManager: work runs off the GUI thread; progress and completion arrive on the GUI thread; cancel,
// exceptions, destroyed receivers and shutdown behave.
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include <QSignalSpy>
#include <QThread>

#include "app/job_manager.h"
#include "tests/gui/gui_test_support.h"

namespace {

// Simulated work: a bounded number of small steps, each a cancel point.
sdrpn::Result<int> stepUntilCancelled(sdrpn::JobContext& ctx, std::atomic<bool>* sawCancel, int maxSteps) {
    for (int i = 0; i < maxSteps; ++i) {
        if (ctx.cancelRequested()) {
            if (sawCancel) *sawCancel = true;
            return sdrpn::Status::cancelledStatus();
        }
        ctx.report(i, maxSteps, "step");
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return maxSteps;
}

}  // namespace

TEST(JobManager, RunsOnAWorkerAndDeliversOnTheGuiThread) {
    JobManager jobs;
    QThread* gui = QThread::currentThread();
    std::atomic<QThread*> workerThread{nullptr};
    QThread* progressThread = nullptr;
    QThread* doneThread = nullptr;
    int value = 0;
    std::vector<double> fractions;
    QObject::connect(&jobs, &JobManager::jobProgress, [&](JobId, double fraction, const QString& message) {
        progressThread = QThread::currentThread();
        fractions.push_back(fraction);
        EXPECT_EQ(message, QStringLiteral("counting"));
    });
    QSignalSpy finished(&jobs, &JobManager::jobFinished);
    QSignalSpy added(&jobs, &JobManager::jobAdded);

    const JobId id = jobs.run(
        "count", nullptr,
        [&](sdrpn::JobContext& ctx) -> sdrpn::Result<int> {
            workerThread = QThread::currentThread();
            for (int i = 0; i <= 10; ++i) ctx.report(i, 10, "counting");
            return 42;
        },
        [&](sdrpn::Result<int> r) {
            doneThread = QThread::currentThread();
            value = r.ok() ? r.value() : -1;
        });
    EXPECT_EQ(added.count(), 1);
    EXPECT_TRUE(jobs.isActive(id));
    ASSERT_TRUE(finished.wait(10000));
    EXPECT_EQ(finished.at(0).at(0).value<JobId>(), id);
    EXPECT_EQ(finished.at(0).at(1).value<JobManager::JobState>(), JobManager::JobState::Succeeded);
    EXPECT_EQ(value, 42);
    EXPECT_NE(workerThread.load(), gui);
    EXPECT_EQ(doneThread, gui);
    ASSERT_FALSE(fractions.empty());
    EXPECT_EQ(progressThread, gui);
    EXPECT_DOUBLE_EQ(fractions.back(), 1.0);  // the last report always gets through the throttle
    EXPECT_EQ(jobs.activeCount(), 0);
}

TEST(JobManager, CancelStopsARunningJob) {
    JobManager jobs;
    std::atomic<bool> sawCancel{false};
    QSignalSpy started(&jobs, &JobManager::jobStarted);
    QSignalSpy finished(&jobs, &JobManager::jobFinished);
    std::optional<sdrpn::StatusCode> code;
    const JobId id = jobs.run(
        "long", nullptr, [&](sdrpn::JobContext& ctx) { return stepUntilCancelled(ctx, &sawCancel, 1000000); },
        [&](sdrpn::Result<int> r) { code = r.status().code; });
    ASSERT_TRUE(started.wait(10000));
    jobs.cancel(id);
    ASSERT_TRUE(finished.wait(10000));
    EXPECT_TRUE(sawCancel);
    EXPECT_EQ(finished.at(0).at(1).value<JobManager::JobState>(), JobManager::JobState::Cancelled);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, sdrpn::StatusCode::Cancelled);
}

TEST(JobManager, ThrowIfCancelledBecomesCancelledNotFailed) {
    JobManager jobs;
    QSignalSpy started(&jobs, &JobManager::jobStarted);
    QSignalSpy finished(&jobs, &JobManager::jobFinished);
    const JobId id = jobs.runStatus("throwing cancel", nullptr, [](sdrpn::JobContext& ctx) {
        for (;;) {
            ctx.throwIfCancelled();
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        return sdrpn::Status::success();
    });
    ASSERT_TRUE(started.wait(10000));
    jobs.cancel(id);
    ASSERT_TRUE(finished.wait(10000));
    EXPECT_EQ(finished.at(0).at(1).value<JobManager::JobState>(), JobManager::JobState::Cancelled);
}

TEST(JobManager, AnExceptionInTheWorkBecomesAFailedResult) {
    JobManager jobs;
    QSignalSpy finished(&jobs, &JobManager::jobFinished);
    QString message;
    jobs.run(
        "throws", nullptr,
        [](sdrpn::JobContext&) -> sdrpn::Result<int> {
            throw std::runtime_error("model.safetensors: truncated");
        },
        [&](sdrpn::Result<int> r) {
            EXPECT_FALSE(r.ok());
            message = QString::fromStdString(r.message());
        });
    ASSERT_TRUE(finished.wait(10000));
    EXPECT_EQ(finished.at(0).at(1).value<JobManager::JobState>(), JobManager::JobState::Failed);
    EXPECT_EQ(message, QStringLiteral("model.safetensors: truncated"));
    EXPECT_EQ(finished.at(0).at(2).toString(), message);
}

TEST(JobManager, SkipsTheCompletionOfADestroyedReceiver) {
    JobManager jobs;
    QSignalSpy finished(&jobs, &JobManager::jobFinished);
    bool called = false;
    auto* receiver = new QObject;
    jobs.run(
        "orphan", receiver, [](sdrpn::JobContext&) -> sdrpn::Result<int> { return 1; },
        [&](sdrpn::Result<int>) { called = true; });
    delete receiver;
    ASSERT_TRUE(finished.wait(10000));
    EXPECT_FALSE(called);
}

TEST(JobManager, ShutdownCancelsWaitsAndDropsCompletions) {
    std::atomic<bool> sawCancel{false};
    std::atomic<int> entered{0};
    std::atomic<int> exited{0};
    bool called = false;
    {
        JobManager jobs;
        QSignalSpy started(&jobs, &JobManager::jobStarted);
        for (int i = 0; i < 3; ++i) {
            jobs.run(
                "long", nullptr,
                [&](sdrpn::JobContext& ctx) {
                    ++entered;
                    auto r = stepUntilCancelled(ctx, &sawCancel, 1000000);
                    ++exited;
                    return r;
                },
                [&](sdrpn::Result<int>) { called = true; });
        }
        ASSERT_TRUE(started.wait(10000));
        jobs.shutdown();
        EXPECT_TRUE(jobs.isShutDown());
        EXPECT_EQ(jobs.activeCount(), 0);
        // Every job that started has returned (a job still queued at shutdown never runs its work).
        EXPECT_GE(entered.load(), 1);
        EXPECT_EQ(exited.load(), entered.load());
        EXPECT_TRUE(sawCancel);
        // Later jobs are refused.
        jobs.run(
            "after", nullptr, [](sdrpn::JobContext&) -> sdrpn::Result<int> { return 1; },
            [&](sdrpn::Result<int>) { called = true; });
        EXPECT_EQ(jobs.activeCount(), 0);
    }
    QCoreApplication::processEvents();
    EXPECT_FALSE(called);
}

TEST(JobManager, AllJobsFinishedFiresWhenTheLastOneEnds) {
    JobManager jobs;
    QSignalSpy all(&jobs, &JobManager::allJobsFinished);
    for (int i = 0; i < 5; ++i)
        jobs.run(
            "quick", nullptr, [i](sdrpn::JobContext&) -> sdrpn::Result<int> { return i; },
            [](sdrpn::Result<int>) {});
    EXPECT_EQ(jobs.activeCount(), 5);
    ASSERT_TRUE(sdrpn::test::waitForIdle(&jobs, 10000));
    EXPECT_EQ(all.count(), 1);
}
