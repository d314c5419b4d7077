// `sdrpn ask` and `sdrpn roi` on the tiny Qwen2.5-VL fixture (tests/data/fixtures/tiny-qwen2_5-vl): the ask
// dump reproduces the reference's greedy tokens and step logits (fp32, within 1e-4 as the fixtures README
// promises), its prompt ids and image layout, and the SD-RPN path runs end to end with its dump keeping the
// documented names (the RoI grid is the merged grid, the token mask the crop's own grid).
// Needs the sdrpn executable (build the `sdrpn` target first).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "tests/support/test_support.h"

using namespace sdrpn;

namespace {

const std::string kSdrpn = test::sdrpnExecutable();
constexpr double kTolerance = 1e-4;

std::string fixture(const std::string& name = "") {
    return test::fixturePath("tiny-qwen2_5-vl" + (name.empty() ? "" : "/" + name));
}

std::string command(const std::string& verb, const std::string& extra) {
    return kSdrpn + " " + verb + " --model " + fixture() + " --image " + fixture("image_640x480.png") +
           " --question " + test::shellQuote("What is written on the sign?") + " " + extra;
}

nlohmann::json reference() {
    std::ifstream in(fixture("reference.json"));
    return nlohmann::json::parse(in);
}

std::vector<std::int64_t> ids(const torch::Tensor& t) {
    const auto c = t.contiguous();
    return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

class QwenCli : public ::testing::Test {
protected:
    void SetUp() override {
        if (!std::filesystem::exists(kSdrpn))
            GTEST_FAIL() << kSdrpn << " is missing: build the sdrpn target first";
    }
};

// The fixture's logits and step logits were computed at sequential positions (0 .. 424, decoding at 425 ..;
// its `position_ids` are the M-RoPE ones, which the model test checks exactly): --positions sequential
// reproduces them. The default M-RoPE run gives the same greedy tokens.
TEST_F(QwenCli, AskReproducesTheReferenceGreedyTokensAndLogits) {
    const std::string dump = test::scratchDir("qwen_ask") + "/ask.safetensors";
    std::string out;
    ASSERT_EQ(
        test::runCommand(command("ask", "--positions sequential --max-new-tokens 10 --dump " + dump), &out),
        0)
        << out;

    const auto ref = io::SafetensorsArchive::open(fixture("reference.safetensors"));
    const auto d = io::SafetensorsArchive::open(dump);
    EXPECT_EQ(ids(io::loadTensor(*d, "answer_ids")),
              reference().at("greedy_new_tokens").get<std::vector<std::int64_t>>());

    const torch::Tensor stepLogits = io::loadTensor(*d, "step_logits");
    const torch::Tensor expected = io::loadTensor(*ref, "generate.step_logits");
    ASSERT_EQ(stepLogits.sizes(), expected.sizes());
    const double diff = (stepLogits - expected).abs().max().item<double>();
    EXPECT_LT(diff, kTolerance);
    // The first step's logits are the prefill's last row.
    const torch::Tensor logits = io::loadTensor(*ref, "logits");
    EXPECT_LT((io::loadTensor(*d, "last_logits") - logits[logits.size(0) - 1]).abs().max().item<double>(),
              kTolerance);

    // The prompt: the reference's input_ids with the 391 image rows as -1, starting at 21.
    std::vector<std::int64_t> expectedIds = ids(io::loadTensor(*ref, "input_ids"));
    for (std::size_t i = 21; i < 21 + 391; ++i) expectedIds[i] = -1;
    EXPECT_EQ(ids(io::loadTensor(*d, "prompt_ids")), expectedIds);
    EXPECT_EQ(ids(io::loadTensor(*d, "image_token_start")), std::vector<std::int64_t>{21});
    // pixel_values is the smart-resized image (476 x 644) before patching; attention maps cover 391 keys.
    EXPECT_EQ(d->info("pixel_values").shape, (std::vector<std::int64_t>{3, 476, 644}));
    EXPECT_EQ(d->info("attn_last.0").shape, (std::vector<std::int64_t>{4, 391}));
    EXPECT_EQ(d->info("attn_last.3").shape, (std::vector<std::int64_t>{4, 391}));
}

TEST_F(QwenCli, AskWithMropePositionsGivesTheGreedyTokens) {
    const std::string dump = test::scratchDir("qwen_ask_mrope") + "/ask.safetensors";
    std::string out;
    ASSERT_EQ(test::runCommand(command("ask", "--max-new-tokens 10 --dump " + dump), &out), 0) << out;
    const auto d = io::SafetensorsArchive::open(dump);
    EXPECT_EQ(ids(io::loadTensor(*d, "answer_ids")),
              reference().at("greedy_new_tokens").get<std::vector<std::int64_t>>());
    std::string bad;
    EXPECT_NE(test::runCommand(command("ask", "--positions diagonal --max-new-tokens 1"), &bad), 0);
    EXPECT_NE(bad.find("--positions"), std::string::npos) << bad;
}

TEST_F(QwenCli, RoiRunsSdrpnEndToEnd) {
    const std::string dump = test::scratchDir("qwen_roi") + "/roi.safetensors";
    std::string out;
    // An untrained twig from layers 1 .. 2 and a relative threshold (half the peak): there is always a RoI.
    ASSERT_EQ(test::runCommand(
                  command("roi", "--rpn-k 1 --rpn-t 2 --thr -0.5 --max-new-tokens 4 --dump " + dump), &out),
              0)
        << out;
    const auto d = io::SafetensorsArchive::open(dump);
    EXPECT_EQ(d->info("roi_logits").shape, (std::vector<std::int64_t>{17, 23}));  // the merged grid
    EXPECT_EQ(d->info("roi_prob_blurred").shape, (std::vector<std::int64_t>{17, 23}));
    EXPECT_EQ(ids(io::loadTensor(*d, "branch")),
              std::vector<std::int64_t>{2});  // Qwen: always the mask style
    const auto box = ids(io::loadTensor(*d, "src_box"));
    ASSERT_EQ(box.size(), 4u);
    EXPECT_LT(box[0], box[2]);
    EXPECT_LT(box[1], box[3]);
    EXPECT_LE(box[2], 640);
    EXPECT_LE(box[3], 480);
    // The token mask has the crop's own grid; the inserted tokens are the ones it keeps.
    const torch::Tensor mask = io::loadTensor(*d, "roi_token_mask");
    ASSERT_EQ(mask.dim(), 2);
    const std::int64_t kept = mask.to(torch::kLong).sum().item<std::int64_t>();
    EXPECT_GT(kept, 0);
    EXPECT_EQ(ids(io::loadTensor(*d, "n_roi_tokens")), std::vector<std::int64_t>{kept});
    EXPECT_EQ(io::loadTensor(*d, "answer_ids_roi").numel(), 4);
    EXPECT_EQ(io::loadTensor(*d, "answer_ids_baseline").numel(), 4);
}

TEST_F(QwenCli, UnknownImageModeIsNamed) {
    std::string out;
    EXPECT_NE(test::runCommand(command("ask", "--image-mode crop --max-new-tokens 1"), &out), 0);
    EXPECT_NE(out.find("'crop'"), std::string::npos) << out;
}

}  // namespace
