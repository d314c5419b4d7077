// Jobs › Evaluate… in the studio: without a model or an RPN it says what is missing; with the tiny fixture
// model and its untrained twig it evaluates a two-question dataset as a job, shows the Markdown summary in
// the log and saves the JSON report next to the dataset when asked.
#include <fstream>

#include <QAction>
#include <QFile>
#include <QSignalSpy>

#include "app/evaluation_job.h"
#include "app/main_window.h"
#include "app/studio_tools.h"
#include "core/pipeline/evaluate.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/window_test_support.h"
#include "tests/support/test_support.h"

namespace {

using sdrpn::test::fixturePath;
using sdrpn::test::noSettings;
using sdrpn::test::qs;
using sdrpn::test::scratchDir;
using sdrpn::test::waitForIdle;

// Two questions about a copy of the fixture's image, in a folder of their own.
std::string writeDataset(const std::string& dir) {
    EXPECT_TRUE(QFile::copy(qs(fixturePath("tiny-llava-hf/image_336.png")), qs(dir + "/image_336.png")));
    const std::string path = dir + "/two.jsonl";
    std::ofstream out(path);
    out << R"({"question_id": "q1", "image": "image_336.png", "question": "What colour is the sky?", "answer": "blue"})"
        << "\n"
        << R"({"question_id": "q2", "image": "image_336.png", "question": "Is there a cat?", "answers": ["no", "no"]})"
        << "\n";
    return path;
}

}  // namespace

TEST(Evaluation, SaysWhatIsMissing) {
    MainWindow window(noSettings());
    StudioTools* tools = window.studioTools();
    ASSERT_NE(tools->evaluateAction(), nullptr);
    QSignalSpy errors(tools, &StudioTools::errorReported);
    tools->evaluateDialog();  // no model: refused before any dialog opens
    ASSERT_EQ(errors.count(), 1);
    EXPECT_TRUE(errors.at(0).at(0).toString().contains(QStringLiteral("load a model")))
        << errors.at(0).at(0).toString().toStdString();

    EvaluationJobOptions options;
    options.dataset = qs(writeDataset(scratchDir("studio_eval")));
    EXPECT_EQ(tools->startEvaluation(options), 0u);
    EXPECT_FALSE(tools->evaluationJob()->lastError().isEmpty());
}

TEST(Evaluation, RunsAsAJobAndShowsTheSummary) {
    MainWindow window(noSettings());
    window.openModel(qs(fixturePath("tiny-llava-hf")));
    ASSERT_TRUE(waitForIdle(window.jobManager()));
    StudioTools* tools = window.studioTools();
    QSignalSpy errors(tools, &StudioTools::errorReported);
    tools->evaluateDialog();  // a model but no RPN yet
    ASSERT_EQ(errors.count(), 1);
    EXPECT_TRUE(errors.at(0).at(0).toString().contains(QStringLiteral("RPN")));

    ASSERT_TRUE(window.initRpnFromModel());
    ASSERT_TRUE(waitForIdle(window.jobManager()));

    const std::string dir = scratchDir("studio_eval");
    const std::string dataset = writeDataset(dir);
    const QString report = EvaluationJob::reportPath(qs(dataset));
    QFile::remove(report);
    EvaluationJobOptions options;
    options.dataset = qs(dataset);
    options.imageRoot = qs(dir);
    options.maxNewTokens = 4;
    options.saveReport = true;
    QSignalSpy finished(tools->evaluationJob(), &EvaluationJob::finished);
    QSignalSpy progress(window.jobManager(), &JobManager::jobProgress);
    const JobId id = tools->startEvaluation(options);
    ASSERT_NE(id, 0u) << tools->evaluationJob()->lastError().toStdString();
    EXPECT_FALSE(tools->evaluateAction()->isEnabled());
    ASSERT_TRUE(finished.count() > 0 || finished.wait(300000));
    EXPECT_EQ(finished.at(0).at(0).value<JobManager::JobState>(), JobManager::JobState::Succeeded)
        << finished.at(0).at(1).toString().toStdString();
    ASSERT_TRUE(tools->evaluationJob()->lastReport());
    EXPECT_EQ(tools->evaluationJob()->lastReport()->summary.count, 2) << tools->logText().toStdString();
    const QString summary = tools->evaluationJob()->lastSummary();
    EXPECT_TRUE(summary.contains(QStringLiteral(": 2 samples"))) << summary.toStdString();
    EXPECT_TRUE(tools->logText().contains(summary));
    EXPECT_TRUE(QFile::exists(report));
    EXPECT_TRUE(tools->evaluateAction()->isEnabled());
    EXPECT_GT(progress.count(), 0);
}
