#include "core/dist/group.h"

#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include <torch/torch.h>

#include "core/dist/collectives.h"
#include "core/result.h"

#if defined(SDRPN_HAVE_GLOO)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO  // what LibTorch's own build defines: ProcessGroupGloo.hpp is empty without it
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace sdrpn::dist {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kKeyPrefix = "sdrpn/";

std::vector<std::uint8_t> bytesOf(const std::string& s) {
    return {s.begin(), s.end()};
}
std::string stringOf(const std::vector<std::uint8_t>& b) {
    return {b.begin(), b.end()};
}

bool isLoopback(const std::string& addr) {
    return addr == "localhost" || addr == "::1" || addr.rfind("127.", 0) == 0;
}

}  // namespace

#if defined(SDRPN_HAVE_GLOO)

bool available() {
    return true;
}

struct Group::Impl {
    DistEnv env;
    c10::intrusive_ptr<c10d::TCPStore> store;
    c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
    std::thread heartbeat;
    std::atomic<bool> stop{false};

    ~Impl() {
        stop = true;
        if (heartbeat.joinable()) heartbeat.join();
    }

    // Runs a c10d call, turning its exceptions into an sdrpn::Error that says who saw what.
    template <class F>
    auto guard(const std::string& what, F&& f) -> decltype(f()) {
        try {
            return f();
        } catch (const Error&) {
            throw;
        } catch (const c10::Error& e) {
            fail(what, e.what_without_backtrace());
        } catch (const std::exception& e) {
            fail(what, e.what());
        }
    }

    [[noreturn]] void fail(const std::string& what, const std::string& why) const {
        std::string msg = why;
        if (const auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
        throw Error(env.describe() + ": " + what + " failed: " + msg +
                    " (another rank failed, was killed or cannot be reached; the wait limit is " +
                    std::to_string(env.timeoutSeconds) + " s, SDRPN_DIST_TIMEOUT)");
    }

    void wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
        guard(what, [&] {
            work->wait(std::chrono::milliseconds(std::int64_t(env.timeoutSeconds) * 1000));
            return 0;
        });
    }
};

std::unique_ptr<Group> Group::connect(const DistEnv& env) {
    if (!env.distributed()) throw Error("a distributed group needs WORLD_SIZE > 1");
    auto impl = std::make_unique<Impl>();
    impl->env = env;
    const auto timeout = std::chrono::milliseconds(std::int64_t(env.timeoutSeconds) * 1000);
    const std::string where = env.masterAddr + ":" + std::to_string(env.masterPort);
    impl->guard("joining the group at " + where, [&] {
        c10d::TCPStoreOptions o;
        o.port = std::uint16_t(env.masterPort);
        o.isServer = env.rank == 0;
        o.numWorkers = std::size_t(env.worldSize);
        o.waitWorkers = true;
        o.timeout = timeout;
        impl->store = c10::make_intrusive<c10d::TCPStore>(env.masterAddr, o);
        auto options = c10d::ProcessGroupGloo::Options::create(timeout);
        if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr && *ifname != '\0')
            options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
        else if (isLoopback(env.masterAddr))
            options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
        else
            options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
        auto prefixed = c10::make_intrusive<c10d::PrefixStore>("gloo", impl->store);
        impl->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, env.rank, env.worldSize, options);
        return 0;
    });
    return std::unique_ptr<Group>(new Group(std::move(impl)));
}

std::vector<double> Group::allReduceSum(const std::vector<double>& values) {
    if (values.empty()) return {};
    std::vector<at::Tensor> t{torch::tensor(values, torch::kDouble)};
    m_impl->wait(m_impl->guard("all-reduce", [&] { return m_impl->pg->allreduce(t); }), "all-reduce");
    const double* p = t[0].data_ptr<double>();
    return {p, p + values.size()};
}

void Group::barrier() {
    m_impl->wait(m_impl->guard("barrier", [&] { return m_impl->pg->barrier(); }), "barrier");
}

void Group::set(const std::string& key, const std::string& value) {
    m_impl->guard("writing '" + key + "' to the group's store", [&] {
        m_impl->store->set(kKeyPrefix + key, bytesOf(value));
        return 0;
    });
}

std::optional<std::string> Group::tryGet(const std::string& key) {
    return m_impl->guard("reading '" + key + "' from the group's store", [&]() -> std::optional<std::string> {
        if (!m_impl->store->check({kKeyPrefix + key})) return std::nullopt;
        return stringOf(m_impl->store->get(kKeyPrefix + key));
    });
}

std::int64_t Group::add(const std::string& key, std::int64_t delta) {
    return m_impl->guard("counting '" + key + "' in the group's store",
                         [&] { return m_impl->store->add(kKeyPrefix + key, delta); });
}

void Group::startHeartbeat() {
    if (m_impl->heartbeat.joinable()) return;
    // Its own connection: the main thread's may be busy in a blocking call.
    c10d::TCPStoreOptions o;
    o.port = std::uint16_t(m_impl->env.masterPort);
    o.isServer = false;
    o.waitWorkers = false;
    o.timeout = std::chrono::milliseconds(std::int64_t(m_impl->env.timeoutSeconds) * 1000);
    auto store = m_impl->guard("opening the heartbeat connection", [&] {
        return c10::make_intrusive<c10d::TCPStore>(m_impl->env.masterAddr, o);
    });
    const std::string key = std::string(kKeyPrefix) + "heartbeat/" + std::to_string(rank());
    Impl* impl = m_impl.get();
    impl->heartbeat = std::thread([impl, store, key] {
        try {
            while (!impl->stop) {
                store->add(key, 1);
                for (int i = 0; i < 10 && !impl->stop; ++i)
                    std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
        } catch (...) {
            // The store is gone (rank 0 ended): nothing left to tell.
        }
    });
}

std::int64_t Group::heartbeatOf(int r) {
    return add("heartbeat/" + std::to_string(r), 0);
}

namespace {

// Runs one collective per bucket of `tensors` (consecutive tensors of one dtype and device, up to
// bucketBytes, flattened into one): `collective` gets the flat bucket, which is then copied back.
template <class Collective>
void bucketed(Group& group, const std::vector<torch::Tensor>& tensors, std::int64_t bucketBytes,
              const std::string& what, Collective&& collective) {
    torch::NoGradGuard noGrad;
    auto bytesOf = [](const torch::Tensor& t) { return t.numel() * std::int64_t(t.element_size()); };
    std::size_t i = 0;
    while (i < tensors.size()) {
        std::size_t j = i;
        std::int64_t bytes = 0;
        while (j < tensors.size() && tensors[j].scalar_type() == tensors[i].scalar_type() &&
               tensors[j].device() == tensors[i].device() &&
               (j == i || bytes + bytesOf(tensors[j]) <= bucketBytes)) {
            bytes += bytesOf(tensors[j]);
            ++j;
        }
        std::vector<torch::Tensor> flat;
        for (std::size_t k = i; k < j; ++k) flat.push_back(tensors[k].detach().reshape(-1));
        std::vector<at::Tensor> bucket{torch::cat(flat)};
        auto& impl = group.impl();
        impl.wait(impl.guard(what, [&] { return collective(*impl.pg, bucket); }), what);
        std::int64_t offset = 0;
        for (std::size_t k = i; k < j; ++k) {
            const std::int64_t n = tensors[k].numel();
            tensors[k].detach().copy_(bucket[0].narrow(0, offset, n).view_as(tensors[k]));
            offset += n;
        }
        i = j;
    }
}

}  // namespace

void allReduceGradients(Group& group, const std::vector<torch::Tensor>& parameters,
                        std::int64_t bucketBytes) {
    std::vector<torch::Tensor> grads;
    for (const auto& p : parameters) {
        if (!p.requires_grad()) continue;
        if (!p.grad().defined()) const_cast<torch::Tensor&>(p).mutable_grad() = torch::zeros_like(p);
        grads.push_back(p.grad());
    }
    bucketed(
        group, grads, bucketBytes, "gradient all-reduce",
        [](c10d::ProcessGroupGloo& pg, std::vector<at::Tensor>& bucket) { return pg.allreduce(bucket); });
}

void broadcastParameters(Group& group, const std::vector<torch::Tensor>& parameters, int root,
                         std::int64_t bucketBytes) {
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    bucketed(group, parameters, bucketBytes, "parameter broadcast",
             [&](c10d::ProcessGroupGloo& pg, std::vector<at::Tensor>& bucket) {
                 return pg.broadcast(bucket, opts);
             });
}

#else  // no Gloo in this build

bool available() {
    return false;
}

struct Group::Impl {
    DistEnv env;
};

std::unique_ptr<Group> Group::connect(const DistEnv& env) {
    throw Error(
        env.describe() +
        ": this build has no distributed backend (LibTorch's c10d with Gloo was not found when it was "
        "configured; on Debian install libgloo-dev and reconfigure)");
}
std::vector<double> Group::allReduceSum(const std::vector<double>&) {
    throw Error("no distributed backend");
}
void Group::barrier() {
    throw Error("no distributed backend");
}
void Group::set(const std::string&, const std::string&) {
    throw Error("no distributed backend");
}
std::optional<std::string> Group::tryGet(const std::string&) {
    throw Error("no distributed backend");
}
std::int64_t Group::add(const std::string&, std::int64_t) {
    throw Error("no distributed backend");
}
void Group::startHeartbeat() {
    throw Error("no distributed backend");
}
std::int64_t Group::heartbeatOf(int) {
    throw Error("no distributed backend");
}
void allReduceGradients(Group&, const std::vector<torch::Tensor>&, std::int64_t) {
    throw Error("no distributed backend");
}
void broadcastParameters(Group&, const std::vector<torch::Tensor>&, int, std::int64_t) {
    throw Error("no distributed backend");
}

#endif

Group::Group(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Group::~Group() = default;
int Group::rank() const {
    return m_impl->env.rank;
}
int Group::size() const {
    return m_impl->env.worldSize;
}
const DistEnv& Group::env() const {
    return m_impl->env;
}

std::vector<std::string> waitForAll(Group& group, const std::string& prefix,
                                    const std::function<void()>& onPoll) {
    const int n = group.size();
    std::vector<std::optional<std::string>> values(static_cast<std::size_t>(n));
    std::vector<std::int64_t> beats(std::size_t(n), -1);
    std::vector<Clock::time_point> heard(std::size_t(n), Clock::now());
    const auto limit = std::chrono::seconds(group.env().timeoutSeconds);
    auto lastPoll = Clock::now();
    for (;;) {
        bool all = true;
        for (int r = 0; r < n; ++r) {
            auto& v = values[std::size_t(r)];
            if (!v) v = group.tryGet(prefix + std::to_string(r));
            if (v) continue;
            all = false;
            const std::int64_t beat = r == group.rank() ? beats[std::size_t(r)] + 1 : group.heartbeatOf(r);
            if (beat != beats[std::size_t(r)]) {
                beats[std::size_t(r)] = beat;
                heard[std::size_t(r)] = Clock::now();
            } else if (Clock::now() - heard[std::size_t(r)] > limit) {
                throw Error("rank " + std::to_string(r) + " of " + std::to_string(n) +
                            " stopped: no sign of life for " + std::to_string(group.env().timeoutSeconds) +
                            " s (it died or hangs; SDRPN_DIST_TIMEOUT sets the limit)");
            }
        }
        if (all) break;
        if (onPoll && Clock::now() - lastPoll >= std::chrono::seconds(1)) {
            lastPoll = Clock::now();
            onPoll();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    std::vector<std::string> out;
    for (auto& v : values) out.push_back(*v);
    return out;
}

}  // namespace sdrpn::dist
