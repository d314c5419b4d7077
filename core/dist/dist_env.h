// Where this process sits in a multi-process run, read from the environment the standard launchers set:
// torchrun (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), Open MPI's mpirun
// (OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE) and MPICH / Intel MPI (PMI_RANK, PMI_SIZE).
// scripts/launch sets the torchrun names. No torch here: plain data.
//
//   DistEnv env = distEnvFromEnvironment();   // throws sdrpn::Error naming a malformed variable
//   if (env.distributed()) { auto group = dist::Group::connect(env); ... }
//
// SDRPN_DIST_TIMEOUT (seconds, default 300) bounds every collective and every wait for another rank: a
// rank that dies or hangs makes the others fail with a message instead of waiting for ever.
#pragma once

#include <functional>
#include <string>

namespace sdrpn::dist {

struct DistEnv {
    int rank = 0;
    int worldSize = 1;
    int localRank = 0;
    int localWorldSize = 1;
    std::string masterAddr = "127.0.0.1";
    int masterPort = 29500;
    int timeoutSeconds = 300;
    std::string launcher = "none";  // "torchrun" (also scripts/launch), "mpi", "none"

    bool distributed() const { return worldSize > 1; }
    // "rank 1 of 4"
    std::string describe() const;
};

// Reads the variables through `getenv` (tests pass their own). A world of one when none is set.
DistEnv distEnvFromEnvironment(const std::function<const char*(const char*)>& getenv = {});

}  // namespace sdrpn::dist
