// `sdrpn label`, `sdrpn merge-stores` and `sdrpn store-info` on the tiny LLaVA fixture: limit and resume,
// shards merged back into one store, Ctrl-C (SIGINT) finishing the sample in flight with exit 130 while a
// reader watches the store, and errors that name the file.
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/data/label_store.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
namespace fs = std::filesystem;

namespace {

const std::string kSdrpn = test::sdrpnExecutable();

int run(const std::string& args, std::string* output = nullptr) {
    return test::runCommand(kSdrpn + " " + args, output);
}

// `n` questions about the fixture's two images, plus one whose image is missing.
struct Workspace {
    std::string dir, data, settings;
    std::string common() const {
        return "--model " + test::fixturePath("tiny-llava-hf") + " --data " + data + " --images " + dir +
               " --settings " + settings;
    }
};

Workspace makeWorkspace(int n) {
    Workspace w;
    w.dir = test::scratchDir("ws");
    const std::string fixture = test::fixturePath("tiny-llava-hf");
    fs::copy_file(fixture + "/image_336.png", w.dir + "/a.png");
    fs::copy_file(fixture + "/image_640x480.png", w.dir + "/b.png");
    w.data = w.dir + "/questions.jsonl";
    std::ofstream jsonl(w.data);
    for (int i = 0; i < n; ++i)
        jsonl << R"({"question_id": "q)" << i << R"(", "image": ")" << (i % 2 ? "b" : "a")
              << R"(.png", "question": "What is thing number )" << i << R"(?"})"
              << "\n";
    jsonl << R"({"question_id": "lost", "image": "lost.png", "question": "Where?"})"
          << "\n";
    w.settings = w.dir + "/settings.json";
    std::ofstream(w.settings) << R"({"preset": "llava-1.5-7b", "grounding": [{"layer": 3, "heads": [1, 2]}],
                                    "sink": [{"layer": 1, "heads": []}]})";
    return w;
}

std::int64_t countIn(const std::string& store) {
    data::LabelStore::Options readOnly;
    readOnly.access = data::LabelStore::Access::ReadOnly;
    return data::LabelStore::open(store, readOnly).count();
}

}  // namespace

class LabelCli : public ::testing::Test {
protected:
    void SetUp() override {
        if (!fs::exists(kSdrpn)) FAIL() << kSdrpn << " is missing: build the sdrpn target first";
    }
};

TEST_F(LabelCli, LimitThenResumeAndTheSummaryListsFailedImages) {
    Workspace w = makeWorkspace(3);
    const std::string store = w.dir + "/labels.sdrpn";
    std::string out;
    ASSERT_EQ(
        run("label " + w.common() + " --store " + store + " --max-new-tokens 8 --limit 2 --quiet", &out), 0)
        << out;
    EXPECT_NE(out.find("labeled 2, already there 0"), std::string::npos) << out;
    EXPECT_EQ(countIn(store), 2);

    ASSERT_EQ(run("label " + w.common() + " --store " + store + " --max-new-tokens 8", &out), 0) << out;
    EXPECT_NE(out.find("labeled 1, already there 2, failed 1"), std::string::npos) << out;
    EXPECT_NE(out.find("lost  " + w.dir + "/lost.png: image not found"), std::string::npos) << out;
    EXPECT_NE(out.find("samples/s"), std::string::npos) << out;
    EXPECT_EQ(countIn(store), 3);

    ASSERT_EQ(run("store-info " + store, &out), 0) << out;
    EXPECT_NE(out.find("3 samples"), std::string::npos) << out;
    EXPECT_NE(out.find("model tiny-llava-hf"), std::string::npos) << out;
    ASSERT_EQ(run("store-info " + store + " --sample questions/q1", &out), 0) << out;
    EXPECT_NE(out.find("question: What is thing number 1?"), std::string::npos) << out;
    EXPECT_NE(out.find("maps (24x24): 1:mean 3:1 3:2"), std::string::npos) << out;
    EXPECT_NE(out.find("labels: "), std::string::npos) << out;
    // A preset whose heads were not stored is named, not guessed.
    EXPECT_EQ(run("store-info " + store + " --sample questions/q1 --preset llava-1.5-7b", &out), 1) << out;
    EXPECT_NE(out.find("does not hold"), std::string::npos) << out;
}

TEST_F(LabelCli, ShardsMergeBackIntoOneStore) {
    Workspace w = makeWorkspace(5);
    const std::string a = w.dir + "/s0.sdrpn", b = w.dir + "/s1.sdrpn", all = w.dir + "/all.sdrpn";
    std::string out;
    ASSERT_EQ(run("label " + w.common() + " --store " + a + " --max-new-tokens 6 --shard 0/2 --quiet", &out),
              0)
        << out;
    ASSERT_EQ(run("label " + w.common() + " --store " + b + " --max-new-tokens 6 --shard 1/2 --quiet", &out),
              0)
        << out;
    EXPECT_EQ(countIn(a), 3);  // q0 q2 q4 (the lost image is entry 5: shard 1)
    EXPECT_EQ(countIn(b), 2);

    ASSERT_EQ(run("merge-stores --out " + all + " " + a + " " + b, &out), 0) << out;
    EXPECT_NE(out.find(all + ": 5 samples (added 5, duplicates 0, conflicts 0)"), std::string::npos) << out;
    // The same shard again: duplicates, nothing added.
    ASSERT_EQ(run("merge-stores --out " + all + " " + a, &out), 0) << out;
    EXPECT_NE(out.find("added 0, duplicates 3, conflicts 0"), std::string::npos) << out;
    // A shard labeled with other settings conflicts and is reported (exit 3).
    const std::string other = w.dir + "/other.sdrpn";
    ASSERT_EQ(
        run("label " + w.common() + " --store " + other + " --max-new-tokens 3 --shard 1/2 --quiet", &out), 0)
        << out;
    EXPECT_EQ(run("merge-stores --out " + all + " " + other, &out), 3) << out;
    EXPECT_NE(out.find("conflict questions/q1 from " + other + ": differs in answer"), std::string::npos)
        << out;
    EXPECT_EQ(countIn(all), 5);
}

TEST_F(LabelCli, InterruptFinishesTheSampleInFlightAndExits130) {
    Workspace w = makeWorkspace(24);
    const std::string store = w.dir + "/labels.sdrpn";
    const std::string log = w.dir + "/label.log";
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        const std::string model = test::fixturePath("tiny-llava-hf");
        ::execl(kSdrpn.c_str(), kSdrpn.c_str(), "label", "--model", model.c_str(), "--data", w.data.c_str(),
                "--images", w.dir.c_str(), "--settings", w.settings.c_str(), "--store", store.c_str(),
                "--max-new-tokens", "64", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    // A reader watches the store while the job writes, and presses Ctrl-C once two samples are in.
    std::int64_t seen = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (seen < 2 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (fs::exists(store)) {
            try {
                seen = countIn(store);
            } catch (const std::exception&) {
                // created but the schema not yet written
            }
        }
    }
    ASSERT_GE(seen, 2) << "the job wrote no samples in time";
    ASSERT_EQ(::kill(child, SIGINT), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    std::ifstream in(log);
    const std::string out{std::istreambuf_iterator<char>(in), {}};
    ASSERT_TRUE(WIFEXITED(status)) << out;
    EXPECT_EQ(WEXITSTATUS(status), 130) << out;
    EXPECT_NE(out.find("interrupted; run the same command again to resume"), std::string::npos) << out;
    const std::int64_t afterInterrupt = countIn(store);
    EXPECT_GE(afterInterrupt, seen);
    EXPECT_LT(afterInterrupt, 24);

    std::string rest;
    ASSERT_EQ(run("label " + w.common() + " --store " + store + " --max-new-tokens 64 --quiet", &rest), 0)
        << rest;
    EXPECT_NE(rest.find("already there " + std::to_string(afterInterrupt)), std::string::npos) << rest;
    EXPECT_EQ(countIn(store), 24);
}

TEST_F(LabelCli, ErrorsNameTheFile) {
    Workspace w = makeWorkspace(1);
    std::string out;
    const std::string garbage = w.dir + "/garbage.sdrpn";
    std::ofstream(garbage) << std::string(5000, 'x');
    EXPECT_EQ(run("label " + w.common() + " --store " + garbage, &out), 1) << out;
    EXPECT_NE(out.find(garbage + ": not an SQLite database"), std::string::npos) << out;

    const std::string bad = w.dir + "/bad.jsonl";
    std::ofstream(bad) << "{\"image\": \"a.png\", \"question\": \"ok\"}\n{\"image\": oops}\n";
    EXPECT_EQ(run("label --model " + test::fixturePath("tiny-llava-hf") + " --data " + bad + " --images " +
                      w.dir + " --store " + w.dir + "/x.sdrpn",
                  &out),
              1)
        << out;
    EXPECT_NE(out.find(bad + ":2: not valid JSON"), std::string::npos) << out;

    EXPECT_EQ(run("label " + w.common() + " --store " + w.dir + "/x.sdrpn --shard 2/2", &out), 2) << out;
    EXPECT_NE(out.find("--shard"), std::string::npos) << out;
    EXPECT_EQ(run("merge-stores --out " + w.dir + "/m.sdrpn " + w.dir + "/none.sdrpn", &out), 1) << out;
    EXPECT_NE(out.find(w.dir + "/none.sdrpn: no such label store"), std::string::npos) << out;
}
