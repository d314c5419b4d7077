#include "core/result.h"

#include <exception>
#include <new>

namespace sdrpn {

const char* statusCodeName(StatusCode code) {
    switch (code) {
        case StatusCode::Ok:
            return "ok";
        case StatusCode::Cancelled:
            return "cancelled";
        case StatusCode::Failed:
            return "failed";
        case StatusCode::OutOfMemory:
            return "out of memory";
    }
    return "unknown";
}

Status statusFromCurrentException() {
    try {
        throw;
    } catch (const CancelledError&) {
        return Status::cancelledStatus();
    } catch (const std::bad_alloc&) {
        return Status::outOfMemory("out of memory");
    } catch (const std::exception& e) {
        std::string msg = e.what();
        // LibTorch messages carry a C++ backtrace after the first line; keep what a person can read.
        if (auto pos = msg.find("\nException raised from"); pos != std::string::npos) msg.resize(pos);
        if (msg.find("out of memory") != std::string::npos ||
            msg.find("DefaultCPUAllocator: can't allocate") != std::string::npos)
            return Status::outOfMemory(msg);
        return Status::failed(msg);
    } catch (...) {
        return Status::failed("unknown error");
    }
}

}  // namespace sdrpn
