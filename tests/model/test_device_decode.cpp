// Decoding with the tokens chosen on the device (Backbone::decodeStepDevice, Context::setToken, the burst
// path of generateFrom with GenerationOptions::syncEvery > 1), the static KV cache (KvCache::reserve),
// SD-RPN pass 2 key/value reuse (LlavaModel::completePrefix) and the index / capture helpers they use.
// Everything runs on the CPU in fp32 on the small random "demo" LLaVA (8 layers of 256, 576 image tokens),
// where the burst path must give exactly what the per-token path gives.
#include <algorithm>
#include <cmath>
#include <functional>
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
#include "core/result.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
using namespace sdrpn::models;

namespace {

constexpr double kLogitTol = 1e-5;
constexpr double kAttentionTol = 1e-6;
constexpr std::int64_t kImageTokens = 576;
const std::vector<std::int64_t> kPromptText{11, 12, 13, 14};
const std::vector<std::int64_t> kQuestion{21, 22, 23, 24};

class DeviceDecode : public ::testing::Test {
public:
    static void SetUpTestSuite() {
        torch::NoGradGuard noGrad;
        const auto cfg = randomLlavaConfig("demo");
        s_model = makeRandomLlava(cfg, torch::kCPU, torch::kFloat, /*seed=*/7, /*deterministic=*/true);
        torch::manual_seed(123);
        s_features = new torch::Tensor(s_model->encodeImage(torch::randn({3, 336, 336})));
        s_features2 = new torch::Tensor(s_model->encodeImage(torch::randn({3, 336, 336})));
    }
    static void TearDownTestSuite() {
        s_model.reset();
        delete s_features;
        delete s_features2;
        s_features = s_features2 = nullptr;
    }

    static const LlavaModel& model() { return *s_model; }

    // BOS + 4 text ids + 576 image slots + 4 question ids.
    static PromptInput prompt() {
        return test::demoImagePrompt(s_model->info().bosTokenId, kPromptText, kImageTokens, kQuestion,
                                     *s_features);
    }

    static CaptureRequest answerCapture() { return test::lastAndAnswerCapture(); }

    struct Run {
        GenerationResult result;
        std::unique_ptr<Context> ctx;
        AttentionMaps maps;
        std::vector<std::pair<std::int64_t, std::size_t>> callbacks;
    };

    static Run runGenerate(GenerationOptions options, int syncEvery) {
        torch::NoGradGuard noGrad;
        options.syncEvery = syncEvery;
        Run run;
        run.ctx = model().newContext();
        run.ctx->setCaptureRequest(answerCapture());
        JobContext job;
        run.result = generate(
            model(), *run.ctx, prompt(), options, job,
            [&run](std::int64_t token, std::size_t index) { run.callbacks.emplace_back(token, index); });
        run.maps = run.ctx->attentionMaps();
        return run;
    }

    static GenerationOptions noEos(int maxNewTokens) {
        GenerationOptions options;
        options.maxNewTokens = maxNewTokens;
        options.stopAtEos = false;
        return options;
    }

    // Everything the per-token path (`ref`) and a burst path (`got`) must agree on.
    static void expectSameRun(const Run& got, const Run& ref) {
        EXPECT_EQ(got.result.tokens, ref.result.tokens);
        EXPECT_EQ(got.result.stopReason, ref.result.stopReason);
        EXPECT_EQ(got.result.promptTokens, ref.result.promptTokens);
        ASSERT_TRUE(got.result.stepLogits.defined());
        ASSERT_TRUE(ref.result.stepLogits.defined());
        EXPECT_EQ(got.result.stepLogits.sizes(), ref.result.stepLogits.sizes());
        if (got.result.stepLogits.sizes() == ref.result.stepLogits.sizes()) {
            EXPECT_TENSOR_NEAR(got.result.stepLogits, ref.result.stepLogits, kLogitTol);
        }

        EXPECT_EQ(got.ctx->length(), ref.ctx->length());
        EXPECT_EQ(got.ctx->tokens(), ref.ctx->tokens());
        EXPECT_EQ(std::count(got.ctx->tokens().begin(), got.ctx->tokens().end(), kPendingToken), 0)
            << "a kPendingToken is left in the context";
        for (int l = 0; l < model().layerCount(); ++l)
            EXPECT_EQ(got.ctx->cache().length(l), ref.ctx->cache().length(l)) << "layer " << l;

        // The token callback: once per token, indices 0 .. n-1 in order, with the tokens of the result.
        ASSERT_EQ(got.callbacks.size(), got.result.tokens.size());
        for (std::size_t i = 0; i < got.callbacks.size(); ++i) {
            EXPECT_EQ(got.callbacks[i].second, i);
            EXPECT_EQ(got.callbacks[i].first, got.result.tokens[i]);
        }
        EXPECT_EQ(got.callbacks, ref.callbacks);

        // Captured attention: same rows (positions, token ids, kinds), same values.
        const auto& a = got.maps;
        const auto& b = ref.maps;
        EXPECT_EQ(a.heads, b.heads);
        EXPECT_EQ(a.imageKeys, b.imageKeys);
        ASSERT_EQ(a.rows.size(), b.rows.size());
        for (std::size_t r = 0; r < a.rows.size(); ++r) {
            SCOPED_TRACE("row " + std::to_string(r));
            EXPECT_EQ(a.rows[r].position, b.rows[r].position);
            EXPECT_EQ(a.rows[r].token, b.rows[r].token);
            EXPECT_NE(a.rows[r].token, kPendingToken);
            EXPECT_EQ(int(a.rows[r].kind), int(b.rows[r].kind));
        }
        ASSERT_EQ(a.layers.size(), b.layers.size());
        for (std::size_t s = 0; s < a.layers.size(); ++s) {
            EXPECT_EQ(a.layers[s].layer, b.layers[s].layer);
            ASSERT_EQ(a.layers[s].values.size(), b.layers[s].values.size());
            float worst = 0.0f;
            for (std::size_t i = 0; i < a.layers[s].values.size(); ++i)
                worst = std::max(worst, std::abs(a.layers[s].values[i] - b.layers[s].values[i]));
            EXPECT_LE(worst, kAttentionTol) << "layer " << a.layers[s].layer;
        }
    }

    static std::shared_ptr<const LlavaModel> s_model;
    static torch::Tensor* s_features;
    static torch::Tensor* s_features2;
};

std::shared_ptr<const LlavaModel> DeviceDecode::s_model;
torch::Tensor* DeviceDecode::s_features = nullptr;
torch::Tensor* DeviceDecode::s_features2 = nullptr;

// ---------------------------------------------------------------------------------------------------------
// 1. decodeStepDevice / setToken

TEST_F(DeviceDecode, DecodeStepDeviceEqualsDecodeStepAndRecordsPendingToken) {
    torch::NoGradGuard noGrad;
    auto hostCtx = model().newContext();
    hostCtx->setCaptureRequest(answerCapture());
    const auto p = model().prefill(*hostCtx, prompt());
    auto deviceCtx = hostCtx->clone();
    const std::int64_t base = hostCtx->length();
    const std::int64_t token = p.logits.argmax().item<std::int64_t>();

    const auto hostLogits = model().decodeStep(*hostCtx, token);
    const auto deviceLogits = model().decodeStepDevice(*deviceCtx, torch::tensor({token}, torch::kLong));
    EXPECT_TENSOR_NEAR(deviceLogits, hostLogits, kLogitTol);
    ASSERT_EQ(deviceCtx->length(), base + 1);
    EXPECT_EQ(hostCtx->tokens().back(), token);
    EXPECT_EQ(deviceCtx->tokens().back(), kPendingToken);
    // The captured answer row carries kPendingToken until setToken too.
    auto pendingMaps = deviceCtx->attentionMaps();
    ASSERT_FALSE(pendingMaps.rows.empty());
    EXPECT_EQ(pendingMaps.rows.back().position, base);
    EXPECT_EQ(pendingMaps.rows.back().token, kPendingToken);

    // A zero-dimensional token tensor works as well.
    auto scalarCtx = hostCtx->clone();
    scalarCtx->truncate(base);
    const auto scalarLogits = model().decodeStepDevice(*scalarCtx, torch::tensor(token, torch::kLong));
    EXPECT_TENSOR_NEAR(scalarLogits, hostLogits, kLogitTol);

    // setToken: only pending positions, only inside the context.
    EXPECT_ANY_THROW(deviceCtx->setToken(base + 1, token));
    EXPECT_ANY_THROW(deviceCtx->setToken(-1, token));
    EXPECT_ANY_THROW(deviceCtx->setToken(0, token));               // BOS: not pending
    EXPECT_ANY_THROW(deviceCtx->setToken(base - 1, token));        // last question token: not pending
    EXPECT_EQ(deviceCtx->tokens()[0], model().info().bosTokenId);  // failed calls change nothing
    deviceCtx->setToken(base, token);
    EXPECT_EQ(deviceCtx->tokens(), hostCtx->tokens());
    EXPECT_ANY_THROW(deviceCtx->setToken(base, token));  // no longer pending
    EXPECT_EQ(deviceCtx->tokens(), hostCtx->tokens());

    // The captured rows now carry the id, and equal the host path's rows.
    const auto a = deviceCtx->attentionMaps();
    const auto b = hostCtx->attentionMaps();
    ASSERT_EQ(a.rows.size(), b.rows.size());
    for (std::size_t r = 0; r < a.rows.size(); ++r) {
        EXPECT_EQ(a.rows[r].position, b.rows[r].position);
        EXPECT_EQ(a.rows[r].token, b.rows[r].token);
    }
    ASSERT_EQ(a.layers.size(), b.layers.size());
    for (std::size_t s = 0; s < a.layers.size(); ++s) {
        ASSERT_EQ(a.layers[s].values.size(), b.layers[s].values.size());
        for (std::size_t i = 0; i < a.layers[s].values.size(); ++i)
            ASSERT_NEAR(a.layers[s].values[i], b.layers[s].values[i], kAttentionTol);
    }

    // Both continue identically.
    const std::int64_t next = hostLogits.argmax().item<std::int64_t>();
    EXPECT_TENSOR_NEAR(model().decodeStepDevice(*deviceCtx, hostLogits.argmax().reshape({1})),
                       model().decodeStep(*hostCtx, next), kLogitTol);
    deviceCtx->setToken(base + 1, next);
    EXPECT_EQ(deviceCtx->tokens(), hostCtx->tokens());

    // Not one token: rejected, context unchanged.
    const auto before = deviceCtx->length();
    EXPECT_ANY_THROW(model().decodeStepDevice(*deviceCtx, torch::tensor({token, token}, torch::kLong)));
    EXPECT_ANY_THROW(model().decodeStepDevice(*deviceCtx, torch::Tensor()));
    EXPECT_EQ(deviceCtx->length(), before);
}

// ---------------------------------------------------------------------------------------------------------
// 2. Greedy bursts equal the per-token loop

TEST_F(DeviceDecode, BurstsEqualPerTokenAtMaxTokens) {
    const auto options = noEos(11);  // not a multiple of 4 or 5
    const Run ref = runGenerate(options, 1);
    ASSERT_EQ(ref.result.tokens.size(), 11u);
    EXPECT_EQ(ref.result.stopReason, StopReason::MaxTokens);
    EXPECT_EQ(ref.ctx->length(), ref.result.promptTokens + 10);  // the last token is not fed back
    for (int sync : {4, 5}) {
        SCOPED_TRACE("syncEvery " + std::to_string(sync));
        expectSameRun(runGenerate(options, sync), ref);
    }
}

// Stops at the first occurrence of `stopToken` (stopAtEos off): the bursts of 4 and 5 must end where the
// per-token loop ends, with the context cut back to the same length.
void expectStopTokenAgrees(const DeviceDecode::Run& probe, std::int64_t stopToken, int maxNewTokens,
                           const std::function<DeviceDecode::Run(GenerationOptions, int)>& run) {
    const auto& answer = probe.result.tokens;
    const std::size_t stopIndex =
        std::size_t(std::find(answer.begin(), answer.end(), stopToken) - answer.begin());
    ASSERT_LT(stopIndex, answer.size());
    std::string text;
    for (auto t : answer) text += std::to_string(t) + " ";
    SCOPED_TRACE("greedy answer " + text + "; stop token " + std::to_string(stopToken) + " at index " +
                 std::to_string(stopIndex));
    GenerationOptions options;
    options.maxNewTokens = maxNewTokens;
    options.stopAtEos = false;
    options.stopTokens = {stopToken};
    const auto ref = run(options, 1);
    ASSERT_EQ(ref.result.tokens.size(), stopIndex + 1);
    EXPECT_EQ(ref.result.stopReason, StopReason::StopToken);
    EXPECT_EQ(ref.ctx->length(), ref.result.promptTokens + std::int64_t(stopIndex));
    for (int sync : {4, 5}) {
        SCOPED_TRACE("syncEvery " + std::to_string(sync));
        const auto got = run(options, sync);
        DeviceDecode::expectSameRun(got, ref);
        EXPECT_EQ(got.ctx->length(), ref.result.promptTokens + std::int64_t(stopIndex));
    }
}

TEST_F(DeviceDecode, BurstsEqualPerTokenAtAStopTokenInTheFirstBurst) {
    const Run probe = runGenerate(noEos(12), 1);
    // The 3rd greedy token; its first occurrence is at index <= 2, inside the first burst of 4 or 5.
    expectStopTokenAgrees(probe, probe.result.tokens.at(2), 12, &DeviceDecode::runGenerate);
}

TEST_F(DeviceDecode, BurstsEqualPerTokenAtAStopTokenInALaterBurst) {
    const Run probe = runGenerate(noEos(12), 1);
    // The first token of index >= 5 not chosen before, off the last slot of a burst of 4 or 5.
    const auto& answer = probe.result.tokens;
    std::int64_t stopToken = -1;
    for (std::size_t i = 5; i < answer.size() && stopToken < 0; ++i) {
        const auto end = answer.begin() + std::ptrdiff_t(i);
        if (std::find(answer.begin(), end, answer[i]) == end && i % 4 != 3 && i % 5 != 4)
            stopToken = answer[i];
    }
    ASSERT_GE(stopToken, 0) << "no usable stop token in the greedy answer";
    expectStopTokenAgrees(probe, stopToken, 12, &DeviceDecode::runGenerate);
}

TEST_F(DeviceDecode, BurstsEqualPerTokenForOneToken) {
    const auto options = noEos(1);
    const Run ref = runGenerate(options, 1);
    ASSERT_EQ(ref.result.tokens.size(), 1u);
    EXPECT_EQ(ref.ctx->length(), ref.result.promptTokens);
    for (int sync : {4, 5}) {
        SCOPED_TRACE("syncEvery " + std::to_string(sync));
        expectSameRun(runGenerate(options, sync), ref);
    }
}

TEST_F(DeviceDecode, BurstsEqualPerTokenForExactlyOneBurst) {
    for (int sync : {4, 5}) {
        SCOPED_TRACE("syncEvery " + std::to_string(sync));
        const auto options = noEos(sync);
        expectSameRun(runGenerate(options, sync), runGenerate(options, 1));
    }
}

TEST_F(DeviceDecode, BurstsEqualPerTokenWithAVocabLimit) {
    torch::NoGradGuard noGrad;
    auto ctx = model().newContext();
    const auto p = model().prefill(*ctx, prompt());
    const std::int64_t firstArgmax = p.logits.argmax().item<std::int64_t>();
    ASSERT_GT(firstArgmax, 0) << "cannot exclude argmax 0 with a vocabulary limit";
    auto options = noEos(7);
    options.vocabLimit = firstArgmax;  // ids >= the unlimited choice are excluded
    const Run ref = runGenerate(options, 1);
    ASSERT_FALSE(ref.result.tokens.empty());
    EXPECT_NE(ref.result.tokens[0], firstArgmax);
    for (auto t : ref.result.tokens) EXPECT_LT(t, firstArgmax);
    for (int sync : {4, 5}) {
        SCOPED_TRACE("syncEvery " + std::to_string(sync));
        const Run got = runGenerate(options, sync);
        expectSameRun(got, ref);
        for (auto t : got.result.tokens) EXPECT_LT(t, firstArgmax);
    }
}

TEST_F(DeviceDecode, BurstsWithoutStepLogits) {
    auto options = noEos(6);
    options.keepStepLogits = false;
    const Run ref = runGenerate(options, 1);
    const Run got = runGenerate(options, 4);
    EXPECT_FALSE(ref.result.stepLogits.defined());
    EXPECT_FALSE(got.result.stepLogits.defined());
    EXPECT_EQ(got.result.tokens, ref.result.tokens);
    EXPECT_EQ(got.ctx->tokens(), ref.ctx->tokens());
}

// ---------------------------------------------------------------------------------------------------------
// 3. Cancellation in the burst path

TEST_F(DeviceDecode, CancelInABurstThrowsAndLeavesNoPendingToken) {
    torch::NoGradGuard noGrad;
    for (std::size_t cancelAfter : {std::size_t(2), std::size_t(6)}) {
        SCOPED_TRACE("cancel after " + std::to_string(cancelAfter) + " tokens");
        auto ctx = model().newContext();
        ctx->setCaptureRequest(answerCapture());
        auto options = noEos(20);
        options.syncEvery = 4;
        JobContext job;
        std::size_t seen = 0;
        EXPECT_THROW(generate(model(), *ctx, prompt(), options, job,
                              [&](std::int64_t, std::size_t index) {
                                  EXPECT_EQ(index, seen);
                                  ++seen;
                                  if (seen == cancelAfter) job.requestCancel();
                              }),
                     CancelledError);
        EXPECT_GE(seen, cancelAfter);
        EXPECT_LT(seen, 20u);
        const auto& tokens = ctx->tokens();
        EXPECT_EQ(std::count(tokens.begin(), tokens.end(), kPendingToken), 0)
            << "context of " << ctx->length() << " tokens holds a kPendingToken at position "
            << (std::find(tokens.begin(), tokens.end(), kPendingToken) - tokens.begin());
        for (const auto& row : ctx->attentionMaps().rows) EXPECT_NE(row.token, kPendingToken);
        for (int l = 0; l < model().layerCount(); ++l) EXPECT_EQ(ctx->cache().length(l), ctx->length());
    }
}

TEST_F(DeviceDecode, CancelBeforeDecodingThrowsInTheBurstPath) {
    torch::NoGradGuard noGrad;
    auto ctx = model().newContext();
    const auto p = model().prefill(*ctx, prompt());
    const auto length = ctx->length();
    auto options = noEos(8);
    options.syncEvery = 4;
    JobContext job;
    job.requestCancel();
    EXPECT_THROW(generateFrom(model(), *ctx, p.logits, options, job), CancelledError);
    EXPECT_EQ(std::count(ctx->tokens().begin(), ctx->tokens().end(), kPendingToken), 0);
    EXPECT_LE(ctx->length(), length + 1);
}

// ---------------------------------------------------------------------------------------------------------
// 4. effectiveSyncEvery

TEST(EffectiveSyncEvery, CpuDefaultsToOneAndGreedyHonoursTheOption) {
    const auto cpuLogits = torch::zeros({16});
    GenerationOptions options;
    EXPECT_EQ(effectiveSyncEvery(options, cpuLogits), 1);
    EXPECT_EQ(effectiveSyncEvery(options, torch::Tensor()), 1);
    options.syncEvery = 1;
    EXPECT_EQ(effectiveSyncEvery(options, cpuLogits), 1);
    options.syncEvery = 4;
    EXPECT_EQ(effectiveSyncEvery(options, cpuLogits), 4);
    options.syncEvery = 5;
    EXPECT_EQ(effectiveSyncEvery(options, cpuLogits), 5);

    // Sampling reads every token, whatever is asked.
    options.sample = true;
    options.temperature = 0.7;
    EXPECT_EQ(effectiveSyncEvery(options, cpuLogits), 1);
    options.syncEvery = 0;
    EXPECT_EQ(effectiveSyncEvery(options, cpuLogits), 1);
    // Sampling at temperature <= 0 is greedy.
    options.temperature = 0.0;
    options.syncEvery = 4;
    EXPECT_EQ(effectiveSyncEvery(options, cpuLogits), 4);
}

// ---------------------------------------------------------------------------------------------------------
// 5. KvCache::reserve

TEST(KvCacheReserve, AppendsWithinTheReserveNeverReallocate) {
    torch::manual_seed(3);
    KvCache cache(2);
    cache.reserve(1000);
    EXPECT_EQ(cache.reserved(), 1000);
    std::vector<torch::Tensor> ks, vs;
    auto push = [&](std::int64_t n) {
        ks.push_back(torch::randn({2, n, 8}));
        vs.push_back(torch::randn({2, n, 8}));
        cache.append(0, ks.back(), vs.back());
    };
    push(300);  // more than the minimum capacity, less than the reserve
    ASSERT_EQ(cache.length(0), 300);
    EXPECT_EQ(cache.length(1), 0);
    EXPECT_EQ(cache.bytes(), 2 * 2 * 1000 * 8 * 4);  // layer 0 only, at the reserved size
    const void* keysPtr = cache.keys(0).data_ptr();
    const void* valuesPtr = cache.values(0).data_ptr();
    for (int i = 0; i < 600; ++i) {
        push(1);
        ASSERT_EQ(cache.keys(0).data_ptr(), keysPtr) << "reallocated at length " << cache.length(0);
        ASSERT_EQ(cache.values(0).data_ptr(), valuesPtr);
    }
    push(100);  // exactly to the reserve
    EXPECT_EQ(cache.length(0), 1000);
    EXPECT_EQ(cache.keys(0).data_ptr(), keysPtr);
    EXPECT_TRUE(torch::equal(cache.keys(0), torch::cat(ks, 1)));
    EXPECT_TRUE(torch::equal(cache.values(0), torch::cat(vs, 1)));

    // Past the reserve: grows, keeps the contents.
    push(5);
    EXPECT_EQ(cache.length(0), 1005);
    EXPECT_NE(cache.keys(0).data_ptr(), keysPtr);
    EXPECT_TRUE(torch::equal(cache.keys(0), torch::cat(ks, 1)));
    EXPECT_TRUE(torch::equal(cache.values(0), torch::cat(vs, 1)));
    EXPECT_GE(cache.bytes(), 2 * 2 * 1005 * 8 * 4);

    // clone() holds the used positions only, with the same contents.
    cache.truncate(700);
    const auto copy = cache.clone();
    EXPECT_EQ(copy.length(0), 700);
    EXPECT_EQ(copy.length(1), 0);
    EXPECT_EQ(copy.bytes(), 2 * 2 * 700 * 8 * 4);
    EXPECT_TRUE(torch::equal(copy.keys(0), torch::cat(ks, 1).narrow(1, 0, 700)));
    EXPECT_TRUE(torch::equal(copy.values(0), torch::cat(vs, 1).narrow(1, 0, 700)));
    EXPECT_NE(copy.keys(0).data_ptr(), cache.keys(0).data_ptr());

    EXPECT_ANY_THROW(cache.reserve(-1));
}

TEST(KvCacheReserve, ReserveAfterTheFirstAppendGrowsOnceThenStays) {
    torch::manual_seed(4);
    KvCache cache(1);
    auto k0 = torch::randn({2, 10, 8}), v0 = torch::randn({2, 10, 8});
    cache.append(0, k0, v0);
    cache.reserve(600);
    auto k1 = torch::randn({2, 1, 8}), v1 = torch::randn({2, 1, 8});
    cache.append(0, k1, v1);  // grows to the reserve
    EXPECT_EQ(cache.bytes(), 2 * 2 * 600 * 8 * 4);
    EXPECT_TRUE(torch::equal(cache.keys(0), torch::cat({k0, k1}, 1)));
    EXPECT_TRUE(torch::equal(cache.values(0), torch::cat({v0, v1}, 1)));
    const void* ptr = cache.keys(0).data_ptr();
    std::vector<torch::Tensor> ks{k0, k1};
    for (int i = 0; i < 589; ++i) {
        ks.push_back(torch::randn({2, 1, 8}));
        cache.append(0, ks.back(), torch::zeros({2, 1, 8}));
        ASSERT_EQ(cache.keys(0).data_ptr(), ptr) << "reallocated at length " << cache.length(0);
    }
    EXPECT_EQ(cache.length(0), 600);
    EXPECT_TRUE(torch::equal(cache.keys(0), torch::cat(ks, 1)));
}

TEST_F(DeviceDecode, ContextReserveKeepsTheCacheInPlaceWhileDecoding) {
    torch::NoGradGuard noGrad;
    auto ctx = model().newContext();
    ctx->reserve(kImageTokens + 64);
    auto ref = model().newContext();
    const auto p = model().prefill(*ctx, prompt());
    const auto pr = model().prefill(*ref, prompt());
    EXPECT_TENSOR_NEAR(p.logits, pr.logits, kLogitTol);
    std::vector<const void*> ptrs;
    for (int l = 0; l < model().layerCount(); ++l) ptrs.push_back(ctx->cache().keys(l).data_ptr());
    auto logits = p.logits;
    auto refLogits = pr.logits;
    for (int i = 0; i < 6; ++i) {
        const auto token = logits.argmax().reshape({1});
        logits = model().decodeStepDevice(*ctx, token);
        refLogits = model().decodeStep(*ref, token.item<std::int64_t>());
        EXPECT_TENSOR_NEAR(logits, refLogits, kLogitTol);
        for (int l = 0; l < model().layerCount(); ++l)
            ASSERT_EQ(ctx->cache().keys(l).data_ptr(), ptrs[std::size_t(l)]) << "layer " << l;
    }
    for (int l = 0; l < model().layerCount(); ++l) {
        EXPECT_TRUE(torch::equal(ctx->cache().keys(l), ref->cache().keys(l))) << "layer " << l;
        EXPECT_TRUE(torch::equal(ctx->cache().values(l), ref->cache().values(l))) << "layer " << l;
    }
    // A clone holds the used positions and continues like the original.
    auto copy = ctx->clone();
    EXPECT_EQ(copy->cache().length(0), ctx->length());
    EXPECT_LT(copy->cache().bytes(), ctx->cache().bytes());
    const auto token = logits.argmax().reshape({1});
    EXPECT_TENSOR_NEAR(model().decodeStepDevice(*copy, token), model().decodeStepDevice(*ctx, token),
                       kLogitTol);
}

// ---------------------------------------------------------------------------------------------------------
// 6. completePrefix

TEST_F(DeviceDecode, CompletePrefixEqualsAFullPrefillWithBothImages) {
    torch::NoGradGuard noGrad;
    constexpr int K = 4;
    const std::int64_t prefixLength = 1 + std::int64_t(kPromptText.size()) + kImageTokens;

    // Pass 1: layers [0, K) over the whole prompt.
    auto ctx = model().newContext();
    PrefillOptions pass1;
    pass1.endLayer = K;
    pass1.keepHidden = {K};
    pass1.computeLogits = false;
    const auto p1 = model().prefill(*ctx, prompt(), pass1);
    ASSERT_EQ(p1.hidden.count(K), 1u);
    EXPECT_EQ(ctx->cache().length(K - 1), ctx->length());
    EXPECT_EQ(ctx->cache().length(K), 0);

    model().completePrefix(*ctx, p1.hidden.at(K), K, prefixLength);
    EXPECT_EQ(ctx->length(), prefixLength);
    for (int l = 0; l < model().layerCount(); ++l) EXPECT_EQ(ctx->cache().length(l), prefixLength);
    ASSERT_EQ(ctx->imageSpans().size(), 1u);

    // Pass 2: the second image's rows and the question.
    PromptInput rest;
    rest.ids.assign(std::size_t(kImageTokens), kImageSlot);
    rest.ids.insert(rest.ids.end(), kQuestion.begin(), kQuestion.end());
    rest.images = {*s_features2};
    const auto reused = model().prefill(*ctx, rest);

    // Fresh: [prefix | second image | question] in one prefill.
    PromptInput full;
    full.ids.push_back(model().info().bosTokenId);
    full.ids.insert(full.ids.end(), kPromptText.begin(), kPromptText.end());
    full.ids.insert(full.ids.end(), std::size_t(2 * kImageTokens), kImageSlot);
    full.ids.insert(full.ids.end(), kQuestion.begin(), kQuestion.end());
    full.images = {*s_features, *s_features2};
    auto fresh = model().newContext();
    const auto pf = model().prefill(*fresh, full);

    EXPECT_TRUE(test::tensorsNear(reused.logits, pf.logits, 1e-5, 1e-4));
    EXPECT_EQ(ctx->tokens(), fresh->tokens());
    EXPECT_EQ(ctx->imageKeyCount(), 2 * kImageTokens);
    for (int l = 0; l < model().layerCount(); ++l)
        EXPECT_TRUE(test::tensorsNear(ctx->cache().keys(l), fresh->cache().keys(l), 1e-4, 1e-4))
            << "layer " << l;

    // And the whole prefix with fromLayer == layers: only the truncation remains.
    auto all = model().newContext();
    PrefillOptions keepLast;
    keepLast.keepHidden = {model().layerCount()};
    keepLast.computeLogits = false;
    const auto pa = model().prefill(*all, prompt(), keepLast);
    model().completePrefix(*all, pa.hidden.at(model().layerCount()), model().layerCount(), prefixLength);
    EXPECT_EQ(all->length(), prefixLength);
    const auto reusedAll = model().prefill(*all, rest);
    EXPECT_TRUE(test::tensorsNear(reusedAll.logits, pf.logits, 1e-5, 1e-4));
}

TEST_F(DeviceDecode, CompletePrefixRejectsBadArguments) {
    torch::NoGradGuard noGrad;
    constexpr int K = 4;
    auto ctx = model().newContext();
    PrefillOptions pass1;
    pass1.endLayer = K;
    pass1.keepHidden = {K};
    pass1.computeLogits = false;
    const auto p1 = model().prefill(*ctx, prompt(), pass1);
    const auto& hidden = p1.hidden.at(K);
    const std::int64_t length = ctx->length();
    const int layers = model().layerCount();

    EXPECT_ANY_THROW(model().completePrefix(*ctx, hidden, K, 0));
    EXPECT_ANY_THROW(model().completePrefix(*ctx, hidden, K, -1));
    EXPECT_ANY_THROW(model().completePrefix(*ctx, hidden, K, length + 1));
    EXPECT_ANY_THROW(model().completePrefix(*ctx, hidden, -1, 10));
    EXPECT_ANY_THROW(model().completePrefix(*ctx, hidden, layers + 1, 10));
    EXPECT_ANY_THROW(model().completePrefix(*ctx, hidden.narrow(0, 0, 5), K, 10));  // too few rows
    EXPECT_ANY_THROW(model().completePrefix(*ctx, hidden[0], K, 1));                // not [n, hidden]
    // Rejected calls leave the context as it was.
    EXPECT_EQ(ctx->length(), length);
    EXPECT_EQ(ctx->cache().length(0), length);
    EXPECT_EQ(ctx->cache().length(K), 0);
}

// ---------------------------------------------------------------------------------------------------------
// 7. indexTensor / attentionRows overloads

TEST(IndexTensor, HoldsTheValuesAsInt64OnTheDevice) {
    const std::vector<std::int64_t> values{5, 0, 42, -1, 1ll << 40};
    const auto t = indexTensor(values, torch::kCPU);
    EXPECT_EQ(t.scalar_type(), torch::kLong);
    EXPECT_EQ(t.device(), torch::Device(torch::kCPU));
    ASSERT_EQ(t.dim(), 1);
    ASSERT_EQ(t.size(0), std::int64_t(values.size()));
    auto c = t.contiguous();
    EXPECT_EQ(std::vector<std::int64_t>(c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()),
              values);
    const auto one = indexTensor({7}, torch::kCPU);
    EXPECT_EQ(one.sizes(), (std::vector<std::int64_t>{1}));
    EXPECT_EQ(one[0].item<std::int64_t>(), 7);
}

TEST(AttentionRowsOverloads, TensorPositionsEqualVectorPositions) {
    torch::manual_seed(5);
    const double scale = 0.25;
    for (std::int64_t kvHeads : {6, 3, 1}) {
        SCOPED_TRACE("kv heads " + std::to_string(kvHeads));
        auto keys = torch::randn({kvHeads, 60, 16});
        const std::vector<std::int64_t> positions{0, 7, 31, 59};
        auto q = torch::randn({6, std::int64_t(positions.size()), 16});
        auto columns = torch::arange(4, 40, torch::kLong);
        const auto fromVector = attentionRows(q, keys, positions, columns, scale);
        const auto fromTensor = attentionRows(q, keys, indexTensor(positions, torch::kCPU), columns, scale);
        ASSERT_EQ(fromVector.sizes(), (std::vector<std::int64_t>{6, 4, 36}));
        EXPECT_TRUE(torch::equal(fromTensor, fromVector));
        // Also an int32 positions tensor and a non-contiguous one.
        const auto int32 =
            attentionRows(q, keys, torch::tensor(positions, torch::kLong).to(torch::kInt), columns, scale);
        EXPECT_TENSOR_NEAR(int32, fromVector, 0.0);
        // Row 0 sees key 0 only (not among the columns): all zero; masking follows the positions.
        EXPECT_EQ(fromTensor.select(1, 0).abs().sum().item<double>(), 0.0);
        const auto shifted =
            attentionRows(q, keys, indexTensor({59, 59, 59, 59}, torch::kCPU), columns, scale);
        EXPECT_FALSE(torch::allclose(shifted, fromTensor));
    }
    auto q = torch::randn({2, 3, 8});
    auto keys = torch::randn({2, 10, 8});
    auto columns = torch::arange(0, 5, torch::kLong);
    EXPECT_ANY_THROW(attentionRows(q, keys, std::vector<std::int64_t>{1, 2}, columns, 1.0));
    EXPECT_ANY_THROW(attentionRows(q, keys, indexTensor({1, 2}, torch::kCPU), columns, 1.0));
    EXPECT_ANY_THROW(attentionRows(q, keys, torch::zeros({3, 1}, torch::kLong), columns, 1.0));
}

}  // namespace
