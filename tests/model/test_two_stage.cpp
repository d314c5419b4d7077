// The SD-RPN two-stage answer (sdrpn.md §4.1–4.5) on the tiny LLaVA fixture with a twiginit RPN (K=3, T=2):
// the RoI logits, every branch (bbox, mask, no zoom), and the KV-prefix reuse, whose answers and logits
// must equal the reference's fresh full re-prefill of [sys | img | RoI | question] within 1e-4, with and
// without the baseline.
#include <algorithm>
#include <cstdio>

#include <gtest/gtest.h>

#include "core/io/image.h"
#include "core/pipeline/ask.h"
#include "core/pipeline/demo_model.h"
#include "core/pipeline/two_stage.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
using namespace sdrpn::pipeline;

namespace {

constexpr double kTol = 1e-4;

std::vector<float> blocks(const std::vector<models::GridBox>& rects) {
    std::vector<float> logits(576, -20.0f);
    for (const auto& b : rects)
        for (int r = b.y0; r < b.y1; ++r)
            for (int c = b.x0; c < b.x1; ++c) logits[std::size_t(r * 24 + c)] = 20.0f;
    return logits;
}

void expectSameRoiAnswer(const TwoStageResult& a, const TwoStageResult& b) {
    EXPECT_EQ(a.roi.branch, b.roi.branch);
    EXPECT_EQ(a.roiTokens, b.roiTokens);
    EXPECT_EQ(a.pass2Length, b.pass2Length);
    ASSERT_EQ(a.roiAnswer.tokens, b.roiAnswer.tokens);
    EXPECT_TENSOR_NEAR(a.roiAnswer.lastLogits, b.roiAnswer.lastLogits, kTol);
    EXPECT_TENSOR_NEAR(a.roiAnswer.stepLogits, b.roiAnswer.stepLogits, kTol);
}

class TwoStage : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        const std::string dir = test::fixturePath("tiny-llava-hf");
        JobContext job;
        auto model = loadModel(dir, {}, job);
        ASSERT_TRUE(model.ok()) << model.message();
        s_model = new std::shared_ptr<const LoadedModel>(model.value());
        s_rpn = new Rpn(initRpnFromBackbone(*model.value()->backbone, {3, 2, true}));
        s_image = new io::ImageRgb8(io::loadImage(dir + "/image_640x480.png"));
    }
    static void TearDownTestSuite() {
        delete s_model;
        delete s_rpn;
        delete s_image;
    }

    static TwoStageOptions options() {
        TwoStageOptions o;
        o.question = "What is written on the sign?";
        o.generation.maxNewTokens = 8;
        return o;
    }
    static TwoStageResult run(const TwoStageOptions& o, const Rpn& rpn = *s_rpn) {
        JobContext job;
        auto r = answerTwoStage(**s_model, rpn, *s_image, o, job);
        EXPECT_TRUE(r.ok()) << r.message();
        if (!r.ok()) throw std::runtime_error(r.message());
        return std::move(r).value();
    }
    static std::string failure(const TwoStageOptions& o, const Rpn& rpn = *s_rpn) {
        JobContext job;
        auto r = answerTwoStage(**s_model, rpn, *s_image, o, job);
        return r.ok() ? "(no error)" : r.message();
    }

    static std::shared_ptr<const LoadedModel>* s_model;
    static Rpn* s_rpn;
    static io::ImageRgb8* s_image;
};

std::shared_ptr<const LoadedModel>* TwoStage::s_model = nullptr;
Rpn* TwoStage::s_rpn = nullptr;
io::ImageRgb8* TwoStage::s_image = nullptr;

TEST_F(TwoStage, RpnLogitsAreFiniteOnTheGrid) {
    const TwoStageResult r = run(options());
    EXPECT_EQ(r.roiLogits.sizes(), (std::vector<std::int64_t>{24, 24}));
    EXPECT_TRUE(r.roiLogits.isfinite().all().item<bool>());
    EXPECT_EQ(r.roi.rows, 24);
    EXPECT_EQ(r.roi.cols, 24);
    EXPECT_EQ(r.roi.logits.size(), 576u);
    EXPECT_EQ(r.roi.blurred.size(), 576u);
    EXPECT_EQ(r.geometry.sourceWidth, 640);
    EXPECT_EQ(r.geometry.sourceHeight, 480);
    EXPECT_TRUE(r.baselineComputed);
    EXPECT_FALSE(r.baseline.tokens.empty());
    EXPECT_FALSE(r.roiAnswer.tokens.empty());
    const auto& t = r.timings;
    EXPECT_GT(t.vision, 0.0);
    EXPECT_GT(t.pass1, 0.0);
    EXPECT_GT(t.rpn, 0.0);
    EXPECT_GE(t.postprocess, 0.0);
    EXPECT_GT(t.baselineDecode, 0.0);
}

TEST_F(TwoStage, BaselineIsThePlainAnswer) {
    const TwoStageResult r = run(options());
    AskOptions ask;
    ask.question = options().question;
    ask.generation.maxNewTokens = 8;
    ask.capture = models::CaptureRequest::none();
    JobContext job;
    auto plain = pipeline::ask(**s_model, *s_image, ask, job);
    ASSERT_TRUE(plain.ok()) << plain.message();
    EXPECT_EQ(r.baseline.tokens, plain.value().generation.tokens);
    EXPECT_EQ(r.baseline.text, plain.value().answer);
    EXPECT_TENSOR_NEAR(r.baseline.stepLogits, plain.value().generation.stepLogits, 1e-5);
    EXPECT_EQ(r.promptText, plain.value().promptText);
}

TEST_F(TwoStage, CapturesTheBaselinesAttentionLikeAsk) {
    // With a baseline, the two-stage answer can keep the same maps a plain ask captures (the studio shows
    // them next to the RoI view); pass 2 adds nothing to them.
    TwoStageOptions o = options();
    o.capture = AskOptions::defaultCapture();
    o.roiLogitsOverride = blocks({{10, 10, 12, 12}});  // zoom, so pass 2 runs
    const TwoStageResult r = run(o);
    ASSERT_TRUE(r.roi.zoom());
    AskOptions ask;
    ask.question = options().question;
    ask.generation.maxNewTokens = 8;
    JobContext job;
    auto plain = pipeline::ask(**s_model, *s_image, ask, job);
    ASSERT_TRUE(plain.ok()) << plain.message();
    const models::AttentionMaps& a = r.maps;
    const models::AttentionMaps& b = plain.value().maps;
    ASSERT_FALSE(a.empty());
    ASSERT_EQ(a.rows.size(), b.rows.size());
    ASSERT_EQ(a.layers.size(), b.layers.size());
    EXPECT_EQ(a.imageKeyPositions, b.imageKeyPositions);
    for (std::size_t i = 0; i < a.rows.size(); ++i) {
        EXPECT_EQ(a.rows[i].position, b.rows[i].position);
        EXPECT_EQ(a.rows[i].kind, b.rows[i].kind);
    }
    for (std::size_t l = 0; l < a.layers.size(); ++l) {
        ASSERT_EQ(a.layers[l].values.size(), b.layers[l].values.size());
        for (std::size_t k = 0; k < a.layers[l].values.size(); ++k)
            ASSERT_NEAR(a.layers[l].values[k], b.layers[l].values[k], 1e-6)
                << "layer slot " << l << " value " << k;
    }
    // Without a capture request nothing is kept.
    EXPECT_TRUE(run(options()).maps.empty());
}

struct BranchCase {
    const char* name;
    std::vector<float> logits;  // empty: the RPN's own
    RoiBranch branch;
    double threshold = 0.15;
};

std::vector<BranchCase> branchCases() {
    return {
        {"bbox (one 2x2 box)", blocks({{10, 10, 12, 12}}), RoiBranch::Box},
        {"mask (two boxes)", blocks({{4, 10, 6, 12}, {16, 10, 18, 12}}), RoiBranch::Mask},
        {"no zoom", blocks({}), RoiBranch::None},
        {"the RPN's own logits", {}, RoiBranch::None /* unchecked */},
        {"the RPN's own logits, relative threshold", {}, RoiBranch::None /* unchecked */, -0.97},
    };
}

TEST_F(TwoStage, KvReuseEqualsFullReprefillInEveryBranch) {
    for (bool baseline : {false, true}) {
        for (const auto& c : branchCases()) {
            SCOPED_TRACE(std::string(c.name) + (baseline ? ", with baseline" : ", without baseline"));
            TwoStageOptions o = options();
            o.baseline = baseline;
            o.roiLogitsOverride = c.logits;
            o.roi.threshold = c.threshold;
            o.reuseKv = false;
            const TwoStageResult full = run(o);
            o.reuseKv = true;
            const TwoStageResult reused = run(o);
            if (!c.logits.empty()) {
                EXPECT_EQ(reused.roi.branch, c.branch);
            }
            EXPECT_FALSE(full.kvReused);
            EXPECT_EQ(reused.kvReused, reused.roi.zoom() || !baseline);
            expectSameRoiAnswer(reused, full);
            if (reused.roiAnswer.stepLogits.sizes() == full.roiAnswer.stepLogits.sizes())
                std::printf(
                    "[ kv reuse ] %s, baseline %d: %lld RoI tokens, %zu answer tokens, max |Δ logit| %.2e\n",
                    c.name, int(baseline), static_cast<long long>(reused.roiTokens),
                    reused.roiAnswer.tokens.size(),
                    (reused.roiAnswer.stepLogits - full.roiAnswer.stepLogits).abs().max().item<double>());
            if (baseline) {
                EXPECT_EQ(reused.baseline.tokens, full.baseline.tokens);
                EXPECT_TENSOR_NEAR(reused.baseline.stepLogits, full.baseline.stepLogits, 1e-6);
            }
            if (reused.roi.zoom()) {
                EXPECT_GT(reused.timings.cropEncode, 0.0);
                EXPECT_GT(reused.timings.pass2, 0.0);
            }
        }
    }
}

TEST_F(TwoStage, BranchesInsertTheRightTokens) {
    const std::int64_t promptLength = run(options()).prompt.length();
    TwoStageOptions o = options();
    o.roiLogitsOverride = blocks({{10, 10, 12, 12}});
    const TwoStageResult box = run(o);
    EXPECT_EQ(box.roi.branch, RoiBranch::Box);
    EXPECT_EQ(box.roiTokens, 576);
    EXPECT_EQ(box.pass2Length, promptLength + 576);
    EXPECT_FALSE(box.cropBox.empty());
    EXPECT_EQ(box.cropBox, box.roi.sourceBox);
    // The RoI changes the answer's logits (the tokens of this random-weight model may not change).
    EXPECT_FALSE(torch::allclose(box.roiAnswer.lastLogits, box.baseline.lastLogits));

    o.roiLogitsOverride = blocks({{4, 10, 6, 12}, {16, 10, 18, 12}});
    const TwoStageResult mask = run(o);
    EXPECT_EQ(mask.roi.branch, RoiBranch::Mask);
    EXPECT_EQ(mask.roiTokens, std::count(mask.roi.tokenMask.begin(), mask.roi.tokenMask.end(), 1));
    EXPECT_GT(mask.roiTokens, 0);
    EXPECT_LT(mask.roiTokens, 576);
    EXPECT_EQ(mask.pass2Length, promptLength + mask.roiTokens);

    o.roiLogitsOverride = blocks({});
    const TwoStageResult none = run(o);
    EXPECT_EQ(none.roi.branch, RoiBranch::None);
    EXPECT_TRUE(none.roiAnswerIsBaseline);
    EXPECT_EQ(none.roiTokens, 0);
    EXPECT_EQ(none.roiAnswer.tokens, none.baseline.tokens);
    // Without a baseline, pass 2 over the original prompt gives the baseline's answer.
    o.baseline = false;
    const TwoStageResult noneAlone = run(o);
    EXPECT_FALSE(noneAlone.roiAnswerIsBaseline);
    EXPECT_EQ(noneAlone.roiAnswer.tokens, none.baseline.tokens);
    EXPECT_TENSOR_NEAR(noneAlone.roiAnswer.stepLogits, none.baseline.stepLogits, kTol);
}

TEST_F(TwoStage, BadInputsGetClearMessages) {
    TwoStageOptions o = options();
    o.question.clear();
    EXPECT_NE(failure(o).find("no question"), std::string::npos);
    o.rawPrompt = "USER: no image here ASSISTANT:";
    EXPECT_NE(failure(o).find("<image>"), std::string::npos);
    o.rawPrompt = "USER: <image>";
    EXPECT_NE(failure(o).find("after the image"), std::string::npos);
    o = options();
    o.roiLogitsOverride = std::vector<float>(100, 0.0f);
    EXPECT_NE(failure(o).find("100"), std::string::npos);
    EXPECT_NE(failure(options(), Rpn(nullptr)).find("RPN"), std::string::npos);
    o = options();
    o.imageMode = "stretch";
    EXPECT_NE(failure(o).find("stretch"), std::string::npos);
    o = options();
    o.roi.threshold = 3.0;
    EXPECT_NE(failure(o).find("threshold"), std::string::npos);
}

TEST_F(TwoStage, CancelIsNotFailure) {
    JobContext job;
    job.requestCancel();
    auto r = answerTwoStage(**s_model, *s_rpn, *s_image, options(), job);
    EXPECT_TRUE(r.status().cancelled()) << r.message();
}

TEST_F(TwoStage, StreamsBothAnswers) {
    std::string baseline, roi;
    TwoStageOptions o = options();
    o.roiLogitsOverride = blocks({{10, 10, 12, 12}});
    JobContext job;
    auto r =
        answerTwoStage(**s_model, *s_rpn, *s_image, o, job, [&](AnswerStage stage, const std::string& piece) {
            (stage == AnswerStage::Baseline ? baseline : roi) += piece;
        });
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(baseline, r.value().baseline.text);
    EXPECT_EQ(roi, r.value().roiAnswer.text);
}

// The bundled demo model (8 layers, hidden 256, real 24×24 geometry): parity of the KV-prefix reuse with
// the full re-prefill on a model whose answers vary, and what the reuse saves in pass 2.
class TwoStageDemo : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        const std::string dir = test::scratchDir("demo") + "/model";
        JobContext job;
        auto made = makeDemoModel(dir, DemoModelOptions{}, job);
        ASSERT_TRUE(made.ok()) << made.message();
        auto model = loadModel(dir, {}, job);
        ASSERT_TRUE(model.ok()) << model.message();
        s_model = new std::shared_ptr<const LoadedModel>(model.value());
        s_rpn = new Rpn(initRpnFromBackbone(*model.value()->backbone, {4, 3, true}));
        s_image = new io::ImageRgb8(io::loadImage(test::fixturePath("tiny-llava-hf") + "/image_640x480.png"));
    }
    static void TearDownTestSuite() {
        delete s_model;
        delete s_rpn;
        delete s_image;
    }
    static TwoStageResult run(const TwoStageOptions& o) {
        JobContext job;
        auto r = answerTwoStage(**s_model, *s_rpn, *s_image, o, job);
        if (!r.ok()) throw std::runtime_error(r.message());
        return std::move(r).value();
    }
    static std::shared_ptr<const LoadedModel>* s_model;
    static Rpn* s_rpn;
    static io::ImageRgb8* s_image;
};

std::shared_ptr<const LoadedModel>* TwoStageDemo::s_model = nullptr;
Rpn* TwoStageDemo::s_rpn = nullptr;
io::ImageRgb8* TwoStageDemo::s_image = nullptr;

TEST_F(TwoStageDemo, KvReuseEqualsFullReprefillAndSavesPass2) {
    for (bool baseline : {false, true}) {
        for (const auto& logits : {blocks({{10, 10, 12, 12}}), blocks({{4, 10, 6, 12}, {16, 10, 18, 12}})}) {
            TwoStageOptions o;
            o.question = "What is written on the sign?";
            o.generation.maxNewTokens = 8;
            o.baseline = baseline;
            o.roiLogitsOverride = logits;
            double seconds[2] = {1e9, 1e9};
            TwoStageResult results[2];
            for (int repeat = 0; repeat < 1; ++repeat)  // raise for steadier timings
                for (int reuse = 0; reuse < 2; ++reuse) {
                    o.reuseKv = reuse == 1;
                    results[reuse] = run(o);
                    seconds[reuse] = std::min(seconds[reuse], results[reuse].timings.pass2);
                }
            SCOPED_TRACE(std::string(roiBranchName(results[1].roi.branch)) + (baseline ? ", baseline" : ""));
            EXPECT_TRUE(results[1].roi.zoom());
            expectSameRoiAnswer(results[1], results[0]);
            std::printf(
                "[ demo ] %s branch, baseline %d: %lld RoI tokens, answer '%s' (baseline '%s'); pass 2 %.1f "
                "ms "
                "reused vs %.1f ms full; max |Δ logit| %.2e\n",
                roiBranchName(results[1].roi.branch), int(baseline),
                static_cast<long long>(results[1].roiTokens), results[1].roiAnswer.text.c_str(),
                results[1].baseline.text.c_str(), seconds[1] * 1e3, seconds[0] * 1e3,
                (results[1].roiAnswer.stepLogits - results[0].roiAnswer.stepLogits)
                    .abs()
                    .max()
                    .item<double>());
        }
    }
}

}  // namespace
