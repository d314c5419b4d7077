#include "core/pipeline/checkpoint_merge.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/io/config.h"
#include "core/io/safetensors.h"
#include "core/models/deepseek_vl.h"
#include "core/models/llava.h"
#include "core/models/qwen2_5_vl.h"
#include "core/models/unfilled_checkpoint.h"
#include "core/models/weights.h"

namespace sdrpn::pipeline {
namespace {

namespace fs = std::filesystem;

bool startsWith(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

bool endsWith(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A model family as far as merging needs it: how stored keys map to canonical names and the decoder config.
struct Family {
    std::string name;
    models::KeyNormaliser normalise;
    std::function<io::LlamaConfig(const std::string&)> textConfig;
};

Family familyOf(const std::string& dir) {
    const std::string type = io::readModelType(dir).modelType;
    if (startsWith(type, "llava"))
        return {"llava", models::normaliseLlavaKey,
                [](const std::string& d) { return io::readLlavaConfig(d).text; }};
    if (type == "qwen2_5_vl")
        return {type, models::normaliseQwenVlKey,
                [](const std::string& d) { return io::readQwenVlConfig(d).text; }};
    if (type == "deepseek_vl")
        return {type, models::normaliseDeepseekVlKey,
                [](const std::string& d) { return io::readDeepseekVlConfig(d).text; }};
    throw Error(dir + ": model_type '" + type +
                "' cannot be merged (supported: llava, qwen2_5_vl, deepseek_vl)");
}

// Files that hold weights (never copied: the merged folder has its own).
bool isWeightFile(const std::string& name) {
    for (const char* suffix :
         {".safetensors", ".index.json", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf"})
        if (endsWith(name, suffix)) return true;
    return false;
}

// Maps canonical names back to a checkpoint's stored key layout. Learns from the checkpoint's own keys which
// canonical prefix each stored prefix stands for (their shared dotted tail removed): an original-LLaVA
// checkpoint gives "language_model." -> "", a llava-hf one "" -> "". A name is given the first learnt
// prefix (most used first) whose result normalises back to it, else its canonical name when that
// normalises to itself (every family accepts its canonical names).
class KeyLayout {
public:
    KeyLayout(const io::SafetensorsArchive& checkpoint, models::KeyNormaliser normalise)
        : m_normalise(std::move(normalise)) {
        std::map<std::pair<std::string, std::string>, std::size_t> counts;
        for (const auto& stored : checkpoint.names()) {
            m_taken.insert(stored);
            const std::string canonical = m_normalise(stored);
            if (canonical.empty()) continue;
            std::size_t i = stored.size(), j = canonical.size();
            while (i > 0 && j > 0 && stored[i - 1] == canonical[j - 1]) --i, --j;
            // Start the shared tail at a name component in both.
            while (!((i == 0 || stored[i - 1] == '.') && (j == 0 || canonical[j - 1] == '.'))) {
                const auto dot = stored.find('.', i);
                const std::size_t step = dot == std::string::npos ? stored.size() - i : dot + 1 - i;
                i += step;
                j += step;
            }
            ++counts[{canonical.substr(0, j), stored.substr(0, i)}];
        }
        for (const auto& [rule, count] : counts) m_rules.push_back({rule.first, rule.second, count});
        std::stable_sort(m_rules.begin(), m_rules.end(), [](const Rule& a, const Rule& b) {
            return a.count != b.count ? a.count > b.count : a.canonical.size() > b.canonical.size();
        });
    }

    // The stored name for `canonical`; throws when no layout rule gives one.
    std::string storedName(const std::string& canonical) {
        for (const Rule& r : m_rules) {
            if (!startsWith(canonical, r.canonical)) continue;
            const std::string candidate = r.stored + canonical.substr(r.canonical.size());
            if (m_normalise(candidate) == canonical && m_taken.insert(candidate).second) return candidate;
        }
        if (m_normalise(canonical) == canonical && m_taken.insert(canonical).second) return canonical;
        throw Error("cannot name " + canonical + " in the checkpoint's key layout");
    }

private:
    struct Rule {
        std::string canonical, stored;
        std::size_t count;
    };
    models::KeyNormaliser m_normalise;
    std::vector<Rule> m_rules;
    std::set<std::string> m_taken;
};

// One tensor to write: where it is read from and the key it gets.
struct Planned {
    std::shared_ptr<const io::SafetensorsArchive> archive;
    std::string sourceName;
    std::string outName;
    std::uint64_t nbytes = 0;
};

std::int64_t numelOf(const std::vector<std::int64_t>& shape) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
}

void checkOutFolder(const std::string& outDir) {
    std::error_code ec;
    const fs::path out(outDir);
    if (!fs::exists(out, ec)) return;
    if (!fs::is_directory(out, ec))
        throw Error(outDir + " already exists and is not a folder: pick a new folder");
    if (!fs::is_empty(out, ec)) throw Error(outDir + " already exists and is not empty: pick a new folder");
}

std::vector<std::string> plainFiles(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir))
        if (entry.is_regular_file() && !isWeightFile(entry.path().filename().string()))
            names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

void writeIndex(const fs::path& path, const std::vector<Planned>& plan,
                const std::vector<std::size_t>& shardOf, const std::vector<std::string>& shards,
                std::uint64_t totalBytes) {
    nlohmann::json map = nlohmann::json::object();
    for (std::size_t i = 0; i < plan.size(); ++i) map[plan[i].outName] = shards[shardOf[i]];
    const nlohmann::json index = {{"metadata", {{"total_size", totalBytes}}}, {"weight_map", map}};
    std::ofstream out(path);
    out << index.dump(2) << "\n";
    if (!out) throw Error("cannot write " + path.string());
}

MergeReport merge(const std::string& rpnDir, const std::string& baseDir, const std::string& outDir,
                  JobContext& job, const MergeOptions& options) {
    if (options.maxShardBytes == 0) throw Error("merge: the shard size must be positive");
    checkOutFolder(outDir);
    job.report(0, 0, "reading " + rpnDir + " and " + baseDir);
    const Family family = familyOf(rpnDir);
    const Family baseFamily = familyOf(baseDir);
    if (baseFamily.name != family.name)
        throw Error(models::baseMismatchPrefix(rpnDir, baseDir) + ": the checkpoint is a " + family.name +
                    " model and the base a " + baseFamily.name + " model (config model_type)");
    models::checkBaseConfig(family.textConfig(rpnDir), family.textConfig(baseDir), rpnDir, baseDir);

    auto checkpoint = io::SafetensorsArchive::open(rpnDir);
    auto base = io::SafetensorsArchive::open(baseDir);
    models::WeightSource source;
    source.addArchive(checkpoint, family.normalise);
    // An original-LLaVA checkpoint without a vision tower reads its CLIP folder: take none from the base.
    models::KeyNormaliser baseNormalise = family.normalise;
    if (family.name == "llava" && io::readLlavaConfig(rpnDir).layout == io::LlavaLayout::Original &&
        !source.find("vision_tower.vision_model.embeddings.patch_embedding.weight"))
        baseNormalise = [](const std::string& key) {
            const std::string c = models::normaliseLlavaKey(key);
            return startsWith(c, "vision_tower.") ? std::string() : c;
        };
    source.addMissingFrom(base, baseNormalise, models::baseMismatchPrefix(rpnDir, baseDir));
    job.throwIfCancelled();

    // Every checkpoint tensor as stored, then the base's additions under the checkpoint's layout.
    std::vector<Planned> plan;
    for (const auto& name : checkpoint->names())
        plan.push_back({checkpoint, name, name, checkpoint->info(name).nbytes()});
    const std::size_t fromCheckpoint = plan.size();
    KeyLayout layout(*checkpoint, family.normalise);
    for (const auto& canonical : source.names()) {
        const auto* e = source.find(canonical);
        if (e->archive != base) continue;
        plan.push_back(
            {base, e->storedName, layout.storedName(canonical), base->info(e->storedName).nbytes()});
    }

    // Shards in order, each at most maxShardBytes (a bigger single tensor gets a shard of its own).
    std::vector<std::size_t> shardOf(plan.size());
    std::vector<std::uint64_t> shardBytes;
    std::uint64_t totalBytes = 0;
    for (std::size_t i = 0; i < plan.size(); ++i) {
        if (shardBytes.empty() ||
            (shardBytes.back() > 0 && shardBytes.back() + plan[i].nbytes > options.maxShardBytes))
            shardBytes.push_back(0);
        shardBytes.back() += plan[i].nbytes;
        shardOf[i] = shardBytes.size() - 1;
        totalBytes += plan[i].nbytes;
    }
    std::vector<std::string> shards;
    if (shardBytes.size() == 1) {
        shards.push_back("model.safetensors");
    } else {
        for (std::size_t s = 0; s < shardBytes.size(); ++s) {
            char name[64];
            std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shardBytes.size());
            shards.push_back(name);
        }
    }

    // Written under a temporary name beside outDir, renamed when complete.
    const fs::path out = fs::absolute(fs::path(outDir)).lexically_normal();
    const fs::path parent = out.has_filename() ? out.parent_path() : out.parent_path().parent_path();
    const std::string leaf =
        out.has_filename() ? out.filename().string() : out.parent_path().filename().string();
    const fs::path finalDir = parent / leaf;
    const fs::path tmp = parent / ("." + leaf + ".merging");
    std::error_code ec;
    fs::create_directories(parent, ec);
    fs::remove_all(tmp, ec);
    fs::create_directory(tmp, ec);
    if (ec) throw Error("cannot create " + tmp.string() + ": " + ec.message());

    MergeReport report;
    report.outDir = finalDir.string();
    report.checkpointTensors = fromCheckpoint;
    report.baseTensors = plan.size() - fromCheckpoint;
    report.bytes = totalBytes;
    report.shards = shards;
    try {
        const auto total = std::int64_t(totalBytes);
        std::int64_t done = 0;
        std::size_t next = 0;
        for (std::size_t s = 0; s < shards.size(); ++s) {
            // The bytes go straight from the source files' mappings to the shard.
            std::vector<io::RawTensor> raws;
            std::vector<io::TensorRecord> records;
            for (; next < plan.size() && shardOf[next] == s; ++next) {
                const Planned& p = plan[next];
                raws.push_back(p.archive->raw(p.sourceName));
                records.push_back(
                    {p.outName, raws.back().info->dtype, raws.back().info->shape, raws.back().data});
            }
            io::writeSafetensors((tmp / shards[s]).string(), records, {{"format", "pt"}},
                                 [&](const io::TensorRecord& r) {
                                     job.throwIfCancelled();
                                     job.report(done, total, shards[s] + ": " + r.name);
                                     done += std::int64_t(io::dtypeSize(r.dtype)) * numelOf(r.shape);
                                 });
            job.report(done, total, "wrote " + shards[s]);
        }
        if (shards.size() > 1)
            writeIndex(tmp / "model.safetensors.index.json", plan, shardOf, shards, totalBytes);

        // config.json and the rest from the checkpoint; the base's other files where the checkpoint has none.
        std::set<std::string> copied;
        for (const auto& dir : {rpnDir, baseDir}) {
            for (const auto& name : plainFiles(dir)) {
                if (!copied.insert(name).second) continue;
                job.throwIfCancelled();
                fs::copy_file(fs::path(dir) / name, tmp / name, ec);
                if (ec) throw Error("cannot copy " + (fs::path(dir) / name).string() + ": " + ec.message());
                report.files.push_back(name);
            }
        }
        job.throwIfCancelled();
        checkOutFolder(outDir);  // still absent or empty
        if (fs::exists(finalDir)) fs::remove(finalDir, ec);
        fs::rename(tmp, finalDir, ec);
        if (ec) throw Error("cannot move " + tmp.string() + " to " + finalDir.string() + ": " + ec.message());
    } catch (...) {
        std::error_code ignored;
        fs::remove_all(tmp, ignored);
        throw;
    }
    job.report(1, 1, "wrote " + report.outDir);
    return report;
}

}  // namespace

MergeReport mergeCheckpoint(const std::string& rpnDir, const std::string& baseDir, const std::string& outDir,
                            JobContext& job, const MergeOptions& options) {
    return merge(rpnDir, baseDir, outDir, job, options);
}

Result<MergeReport> tryMergeCheckpoint(const std::string& rpnDir, const std::string& baseDir,
                                       const std::string& outDir, JobContext& job,
                                       const MergeOptions& options) {
    return guarded([&] { return merge(rpnDir, baseDir, outDir, job, options); });
}

}  // namespace sdrpn::pipeline
