// The launch environment of a multi-process run (core/dist/dist_env.h): torchrun's and MPI's variables,
// defaults, and a clear error for malformed values.
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "core/dist/dist_env.h"
#include "core/result.h"

using namespace sdrpn;

namespace {

dist::DistEnv envOf(const std::map<std::string, std::string>& vars) {
    return dist::distEnvFromEnvironment([&](const char* name) -> const char* {
        auto it = vars.find(name);
        return it == vars.end() ? nullptr : it->second.c_str();
    });
}

std::string errorOf(const std::map<std::string, std::string>& vars) {
    try {
        envOf(vars);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(DistEnv, NothingSetIsAWorldOfOne) {
    const dist::DistEnv env = envOf({});
    EXPECT_FALSE(env.distributed());
    EXPECT_EQ(env.rank, 0);
    EXPECT_EQ(env.worldSize, 1);
    EXPECT_EQ(env.masterPort, 29500);
    EXPECT_EQ(env.timeoutSeconds, 300);
    EXPECT_EQ(env.launcher, "none");
}

TEST(DistEnv, ReadsTorchrunsVariables) {
    const dist::DistEnv env = envOf({{"RANK", "5"},
                                     {"WORLD_SIZE", "8"},
                                     {"LOCAL_RANK", "1"},
                                     {"LOCAL_WORLD_SIZE", "4"},
                                     {"MASTER_ADDR", "node0"},
                                     {"MASTER_PORT", "29555"},
                                     {"SDRPN_DIST_TIMEOUT", "42"}});
    EXPECT_TRUE(env.distributed());
    EXPECT_EQ(env.rank, 5);
    EXPECT_EQ(env.worldSize, 8);
    EXPECT_EQ(env.localRank, 1);
    EXPECT_EQ(env.localWorldSize, 4);
    EXPECT_EQ(env.masterAddr, "node0");
    EXPECT_EQ(env.masterPort, 29555);
    EXPECT_EQ(env.timeoutSeconds, 42);
    EXPECT_EQ(env.launcher, "torchrun");
    EXPECT_EQ(env.describe(), "rank 5 of 8");
}

TEST(DistEnv, ReadsOpenMpisAndMpichsVariables) {
    const dist::DistEnv ompi = envOf({{"OMPI_COMM_WORLD_RANK", "3"},
                                      {"OMPI_COMM_WORLD_SIZE", "4"},
                                      {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                      {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
    EXPECT_EQ(ompi.rank, 3);
    EXPECT_EQ(ompi.worldSize, 4);
    EXPECT_EQ(ompi.localRank, 1);
    EXPECT_EQ(ompi.launcher, "mpi");
    const dist::DistEnv pmi = envOf({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}});
    EXPECT_EQ(pmi.rank, 1);
    EXPECT_EQ(pmi.worldSize, 2);
    EXPECT_EQ(pmi.localRank, 1);  // no local rank given: the global one
    // torchrun's names win when both are there (torchrun started under mpirun).
    EXPECT_EQ(envOf({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"PMI_RANK", "1"}, {"PMI_SIZE", "2"}}).rank, 0);
}

TEST(DistEnv, MalformedValuesNameTheVariable) {
    EXPECT_NE(errorOf({{"WORLD_SIZE", "two"}, {"RANK", "0"}}).find("WORLD_SIZE='two'"), std::string::npos);
    EXPECT_NE(errorOf({{"WORLD_SIZE", "2"}, {"RANK", "2"}}).find("RANK='2'"), std::string::npos);
    EXPECT_NE(errorOf({{"WORLD_SIZE", "2"}}).find("RANK is not"), std::string::npos);
    EXPECT_NE(errorOf({{"MASTER_PORT", "70000"}}).find("MASTER_PORT"), std::string::npos);
    EXPECT_NE(errorOf({{"SDRPN_DIST_TIMEOUT", "0"}}).find("SDRPN_DIST_TIMEOUT"), std::string::npos);
    EXPECT_NE(errorOf({{"WORLD_SIZE", "0"}, {"RANK", "0"}}).find("WORLD_SIZE"), std::string::npos);
}
