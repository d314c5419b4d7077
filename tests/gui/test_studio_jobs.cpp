// The studio's labeling and training jobs on the tiny LLaVA fixture, through the JobManager and nothing
// else of the studio (no window, no model session): a labeling job fills a store and a rerun resumes it,
// a labeling job cancelled from the GUI thread keeps what it wrote, a cancelled training run ends Cancelled
// with a checkpoint folder. These are the threaded tests that also run under ThreadSanitizer
// (scripts/sanitize threads).
#include <memory>

#include <QSignalSpy>

#include <gtest/gtest.h>

#include "app/labeling_job.h"
#include "app/training_job.h"
#include "core/pipeline/ask.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/jobs_workspace.h"

namespace fs = std::filesystem;
using sdrpn::test::countIn;
using sdrpn::test::makeWorkspace;
using sdrpn::test::Workspace;

namespace {

// One loaded tiny model for the whole suite.
class StudioJobs : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        jobs = new JobManager;
        auto loaded = sdrpn::pipeline::loadModel(sdrpn::test::fixturePath("tiny-llava-hf"), {},
                                                 sdrpn::JobContext::none());
        ASSERT_TRUE(loaded.ok()) << loaded.message();
        model = new std::shared_ptr<const sdrpn::pipeline::LoadedModel>(loaded.value());
    }
    static void TearDownTestSuite() {
        delete jobs;
        delete model;
        jobs = nullptr;
        model = nullptr;
    }

    static LabelingJobOptions labelingOptions(const Workspace& w) {
        LabelingJobOptions o;
        o.dataset = w.data;
        o.imageRoot = w.dir;
        o.store = w.dir + "/labels.sdrpn";
        o.settingsFile = w.settings;
        o.maxNewTokens = 6;
        return o;
    }

    // Labels the workspace's samples into its store with a LabelingJob; returns the store's path.
    static QString labeledStore(const Workspace& w, LabelingJob& job, JobManager::JobState* state = nullptr) {
        const LabelingJobOptions o = labelingOptions(w);
        QSignalSpy finished(&job, &LabelingJob::finished);
        EXPECT_NE(job.start(*model, o), 0u) << job.lastError().toStdString();
        EXPECT_TRUE(finished.wait(300000));
        if (state && !finished.isEmpty()) *state = finished.at(0).at(0).value<JobManager::JobState>();
        return o.store;
    }

    static inline JobManager* jobs = nullptr;
    static inline std::shared_ptr<const sdrpn::pipeline::LoadedModel>* model = nullptr;
};

}  // namespace

TEST_F(StudioJobs, LabelingFillsTheStoreThroughTheJobManagerAndResumes) {
    ASSERT_TRUE(*model);
    const Workspace w = makeWorkspace(4);
    LabelingJob labeling(jobs);
    QSignalSpy updates(&labeling, &LabelingJob::updated);
    QSignalSpy progress(jobs, &JobManager::jobProgress);
    JobManager::JobState state = JobManager::JobState::Queued;
    const QString store = labeledStore(w, labeling, &state);
    EXPECT_EQ(state, JobManager::JobState::Succeeded) << labeling.lastError().toStdString();
    EXPECT_EQ(countIn(store), 4);
    EXPECT_GE(updates.count(), 4);
    EXPECT_EQ(labeling.lastUpdate().labeled, 4);
    EXPECT_GE(progress.count(), 1);  // the Jobs panel's progress with rate and ETA
    EXPECT_FALSE(labeling.isRunning());

    // Running it again on the same store resumes: nothing left to label.
    state = JobManager::JobState::Queued;
    labeledStore(w, labeling, &state);
    EXPECT_EQ(state, JobManager::JobState::Succeeded);
    EXPECT_EQ(labeling.lastUpdate().alreadyThere, 4);
    EXPECT_EQ(labeling.lastUpdate().labeled, 0);

    // No model: refused at once, saying why.
    QSignalSpy refused(&labeling, &LabelingJob::failedToStart);
    EXPECT_EQ(labeling.start(nullptr, LabelingJobOptions{}), 0u);
    EXPECT_EQ(refused.count(), 1);
    EXPECT_FALSE(labeling.lastError().isEmpty());
}

TEST_F(StudioJobs, LabelingCancelledFromTheGuiThreadKeepsWhatItWrote) {
    const Workspace w = makeWorkspace(12);
    LabelingJob labeling(jobs);
    QSignalSpy finished(&labeling, &LabelingJob::finished);
    // Cancel from the GUI thread once two samples are in, while the worker writes the next.
    const auto cancelAtTwo = QObject::connect(&labeling, &LabelingJob::updated, &labeling, [&labeling] {
        if (labeling.lastUpdate().labeled >= 2) labeling.cancel();
    });
    const LabelingJobOptions o = labelingOptions(w);
    ASSERT_NE(labeling.start(*model, o), 0u) << labeling.lastError().toStdString();
    ASSERT_TRUE(finished.wait(300000));
    EXPECT_EQ(finished.at(0).at(0).value<JobManager::JobState>(), JobManager::JobState::Cancelled);
    const std::int64_t kept = countIn(o.store);
    EXPECT_GE(kept, 2);
    EXPECT_LT(kept, 12);

    // The rerun finishes the rest.
    QObject::disconnect(cancelAtTwo);
    JobManager::JobState state = JobManager::JobState::Queued;
    labeledStore(w, labeling, &state);
    EXPECT_EQ(state, JobManager::JobState::Succeeded);
    EXPECT_EQ(labeling.lastUpdate().alreadyThere, kept);
    EXPECT_EQ(countIn(o.store), 12);
}

TEST_F(StudioJobs, CancelledTrainingEndsCancelledWithACheckpoint) {
    const Workspace w = makeWorkspace(4);
    LabelingJob labeling(jobs);
    const QString store = labeledStore(w, labeling);

    TrainingJob training(jobs);
    QSignalSpy finished(&training, &TrainingJob::finished);
    QSignalSpy ready(&training, &TrainingJob::rpnReady);
    // Cancel as soon as the first step is in.
    QObject::connect(&training, &TrainingJob::stepFinished, &training, [&training] { training.cancel(); });
    TrainingJobOptions o;
    o.store = store;
    o.imageRoot = w.dir;
    o.outDir = w.dir + "/cancelled";
    o.epochs = 1000;
    o.batch = 1;
    ASSERT_NE(training.start(*model, o), 0u) << training.lastError().toStdString();
    ASSERT_TRUE(finished.wait(300000));
    EXPECT_EQ(finished.at(0).at(0).value<JobManager::JobState>(), JobManager::JobState::Cancelled)
        << finished.at(0).at(1).toString().toStdString();
    EXPECT_GE(training.pointCount(), 1);
    EXPECT_EQ(ready.count(), 0);
    ASSERT_FALSE(training.lastCheckpoint().isEmpty());
    EXPECT_TRUE(fs::is_directory(training.lastCheckpoint().toStdString()));
    EXPECT_TRUE(finished.at(0).at(1).toString().contains(QStringLiteral("Resume")));
}
