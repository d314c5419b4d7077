// A group of processes that work on one job: PyTorch's distributed layer (c10d), set up the standard way.
// Rank 0 hosts a TCPStore at MASTER_ADDR:MASTER_PORT, every rank joins it, and a ProcessGroupGloo over it
// carries the collectives (CPU tensors, and CUDA tensors through the host). The store also carries small
// key-value messages: progress, heartbeats, "done".
//
//   DistEnv env = distEnvFromEnvironment();
//   std::unique_ptr<Group> g = Group::connect(env);          // waits for all ranks (SDRPN_DIST_TIMEOUT)
//   std::vector<double> v = g->allReduceSum({loss, cells});  // every rank gets the sums
//   g->set("progress/" + std::to_string(g->rank()), "...");
//   allReduceGradients(*g, params);                           // collectives.h (LibTorch)
//
// Failures: every call throws sdrpn::Error saying which rank saw what ("rank 0 of 2: all-reduce failed:
// ... Connection reset by peer; another rank failed, was killed or cannot be reached"). A dead peer is
// noticed at once (its sockets close); a hung one after the timeout.
// Thread affinity: one thread uses a Group; the heartbeat runs on its own thread with its own connection.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dist/dist_env.h"

namespace sdrpn::dist {

// Whether this build can form groups (LibTorch with Gloo); false: connect() throws and says so.
bool available();

class Group {
public:
    struct Impl;

    // Joins the group described by `env` (which must be distributed()). Throws sdrpn::Error naming the
    // address and what failed (port taken, master unreachable within the timeout, no Gloo in this build).
    static std::unique_ptr<Group> connect(const DistEnv& env);
    ~Group();
    Group(const Group&) = delete;
    Group& operator=(const Group&) = delete;

    int rank() const;
    int size() const;
    const DistEnv& env() const;

    // Collectives (every rank must call them in the same order).
    std::vector<double> allReduceSum(const std::vector<double>& values);
    void barrier();

    // The rendezvous store (any rank, any time).
    void set(const std::string& key, const std::string& value);
    std::optional<std::string> tryGet(const std::string& key);  // nullopt when not set yet
    std::int64_t add(const std::string& key, std::int64_t delta);

    // Heartbeats: a thread that bumps "heartbeat/<rank>" every second, so that the others can tell a rank
    // that works from one that died (heartbeatOf stops changing).
    void startHeartbeat();
    std::int64_t heartbeatOf(int rank);

    Impl& impl() { return *m_impl; }

private:
    explicit Group(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

// Waits until every rank has set "<prefix><rank>", watching the heartbeats: throws sdrpn::Error naming the
// rank whose heartbeat stopped for longer than the group's timeout. `onPoll` (may be empty) runs about once
// a second while waiting (progress printing). Returns the values, index = rank.
std::vector<std::string> waitForAll(Group& group, const std::string& prefix,
                                    const std::function<void()>& onPoll = {});

}  // namespace sdrpn::dist
