// The store shards of a multi-process labeling run (`sdrpn label` started as N ranks): rank r labels the
// dataset entries r, r+N, r+2N, ... into its own store, <store>.shards/rank-<r>.sdrpn, and rank 0 merges
// the shards into <store> at the end. Shards left by a run that died are merged when the next run starts,
// so a rerun (with any number of ranks) labels only what is still missing.
//
//   for (const auto& shard : shardStores("labels.sdrpn")) ...;     // leftovers of an earlier run
//   ShardMerge m = mergeShards(store, shardStores(store.path()), job);
#pragma once

#include <string>
#include <vector>

#include "core/data/label_store.h"
#include "core/jobs.h"

namespace sdrpn::data {

// <store>.shards/rank-<r>.sdrpn
std::string shardStorePath(const std::string& store, int rank);
// The shard stores that exist for `store`, ordered by rank.
std::vector<std::string> shardStores(const std::string& store);

struct ShardMerge {
    MergeReport report;               // summed over the shards
    std::vector<std::string> merged;  // shards merged and removed
    std::vector<std::string> kept;    // shards kept: they had conflicts (see report) or failed to merge
    std::vector<std::string> errors;  // "shard: why" for the ones that failed
};

// Merges every shard into `store` and removes it (with its -wal and -shm files, and the shards folder
// when it ends up empty); a shard with conflicts is kept so that nothing it holds is lost. Cancel through
// `job` stops between shards (samples merged so far stay merged).
ShardMerge mergeShards(LabelStore& store, const std::vector<std::string>& shards, JobContext& job);

}  // namespace sdrpn::data
