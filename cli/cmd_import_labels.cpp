// sdrpn import-labels and sdrpn labels: SD-RPN's released pseudo-label .pkl files into a label store, and
// one stored sample's maps and labels (core/data/release_labels.h).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/data/label_store.h"
#include "core/data/labeling.h"
#include "core/data/release_labels.h"
#include "core/io/safetensors.h"

namespace sdrpn::cli {
namespace {

const char* kImportUsage =
    "usage: sdrpn import-labels --pkl FILE [--pkl FILE ...] --images DIR --store STORE [options]\n\n"
    "Imports SD-RPN's released pseudo-label files (pickled lists of dicts with question_id, prompt, text,\n"
    "image, sink_attn and grounding_attn_o2i; sdrpn.md §2.5) into a label store, one sample at a time.\n"
    "The released maps are stored under the label preset's heads, so labels are made from them exactly as\n"
    "for samples the studio labeled, with whatever thresholds are current. Samples already in the store\n"
    "are skipped, never overwritten: run the same command again to resume after Ctrl-C.\n\n"
    "  --pkl FILE            a released .pkl file (repeat for several)\n"
    "  --images DIR          folder the dicts' image paths are relative to (only image headers are read)\n"
    "  --store STORE         label store (SQLite; created when missing)\n"
    "  --dataset NAME        dataset id (default: each .pkl file's name without .pkl)\n"
    "  --preset NAME         label preset the maps were made with (default llava-1.5-7b, or qwen2.5-vl-7b\n"
    "                        for (24, 24) maps): llava-1.5-7b, llava-1.5-13b, qwen2.5-vl-7b-natural, ...\n"
    "  --model NAME          model id written with the samples (default sdrpn-release)\n"
    "  --no-images           do not look at the images: keep samples whose image is missing, on a square\n"
    "                        grid geometry\n"
    "  --quiet               print only the summary\n\n"
    "Exit status: 0 imported (rejected samples are listed), 1 a file could not be read, 130 interrupted.\n";

const char* kLabelsUsage =
    "usage: sdrpn labels --store STORE --id QID [--dataset NAME] [--dump FILE]\n"
    "                    [--preset NAME | --label-settings FILE]\n\n"
    "One stored sample's labels under its stored label settings (or the given ones). With --dump, writes\n"
    "a safetensors file with `grounding` F32 [rows*cols], `sink` F32 [rows*cols] (zeros without a sink\n"
    "map) and `labels` I64 [rows*cols] (1 foreground, 0 background, -100 ignored), row-major; without it,\n"
    "prints the label counts.\n\n"
    "  --id QID              the sample's key (question_id)\n"
    "  --dataset NAME        the dataset holding it (needed when several do)\n"
    "  --preset NAME         label settings preset instead of the stored settings\n"
    "  --label-settings FILE label settings JSON (as the studio saves them) instead of the stored settings\n";

constexpr std::size_t kProblemsShown = 20;

// Takes every `--name VALUE` / `--name=VALUE` out of argv (Args keeps one value per option).
std::vector<std::string> takeRepeated(Argv& argv, const std::string& name) {
    std::vector<std::string> values;
    Argv rest;
    const std::string flag = "--" + name;
    for (std::size_t i = 0; i < argv.size(); ++i) {
        if (argv[i] == flag) {
            if (i + 1 >= argv.size()) throw UsageError("option " + flag + " needs a value");
            values.push_back(argv[++i]);
        } else if (argv[i].rfind(flag + "=", 0) == 0) {
            values.push_back(argv[i].substr(flag.size() + 1));
        } else {
            rest.push_back(argv[i]);
        }
    }
    argv = std::move(rest);
    return values;
}

}  // namespace

int runImportLabels(const Argv& argvIn) {
    Argv argv = argvIn;
    const std::vector<std::string> pkls = takeRepeated(argv, "pkl");
    Args args(argv, {"images", "store", "dataset", "preset", "model"}, {"no-images", "quiet", "help"});
    if (args.flag("help")) {
        std::cout << kImportUsage;
        return kExitOk;
    }
    if (pkls.empty()) throw UsageError("missing required option --pkl");
    if (!args.positional().empty()) throw UsageError("unexpected argument '" + args.positional()[0] + "'");
    const std::string storePath = args.require("store");
    data::ReleaseImportOptions options;
    options.checkImages = !args.flag("no-images");
    if (options.checkImages)
        options.imageRoot = args.require("images");
    else
        options.imageRoot = args.get("images");
    options.dataset = args.get("dataset");
    options.model = args.get("model", options.model);
    if (options.model.empty()) throw UsageError("--model needs a non-empty name");
    if (args.has("preset")) {
        options.preset = args.get("preset");
        try {
            (void)LabelSettings::fromPreset(options.preset);
        } catch (const Error& e) {
            throw UsageError(std::string("--preset: ") + e.what());
        }
    }
    const bool quiet = args.flag("quiet");

    JobContext job;
    cancelOnInterrupt(&job);
    if (!quiet)
        job.onProgress = [](const Progress& p) {
            static auto last = std::chrono::steady_clock::time_point{};
            const auto now = std::chrono::steady_clock::now();
            if (p.done < p.total && now - last < std::chrono::milliseconds(200)) return;
            last = now;
            printProgress(p.fraction(), p.message);
        };

    std::int64_t read = 0, added = 0, skipped = 0, rejected = 0;
    int failedFiles = 0;
    for (const std::string& pkl : pkls) {
        auto r = guarded([&] { return data::importReleasedLabels(pkl, storePath, options, job); });
        if (!quiet) std::fputc('\n', stderr);
        if (r.status().cancelled()) {
            std::cerr
                << "sdrpn import-labels: interrupted; the samples imported so far are kept (run the same "
                   "command again to resume)\n";
            return kExitCancelled;
        }
        if (!r) {
            std::cerr << "sdrpn import-labels: " << r.message() << "\n";
            ++failedFiles;
            continue;
        }
        const data::ReleaseImportReport& x = r.value();
        std::printf("%s: read %lld, added %lld, skipped %lld, rejected %lld (dataset %s, preset %s)\n",
                    pkl.c_str(), (long long)x.read, (long long)x.added, (long long)x.skipped,
                    (long long)x.rejected, x.dataset.c_str(), x.preset.c_str());
        for (std::size_t i = 0; i < x.problems.size() && i < kProblemsShown; ++i)
            std::printf("  %s\n", x.problems[i].c_str());
        if (x.problems.size() > kProblemsShown)
            std::printf("  ... and %lld more\n",
                        (long long)(std::max<std::int64_t>(x.rejected, std::int64_t(x.problems.size())) -
                                    std::int64_t(kProblemsShown)));
        read += x.read;
        added += x.added;
        skipped += x.skipped;
        rejected += x.rejected;
    }
    const std::size_t readFiles = pkls.size() - std::size_t(failedFiles);
    if (pkls.size() > 1)
        std::printf("%s: read %lld, added %lld, skipped %lld, rejected %lld from %zu file%s\n",
                    storePath.c_str(), (long long)read, (long long)added, (long long)skipped,
                    (long long)rejected, readFiles, readFiles == 1 ? "" : "s");
    return failedFiles > 0 ? kExitFailed : kExitOk;
}

int runLabels(const Argv& argv) {
    Args args(argv, {"store", "id", "dataset", "dump", "preset", "label-settings"}, {"help"});
    if (args.flag("help")) {
        std::cout << kLabelsUsage;
        return kExitOk;
    }
    if (!args.positional().empty()) throw UsageError("unexpected argument '" + args.positional()[0] + "'");
    const std::string storePath = args.require("store");
    const std::string id = args.require("id");
    if (args.has("label-settings") && args.has("preset"))
        throw UsageError("give --label-settings or --preset, not both");
    std::optional<LabelSettings> override;
    if (args.has("label-settings")) {
        const std::string file = args.get("label-settings");
        auto s = guarded([&] { return LabelSettings::fromJsonText(readSettingsFile(file), file); });
        if (!s) {
            std::cerr << "sdrpn labels: " << s.message() << "\n";
            return kExitFailed;
        }
        override = s.value();
    } else if (args.has("preset")) {
        try {
            override = LabelSettings::fromPreset(args.get("preset"));
        } catch (const Error& e) {
            throw UsageError(std::string("--preset: ") + e.what());
        }
    }

    auto result = guarded([&]() -> std::string {
        data::LabelStore::Options readOnly;
        readOnly.access = data::LabelStore::Access::ReadOnly;
        const data::LabelStore store = data::LabelStore::open(storePath, readOnly);
        std::vector<std::string> holders;
        if (args.has("dataset")) {
            if (store.contains(args.get("dataset"), id)) holders.push_back(args.get("dataset"));
        } else {
            for (const auto& d : store.datasets())
                if (store.contains(d, id)) holders.push_back(d);
        }
        if (holders.empty())
            throw Error(storePath + ": no sample with id '" + id + "'" +
                        (args.has("dataset") ? " in dataset '" + args.get("dataset") + "'" : std::string()));
        if (holders.size() > 1) {
            std::string list;
            for (const auto& d : holders) list += (list.empty() ? "" : ", ") + d;
            throw Error(storePath + ": id '" + id + "' is in several datasets (" + list +
                        "); give one with --dataset");
        }
        const data::StoredSample sample = *store.get(holders.front(), id);
        const std::string name = sample.dataset + "/" + sample.key;
        const LabelSettings settings =
            override ? *override : LabelSettings::fromJsonText(sample.settings, name + " settings");
        const data::SampleLabelDump d = data::dumpSampleLabels(sample, settings);
        int foreground = 0, background = 0, ignored = 0;
        for (std::int64_t v : d.labels) (v == 1 ? foreground : v == 0 ? background : ignored) += 1;
        char counts[160];
        std::snprintf(counts, sizeof counts, "%s, %d foreground, %d background, %d ignored (%dx%d)",
                      labelStatusName(d.status), foreground, background, ignored, d.rows, d.cols);
        if (!args.has("dump")) return name + ": labels " + counts + ", settings " + settings.preset;

        const std::string out = args.get("dump");
        const std::vector<std::int64_t> shape = {std::int64_t(d.rows) * d.cols};
        io::writeSafetensors(out,
                             {{"grounding", io::DType::F32, shape, d.grounding.data()},
                              {"sink", io::DType::F32, shape, d.sink.data()},
                              {"labels", io::DType::I64, shape, d.labels.data()}},
                             {{"dataset", sample.dataset},
                              {"id", sample.key},
                              {"rows", std::to_string(d.rows)},
                              {"cols", std::to_string(d.cols)},
                              {"status", labelStatusName(d.status)},
                              {"settings", settings.toJson().dump()}});
        return "wrote " + out + ": " + name + " labels " + counts;
    });
    if (!result) {
        std::cerr << "sdrpn labels: " << result.message() << "\n";
        return kExitFailed;
    }
    std::printf("%s\n", result.value().c_str());
    return kExitOk;
}

}  // namespace sdrpn::cli
