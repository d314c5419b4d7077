#include "core/data/label_shards.h"

#include <algorithm>
#include <filesystem>
#include <regex>

namespace fs = std::filesystem;

namespace sdrpn::data {
namespace {

fs::path shardFolder(const std::string& store) {
    return fs::path(store + ".shards");
}

}  // namespace

std::string shardStorePath(const std::string& store, int rank) {
    return (shardFolder(store) / ("rank-" + std::to_string(rank) + ".sdrpn")).string();
}

std::vector<std::string> shardStores(const std::string& store) {
    std::vector<std::pair<long, std::string>> found;
    std::error_code ec;
    static const std::regex name(R"(rank-([0-9]{1,9})\.sdrpn)");
    for (const auto& entry : fs::directory_iterator(shardFolder(store), ec)) {
        std::smatch m;
        const std::string file = entry.path().filename().string();
        if (entry.is_regular_file(ec) && std::regex_match(file, m, name))
            found.emplace_back(std::stol(m[1].str()), entry.path().string());
    }
    std::sort(found.begin(), found.end());
    std::vector<std::string> out;
    for (auto& f : found) out.push_back(std::move(f.second));
    return out;
}

ShardMerge mergeShards(LabelStore& store, const std::vector<std::string>& shards, JobContext& job) {
    ShardMerge result;
    for (const auto& shard : shards) {
        if (job.cancelRequested()) {
            result.kept.push_back(shard);
            continue;
        }
        try {
            const MergeReport r = store.mergeFrom(shard, job);
            result.report.added += r.added;
            result.report.duplicates += r.duplicates;
            result.report.conflicts.insert(result.report.conflicts.end(), r.conflicts.begin(),
                                           r.conflicts.end());
            if (!r.conflicts.empty()) {
                result.kept.push_back(shard);
                continue;
            }
        } catch (const CancelledError&) {
            result.kept.push_back(shard);
            continue;
        } catch (const std::exception& e) {
            result.errors.push_back(shard + ": " + e.what());
            result.kept.push_back(shard);
            continue;
        }
        std::error_code ec;
        for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(shard + suffix, ec);
        result.merged.push_back(shard);
    }
    std::error_code ec;
    const fs::path folder = shardFolder(store.path());
    if (fs::is_directory(folder, ec) && fs::is_empty(folder, ec)) fs::remove(folder, ec);
    return result;
}

}  // namespace sdrpn::data
