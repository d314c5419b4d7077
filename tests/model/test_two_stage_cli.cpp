// `sdrpn roi` end to end on the tiny LLaVA fixture: the --dump file has the documented names, dtypes and
// shapes, a saved RPN checkpoint reproduces the twiginit run, and bad inputs get messages naming the culprit.
// Needs the sdrpn executable (build the `sdrpn` target first).
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/llava.h"
#include "core/sdrpn/rpn.h"
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

std::string roiCommand(const std::string& extra) {
    const std::string fixture = test::fixturePath("tiny-llava-hf");
    return kSdrpn + " roi --model " + fixture + " --image " + fixture + "/image_640x480.png --question " +
           quote("What is written on the sign?") + " --max-new-tokens 4 " + extra;
}

class RoiCli : public ::testing::Test {
protected:
    void SetUp() override {
        if (!std::filesystem::exists(kSdrpn))
            GTEST_FAIL() << kSdrpn << " is missing: build the sdrpn target first";
    }
};

void expectShape(const io::SafetensorsArchive& a, const std::string& name, io::DType dtype,
                 std::vector<std::int64_t> shape) {
    ASSERT_TRUE(a.contains(name)) << name;
    EXPECT_EQ(io::dtypeName(a.info(name).dtype), std::string(io::dtypeName(dtype))) << name;
    EXPECT_EQ(a.info(name).shape, shape) << name;
}

TEST_F(RoiCli, DumpHasTheDocumentedNamesAndShapes) {
    const std::string dump = test::scratchDir() + "/roi.safetensors";
    std::string out;
    ASSERT_EQ(run(roiCommand("--rpn-k 3 --rpn-t 2 --thr 0.15 --dump " + dump), &out), 0) << out;
    EXPECT_NE(out.find("baseline:"), std::string::npos) << out;
    EXPECT_NE(out.find("roi:"), std::string::npos) << out;
    EXPECT_NE(out.find("pass 2"), std::string::npos) << out;

    auto d = io::SafetensorsArchive::open(dump);
    expectShape(*d, "roi_logits", io::DType::F32, {24, 24});
    expectShape(*d, "roi_prob_blurred", io::DType::F32, {24, 24});
    expectShape(*d, "branch", io::DType::I64, {1});
    expectShape(*d, "src_box", io::DType::I64, {4});
    expectShape(*d, "n_roi_tokens", io::DType::I64, {1});
    expectShape(*d, "roi_token_mask", io::DType::U8, {24, 24});
    expectShape(*d, "timings_ms", io::DType::F32, {5});
    ASSERT_TRUE(d->contains("components"));
    EXPECT_EQ(d->info("components").dtype, io::DType::I64);
    ASSERT_EQ(d->info("components").shape.size(), 2u);
    EXPECT_EQ(d->info("components").shape[1], 4);
    for (const char* name : {"answer_ids_baseline", "answer_ids_roi"}) {
        ASSERT_TRUE(d->contains(name)) << name;
        EXPECT_EQ(d->info(name).dtype, io::DType::I64);
        ASSERT_EQ(d->info(name).shape.size(), 1u);
        EXPECT_GE(d->info(name).shape[0], 1);
        EXPECT_LE(d->info(name).shape[0], 4);
    }

    torch::Tensor logits = io::loadTensor(*d, "roi_logits");
    EXPECT_TRUE(logits.isfinite().all().item<bool>());
    torch::Tensor blurred = io::loadTensor(*d, "roi_prob_blurred");
    EXPECT_TRUE(((blurred >= 0) & (blurred <= 1)).all().item<bool>());
    const std::int64_t branch = io::loadTensor(*d, "branch").item<std::int64_t>();
    EXPECT_GE(branch, 0);
    EXPECT_LE(branch, 2);
    const std::int64_t n = io::loadTensor(*d, "n_roi_tokens").item<std::int64_t>();
    EXPECT_EQ(n, io::loadTensor(*d, "roi_token_mask").to(torch::kLong).sum().item<std::int64_t>());
    if (branch == 0) {
        EXPECT_EQ(n, 0);
    } else if (branch == 1) {
        EXPECT_EQ(n, 576);
    }
    EXPECT_TRUE((io::loadTensor(*d, "timings_ms") >= 0).all().item<bool>());
}

TEST_F(RoiCli, SavedCheckpointReproducesTwigInit) {
    // The same twig through --rpn: identical RoI logits and answers.
    const std::string ckpt = test::scratchDir("ckpt") + "/rpn";
    {
        torch::NoGradGuard noGrad;
        auto model = models::loadLlava(test::fixturePath("tiny-llava-hf"), {}, JobContext::none());
        saveRpn(initRpnFromBackbone(*model, {3, 2, true}), ckpt);
    }
    const std::string dir = test::scratchDir();
    std::string out;
    ASSERT_EQ(run(roiCommand("--rpn-k 3 --rpn-t 2 --no-baseline --dump " + dir + "/a.safetensors"), &out), 0)
        << out;
    ASSERT_EQ(
        run(roiCommand("--rpn " + ckpt + " --no-baseline --no-kv-reuse --dump " + dir + "/b.safetensors"),
            &out),
        0)
        << out;
    auto a = io::SafetensorsArchive::open(dir + "/a.safetensors");
    auto b = io::SafetensorsArchive::open(dir + "/b.safetensors");
    EXPECT_TRUE(torch::equal(io::loadTensor(*a, "roi_logits"), io::loadTensor(*b, "roi_logits")));
    EXPECT_TRUE(torch::equal(io::loadTensor(*a, "answer_ids_roi"), io::loadTensor(*b, "answer_ids_roi")));
    EXPECT_EQ(io::loadTensor(*a, "answer_ids_baseline").numel(), 0);
}

TEST_F(RoiCli, BadInputsGetClearMessages) {
    const std::string fixture = test::fixturePath("tiny-llava-hf");
    std::string out;
    EXPECT_EQ(run(roiCommand(""), &out), 2);  // no RPN
    EXPECT_NE(out.find("--rpn"), std::string::npos) << out;
    EXPECT_EQ(run(roiCommand("--rpn-k 3"), &out), 2);
    EXPECT_NE(out.find("--rpn-t"), std::string::npos) << out;
    EXPECT_EQ(run(roiCommand("--rpn /x --rpn-k 3 --rpn-t 2"), &out), 2);
    EXPECT_NE(out.find("not both"), std::string::npos) << out;
    EXPECT_EQ(run(roiCommand("--rpn-k 0 --rpn-t 2"), &out), 2);
    EXPECT_NE(out.find("--rpn-k"), std::string::npos) << out;
    EXPECT_EQ(run(roiCommand("--rpn-k 5 --rpn-t 2"), &out), 1);
    EXPECT_NE(out.find("K + T"), std::string::npos) << out;
    EXPECT_EQ(run(roiCommand("--rpn /nonexistent-rpn"), &out), 1);
    EXPECT_NE(out.find("/nonexistent-rpn"), std::string::npos) << out;
    EXPECT_EQ(run(roiCommand("--rpn-k 3 --rpn-t 2 --thr 2"), &out), 2);
    EXPECT_NE(out.find("threshold"), std::string::npos) << out;
    EXPECT_EQ(run(roiCommand("--rpn-k 3 --rpn-t 2 --preset mmmu"), &out), 2);
    EXPECT_NE(out.find("mmmu"), std::string::npos) << out;
    EXPECT_EQ(run(roiCommand("--rpn-k 3 --rpn-t 2 --roi-settings /nonexistent.json"), &out), 2);
    EXPECT_NE(out.find("/nonexistent.json"), std::string::npos) << out;
    EXPECT_EQ(run(kSdrpn + " roi --model " + fixture +
                      " --image /nonexistent.png --question hi --rpn-k 3 --rpn-t 2",
                  &out),
              1);
    EXPECT_NE(out.find("/nonexistent.png"), std::string::npos) << out;
    EXPECT_EQ(
        run(kSdrpn + " roi --model " + fixture + " --image " + fixture + "/image_336.png --rpn-k 3 --rpn-t 2",
            &out),
        2);
    EXPECT_NE(out.find("--question"), std::string::npos) << out;
    EXPECT_EQ(run(roiCommand("--rpn-k 3 --rpn-t 2 --bogus"), &out), 2);
    EXPECT_NE(out.find("--bogus"), std::string::npos) << out;
    EXPECT_EQ(run(kSdrpn + " roi --help", &out), 0);
    EXPECT_NE(out.find("--rpn-k"), std::string::npos) << out;
}

}  // namespace
