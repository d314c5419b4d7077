// Fault injection on `sdrpn label` and `sdrpn train` with the tiny LLaVA fixture: a full disk (a small
// tmpfs in a private mount namespace) while labeling and while checkpointing, read-only output folders,
// SIGKILL and SIGINT at random points followed by a rerun, and a checkpoint trained on another backbone.
// Each fault must end in a message that names the culprit, and a rerun must end where an uninterrupted run
// does: the same store, the same weights.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/data/label_store.h"
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "tests/support/job_outputs.h"
#include "tests/support/label_workspace.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
namespace fs = std::filesystem;

namespace {

const std::string kSdrpn = test::sdrpnExecutable();

std::int64_t countIn(const std::string& store) {
    data::LabelStore::Options readOnly;
    readOnly.access = data::LabelStore::Access::ReadOnly;
    return data::LabelStore::open(store, readOnly).count();
}

// Whether this process may make a private mount namespace (root, or CAP_SYS_ADMIN).
bool canMountTmpfs() {
    static const int ok = test::runCommand("unshare -m sh -c 'mount -t tmpfs -o size=64k tmpfs /mnt'") == 0;
    return ok;
}

// Runs `command` with a fresh tmpfs of `kib` KiB mounted at `mountPoint`, in a mount namespace of its own
// (nothing leaks out). `prepare` runs first (inside), `after` last; the command's status is returned.
int runOnTmpfs(const std::string& mountPoint, int kib, const std::string& prepare, const std::string& command,
               const std::string& after, std::string* output) {
    const std::string script = "set -u; mount -t tmpfs -o size=" + std::to_string(kib) + "k tmpfs " +
                               test::shellQuote(mountPoint) + " || exit 97; " + prepare + "; " + command +
                               "; rc=$?; " + after + "; exit $rc";
    return test::runCommand("unshare -m sh -c " + test::shellQuote(script), output);
}

std::int64_t fileSize(const std::string& path) {
    std::error_code ec;
    const auto n = fs::file_size(path, ec);
    return ec ? 0 : std::int64_t(n);
}

std::int64_t folderSize(const std::string& dir) {
    std::int64_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file()) n += std::int64_t(e.file_size());
    return n;
}

// Starts `sdrpn args` with its output in `log`; returns the pid.
pid_t start(const std::string& args, const std::string& log) {
    const std::string line = "exec " + kSdrpn + " " + args + " > " + test::shellQuote(log) + " 2>&1";
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    return pid;
}

std::string readFile(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), {}};
}

// How a run that was sent `sig` after `delay` ended.
struct Ending {
    bool finished = false;  // exited 0 before the signal
    int status = 0;         // raw waitpid status
    std::string log;
};

Ending interruptAfter(const std::string& args, const std::string& log, std::chrono::milliseconds delay,
                      int sig) {
    const pid_t pid = start(args, log);
    Ending e;
    if (pid < 0) return e;
    int status = 0;
    const auto until = std::chrono::steady_clock::now() + delay;
    while (std::chrono::steady_clock::now() < until) {
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            e.finished = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            e.status = status;
            e.log = readFile(log);
            return e;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(pid, sig);
    ::waitpid(pid, &status, 0);
    e.finished = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    e.status = status;
    e.log = readFile(log);
    return e;
}

std::string describe(int status) {
    if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
    return "status " + std::to_string(status);
}

}  // namespace

class FaultsCli : public test::LabelWorkspace {
protected:
    std::string labelArgs(const std::string& questions, const std::string& store) const {
        return LabelWorkspace::labelArgs(questions, store, 6);
    }
    std::string trainArgs(const std::string& store, const std::string& out) const {
        return LabelWorkspace::trainArgs(store, out) + " --batch 1";
    }

    // A store of `n` questions labelled in one go.
    std::string labelledStore(int n) {
        const std::string store = dir + "/straight-" + std::to_string(n) + ".sdrpn";
        if (fs::exists(store)) return store;
        std::string out;
        const auto t0 = std::chrono::steady_clock::now();
        EXPECT_EQ(test::runCommand(kSdrpn + " " + labelArgs(writeQuestions(n), store) + " --quiet", &out), 0)
            << out;
        lastRun = std::chrono::steady_clock::now() - t0;
        return store;
    }

    // A random point within the last uninterrupted run (this build's speed, not a guess), scaled by `share`:
    // the part of the work still to do (a resumed run is shorter), so that the signal lands before the end.
    std::chrono::milliseconds randomPoint(std::mt19937& rng, double share = 1.0) const {
        const double ms = std::chrono::duration<double, std::milli>(lastRun).count() * share;
        return std::chrono::milliseconds(
            std::int64_t(std::uniform_real_distribution<double>(0.02, 0.8)(rng) * ms));
    }

    std::chrono::steady_clock::duration lastRun{};
};

TEST_F(FaultsCli, FullDiskWhileLabelingNamesTheStoreAndKeepsWhatWasCommitted) {
    if (!canMountTmpfs()) GTEST_SKIP() << "needs a private mount namespace (root): unshare -m failed";
    constexpr int kSamples = 12;
    const std::string straight = labelledStore(kSamples);
    // As much room as the finished store takes: its write-ahead log grows past that, so the disk fills
    // after a few samples.
    const int kib = int(fileSize(straight) / 1024 / 4 * 4);
    const std::string mnt = dir + "/small", kept = dir + "/kept";
    fs::create_directories(mnt);
    fs::create_directories(kept);
    std::string out;
    const int rc = runOnTmpfs(mnt, kib, "true",
                              kSdrpn + " " + labelArgs(writeQuestions(kSamples), mnt + "/labels.sdrpn"),
                              "cp -a " + mnt + "/. " + kept + "/", &out);
    ASSERT_NE(rc, 97) << "tmpfs mount failed: " << out;
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find(mnt + "/labels.sdrpn"), std::string::npos) << out;
    EXPECT_NE(out.find("disk full"), std::string::npos) << out;
    EXPECT_EQ(out.find("Segmentation"), std::string::npos) << out;

    // Every sample committed before the disk filled is readable; the rerun on a roomy disk adds the rest.
    const std::string store = kept + "/labels.sdrpn";
    const std::int64_t committed = countIn(store);
    EXPECT_GT(committed, 0) << out;
    EXPECT_LT(committed, kSamples) << out;
    ASSERT_EQ(test::runCommand(kSdrpn + " " + labelArgs(writeQuestions(kSamples), store) + " --quiet", &out),
              0)
        << out;
    EXPECT_NE(out.find("already there " + std::to_string(committed)), std::string::npos) << out;
    expectSameStore(straight, store, kSamples);
}

TEST_F(FaultsCli, FullDiskWhileCheckpointingNamesTheFileAndTheLastCheckpointResumes) {
    if (!canMountTmpfs()) GTEST_SKIP() << "needs a private mount namespace (root): unshare -m failed";
    const std::string store = labelledStore(4);
    const std::string epochs = " --epochs 3 --max-steps 1000 --save-every 2 --keep 0";
    std::string out;
    ASSERT_EQ(test::runCommand(kSdrpn + " " + trainArgs(store, dir + "/straight") + epochs, &out), 0) << out;
    // Room for the run's first files and about two of its six checkpoints.
    const std::int64_t checkpoint = folderSize(dir + "/straight/checkpoint-2");
    ASSERT_GT(checkpoint, 0);
    const int kib = int((2 * checkpoint + checkpoint / 2) / 4096 + 8) * 4;
    const std::string mnt = dir + "/small", kept = dir + "/kept";
    fs::create_directories(mnt);
    fs::create_directories(kept);
    const int rc = runOnTmpfs(mnt, kib, "true", kSdrpn + " " + trainArgs(store, mnt + "/run") + epochs,
                              "cp -a " + mnt + "/. " + kept + "/", &out);
    ASSERT_NE(rc, 97) << "tmpfs mount failed: " << out;
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find(mnt + "/run"), std::string::npos) << out;
    EXPECT_NE(out.find("No space left on device"), std::string::npos) << out;

    // The checkpoints written before the disk filled are whole: --resume from the newest on a roomy disk
    // ends where the uninterrupted run did.
    bool any = false;
    for (const auto& e : fs::directory_iterator(kept + "/run"))
        any = any || (e.path().filename().string().rfind("checkpoint-", 0) == 0 &&
                      e.path().extension() != ".tmp" && fs::exists(e.path() / "trainer_state.json"));
    ASSERT_TRUE(any) << "no whole checkpoint was written before the disk filled: " << out;
    ASSERT_EQ(test::runCommand(kSdrpn + " " + trainArgs(store, kept + "/run") + epochs + " --resume", &out),
              0)
        << out;
    test::expectSameWeights(dir + "/straight/model.safetensors", kept + "/run/model.safetensors");
}

TEST_F(FaultsCli, ReadOnlyOutputFoldersAreNamed) {
    if (!canMountTmpfs()) GTEST_SKIP() << "needs a private mount namespace (root): unshare -m failed";
    const std::string store = labelledStore(2);
    const std::string mnt = dir + "/ro";
    fs::create_directories(mnt);
    const std::string readOnly = "mkdir -p " + mnt + "/out && mount -o remount,ro " + mnt;
    std::string out;
    int rc = runOnTmpfs(mnt, 256, readOnly,
                        kSdrpn + " " + labelArgs(writeQuestions(2), mnt + "/out/labels.sdrpn"), "true", &out);
    ASSERT_NE(rc, 97) << out;
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find(mnt + "/out/labels.sdrpn"), std::string::npos) << out;
    EXPECT_NE(out.find("Read-only file system"), std::string::npos) << out;

    rc = runOnTmpfs(mnt, 256, readOnly, kSdrpn + " " + trainArgs(store, mnt + "/out/run"), "true", &out);
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find(mnt + "/out/run"), std::string::npos) << out;
    EXPECT_NE(out.find("Read-only file system"), std::string::npos) << out;
}

TEST_F(FaultsCli, KilledOrInterruptedAtRandomPointsLabelingResumesToTheSameStore) {
    constexpr int kSamples = 10;
    const std::string straight = labelledStore(kSamples);
    const std::string store = dir + "/interrupted.sdrpn";
    const std::string args = labelArgs(writeQuestions(kSamples), store) + " --quiet";
    std::mt19937 rng(20261127);
    std::int64_t before = 0;
    int interrupted = 0;
    for (int round = 0; round < 6; ++round) {
        const int sig = round % 3 == 2 ? SIGINT : SIGKILL;
        const auto delay = randomPoint(rng, std::max(0.1, double(kSamples - before) / kSamples));
        SCOPED_TRACE("round " + std::to_string(round) + ": signal " + std::to_string(sig) + " after " +
                     std::to_string(delay.count()) + " ms");
        const Ending e = interruptAfter(args, dir + "/label.log", delay, sig);
        if (e.finished) break;
        ++interrupted;
        if (sig == SIGINT && WIFEXITED(e.status)) {
            EXPECT_EQ(WEXITSTATUS(e.status), 130) << e.log;
        }
        if (sig == SIGKILL) {
            EXPECT_TRUE(WIFSIGNALED(e.status)) << describe(e.status) << e.log;
        }
        // Whatever was committed is there, and never less than before.
        if (fs::exists(store)) {
            const std::int64_t now = countIn(store);
            EXPECT_GE(now, before);
            before = now;
        }
    }
    EXPECT_GE(interrupted, 2) << "the runs ended before the signals: the delays are too long";
    std::string out;
    ASSERT_EQ(test::runCommand(kSdrpn + " " + args, &out), 0) << out;
    expectSameStore(straight, store, kSamples);
}

TEST_F(FaultsCli, KilledOrInterruptedAtRandomPointsTrainingResumesToTheSameWeights) {
    const std::string store = labelledStore(4);
    const std::string epochs = " --epochs 3 --max-steps 1000 --save-every 1 --keep 2";
    std::string out;
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(test::runCommand(kSdrpn + " " + trainArgs(store, dir + "/straight") + epochs, &out), 0) << out;
    lastRun = std::chrono::steady_clock::now() - t0;

    const std::string run = dir + "/run";
    std::mt19937 rng(1127);
    bool finished = false;
    int interrupted = 0;
    for (int round = 0; round < 6 && !finished; ++round) {
        const int sig = round % 3 == 2 ? SIGINT : SIGKILL;
        const auto delay = randomPoint(rng);
        SCOPED_TRACE("round " + std::to_string(round) + ": signal " + std::to_string(sig) + " after " +
                     std::to_string(delay.count()) + " ms");
        bool checkpoint = false;
        if (fs::exists(run))
            for (const auto& e : fs::directory_iterator(run))
                checkpoint = checkpoint || fs::exists(e.path() / "trainer_state.json");
        const Ending e = interruptAfter(trainArgs(store, run) + epochs + (checkpoint ? " --resume" : ""),
                                        dir + "/train.log", delay, sig);
        finished = e.finished;
        interrupted += finished ? 0 : 1;
        if (!finished && sig == SIGINT && WIFEXITED(e.status)) {
            EXPECT_EQ(WEXITSTATUS(e.status), 130) << e.log;
        }
        if (!finished && WIFEXITED(e.status) && WEXITSTATUS(e.status) == 1) ADD_FAILURE() << e.log;
    }
    EXPECT_GE(interrupted, 2) << "the runs ended before the signals: the delays are too long";
    if (!finished) {
        bool checkpoint = false;
        for (const auto& e : fs::directory_iterator(run))
            checkpoint = checkpoint || fs::exists(e.path() / "trainer_state.json");
        ASSERT_EQ(test::runCommand(
                      kSdrpn + " " + trainArgs(store, run) + epochs + (checkpoint ? " --resume" : ""), &out),
                  0)
            << out;
    }
    test::expectSameWeights(dir + "/straight/model.safetensors", run + "/model.safetensors");
}

TEST_F(FaultsCli, ACheckpointOfAnotherBackboneIsRefusedNamingTheTensorAndBothShapes) {
    const std::string store = labelledStore(2);
    std::string out;
    ASSERT_EQ(test::runCommand(kSdrpn + " " + trainArgs(store, dir + "/run") + " --max-steps 1", &out), 0)
        << out;
    // The checkpoint's twig as a backbone with a narrower MLP would have made it.
    const std::string file = dir + "/run/checkpoint-1/model.safetensors";
    auto weights = test::readWeights(file);
    std::string changed;
    for (auto& [key, t] : weights)
        if (key.find("mlp.up_proj.weight") != std::string::npos) {
            t = t.narrow(0, 0, t.size(0) / 2).contiguous();
            changed = key;
            break;
        }
    ASSERT_FALSE(changed.empty());
    std::vector<std::pair<std::string, torch::Tensor>> list(weights.begin(), weights.end());
    io::saveTensors(file, list, {{"format", "pt"}});
    EXPECT_EQ(
        test::runCommand(kSdrpn + " " + trainArgs(store, dir + "/run") + " --max-steps 2 --resume", &out), 1)
        << out;
    EXPECT_NE(out.find(file), std::string::npos) << out;
    EXPECT_NE(out.find(changed), std::string::npos) << out;
    EXPECT_NE(out.find("another backbone"), std::string::npos) << out;

    // The same file as the RPN of an answer: named too, before any compute.
    EXPECT_EQ(
        test::runCommand(kSdrpn + " roi --model " + fixture + " --rpn " + dir + "/run/checkpoint-1 --image " +
                             dir + "/a.png --question 'What is this?' --max-new-tokens 2",
                         &out),
        1)
        << out;
    EXPECT_NE(out.find("up_proj"), std::string::npos) << out;
}
