// sdrpn label: the CLI twin of the studio's labeling job (core/data/labeling.h).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/model_args.h"
#include "core/data/dataset.h"
#include "core/data/label_store.h"
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
    "  --quiet               print only the summary\n";

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
    const bool quiet = args.flag("quiet");
    const data::DatasetOptions datasetOptions = datasetOptionsFrom(args, true);

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

    const models::LoadOptions load = loadOptionsFrom(args);

    // Dataset and store first: their errors should not wait for a model to load.
    auto dataset = data::openDataset(dataPath, datasetOptions);
    if (!dataset) {
        std::cerr << "sdrpn label: " << dataset.message() << "\n";
        return kExitFailed;
    }
    const data::Dataset& d = dataset.value();
    if (!quiet)
        std::fprintf(stderr, "%s: %zu entries (%s); shard %s: %zu samples, %zu left out\n", dataPath.c_str(),
                     d.entries, data::datasetFormatName(d.format), datasetOptions.shard.toString().c_str(),
                     d.samples.size(), d.skipped.size());
    auto store = guarded([&] { return data::LabelStore::open(storePath); });
    if (!store) {
        std::cerr << "sdrpn label: " << store.message() << "\n";
        return kExitFailed;
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
    const data::LabelingSummary s = data::runLabeling(d, store.value(), teacher, options, job, onProgress);
    if (!quiet) std::fputc('\n', stderr);

    // Summary.
    const double rate = s.seconds > 0 ? double(s.labeled) / s.seconds : 0.0;
    std::printf(
        "%s: labeled %lld, already there %lld, failed %zu, no image %lld (of %zu entries in shard %s) in %s, "
        "%.2f samples/s\n",
        storePath.c_str(), (long long)s.labeled, (long long)s.alreadyThere, s.failed.size(),
        (long long)s.noImage, d.samples.size() + d.skipped.size(), datasetOptions.shard.toString().c_str(),
        clock(s.seconds).c_str(), rate);
    if (!s.failed.empty()) {
        std::printf("failed:\n");
        for (std::size_t i = 0; i < s.failed.size() && i < kFailuresShown; ++i)
            std::printf("  %s  %s: %s\n", s.failed[i].key.c_str(), s.failed[i].image.c_str(),
                        s.failed[i].reason.c_str());
        if (s.failed.size() > kFailuresShown)
            std::printf("  ... and %zu more%s\n", s.failed.size() - kFailuresShown,
                        args.has("failures") ? "" : " (--failures FILE lists them all)");
    }
    if (args.has("failures")) {
        std::ofstream out(args.get("failures"));
        for (const auto& f : s.failed)
            out << nlohmann::json{{"key", f.key}, {"image", f.image}, {"reason", f.reason}}.dump() << "\n";
        if (!out) std::cerr << "sdrpn label: " << args.get("failures") << ": cannot write\n";
    }
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
