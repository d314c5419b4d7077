// LLaVA-1.5 parity with the reference implementation on the tiny-llava-hf fixture (fp32, 1e-4): vision
// tower, projector, every layer's hidden state, every layer's captured attention rows, full logits, greedy
// generation with its step logits; plus the KV-cache, capture and generation contracts.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/generation.h"
#include "core/models/llama.h"
#include "core/models/llava.h"
#include "core/models/random_llava.h"
#include "core/models/registry.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
using namespace sdrpn::models;

namespace {

constexpr double kTol = 1e-4;
constexpr std::int64_t kImageStart = 49;
constexpr std::int64_t kImageTokens = 576;
constexpr std::int64_t kSeq = 646;

class LlavaParity : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        torch::NoGradGuard noGrad;
        const std::string dir = test::fixturePath("tiny-llava-hf");
        s_model = loadLlava(dir, LoadOptions{}, JobContext::none());
        s_ref = new std::map<std::string, torch::Tensor>(
            io::loadTensors(*io::SafetensorsArchive::open(dir + "/reference.safetensors")));
        std::ifstream in(dir + "/reference.json");
        s_json = new nlohmann::json(nlohmann::json::parse(in));
        s_features = new torch::Tensor(s_model->encodeImage(ref("pixel_values.336")));
    }
    static void TearDownTestSuite() {
        s_model.reset();
        delete s_ref;
        delete s_json;
        delete s_features;
    }

    static const torch::Tensor& ref(const std::string& name) { return s_ref->at(name); }
    static std::vector<std::int64_t> inputIds() {
        auto t = ref("input_ids").contiguous();
        return std::vector<std::int64_t>(t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + t.numel());
    }
    static PromptInput prompt() { return PromptInput::fromTokenIds(inputIds(), 512, {*s_features}); }
    static std::vector<std::int64_t> greedyTokens() {
        return s_json->at("greedy_new_tokens").get<std::vector<std::int64_t>>();
    }
    // Captured values of one layer as [heads, rows, imageKeys].
    static torch::Tensor layerTensor(const AttentionMaps& maps, int layer) {
        const int slot = maps.slotOf(layer);
        EXPECT_GE(slot, 0) << "layer " << layer << " not captured";
        if (slot < 0) return {};
        auto& v = maps.layers[std::size_t(slot)].values;
        return torch::from_blob(const_cast<float*>(v.data()),
                                {maps.heads, std::int64_t(maps.rows.size()), maps.imageKeys}, torch::kFloat)
            .clone();
    }

    static std::shared_ptr<const LlavaModel> s_model;
    static std::map<std::string, torch::Tensor>* s_ref;
    static nlohmann::json* s_json;
    static torch::Tensor* s_features;
};

std::shared_ptr<const LlavaModel> LlavaParity::s_model;
std::map<std::string, torch::Tensor>* LlavaParity::s_ref = nullptr;
nlohmann::json* LlavaParity::s_json = nullptr;
torch::Tensor* LlavaParity::s_features = nullptr;

TEST_F(LlavaParity, InfoDescribesTheFixture) {
    const auto& info = s_model->info();
    EXPECT_EQ(info.modelType, "llava");
    EXPECT_EQ(s_model->layerCount(), 6);
    EXPECT_EQ(s_model->headCount(), 4);
    EXPECT_EQ(info.kvHeads, 4);
    EXPECT_EQ(info.headDim, 16);
    EXPECT_EQ(info.vocab, 514);
    EXPECT_EQ(info.imageTokenId, 512);
    EXPECT_EQ(info.imageTokens, kImageTokens);
    EXPECT_EQ(s_model->imageGrid(), (ImageGrid{24, 24}));
    EXPECT_EQ(info.eosTokenId, 2);
    EXPECT_EQ(s_model->vision()->layersRun(), 2);  // vision_feature_layer -2 of 3 layers
}

TEST_F(LlavaParity, VisionTowerHiddenState) {
    auto hidden = s_model->visionHidden(ref("pixel_values.336"));
    ASSERT_EQ(hidden.sizes(), (std::vector<std::int64_t>{1, 577, 32}));
    EXPECT_TENSOR_NEAR(hidden[0], ref("vision.hidden_m2"), kTol);
}

TEST_F(LlavaParity, ProjectorOutput) {
    EXPECT_TENSOR_NEAR(*s_features, ref("projector.out"), kTol);
    // A batch of two gives both images' rows in order.
    auto pixels = ref("pixel_values.336").unsqueeze(0).repeat({2, 1, 1, 1});
    auto both = s_model->encodeImage(pixels);
    ASSERT_EQ(both.size(0), 2 * kImageTokens);
    EXPECT_TENSOR_NEAR(both.narrow(0, kImageTokens, kImageTokens), ref("projector.out"), kTol);
}

TEST_F(LlavaParity, PrefillLogitsHiddenStatesAndAttentionRows) {
    auto ctx = s_model->newContext();
    CaptureRequest request;  // every layer
    request.questionTokens = true;
    ctx->setCaptureRequest(request);
    PrefillOptions options;
    options.allLogits = true;
    for (int k = 0; k <= 6; ++k) options.keepHidden.push_back(k);
    PrefillResult out = s_model->prefill(*ctx, prompt(), options);

    EXPECT_EQ(ctx->length(), kSeq);
    ASSERT_EQ(ctx->imageSpans().size(), 1u);
    EXPECT_EQ(ctx->imageSpans()[0].start, kImageStart);
    EXPECT_EQ(ctx->imageSpans()[0].length, kImageTokens);
    EXPECT_EQ(ctx->imageSpans()[0].grid, (ImageGrid{24, 24}));

    EXPECT_TENSOR_NEAR(out.logits, ref("logits"), kTol);

    for (int k = 0; k <= 6; ++k) {
        SCOPED_TRACE("hidden " + std::to_string(k));
        auto h = out.hidden.at(k);
        // The reference's last entry is after the final norm.
        if (k == 6) h = s_model->text()->finalNorm(h);
        EXPECT_TENSOR_NEAR(h[kSeq - 1], ref("hidden." + std::to_string(k) + ".last"), kTol);
        EXPECT_TENSOR_NEAR(h.narrow(0, kImageStart, kImageTokens).mean(0),
                           ref("hidden." + std::to_string(k) + ".image_mean"), kTol);
    }

    AttentionMaps maps = ctx->attentionMaps();
    ASSERT_EQ(maps.layers.size(), 6u);
    ASSERT_EQ(maps.rows.size(), 21u);
    EXPECT_EQ(maps.heads, 4);
    EXPECT_EQ(maps.imageKeys, kImageTokens);
    ASSERT_EQ(maps.imageKeyPositions.size(), std::size_t(kImageTokens));
    EXPECT_EQ(maps.imageKeyPositions.front(), kImageStart);
    auto expectedPositions = s_json->at("text_rows_after_image").get<std::vector<std::int64_t>>();
    for (std::size_t r = 0; r < maps.rows.size(); ++r) {
        EXPECT_EQ(maps.rows[r].position, expectedPositions[r]);
        EXPECT_EQ(maps.rows[r].token, inputIds()[std::size_t(expectedPositions[r])]);
        EXPECT_EQ(maps.rows[r].kind, r + 1 == maps.rows.size() ? QueryKind::LastPrompt : QueryKind::Question);
    }
    for (int layer = 0; layer < 6; ++layer) {
        SCOPED_TRACE("attention layer " + std::to_string(layer));
        auto got = layerTensor(maps, layer);
        auto textRows = ref("attn." + std::to_string(layer) + ".text_rows");  // [4, 21, 646]
        EXPECT_TENSOR_NEAR(got, textRows.narrow(2, kImageStart, kImageTokens), kTol);
        EXPECT_TENSOR_NEAR(got.select(1, 20), ref("attn." + std::to_string(layer) + ".last_to_image"), kTol);
    }
    EXPECT_EQ(maps.stats.rows, 21);
    EXPECT_EQ(maps.stats.keptBytes, 6 * 4 * 21 * kImageTokens * 4);
}

TEST_F(LlavaParity, CaptureLayerSubsetAndExplicitPositions) {
    auto ctx = s_model->newContext();
    CaptureRequest request;
    request.layers = {1, 4};
    request.lastPromptToken = false;
    request.positions = {630, 10};  // 10 is a text row before the image: it sees no image key
    ctx->setCaptureRequest(request);
    PrefillOptions options;
    options.computeLogits = false;
    s_model->prefill(*ctx, prompt(), options);
    AttentionMaps maps = ctx->attentionMaps();
    ASSERT_EQ(maps.layers.size(), 2u);
    EXPECT_EQ(maps.layers[0].layer, 1);
    EXPECT_EQ(maps.layers[1].layer, 4);
    ASSERT_EQ(maps.rows.size(), 2u);
    EXPECT_EQ(maps.rows[0].position, 10);
    EXPECT_EQ(maps.rows[1].position, 630);
    EXPECT_EQ(maps.rows[1].kind, QueryKind::Prompt);
    auto l4 = layerTensor(maps, 4);
    EXPECT_EQ(l4.select(1, 0).abs().sum().item<double>(), 0.0);
    EXPECT_TENSOR_NEAR(l4.select(1, 1),
                       ref("attn.4.text_rows").select(1, 5).narrow(1, kImageStart, kImageTokens), kTol);
}

TEST_F(LlavaParity, GreedyGenerationMatchesReference) {
    auto ctx = s_model->newContext();
    GenerationOptions options;
    options.maxNewTokens = 12;
    std::vector<std::int64_t> streamed;
    GenerationResult r = generate(*s_model, *ctx, prompt(), options, JobContext::none(),
                                  [&](std::int64_t token, std::size_t i) {
                                      EXPECT_EQ(i, streamed.size());
                                      streamed.push_back(token);
                                  });
    EXPECT_EQ(r.tokens, greedyTokens());
    EXPECT_EQ(streamed, r.tokens);
    EXPECT_EQ(r.stopReason, StopReason::MaxTokens);
    EXPECT_EQ(r.promptTokens, kSeq);
    EXPECT_TENSOR_NEAR(r.stepLogits, ref("generate.step_logits"), kTol);
    EXPECT_EQ(ctx->length(), kSeq + 11);  // the last token is not fed back
}

TEST_F(LlavaParity, AnswerRowsMatchARecomputedPrefill) {
    // Rows captured token by token while decoding equal the same rows of one prefill over prompt + answer.
    auto ctx = s_model->newContext();
    CaptureRequest request;
    request.lastPromptToken = true;
    request.answerTokens = true;
    ctx->setCaptureRequest(request);
    GenerationOptions options;
    options.maxNewTokens = 6;
    GenerationResult r = generate(*s_model, *ctx, prompt(), options, JobContext::none());
    AttentionMaps decoded = ctx->attentionMaps();
    ASSERT_EQ(decoded.rows.size(), 1u + 5u);
    EXPECT_EQ(decoded.rows[0].kind, QueryKind::LastPrompt);
    EXPECT_EQ(decoded.rowsOfKind(QueryKind::Answer).size(), 5u);

    auto ids = inputIds();
    ids.insert(ids.end(), r.tokens.begin(), r.tokens.end() - 1);
    auto full = s_model->newContext();
    CaptureRequest explicitRows = CaptureRequest::none();
    for (const auto& row : decoded.rows) explicitRows.positions.push_back(row.position);
    full->setCaptureRequest(explicitRows);
    PrefillOptions po;
    po.computeLogits = false;
    s_model->prefill(*full, PromptInput::fromTokenIds(ids, 512, {*s_features}), po);
    AttentionMaps recomputed = full->attentionMaps();
    ASSERT_EQ(recomputed.rows.size(), decoded.rows.size());
    for (std::size_t i = 0; i < decoded.rows.size(); ++i) {
        EXPECT_EQ(recomputed.rows[i].position, decoded.rows[i].position);
        EXPECT_EQ(recomputed.rows[i].token, decoded.rows[i].token);
    }
    for (int layer = 0; layer < 6; ++layer)
        EXPECT_TENSOR_NEAR(layerTensor(decoded, layer), layerTensor(recomputed, layer), 1e-5);
}

TEST_F(LlavaParity, ChunkedPrefillEqualsOneShot) {
    // Split inside the image: two feature blocks, two spans, one sequence.
    auto ids = inputIds();
    auto ctx = s_model->newContext();
    const std::int64_t cut = 300;
    PromptInput first, second;
    first.ids.assign(ids.begin(), ids.begin() + cut);
    second.ids.assign(ids.begin() + cut, ids.end());
    first = PromptInput::fromTokenIds(first.ids, 512, {s_features->narrow(0, 0, cut - kImageStart)});
    second = PromptInput::fromTokenIds(
        second.ids, 512, {s_features->narrow(0, cut - kImageStart, kImageTokens - (cut - kImageStart))});
    PrefillOptions options;
    options.allLogits = true;
    auto a = s_model->prefill(*ctx, first, options);
    auto b = s_model->prefill(*ctx, second, options);
    EXPECT_EQ(b.start, cut);
    EXPECT_TENSOR_NEAR(torch::cat({a.logits, b.logits}, 0), ref("logits"), kTol);
    EXPECT_EQ(ctx->imageSpans().size(), 2u);
    EXPECT_EQ(ctx->imageKeyCount(), kImageTokens);
}

TEST_F(LlavaParity, CloneAndTruncateReuseThePrefix) {
    auto ids = inputIds();
    auto ctx = s_model->newContext();
    CaptureRequest request;
    request.questionTokens = true;
    ctx->setCaptureRequest(request);
    s_model->prefill(*ctx, prompt());
    auto branch = ctx->clone();

    const std::int64_t keep = 630;
    ctx->truncate(keep);
    EXPECT_EQ(ctx->length(), keep);
    EXPECT_EQ(ctx->attentionMaps().rows.size(), std::size_t(keep - 625));  // rows at >= 630 dropped
    std::vector<std::int64_t> tail(ids.begin() + keep, ids.end());
    PrefillOptions options;
    options.allLogits = true;
    auto again = s_model->prefill(*ctx, PromptInput::fromTokenIds(tail, 512), options);
    EXPECT_TENSOR_NEAR(again.logits, ref("logits").narrow(0, keep, kSeq - keep), kTol);
    EXPECT_EQ(ctx->attentionMaps().rows.size(), 21u);

    // The clone continues independently and decodes the reference's first step.
    auto step = s_model->decodeStep(*branch, greedyTokens()[0]);
    EXPECT_TENSOR_NEAR(step, ref("generate.step_logits")[1], kTol);
    EXPECT_EQ(branch->length(), kSeq + 1);

    // Truncating inside the image keeps a partial span without a grid.
    ctx->truncate(100);
    ASSERT_EQ(ctx->imageSpans().size(), 1u);
    EXPECT_EQ(ctx->imageSpans()[0].length, 100 - kImageStart);
    EXPECT_EQ(ctx->imageSpans()[0].grid, ImageGrid{});
}

TEST_F(LlavaParity, PartialPrefillGivesTheHiddenStateAfterLayerK) {
    auto ctx = s_model->newContext();
    PrefillOptions partial;
    partial.endLayer = 3;
    partial.computeLogits = false;
    partial.keepHidden = {3};
    auto p = s_model->prefill(*ctx, prompt(), partial);
    EXPECT_FALSE(p.logits.defined());
    EXPECT_TENSOR_NEAR(p.hidden.at(3)[kSeq - 1], ref("hidden.3.last"), kTol);
    EXPECT_EQ(ctx->cache().length(2), kSeq);
    EXPECT_EQ(ctx->cache().length(3), 0);
    // Layers 3.. hold nothing yet: continuing needs a truncate to a prefix they share.
    EXPECT_THROW(s_model->decodeStep(*ctx, 5), c10::Error);
    EXPECT_EQ(ctx->length(), kSeq);  // the failed step left the context as it was
    ctx->truncate(0);
    auto full = s_model->prefill(*ctx, prompt());
    EXPECT_TENSOR_NEAR(full.logits, ref("logits")[kSeq - 1], kTol);

    PrefillOptions bad;
    bad.endLayer = 3;
    EXPECT_THROW(s_model->prefill(*s_model->newContext(), prompt(), bad),
                 c10::Error);  // logits need all layers
}

TEST_F(LlavaParity, OriginalStyleSentinelIdsGiveTheSameLayout) {
    auto ids = inputIds();
    std::vector<std::int64_t> withSentinel(ids.begin(), ids.begin() + kImageStart);
    withSentinel.push_back(-200);
    withSentinel.insert(withSentinel.end(), ids.begin() + kImageStart + kImageTokens, ids.end());
    auto expanded = expandImageSentinels(withSentinel, -200, kImageTokens);
    ASSERT_EQ(expanded.size(), std::size_t(kSeq));
    PromptInput p;
    p.ids = expanded;
    p.images = {*s_features};
    auto ctx = s_model->newContext();
    EXPECT_TENSOR_NEAR(s_model->prefill(*ctx, p).logits, ref("logits")[kSeq - 1], kTol);
}

TEST_F(LlavaParity, PromptErrorsNameTheProblem) {
    auto ctx = s_model->newContext();
    try {
        s_model->prefill(*ctx, PromptInput::fromTokenIds(inputIds(), 512, {}));
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("576 image rows but 0"), std::string::npos) << e.what();
    }
    EXPECT_EQ(ctx->length(), 0);
    try {
        s_model->prefill(*ctx, PromptInput::fromTokenIds({1, 9999}, 512));
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("9999"), std::string::npos) << e.what();
    }
}

TEST_F(LlavaParity, SamplingIsSeededAndTopPOfZeroIsGreedy) {
    GenerationOptions sampling;
    sampling.maxNewTokens = 8;
    sampling.sample = true;
    sampling.temperature = 1.5;
    sampling.topK = 50;
    sampling.topP = 0.9;
    sampling.seed = 7;
    sampling.stopAtEos = false;
    auto run = [&](const GenerationOptions& o) {
        auto ctx = s_model->newContext();
        return generate(*s_model, *ctx, prompt(), o, JobContext::none()).tokens;
    };
    auto a = run(sampling);
    EXPECT_EQ(a, run(sampling));
    EXPECT_EQ(a.size(), 8u);
    GenerationOptions nucleus = sampling;
    nucleus.topP = 1e-9;  // keeps only the most likely token
    nucleus.topK = 0;
    nucleus.maxNewTokens = 12;
    EXPECT_EQ(run(nucleus), greedyTokens());
}

TEST_F(LlavaParity, StopTokensAndCancel) {
    GenerationOptions options;
    options.maxNewTokens = 12;
    options.stopTokens = {greedyTokens()[0]};
    auto ctx = s_model->newContext();
    auto r = generate(*s_model, *ctx, prompt(), options, JobContext::none());
    EXPECT_EQ(r.tokens.size(), 1u);
    EXPECT_EQ(r.stopReason, StopReason::StopToken);

    JobContext job;
    std::size_t seen = 0;
    auto cancelling = s_model->newContext();
    EXPECT_THROW(generate(*s_model, *cancelling, prompt(), GenerationOptions{}, job,
                          [&](std::int64_t, std::size_t i) {
                              seen = i + 1;
                              if (i == 2) job.requestCancel();
                          }),
                 CancelledError);
    EXPECT_EQ(seen, 3u);
}

TEST_F(LlavaParity, RegistryLoadsTheFixture) {
    EXPECT_NE(findBackboneLoader("llava"), nullptr);
    EXPECT_EQ(findBackboneLoader("nonexistent"), nullptr);
    auto r = tryLoadBackbone(test::fixturePath("tiny-llava-hf"), LoadOptions{}, JobContext::none());
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r.value()->info().modelType, "llava");
    auto weights = r.value()->decoderLayerWeights(2);
    EXPECT_TRUE(weights.count("self_attn.q_proj.weight"));
    EXPECT_TRUE(weights.count("input_layernorm.weight"));
    EXPECT_TRUE(weights.count("mlp.down_proj.weight"));
    EXPECT_EQ(r.value()->finalNormWeight().sizes(), (std::vector<std::int64_t>{64}));
}

TEST_F(LlavaParity, CaptureCostIsSmall) {
    // Not a benchmark: records what capturing every layer's question rows costs on this machine.
    auto timePrefill = [&](const CaptureRequest& request, CaptureStats* stats) {
        double best = 1e9;
        for (int i = 0; i < 3; ++i) {
            auto ctx = s_model->newContext();
            ctx->setCaptureRequest(request);
            auto t0 = std::chrono::steady_clock::now();
            s_model->prefill(*ctx, prompt());
            best =
                std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            if (stats) *stats = ctx->captureStats();
        }
        return best;
    };
    CaptureRequest all;
    all.questionTokens = true;
    all.measure = true;
    CaptureStats stats;
    const double plain = timePrefill(CaptureRequest::none(), nullptr);
    const double captured = timePrefill(all, &stats);
    std::cout << "[capture] prefill " << plain * 1e3 << " ms, with 21 rows x 6 layers captured "
              << captured * 1e3 << " ms (recompute " << stats.seconds * 1e3 << " ms, kept " << stats.keptBytes
              << " B, scratch " << stats.peakScratchBytes << " B)\n";
    RecordProperty("prefill_ms", std::to_string(plain * 1e3));
    RecordProperty("prefill_capture_ms", std::to_string(captured * 1e3));
    EXPECT_GT(stats.seconds, 0.0);
    EXPECT_EQ(stats.peakScratchBytes, 4 * 21 * kSeq * 4);
}

// Bytes of the distinct storages behind the map's tensors (views of one storage count once).
std::int64_t storageBytes(const WeightMap& w) {
    std::set<const void*> seen;
    std::int64_t bytes = 0;
    for (const auto& [name, t] : w) {
        const auto& storage = t.storage();
        if (seen.insert(storage.data()).second) bytes += std::int64_t(storage.nbytes());
    }
    return bytes;
}

TEST_F(LlavaParity, TheLoadedModelRunsFusedProjectionsAndMatchesSeparateOnes) {
    // Every parity test of this suite runs the fused q/k/v and gate/up products of the loaded model.
    for (int i = 0; i < s_model->layerCount(); ++i)
        EXPECT_TRUE(s_model->text()->layer(i)->attention()->fused()) << "layer " << i;
    // The same fixture with fusion turned off gives the same logits, hidden states and greedy answer.
    ::setenv("SDRPN_FUSED_PROJECTIONS", "0", 1);
    std::shared_ptr<const LlavaModel> separate;
    try {
        separate = loadLlava(test::fixturePath("tiny-llava-hf"), LoadOptions{}, JobContext::none());
    } catch (...) {
        ::unsetenv("SDRPN_FUSED_PROJECTIONS");
        throw;
    }
    ::unsetenv("SDRPN_FUSED_PROJECTIONS");
    ASSERT_FALSE(separate->text()->layer(0)->attention()->fused());
    PrefillOptions options;
    options.allLogits = true;
    options.keepHidden = {3, 6};
    auto fusedCtx = s_model->newContext();
    auto separateCtx = separate->newContext();
    const auto a = s_model->prefill(*fusedCtx, prompt(), options);
    const auto b = separate->prefill(*separateCtx, prompt(), options);
    EXPECT_TENSOR_NEAR(a.logits, b.logits, 1e-5);
    EXPECT_TENSOR_NEAR(a.hidden.at(3), b.hidden.at(3), 1e-5);
    EXPECT_TENSOR_NEAR(a.hidden.at(6), b.hidden.at(6), 1e-5);
    GenerationOptions greedy;
    greedy.maxNewTokens = 12;
    auto g1 = s_model->newContext();
    auto g2 = separate->newContext();
    EXPECT_EQ(generate(*s_model, *g1, prompt(), greedy, JobContext::none()).tokens,
              generate(*separate, *g2, prompt(), greedy, JobContext::none()).tokens);
}

TEST(FusedProjections, PartsBecomeViewsOfOneTensorAndNoMemoryIsAdded) {
    torch::NoGradGuard noGrad;
    const auto cfg = randomLlavaConfig("demo");
    WeightMap w = randomLlavaWeights(cfg, torch::kCPU, torch::kFloat, 3, true);
    const std::string p = "language_model.model.layers.1";
    const auto q = w.at(p + ".self_attn.q_proj.weight").clone();
    const auto v = w.at(p + ".self_attn.v_proj.weight").clone();
    const auto up = w.at(p + ".mlp.up_proj.weight").clone();
    // Layer 0 lacks its v_proj: that group stays as it is, the others are fused.
    w.erase("language_model.model.layers.0.self_attn.v_proj.weight");
    const std::int64_t before = storageBytes(w);
    const std::size_t tensors = w.size();

    EXPECT_EQ(fuseLlamaProjections(w, cfg.text, "language_model."), 2 * cfg.text.numHiddenLayers - 1);
    EXPECT_EQ(storageBytes(w), before);
    EXPECT_EQ(w.size(), tensors + 2 * cfg.text.numHiddenLayers - 1);  // the fused tensors, beside their parts
    EXPECT_FALSE(w.count("language_model.model.layers.0.self_attn.qkv_proj.weight"));
    EXPECT_TRUE(w.count("language_model.model.layers.0.mlp.gate_up_proj.weight"));

    const auto& qkv = w.at(p + ".self_attn.qkv_proj.weight");
    const std::int64_t h = cfg.text.hiddenSize, qRows = q.size(0), kvRows = v.size(0);
    ASSERT_EQ(qkv.sizes(), (std::vector<std::int64_t>{qRows + 2 * kvRows, h}));
    EXPECT_EQ(w.at(p + ".self_attn.q_proj.weight").data_ptr(), qkv.data_ptr());
    EXPECT_EQ(w.at(p + ".self_attn.v_proj.weight").data_ptr<float>(),
              qkv.data_ptr<float>() + (qRows + kvRows) * h);
    EXPECT_TRUE(torch::equal(w.at(p + ".self_attn.q_proj.weight"), q));
    EXPECT_TRUE(torch::equal(w.at(p + ".self_attn.v_proj.weight"), v));
    EXPECT_TRUE(torch::equal(qkv.narrow(0, qRows + kvRows, kvRows), v));
    EXPECT_TRUE(torch::equal(w.at(p + ".mlp.gate_up_proj.weight").narrow(0, up.size(0), up.size(0)), up));
    EXPECT_TRUE(w.at(p + ".self_attn.k_proj.weight").is_contiguous());
    // Fusing again changes nothing.
    EXPECT_EQ(fuseLlamaProjections(w, cfg.text, "language_model."), 0);
    EXPECT_EQ(storageBytes(w), before);
}

TEST(FusedProjections, BiasesAreFusedWithTheirWeightsOrTheGroupIsLeftAlone) {
    torch::NoGradGuard noGrad;
    io::LlamaConfig cfg = randomLlavaConfig("demo").text;
    cfg.numHiddenLayers = 2;
    cfg.attentionBias = true;
    cfg.qkvBiasOnly = true;
    WeightMap w;
    for (const auto& spec : llamaWeightSpecs(cfg, "")) w[spec.name] = torch::randn(spec.shape);
    // Layer 1's k_proj has no bias while q and v have one: that group cannot be fused.
    w.erase("model.layers.1.self_attn.k_proj.bias");
    const auto qBias = w.at("model.layers.0.self_attn.q_proj.bias").clone();
    const auto vBias = w.at("model.layers.0.self_attn.v_proj.bias").clone();
    EXPECT_EQ(fuseLlamaProjections(w, cfg, ""), 3);
    const auto& bias = w.at("model.layers.0.self_attn.qkv_proj.bias");
    ASSERT_EQ(bias.size(0), qBias.size(0) + 2 * vBias.size(0));
    EXPECT_TRUE(torch::equal(bias.narrow(0, 0, qBias.size(0)), qBias));
    EXPECT_TRUE(torch::equal(bias.narrow(0, bias.size(0) - vBias.size(0), vBias.size(0)), vBias));
    EXPECT_EQ(w.at("model.layers.0.self_attn.v_proj.bias").data_ptr(),
              bias.narrow(0, qBias.size(0) + vBias.size(0), 1).data_ptr());
    EXPECT_FALSE(w.count("model.layers.1.self_attn.qkv_proj.weight"));
    EXPECT_TRUE(w.count("model.layers.1.mlp.gate_up_proj.weight"));

    // A layer built from the fused map computes what one built from separate tensors computes.
    WeightMap separate;
    for (const auto& [name, t] : w)
        if (name.find("qkv_proj") == std::string::npos && name.find("gate_up_proj") == std::string::npos)
            separate[name] = t.clone();
    LlamaDecoderLayer fused(w, "model.layers.0", cfg), plain(separate, "model.layers.0", cfg);
    EXPECT_TRUE(fused->attention()->fused());
    EXPECT_FALSE(plain->attention()->fused());
    RotaryEmbedding rotary(cfg.headDim, cfg.ropeTheta, torch::kCPU);
    const auto x = torch::randn({1, 7, cfg.hiddenSize});
    const auto rope = rotary.table(0, 7, torch::kFloat);
    EXPECT_TENSOR_NEAR(fused->forward(x, rope), plain->forward(x, rope), 1e-5);
    // With gradients (how a twig layer trains) the fused path gives the same values too.
    torch::AutoGradMode grad(true);
    EXPECT_TENSOR_NEAR(fused->forward(x, rope).detach(), plain->forward(x, rope).detach(), 1e-5);
}

}  // namespace
