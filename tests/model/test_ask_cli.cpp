// `sdrpn ask` end to end on the tiny LLaVA fixture: the reference's prompt reproduces its greedy tokens,
// logits and attention maps, and the --dump file has the documented names and shapes.
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "tests/support/test_support.h"

using namespace sdrpn;

namespace {

std::string quote(const std::string& s) {
    return test::shellQuote(s);
}
int run(const std::string& command, std::string* output = nullptr) {
    return test::runCommand(command, output);
}
const std::string kSdrpn = test::sdrpnExecutable();

}  // namespace

TEST(AskCli, ReproducesReferenceGreedyTokensLogitsAndMaps) {
    const std::string fixture = test::fixturePath("tiny-llava-hf");
    nlohmann::json ref;
    std::ifstream(fixture + "/reference.json") >> ref;
    const std::string dump = test::scratchDir() + "/dump.safetensors";
    std::string out;
    ASSERT_EQ(
        run(kSdrpn + " ask --model " + fixture + " --image " + fixture + "/image_336.png --raw-prompt " +
                quote(ref["prompt"].get<std::string>()) + " --max-new-tokens 12 --dump " + dump,
            &out),
        0)
        << out;

    auto d = io::SafetensorsArchive::open(dump);
    auto r = io::SafetensorsArchive::open(fixture + "/reference.safetensors");

    // Prompt ids: the reference's, with the image rows set to -1.
    torch::Tensor ids = io::loadTensor(*r, "input_ids").flatten().clone();
    const std::int64_t start = ref["image_token_start"].get<std::int64_t>();
    ids.slice(0, start, start + 576).fill_(-1);
    EXPECT_TRUE(torch::equal(io::loadTensor(*d, "prompt_ids"), ids));
    EXPECT_EQ(io::loadTensor(*d, "image_token_start").item<std::int64_t>(), start);

    EXPECT_TENSOR_NEAR(io::loadTensor(*d, "pixel_values"), io::loadTensor(*r, "pixel_values.336"), 1e-5);

    // Greedy tokens equal; last-position logits and every step's logits within 1e-4.
    std::vector<std::int64_t> expected = ref["greedy_new_tokens"].get<std::vector<std::int64_t>>();
    torch::Tensor answer = io::loadTensor(*d, "answer_ids");
    EXPECT_TRUE(torch::equal(answer, torch::tensor(expected, torch::kLong))) << answer;
    torch::Tensor logits = io::loadTensor(*r, "logits");
    EXPECT_TENSOR_NEAR(io::loadTensor(*d, "last_logits"), logits[logits.size(0) - 1], 1e-4);
    EXPECT_TENSOR_NEAR(io::loadTensor(*d, "step_logits"), io::loadTensor(*r, "generate.step_logits"), 1e-4);

    // Attention of the last prompt token to the image, every layer.
    for (int layer = 0; layer < 6; ++layer) {
        const std::string l = std::to_string(layer);
        EXPECT_TENSOR_NEAR(io::loadTensor(*d, "attn_last." + l),
                           io::loadTensor(*r, "attn." + l + ".last_to_image"), 1e-4);
        torch::Tensor answerMap = io::loadTensor(*d, "attn_answer." + l);
        EXPECT_EQ(answerMap.sizes(), (std::vector<std::int64_t>{4, 576})) << l;
        EXPECT_TRUE(answerMap.isfinite().all().item<bool>());
    }
}

TEST(AskCli, BadInputsGetClearMessages) {
    const std::string fixture = test::fixturePath("tiny-llava-hf");
    std::string out;
    EXPECT_EQ(run(kSdrpn + " ask --model " + fixture + " --image /nonexistent.png --question hi", &out), 1);
    EXPECT_NE(out.find("/nonexistent.png"), std::string::npos) << out;

    EXPECT_EQ(
        run(kSdrpn + " ask --model /nonexistent-model --image " + fixture + "/image_336.png --question hi",
            &out),
        1);
    EXPECT_NE(out.find("/nonexistent-model"), std::string::npos) << out;

    EXPECT_EQ(run(kSdrpn + " ask --model " + fixture + " --image " + fixture + "/image_336.png", &out), 2);
    EXPECT_NE(out.find("--question"), std::string::npos) << out;

    EXPECT_EQ(run(kSdrpn + " ask --model " + fixture + " --image " + fixture +
                      "/image_336.png --question hi --bogus",
                  &out),
              2);
    EXPECT_NE(out.find("--bogus"), std::string::npos) << out;

    EXPECT_EQ(run(kSdrpn + " ask --model " + fixture + " --image " + fixture +
                      "/image_336.png --raw-prompt 'no placeholder here'",
                  &out),
              1);
    EXPECT_NE(out.find("<image>"), std::string::npos) << out;
}
