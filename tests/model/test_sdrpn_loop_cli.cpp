// The whole SD-RPN loop through the command line on the tiny LLaVA fixture, as a user runs it: a question
// set the CLI makes (images, answers, boxes), `label`, `train` (the loss falls), `roi` with the trained twig,
// and `eval` (both answers scored, RoI IoU for every sample with a box).
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
namespace fs = std::filesystem;

namespace {

const std::string kSdrpn = test::sdrpnExecutable();

int run(const std::string& args, std::string* output = nullptr) {
    return test::runCommand(kSdrpn + " " + args, output);
}

std::vector<nlohmann::json> readJsonLines(const std::string& path) {
    std::vector<nlohmann::json> out;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    return out;
}

}  // namespace

TEST(SdrpnLoopCli, LabelTrainRoiEvaluate) {
    if (!fs::exists(kSdrpn)) FAIL() << kSdrpn << " is missing: build the sdrpn target first";
    const std::string dir = test::scratchDir("loop");
    const std::string model = test::fixturePath("tiny-llava-hf");
    std::string out;

    // 1. A small question set with ground-truth boxes.
    ASSERT_EQ(run("make-demo-data " + dir + "/data --count 6 --min-side 96 --max-side 160", &out), 0) << out;
    const std::string data = dir + "/data/questions.jsonl";
    ASSERT_TRUE(fs::exists(data));

    // 2. Label. The fixture's random heads spread their attention: keep the top cells as foreground.
    const std::string settings = dir + "/settings.json";
    std::ofstream(settings) << R"({"preset": "llava-1.5-7b", "grounding": [{"layer": 3, "heads": []}],
        "sink": [], "foreground_ratio": 0.8, "background_ratio": 0.4, "max_box_ratio": 1.0})";
    const std::string store = dir + "/labels.sdrpn";
    ASSERT_EQ(run("label --model " + model + " --data " + data + " --images " + dir + "/data --store " +
                      store + " --settings " + settings + " --image-mode pad --max-new-tokens 4 --quiet",
                  &out),
              0)
        << out;
    EXPECT_NE(out.find("labeled 6"), std::string::npos) << out;

    // 3. Train: 6 samples, batch 3, 10 epochs = 20 steps; the loss must fall well below where it started.
    const std::string rpn = dir + "/rpn";
    ASSERT_EQ(run("train --model " + model + " --store " + store + " --images " + dir + "/data --out " + rpn +
                      " --K 3 --T 2 --batch 3 --epochs 10 --lr 2e-3 --warmup-ratio 0.1 --quiet",
                  &out),
              0)
        << out;
    const auto metrics = readJsonLines(rpn + "/metrics.jsonl");
    ASSERT_EQ(metrics.size(), 20u);
    double first = 0, last = 0;
    for (int i = 0; i < 4; ++i) {
        first += metrics[std::size_t(i)]["loss"].get<double>() / 4;
        last += metrics[metrics.size() - 1 - std::size_t(i)]["loss"].get<double>() / 4;
    }
    EXPECT_LT(last, 0.7 * first) << "first steps " << first << ", last steps " << last;
    for (const auto& m : metrics) EXPECT_GT(m["valid_cells"].get<std::int64_t>(), 0);

    // 4. One question through both passes with the trained twig.
    ASSERT_EQ(run("roi --model " + model + " --rpn " + rpn + " --image " + dir +
                      "/data/images/demo_0000.png --question 'What is this?' --image-mode pad "
                      "--max-new-tokens 3 --dump " +
                      dir + "/roi.safetensors",
                  &out),
              0)
        << out;
    auto dump = io::SafetensorsArchive::open(dir + "/roi.safetensors");
    EXPECT_TRUE(torch::isfinite(io::loadTensor(*dump, "roi_logits")).all().item<bool>());

    // 5. Evaluate: every sample scored twice, IoU for every sample (all have boxes).
    ASSERT_EQ(run("eval --model " + model + " --rpn " + rpn + " --data " + data + " --images " + dir +
                      "/data --image-mode pad --max-new-tokens 3 --quiet --json " + dir +
                      "/eval.json --markdown " + dir + "/eval.md",
                  &out),
              0)
        << out;
    std::ifstream in(dir + "/eval.json");
    const nlohmann::json report = nlohmann::json::parse(in);
    const auto& s = report.at("summary");
    EXPECT_EQ(s.at("count").get<int>(), 6);
    EXPECT_EQ(s.at("scored").get<int>(), 6);
    EXPECT_EQ(s.at("box_count").get<int>(), 6);
    EXPECT_GE(s.at("mean_iou").get<double>(), 0.0);
    EXPECT_LE(s.at("mean_iou").get<double>(), 1.0);
    EXPECT_GT(s.at("throughput_ratio").get<double>(), 0.0);
    ASSERT_EQ(report.at("samples").size(), 6u);
    std::ifstream md(dir + "/eval.md");
    std::stringstream mds;
    mds << md.rdbuf();
    EXPECT_NE(mds.str().find("| SD-RPN |"), std::string::npos) << mds.str();
}
