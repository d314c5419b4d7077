#include "core/host_memory.h"

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace sdrpn {

HostMemoryTuning keepHostMemory() {
#if defined(__GLIBC__)
    for (const char* name : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"})
        if (std::getenv(name)) return {false, std::string("left to the environment (") + name + " is set)"};
    constexpr int kMmapThreshold = 32 << 20;  // glibc's largest on 64-bit systems
    constexpr int kTrimThreshold = 256 << 20;
    if (mallopt(M_MMAP_THRESHOLD, kMmapThreshold) != 1 || mallopt(M_TRIM_THRESHOLD, kTrimThreshold) != 1)
        return {false, "malloc refused mallopt (not glibc's allocator)"};
    return {true, "blocks up to 32 MiB from the heap, up to 256 MiB of it kept"};
#else
    return {false, "not glibc: the C library's defaults"};
#endif
}

}  // namespace sdrpn
