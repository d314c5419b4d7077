#include "core/dist/dist_env.h"

#include <cstdlib>

#include "core/result.h"

namespace sdrpn::dist {
namespace {

int parseInt(const char* name, const char* text, int lo, int hi) {
    char* end = nullptr;
    const long v = std::strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < lo || v > hi)
        throw Error(std::string("environment variable ") + name + "='" + text +
                    "': expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return int(v);
}

}  // namespace

std::string DistEnv::describe() const {
    return "rank " + std::to_string(rank) + " of " + std::to_string(worldSize);
}

DistEnv distEnvFromEnvironment(const std::function<const char*(const char*)>& getenvFn) {
    auto get = [&](const char* name) -> const char* {
        const char* v = getenvFn ? getenvFn(name) : std::getenv(name);
        return v != nullptr && *v != '\0' ? v : nullptr;
    };
    DistEnv env;
    constexpr int kMaxRanks = 1 << 20;
    struct Names {
        const char *rank, *size, *localRank, *localSize, *launcher;
    };
    const Names kinds[] = {
        {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "torchrun"},
        {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
         "OMPI_COMM_WORLD_LOCAL_SIZE", "mpi"},
        {"PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "mpi"},
    };
    for (const Names& n : kinds) {
        const char* size = get(n.size);
        if (size == nullptr) continue;
        env.worldSize = parseInt(n.size, size, 1, kMaxRanks);
        const char* rank = get(n.rank);
        if (rank == nullptr)
            throw Error(std::string(n.size) + " is set but " + n.rank +
                        " is not: which rank is this process?");
        env.rank = parseInt(n.rank, rank, 0, env.worldSize - 1);
        env.localRank = get(n.localRank) ? parseInt(n.localRank, get(n.localRank), 0, kMaxRanks) : env.rank;
        env.localWorldSize =
            get(n.localSize) ? parseInt(n.localSize, get(n.localSize), 1, kMaxRanks) : env.worldSize;
        env.launcher = n.launcher;
        break;
    }
    if (const char* addr = get("MASTER_ADDR")) env.masterAddr = addr;
    if (const char* port = get("MASTER_PORT")) env.masterPort = parseInt("MASTER_PORT", port, 1, 65535);
    if (const char* t = get("SDRPN_DIST_TIMEOUT"))
        env.timeoutSeconds = parseInt("SDRPN_DIST_TIMEOUT", t, 1, 7 * 24 * 3600);
    return env;
}

}  // namespace sdrpn::dist
