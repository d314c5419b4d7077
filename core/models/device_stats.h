// What a benchmark or a status line asks of the compute device: wait for it, and how much memory the run
// took. CUDA figures come from LibTorch's caching allocator (bytes handed to tensors, as
// torch.cuda.max_memory_allocated reports them); on the CPU the process's peak resident set stands in.
#pragma once

#include <cstdint>
#include <string>

#include <torch/torch.h>

namespace sdrpn::models {

// Blocks until the device has finished everything queued (no-op on the CPU).
void synchronizeDevice(torch::Device device);

struct MemoryStats {
    std::int64_t peakBytes = -1;  // since the last resetPeakMemory (CUDA) or process start (CPU); -1: unknown
    std::int64_t currentBytes = -1;   // allocated now (CUDA); -1 on the CPU
    std::int64_t reservedBytes = -1;  // held by the caching allocator now, cached blocks included (CUDA)
    std::string source;               // "cuda caching allocator", "peak resident set", ...
};

MemoryStats memoryStats(torch::Device device);
void resetPeakMemory(torch::Device device);
// Hands the caching allocator's unused blocks back to the driver (CUDA; no-op elsewhere). Synchronises.
void releaseCachedMemory(torch::Device device);

// Whether this build has LibTorch's CUDA parts (graphs, allocator statistics).
bool builtWithCuda();

}  // namespace sdrpn::models
