// Several ranks on this machine over loopback and Gloo (core/dist): `sdrpn label` split over two ranks
// gives the store one process gives; one training step on two ranks equals one step on one rank with the
// same global batch, and resume may change the number of ranks; killing a rank makes the other stop with
// an error within the timeout, and a rerun completes what was lost.
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "core/data/label_store.h"
#include "core/dist/group.h"
#include "tests/support/job_outputs.h"
#include "tests/support/label_workspace.h"
#include "tests/support/test_support.h"

extern char** environ;

using namespace sdrpn;
namespace fs = std::filesystem;

namespace {

const std::string kSdrpn = test::sdrpnExecutable();
const std::string kLaunch = std::string(SDRPN_SOURCE_DIR) + "/scripts/launch";

// A TCP port nobody listens on now.
int freePort() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
        port = ntohs(addr.sin_port);
    ::close(fd);
    return port;
}

std::string readFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// One rank started in the background: `sdrpn <args>` with the launcher's environment, output to `log`.
struct Rank {
    pid_t pid = -1;
    std::string log;
};

Rank startRank(int rank, int world, int port, const std::string& args, const std::string& log,
               int timeoutSeconds) {
    const std::string command =
        "exec env RANK=" + std::to_string(rank) + " WORLD_SIZE=" + std::to_string(world) +
        " LOCAL_RANK=" + std::to_string(rank) + " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
        " SDRPN_DIST_TIMEOUT=" + std::to_string(timeoutSeconds) + " " + kSdrpn + " " + args + " > " +
        test::shellQuote(log) + " 2>&1";
    Rank r;
    r.log = log;
    const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
    if (::posix_spawn(&r.pid, "/bin/sh", nullptr, nullptr, const_cast<char* const*>(argv), environ) != 0)
        r.pid = -1;
    return r;
}

// Waits for a rank; returns its exit code, 128 + signal when killed, -1 when it outlived `seconds`.
int waitRank(const Rank& r, double seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    for (;;) {
        int status = 0;
        if (::waitpid(r.pid, &status, WNOHANG) == r.pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (std::chrono::steady_clock::now() > until) {
            ::kill(r.pid, SIGKILL);
            ::waitpid(r.pid, &status, 0);
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

// "loss" and "grad_norm" of every line of a metrics.jsonl.
std::vector<std::pair<double, double>> lossAndGradNorm(const std::string& file) {
    std::vector<std::pair<double, double>> out;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
        auto value = [&](const std::string& key) {
            const auto at = line.find("\"" + key + "\":");
            return at == std::string::npos ? -1.0 : std::stod(line.substr(at + key.size() + 3));
        };
        if (!line.empty()) out.emplace_back(value("loss"), value("grad_norm"));
    }
    return out;
}

}  // namespace

class DistributedCli : public test::LabelWorkspace {
protected:
    void SetUp() override {
        LabelWorkspace::SetUp();
        if (!dist::available()) FAIL() << "this build has no c10d/Gloo (install libgloo-dev and reconfigure)";
    }

    std::string labelArgs(const std::string& questions, const std::string& store, int tokens = 4) const {
        return LabelWorkspace::labelArgs(questions, store, tokens);
    }
};

TEST_F(DistributedCli, LabelingSplitOverTwoRanksThenMergedEqualsOneProcess) {
    const std::string questions = writeQuestions(7);
    std::string out;
    ASSERT_EQ(test::runCommand(kSdrpn + " " + labelArgs(questions, dir + "/single.sdrpn") + " --quiet", &out),
              0)
        << out;

    const std::string store = dir + "/ranks.sdrpn";
    ASSERT_EQ(test::runCommand(kLaunch + " -n 2 --master-port " + std::to_string(freePort()) + " -- " +
                                   kSdrpn + " " + labelArgs(questions, store),
                               &out),
              0)
        << out;
    // Rank 0 prints the progress of both ranks (7 samples, 4 + 3) and the merged total.
    EXPECT_NE(out.find("7/7 (7 labeled)"), std::string::npos) << out;
    EXPECT_NE(out.find("[rank 1] rank 1 of 2: labeled 3"), std::string::npos) << out;
    EXPECT_NE(out.find("on 2 ranks"), std::string::npos) << out;
    EXPECT_NE(out.find("merged 2 shard(s): 7 samples added, the store holds 7"), std::string::npos) << out;
    EXPECT_FALSE(fs::exists(store + ".shards")) << "the merged shards are removed";
    expectSameStore(dir + "/single.sdrpn", store, 7);

    // Run again: nothing is left to label.
    ASSERT_EQ(test::runCommand(kLaunch + " -n 2 --master-port " + std::to_string(freePort()) + " -- " +
                                   kSdrpn + " " + labelArgs(questions, store) + " --quiet",
                               &out),
              0)
        << out;
    EXPECT_NE(out.find("labeled 0, already there 7"), std::string::npos) << out;
}

TEST_F(DistributedCli, OneStepOnTwoRanksEqualsOneRankWithTheSameGlobalBatchAndResumeMayChangeTheRanks) {
    const std::string questions = writeQuestions(7);
    const std::string store = dir + "/labels.sdrpn";
    std::string out;
    ASSERT_EQ(test::runCommand(kSdrpn + " " + labelArgs(questions, store) + " --quiet", &out), 0) << out;

    // One step of 4 samples: one process with batch 4, two ranks with batch 2 each.
    ASSERT_EQ(
        test::runCommand(kSdrpn + " " + trainArgs(store, dir + "/one") + " --batch 4 --max-steps 1", &out), 0)
        << out;
    ASSERT_EQ(test::runCommand(kLaunch + " -n 2 --master-port " + std::to_string(freePort()) + " -- " +
                                   kSdrpn + " " + trainArgs(store, dir + "/two") + " --batch 2 --max-steps 1",
                               &out),
              0)
        << out;
    // The loss and the all-reduced gradient's norm match to float rounding, and so does the step.
    test::expectSameWeights(dir + "/one/model.safetensors", dir + "/two/model.safetensors");
    const auto m1 = lossAndGradNorm(dir + "/one/metrics.jsonl"),
               m2 = lossAndGradNorm(dir + "/two/metrics.jsonl");
    ASSERT_EQ(m1.size(), 1u);
    ASSERT_EQ(m2.size(), 1u);
    EXPECT_NEAR(m2[0].first, m1[0].first, 1e-6 * m1[0].first);
    EXPECT_NEAR(m2[0].second, m1[0].second, 1e-6 * m1[0].second);
    EXPECT_GT(m1[0].second, 0.0);
    EXPECT_NE(readFile(dir + "/two/metrics.jsonl").find("\"samples\":4"), std::string::npos);
    EXPECT_FALSE(fs::exists(dir + "/two/.write-test"));

    // Three epochs (2 steps each) straight on one process, against two ranks that save every 2 steps and
    // one process that resumes from their step-2 checkpoint (batch 2 x 2 ranks = batch 4 x 1 rank).
    const std::string epochs = " --epochs 3 --max-steps 1000";
    ASSERT_EQ(
        test::runCommand(kSdrpn + " " + trainArgs(store, dir + "/straight") + " --batch 4" + epochs, &out), 0)
        << out;
    ASSERT_EQ(test::runCommand(kLaunch + " -n 2 --master-port " + std::to_string(freePort()) + " -- " +
                                   kSdrpn + " " + trainArgs(store, dir + "/ranks") +
                                   " --batch 2 --save-every 2 --keep 0" + epochs,
                               &out),
              0)
        << out;
    test::expectSameWeights(dir + "/straight/model.safetensors", dir + "/ranks/model.safetensors");
    const std::string from = " --resume-from " + dir + "/ranks/checkpoint-2";
    EXPECT_EQ(test::runCommand(
                  kSdrpn + " " + trainArgs(store, dir + "/resumed") + " --batch 2" + epochs + from, &out),
              1)
        << out;
    EXPECT_NE(out.find("batch 2 x 2 ranks"), std::string::npos) << out;
    ASSERT_EQ(test::runCommand(
                  kSdrpn + " " + trainArgs(store, dir + "/resumed") + " --batch 4" + epochs + from, &out),
              0)
        << out;
    test::expectSameWeights(dir + "/straight/model.safetensors", dir + "/resumed/model.safetensors");
}

TEST_F(DistributedCli, KillingATrainingRankStopsTheOtherWithAMessageWithinTheTimeout) {
    const std::string questions = writeQuestions(5);
    const std::string store = dir + "/labels.sdrpn";
    std::string out;
    ASSERT_EQ(test::runCommand(kSdrpn + " " + labelArgs(questions, store) + " --quiet", &out), 0) << out;

    const int port = freePort();
    const std::string args =
        trainArgs(store, dir + "/run") + " --batch 1 --epochs 100000 --max-steps 1000000";
    constexpr int kTimeout = 20;
    const Rank r0 = startRank(0, 2, port, args, dir + "/rank0.log", kTimeout);
    const Rank r1 = startRank(1, 2, port, args, dir + "/rank1.log", kTimeout);
    ASSERT_GT(r0.pid, 0);
    ASSERT_GT(r1.pid, 0);
    // Let them take a few steps together, then kill rank 1 without warning.
    for (int i = 0; i < 600 && !fs::exists(dir + "/run/metrics.jsonl"); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (int i = 0; i < 600 && readFile(dir + "/run/metrics.jsonl").find("\"step\":3,") == std::string::npos;
         ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_EQ(::kill(r1.pid, SIGKILL), 0);
    EXPECT_EQ(waitRank(r1, 10), 128 + SIGKILL);
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = waitRank(r0, kTimeout + 30);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::string log = readFile(r0.log);
    EXPECT_EQ(rc, 1) << log;
    EXPECT_LT(seconds, kTimeout + 5) << log;
    EXPECT_NE(log.find("rank 0 of 2"), std::string::npos) << log;
    EXPECT_NE(log.find("another rank failed"), std::string::npos) << log;
    // What the two ranks finished together is kept, and one process resumes it with batch 2 x 1.
    EXPECT_NE(log.find("resume with --resume"), std::string::npos) << log;
    ASSERT_EQ(test::runCommand(kSdrpn + " " + trainArgs(store, dir + "/run") +
                                   " --batch 2 --epochs 100000 --resume --max-steps 8",
                               &out),
              0)
        << out;
}

TEST_F(DistributedCli, AKilledLabelingRankLosesOnlyItsSampleInFlightAndARerunLabelsTheRest) {
    const std::string questions = writeQuestions(48);
    const std::string store = dir + "/ranks.sdrpn";
    const int port = freePort();
    constexpr int kTimeout = 5;  // rank 0 notices the silence after this long
    const std::string args = labelArgs(questions, store, 12) + " --quiet";
    const Rank r0 = startRank(0, 2, port, args, dir + "/rank0.log", kTimeout);
    const Rank r1 = startRank(1, 2, port, args, dir + "/rank1.log", kTimeout);
    ASSERT_GT(r0.pid, 0);
    ASSERT_GT(r1.pid, 0);
    // Kill rank 1 once its shard holds a few samples.
    const std::string shard = store + ".shards/rank-1.sdrpn";
    bool started = false;
    for (int i = 0; i < 1200 && !started; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (!fs::exists(shard)) continue;
        try {
            data::LabelStore::Options ro;
            ro.access = data::LabelStore::Access::ReadOnly;
            started = data::LabelStore::open(shard, ro).count() >= 3;
        } catch (const std::exception&) {
        }
    }
    ASSERT_TRUE(started) << readFile(r1.log);
    ASSERT_EQ(::kill(r1.pid, SIGKILL), 0);
    ASSERT_EQ(waitRank(r1, 10), 128 + SIGKILL) << "rank 1 finished before it could be killed";
    const int rc = waitRank(r0, 120);
    const std::string log = readFile(r0.log);
    EXPECT_EQ(rc, 1) << log;
    EXPECT_NE(log.find("rank 1 of 2 stopped"), std::string::npos) << log;
    EXPECT_NE(log.find("run the same command again"), std::string::npos) << log;

    // Everything both ranks finished was merged.
    data::LabelStore::Options ro;
    ro.access = data::LabelStore::Access::ReadOnly;
    const std::int64_t kept = data::LabelStore::open(store, ro).count();
    EXPECT_GT(kept, 24 + 3 - 1) << "rank 0's 24 and what rank 1 had finished";
    EXPECT_LT(kept, 48);

    // A rerun on one process labels only what is missing; the result equals one uninterrupted process.
    std::string out;
    ASSERT_EQ(test::runCommand(kSdrpn + " " + labelArgs(questions, store, 12) + " --quiet", &out), 0) << out;
    EXPECT_NE(out.find("labeled " + std::to_string(48 - kept) + ", already there " + std::to_string(kept)),
              std::string::npos)
        << out;
    ASSERT_EQ(
        test::runCommand(kSdrpn + " " + labelArgs(questions, dir + "/single.sdrpn", 12) + " --quiet", &out),
        0)
        << out;
    expectSameStore(dir + "/single.sdrpn", store, 48);
}

TEST_F(DistributedCli, TheLauncherReportsAFailingRankAndRejectsBadOptions) {
    std::string out;
    // Rank 1 fails at once while rank 0 would go on: the launcher says which rank failed and stops the other.
    EXPECT_NE(test::runCommand(kLaunch + " -n 2 --master-port " + std::to_string(freePort()) +
                                   " --grace 2 -- sh -c 'if [ \"$RANK\" = 1 ]; then exit 7; fi; sleep 60'",
                               &out),
              0)
        << out;
    EXPECT_NE(out.find("launch: rank 1 exited with status 7"), std::string::npos) << out;
    EXPECT_EQ(test::runCommand(kLaunch + " -n x -- true", &out), 2) << out;
    EXPECT_NE(out.find("expects a number"), std::string::npos) << out;
    EXPECT_EQ(test::runCommand(kLaunch + " -n 2", &out), 2) << out;
    EXPECT_NE(out.find("no command given"), std::string::npos) << out;
}
