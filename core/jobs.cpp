#include "core/jobs.h"

#include "core/result.h"

namespace sdrpn {

void JobContext::throwIfCancelled() const {
    if (cancelRequested()) throw CancelledError();
}

void JobContext::report(std::int64_t done, std::int64_t total, const std::string& message) const {
    if (onProgress) onProgress(Progress{done, total, message});
}

JobContext& JobContext::none() {
    thread_local JobContext ctx;
    return ctx;
}

}  // namespace sdrpn
