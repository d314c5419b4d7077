// Host memory for CPU inference. glibc's malloc serves blocks above its mmap threshold (128 KiB at first,
// raised on the fly) with freshly mapped pages, unmaps them again on free, and trims the top of its heap
// once 128 KiB are free there. A CPU forward pass allocates and frees activations of a few MiB per layer,
// so each of them page-faults its memory in again: on the development machine that made a 621-token
// prefill of the demo model take 1.6× as long as it needs to, by how its temporaries happened to fall
// against the thresholds (docs/benchmarks.md). keepHostMemory() fixes both thresholds, so that blocks up to
// 32 MiB come from the heap and up to 256 MiB of freed heap stay with the process. The programs call it
// first thing; the library never does.
//
//   int main() { sdrpn::keepHostMemory(); ... }
#pragma once

#include <string>

namespace sdrpn {

struct HostMemoryTuning {
    bool applied = false;
    std::string detail;  // what was set, or why nothing was
};

// Sets glibc's M_MMAP_THRESHOLD to 32 MiB and M_TRIM_THRESHOLD to 256 MiB, unless the environment sets
// MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ or GLIBC_TUNABLES (then the user's choice stands), the C
// library is not glibc, or malloc is not glibc's (a sanitizer's, a preloaded jemalloc refuses mallopt).
HostMemoryTuning keepHostMemory();

}  // namespace sdrpn
