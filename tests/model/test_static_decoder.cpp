// Static decoding (StaticDecoder, StaticDecodeMode, the static path of LlavaModel::decodeStepDevice,
// LlamaTextModelImpl::decodeStatic, maskedAttention, KvCache::storage / capacity / setLength). Everything
// runs on the CPU in fp32 on the small random "demo" LLaVA (8 layers of 256, 576 image tokens) in
// StaticDecodeMode::Eager (the op-by-op form of what a CUDA graph replays), and must give what the normal
// decode steps (mode Off) give: logits, argmax, KV cache contents, lengths, captured rows.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/demo_prompt.h"
#include "core/jobs.h"
#include "core/models/attention.h"
#include "core/models/context.h"
#include "core/models/generation.h"
#include "core/models/kv_cache.h"
#include "core/models/llava.h"
#include "core/models/random_llava.h"
#include "core/models/static_decoder.h"
#include "core/result.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
using namespace sdrpn::models;

namespace {

constexpr double kLogitTol = 1e-4;
constexpr double kCacheTol = 1e-5;
// (values; keys: times their largest magnitude, up to ~10 with the demo's N(0, 0.12) q/k projections. Their
// decoded rows drift by fp32 rounding layer after layer as the masked attention sums in another order:
// ~2e-5 by layer 7, the values ~3e-6.)
constexpr double kAttentionTol = 1e-5;
// The static step reads every row of the reserved storage (those past the position masked, weight 0).
// KvCache allocates that storage zeroed: UnusedStorageRowsAreZeroAndDecodingEqualsOff checks it.
constexpr std::int64_t kImageTokens = 576;
const std::vector<std::int64_t> kPromptText{11, 12, 13, 14};
const std::vector<std::int64_t> kQuestion{21, 22, 23, 24};

// Sets the static decode mode for its lifetime; back to the default afterwards, even when an assertion
// returns early.
class ModeGuard {
public:
    explicit ModeGuard(StaticDecodeMode mode) { setStaticDecodeMode(mode); }
    ~ModeGuard() { clearStaticDecodeMode(); }
    ModeGuard(const ModeGuard&) = delete;
    ModeGuard& operator=(const ModeGuard&) = delete;
};

class StaticDecode : public ::testing::Test {
public:
    static void SetUpTestSuite() {
        torch::NoGradGuard noGrad;
        const auto cfg = randomLlavaConfig("demo");
        s_model = makeRandomLlava(cfg, torch::kCPU, torch::kFloat, /*seed=*/7, /*deterministic=*/true);
        torch::manual_seed(123);
        s_features = new torch::Tensor(s_model->encodeImage(torch::randn({3, 336, 336})));
    }
    static void TearDownTestSuite() {
        s_model.reset();
        delete s_features;
        s_features = nullptr;
    }
    void TearDown() override { clearStaticDecodeMode(); }

    static const LlavaModel& model() { return *s_model; }

    // BOS + 4 text ids + 576 image slots + 4 question ids.
    static PromptInput prompt() {
        return test::demoImagePrompt(s_model->info().bosTokenId, kPromptText, kImageTokens, kQuestion,
                                     *s_features);
    }
    static std::int64_t promptLength() { return std::int64_t(prompt().ids.size()); }

    static CaptureRequest answerCapture() { return test::lastAndAnswerCapture(); }

    struct Steps {
        std::unique_ptr<Context> ctx;
        std::vector<torch::Tensor> logits;  // logits[0]: the prefill's; logits[i]: after step i
        std::vector<std::int64_t> fed;      // the tokens fed back
        std::vector<bool> staticAfter;      // backboneState non-null after step i
    };

    // `steps` decodeStepDevice calls on ctx (already prefilled), each feeding back the argmax of the last
    // logits. Checks that each new position holds kPendingToken until setToken.
    static void decodeSteps(Steps& run, int steps) {
        torch::NoGradGuard noGrad;
        for (int i = 0; i < steps; ++i) {
            const auto token = run.logits.back().argmax().reshape({1});
            const std::int64_t id = token.item<std::int64_t>();
            const std::int64_t position = run.ctx->length();
            run.logits.push_back(model().decodeStepDevice(*run.ctx, token));
            run.staticAfter.push_back(run.ctx->backboneState() != nullptr);
            EXPECT_EQ(run.ctx->length(), position + 1);
            EXPECT_EQ(run.ctx->tokens().at(std::size_t(position)), kPendingToken) << "step " << i;
            run.ctx->setToken(position, id);
            EXPECT_EQ(run.ctx->tokens().at(std::size_t(position)), id);
            run.fed.push_back(id);
        }
    }

    // A fresh context (reserved for `reserve` positions when > 0), prefilled with the prompt, then `steps`
    // device decode steps in `mode`.
    static Steps runSteps(StaticDecodeMode mode, std::int64_t reserve, int steps,
                          const CaptureRequest* capture = nullptr) {
        torch::NoGradGuard noGrad;
        ModeGuard guard(mode);
        Steps run;
        run.ctx = model().newContext();
        if (reserve > 0) run.ctx->reserve(reserve);
        if (capture) run.ctx->setCaptureRequest(*capture);
        run.logits.push_back(model().prefill(*run.ctx, prompt()).logits);
        decodeSteps(run, steps);
        return run;
    }

    // Same logits (and argmax) step by step, same tokens, lengths and KV cache contents.
    static void expectSameSteps(const Steps& got, const Steps& ref) {
        ASSERT_EQ(got.logits.size(), ref.logits.size());
        for (std::size_t i = 0; i < got.logits.size(); ++i) {
            SCOPED_TRACE("logits " + std::to_string(i));
            EXPECT_TENSOR_NEAR(got.logits[i], ref.logits[i], kLogitTol);
            EXPECT_EQ(got.logits[i].argmax().item<std::int64_t>(),
                      ref.logits[i].argmax().item<std::int64_t>());
            EXPECT_FALSE(got.logits[i].isnan().any().item<bool>());
        }
        EXPECT_EQ(got.fed, ref.fed);
        expectSameContext(*got.ctx, *ref.ctx);
    }

    // Same tokens and lengths; the KV cache rows equal, bitwise in layer 0 and for the prompt's rows (a
    // static step writes only its own row).
    static void expectSameContext(const Context& got, const Context& ref) {
        EXPECT_EQ(got.length(), ref.length());
        EXPECT_EQ(got.tokens(), ref.tokens());
        EXPECT_EQ(std::count(got.tokens().begin(), got.tokens().end(), kPendingToken), 0);
        ASSERT_EQ(got.cache().layerCount(), ref.cache().layerCount());
        for (int l = 0; l < got.cache().layerCount(); ++l) {
            SCOPED_TRACE("layer " + std::to_string(l));
            EXPECT_EQ(got.cache().length(l), got.length());
            ASSERT_EQ(got.cache().length(l), ref.cache().length(l));
            const auto k = got.cache().keys(l), v = got.cache().values(l);
            const auto refK = ref.cache().keys(l), refV = ref.cache().values(l);
            const double keyScale = std::max(1.0, refK.abs().max().item<double>());
            EXPECT_TRUE(test::tensorsNear(k, refK, kCacheTol * keyScale)) << "|k| up to " << keyScale;
            EXPECT_TENSOR_NEAR(v, refV, kCacheTol);
            const std::int64_t prompt = std::min(promptLength(), got.cache().length(l));
            EXPECT_TRUE(torch::equal(k.narrow(1, 0, prompt), refK.narrow(1, 0, prompt)));
            EXPECT_TRUE(torch::equal(v.narrow(1, 0, prompt), refV.narrow(1, 0, prompt)));
            if (l == 0) {
                EXPECT_TRUE(torch::equal(k, refK));
                EXPECT_TRUE(torch::equal(v, refV));
            }
        }
    }

    static std::shared_ptr<const LlavaModel> s_model;
    static torch::Tensor* s_features;
};

std::shared_ptr<const LlavaModel> StaticDecode::s_model;
torch::Tensor* StaticDecode::s_features = nullptr;

// ---------------------------------------------------------------------------------------------------------
// 0. The mode switch

TEST(StaticDecodeModeSwitch, CpuDefaultsToOffAndTheOverrideAppliesToEveryDevice) {
    clearStaticDecodeMode();
    EXPECT_EQ(staticDecodeMode(torch::kCPU), StaticDecodeMode::Off);
    {
        ModeGuard guard(StaticDecodeMode::Eager);
        EXPECT_EQ(staticDecodeMode(torch::kCPU), StaticDecodeMode::Eager);
        EXPECT_EQ(staticDecodeMode(torch::Device(torch::kCUDA, 0)), StaticDecodeMode::Eager);
    }
    EXPECT_EQ(staticDecodeMode(torch::kCPU), StaticDecodeMode::Off);
    {
        ModeGuard guard(StaticDecodeMode::Graph);
        EXPECT_EQ(staticDecodeMode(torch::kCPU), StaticDecodeMode::Graph);
    }
    EXPECT_EQ(staticDecodeMode(torch::kCPU), StaticDecodeMode::Off);
    EXPECT_STREQ(staticDecodeModeName(StaticDecodeMode::Off), "off");
    EXPECT_STREQ(staticDecodeModeName(StaticDecodeMode::Eager), "static");
    EXPECT_STREQ(staticDecodeModeName(StaticDecodeMode::Graph), "cuda-graph");
}

// ---------------------------------------------------------------------------------------------------------
// 1. Static steps equal normal steps

TEST_F(StaticDecode, EagerStepsEqualNormalStepsInAReservedContext) {
    constexpr int kSteps = 8;
    const std::int64_t reserve = promptLength() + kSteps;
    Steps ref = runSteps(StaticDecodeMode::Off, reserve, kSteps);
    Steps got = runSteps(StaticDecodeMode::Eager, reserve, kSteps);
    ASSERT_EQ(got.ctx->length(), promptLength() + kSteps);
    for (bool s : got.staticAfter) EXPECT_TRUE(s);
    expectSameSteps(got, ref);
    // Filled to the reserve exactly: the last step wrote the storage's last row.
    EXPECT_EQ(got.ctx->cache().capacity(0), reserve);
    EXPECT_EQ(got.ctx->cache().length(0), reserve);

    // The next step has no room left: it falls back to the normal path (which grows the cache), and the step
    // after it builds a new decoder on the new storage. Both still agree with mode Off.
    const void* firstDecoder = got.ctx->backboneState().get();
    {
        ModeGuard guard(StaticDecodeMode::Eager);
        decodeSteps(got, 1);
        EXPECT_GT(got.ctx->cache().capacity(0), reserve);
        EXPECT_EQ(got.ctx->backboneState().get(), firstDecoder) << "a decoder was built on a full cache";
        decodeSteps(got, 2);
        EXPECT_NE(got.ctx->backboneState(), nullptr);
        EXPECT_NE(got.ctx->backboneState().get(), firstDecoder) << "the stale decoder was used";
    }
    {
        ModeGuard guard(StaticDecodeMode::Off);
        decodeSteps(ref, 3);
    }
    expectSameSteps(got, ref);
}

// The rows of the reserved storage past the prompt are read (masked) by every static step: a fresh cache
// holds zeros there, and decoding over them equals the normal path.
TEST_F(StaticDecode, UnusedStorageRowsAreZeroAndDecodingEqualsOff) {
    torch::NoGradGuard noGrad;
    constexpr int kSteps = 4;
    const std::int64_t reserve = promptLength() + 16;
    const Steps ref = runSteps(StaticDecodeMode::Off, reserve, kSteps);

    ModeGuard guard(StaticDecodeMode::Eager);
    Steps got;
    got.ctx = model().newContext();
    got.ctx->reserve(reserve);
    got.logits.push_back(model().prefill(*got.ctx, prompt()).logits);
    const std::int64_t used = got.ctx->length();
    for (int l = 0; l < model().layerCount(); ++l) {
        auto [k, v] = got.ctx->cache().storage(l);
        ASSERT_EQ(k.size(1), reserve);
        EXPECT_EQ(k.narrow(1, used, reserve - used).abs().max().item<float>(), 0.0f) << "layer " << l;
        EXPECT_EQ(v.narrow(1, used, reserve - used).abs().max().item<float>(), 0.0f) << "layer " << l;
    }
    decodeSteps(got, kSteps);
    EXPECT_TRUE(got.staticAfter.front());
    expectSameSteps(got, ref);
}

// ---------------------------------------------------------------------------------------------------------
// 2. The static path is really taken

TEST_F(StaticDecode, EagerModeUsesOneStaticDecoderOnTheReservedStorage) {
    torch::NoGradGuard noGrad;
    constexpr int kSteps = 5;
    {
        ModeGuard guard(StaticDecodeMode::Eager);
        auto ctx = model().newContext();
        ctx->reserve(promptLength() + kSteps);
        auto logits = model().prefill(*ctx, prompt()).logits;
        EXPECT_EQ(ctx->backboneState(), nullptr) << "the prefill built a decoder";
        std::vector<const void*> keys, values;
        for (int l = 0; l < model().layerCount(); ++l) {
            keys.push_back(ctx->cache().storage(l).first.data_ptr());
            values.push_back(ctx->cache().storage(l).second.data_ptr());
        }
        const void* decoder = nullptr;
        for (int i = 0; i < kSteps; ++i) {
            SCOPED_TRACE("step " + std::to_string(i));
            const auto token = logits.argmax().reshape({1});
            logits = model().decodeStepDevice(*ctx, token);
            ctx->setToken(ctx->length() - 1, token.item<std::int64_t>());
            ASSERT_NE(ctx->backboneState(), nullptr) << "the static path was not taken";
            if (i == 0) decoder = ctx->backboneState().get();
            EXPECT_EQ(ctx->backboneState().get(), decoder) << "the decoder was rebuilt";
            EXPECT_FALSE(std::static_pointer_cast<StaticDecoder>(ctx->backboneState())->graphed());
            for (int l = 0; l < model().layerCount(); ++l) {
                EXPECT_EQ(ctx->cache().storage(l).first.data_ptr(), keys[std::size_t(l)]) << "layer " << l;
                EXPECT_EQ(ctx->cache().storage(l).second.data_ptr(), values[std::size_t(l)]) << "layer " << l;
                EXPECT_EQ(ctx->cache().capacity(l), promptLength() + kSteps);
            }
        }
        // clone() does not take the decoder along.
        EXPECT_EQ(ctx->clone()->backboneState(), nullptr);
    }
    {
        const Steps off = runSteps(StaticDecodeMode::Off, promptLength() + kSteps, kSteps);
        EXPECT_EQ(off.ctx->backboneState(), nullptr);
        for (bool s : off.staticAfter) EXPECT_FALSE(s);
    }
}

// ---------------------------------------------------------------------------------------------------------
// 3. Fallbacks

TEST_F(StaticDecode, WithoutAReserveTheFirstStepFallsBackThenDecodingGoesStatic) {
    constexpr int kSteps = 5;
    const Steps ref = runSteps(StaticDecodeMode::Off, 0, kSteps);
    ModeGuard guard(StaticDecodeMode::Eager);
    Steps got;
    {
        torch::NoGradGuard noGrad;
        got.ctx = model().newContext();
        got.logits.push_back(model().prefill(*got.ctx, prompt()).logits);
        ASSERT_EQ(got.ctx->cache().capacity(0), promptLength())
            << "the prefill left room: nothing to fall back";
        decodeSteps(got, 1);
        EXPECT_FALSE(got.staticAfter.back()) << "a static step on a full cache";
        EXPECT_GT(got.ctx->cache().capacity(0), got.ctx->length()) << "the fallback did not grow the cache";
        decodeSteps(got, kSteps - 1);
        EXPECT_TRUE(got.staticAfter.back())
            << "the grown cache has room but decoding stayed on the normal path";
    }
    expectSameSteps(got, ref);
}

TEST_F(StaticDecode, AnswerRowCaptureKeepsTheNormalPathWithTheSameRows) {
    constexpr int kSteps = 4;
    const auto capture = answerCapture();
    const std::int64_t reserve = promptLength() + kSteps;
    const Steps ref = runSteps(StaticDecodeMode::Off, reserve, kSteps, &capture);
    const Steps got = runSteps(StaticDecodeMode::Eager, reserve, kSteps, &capture);
    EXPECT_EQ(got.ctx->backboneState(), nullptr) << "the static path ran while answer rows were captured";
    for (bool s : got.staticAfter) EXPECT_FALSE(s);
    expectSameSteps(got, ref);

    const auto a = got.ctx->attentionMaps();
    const auto b = ref.ctx->attentionMaps();
    // The prompt's last token and one row per step.
    ASSERT_EQ(a.rows.size(), std::size_t(1 + kSteps));
    ASSERT_EQ(a.rows.size(), b.rows.size());
    for (std::size_t r = 0; r < a.rows.size(); ++r) {
        SCOPED_TRACE("row " + std::to_string(r));
        EXPECT_EQ(a.rows[r].position, b.rows[r].position);
        EXPECT_EQ(a.rows[r].token, b.rows[r].token);
        EXPECT_NE(a.rows[r].token, kPendingToken);
        EXPECT_EQ(int(a.rows[r].kind), int(b.rows[r].kind));
    }
    EXPECT_EQ(int(a.rows.back().kind), int(QueryKind::Answer));
    ASSERT_EQ(a.layers.size(), b.layers.size());
    ASSERT_FALSE(a.layers.empty());
    for (std::size_t s = 0; s < a.layers.size(); ++s) {
        ASSERT_EQ(a.layers[s].values.size(), b.layers[s].values.size());
        float worst = 0.0f;
        for (std::size_t i = 0; i < a.layers[s].values.size(); ++i)
            worst = std::max(worst, std::abs(a.layers[s].values[i] - b.layers[s].values[i]));
        EXPECT_LE(worst, 1e-6) << "layer " << a.layers[s].layer;
    }
}

// Truncating back into the prompt (here: before the question) and prefilling the rest again reuses the
// storage; the decoder built before still fits it (or is rebuilt) and decoding agrees with mode Off.
TEST_F(StaticDecode, TruncateIntoThePromptAndReprefillStillEqualsOff) {
    constexpr int kFirst = 3, kSecond = 5;
    const std::int64_t cut = promptLength() - std::int64_t(kQuestion.size()) - 1;  // inside the image
    auto run = [&](StaticDecodeMode mode) {
        torch::NoGradGuard noGrad;
        ModeGuard guard(mode);
        Steps s;
        s.ctx = model().newContext();
        s.ctx->reserve(promptLength() + kFirst + kSecond);
        s.logits.push_back(model().prefill(*s.ctx, prompt()).logits);
        decodeSteps(s, kFirst);
        const void* storage = s.ctx->cache().storage(0).first.data_ptr();
        s.ctx->truncate(cut);
        EXPECT_EQ(s.ctx->length(), cut);
        for (int l = 0; l < model().layerCount(); ++l) EXPECT_EQ(s.ctx->cache().length(l), cut);
        PromptInput rest;
        rest.ids.push_back(kImageSlot);                                       // the image's last row ...
        rest.ids.insert(rest.ids.end(), kQuestion.begin(), kQuestion.end());  // ... and the question
        rest.images = {s_features->narrow(0, kImageTokens - 1, 1)};
        s.logits.push_back(model().prefill(*s.ctx, rest).logits);
        EXPECT_EQ(s.ctx->length(), promptLength());
        EXPECT_EQ(s.ctx->cache().storage(0).first.data_ptr(), storage) << "the re-prefill reallocated";
        decodeSteps(s, kSecond);
        return s;
    };
    const Steps ref = run(StaticDecodeMode::Off);
    const Steps got = run(StaticDecodeMode::Eager);
    EXPECT_TRUE(got.staticAfter.back());
    expectSameSteps(got, ref);

    // And like an uninterrupted run: the same answer after the re-prefill as after the first prefill.
    const Steps plain = runSteps(StaticDecodeMode::Off, 0, kSecond);
    ASSERT_EQ(got.logits.size(), std::size_t(1 + kFirst + 1 + kSecond));
    for (int i = 0; i <= kSecond; ++i)
        EXPECT_TRUE(test::tensorsNear(got.logits[std::size_t(1 + kFirst + i)], plain.logits[std::size_t(i)],
                                      kLogitTol, kLogitTol))
            << "step " << i;
}

// A context whose layers hold different capacities (a partial prefill completed by completePrefix and then
// prefilled further, without a reserve) cannot be decoded statically: decodeStepDevice falls back to the
// normal path.
TEST_F(StaticDecode, UnequalLayerCapacitiesFallBack) {
    torch::NoGradGuard noGrad;
    constexpr int K = 4;
    const std::int64_t prefixLength = 1 + std::int64_t(kPromptText.size()) + kImageTokens;
    auto build = [&]() {
        auto ctx = model().newContext();
        PrefillOptions pass1;
        pass1.endLayer = K;
        pass1.keepHidden = {K};
        pass1.computeLogits = false;
        const auto p1 = model().prefill(*ctx, prompt(), pass1);
        model().completePrefix(*ctx, p1.hidden.at(K), K, prefixLength);
        PromptInput rest;
        rest.ids.assign(std::size_t(kImageTokens), kImageSlot);
        rest.ids.insert(rest.ids.end(), kQuestion.begin(), kQuestion.end());
        rest.images = {*s_features};
        Steps s;
        s.logits.push_back(model().prefill(*ctx, rest).logits);
        s.ctx = std::move(ctx);
        return s;
    };
    Steps ref = build();
    Steps got = build();
    ASSERT_NE(got.ctx->cache().capacity(0), got.ctx->cache().capacity(K)) << "the capacities agree";
    for (int l = 0; l < model().layerCount(); ++l) ASSERT_GT(got.ctx->cache().capacity(l), got.ctx->length());
    {
        ModeGuard guard(StaticDecodeMode::Off);
        decodeSteps(ref, 3);
    }
    {
        ModeGuard guard(StaticDecodeMode::Eager);
        EXPECT_NO_THROW(decodeSteps(got, 3));
    }
    expectSameSteps(got, ref);
}

// ---------------------------------------------------------------------------------------------------------
// 4. generateFrom in bursts over the static path

TEST_F(StaticDecode, GenerateFromInBurstsEqualsThePerTokenLoop) {
    torch::NoGradGuard noGrad;
    auto generateWith = [&](StaticDecodeMode mode, int syncEvery, const GenerationOptions& base) {
        ModeGuard guard(mode);
        GenerationOptions options = base;
        options.syncEvery = syncEvery;
        auto ctx = model().newContext();
        ctx->reserve(promptLength() + options.maxNewTokens);
        const auto p = model().prefill(*ctx, prompt());
        JobContext job;
        auto result = generateFrom(model(), *ctx, p.logits, options, job);
        return std::make_pair(std::move(result), std::move(ctx));
    };
    auto expectSame = [&](const GenerationOptions& options) {
        const auto ref = generateWith(StaticDecodeMode::Off, 1, options);
        const auto got = generateWith(StaticDecodeMode::Eager, 4, options);
        EXPECT_EQ(ref.second->backboneState(), nullptr);
        EXPECT_NE(got.second->backboneState(), nullptr) << "the bursts did not decode statically";
        EXPECT_EQ(got.first.tokens, ref.first.tokens);
        EXPECT_EQ(got.first.stopReason, ref.first.stopReason);
        EXPECT_EQ(got.first.promptTokens, ref.first.promptTokens);
        EXPECT_TRUE(got.first.stepLogits.defined());
        EXPECT_TRUE(ref.first.stepLogits.defined());
        EXPECT_EQ(got.first.stepLogits.sizes(), ref.first.stepLogits.sizes());
        if (got.first.stepLogits.defined() && ref.first.stepLogits.defined() &&
            got.first.stepLogits.sizes() == ref.first.stepLogits.sizes()) {
            EXPECT_TENSOR_NEAR(got.first.stepLogits, ref.first.stepLogits, kLogitTol);
        }
        expectSameContext(*got.second, *ref.second);
        return ref.first.tokens;
    };
    GenerationOptions options;
    options.maxNewTokens = 11;  // not a multiple of 4
    options.stopAtEos = false;
    const auto answer = expectSame(options);
    ASSERT_EQ(answer.size(), 11u);

    // A stop token inside a burst: the context is cut back where the per-token loop stops.
    const std::size_t stopIndex = 5;
    const std::int64_t stopToken = answer[stopIndex];
    if (std::find(answer.begin(), answer.begin() + std::ptrdiff_t(stopIndex), stopToken) ==
        answer.begin() + std::ptrdiff_t(stopIndex)) {
        options.stopTokens = {stopToken};
        const auto stopped = expectSame(options);
        EXPECT_EQ(stopped.size(), stopIndex + 1);
    }
}

// ---------------------------------------------------------------------------------------------------------
// 5. StaticDecoder directly

TEST_F(StaticDecode, StaticDecoderChecksItsStorage) {
    torch::NoGradGuard noGrad;
    constexpr int kRoom = 3;
    auto ctx = model().newContext();
    ctx->reserve(promptLength() + kRoom);
    const auto p = model().prefill(*ctx, prompt());
    auto ref = ctx->clone();
    const std::int64_t capacity = ctx->cache().capacity(0);
    ASSERT_EQ(capacity, promptLength() + kRoom);

    // Graph on the CPU runs eagerly.
    StaticDecoder decoder(model().text(), ctx->cache(), torch::kCPU, StaticDecodeMode::Graph);
    EXPECT_FALSE(decoder.graphed());
    EXPECT_TRUE(decoder.fits(ctx->cache(), 0));
    EXPECT_TRUE(decoder.fits(ctx->cache(), ctx->length()));
    EXPECT_TRUE(decoder.fits(ctx->cache(), capacity - 1));
    EXPECT_FALSE(decoder.fits(ctx->cache(), capacity));
    EXPECT_FALSE(decoder.fits(ctx->cache(), capacity + 10));
    EXPECT_FALSE(decoder.fits(ctx->cache(), -1));
    const auto token = p.logits.argmax().reshape({1});
    EXPECT_ANY_THROW(decoder.step(token, capacity));
    EXPECT_ANY_THROW(decoder.step(token, -1));
    EXPECT_ANY_THROW(decoder.step(torch::tensor({1, 2}, torch::kLong), ctx->length()));
    EXPECT_ANY_THROW(decoder.step(torch::Tensor(), ctx->length()));

    // One step by hand equals a normal step.
    const std::int64_t position = ctx->length();
    const auto logits = decoder.step(token, position);
    ctx->appendTokens({token.item<std::int64_t>()}, {});
    ctx->cache().setLength(position + 1);
    const auto refLogits = model().decodeStep(*ref, token.item<std::int64_t>());
    EXPECT_TENSOR_NEAR(logits, refLogits, kLogitTol);
    ASSERT_EQ(logits.dim(), 1);
    EXPECT_EQ(logits.scalar_type(), torch::kFloat);
    expectSameContext(*ctx, *ref);

    // Another cache of the same capacity: not this decoder's storage.
    KvCache other(model().layerCount());
    other.reserve(capacity);
    for (int l = 0; l < model().layerCount(); ++l) {
        const auto row = ctx->cache().keys(l).narrow(1, 0, 1).clone();
        other.append(l, row, row);
    }
    ASSERT_EQ(other.capacity(0), capacity);
    EXPECT_FALSE(decoder.fits(other, 0));

    // The cache reallocated (grown past its storage): the decoder no longer fits it.
    while (ctx->cache().capacity(0) == capacity) model().decodeStep(*ctx, 5);
    EXPECT_FALSE(decoder.fits(ctx->cache(), position + 1));
    EXPECT_ANY_THROW(decoder.step(token, position + 1));

    // No storage at all, and mode Off.
    KvCache empty(model().layerCount());
    EXPECT_ANY_THROW(StaticDecoder(model().text(), empty, torch::kCPU, StaticDecodeMode::Eager));
    KvCache none;
    EXPECT_ANY_THROW(StaticDecoder(model().text(), none, torch::kCPU, StaticDecodeMode::Eager));
    EXPECT_ANY_THROW(StaticDecoder(model().text(), ref->cache(), torch::kCPU, StaticDecodeMode::Off));
}

// ---------------------------------------------------------------------------------------------------------
// 6. maskedAttention

// softmax(q·kᵀ·scale, masked) · v in double, query head h reading kv head h / (heads / kvHeads).
torch::Tensor referenceAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& visible, double scale) {
    const auto qd = q.to(torch::kDouble), kd = k.to(torch::kDouble), vd = v.to(torch::kDouble);
    const std::int64_t batch = q.size(0), heads = q.size(1), lq = q.size(2), lk = k.size(2);
    const std::int64_t rep = heads / k.size(1);
    const auto mask = visible.dim() == 1 ? visible.view({1, lk}).expand({lq, lk}) : visible;
    auto out = torch::zeros(q.sizes(), torch::kDouble);
    for (std::int64_t b = 0; b < batch; ++b) {
        for (std::int64_t h = 0; h < heads; ++h) {
            const auto scores = torch::matmul(qd[b][h], kd[b][h / rep].t()) * scale;  // [lq, lk]
            const auto masked =
                scores.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
            out[b][h] = torch::matmul(torch::softmax(masked, -1), vd[b][h / rep]);
        }
    }
    return out;
}

TEST(MaskedAttention, EqualsTheReferenceForOneAndTwoDimensionalMasks) {
    torch::manual_seed(11);
    const std::int64_t d = 16, lk = 13;
    const double scale = 1.0 / std::sqrt(double(d));
    for (std::int64_t kvHeads : {4, 2, 1}) {
        for (std::int64_t lq : {1, 3}) {
            for (std::int64_t batch : {1, 2}) {
                SCOPED_TRACE("kvHeads " + std::to_string(kvHeads) + ", rows " + std::to_string(lq) +
                             ", batch " + std::to_string(batch));
                const std::int64_t heads = 4;
                const auto q = torch::randn({batch, heads, lq, d});
                const auto k = torch::randn({batch, kvHeads, lk, d});
                const auto v = torch::randn({batch, kvHeads, lk, d});

                // 1-D: every row sees the same keys (a decode step: positions <= 8).
                const auto visible1 = torch::arange(lk).le(8);
                const auto got1 = maskedAttention(q, k, v, visible1, scale);
                ASSERT_EQ(got1.sizes(), q.sizes());
                EXPECT_TENSOR_NEAR(got1, referenceAttention(q, k, v, visible1, scale), kAttentionTol);
                // The masked keys have no effect.
                auto k2 = k.clone(), v2 = v.clone();
                k2.narrow(2, 9, lk - 9).normal_();
                v2.narrow(2, 9, lk - 9).normal_();
                EXPECT_TENSOR_NEAR(maskedAttention(q, k2, v2, visible1, scale), got1, kAttentionTol);

                // 2-D: each row its own keys (random, at least one per row).
                auto visible2 = torch::rand({lq, lk}).lt(0.5);
                visible2.select(1, 0).fill_(true);
                const auto got2 = maskedAttention(q, k, v, visible2, scale);
                EXPECT_TENSOR_NEAR(got2, referenceAttention(q, k, v, visible2, scale), kAttentionTol);
                // A causal 2-D mask is the causal attention.
                if (lq == 3) {
                    const auto causal =
                        torch::arange(lk).unsqueeze(0).le(torch::arange(lk - lq, lk).unsqueeze(1));
                    EXPECT_TENSOR_NEAR(maskedAttention(q, k, v, causal, scale),
                                       scaledDotProductAttention(q, k, v, /*causal=*/true, lk - lq, scale),
                                       kAttentionTol);
                }

                // All keys visible: the plain attention.
                const auto all = torch::ones({lk}, torch::kBool);
                EXPECT_TENSOR_NEAR(maskedAttention(q, k, v, all, scale),
                                   scaledDotProductAttention(q, k, v, /*causal=*/false, 0, scale),
                                   kAttentionTol);
                EXPECT_TENSOR_NEAR(maskedAttention(q, k, v, torch::ones({lq, lk}, torch::kBool), scale),
                                   scaledDotProductAttention(q, k, v, /*causal=*/false, 0, scale),
                                   kAttentionTol);
            }
        }
    }
}

TEST(MaskedAttention, RejectsMasksOfTheWrongShapeOrType) {
    const auto q = torch::randn({1, 4, 2, 8});
    const auto k = torch::randn({1, 2, 6, 8});
    const auto v = torch::randn({1, 2, 6, 8});
    EXPECT_NO_THROW(maskedAttention(q, k, v, torch::ones({6}, torch::kBool), 0.5));
    EXPECT_ANY_THROW(maskedAttention(q, k, v, torch::ones({5}, torch::kBool), 0.5));     // keys
    EXPECT_ANY_THROW(maskedAttention(q, k, v, torch::ones({3, 6}, torch::kBool), 0.5));  // rows
    EXPECT_ANY_THROW(maskedAttention(q, k, v, torch::ones({6}, torch::kFloat), 0.5));    // not bool
    EXPECT_ANY_THROW(maskedAttention(q, k, v, torch::ones({1, 2, 6}, torch::kBool), 0.5));
    EXPECT_ANY_THROW(maskedAttention(torch::randn({1, 3, 2, 8}), k, v, torch::ones({6}, torch::kBool), 0.5));
}

// ---------------------------------------------------------------------------------------------------------
// 7. KvCache::storage / capacity / setLength

TEST(KvCacheStorage, SetLengthStaysWithinTheCapacityAndStorageIsTheWholeAllocation) {
    torch::manual_seed(13);
    KvCache cache(2);
    EXPECT_FALSE(cache.storage(0).first.defined());
    EXPECT_FALSE(cache.storage(1).second.defined());
    EXPECT_EQ(cache.capacity(0), 0);
    EXPECT_NO_THROW(cache.setLength(0));
    EXPECT_ANY_THROW(cache.setLength(1));  // nothing allocated
    EXPECT_ANY_THROW(cache.storage(2));
    EXPECT_ANY_THROW(cache.capacity(-1));

    cache.reserve(300);  // above the minimum capacity (256)
    const auto k0 = torch::randn({2, 10, 8}), v0 = torch::randn({2, 10, 8});
    cache.append(0, k0, v0);
    EXPECT_EQ(cache.capacity(0), 300);
    EXPECT_EQ(cache.capacity(1), 0);
    EXPECT_FALSE(cache.storage(1).first.defined()) << "an unallocated layer has storage";
    EXPECT_ANY_THROW(cache.setLength(10));  // layer 1 has no room
    EXPECT_EQ(cache.length(0), 10) << "a rejected setLength changed a length";
    EXPECT_EQ(cache.length(1), 0);
    cache.append(1, k0, v0);

    auto [k, v] = cache.storage(0);
    EXPECT_EQ(k.sizes(), (std::vector<std::int64_t>{2, 300, 8}));
    EXPECT_EQ(v.sizes(), (std::vector<std::int64_t>{2, 300, 8}));
    EXPECT_EQ(k.data_ptr(), cache.keys(0).data_ptr());
    EXPECT_TRUE(torch::equal(k.narrow(1, 0, 10), k0));

    // Rows placed in the storage become part of the cache with setLength.
    const auto row = torch::randn({2, 1, 8});
    for (int l = 0; l < 2; ++l) {
        cache.storage(l).first.narrow(1, 10, 1).copy_(row);
        cache.storage(l).second.narrow(1, 10, 1).copy_(row * 2);
    }
    cache.setLength(11);
    for (int l = 0; l < 2; ++l) {
        EXPECT_EQ(cache.length(l), 11);
        EXPECT_TRUE(torch::equal(cache.keys(l), torch::cat({k0, row}, 1)));
        EXPECT_TRUE(torch::equal(cache.values(l), torch::cat({v0, row * 2}, 1)));
    }
    EXPECT_NO_THROW(cache.setLength(300));
    EXPECT_EQ(cache.length(1), 300);
    EXPECT_ANY_THROW(cache.setLength(301));
    EXPECT_ANY_THROW(cache.setLength(-1));
    EXPECT_EQ(cache.length(0), 300);
    cache.setLength(5);
    EXPECT_EQ(cache.length(0), 5);
    EXPECT_EQ(cache.length(1), 5);
    EXPECT_EQ(cache.capacity(0), 300) << "setLength reallocated";
}

}  // namespace
