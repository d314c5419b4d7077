// `sdrpn train` on the tiny LLaVA fixture: a store made by `sdrpn label`, a short run that writes the whole
// output folder, resume, --help, and the exit codes of usage errors (2) and failures (1).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/support/test_support.h"

using namespace sdrpn;
namespace fs = std::filesystem;

namespace {

const std::string kSdrpn = test::sdrpnExecutable();

int run(const std::string& args, std::string* output = nullptr) {
    return test::runCommand(kSdrpn + " " + args, output);
}

int countLines(const std::string& path) {
    std::ifstream in(path);
    int n = 0;
    for (std::string line; std::getline(in, line);) n += line.empty() ? 0 : 1;
    return n;
}

}  // namespace

class TrainCli : public ::testing::Test {
protected:
    void SetUp() override {
        if (!fs::exists(kSdrpn)) FAIL() << kSdrpn << " is missing: build the sdrpn target first";
    }
};

TEST_F(TrainCli, LabelThenTrainThenResume) {
    const std::string dir = test::scratchDir("ws");
    const std::string fixture = test::fixturePath("tiny-llava-hf");
    fs::copy_file(fixture + "/image_336.png", dir + "/a.png");
    fs::copy_file(fixture + "/image_640x480.png", dir + "/b.png");
    {
        std::ofstream jsonl(dir + "/questions.jsonl");
        for (int i = 0; i < 4; ++i)
            jsonl << R"({"question_id": "q)" << i << R"(", "image": ")" << (i % 2 ? "b" : "a")
                  << R"(.png", "question": "What is thing number )" << i << R"(?"})"
                  << "\n";
    }
    const std::string settings = dir + "/settings.json";
    std::ofstream(settings) << R"({"preset": "llava-1.5-7b", "grounding": [{"layer": 3, "heads": [1, 2]}],
        "sink": [], "foreground_ratio": 0.9, "background_ratio": 0.5, "max_box_ratio": 1.0})";
    const std::string store = dir + "/labels.sdrpn";
    std::string out;
    ASSERT_EQ(run("label --model " + fixture + " --data " + dir + "/questions.jsonl --images " + dir +
                      " --store " + store + " --settings " + settings + " --max-new-tokens 4 --quiet",
                  &out),
              0)
        << out;

    const std::string runDir = dir + "/run";
    const std::string common = "train --model " + fixture + " --store " + store + " --images " + dir +
                               " --out " + runDir +
                               " --K 3 --T 2 --batch 2 --lr 1e-3 --warmup-ratio 0 --epochs 10";
    ASSERT_EQ(run(common + " --max-steps 3 --log-every 1", &out), 0) << out;
    EXPECT_NE(out.find("step 1/3"), std::string::npos) << out;
    EXPECT_NE(out.find("step 3/3"), std::string::npos) << out;
    EXPECT_NE(out.find(runDir + ": 3 steps on 4 samples (0 skipped)"), std::string::npos) << out;
    for (const char* f : {"model.safetensors", "config.json", "training_args.json", "metrics.jsonl",
                          "checkpoint-3/optimizer.pt", "checkpoint-3/trainer_state.json"})
        EXPECT_TRUE(fs::exists(runDir + "/" + f)) << f;
    EXPECT_EQ(countLines(runDir + "/metrics.jsonl"), 3);

    // The same folder again needs --resume; with it the run goes on to step 5.
    EXPECT_EQ(run(common + " --max-steps 5 --quiet", &out), 1) << out;
    EXPECT_NE(out.find("resume"), std::string::npos) << out;
    ASSERT_EQ(run(common + " --max-steps 5 --quiet --resume", &out), 0) << out;
    EXPECT_NE(out.find("5 steps"), std::string::npos) << out;
    EXPECT_EQ(countLines(runDir + "/metrics.jsonl"), 5);
    EXPECT_TRUE(fs::exists(runDir + "/checkpoint-5/model.safetensors"));

    // The trained twig answers through `sdrpn roi`.
    ASSERT_EQ(run("roi --model " + fixture + " --rpn " + runDir + " --image " + dir +
                      "/a.png --question 'What is this?' --max-new-tokens 2",
                  &out),
              0)
        << out;
}

TEST_F(TrainCli, HelpUsageErrorsAndFailures) {
    std::string out;
    ASSERT_EQ(run("train --help", &out), 0) << out;
    EXPECT_NE(out.find("usage: sdrpn train"), std::string::npos) << out;
    EXPECT_NE(out.find("--resume"), std::string::npos) << out;

    const std::string fixture = test::fixturePath("tiny-llava-hf");
    EXPECT_EQ(run("train --model " + fixture + " --out /tmp/x", &out), 2) << out;  // no --store
    EXPECT_NE(out.find("--store"), std::string::npos) << out;
    EXPECT_EQ(run("train --model " + fixture + " --store s --out o --batch 0", &out), 2) << out;
    EXPECT_NE(out.find("--batch"), std::string::npos) << out;
    EXPECT_EQ(run("train --model " + fixture + " --store s --out o --K 3", &out), 2) << out;
    EXPECT_EQ(run("train --model " + fixture + " --store s --out o --bogus", &out), 2) << out;

    const std::string dir = test::scratchDir("fail");
    EXPECT_EQ(run("train --model " + fixture + " --store " + dir + "/none.sdrpn --out " + dir + "/run", &out),
              1)
        << out;
    EXPECT_NE(out.find(dir + "/none.sdrpn: no such label store"), std::string::npos) << out;
}
