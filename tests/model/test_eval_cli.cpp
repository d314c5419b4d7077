// `sdrpn eval` end to end on the tiny LLaVA fixture with a twiginit RPN: exit codes, the Markdown summary on
// stdout, the JSON and Markdown files with their keys and rows, skipped images, and messages naming the
// culprit. Needs the sdrpn executable (build the `sdrpn` target first).
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

using namespace sdrpn;

namespace {

const std::string kSdrpn = test::sdrpnExecutable();

std::string readFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

class EvalCli : public ::testing::Test {
protected:
    void SetUp() override {
        if (!std::filesystem::exists(kSdrpn))
            GTEST_FAIL() << kSdrpn << " is missing: build the sdrpn target first";
        m_dir = test::scratchDir("evalcli");
        std::filesystem::copy_file(m_fixture + "/image_640x480.png", m_dir + "/sign.png");
        std::ofstream out(m_dir + "/set.jsonl");
        out << R"({"question_id": "s1", "image": "sign.png", "question": "What is written on the sign?", )"
               R"("answer": "stop", "bbox": [100, 80, 300, 240]})"
            << "\n"
            << R"({"question_id": "s2", "image": "sign.png", "question": "What colour is the sign?", )"
               R"("answers": ["red", "red", "white"]})"
            << "\n"
            << R"({"question_id": "gone", "image": "missing.png", "question": "Q?", "answer": "x"})"
            << "\n";
    }

    std::string evalCommand(const std::string& extra) const {
        return kSdrpn + " eval --model " + m_fixture + " --data " + m_dir + "/set.jsonl --images " + m_dir +
               " --max-new-tokens 3 " + extra;
    }

    const std::string m_fixture = test::fixturePath("tiny-llava-hf");
    std::string m_dir;
};

TEST_F(EvalCli, WritesJsonAndMarkdownAndPrintsTheSummary) {
    const std::string json = m_dir + "/eval.json";
    const std::string md = m_dir + "/eval.md";
    std::string out;
    ASSERT_EQ(test::runCommand(evalCommand("--rpn-k 3 --rpn-t 2 --roi-preset textvqa_val --post-prompt short "
                                           "--json " +
                                           json + " --markdown " + md),
                               &out),
              0)
        << out;
    EXPECT_NE(out.find("| baseline |"), std::string::npos) << out;
    EXPECT_NE(out.find("| SD-RPN |"), std::string::npos) << out;
    EXPECT_NE(out.find("1 skipped"), std::string::npos) << out;

    const auto j = nlohmann::json::parse(readFile(json));
    EXPECT_EQ(j.at("status"), "ok");
    const auto& s = j.at("summary");
    for (const char* key :
         {"count", "scored", "baseline_accuracy", "sdrpn_accuracy", "box_count", "mean_iou",
          "baseline_seconds_per_sample", "sdrpn_seconds_per_sample", "throughput_ratio", "skipped"})
        EXPECT_TRUE(s.contains(key)) << key;
    EXPECT_EQ(s.at("count"), 2);
    EXPECT_EQ(s.at("scored"), 2);
    EXPECT_EQ(s.at("box_count"), 1);
    EXPECT_EQ(s.at("skipped"), 1);
    EXPECT_EQ(j.at("options").at("post_prompt"), "\nAnswer the question using a single word or phrase.");
    EXPECT_EQ(j.at("options").at("max_new_tokens"), 3);
    ASSERT_EQ(j.at("samples").size(), 2u);
    EXPECT_EQ(j.at("samples")[0].at("key"), "s1");
    EXPECT_TRUE(j.at("samples")[0].contains("iou"));
    EXPECT_FALSE(j.at("samples")[1].contains("iou"));
    EXPECT_EQ(j.at("samples")[1].at("references").size(), 3u);
    EXPECT_EQ(j.at("samples")[1].at("baseline").at("score").at("rule"), "vqa_accuracy");
    ASSERT_EQ(j.at("skipped").size(), 1u);
    EXPECT_EQ(j.at("skipped")[0].at("key"), "gone");
    EXPECT_EQ(j.at("skipped")[0].at("reason"), "image not found");

    const std::string table = readFile(md);
    EXPECT_NE(table.find("| baseline |"), std::string::npos) << table;
    EXPECT_NE(table.find("| s1 |"), std::string::npos) << table;
    EXPECT_NE(table.find("| s2 |"), std::string::npos) << table;
    EXPECT_NE(table.find("gone"), std::string::npos) << table;
}

TEST_F(EvalCli, LimitAndQuiet) {
    const std::string json = m_dir + "/one.json";
    std::string out;
    ASSERT_EQ(
        test::runCommand(evalCommand("--rpn-k 3 --rpn-t 2 --thr 0.1 --limit 1 --quiet --json " + json), &out),
        0)
        << out;
    EXPECT_EQ(out.find("loaded"), std::string::npos) << out;  // quiet: the summary only
    const auto j = nlohmann::json::parse(readFile(json));
    EXPECT_EQ(j.at("summary").at("count"), 1);
    EXPECT_DOUBLE_EQ(j.at("options").at("roi_settings").at("threshold").get<double>(), 0.1);
}

TEST_F(EvalCli, HelpUsageErrorsAndMissingFiles) {
    std::string out;
    EXPECT_EQ(test::runCommand(kSdrpn + " eval --help", &out), 0);
    for (const char* option :
         {"--data", "--images", "--rpn", "--roi-preset", "--post-prompt", "--json", "--markdown"})
        EXPECT_NE(out.find(option), std::string::npos) << option << "\n" << out;

    EXPECT_EQ(test::runCommand(kSdrpn + " eval --model " + m_fixture + " --images " + m_dir, &out), 2);
    EXPECT_NE(out.find("--data"), std::string::npos) << out;
    EXPECT_EQ(test::runCommand(evalCommand("--rpn-k 3 --rpn-t 2 --bogus"), &out), 2);
    EXPECT_NE(out.find("--bogus"), std::string::npos) << out;
    EXPECT_EQ(test::runCommand(evalCommand(""), &out), 2);  // no RPN, and the fixture is not a checkpoint
    EXPECT_NE(out.find("--rpn"), std::string::npos) << out;
    EXPECT_EQ(test::runCommand(evalCommand("--rpn-k 3 --rpn-t 2 --roi-preset mmmu"), &out), 2);
    EXPECT_NE(out.find("mmmu"), std::string::npos) << out;
    EXPECT_EQ(test::runCommand(evalCommand("--rpn-k 3 --rpn-t 2 --limit 0"), &out), 2);
    EXPECT_NE(out.find("--limit"), std::string::npos) << out;

    const std::string missing = m_dir + "/no-such-set.jsonl";
    EXPECT_EQ(test::runCommand(kSdrpn + " eval --model " + m_fixture + " --data " + missing + " --images " +
                                   m_dir + " --rpn-k 3 --rpn-t 2",
                               &out),
              1);
    EXPECT_NE(out.find(missing), std::string::npos) << out;
    EXPECT_EQ(test::runCommand(evalCommand("--rpn /nonexistent-rpn"), &out), 1);
    EXPECT_NE(out.find("/nonexistent-rpn"), std::string::npos) << out;
}

}  // namespace
