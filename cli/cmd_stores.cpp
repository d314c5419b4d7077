// sdrpn merge-stores and sdrpn store-info: label store maintenance (core/data/label_store.h).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/data/label_store.h"
#include "core/data/labeling.h"

namespace sdrpn::cli {
namespace {

const char* kMergeUsage =
    "usage: sdrpn merge-stores --out STORE IN1 IN2 ...\n\n"
    "Merges label stores (e.g. the shards of `sdrpn label --shard i/n`) into one, created when missing.\n"
    "Samples already in the output are skipped: identical ones count as duplicates, ones that differ\n"
    "(another answer, other maps, ...) are reported as conflicts and the output's copy is kept.\n"
    "Exit status: 0 merged, 3 merged with conflicts, 1 failed.\n";

const char* kInfoUsage =
    "usage: sdrpn store-info STORE [--sample DATASET/KEY] [--preset NAME | --settings FILE]\n\n"
    "Prints what a label store holds: samples per dataset and model. With --sample, prints that sample's\n"
    "question, answers and stored maps, and its labels under the given settings (default: the settings it\n"
    "was labeled with) as a grid: '#' foreground, '.' background, ' ' ignored.\n";

constexpr int kExitConflicts = 3;
constexpr std::size_t kConflictsShown = 30;

}  // namespace

int runMergeStores(const Argv& argv) {
    Args args(argv, {"out"}, {"quiet", "help"});
    if (args.flag("help")) {
        std::cout << kMergeUsage;
        return kExitOk;
    }
    const std::string out = args.require("out");
    const std::vector<std::string>& inputs = args.positional();
    if (inputs.empty()) throw UsageError("give the stores to merge after --out STORE");

    JobContext job;
    cancelOnInterrupt(&job);
    if (!args.flag("quiet"))
        job.onProgress = [](const Progress& p) { printProgress(p.fraction(), p.message); };
    auto store = guarded([&] { return data::LabelStore::open(out); });
    if (!store) {
        std::cerr << "sdrpn merge-stores: " << store.message() << "\n";
        return kExitFailed;
    }
    std::vector<data::MergeConflict> conflicts;
    std::int64_t added = 0, duplicates = 0;
    for (const auto& input : inputs) {
        auto r = guarded([&] { return store.value().mergeFrom(input, job); });
        if (r.status().cancelled()) {
            std::cerr << "\nsdrpn merge-stores: interrupted; samples merged so far are kept\n";
            return kExitCancelled;
        }
        if (!r) {
            std::cerr << "\nsdrpn merge-stores: " << r.message() << "\n";
            return kExitFailed;
        }
        std::printf("%s: added %lld, duplicates %lld, conflicts %zu\n", input.c_str(), (long long)r->added,
                    (long long)r->duplicates, r->conflicts.size());
        added += r->added;
        duplicates += r->duplicates;
        conflicts.insert(conflicts.end(), r->conflicts.begin(), r->conflicts.end());
    }
    std::printf("%s: %lld samples (added %lld, duplicates %lld, conflicts %zu)\n", out.c_str(),
                (long long)store.value().count(), (long long)added, (long long)duplicates, conflicts.size());
    for (std::size_t i = 0; i < conflicts.size() && i < kConflictsShown; ++i)
        std::printf("  conflict %s/%s from %s: differs in %s (kept the first)\n",
                    conflicts[i].dataset.c_str(), conflicts[i].key.c_str(), conflicts[i].input.c_str(),
                    conflicts[i].reason.c_str());
    if (conflicts.size() > kConflictsShown)
        std::printf("  ... and %zu more conflicts\n", conflicts.size() - kConflictsShown);
    return conflicts.empty() ? kExitOk : kExitConflicts;
}

int runStoreInfo(const Argv& argv) {
    Args args(argv, {"sample", "preset", "settings"}, {"help"});
    if (args.flag("help")) {
        std::cout << kInfoUsage;
        return kExitOk;
    }
    if (args.positional().size() != 1) throw UsageError("give one label store");
    const std::string path = args.positional()[0];
    data::LabelStore::Options readOnly;
    readOnly.access = data::LabelStore::Access::ReadOnly;
    auto store = guarded([&] { return data::LabelStore::open(path, readOnly); });
    if (!store) {
        std::cerr << "sdrpn store-info: " << store.message() << "\n";
        return kExitFailed;
    }
    const data::LabelStore& s = store.value();
    if (!args.has("sample")) {
        std::printf("%s: %lld samples (label store schema %d)\n", path.c_str(), (long long)s.count(),
                    data::LabelStore::kSchemaVersion);
        for (const auto& d : s.datasets())
            std::printf("  dataset %s: %lld\n", d.c_str(), (long long)s.count(d));
        for (const auto& m : s.models()) std::printf("  model %s\n", m.c_str());
        return kExitOk;
    }

    const std::string which = args.get("sample");
    const auto slash = which.find('/');
    if (slash == std::string::npos) throw UsageError("--sample expects DATASET/KEY, got '" + which + "'");
    auto sample = guarded([&] { return s.get(which.substr(0, slash), which.substr(slash + 1)); });
    if (!sample) {
        std::cerr << "sdrpn store-info: " << sample.message() << "\n";
        return kExitFailed;
    }
    if (!sample.value()) {
        std::cerr << "sdrpn store-info: " << path << ": no sample " << which << "\n";
        return kExitFailed;
    }
    const data::StoredSample& x = *sample.value();
    std::printf("%s/%s  image %s (%dx%d, %s)\n  question: %s\n  answer (%s, %d tokens): %s\n",
                x.dataset.c_str(), x.key.c_str(), x.image.c_str(), x.geometry.sourceWidth,
                x.geometry.sourceHeight, models::imageFitName(x.geometry.fit), x.question.c_str(),
                x.model.c_str(), x.answerTokens, x.answer.c_str());
    if (x.reference) std::printf("  reference: %s\n", x.reference->c_str());
    std::printf("  maps (%dx%d):", x.gridRows, x.gridCols);
    for (const auto& m : x.maps)
        std::printf(" %d:%s", m.layer, m.head == data::kHeadMean ? "mean" : std::to_string(m.head).c_str());
    std::printf("\n");

    auto labels = guarded([&] {
        LabelSettings settings =
            args.has("settings")
                ? LabelSettings::fromJsonText(readSettingsFile(args.get("settings")), args.get("settings"))
            : args.has("preset") ? LabelSettings::fromPreset(args.get("preset"))
                                 : LabelSettings::fromJsonText(x.settings, which + " settings");
        return data::labelsOf(x, settings);
    });
    if (!labels) {
        std::cerr << "sdrpn store-info: " << labels.message() << "\n";
        return kExitFailed;
    }
    const Labels& l = labels.value();
    std::printf("  labels: %s, peak %.4g, %d foreground, %d background, box cols [%d, %d) rows [%d, %d)\n",
                labelStatusName(l.status), double(l.peak), l.foreground, l.background, l.box.x0, l.box.x1,
                l.box.y0, l.box.y1);
    for (int r = 0; r < l.rows; ++r) {
        std::string line = "  |";
        for (int c = 0; c < l.cols; ++c) {
            const int v = l.values[std::size_t(r * l.cols + c)];
            line += v == 1 ? '#' : v == 0 ? '.' : ' ';
        }
        std::printf("%s|\n", line.c_str());
    }
    return kExitOk;
}

}  // namespace sdrpn::cli
