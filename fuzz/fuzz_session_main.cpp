// The libFuzzer executable of the session target (fuzz/session_target.h).
#include "fuzz/session_target.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return sdrpn::fuzz::runSession(data, size);
}
