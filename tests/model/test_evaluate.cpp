// Evaluation (core/pipeline/evaluate.h) on the tiny LLaVA fixture with a twiginit RPN (K=3, T=2): the scores
// are what scoring the reported answers gives, a sample whose reference is the model's own baseline answer
// scores 1, IoU is computed for bbox samples only (against the whole image without zoom), missing and
// corrupt images are skipped with their reasons, the summary adds up, the reports have their keys, and a
// cancel keeps the finished samples.
#include <algorithm>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/data/dataset.h"
#include "core/io/image.h"
#include "core/pipeline/ask.h"
#include "core/pipeline/evaluate.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
using namespace sdrpn::pipeline;

namespace {

constexpr int kMaxNewTokens = 4;
const std::string kQuestion = "What is written on the sign?";

class Evaluate : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        const std::string dir = test::fixturePath("tiny-llava-hf");
        JobContext job;
        auto model = loadModel(dir, {}, job);
        ASSERT_TRUE(model.ok()) << model.message();
        s_model = new std::shared_ptr<const LoadedModel>(model.value());
        s_rpn = new Rpn(initRpnFromBackbone(*model.value()->backbone, {3, 2, true}));
    }
    static void TearDownTestSuite() {
        delete s_model;
        delete s_rpn;
    }

    static EvalOptions options() {
        EvalOptions o;
        o.postPrompt = kShortAnswerPostPrompt;
        o.maxNewTokens = kMaxNewTokens;
        return o;
    }

    // The baseline answer evaluate() must reproduce: ask() without capture, same question and budget.
    static std::string baselineAnswer(const io::ImageRgb8& image, const std::string& question) {
        AskOptions o;
        o.question = question + kShortAnswerPostPrompt;
        o.generation.maxNewTokens = kMaxNewTokens;
        o.capture = models::CaptureRequest::none();
        JobContext job;
        auto r = ask(**s_model, image, o, job);
        EXPECT_TRUE(r.ok()) << r.message();
        return r.ok() ? r.value().answer : std::string();
    }

    // s-own: the fixture image, its reference the model's own baseline answer, with a box.
    // s-many: a made image, three references, no box.
    // s-choice: the fixture image, a multiple-choice question (reference "B"), a whole-image box.
    // missing: no such image. corrupt: not a PNG.
    static data::Dataset makeDataset(std::string* ownAnswer) {
        const std::string dir = test::scratchDir("eval");
        const io::ImageRgb8 sign = io::loadImage(test::fixturePath("tiny-llava-hf") + "/image_640x480.png");
        io::saveImage(sign, dir + "/sign.png");
        io::ImageRgb8 made;
        made.width = 200;
        made.height = 120;
        made.pixels.resize(std::size_t(made.width) * made.height * 3);
        for (std::size_t i = 0; i < made.pixels.size(); ++i) made.pixels[i] = std::uint8_t((i * 7) % 251);
        io::saveImage(made, dir + "/made.png");
        std::ofstream(dir + "/corrupt.png") << "this is not a png";

        *ownAnswer = baselineAnswer(sign, kQuestion);
        std::ofstream out(dir + "/set.jsonl");
        out << nlohmann::json{{"question_id", "s-own"},
                              {"image", "sign.png"},
                              {"question", kQuestion},
                              {"answer", *ownAnswer},
                              {"bbox", {100, 80, 300, 240}}}
                   .dump()
            << "\n";
        out << nlohmann::json{{"question_id", "s-many"},
                              {"image", "made.png"},
                              {"question", "What colour is it?"},
                              {"answers", {"red", "Red", "blue"}}}
                   .dump()
            << "\n";
        out << nlohmann::json{{"question_id", "missing"},
                              {"image", "missing.png"},
                              {"question", kQuestion},
                              {"answer", "x"}}
                   .dump()
            << "\n";
        out << nlohmann::json{{"question_id", "s-choice"},
                              {"image", "sign.png"},
                              {"question", "Which word is on the sign? (A) stop (B) go"},
                              {"answer", "B"},
                              {"bbox", {0, 0, 640, 480}}}
                   .dump()
            << "\n";
        out << nlohmann::json{{"question_id", "corrupt"},
                              {"image", "corrupt.png"},
                              {"question", kQuestion},
                              {"answer", "x"}}
                   .dump()
            << "\n";
        out.close();
        data::DatasetOptions opt;
        opt.imageRoot = dir;
        return data::readDataset(dir + "/set.jsonl", opt);
    }

    static std::shared_ptr<const LoadedModel>* s_model;
    static Rpn* s_rpn;
};

std::shared_ptr<const LoadedModel>* Evaluate::s_model = nullptr;
Rpn* Evaluate::s_rpn = nullptr;

TEST_F(Evaluate, ScoresTimesBoxesAndSkips) {
    std::string own;
    const data::Dataset d = makeDataset(&own);
    ASSERT_EQ(d.samples.size(), 4u);  // the missing image is left out by the reader
    JobContext job;
    std::vector<std::string> seen;
    const EvalReport r =
        evaluate(**s_model, *s_rpn, d, options(), job,
                 [&](const EvalRow* row, std::int64_t done, std::int64_t total, const std::string& key) {
                     seen.push_back(key + (row ? "" : " (skipped)"));
                     EXPECT_EQ(total, 4);
                     EXPECT_EQ(done, std::int64_t(seen.size()));
                 });
    ASSERT_TRUE(r.status.ok()) << r.status.message;
    EXPECT_EQ(seen, (std::vector<std::string>{"s-own", "s-many", "s-choice", "corrupt (skipped)"}));

    ASSERT_EQ(r.rows.size(), 3u);
    for (const EvalRow& row : r.rows) {
        const data::Sample& s = *std::find_if(d.samples.begin(), d.samples.end(),
                                              [&](const data::Sample& x) { return x.key == row.key; });
        EXPECT_EQ(row.question, s.question + kShortAnswerPostPrompt);
        // The scores are what scoring the reported answers gives.
        const AnswerScore b = scoreAnswer(s.question, row.baselineAnswer, row.references);
        const AnswerScore z = scoreAnswer(s.question, row.sdrpnAnswer, row.references);
        EXPECT_EQ(row.baselineScore.rule, b.rule) << row.key;
        EXPECT_DOUBLE_EQ(row.baselineScore.score, b.score) << row.key;
        EXPECT_EQ(row.sdrpnScore.rule, z.rule) << row.key;
        EXPECT_DOUBLE_EQ(row.sdrpnScore.score, z.score) << row.key;
        EXPECT_GT(row.baselineSeconds, 0.0);
        EXPECT_GT(row.sdrpnSeconds, 0.0);
        // IoU only with a ground-truth box; without zoom the box is the whole image.
        EXPECT_EQ(row.iou.has_value(), s.bbox.has_value()) << row.key;
        if (!row.zoomed()) {
            const io::ImageRgb8 img = io::loadImage(row.image);
            EXPECT_EQ(row.roiBox, (std::array<double, 4>{0, 0, double(img.width), double(img.height)}));
            EXPECT_EQ(row.roiTokens, 0);
        } else {
            EXPECT_GT(row.roiTokens, 0);
        }
        if (row.iou) EXPECT_DOUBLE_EQ(*row.iou, boxIou(row.roiBox, *s.bbox)) << row.key;
    }
    const EvalRow& ownRow = r.rows[0];
    EXPECT_EQ(ownRow.key, "s-own");
    EXPECT_EQ(ownRow.baselineAnswer, own);
    EXPECT_DOUBLE_EQ(ownRow.baselineScore.score, 1.0);  // its reference is its own answer
    EXPECT_EQ(r.rows[1].baselineScore.rule, ScoreRule::VqaAccuracy);
    EXPECT_EQ(r.rows[1].references.size(), 3u);
    EXPECT_FALSE(r.rows[1].iou);
    EXPECT_EQ(r.rows[2].baselineScore.rule, ScoreRule::MultipleChoice);
    EXPECT_EQ(r.rows[2].baselineScore.reference, "B");

    // Skipped: the reader's missing image and the evaluation's corrupt one, each with a reason.
    ASSERT_EQ(r.skipped.size(), 2u);
    EXPECT_EQ(r.skipped[0].key, "missing");
    EXPECT_EQ(r.skipped[0].reason, "image not found");
    EXPECT_EQ(r.skipped[1].key, "corrupt");
    EXPECT_NE(r.skipped[1].reason.find("corrupt.png"), std::string::npos) << r.skipped[1].reason;

    // The summary adds up.
    const EvalSummary& s = r.summary;
    EXPECT_EQ(s.count, 3);
    EXPECT_EQ(s.scored, 3);
    EXPECT_EQ(s.skipped, 2);
    EXPECT_EQ(s.boxCount, 2);
    double base = 0, zoom = 0, iou = 0, baseSec = 0, zoomSec = 0;
    for (const auto& row : r.rows) {
        base += row.baselineScore.score;
        zoom += row.sdrpnScore.score;
        iou += row.iou.value_or(0.0);
        baseSec += row.baselineSeconds;
        zoomSec += row.sdrpnSeconds;
    }
    EXPECT_DOUBLE_EQ(s.baselineAccuracy, base / 3);
    EXPECT_DOUBLE_EQ(s.sdrpnAccuracy, zoom / 3);
    EXPECT_DOUBLE_EQ(s.meanIou, iou / 2);
    EXPECT_DOUBLE_EQ(s.baselineSecondsPerSample, baseSec / 3);
    EXPECT_DOUBLE_EQ(s.sdrpnSecondsPerSample, zoomSec / 3);
    EXPECT_DOUBLE_EQ(s.throughputRatio, baseSec / zoomSec);

    // JSON: summary, options, every sample, the skipped ones.
    const auto j = nlohmann::json::parse(evalReportJson(r));
    EXPECT_EQ(j.at("status"), "ok");
    for (const char* key :
         {"dataset", "count", "scored", "baseline_accuracy", "sdrpn_accuracy", "box_count", "mean_iou",
          "zoomed", "baseline_seconds_per_sample", "sdrpn_seconds_per_sample", "throughput_ratio", "skipped"})
        EXPECT_TRUE(j.at("summary").contains(key)) << key;
    EXPECT_EQ(j.at("summary").at("count"), 3);
    EXPECT_EQ(j.at("options").at("post_prompt"), kShortAnswerPostPrompt);
    ASSERT_EQ(j.at("samples").size(), 3u);
    EXPECT_EQ(j.at("samples")[0].at("key"), "s-own");
    EXPECT_EQ(j.at("samples")[0].at("baseline").at("answer"), own);
    EXPECT_EQ(j.at("samples")[0].at("baseline").at("score").at("score"), 1.0);
    EXPECT_TRUE(j.at("samples")[0].contains("iou"));
    EXPECT_FALSE(j.at("samples")[1].contains("iou"));
    EXPECT_EQ(j.at("samples")[1].at("sdrpn").at("roi_box").size(), 4u);
    ASSERT_EQ(j.at("skipped").size(), 2u);
    EXPECT_EQ(j.at("skipped")[0].at("reason"), "image not found");

    // Markdown: the summary table, then one row per sample.
    const std::string md = evalReportMarkdown(r, true);
    EXPECT_NE(md.find("| baseline |"), std::string::npos) << md;
    EXPECT_NE(md.find("| SD-RPN |"), std::string::npos) << md;
    for (const char* key : {"| s-own |", "| s-many |", "| s-choice |"})
        EXPECT_NE(md.find(key), std::string::npos) << key << "\n" << md;
    EXPECT_NE(md.find("image not found"), std::string::npos) << md;
    EXPECT_EQ(evalReportMarkdown(r, false).find("| s-own |"), std::string::npos);
}

TEST_F(Evaluate, CancelKeepsTheFinishedSamples) {
    std::string own;
    const data::Dataset d = makeDataset(&own);
    JobContext job;
    const EvalReport r = evaluate(**s_model, *s_rpn, d, options(), job,
                                  [&](const EvalRow*, std::int64_t done, std::int64_t, const std::string&) {
                                      if (done == 1) job.requestCancel();
                                  });
    EXPECT_TRUE(r.status.cancelled()) << r.status.message;
    ASSERT_EQ(r.rows.size(), 1u);
    EXPECT_EQ(r.rows[0].key, "s-own");
    EXPECT_EQ(r.summary.count, 1);
    EXPECT_EQ(r.summary.skipped, 1);  // only the reader's: the corrupt image was never reached
    EXPECT_NE(evalReportMarkdown(r, false).find("Interrupted"), std::string::npos);
}

}  // namespace
