#include "core/models/device_stats.h"

#include <sys/resource.h>

#ifdef SDRPN_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace sdrpn::models {

void synchronizeDevice(torch::Device device) {
    if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : -1);
}

bool builtWithCuda() {
#ifdef SDRPN_WITH_CUDA
    return true;
#else
    return false;
#endif
}

MemoryStats memoryStats(torch::Device device) {
    MemoryStats out;
    if (device.is_cuda()) {
#ifdef SDRPN_WITH_CUDA
        const int index = device.has_index() ? device.index() : 0;
        torch::empty({1}, torch::TensorOptions().device(device));  // the allocator exists after a first use
        const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
        out.peakBytes = stats.allocated_bytes[0].peak;  // [0]: the aggregate over all pools
        out.currentBytes = stats.allocated_bytes[0].current;
        out.reservedBytes = stats.reserved_bytes[0].current;
        out.source = "cuda caching allocator";
#else
        out.source = "unknown (LibTorch without CUDA headers)";
#endif
        return out;
    }
    rusage usage{};
    if (getrusage(RUSAGE_SELF, &usage) == 0) out.peakBytes = std::int64_t(usage.ru_maxrss) * 1024;
    out.source = "peak resident set of the process";
    return out;
}

void resetPeakMemory(torch::Device device) {
#ifdef SDRPN_WITH_CUDA
    if (device.is_cuda()) {
        torch::empty({1}, torch::TensorOptions().device(device));  // the allocator exists after a first use
        c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : 0);
    }
#else
    (void)device;
#endif
}

void releaseCachedMemory(torch::Device device) {
#ifdef SDRPN_WITH_CUDA
    if (device.is_cuda()) {
        synchronizeDevice(device);
        c10::cuda::CUDACachingAllocator::emptyCache();
    }
#else
    (void)device;
#endif
}

}  // namespace sdrpn::models
