#include "core/models/static_decoder.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "core/result.h"

#ifdef SDRPN_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace sdrpn::models {

namespace {

std::atomic<int> g_override{-1};  // -1: default; else a StaticDecodeMode

}  // namespace

StaticDecodeMode staticDecodeMode(torch::Device device) {
    const int o = g_override.load();
    if (o >= 0) return StaticDecodeMode(o);
    if (!device.is_cuda()) return StaticDecodeMode::Off;
    // Read once: this runs on every decode step.
    static const bool graphsOff = [] {
        const char* env = std::getenv("SDRPN_CUDA_GRAPHS");
        return env && (std::strcmp(env, "0") == 0 || std::strcmp(env, "off") == 0);
    }();
#ifdef SDRPN_WITH_CUDA
    return graphsOff ? StaticDecodeMode::Eager : StaticDecodeMode::Graph;
#else
    (void)graphsOff;
    return StaticDecodeMode::Eager;
#endif
}

void setStaticDecodeMode(StaticDecodeMode mode) {
    g_override.store(int(mode));
}

void clearStaticDecodeMode() {
    g_override.store(-1);
}

const char* staticDecodeModeName(StaticDecodeMode mode) {
    switch (mode) {
        case StaticDecodeMode::Off:
            return "off";
        case StaticDecodeMode::Eager:
            return "static";
        case StaticDecodeMode::Graph:
            return "cuda-graph";
    }
    return "?";
}

#ifdef SDRPN_WITH_CUDA
namespace {

// A graph cannot be captured on the legacy default stream. A thread whose current stream is another one
// (useOwnStream) captures on it; the others capture on one side stream per device, under one lock. A stream
// from the pool per capture would give each capture a cuBLAS workspace of its own that lives as long as the
// process (tens of MiB each, up to the pool's 32 streams: over 1 GiB of device memory after enough answers).
std::mutex g_captureMutex;

c10::cuda::CUDAStream captureStream(c10::DeviceIndex index) {
    static std::map<c10::DeviceIndex, c10::cuda::CUDAStream> streams;
    auto it = streams.find(index);
    if (it == streams.end()) it = streams.emplace(index, c10::cuda::getStreamFromPool(false, index)).first;
    return it->second;
}

}  // namespace

struct StaticDecoder::Graph {
    at::cuda::CUDAGraph graph;
    bool captured = false;
};
#else
struct StaticDecoder::Graph {};
#endif

void useOwnStream(torch::Device device) {
#ifdef SDRPN_WITH_CUDA
    if (!device.is_cuda()) return;
    const auto index = device.has_index() ? device.index() : c10::DeviceIndex(0);
    if (c10::cuda::getCurrentCUDAStream(index) == c10::cuda::getDefaultCUDAStream(index))
        c10::cuda::setCurrentCUDAStream(c10::cuda::getStreamFromPool(false, index));
#else
    (void)device;
#endif
}

StaticDecoder::StaticDecoder(LlamaTextModel text, KvCache& cache, torch::Device device, StaticDecodeMode mode,
                             std::int64_t ropeOffset)
    : m_text(std::move(text)), m_cache(&cache), m_device(device), m_mode(mode), m_ropeOffset(ropeOffset) {
    TORCH_CHECK(mode != StaticDecodeMode::Off, "StaticDecoder: mode off");
#ifndef SDRPN_WITH_CUDA
    if (m_mode == StaticDecodeMode::Graph) m_mode = StaticDecodeMode::Eager;  // no graphs without CUDA
#endif
    if (!device.is_cuda() && m_mode == StaticDecodeMode::Graph) m_mode = StaticDecodeMode::Eager;
    TORCH_CHECK(cache.layerCount() > 0 && cache.capacity(0) > 0, "StaticDecoder: the cache is empty");
    m_capacity = cache.capacity(0);
    for (int l = 1; l < cache.layerCount(); ++l)
        TORCH_CHECK(cache.capacity(l) == m_capacity, "StaticDecoder: layer ", l, " holds ", cache.capacity(l),
                    " positions, layer 0 ", m_capacity);
    m_storage = cache.storage(0).first.data_ptr();
    const auto longs = torch::TensorOptions().dtype(torch::kLong).device(device);
    m_token = torch::zeros({1}, longs);
    m_position = torch::zeros({1}, longs);
    if (m_ropeOffset != 0) m_ropePosition = torch::zeros({1}, longs);
    m_keyPositions = torch::arange(m_capacity, longs);
    m_graph = std::make_unique<Graph>();
}

StaticDecoder::~StaticDecoder() = default;

bool StaticDecoder::fits(const KvCache& cache, std::int64_t position, std::int64_t ropeOffset) const {
    if (ropeOffset != m_ropeOffset || cache.layerCount() == 0 || cache.capacity(0) != m_capacity ||
        position < 0 || position >= m_capacity)
        return false;
    return cache.storage(0).first.data_ptr() == m_storage;
}

bool StaticDecoder::graphed() const {
#ifdef SDRPN_WITH_CUDA
    return m_graph && m_graph->captured;
#else
    return false;
#endif
}

void StaticDecoder::run() {
    StaticStep step{m_position, m_keyPositions.le(m_position), m_ropePosition};
    m_logits = m_text->decodeStatic(m_token, step, *m_cache);
}

torch::Tensor StaticDecoder::step(const torch::Tensor& token, std::int64_t position) {
    torch::NoGradGuard noGrad;
    TORCH_CHECK(fits(*m_cache, position, m_ropeOffset), "StaticDecoder: position ", position,
                " outside the storage of ", m_capacity, " positions (or the cache was reallocated)");
    TORCH_CHECK(token.defined() && token.numel() == 1, "StaticDecoder: one token expected");
    m_token.copy_(token.reshape({1}), /*non_blocking=*/true);  // device to device: no synchronisation
    m_position.fill_(position);                                // a kernel argument, not a copy
    if (m_ropePosition.defined()) m_ropePosition.fill_(position + m_ropeOffset);
    if (m_mode == StaticDecodeMode::Eager) {
        run();
        return m_logits;
    }
#ifdef SDRPN_WITH_CUDA
    if (m_graph->captured) {
        m_graph->graph.replay();
        return m_logits.clone();
    }
    // First step: run it for real on a side stream (which also warms that stream's cuBLAS workspace), then
    // capture the same step there. Rerunning it during capture records the kernels without executing them.
    const auto index = m_device.has_index() ? m_device.index() : c10::DeviceIndex(0);
    std::lock_guard<std::mutex> captureLock(g_captureMutex);
    auto mainStream = c10::cuda::getCurrentCUDAStream(index);
    // Graphs cannot be captured on the legacy default stream; any other current stream serves as it is.
    auto side = mainStream == c10::cuda::getDefaultCUDAStream(index) ? captureStream(index) : mainStream;
    at::cuda::CUDAEvent ready, done;
    ready.record(mainStream);
    ready.block(side);
    torch::Tensor first;
    {
        c10::cuda::CUDAStreamGuard guard(side);
        run();
        first = m_logits;
        try {
            m_graph->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
            run();
            m_graph->graph.capture_end();
            m_graph->captured = true;
        } catch (const std::exception& e) {
            m_mode = StaticDecodeMode::Eager;
            throw Error(std::string("CUDA graph capture of the decode step failed (set SDRPN_CUDA_GRAPHS=0 "
                                    "to decode without graphs): ") +
                        e.what());
        }
    }
    done.record(side);
    done.block(mainStream);
    return first.clone();
#else
    run();
    return m_logits;
#endif
}

}  // namespace sdrpn::models
