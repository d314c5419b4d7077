// LLaVA-1.5 on CUDA: the tiny-llava-hf fixture in fp32 (parity with the reference, TF32 off) and bf16
// (close to it, greedy and capture work end to end). Skipped where CUDA is not available.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/generation.h"
#include "core/models/llava.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
using namespace sdrpn::models;

namespace {

constexpr std::int64_t kImageStart = 49;
constexpr std::int64_t kImageTokens = 576;
constexpr std::int64_t kSeq = 646;

struct Reference {
    std::map<std::string, torch::Tensor> tensors;
    std::vector<std::int64_t> ids;
    std::vector<std::int64_t> greedy;
};

const Reference& reference() {
    static const Reference ref = [] {
        Reference r;
        const std::string dir = test::fixturePath("tiny-llava-hf");
        r.tensors = io::loadTensors(*io::SafetensorsArchive::open(dir + "/reference.safetensors"));
        auto ids = r.tensors.at("input_ids").contiguous();
        r.ids.assign(ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + ids.numel());
        std::ifstream in(dir + "/reference.json");
        r.greedy = nlohmann::json::parse(in).at("greedy_new_tokens").get<std::vector<std::int64_t>>();
        return r;
    }();
    return ref;
}

class LlavaGpu : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available";
        at::globalContext().setAllowTF32CuBLAS(false);
        at::globalContext().setAllowTF32CuDNN(false);
    }
    std::shared_ptr<const LlavaModel> load() {
        LoadOptions options;
        options.device = "cuda";
        options.dtype = GetParam();
        auto r = tryLoadLlava(test::fixturePath("tiny-llava-hf"), options, JobContext::none());
        EXPECT_TRUE(r.ok()) << r.message();
        return r.ok() ? r.value() : nullptr;
    }
    double tolerance() const { return GetParam() == "fp32" ? 1e-4 : 0.1; }
};

TEST_P(LlavaGpu, PrefillLogitsAndAttentionRows) {
    auto model = load();
    ASSERT_TRUE(model);
    torch::NoGradGuard noGrad;
    const auto& ref = reference();
    auto features = model->encodeImage(ref.tensors.at("pixel_values.336"));
    EXPECT_TRUE(features.is_cuda());
    EXPECT_TENSOR_NEAR(features.to(torch::kCPU, torch::kFloat), ref.tensors.at("projector.out"), tolerance());

    auto ctx = model->newContext();
    CaptureRequest request;
    request.questionTokens = true;
    request.measure = true;
    ctx->setCaptureRequest(request);
    PrefillOptions options;
    options.allLogits = true;
    auto out = model->prefill(*ctx, PromptInput::fromTokenIds(ref.ids, 512, {features}), options);
    EXPECT_TRUE(out.logits.is_cuda());
    EXPECT_EQ(out.logits.scalar_type(), torch::kFloat);
    EXPECT_TENSOR_NEAR(out.logits.cpu(), ref.tensors.at("logits"), GetParam() == "fp32" ? 1e-4 : 0.25);

    AttentionMaps maps = ctx->attentionMaps();
    ASSERT_EQ(maps.layers.size(), 6u);
    ASSERT_EQ(maps.rows.size(), 21u);
    for (int layer = 0; layer < 6; ++layer) {
        auto& v = maps.layers[std::size_t(layer)].values;
        auto got = torch::from_blob(v.data(), {4, 21, kImageTokens}, torch::kFloat);
        auto expected = ref.tensors.at("attn." + std::to_string(layer) + ".text_rows")
                            .narrow(2, kImageStart, kImageTokens);
        EXPECT_TENSOR_NEAR(got, expected, GetParam() == "fp32" ? 1e-4 : 2e-3);
    }
    EXPECT_GT(maps.stats.seconds, 0.0);
    EXPECT_EQ(ctx->length(), kSeq);
}

TEST_P(LlavaGpu, GreedyGeneration) {
    auto model = load();
    ASSERT_TRUE(model);
    torch::NoGradGuard noGrad;
    const auto& ref = reference();
    auto features = model->encodeImage(ref.tensors.at("pixel_values.336"));
    auto ctx = model->newContext();
    CaptureRequest request;
    request.answerTokens = true;
    ctx->setCaptureRequest(request);
    GenerationOptions options;
    options.maxNewTokens = 12;
    auto r = generate(*model, *ctx, PromptInput::fromTokenIds(ref.ids, 512, {features}), options,
                      JobContext::none());
    ASSERT_EQ(r.tokens.size(), 12u);
    if (GetParam() == "fp32") {
        EXPECT_EQ(r.tokens, ref.greedy);
        EXPECT_TENSOR_NEAR(r.stepLogits, ref.tensors.at("generate.step_logits"), 1e-4);
    } else {
        EXPECT_TENSOR_NEAR(r.stepLogits, ref.tensors.at("generate.step_logits"), 0.25);
    }
    EXPECT_EQ(ctx->attentionMaps().rows.size(), 1u + 11u);  // last prompt token + fed-back answer tokens
}

INSTANTIATE_TEST_SUITE_P(Dtypes, LlavaGpu, ::testing::Values(std::string("fp32"), std::string("bf16")),
                         [](const auto& info) { return info.param; });

}  // namespace
