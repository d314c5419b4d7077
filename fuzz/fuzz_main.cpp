// One libFuzzer executable per target of harness.h; SDRPN_FUZZ_TARGET names it.
#include <cstdio>
#include <cstdlib>

#include "fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const sdrpn::fuzz::Target* target = [] {
        const sdrpn::fuzz::Target* t = sdrpn::fuzz::findTarget(SDRPN_FUZZ_TARGET);
        if (t == nullptr) {
            std::fprintf(stderr, "no fuzz target '%s'\n", SDRPN_FUZZ_TARGET);
            std::abort();
        }
        return t;
    }();
    return target->run(data, size);
}
