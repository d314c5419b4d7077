#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>

#include <unistd.h>

#include "cli/commands.h"
#include "core/jobs.h"

namespace sdrpn::cli {
namespace {
std::atomic<sdrpn::JobContext*> g_job{nullptr};
std::atomic<int> g_interrupts{0};

extern "C" void onInterrupt(int) {
    if (g_interrupts.fetch_add(1) >= 1) std::_Exit(kExitCancelled);
    if (auto* ctx = g_job.load()) ctx->requestCancel();
    const char msg[] = "\ninterrupted: finishing the step in flight (Ctrl-C again to quit at once)\n";
    ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
}
}  // namespace

void cancelOnInterrupt(void* jobContext) {
    g_job.store(static_cast<sdrpn::JobContext*>(jobContext));
    std::signal(SIGINT, onInterrupt);
    std::signal(SIGTERM, onInterrupt);
}

void printProgress(double fraction, const std::string& message) {
    if (fraction < 0) fraction = 0;
    if (fraction > 1) fraction = 1;
    // A terminal gets one line redrawn at most ~10 times a second; a log file or pipe gets whole lines, at
    // most one every 5 s. The last update always prints.
    static const bool tty = ::isatty(STDERR_FILENO) == 1;
    static auto last = std::chrono::steady_clock::time_point{};
    const auto now = std::chrono::steady_clock::now();
    const auto every = tty ? std::chrono::milliseconds(100) : std::chrono::milliseconds(5000);
    if (fraction < 1 && now - last < every) return;
    last = now;
    if (tty) {
        std::fprintf(stderr, "\r[%3d%%] %-60.60s", int(fraction * 100 + 0.5), message.c_str());
        if (fraction >= 1) std::fprintf(stderr, "\n");
    } else {
        std::fprintf(stderr, "[%3d%%] %s\n", int(fraction * 100 + 0.5), message.c_str());
    }
    std::fflush(stderr);
}

int exitCodeOf(const std::string& command, const Status& status, const char* prefix) {
    if (status.ok()) return kExitOk;
    std::fprintf(stderr, "%ssdrpn %s: %s\n", prefix, command.c_str(),
                 status.cancelled() ? "cancelled" : status.message.c_str());
    return status.cancelled() ? kExitCancelled : kExitFailed;
}

void printStreamed(const std::string& piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
}

}  // namespace sdrpn::cli
