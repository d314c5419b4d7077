// Closing the window while a job runs asks first: Cancel keeps the window open and the job running; Quit
// cancels the job, waits for it and closes. The question names the running jobs.
#include <atomic>
#include <chrono>
#include <thread>

#include <QSignalSpy>

#include "app/main_window.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/window_test_support.h"

namespace {

using sdrpn::test::noSettings;
// A job that runs until it is cancelled, then reports how it ended.
struct EndlessJob {
    std::atomic<bool> sawCancel{false};
    std::atomic<bool> endedCancelled{false};
    JobId id = 0;

    void start(MainWindow& window, const QString& title) {
        QSignalSpy started(window.jobManager(), &JobManager::jobStarted);
        id = window.jobManager()->runStatus(title, &window, [this](sdrpn::JobContext& ctx) {
            while (!ctx.cancelRequested()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
            sawCancel = true;
            const sdrpn::Status status = sdrpn::Status::cancelledStatus();
            endedCancelled = status.cancelled();
            return status;
        });
        auto running = [&] {
            for (const QList<QVariant>& args : std::as_const(started))
                if (args.at(0).value<JobId>() == id) return true;
            return false;
        };
        while (!running()) ASSERT_TRUE(started.wait(10000));
    }
};

}  // namespace

TEST(CloseDuringJob, TheQuestionNamesTheRunningJobs) {
    EXPECT_EQ(MainWindow::closeQuestion({"Train RPN run1"}),
              "1 job is running (Train RPN run1). Cancel it and quit?");
    EXPECT_EQ(MainWindow::closeQuestion({"Label dataset", "Train RPN run1"}),
              "2 jobs are running (Label dataset, Train RPN run1). Cancel them and quit?");
}

TEST(CloseDuringJob, CancelKeepsTheWindowOpenAndTheJobRunning) {
    auto window = std::make_unique<MainWindow>(noSettings());
    window->show();
    EndlessJob job;
    job.start(*window, "Train RPN run1");

    QStringList asked;
    int questions = 0;
    window->setConfirmCloseHandler([&](const QStringList& jobs) {
        asked = jobs;
        ++questions;
        return false;  // Cancel
    });
    EXPECT_FALSE(window->close());
    EXPECT_EQ(questions, 1);
    EXPECT_EQ(asked, QStringList{"Train RPN run1"});
    EXPECT_TRUE(window->isVisible());
    EXPECT_FALSE(window->jobManager()->isShutDown());
    EXPECT_TRUE(window->jobManager()->isActive(job.id));
    EXPECT_FALSE(job.sawCancel);

    // The job still runs and can be cancelled as usual; then closing asks nothing.
    QSignalSpy finished(window->jobManager(), &JobManager::jobFinished);
    window->jobManager()->cancel(job.id);
    ASSERT_TRUE(sdrpn::test::waitForIdle(window->jobManager()));
    ASSERT_EQ(finished.count(), 1);
    EXPECT_EQ(finished.at(0).at(1).value<JobManager::JobState>(), JobManager::JobState::Cancelled);
    EXPECT_TRUE(window->close());
    EXPECT_EQ(questions, 1);
}

TEST(CloseDuringJob, QuitCancelsWaitsAndCloses) {
    auto window = std::make_unique<MainWindow>(noSettings());
    window->show();
    EndlessJob first, second;
    first.start(*window, "Label dataset");
    second.start(*window, "Train RPN run1");

    QStringList asked;
    window->setConfirmCloseHandler([&](const QStringList& jobs) {
        asked = jobs;
        return true;  // Quit
    });
    EXPECT_TRUE(window->close());
    EXPECT_EQ(asked.size(), 2);
    EXPECT_TRUE(asked.contains("Label dataset"));
    EXPECT_TRUE(asked.contains("Train RPN run1"));
    EXPECT_FALSE(window->isVisible());
    // Both jobs saw the cancel and ended cancelled before close() returned.
    EXPECT_TRUE(first.sawCancel);
    EXPECT_TRUE(first.endedCancelled);
    EXPECT_TRUE(second.sawCancel);
    EXPECT_TRUE(second.endedCancelled);
    EXPECT_TRUE(window->jobManager()->isShutDown());
    EXPECT_EQ(window->jobManager()->activeCount(), 0);
    window.reset();
    QCoreApplication::processEvents();  // completions queued for the destroyed window are dropped
}

TEST(CloseDuringJob, NoJobNoQuestion) {
    MainWindow window(noSettings());
    window.show();
    int questions = 0;
    window.setConfirmCloseHandler([&](const QStringList&) {
        ++questions;
        return false;
    });
    EXPECT_TRUE(window.close());
    EXPECT_EQ(questions, 0);
}
