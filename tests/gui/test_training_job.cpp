// The studio's training tools on the tiny LLaVA fixture: a short training run started from StudioTools feeds
// the live curves and offers the trained RPN.
#include <cmath>
#include <filesystem>
#include <memory>

#include <QMainWindow>
#include <QSignalSpy>

#include <gtest/gtest.h>

#include "app/labeling_job.h"
#include "app/model_session.h"
#include "app/studio_tools.h"
#include "app/training_job.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/jobs_workspace.h"
#include "widgets/plots.h"

namespace fs = std::filesystem;
using sdrpn::test::makeWorkspace;
using sdrpn::test::Workspace;

namespace {

// One loaded tiny model and one labeled store for the whole suite.
class StudioTraining : public ::testing::Test {
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

}  // namespace

TEST_F(StudioTraining, ShortTrainingEmitsMetricsAndTheCurveGainsPoints) {
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
