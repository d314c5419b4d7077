// The studio's labeling and training jobs on the tiny LLaVA fixture, through the JobManager: a labeling job
// fills a store (and a rerun resumes it), a short training run feeds the live curves, a cancelled run ends
// Cancelled with a checkpoint folder.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include <QMainWindow>
#include <QSignalSpy>

#include <gtest/gtest.h>

#include "app/labeling_job.h"
#include "app/model_session.h"
#include "app/studio_tools.h"
#include "app/training_job.h"
#include "core/data/label_store.h"
#include "tests/gui/gui_test_support.h"
#include "tests/support/test_support.h"
#include "widgets/plots.h"

namespace fs = std::filesystem;

namespace {

// `n` questions about the fixture's two images, and label settings that fit its 4 layers: a small
// foreground box on a near-uniform random model, so that most samples give usable labels.
struct Workspace {
    QString dir, data, settings;
};

Workspace makeWorkspace(int n) {
    Workspace w;
    const std::string dir = sdrpn::test::scratchDir("jobs");
    const std::string fixture = sdrpn::test::fixturePath("tiny-llava-hf");
    fs::copy_file(fixture + "/image_336.png", dir + "/a.png");
    fs::copy_file(fixture + "/image_640x480.png", dir + "/b.png");
    std::ofstream jsonl(dir + "/questions.jsonl");
    for (int i = 0; i < n; ++i)
        jsonl << R"({"question_id": "q)" << i << R"(", "image": ")" << (i % 2 ? "b" : "a")
              << R"(.png", "question": "What is thing number )" << i << R"(?"})"
              << "\n";
    std::ofstream(dir + "/settings.json")
        << R"({"preset": "llava-1.5-7b", "grounding": [{"layer": 3, "heads": [1, 2]}],
              "sink": [{"layer": 1, "heads": []}], "sink_threshold": 1.0,
              "foreground_ratio": 0.9, "background_ratio": 0.99, "max_box_ratio": 1.0})";
    w.dir = QString::fromStdString(dir);
    w.data = w.dir + "/questions.jsonl";
    w.settings = w.dir + "/settings.json";
    return w;
}

// One loaded tiny model and one labeled store for the whole suite.
class StudioJobs : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        jobs = new JobManager;
        session = new ModelSession(jobs);
        QSignalSpy loaded(session, &ModelSession::loaded);
        session->load(QString::fromStdString(sdrpn::test::fixturePath("tiny-llava-hf")));
        ASSERT_TRUE(loaded.wait(120000) || session->state() == ModelSession::State::Ready)
            << session->errorMessage().toStdString();
    }
    static void TearDownTestSuite() {
        delete session;
        delete jobs;
        session = nullptr;
        jobs = nullptr;
    }

    // Labels `n` samples into a fresh store with a LabelingJob; returns the store's path.
    static QString labeledStore(const Workspace& w, LabelingJob& job, JobManager::JobState* state = nullptr) {
        LabelingJobOptions o;
        o.dataset = w.data;
        o.imageRoot = w.dir;
        o.store = w.dir + "/labels.sdrpn";
        o.settingsFile = w.settings;
        o.maxNewTokens = 6;
        QSignalSpy finished(&job, &LabelingJob::finished);
        EXPECT_NE(job.start(session->pipelineModel(), o), 0u) << job.lastError().toStdString();
        EXPECT_TRUE(finished.wait(300000));
        if (state && !finished.isEmpty()) *state = finished.at(0).at(0).value<JobManager::JobState>();
        return o.store;
    }

    static inline JobManager* jobs = nullptr;
    static inline ModelSession* session = nullptr;
};

std::int64_t countIn(const QString& store) {
    sdrpn::data::LabelStore::Options readOnly;
    readOnly.access = sdrpn::data::LabelStore::Access::ReadOnly;
    return sdrpn::data::LabelStore::open(store.toStdString(), readOnly).count();
}

}  // namespace

TEST_F(StudioJobs, LabelingFillsTheStoreThroughTheJobManagerAndResumes) {
    ASSERT_TRUE(session->pipelineModel());
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

TEST_F(StudioJobs, ShortTrainingEmitsMetricsAndTheCurveGainsPoints) {
    const Workspace w = makeWorkspace(4);
    LabelingJob labeling(jobs);
    const QString store = labeledStore(w, labeling);

    QMainWindow window;
    StudioTools tools(&window, jobs, session, nullptr, nullptr);
    tools.offersRpnLoad = false;
    QSignalSpy steps(tools.trainingJob(), &TrainingJob::stepFinished);
    QSignalSpy finished(tools.trainingJob(), &TrainingJob::finished);
    QSignalSpy ready(&tools, &StudioTools::trainingFinished);
    TrainingJobOptions o;
    o.store = store;
    o.imageRoot = w.dir;
    o.outDir = w.dir + "/run";
    o.epochs = 2;  // 2 steps per epoch: 4 samples, batch 2
    o.maxSteps = 3;
    o.batch = 2;
    o.lr = 1e-3;
    ASSERT_NE(tools.startTraining(o), 0u) << tools.trainingJob()->lastError().toStdString();
    EXPECT_FALSE(tools.trainAction()->isEnabled());  // one run at a time
    ASSERT_TRUE(finished.wait(300000)) << tools.logText().toStdString() << " steps " << steps.count();
    EXPECT_EQ(finished.at(0).at(0).value<JobManager::JobState>(), JobManager::JobState::Succeeded)
        << finished.at(0).at(1).toString().toStdString();
    EXPECT_EQ(steps.count(), 3);
    const auto first = steps.at(0).at(0).value<TrainingPoint>();
    EXPECT_EQ(first.step, 1);
    EXPECT_TRUE(std::isfinite(first.loss));
    EXPECT_GE(first.lr, 0.0);  // the warmup starts from 0
    EXPECT_GT(steps.at(1).at(0).value<TrainingPoint>().lr, 0.0);
    EXPECT_EQ(tools.trainingCurves()->pointCount(), 3);
    ASSERT_EQ(ready.count(), 1);  // the offer to load the RPN
    EXPECT_EQ(ready.at(0).at(0).toString(), o.outDir);
    EXPECT_TRUE(fs::exists((o.outDir + "/model.safetensors").toStdString()));
    EXPECT_TRUE(tools.trainAction()->isEnabled());
    EXPECT_TRUE(tools.logText().contains(QStringLiteral("steps")));
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
    ASSERT_NE(training.start(session->pipelineModel(), o), 0u) << training.lastError().toStdString();
    ASSERT_TRUE(finished.wait(300000));
    EXPECT_EQ(finished.at(0).at(0).value<JobManager::JobState>(), JobManager::JobState::Cancelled)
        << finished.at(0).at(1).toString().toStdString();
    EXPECT_GE(training.pointCount(), 1);
    EXPECT_EQ(ready.count(), 0);
    ASSERT_FALSE(training.lastCheckpoint().isEmpty());
    EXPECT_TRUE(fs::is_directory(training.lastCheckpoint().toStdString()));
    EXPECT_TRUE(finished.at(0).at(1).toString().contains(QStringLiteral("Resume")));
}
