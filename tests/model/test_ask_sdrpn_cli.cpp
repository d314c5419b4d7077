// `sdrpn ask --sdrpn` on the tiny LLaVA fixture: the streamed answer is SD-RPN's RoI answer (the same as
// `sdrpn roi`'s), the RoI goes to stderr, the RPN comes from --rpn-k/--rpn-t, --rpn or the model folder
// itself when it is an SD-RPN checkpoint, and bad inputs get usage errors. Needs the sdrpn executable.
#include <filesystem>

#include <gtest/gtest.h>

#include "core/io/safetensors.h"
#include "tests/support/llava_layouts.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
namespace fs = std::filesystem;

namespace {

const std::string kSdrpn = test::sdrpnExecutable();

std::string fixture() {
    return test::fixturePath("tiny-llava-hf");
}

std::string command(const std::string& sub, const std::string& modelDir, const std::string& extra) {
    return kSdrpn + " " + sub + " --model " + modelDir + " --image " + fixture() +
           "/image_640x480.png --question " + test::shellQuote("What is written on the sign?") +
           " --max-new-tokens 4 " + extra;
}

// The answer line of `sdrpn roi --no-baseline --quiet` ("roi:      <answer>").
std::string roiAnswer(const std::string& rpnOptions) {
    std::string out;
    EXPECT_EQ(test::runCommand(command("roi", fixture(), rpnOptions + " --no-baseline --quiet"), &out), 0)
        << out;
    const std::string prefix = "roi:      ";
    EXPECT_EQ(out.rfind(prefix, 0), 0u) << out;
    return out.size() >= prefix.size() ? out.substr(prefix.size()) : out;
}

// A copy of the fixture with a twiginit twig (K=3, T=2) inside, as the released "-filled" checkpoints.
std::string filledCheckpoint() {
    return test::writeFilledCheckpoint(test::scratchDir("filled") + "/model");
}

class AskSdrpnCli : public ::testing::Test {
protected:
    void SetUp() override {
        if (!fs::exists(kSdrpn)) GTEST_FAIL() << kSdrpn << " is missing: build the sdrpn target first";
    }
};

TEST_F(AskSdrpnCli, StreamsTheRoiAnswerAndReportsTheRoi) {
    std::string out;
    ASSERT_EQ(test::runCommand(command("ask", fixture(), "--sdrpn --rpn-k 3 --rpn-t 2 --thr 0.15"), &out), 0)
        << out;
    EXPECT_NE(out.find("RoI: "), std::string::npos) << out;
    EXPECT_NE(out.find("RoI tokens"), std::string::npos) << out;
    EXPECT_NE(out.find("RPN K=3 T=2"), std::string::npos) << out;

    // --quiet: only the answer, and it is `sdrpn roi`'s RoI answer.
    ASSERT_EQ(test::runCommand(command("ask", fixture(), "--sdrpn --rpn-k 3 --rpn-t 2 --quiet"), &out), 0)
        << out;
    EXPECT_EQ(out, roiAnswer("--rpn-k 3 --rpn-t 2"));
}

TEST_F(AskSdrpnCli, DumpIsTheTwoStageDump) {
    const std::string dump = test::scratchDir() + "/ask.safetensors";
    std::string out;
    ASSERT_EQ(test::runCommand(
                  command("ask", fixture(), "--sdrpn --rpn-k 3 --rpn-t 2 --quiet --dump " + dump), &out),
              0)
        << out;
    auto d = io::SafetensorsArchive::open(dump);
    for (const char* name : {"roi_logits", "branch", "src_box", "n_roi_tokens", "answer_ids_roi"})
        EXPECT_TRUE(d->contains(name)) << name;
    EXPECT_EQ(d->info("answer_ids_baseline").shape, (std::vector<std::int64_t>{0}));  // no baseline
}

TEST_F(AskSdrpnCli, ModelFolderThatIsACheckpointNeedsNoRpnOption) {
    const std::string filled = filledCheckpoint();
    std::string out;
    ASSERT_EQ(test::runCommand(command("ask", filled, "--sdrpn"), &out), 0) << out;
    EXPECT_NE(out.find("the model folder"), std::string::npos) << out;
    ASSERT_EQ(test::runCommand(command("ask", filled, "--sdrpn --quiet"), &out), 0) << out;
    EXPECT_EQ(out, roiAnswer("--rpn-k 3 --rpn-t 2"));
}

TEST_F(AskSdrpnCli, BadInputsAreUsageErrors) {
    std::string out;
    EXPECT_EQ(test::runCommand(command("ask", fixture(), "--sdrpn"), &out), 2);  // no RPN anywhere
    EXPECT_NE(out.find("--rpn"), std::string::npos) << out;
    EXPECT_NE(out.find("not an SD-RPN checkpoint"), std::string::npos) << out;
    EXPECT_EQ(test::runCommand(command("ask", fixture(), "--rpn-k 3 --rpn-t 2"), &out), 2);
    EXPECT_NE(out.find("needs --sdrpn"), std::string::npos) << out;
    EXPECT_EQ(test::runCommand(command("ask", fixture(), "--sdrpn --rpn-k 3"), &out), 2);
    EXPECT_NE(out.find("--rpn-t"), std::string::npos) << out;
    EXPECT_EQ(test::runCommand(command("ask", fixture(), "--sdrpn --rpn-k 3 --rpn-t 2 --thr 2"), &out), 2);
    EXPECT_NE(out.find("threshold"), std::string::npos) << out;
    EXPECT_EQ(test::runCommand(command("ask", fixture(), "--sdrpn --rpn-k 3 --rpn-t 2 --layers 1"), &out), 2);
    EXPECT_NE(out.find("--layers"), std::string::npos) << out;
    EXPECT_EQ(test::runCommand(command("ask", fixture(), "--sdrpn --rpn /nonexistent-rpn"), &out), 1);
    EXPECT_NE(out.find("/nonexistent-rpn"), std::string::npos) << out;
    EXPECT_EQ(test::runCommand(kSdrpn + " ask --help", &out), 0);
    EXPECT_NE(out.find("--sdrpn"), std::string::npos) << out;
    EXPECT_NE(out.find("--roi-preset"), std::string::npos) << out;
}

}  // namespace
