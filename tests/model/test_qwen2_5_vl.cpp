// Qwen2.5-VL parity with the reference implementation on the tiny-qwen2_5-vl fixture (transformers 5.17,
// fp32 eager; weights stored fp16, loaded as fp32), plus the M-RoPE table, the context's positions under
// clone / truncate / completePrefix, explicit positions, loading layouts and the errors for bad input.
//
// About the fixture: its `position_ids` / `rope_deltas` are get_rope_index's M-RoPE positions, and we match
// them exactly; but its `logits`, `hidden.L.last`, `attn.L.text_rows` and `generate.step_logits` were
// computed with plain sequential positions (0 .. 424 on all three streams, decoding at 425 ..): they agree
// with this decoder to ~1e-6 at those positions and differ by up to 0.68 at the M-RoPE ones, while rows
// 0 .. 21 (where both position sets coincide) agree either way. So the decoder parity tests below feed the
// positions the reference used through PromptInput::positions, and the M-RoPE path (positions from the
// grid) is checked against position_ids, against the rows where the positions coincide, against the
// explicit-positions path and against the definition of the table. The M-RoPE logits test is
// DISABLED_ until the fixture is regenerated with input_ids + image_grid_thw reaching the forward.
//
// Tolerance 1e-4 absolute everywhere (fp32 on the CPU). Measured max |diff| (x86-64 CPU, LibTorch 1.13):
//   logits [425, 409] 1.5e-6, hidden.L.last <= 1.2e-6, attention rows 6.1e-9, step logits 1.3e-6,
//   vision.out 3.0e-8, logits from our own vision features 1.8e-6, M-RoPE logits of rows 0 .. 21 1.3e-6.
#include <fstream>
#include <iostream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/io/config.h"
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/generation.h"
#include "core/models/llama.h"
#include "core/models/qwen2_5_vl.h"
#include "core/models/registry.h"
#include "core/models/static_decoder.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
using namespace sdrpn::models;

namespace {

constexpr double kTol = 1e-4;
constexpr std::int64_t kImageStart = 21;
constexpr std::int64_t kImageTokens = 391;
constexpr std::int64_t kSeq = 425;
constexpr std::int64_t kImageTokenId = 407;
const ImageGrid kGrid{17, 23};
const std::array<std::int64_t, 3> kGridThw{1, 34, 46};

// Largest |a - b|, printed next to each parity check so the measured numbers above stay honest.
double maxDiff(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kFloat) - b.to(torch::kFloat)).abs().max().item<double>();
}

std::string errorOf(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(no error)";
}

PromptInput textPrompt(std::vector<std::int64_t> ids) {
    PromptInput p;
    p.ids = std::move(ids);
    return p;
}

class QwenParity : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        torch::NoGradGuard noGrad;
        const std::string dir = test::fixturePath("tiny-qwen2_5-vl");
        auto backbone = loadBackbone(dir, LoadOptions{}, JobContext::none());
        s_model = std::dynamic_pointer_cast<const Qwen2_5VlModel>(backbone);
        s_ref = new std::map<std::string, torch::Tensor>(
            io::loadTensors(*io::SafetensorsArchive::open(dir + "/reference.safetensors")));
        std::ifstream in(dir + "/reference.json");
        s_json = new nlohmann::json(nlohmann::json::parse(in));
    }
    static void TearDownTestSuite() {
        s_model.reset();
        delete s_ref;
        delete s_json;
        delete s_mropeLogits;
        s_mropeLogits = nullptr;
    }
    void SetUp() override { ASSERT_TRUE(s_model) << "loadBackbone did not give a Qwen2_5VlModel"; }

    static const torch::Tensor& ref(const std::string& name) { return s_ref->at(name); }
    static std::vector<std::int64_t> inputIds() {
        auto t = ref("input_ids").contiguous();
        return std::vector<std::int64_t>(t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + t.numel());
    }
    // The prompt with the reference's merger output as the image features; M-RoPE positions from the grid.
    static PromptInput prompt(const torch::Tensor& features = {}) {
        PromptInput p = PromptInput::fromTokenIds(inputIds(), kImageTokenId,
                                                  {features.defined() ? features : ref("vision.out")});
        p.grids = {kGrid};
        return p;
    }
    // The same prompt at the positions the fixture's forward used: 0 .. 424 on all three streams.
    static PromptInput referencePrompt(const torch::Tensor& features = {}) {
        PromptInput p = prompt(features);
        p.positions = torch::arange(kSeq, torch::kLong).repeat({3, 1});
        return p;
    }
    static std::vector<std::int64_t> greedyTokens() {
        return s_json->at("greedy_new_tokens").get<std::vector<std::int64_t>>();
    }
    // All logits of one M-RoPE prefill of prompt() (computed once).
    static const torch::Tensor& mropeLogits() {
        if (!s_mropeLogits) {
            auto ctx = s_model->newContext();
            PrefillOptions options;
            options.allLogits = true;
            s_mropeLogits = new torch::Tensor(s_model->prefill(*ctx, prompt(), options).logits);
        }
        return *s_mropeLogits;
    }
    static torch::Tensor layerTensor(const AttentionMaps& maps, int layer) {
        const int slot = maps.slotOf(layer);
        EXPECT_GE(slot, 0) << "layer " << layer << " not captured";
        if (slot < 0) return {};
        auto& v = maps.layers[std::size_t(slot)].values;
        return torch::from_blob(const_cast<float*>(v.data()),
                                {maps.heads, std::int64_t(maps.rows.size()), maps.imageKeys}, torch::kFloat)
            .clone();
    }

    static std::shared_ptr<const Qwen2_5VlModel> s_model;
    static std::map<std::string, torch::Tensor>* s_ref;
    static nlohmann::json* s_json;
    static torch::Tensor* s_mropeLogits;
};

std::shared_ptr<const Qwen2_5VlModel> QwenParity::s_model;
std::map<std::string, torch::Tensor>* QwenParity::s_ref = nullptr;
nlohmann::json* QwenParity::s_json = nullptr;
torch::Tensor* QwenParity::s_mropeLogits = nullptr;

TEST_F(QwenParity, InfoDescribesTheFixture) {
    const auto& info = s_model->info();
    EXPECT_EQ(info.modelType, "qwen2_5_vl");
    EXPECT_EQ(info.architecture, "Qwen2_5_VLForConditionalGeneration");
    EXPECT_EQ(s_model->layerCount(), 4);
    EXPECT_EQ(s_model->headCount(), 4);
    EXPECT_EQ(info.kvHeads, 2);
    EXPECT_EQ(info.headDim, 16);
    EXPECT_EQ(info.hidden, 64);
    EXPECT_EQ(info.vocab, 409);
    EXPECT_EQ(info.imageTokenId, 407);
    EXPECT_EQ(info.eosTokenId, 403);  // <|im_end|>
    EXPECT_EQ(info.bosTokenId, -1);   // Qwen adds none (the config's 151643 is outside the vocabulary)
    EXPECT_EQ(info.padTokenId, 401);
    EXPECT_EQ(info.imageTokens, 0);
    EXPECT_EQ(s_model->imageGrid(), ImageGrid{});
    EXPECT_EQ(info.imageSize, 0);
    EXPECT_EQ(s_model->visionStartTokenId(), 404);
    EXPECT_EQ(s_model->visionEndTokenId(), 405);
    EXPECT_EQ(s_model->config().mropeSection, (std::vector<int>{2, 3, 3}));
    EXPECT_TRUE(s_model->hasVision());
    // Qwen2 attention: q/k/v with bias, o_proj without.
    EXPECT_TRUE(s_model->config().text.attentionBias);
    EXPECT_TRUE(s_model->config().text.qkvBiasOnly);
    const WeightMap layer = s_model->decoderLayerWeights(0);
    EXPECT_EQ(layer.count("self_attn.q_proj.bias"), 1u);
    EXPECT_EQ(layer.count("self_attn.o_proj.bias"), 0u);
    // The parity tests run the fused q/k/v product (biases included) and the fused gate/up product.
    for (int i = 0; i < s_model->layerCount(); ++i)
        EXPECT_TRUE(s_model->text()->layer(i)->attention()->fused()) << "layer " << i;
    EXPECT_EQ(s_model->info().source, test::fixturePath("tiny-qwen2_5-vl"));
}

TEST_F(QwenParity, RopeIndexMatchesReference) {
    // Raw ids with the image token id, and normalised ids with kImageSlot: exactly position_ids.
    auto raw = qwenRopeIndex(inputIds(), {kGrid}, 0, kImageTokenId);
    EXPECT_TRUE(torch::equal(raw, ref("position_ids")));
    auto slots = inputIds();
    for (auto& id : slots)
        if (id == kImageTokenId) id = kImageSlot;
    auto normalised = qwenRopeIndex(slots, {kGrid});
    EXPECT_TRUE(torch::equal(normalised, ref("position_ids")));
    EXPECT_EQ(normalised.max().item<std::int64_t>() + 1 - kSeq, ref("rope_deltas").item<std::int64_t>());
    // The first image cell, the last one and the text after the image (mllm_reference.md §9).
    EXPECT_EQ(normalised[0][kImageStart].item<std::int64_t>(), 21);
    EXPECT_EQ(normalised[2][kImageStart + 22].item<std::int64_t>(), 21 + 22);
    EXPECT_EQ(normalised[1][kImageStart + kImageTokens - 1].item<std::int64_t>(), 21 + 16);
    EXPECT_EQ(normalised[0][kImageStart + kImageTokens].item<std::int64_t>(), 21 + 23);
    // A later call continues from a start position.
    auto tail = qwenRopeIndex({5, 6}, {}, 100);
    EXPECT_TRUE(torch::equal(tail, torch::tensor({100, 101}, torch::kLong).repeat({3, 1})));
}

TEST_F(QwenParity, MropeTableTakesEachSectionFromItsStream) {
    torch::manual_seed(3);
    auto positions = torch::randint(0, 500, {3, 7}, torch::kLong);
    const std::vector<int> section{2, 3, 3};
    auto rope = mropeTable(positions, 16, 1e6, section, torch::kFloat, torch::kCPU);
    ASSERT_EQ(rope.cos.sizes(), (std::vector<std::int64_t>{7, 16}));
    // Naive: dim k of each stream's cat(freqs, freqs), from the stream of k's section in [2, 3, 3, 2, 3, 3].
    auto invFreq = 1.0 / torch::pow(torch::scalar_tensor(1e6, torch::kFloat),
                                    torch::arange(0, 16, 2, torch::kLong).to(torch::kFloat) / 16.0);
    const int streamOf[16] = {0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 1, 1, 1, 2, 2, 2};
    for (int k = 0; k < 16; ++k) {
        auto angle = positions[streamOf[k]].to(torch::kFloat) * invFreq[k % 8];
        // Vectorised and scalar cos / sin may differ in the last bit.
        EXPECT_TRUE(torch::allclose(rope.cos.select(1, k), angle.cos(), 0, 1e-6)) << "dim " << k;
        EXPECT_TRUE(torch::allclose(rope.sin.select(1, k), angle.sin(), 0, 1e-6)) << "dim " << k;
    }
    // Equal streams: plain RoPE at that position.
    auto plain = RotaryEmbedding(16, 1e6, torch::kCPU).table(40, 5, torch::kFloat);
    auto same = mropeTable(torch::arange(40, 45, torch::kLong).repeat({3, 1}), 16, 1e6, section,
                           torch::kFloat, torch::kCPU);
    EXPECT_TRUE(torch::equal(plain.cos, same.cos));
    EXPECT_TRUE(torch::equal(plain.sin, same.sin));
    auto half = mropeTable(positions, 16, 1e6, section, torch::kHalf, torch::kCPU);
    EXPECT_EQ(half.cos.scalar_type(), torch::kHalf);
}

TEST_F(QwenParity, PrefillLogitsHiddenStatesAndAttentionRows) {
    auto ctx = s_model->newContext();
    CaptureRequest request;  // every layer; the text rows after the image
    request.questionTokens = true;
    ctx->setCaptureRequest(request);
    PrefillOptions options;
    options.allLogits = true;
    for (int k = 0; k <= 4; ++k) options.keepHidden.push_back(k);
    PrefillResult out = s_model->prefill(*ctx, referencePrompt(), options);

    ASSERT_EQ(ctx->length(), kSeq);
    ASSERT_EQ(ctx->imageSpans().size(), 1u);
    EXPECT_EQ(ctx->imageSpans()[0].start, kImageStart);
    EXPECT_EQ(ctx->imageSpans()[0].length, kImageTokens);
    EXPECT_EQ(ctx->imageSpans()[0].grid, kGrid);

    std::cout << "logits max diff " << maxDiff(out.logits, ref("logits")) << "\n";
    EXPECT_TENSOR_NEAR(out.logits, ref("logits"), kTol);
    for (int k = 0; k <= 4; ++k) {
        SCOPED_TRACE("hidden " + std::to_string(k));
        auto h = out.hidden.at(k);
        if (k == 4) h = s_model->text()->finalNorm(h);  // the reference's last entry is after the final norm
        const auto& expected = ref("hidden." + std::to_string(k) + ".last");
        std::cout << "hidden." << k << ".last max diff " << maxDiff(h[kSeq - 1], expected) << "\n";
        EXPECT_TENSOR_NEAR(h[kSeq - 1], expected, kTol);
    }

    AttentionMaps maps = ctx->attentionMaps();
    ASSERT_EQ(maps.layers.size(), 4u);
    ASSERT_EQ(maps.rows.size(), 13u);
    EXPECT_EQ(maps.heads, 4);
    EXPECT_EQ(maps.imageKeys, kImageTokens);
    const auto expectedRows = s_json->at("text_rows_after_image").get<std::vector<std::int64_t>>();
    for (std::size_t r = 0; r < maps.rows.size(); ++r) {
        EXPECT_EQ(maps.rows[r].position, expectedRows[r]);
        EXPECT_EQ(maps.rows[r].kind, r + 1 == maps.rows.size() ? QueryKind::LastPrompt : QueryKind::Question);
    }
    for (int layer = 0; layer < 4; ++layer) {
        SCOPED_TRACE("attention layer " + std::to_string(layer));
        auto got = layerTensor(maps, layer);
        // The reference rows are over all 425 keys; the capture keeps the image columns.
        auto expected =
            ref("attn." + std::to_string(layer) + ".text_rows").narrow(2, kImageStart, kImageTokens);
        std::cout << "attn." << layer << " max diff " << maxDiff(got, expected) << "\n";
        EXPECT_TENSOR_NEAR(got, expected, kTol);
    }
}

TEST_F(QwenParity, GreedyGenerationMatchesReference) {
    auto ctx = s_model->newContext();
    GenerationOptions options;
    options.maxNewTokens = 10;
    GenerationResult r = generate(*s_model, *ctx, referencePrompt(), options, JobContext::none());
    EXPECT_EQ(r.tokens, greedyTokens());
    ASSERT_EQ(r.stepLogits.size(0), 10);
    std::cout << "step logits max diff " << maxDiff(r.stepLogits, ref("generate.step_logits")) << "\n";
    EXPECT_TENSOR_NEAR(r.stepLogits, ref("generate.step_logits"), kTol);
    // The last token is not fed back: 9 decoded rows, each at the next position on all three streams.
    ASSERT_EQ(ctx->length(), kSeq + 9);
    EXPECT_EQ(s_model->ropeDelta(*ctx), 0);
    EXPECT_TRUE(torch::equal(s_model->positions(*ctx), torch::arange(kSeq + 9, torch::kLong).repeat({3, 1})));
}

TEST_F(QwenParity, MropePrefillAgreesWhereThePositionsCoincide) {
    auto ctx = s_model->newContext();
    PrefillOptions options;
    options.allLogits = true;
    auto logits = s_model->prefill(*ctx, prompt(), options).logits;
    EXPECT_TRUE(torch::equal(s_model->positions(*ctx), ref("position_ids")));
    EXPECT_EQ(s_model->ropeDelta(*ctx), ref("rope_deltas").item<std::int64_t>());
    // Rows 0 .. 21 (the text before the image and its first cell) sit at the same positions either way.
    const std::int64_t same = kImageStart + 1;
    std::cout << "M-RoPE rows 0 .. 21 max diff "
              << maxDiff(logits.narrow(0, 0, same), ref("logits").narrow(0, 0, same)) << "\n";
    EXPECT_TENSOR_NEAR(logits.narrow(0, 0, same), ref("logits").narrow(0, 0, same), kTol);
    // Giving position_ids explicitly is the same computation.
    PromptInput explicitPositions = prompt();
    explicitPositions.grids.clear();
    explicitPositions.positions = ref("position_ids");
    auto other = s_model->newContext();
    EXPECT_TRUE(torch::equal(s_model->prefill(*other, explicitPositions, options).logits, logits));
    EXPECT_TRUE(torch::equal(logits, mropeLogits()));
    // Decoded tokens continue at cache index + rope_deltas on all three streams.
    const auto tokens = greedyTokens();
    for (int i = 0; i < 3; ++i) s_model->decodeStep(*ctx, tokens[std::size_t(i)]);
    const std::int64_t delta = ref("rope_deltas").item<std::int64_t>();
    EXPECT_EQ(s_model->ropeDelta(*ctx), delta);
    EXPECT_TRUE(torch::equal(s_model->positions(*ctx).narrow(1, kSeq, 3),
                             torch::arange(kSeq + delta, kSeq + 3 + delta, torch::kLong).repeat({3, 1})));
    // Those text rows take the plain-RoPE table: the same values as the M-RoPE table of their positions.
    auto fast = s_model->ropeRows(*ctx, kSeq, 3, torch::kFloat);
    auto table = mropeTable(s_model->positions(*ctx).narrow(1, kSeq, 3), 16, 1e6, {2, 3, 3}, torch::kFloat,
                            torch::kCPU);
    EXPECT_TRUE(torch::equal(fast.cos, table.cos));
    EXPECT_TRUE(torch::equal(fast.sin, table.sin));
}

// Enable once the fixture's logits are computed at its own position_ids (see the top of this file).
TEST_F(QwenParity, DISABLED_MropeLogitsMatchReference) {
    EXPECT_TENSOR_NEAR(mropeLogits(), ref("logits"), kTol);
    auto ctx = s_model->newContext();
    GenerationOptions options;
    options.maxNewTokens = 10;
    GenerationResult r = generate(*s_model, *ctx, prompt(), options, JobContext::none());
    EXPECT_EQ(r.tokens, greedyTokens());
    EXPECT_TENSOR_NEAR(r.stepLogits, ref("generate.step_logits"), kTol);
}

TEST_F(QwenParity, DecodeStepAndDeviceStepAgree) {
    auto a = s_model->newContext();
    auto logits = s_model->prefill(*a, referencePrompt()).logits;
    EXPECT_TENSOR_NEAR(logits, ref("generate.step_logits")[0], kTol);
    auto b = a->clone();
    const auto tokens = greedyTokens();
    for (int i = 0; i < 3; ++i) {
        SCOPED_TRACE("step " + std::to_string(i));
        auto la = s_model->decodeStep(*a, tokens[std::size_t(i)]);
        auto lb = s_model->decodeStepDevice(*b, torch::tensor({tokens[std::size_t(i)]}, torch::kLong));
        EXPECT_TENSOR_NEAR(la, ref("generate.step_logits")[i + 1], kTol);
        EXPECT_TRUE(torch::equal(la, lb));
    }
    EXPECT_TRUE(torch::equal(s_model->positions(*a), s_model->positions(*b)));
}

TEST_F(QwenParity, StaticDecodeAfterAnImageContinuesAtTheRopeDelta) {
    // The static decoder (what a CUDA graph replays; forced on the CPU here) after an M-RoPE prompt, whose
    // decoded rows sit at cache index + rope_deltas: the same logits and positions as the normal step.
    struct ModeGuard {
        ModeGuard() { setStaticDecodeMode(StaticDecodeMode::Eager); }
        ~ModeGuard() { clearStaticDecodeMode(); }
    } guard;
    const std::int64_t delta = ref("rope_deltas").item<std::int64_t>();
    ASSERT_NE(delta, 0) << "the fixture's prompt should move the positions";
    auto a = s_model->newContext();
    auto logits = s_model->prefill(*a, prompt()).logits;
    auto b = s_model->newContext();
    b->reserve(kSeq + 8);
    EXPECT_TRUE(torch::equal(s_model->prefill(*b, prompt()).logits, logits));
    std::int64_t token = logits.argmax().item<std::int64_t>();
    double worst = 0;
    for (int i = 0; i < 5; ++i) {
        SCOPED_TRACE("step " + std::to_string(i));
        auto la = s_model->decodeStep(*a, token);
        auto lb = s_model->decodeStepDevice(*b, torch::tensor({token}, torch::kLong));
        b->setToken(kSeq + i, token);
        ASSERT_NE(b->backboneState(), nullptr) << "the static decoder was not used";
        EXPECT_TENSOR_NEAR(lb, la, kTol);
        worst = std::max(worst, maxDiff(lb, la));
        token = la.argmax().item<std::int64_t>();
    }
    std::cout << "static decode after M-RoPE max |diff| " << worst << "\n";
    EXPECT_EQ(s_model->ropeDelta(*b), delta);
    EXPECT_TRUE(torch::equal(s_model->positions(*a), s_model->positions(*b)));
    EXPECT_EQ(a->tokens(), b->tokens());
}

TEST_F(QwenParity, VisionTowerAndEndToEndFromPixelValues) {
    torch::NoGradGuard noGrad;
    auto features = s_model->encodePatches(ref("pixel_values"), kGridThw);
    ASSERT_EQ(features.sizes(), (std::vector<std::int64_t>{kImageTokens, 64}));
    std::cout << "vision.out max diff " << maxDiff(features, ref("vision.out")) << "\n";
    EXPECT_TENSOR_NEAR(features, ref("vision.out"), kTol);

    // encodeImage from the normalised CHW image the patch rows were cut from: rows (bh, bw, sh, sw),
    // columns (C, T, py, px) with the two frames equal.
    auto chw = ref("pixel_values")
                   .view({17, 23, 2, 2, 3, 2, 14, 14})
                   .select(5, 0)
                   .permute({4, 0, 2, 5, 1, 3, 6})
                   .reshape({3, 476, 644});
    EXPECT_TRUE(torch::equal(s_model->encodeImage(chw), features));
    auto batch = s_model->encodeImage(chw.unsqueeze(0).repeat({2, 1, 1, 1}));
    ASSERT_EQ(batch.size(0), 2 * kImageTokens);
    EXPECT_TRUE(torch::equal(batch.narrow(0, kImageTokens, kImageTokens), features));
    EXPECT_NE(errorOf([&] {
                  s_model->encodeImage(torch::zeros({3, 476, 640}));
              }).find("multiples of 28"),
              std::string::npos);

    auto ctx = s_model->newContext();
    PrefillOptions options;
    options.allLogits = true;
    auto out = s_model->prefill(*ctx, referencePrompt(features), options);
    std::cout << "end-to-end logits max diff " << maxDiff(out.logits, ref("logits")) << "\n";
    EXPECT_TENSOR_NEAR(out.logits, ref("logits"), kTol);
}

TEST_F(QwenParity, CloneAndTruncateKeepPositions) {
    auto ctx = s_model->newContext();
    s_model->prefill(*ctx, prompt());
    auto copy = ctx->clone();
    ASSERT_NE(dynamic_cast<QwenContext*>(copy.get()), nullptr);
    EXPECT_TRUE(torch::equal(s_model->positions(*copy), ref("position_ids")));
    EXPECT_EQ(s_model->ropeDelta(*copy), ref("rope_deltas").item<std::int64_t>());
    // The copy continues independently.
    s_model->decodeStep(*copy, 86);
    EXPECT_EQ(copy->length(), kSeq + 1);
    EXPECT_EQ(ctx->length(), kSeq);
    EXPECT_EQ(s_model->positions(*ctx).size(1), kSeq);

    // Cut inside the image: positions are cut and the next text position is the largest kept + 1.
    auto cut = ctx->clone();
    cut->truncate(kImageStart + 30);  // cells (0, 0) .. (1, 6)
    auto kept = s_model->positions(*cut);
    ASSERT_EQ(kept.size(1), kImageStart + 30);
    EXPECT_TRUE(torch::equal(kept, ref("position_ids").narrow(1, 0, kImageStart + 30)));
    EXPECT_EQ(static_cast<const QwenContext&>(*cut).nextPosition(), 21 + 22 + 1);

    // Cut after the image and prefill the text again: the same logits as one prefill.
    const std::int64_t keep = 412;
    auto again = ctx->clone();
    again->truncate(keep);
    auto ids = inputIds();
    PrefillOptions options;
    options.allLogits = true;
    auto out = s_model->prefill(*again, textPrompt({ids.begin() + keep, ids.end()}), options);
    EXPECT_TENSOR_NEAR(out.logits, mropeLogits().narrow(0, keep, kSeq - keep), kTol);
    EXPECT_TRUE(torch::equal(s_model->positions(*again), ref("position_ids")));
}

TEST_F(QwenParity, CompletePrefixUsesTheStoredPositions) {
    // SD-RPN pass 1 (layers [0, 2)), then complete the prefix from layer 2: a decode step sees what it sees
    // after a full prefill.
    auto full = s_model->newContext();
    s_model->prefill(*full, prompt());
    auto expected = s_model->decodeStep(*full, greedyTokens()[0]);

    auto ctx = s_model->newContext();
    PrefillOptions partial;
    partial.endLayer = 2;
    partial.computeLogits = false;
    partial.keepHidden = {2};
    auto out = s_model->prefill(*ctx, prompt(), partial);
    s_model->completePrefix(*ctx, out.hidden.at(2), 2, kSeq);
    EXPECT_TRUE(torch::equal(s_model->positions(*ctx), ref("position_ids")));
    EXPECT_TENSOR_NEAR(s_model->decodeStep(*ctx, greedyTokens()[0]), expected, kTol);
}

TEST_F(QwenParity, ExplicitPositionsOfTheWrongShapeAreRefused) {
    PromptInput bad = prompt();
    bad.positions = ref("position_ids").narrow(1, 0, 100);
    auto ctx = s_model->newContext();
    std::string err = errorOf([&] { s_model->prefill(*ctx, bad); });
    EXPECT_NE(err.find("[3, 425]"), std::string::npos) << err;
    EXPECT_EQ(ctx->length(), 0);  // the context is left as it was
    EXPECT_EQ(s_model->positions(*ctx).size(1), 0);
    bad.positions = ref("position_ids").to(torch::kFloat);
    err = errorOf([&] { s_model->prefill(*ctx, bad); });
    EXPECT_NE(err.find("integer"), std::string::npos) << err;
    EXPECT_EQ(ctx->length(), 0);
}

TEST_F(QwenParity, BadImageRowsAreRefused) {
    auto ctx = s_model->newContext();
    // A grid that does not cover the image rows.
    PromptInput wrongGrid = prompt();
    wrongGrid.grids = {ImageGrid{17, 22}};
    std::string err = errorOf([&] { s_model->prefill(*ctx, wrongGrid); });
    EXPECT_NE(err.find("391 rows"), std::string::npos) << err;
    EXPECT_NE(err.find("17 x 22"), std::string::npos) << err;
    EXPECT_EQ(ctx->length(), 0);
    EXPECT_EQ(s_model->positions(*ctx).size(1), 0);
    EXPECT_EQ(static_cast<const QwenContext&>(*ctx).nextPosition(), 0);
    // No grid at all.
    PromptInput noGrid = prompt();
    noGrid.grids.clear();
    err = errorOf([&] { s_model->prefill(*ctx, noGrid); });
    EXPECT_NE(err.find("PromptInput::grids"), std::string::npos) << err;
    EXPECT_EQ(ctx->length(), 0);
    // The context still works after the refusals.
    auto out = s_model->prefill(*ctx, prompt());
    EXPECT_TENSOR_NEAR(out.logits, mropeLogits()[kSeq - 1], 1e-5);  // one row vs all rows of lm_head

    // qwenRopeIndex itself: a run shorter than its grid, a run longer than all grids, grids left over.
    const std::vector<std::int64_t> ids{1, kImageSlot, kImageSlot, kImageSlot, kImageSlot, 2};
    EXPECT_NE(errorOf([&] {
                  qwenRopeIndex(ids, {ImageGrid{2, 3}});
              }).find("only 4 image rows"),
              std::string::npos);
    EXPECT_NE(errorOf([&] {
                  qwenRopeIndex(ids, {ImageGrid{1, 3}});
              }).find("have no merged grid"),
              std::string::npos);
    EXPECT_NE(errorOf([&] {
                  qwenRopeIndex(ids, {ImageGrid{2, 2}, ImageGrid{1, 1}});
              }).find("2 merged grid(s)"),
              std::string::npos);
    EXPECT_NE(errorOf([&] {
                  qwenRopeIndex(ids, {ImageGrid{0, 4}});
              }).find("empty merged grid"),
              std::string::npos);
    // Two images in one run, one after the other.
    auto two = qwenRopeIndex(ids, {ImageGrid{1, 2}, ImageGrid{2, 1}});
    EXPECT_TRUE(torch::equal(
        two,
        torch::tensor({0, 1, 1, 3, 3, 5, 0, 1, 1, 3, 4, 5, 0, 1, 2, 3, 3, 5}, torch::kLong).view({3, 6})));
    // A context from another backbone family is refused by name.
    Context plain(4, 4, torch::kCPU);
    EXPECT_NE(errorOf([&] { s_model->ropeDelta(plain); }).find("newContext"), std::string::npos);
}

TEST_F(QwenParity, BadConfigsAreRefused) {
    const std::string dir = test::fixturePath("tiny-qwen2_5-vl");
    std::ifstream in(dir + "/config.json");
    nlohmann::json config = nlohmann::json::parse(in);
    // mrope_section must sum to head_dim / 2 (8).
    nlohmann::json badSection = config;
    badSection["text_config"]["rope_parameters"]["mrope_section"] = {2, 3, 4};
    std::string err = errorOf([&] { io::parseQwenVlConfig(badSection.dump(), "bad.json"); });
    EXPECT_NE(err.find("mrope_section"), std::string::npos) << err;
    // The model refuses such a config even when built by hand.
    io::QwenVlConfig cfg = io::readQwenVlConfig(dir);
    cfg.mropeSection = {4, 4, 4};
    err = errorOf([&] { std::make_shared<Qwen2_5VlModel>(cfg, WeightMap{}, torch::kCPU, torch::kFloat); });
    EXPECT_NE(err.find("mrope_section [4, 4, 4]"), std::string::npos) << err;
    EXPECT_NE(errorOf([&] {
                  mropeTable(torch::zeros({3, 2}, torch::kLong), 16, 1e6, {2, 3}, torch::kFloat, torch::kCPU);
              }).find("mrope_section"),
              std::string::npos);
    // An image token id outside the vocabulary.
    nlohmann::json badToken = config;
    badToken["image_token_id"] = 5000;
    err = errorOf([&] { io::parseQwenVlConfig(badToken.dump(), "bad.json"); });
    EXPECT_NE(err.find("image_token_id"), std::string::npos) << err;
    // A LLaVA folder is not a Qwen2.5-VL one.
    err = errorOf([&] { loadQwen2_5Vl(test::fixturePath("tiny-llava-hf"), {}, JobContext::none()); });
    EXPECT_NE(err.find("not a Qwen2.5-VL config"), std::string::npos) << err;
}

// ---- loading ---------------------------------------------------------------------------------------------

TEST(QwenLoading, KeyNormaliser) {
    EXPECT_EQ(normaliseQwenVlKey("model.layers.0.self_attn.q_proj.weight"),
              "model.layers.0.self_attn.q_proj.weight");
    EXPECT_EQ(normaliseQwenVlKey("lm_head.weight"), "lm_head.weight");
    EXPECT_EQ(normaliseQwenVlKey("visual.blocks.0.attn.qkv.weight"), "visual.blocks.0.attn.qkv.weight");
    EXPECT_EQ(normaliseQwenVlKey("model.language_model.layers.3.mlp.up_proj.weight"),
              "model.layers.3.mlp.up_proj.weight");
    EXPECT_EQ(normaliseQwenVlKey("model.language_model.embed_tokens.weight"), "model.embed_tokens.weight");
    EXPECT_EQ(normaliseQwenVlKey("model.language_model.norm.weight"), "model.norm.weight");
    EXPECT_EQ(normaliseQwenVlKey("model.visual.merger.mlp.0.weight"), "visual.merger.mlp.0.weight");
    EXPECT_EQ(normaliseQwenVlKey("model.layers.0.self_attn.rotary_emb.inv_freq"), "");
    EXPECT_EQ(normaliseQwenVlKey("visual.rotary_pos_emb.inv_freq"), "");
    EXPECT_EQ(normaliseQwenVlKey("something.else"), "");
}

TEST(QwenLoading, SpecsMatchTheFixtureAndHaveNoOutputProjectionBias) {
    const auto cfg = io::readQwenVlConfig(test::fixturePath("tiny-qwen2_5-vl"));
    const auto specs = qwenVlWeightSpecs(cfg);
    auto archive = io::SafetensorsArchive::open(test::fixturePath("tiny-qwen2_5-vl"));
    std::size_t stored = 0;
    for (const auto& name : archive->names())
        if (!normaliseQwenVlKey(name).empty()) ++stored;
    EXPECT_EQ(specs.size(), stored);  // every stored tensor is expected, and nothing more
    for (const auto& s : specs) {
        EXPECT_EQ(s.name.find("o_proj.bias"), std::string::npos) << s.name;
        ASSERT_TRUE(archive->contains(s.name)) << s.name;
    }
}

TEST(QwenLoading, TransformersLayoutLoadsTheSameModel) {
    torch::NoGradGuard noGrad;
    const std::string src = test::fixturePath("tiny-qwen2_5-vl");
    const std::string dir = test::scratchDir("qwen-transformers");
    auto tensors = io::loadTensors(*io::SafetensorsArchive::open(src + "/model.safetensors"));
    std::vector<std::pair<std::string, torch::Tensor>> renamed;
    for (const auto& [name, t] : tensors) {
        std::string key = name;
        if (key.rfind("visual.", 0) == 0)
            key = "model." + key;
        else if (key.rfind("model.", 0) == 0)
            key = "model.language_model." + key.substr(6);
        renamed.emplace_back(key, t);
    }
    renamed.emplace_back("model.language_model.rotary_emb.inv_freq", torch::ones({8}));
    io::saveTensors(dir + "/model.safetensors", renamed);
    {
        std::ifstream in(src + "/config.json");
        std::ofstream out(dir + "/config.json");
        out << in.rdbuf();
    }
    auto a = loadQwen2_5Vl(src, {}, JobContext::none());
    auto b = loadQwen2_5Vl(dir, {}, JobContext::none());
    const std::vector<std::int64_t> ids{402, 8, 9, 10, 403};
    auto ca = a->newContext();
    auto cb = b->newContext();
    EXPECT_TRUE(
        torch::equal(a->prefill(*ca, textPrompt(ids)).logits, b->prefill(*cb, textPrompt(ids)).logits));
}

TEST(QwenLoading, MissingAndMismatchedTensorsAreNamed) {
    const std::string src = test::fixturePath("tiny-qwen2_5-vl");
    const std::string dir = test::scratchDir("qwen-broken");
    auto tensors = io::loadTensors(*io::SafetensorsArchive::open(src + "/model.safetensors"));
    std::vector<std::pair<std::string, torch::Tensor>> kept;
    for (const auto& [name, t] : tensors) {
        if (name == "model.layers.2.self_attn.k_proj.bias" || name == "visual.merger.ln_q.weight") continue;
        kept.emplace_back(name, name == "lm_head.weight" ? t.narrow(0, 0, 400).contiguous() : t);
    }
    io::saveTensors(dir + "/model.safetensors", kept);
    {
        std::ifstream in(src + "/config.json");
        std::ofstream out(dir + "/config.json");
        out << in.rdbuf();
    }
    auto r = tryLoadQwen2_5Vl(dir, {}, JobContext::none());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code, StatusCode::Failed);
    const std::string& msg = r.status().message;
    EXPECT_NE(msg.find(dir), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.layers.2.self_attn.k_proj.bias"), std::string::npos) << msg;
    EXPECT_NE(msg.find("visual.merger.ln_q.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("lm_head.weight"), std::string::npos) << msg;

    auto missing = tryLoadBackbone("/nonexistent/qwen", {}, JobContext::none());
    ASSERT_FALSE(missing.ok());
    EXPECT_NE(missing.status().message.find("/nonexistent/qwen"), std::string::npos);
}

TEST(QwenLoading, ProgressAndCancel) {
    const std::string dir = test::fixturePath("tiny-qwen2_5-vl");
    JobContext job;
    Progress last;
    job.onProgress = [&](const Progress& p) { last = p; };
    auto ok = tryLoadQwen2_5Vl(dir, {}, job);
    ASSERT_TRUE(ok.ok()) << ok.status().message;
    EXPECT_EQ(last.done, last.total);

    JobContext cancelling;
    int reports = 0;
    cancelling.onProgress = [&](const Progress& p) {
        if (p.total > 0 && p.done > 0 && ++reports == 3) cancelling.requestCancel();
    };
    auto r = tryLoadQwen2_5Vl(dir, {}, cancelling);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status().code, StatusCode::Cancelled);
}

TEST(QwenLoading, Bf16LoadRunsCloseToFp32) {
    // The checkpoint is fp16; bf16 compute drifts from the fp32 reference, but stays recognisably close.
    LoadOptions options;
    options.dtype = "bf16";
    auto model = loadQwen2_5Vl(test::fixturePath("tiny-qwen2_5-vl"), options, JobContext::none());
    EXPECT_EQ(model->info().dtype, torch::kBFloat16);
    auto ctx = model->newContext();
    const std::vector<std::int64_t> ids{402, 8, 9, 10, 403};
    auto logits = model->prefill(*ctx, textPrompt(ids)).logits;
    EXPECT_EQ(logits.scalar_type(), torch::kFloat);
    EXPECT_EQ(logits.size(0), 409);
    EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
}

}  // namespace
