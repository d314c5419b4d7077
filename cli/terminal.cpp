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
    // At most ~10 updates a second, but always the last one.
    static auto last = std::chrono::steady_clock::time_point{};
    const auto now = std::chrono::steady_clock::now();
    if (fraction < 1 && now - last < std::chrono::milliseconds(100)) return;
    last = now;
    std::fprintf(stderr, "\r[%3d%%] %-60.60s", int(fraction * 100 + 0.5), message.c_str());
    if (fraction >= 1) std::fprintf(stderr, "\n");
    std::fflush(stderr);
}

}  // namespace sdrpn::cli
