#include "core/io/weight_convert.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "core/result.h"

namespace fs = std::filesystem;

namespace sdrpn::io {

namespace {

bool endsWith(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Files that hold weights (rewritten, not copied).
bool isWeightsFile(const std::string& name) {
    for (const char* suffix :
         {".bin", ".bin.index.json", ".safetensors", ".safetensors.index.json", ".pt", ".pth"})
        if (endsWith(name, suffix)) return true;
    return false;
}

std::string shardName(int index, int count) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", index, count);
    return buf;
}

// Removes what a failed conversion wrote (and the output folder when it made it).
struct Cleanup {
    std::vector<fs::path> files;
    fs::path createdDir;
    bool armed = true;
    ~Cleanup() {
        if (!armed) return;
        std::error_code ec;
        for (const fs::path& f : files) fs::remove(f, ec);
        if (!createdDir.empty()) fs::remove(createdDir, ec);  // only when empty
    }
};

}  // namespace

ConvertReport convertToSafetensors(const std::string& inDir, const std::string& outDir, JobContext& job,
                                   std::uint64_t maxShardBytes) {
    std::error_code ec;
    if (!fs::exists(inDir, ec)) throw Error("convert: no such model folder or file: " + inDir);
    if (outDir.empty()) throw Error("convert: no output folder given");
    if (fs::exists(outDir, ec)) {
        if (fs::equivalent(inDir, outDir, ec))
            throw Error("convert: the output folder " + outDir + " is the input");
        if (!fs::is_directory(outDir, ec))
            throw Error("convert: the output " + outDir + " exists and is not a folder");
        if (!fs::is_empty(outDir, ec)) throw Error("convert: the output folder " + outDir + " is not empty");
    }

    auto archive = SafetensorsArchive::open(inDir);
    const std::vector<std::string> names = archive->names();
    if (names.empty()) throw Error("convert: " + inDir + " holds no tensors");

    // Plan the shards: tensors in name order, a new shard when the next one would pass the limit.
    std::vector<std::vector<std::string>> shards(1);
    std::uint64_t shardBytes = 0, totalBytes = 0;
    for (const std::string& name : names) {
        const std::uint64_t n = archive->info(name).nbytes();
        if (!shards.back().empty() && shardBytes + n > maxShardBytes) {
            shards.emplace_back();
            shardBytes = 0;
        }
        shards.back().push_back(name);
        shardBytes += n;
        totalBytes += n;
    }

    Cleanup cleanup;
    if (!fs::exists(outDir, ec)) {
        fs::create_directories(outDir, ec);
        if (ec) throw Error("convert: cannot create the output folder " + outDir + ": " + ec.message());
        cleanup.createdDir = outDir;
    }
    const fs::path out(outDir);
    ConvertReport report;
    report.out = outDir;

    const std::int64_t total = std::int64_t(names.size());
    const std::map<std::string, std::string> metadata = {{"format", "pt"}};
    nlohmann::ordered_json weightMap = nlohmann::ordered_json::object();
    try {
        for (std::size_t s = 0; s < shards.size(); ++s) {
            const std::string file =
                shards.size() == 1 ? "model.safetensors" : shardName(int(s) + 1, int(shards.size()));
            std::vector<TensorRecord> records;
            std::vector<RawTensor> keep;  // keeps the mappings alive while writing
            for (const std::string& name : shards[s]) {
                RawTensor raw = archive->raw(name);
                records.push_back({name, raw.info->dtype, raw.info->shape, raw.data});
                keep.push_back(std::move(raw));
                weightMap[name] = file;
            }
            job.throwIfCancelled();
            writeSafetensors((out / file).string(), records, metadata, [&](const TensorRecord& r) {
                job.throwIfCancelled();
                job.report(report.tensors, total, "writing " + file + ": " + r.name);
                ++report.tensors;
            });
            cleanup.files.push_back(out / file);
            ++report.shards;
        }
        report.bytes = totalBytes;
        if (shards.size() > 1) {
            nlohmann::ordered_json index = {{"metadata", {{"total_size", totalBytes}}},
                                            {"weight_map", weightMap}};
            const fs::path indexPath = out / "model.safetensors.index.json";
            cleanup.files.push_back(indexPath);
            std::ofstream os(indexPath);
            os << index.dump(2) << "\n";
            if (!os.flush()) throw Error("cannot write " + indexPath.string());
        }
        // Everything else of the folder: configs, tokenizer, preprocessor.
        if (fs::is_directory(inDir, ec)) {
            std::vector<std::string> others;
            for (fs::directory_iterator it(inDir, ec), end; !ec && it != end; it.increment(ec)) {
                std::error_code typeEc;
                const std::string name = it->path().filename().string();
                if (it->is_regular_file(typeEc) && !isWeightsFile(name)) others.push_back(name);
            }
            if (ec) throw Error("cannot list folder " + inDir + ": " + ec.message());
            std::sort(others.begin(), others.end());
            for (const std::string& name : others) {
                job.throwIfCancelled();
                cleanup.files.push_back(out / name);
                fs::copy_file(fs::path(inDir) / name, out / name, ec);
                if (ec)
                    throw Error("cannot copy " + (fs::path(inDir) / name).string() + " to " + outDir + ": " +
                                ec.message());
                report.copied.push_back(name);
            }
        }
        job.report(total, total, "done");
    } catch (const Error& e) {
        throw Error(std::string("convert: ") + e.what() + " (nothing was left in " + outDir + ")");
    }
    cleanup.armed = false;
    return report;
}

}  // namespace sdrpn::io
