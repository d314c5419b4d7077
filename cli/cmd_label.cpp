// sdrpn label: the CLI twin of the studio's labeling job (core/data/labeling.h).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/model_args.h"
#include "core/data/dataset.h"
#include "core/data/label_store.h"
#include "core/data/label_shards.h"
#include "core/data/labeling.h"
#include "core/data/pipeline_teacher.h"
#include "core/pipeline/ask.h"

namespace sdrpn::cli {
namespace {

const char* kLabelUsage =
    "usage: sdrpn label --model DIR --data FILE --images DIR --store FILE [options]\n\n"
    "Makes SD-RPN pseudo-label data (sdrpn.md §2): the model answers each question greedily and the\n"
    "answer-to-image attention maps the label settings need are written to the store, one sample at a\n"
    "time. Labels are computed from those maps when read, so thresholds change without relabeling.\n"
    "Run the same command again to resume; Ctrl-C finishes the sample in flight and stops.\n\n"
    "  --data FILE           LLaVA conversation JSON (mix665k style) or JSONL (image, question)\n"
    "  --images DIR          folder the dataset's image paths are relative to\n"
    "  --store FILE          label store (SQLite; created when missing)\n"
    "  --preset NAME         label settings preset (default llava-1.5-7b): llava-1.5-7b, llava-1.5-13b,\n"
    "                        qwen2.5-vl-7b-natural, qwen2.5-vl-7b-textual, qwen2.5-vl-3b-natural, ...\n"
    "  --settings FILE       label settings JSON (as the studio saves them); wins over --preset\n"
    "  --limit N             label at most N samples (of this shard)\n"
    "  --shard i/n           only entries i, i+n, i+2n, ... of the file (0 <= i < n)\n"
    "  --format F            llava-json | jsonl (default: by the file's extension)\n"
    "  --max-new-tokens N    default 128\n"
    "  --layers L            also keep every head of these layers, e.g. 2,14 (pick heads later)\n"
    "  --all-layer-means     also keep the head mean of every layer (small tuning sets)\n"
    "  --model-id ID         the teacher's name in the store (default: the model folder's name)\n"
    "  --template T          vicuna_v1 | llava_v1 | llava_hf | qwen2_vl | deepseek | raw\n                   "
    "     (default: the model's own)\n"
    "  --image-mode M        pad | crop (default: the model's preprocessor; the reference used pad)\n"
    "  --device D            cpu (default), cuda, cuda:N\n"
    "  --dtype T             fp32 (default), bf16, fp16\n"
    "  --vision-tower DIR    original LLaVA layout: the CLIP folder\n"
    "  --base DIR            unfilled SD-RPN checkpoint: the base model supplying its missing layers\n"
    "  --failures FILE       write every failed sample (key, image, reason) as JSONL\n"
    "  --quiet               print only the summary\n\n"
    "Several processes (see docs/distributed.md): start one process per rank with RANK, WORLD_SIZE,\n"
    "MASTER_ADDR, MASTER_PORT set (torchrun, mpirun or scripts/launch -n N -- sdrpn label ...). Rank r\n"
    "labels entries r, r+N, ... into STORE.shards/rank-r.sdrpn; rank 0 shows the progress of all ranks and\n"
    "merges the shards into STORE at the end. A rank that dies loses only its sample in flight: run the\n"
    "same command again (with any number of ranks) and only the missing samples are labeled.\n";

constexpr std::size_t kFailuresShown = 30;

std::vector<int> parseLayerList(const std::string& text) {
    std::vector<int> layers;
    std::stringstream ss(text);
    for (std::string item; std::getline(ss, item, ',');) {
        char* end = nullptr;
        const long v = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || v < 0 || v > 100000)
            throw UsageError("--layers expects comma-separated layer numbers, got '" + item + "'");
        layers.push_back(int(v));
    }
    return layers;
}

std::string clock(double seconds) {
    const long s = long(seconds + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    return buf;
}

// "\r[ 42%] 53/300 (...) | 2.31 samples/s | ETA 2m05s", at most ~5 times a second and always the last.
void printLabelingProgress(const data::LabelingProgress& p, bool force) {
    static auto last = std::chrono::steady_clock::time_point{};
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last < std::chrono::milliseconds(200)) return;
    last = now;
    const std::int64_t done = p.total - p.remaining;
    const int percent = p.total > 0 ? int(100.0 * double(done) / double(p.total) + 0.5) : 100;
    std::fprintf(stderr, "\r[%3d%%] %-100.100s", percent, data::formatProgress(p).c_str());
    std::fflush(stderr);
}

nlohmann::json progressJson(const data::LabelingProgress& p) {
    return {{"total", p.total},   {"labeled", p.labeled},     {"already", p.alreadyThere},
            {"failed", p.failed}, {"remaining", p.remaining}, {"seconds", p.elapsedSeconds}};
}

// The progress of every rank as one line (rank 0 prints it).
data::LabelingProgress sumProgress(dist::Group& group) {
    data::LabelingProgress all;
    for (int r = 0; r < group.size(); ++r) {
        const auto text = group.tryGet("label/progress/" + std::to_string(r));
        if (!text) continue;
        const auto j = nlohmann::json::parse(*text, nullptr, false);
        if (j.is_discarded()) continue;
        all.total += j.value("total", std::int64_t(0));
        all.labeled += j.value("labeled", std::int64_t(0));
        all.alreadyThere += j.value("already", std::int64_t(0));
        all.failed += j.value("failed", std::int64_t(0));
        all.remaining += j.value("remaining", std::int64_t(0));
        all.elapsedSeconds = std::max(all.elapsedSeconds, j.value("seconds", 0.0));
    }
    if (all.elapsedSeconds > 0) all.samplesPerSecond = double(all.labeled) / all.elapsedSeconds;
    if (all.samplesPerSecond > 0) all.etaSeconds = double(all.remaining) / all.samplesPerSecond;
    return all;
}

void printRanksProgress(dist::Group& group, bool force) {
    data::LabelingProgress all = sumProgress(group);
    printLabelingProgress(all, force);
}

void printFailures(const data::LabelingSummary& s, const Args& args, const std::string& failuresFile) {
    if (!s.failed.empty()) {
        std::printf("failed:\n");
        for (std::size_t i = 0; i < s.failed.size() && i < kFailuresShown; ++i)
            std::printf("  %s  %s: %s\n", s.failed[i].key.c_str(), s.failed[i].image.c_str(),
                        s.failed[i].reason.c_str());
        if (s.failed.size() > kFailuresShown)
            std::printf("  ... and %zu more%s\n", s.failed.size() - kFailuresShown,
                        args.has("failures") ? "" : " (--failures FILE lists them all)");
    }
    if (!failuresFile.empty()) {
        std::ofstream out(failuresFile);
        for (const auto& f : s.failed)
            out << nlohmann::json{{"key", f.key}, {"image", f.image}, {"reason", f.reason}}.dump() << "\n";
        if (!out) std::cerr << "sdrpn label: " << failuresFile << ": cannot write\n";
    }
}

// The end of a multi-rank run: every rank says how it went; rank 0 waits for all of them (watching their
// heartbeats), merges every shard into the store and reports the whole run.
int finishRanks(dist::Group& group, const data::LabelingSummary& s, const std::string& storePath,
                const Args& args, bool quiet) {
    const int rank = group.rank();
    std::string failuresFile = args.get("failures");
    if (!failuresFile.empty() && rank > 0) failuresFile += ".rank-" + std::to_string(rank);
    const char* status = s.status.ok() ? "ok" : s.status.cancelled() ? "cancelled" : "failed";
    const nlohmann::json done{{"status", status},          {"message", s.status.message},
                              {"labeled", s.labeled},      {"already", s.alreadyThere},
                              {"failed", s.failed.size()}, {"no_image", s.noImage},
                              {"seconds", s.seconds}};
    if (rank > 0)
        std::printf("rank %d of %d: labeled %lld, already there %lld, failed %zu in %s\n", rank, group.size(),
                    (long long)s.labeled, (long long)s.alreadyThere, s.failed.size(),
                    clock(s.seconds).c_str());
    printFailures(s, args, failuresFile);
    try {
        group.set("label/done/" + std::to_string(rank), done.dump());
    } catch (const std::exception& e) {
        std::cerr << "sdrpn label: " << e.what() << "\nsdrpn label: this rank's samples stay in "
                  << data::shardStorePath(storePath, rank)
                  << "; the next run merges them (or sdrpn merge-stores)\n";
        return kExitFailed;
    }
    if (rank > 0) {
        if (s.status.cancelled()) return kExitCancelled;
        if (!s.status.ok()) {
            std::cerr << "sdrpn label: " << group.env().describe() << ": " << s.status.message << "\n";
            return kExitFailed;
        }
        return kExitOk;
    }

    std::vector<std::string> results;
    std::string lost;
    try {
        results = dist::waitForAll(group, "label/done/", [&] {
            if (!quiet) printRanksProgress(group, true);
        });
        if (!quiet) printRanksProgress(group, true);  // every rank posted its last progress before "done"
    } catch (const std::exception& e) {
        lost = e.what();
    }
    if (!quiet) std::fputc('\n', stderr);

    auto merged = guarded([&] {
        data::LabelStore main = data::LabelStore::open(storePath);
        data::ShardMerge m = data::mergeShards(main, data::shardStores(storePath), JobContext::none());
        return std::make_pair(m, main.count());
    });
    if (!merged) {
        std::cerr << "sdrpn label: " << merged.message() << "\n";
        return kExitFailed;
    }
    const data::ShardMerge& m = merged.value().first;

    std::int64_t labeled = 0, already = 0, failed = 0, noImage = 0;
    double seconds = 0.0;
    std::vector<std::string> failures;
    bool cancelled = false;
    for (std::size_t r = 0; r < results.size(); ++r) {
        const auto j = nlohmann::json::parse(results[r], nullptr, false);
        if (j.is_discarded()) continue;
        labeled += j.value("labeled", std::int64_t(0));
        already += j.value("already", std::int64_t(0));
        failed += j.value("failed", std::int64_t(0));
        noImage += j.value("no_image", std::int64_t(0));
        seconds = std::max(seconds, j.value("seconds", 0.0));
        const std::string st = j.value("status", std::string("failed"));
        if (st == "cancelled") cancelled = true;
        if (st == "failed")
            failures.push_back("rank " + std::to_string(r) + ": " + j.value("message", std::string()));
    }
    std::printf(
        "%s: labeled %lld, already there %lld, failed %lld, no image %lld on %d ranks in %s; merged %zu "
        "shard(s): %lld samples added, the store holds %lld\n",
        storePath.c_str(), (long long)labeled, (long long)already, (long long)failed, (long long)noImage,
        group.size(), clock(seconds).c_str(), m.merged.size(), (long long)m.report.added,
        (long long)merged.value().second);
    for (const auto& e : m.errors) std::cerr << "sdrpn label: " << e << "\n";
    for (const auto& c : m.report.conflicts)
        std::cerr << "sdrpn label: conflict " << c.dataset << "/" << c.key << " from " << c.input
                  << ": differs in " << c.reason << " (kept the store's; the shard stays)\n";
    if (!lost.empty()) {
        std::cerr
            << "sdrpn label: " << lost
            << "\nsdrpn label: the samples every rank finished are merged; run the same command again to "
               "label the rest\n";
        return kExitFailed;
    }
    for (const auto& f : failures) std::cerr << "sdrpn label: " << f << "\n";
    if (!failures.empty() || !m.errors.empty()) return kExitFailed;
    if (cancelled) {
        std::cerr << "sdrpn label: interrupted; run the same command again to resume\n";
        return kExitCancelled;
    }
    return kExitOk;
}

}  // namespace

int runLabel(const Argv& argv) {
    Args args(argv,
              {"model", "data", "images", "store", "preset", "settings", "limit", "shard", "format",
               "max-new-tokens", "layers", "model-id", "template", "image-mode", "device", "dtype",
               "vision-tower", "base", "failures"},
              {"all-layer-means", "quiet", "help"});
    if (args.flag("help")) {
        std::cout << kLabelUsage;
        return kExitOk;
    }
    const std::string modelDir = args.require("model");
    const std::string dataPath = args.require("data");
    const std::string storePath = args.require("store");
    bool quiet = args.flag("quiet");
    data::DatasetOptions datasetOptions = datasetOptionsFrom(args, true);

    data::LabelingOptions options;
    if (args.has("settings")) {
        const std::string file = args.get("settings");
        auto settings = guarded([&] { return LabelSettings::fromJsonText(readSettingsFile(file), file); });
        if (!settings) {
            std::cerr << "sdrpn label: " << settings.message() << "\n";
            return kExitFailed;
        }
        options.settings = settings.value();
    } else {
        try {
            options.settings = LabelSettings::fromPreset(args.get("preset", "llava-1.5-7b"));
        } catch (const Error& e) {
            throw UsageError(std::string("--preset: ") + e.what());
        }
    }
    options.modelId = args.get("model-id");
    options.extra.allLayerMeans = args.flag("all-layer-means");
    const std::vector<int> allHeadLayers =
        args.has("layers") ? parseLayerList(args.get("layers")) : std::vector<int>{};

    pipeline::AskOptions ask = data::PipelineTeacher::defaultOptions();
    ask.generation.maxNewTokens = args.getInt("max-new-tokens", 128);
    if (ask.generation.maxNewTokens < 1) throw UsageError("--max-new-tokens must be at least 1");
    ask.chatTemplate = args.get("template");
    ask.imageMode = args.get("image-mode");

    models::LoadOptions load = loadOptionsFrom(args);

    // Several ranks: this one labels entries rank, rank + N, ... into its own shard of the store.
    std::unique_ptr<dist::Group> group;
    if (const int rc = joinGroupFor("label", load, group); rc != kExitOk) return rc;
    const bool lead = group == nullptr || group->rank() == 0;
    if (group != nullptr) {
        if (args.has("shard"))
            throw UsageError("--shard splits the data by hand; a run of several ranks splits it by rank");
        datasetOptions.shard = data::Shard{group->rank(), group->size()};
        quiet = quiet || !lead;
    }

    // Dataset and store first: their errors should not wait for a model to load.
    auto dataset = data::openDataset(dataPath, datasetOptions);
    if (!dataset) {
        std::cerr << "sdrpn label: " << dataset.message() << "\n";
        return kExitFailed;
    }
    data::Dataset d = std::move(dataset).value();
    if (!quiet)
        std::fprintf(stderr, "%s: %zu entries (%s); shard %s: %zu samples, %zu left out\n", dataPath.c_str(),
                     d.entries, data::datasetFormatName(d.format), datasetOptions.shard.toString().c_str(),
                     d.samples.size(), d.skipped.size());
    std::optional<data::LabelStore> store;  // what this process writes: the store, or its rank's shard
    std::int64_t inStoreAlready = 0;        // this rank's samples that an earlier run merged
    if (group == nullptr) {
        auto opened = guarded([&] { return data::LabelStore::open(storePath); });
        if (!opened) {
            std::cerr << "sdrpn label: " << opened.message() << "\n";
            return kExitFailed;
        }
        store.emplace(std::move(opened).value());
    } else {
        auto prepared = guarded([&] {
            if (lead) {
                // Shards an earlier run left (it died before merging) go into the store first.
                data::LabelStore main = data::LabelStore::open(storePath);
                const auto leftovers = data::shardStores(storePath);
                if (!leftovers.empty()) {
                    const data::ShardMerge m = data::mergeShards(main, leftovers, JobContext::none());
                    std::fprintf(stderr, "merged %zu shard(s) of an earlier run into %s: %lld samples\n",
                                 m.merged.size(), storePath.c_str(), (long long)m.report.added);
                    if (!m.kept.empty())
                        throw Error(m.kept.front() + ": could not be merged into " + storePath +
                                    (m.errors.empty() ? " (conflicting samples; see sdrpn merge-stores)"
                                                      : " (" + m.errors.front() + ")"));
                }
                group->set("label/ready", "1");
            } else {
                while (!group->tryGet("label/ready"))
                    std::this_thread::sleep_for(std::chrono::milliseconds(200));
            }
            group->startHeartbeat();
            // What the store holds already is not labeled again.
            data::LabelStore::Options readOnly;
            readOnly.access = data::LabelStore::Access::ReadOnly;
            const data::LabelStore main = data::LabelStore::open(storePath, readOnly);
            std::vector<data::Sample> todo;
            for (auto& sample : d.samples) {
                if (main.contains(d.id, sample.key))
                    ++inStoreAlready;
                else
                    todo.push_back(std::move(sample));
            }
            d.samples = std::move(todo);
            const std::string shard = data::shardStorePath(storePath, group->rank());
            std::error_code ec;
            std::filesystem::create_directories(std::filesystem::path(shard).parent_path(), ec);
            if (ec)
                throw Error(std::filesystem::path(shard).parent_path().string() + ": cannot create (" +
                            ec.message() + ")");
            return data::LabelStore::open(shard);
        });
        if (!prepared) {
            std::cerr << "sdrpn label: " << prepared.message() << "\n";
            return kExitFailed;
        }
        store.emplace(std::move(prepared).value());
        if (lead && !args.flag("quiet"))
            std::fprintf(stderr, "labeling on %d ranks (%s); shards in %s.shards/\n", group->size(),
                         group->env().launcher.c_str(), storePath.c_str());
    }

    JobContext job;
    cancelOnInterrupt(&job);
    if (!quiet) job.onProgress = [](const Progress& p) { printProgress(p.fraction(), p.message); };
    std::shared_ptr<const pipeline::LoadedModel> model;
    if (const int rc = loadModelFor("label", modelDir, load, job, model); rc != kExitOk) return rc;
    if (!quiet) std::fprintf(stderr, "\rloaded %s in %.2f s\n", modelDir.c_str(), model->loadSeconds);
    for (int layer : allHeadLayers) options.extra.addAllHeads(layer, model->backbone->headCount());
    job.onProgress = nullptr;

    data::PipelineTeacher teacher(model, ask);
    std::function<void(const data::LabelingProgress&)> onProgress;
    if (!quiet) onProgress = [](const data::LabelingProgress& p) { printLabelingProgress(p, p.key.empty()); };
    if (group != nullptr) {
        // Each rank posts its progress about once a second; rank 0 prints the sum of all ranks.
        auto lastPost = std::chrono::steady_clock::time_point{};
        onProgress = [&, lastPost, inStoreAlready](const data::LabelingProgress& p) mutable {
            const auto now = std::chrono::steady_clock::now();
            if (!p.key.empty() && p.remaining > 0 && now - lastPost < std::chrono::seconds(1)) return;
            lastPost = now;
            data::LabelingProgress mine = p;
            mine.alreadyThere += inStoreAlready;
            mine.total += inStoreAlready;
            try {
                group->set("label/progress/" + std::to_string(group->rank()), progressJson(mine).dump());
                if (!quiet) printRanksProgress(*group, false);
            } catch (const std::exception&) {
                // Progress is best effort; the end of the run reports what went wrong.
            }
        };
    }
    data::LabelingSummary s = data::runLabeling(d, *store, teacher, options, job, onProgress);
    s.alreadyThere += inStoreAlready;
    s.total += inStoreAlready;
    if (!quiet) std::fputc('\n', stderr);
    if (group != nullptr) return finishRanks(*group, s, storePath, args, quiet);

    // Summary.
    const double rate = s.seconds > 0 ? double(s.labeled) / s.seconds : 0.0;
    std::printf(
        "%s: labeled %lld, already there %lld, failed %zu, no image %lld (of %zu entries in shard %s) in %s, "
        "%.2f samples/s\n",
        storePath.c_str(), (long long)s.labeled, (long long)s.alreadyThere, s.failed.size(),
        (long long)s.noImage, d.samples.size() + d.skipped.size(), datasetOptions.shard.toString().c_str(),
        clock(s.seconds).c_str(), rate);
    printFailures(s, args, args.get("failures"));
    if (s.status.cancelled()) {
        std::cerr << "sdrpn label: interrupted; run the same command again to resume\n";
        return kExitCancelled;
    }
    if (!s.status.ok()) {
        std::cerr << "sdrpn label: " << s.status.message << "\n";
        return kExitFailed;
    }
    return kExitOk;
}

}  // namespace sdrpn::cli
