// The benchmark tools on the CPU: sdrpn-bench's JSON, its device-against-CPU checks, bench/compare.py (ours
// against a reference file, and two runs of ours against each other) and bench/gpu.sh's options. The GPU
// numbers themselves come from bench/gpu.sh on a GPU machine (docs/benchmarks.md); these tests make sure the
// pieces it strings together work before it gets there.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/host_memory.h"
#include "tests/support/test_support.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

using namespace sdrpn;

namespace {

std::string benchExecutable() {
    return std::string(SDRPN_BINARY_DIR) + "/bench/sdrpn-bench";
}

std::string source(const std::string& relative) {
    return std::string(SDRPN_SOURCE_DIR) + "/" + relative;
}

std::string python() {
    return std::string(SDRPN_PYTHON).empty() ? "python3" : std::string(SDRPN_PYTHON);
}

std::string compare(const std::string& args) {
    return test::shellQuote(python()) + " " + test::shellQuote(source("bench/compare.py")) + " " + args;
}

nlohmann::json readJson(const std::string& path) {
    std::ifstream in(path);
    EXPECT_TRUE(in.good()) << path;
    return nlohmann::json::parse(in);
}

bool matches(const std::string& text, const std::string& pattern) {
    return std::regex_search(text, std::regex(pattern));
}

void writeFile(const std::string& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
}

// One sdrpn-bench run on the demo model (one test, so that ctest's one process per test runs it once): its
// JSON, compare.py against a made-up reference, and compare.py --ab of two runs.
TEST(BenchRun, DemoJsonFeedsCompareAgainstAReferenceAndAnotherRun) {
    const std::string dir = test::scratchDir("bench_tools");
    const std::string oursPath = dir + "/ours.json";
    std::string output;
    ASSERT_EQ(test::runCommand(test::shellQuote(benchExecutable()) +
                                   " --preset demo --repeats 1 --decode-tokens 4 --answer-tokens 2 --json " +
                                   test::shellQuote(oursPath),
                               &output),
              0)
        << output;

    // The JSON holds every row the comparison reads.
    auto j = readJson(oursPath);
    EXPECT_EQ(j.at("preset"), "demo");
    EXPECT_EQ(j.at("device"), "cpu");
    EXPECT_EQ(j.at("prompt_tokens"), 621);
    std::map<std::string, double> ours;
    for (const auto& r : j.at("rows")) ours[r.at("id").get<std::string>()] = r.at("ms").get<double>();
    for (const char* id : {"vision", "prefill", "prefill_vision", "prefill_capture_last",
                           "prefill_capture_question", "decode_token", "decode_capture"}) {
        ASSERT_TRUE(ours.count(id)) << "row " << id << " missing from " << oursPath;
        EXPECT_TRUE(std::isfinite(ours[id]) && ours[id] > 0) << id << " = " << ours[id];
    }
    const double ratio = j.at("values").at("sdrpn_throughput_ratio").get<double>();
    EXPECT_TRUE(ratio > 0 && ratio < 10) << ratio;
    const double peak = j.at("values").at("peak_memory_mb").get<double>();
    EXPECT_GT(peak, 0);
    // The table on stdout has the CPU rows too.
    EXPECT_NE(output.find("re-denoise every layer's map (CPU)"), std::string::npos) << output;
    EXPECT_NE(output.find("RoI post-processing (CPU)"), std::string::npos) << output;

    // Against a reference twice as slow on the language model alone and only 1/0.9 as slow from pixels.
    nlohmann::json hf = {{"preset", "demo"},
                         {"device", "cpu"},
                         {"dtype", j.at("dtype")},
                         {"prompt_tokens", 621},
                         {"rows",
                          {{"vision", ours["vision"] * 2},
                           {"prefill_text", ours["prefill"] * 2},
                           {"prefill", ours["prefill_vision"] / 0.9},
                           {"prefill_attentions", ours["prefill"] * 4},
                           {"decode_token", ours["decode_token"] * 3}}},
                         {"values", {{"peak_memory_sdpa_mb", peak + 1}}}};
    const std::string hfPath = dir + "/hf.json";
    writeFile(hfPath, hf.dump());
    const std::string pair = test::shellQuote(oursPath) + " " + test::shellQuote(hfPath);
    std::string out;
    ASSERT_EQ(test::runCommand(compare(pair), &out), 0) << out;
    EXPECT_TRUE(matches(out, R"(PASS +prefill ours/HF \(language model alone\) +0\.50 +\(target ≤ 0\.80\))"))
        << out;
    EXPECT_TRUE(matches(out, R"(FAIL +prefill ours/HF \(vision tower included\) +0\.90 +\(target ≤ 0\.80\))"))
        << out;
    EXPECT_TRUE(matches(out, "PASS +peak memory ours vs HF")) << out;
    EXPECT_EQ(out.find("WARNING"), std::string::npos) << out;
    ASSERT_EQ(test::runCommand(compare(pair + " --markdown"), &out), 0);
    EXPECT_NE(out.find("### Targets"), std::string::npos) << out;
    EXPECT_NE(out.find("| prefill ours/HF (vision tower included)"), std::string::npos) << out;
    // A reference of another preset is flagged.
    hf["preset"] = "llava-1.5-7b";
    writeFile(hfPath, hf.dump());
    ASSERT_EQ(test::runCommand(compare(pair), &out), 0);
    EXPECT_NE(out.find("WARNING: preset differs (demo vs llava-1.5-7b)"), std::string::npos) << out;

    // Two runs of ours side by side: the second twice as slow on every row.
    for (auto& r : j.at("rows")) r["ms"] = r.at("ms").get<double>() * 2;
    const std::string slower = dir + "/slower.json";
    writeFile(slower, j.dump());
    ASSERT_EQ(test::runCommand(compare("--ab " + test::shellQuote(oursPath) + " " + test::shellQuote(slower)),
                               &out),
              0)
        << out;
    EXPECT_NE(out.find("| prefill "), std::string::npos) << out;
    EXPECT_NE(out.find("0.50 |"), std::string::npos) << out;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
        if (line.find("| 1.00 |") != std::string::npos) {
            EXPECT_NE(line.find("peak memory"), std::string::npos)
                << "every timed row is twice as slow in b: " << line;
        }
    }
}

TEST(CompareScript, UnreadableInputsExitWithTwoNamingTheFile) {
    const std::string dir = test::scratchDir("compare_bad");
    const std::string good = dir + "/good.json", notJson = dir + "/bad.json", noRows = dir + "/norows.json";
    writeFile(good, R"({"preset": "demo", "rows": [{"id": "prefill", "ms": 10}]})");
    writeFile(notJson, "{\"rows\": [");
    writeFile(noRows, R"({"preset": "demo"})");
    std::string out;
    EXPECT_EQ(test::runCommand(
                  compare(test::shellQuote(good) + " " + test::shellQuote(dir + "/missing.json")), &out),
              2);
    EXPECT_NE(out.find("cannot read HF file " + dir + "/missing.json"), std::string::npos) << out;
    EXPECT_EQ(test::runCommand(compare(test::shellQuote(notJson) + " " + test::shellQuote(good)), &out), 2);
    EXPECT_NE(out.find("ours file " + notJson + " is not valid JSON"), std::string::npos) << out;
    EXPECT_EQ(
        test::runCommand(compare("--ab " + test::shellQuote(good) + " " + test::shellQuote(noRows)), &out),
        2);
    EXPECT_NE(out.find("second file " + noRows + ": no \"rows\""), std::string::npos) << out;
}

TEST(BenchChecks, TheFusedModelMatchesTheSeparateOneOnTheCpu) {
    // --check on the CPU: the device model (fused q/k/v and gate/up products) against the CPU reference
    // (separate products), LLaVA and Qwen2.5-VL demo shapes, fp32.
    std::string out;
    const int rc = test::runCommand(test::shellQuote(benchExecutable()) +
                                        " --check --preset demo --device cpu --repeats 1 --decode-tokens 2 "
                                        "--answer-tokens 2 --json /dev/null",
                                    &out);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("checks:"), std::string::npos) << out;
    EXPECT_EQ(out.find("FAIL"), std::string::npos) << out;
}

TEST(GpuScript, HelpAndBadOptions) {
    const std::string script = test::shellQuote(source("bench/gpu.sh"));
    std::string out;
    ASSERT_EQ(test::runCommand("bash -n " + script, &out), 0) << out;
    ASSERT_EQ(test::runCommand("bash " + script + " --help", &out), 0) << out;
    EXPECT_NE(out.find("--also-unfused"), std::string::npos) << out;
    EXPECT_NE(out.find("--presets"), std::string::npos) << out;
    EXPECT_EQ(out.find("set -uo"), std::string::npos) << "the help runs into the script:\n" << out;
    EXPECT_EQ(test::runCommand("bash " + script + " --bogus", &out), 2);
    EXPECT_NE(out.find("unknown argument '--bogus'"), std::string::npos) << out;
}

TEST(HostMemory, LargeBlocksComeFromTheHeapAndStayThere) {
#if !defined(__GLIBC__)
    GTEST_SKIP() << "keepHostMemory tunes glibc's malloc only";
#else
    for (const char* name : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"})
        ASSERT_EQ(std::getenv(name), nullptr) << name << " is set in the test's environment";
    const HostMemoryTuning tuning = keepHostMemory();
    ASSERT_TRUE(tuning.applied) << tuning.detail;
    // An 8 MiB block (glibc's default would map it afresh and unmap it on free) now comes from the heap,
    // and freeing it leaves the memory with the process for the next one.
    const auto before = mallinfo2();
    constexpr std::size_t kBlock = std::size_t(8) << 20;
    void* block = std::malloc(kBlock);
    ASSERT_NE(block, nullptr);
    static_cast<volatile char*>(block)[kBlock - 1] = 1;
    const auto held = mallinfo2();
    EXPECT_EQ(held.hblkhd, before.hblkhd) << "the block was mapped on its own";
    EXPECT_GE(held.uordblks, before.uordblks + kBlock);
    std::free(block);
    const auto after = mallinfo2();
    EXPECT_GE(after.arena, held.arena) << "the heap was trimmed back";
    EXPECT_GE(after.fordblks, kBlock);

    // A user's own setting stands.
    ::setenv("MALLOC_TRIM_THRESHOLD_", "131072", 1);
    const HostMemoryTuning left = keepHostMemory();
    ::unsetenv("MALLOC_TRIM_THRESHOLD_");
    EXPECT_FALSE(left.applied);
    EXPECT_NE(left.detail.find("MALLOC_TRIM_THRESHOLD_ is set"), std::string::npos) << left.detail;
#endif
}

}  // namespace
