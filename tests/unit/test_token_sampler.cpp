// The token chooser: greedy is the first maximum; a vocabulary limit keeps padding rows out.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "core/models/generation.h"

namespace sdrpn::models {
namespace {

TEST(TokenSampler, GreedyTakesTheFirstMaximum) {
    TokenSampler s(GenerationOptions{});
    EXPECT_EQ(s.next(torch::tensor({0.f, 3.f, 1.f, 3.f})), 1);
}

TEST(TokenSampler, VocabLimitNeverChoosesAPaddingRow) {
    GenerationOptions greedy;
    greedy.vocabLimit = 3;
    EXPECT_EQ(TokenSampler(greedy).next(torch::tensor({0.f, 2.f, 1.f, 9.f, 9.f})), 1);

    GenerationOptions sampled;
    sampled.sample = true;
    sampled.temperature = 1.0;
    sampled.vocabLimit = 2;
    TokenSampler s(sampled);
    for (int i = 0; i < 200; ++i) {
        const std::int64_t t = s.next(torch::tensor({0.f, 0.f, 50.f, 50.f}));
        ASSERT_GE(t, 0);
        ASSERT_LT(t, 2);
    }
}

TEST(TokenSampler, SamplingIsReproducibleFromTheSeed) {
    GenerationOptions o;
    o.sample = true;
    o.seed = 5;
    TokenSampler a(o), b(o);
    const auto logits = torch::arange(16, torch::kFloat) / 4;
    for (int i = 0; i < 20; ++i) EXPECT_EQ(a.next(logits), b.next(logits));
}

}  // namespace
}  // namespace sdrpn::models
