// JobContext: the one cancel + progress contract of every long operation in the core (loading, labeling,
// training, evaluation, generation).
//
// The caller owns the context and may call requestCancel() from any thread. The worker calls report() as it
// goes and throwIfCancelled() at safe points; the CancelledError it throws becomes StatusCode::Cancelled at
// the edge (see guarded() in result.h). The progress callback runs on the worker's thread: a GUI must
// forward it through a queued signal.
//
//   JobContext ctx;
//   ctx.onProgress = [](const Progress& p) { std::cerr << p.fraction() << " " << p.message << "\n"; };
//   auto r = loadModel(dir, ctx);
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

namespace sdrpn {

struct Progress {
    std::int64_t done = 0;
    std::int64_t total = 0;  // 0 when unknown
    std::string message;
    double fraction() const { return total > 0 ? double(done) / double(total) : 0.0; }
};

class JobContext {
public:
    std::function<void(const Progress&)> onProgress;

    void requestCancel() { m_cancel.store(true, std::memory_order_relaxed); }
    bool cancelRequested() const { return m_cancel.load(std::memory_order_relaxed); }
    void throwIfCancelled() const;
    void report(std::int64_t done, std::int64_t total, const std::string& message = {}) const;

    // A context that never cancels and reports nowhere, for callers that do not care.
    static JobContext& none();

private:
    std::atomic<bool> m_cancel{false};
};

}  // namespace sdrpn
