#include "core/data/labeling.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <unordered_set>

namespace sdrpn::data {
namespace {

double secondsSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string mapName(int layer, int head) {
    return "layer " + std::to_string(layer) +
           (head == kHeadMean ? " head mean" : " head " + std::to_string(head));
}

std::string duration(double seconds) {
    const long s = long(std::llround(std::max(seconds, 0.0)));
    char buf[48];
    if (s >= 3600)
        std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else if (s >= 60)
        std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
    else
        std::snprintf(buf, sizeof buf, "%lds", s);
    return buf;
}

// Every (layer, head) of a selection, the head mean as kHeadMean; sorted, so the head mean comes first.
std::set<std::pair<int, int>> selectedPairs(const MapSelection& selection,
                                            const models::AttentionMaps* maps = nullptr) {
    std::set<std::pair<int, int>> pairs(selection.heads.begin(), selection.heads.end());
    for (int layer : selection.meanLayers) pairs.insert({layer, kHeadMean});
    if (selection.allLayerMeans && maps)
        for (const auto& l : maps->layers) pairs.insert({l.layer, kHeadMean});
    return pairs;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// MapSelection

MapSelection MapSelection::forSettings(const LabelSettings& settings) {
    MapSelection out;
    auto addGroups = [&](const std::vector<HeadGroup>& groups) {
        for (const auto& g : groups) {
            if (g.heads.empty())
                out.meanLayers.push_back(g.layer);
            else
                for (int h : g.heads) out.heads.emplace_back(g.layer, h);
        }
    };
    addGroups(settings.grounding);
    addGroups(settings.sink);
    return out;
}

void MapSelection::addAllHeads(int layer, int headCount) {
    for (int h = 0; h < headCount; ++h) heads.emplace_back(layer, h);
    meanLayers.push_back(layer);  // exact head means whatever heads are picked later
}

void MapSelection::add(const MapSelection& other) {
    heads.insert(heads.end(), other.heads.begin(), other.heads.end());
    meanLayers.insert(meanLayers.end(), other.meanLayers.begin(), other.meanLayers.end());
    allLayerMeans = allLayerMeans || other.allLayerMeans;
}

std::vector<int> MapSelection::captureLayers() const {
    if (allLayerMeans) return {};
    std::set<int> layers(meanLayers.begin(), meanLayers.end());
    for (const auto& [layer, head] : heads) layers.insert(layer);
    return {layers.begin(), layers.end()};
}

// ---------------------------------------------------------------------------------------------------------
// Maps and labels

std::vector<StoredMap> answerMaps(const models::AttentionMaps& maps, const MapSelection& selection) {
    std::vector<StoredMap> out;
    if (maps.rowsOfKind(models::QueryKind::Answer).empty()) return out;
    for (const auto& [layer, head] : selectedPairs(selection, &maps)) {
        // sdrpn.md §2.3: mean over the fed-back answer tokens; §2.4: then over the heads (all for the mean).
        HeadGroup group{layer, head == kHeadMean ? std::vector<int>{} : std::vector<int>{head}};
        GridMap m = attentionToImage(maps, {group}, models::QueryKind::Answer);
        out.push_back({layer, head, std::move(m.values)});
    }
    return out;
}

std::vector<std::string> missingMaps(const StoredSample& sample, const LabelSettings& settings) {
    std::vector<std::string> missing;
    auto check = [&](const std::vector<HeadGroup>& groups) {
        for (const auto& g : groups) {
            if (g.heads.empty()) {
                if (!sample.meanMap(g.layer, {})) missing.push_back(mapName(g.layer, kHeadMean));
                continue;
            }
            for (int h : g.heads)
                if (!sample.find(g.layer, h)) missing.push_back(mapName(g.layer, h));
        }
    };
    check(settings.grounding);
    check(settings.sink);
    std::sort(missing.begin(), missing.end());
    missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
    return missing;
}

Labels labelsOf(const StoredSample& sample, const LabelSettings& settings) {
    const std::string name = sample.dataset + "/" + sample.key;
    if (sample.maps.empty()) {
        // No answer rows (§2.3 ⚠): NaN maps, which makeLabels reports as NonFinite with every label −100.
        GridMap nan;
        nan.rows = sample.gridRows;
        nan.cols = sample.gridCols;
        nan.values.assign(std::size_t(nan.rows) * std::size_t(nan.cols),
                          std::numeric_limits<float>::quiet_NaN());
        return makeLabels(nan, {}, settings);
    }
    const std::vector<std::string> missing = missingMaps(sample, settings);
    if (!missing.empty()) {
        std::string list;
        for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
        throw Error("sample " + name + ": the store does not hold " + list +
                    " (label it again with these heads, e.g. sdrpn label --layers)");
    }
    const models::AttentionMaps maps = sample.toAttentionMaps();
    const GridMap grounding = groundingMap(maps, settings);
    const GridMap sink = sinkMap(maps, settings);
    std::vector<std::uint8_t> knownBackground;
    if (settings.maskKnownBackground && sample.geometry.gridRows == sample.gridRows &&
        sample.geometry.gridCols == sample.gridCols && sample.geometry.sourceWidth > 0)
        knownBackground = knownBackgroundMask(sample.geometry);
    return makeLabels(grounding, sink, settings, knownBackground);
}

// ---------------------------------------------------------------------------------------------------------
// The job

std::string formatProgress(const LabelingProgress& p) {
    const std::int64_t done = p.labeled + p.alreadyThere + p.failed;
    std::string out =
        std::to_string(done) + "/" + std::to_string(p.total) + " (" + std::to_string(p.labeled) + " labeled";
    if (p.alreadyThere) out += ", " + std::to_string(p.alreadyThere) + " already there";
    if (p.failed) out += ", " + std::to_string(p.failed) + " failed";
    char rate[64];
    std::snprintf(rate, sizeof rate, ") | %.2f samples/s", p.samplesPerSecond);
    out += rate;
    out += " | ETA " + (p.etaSeconds >= 0 ? duration(p.etaSeconds) : std::string("--"));
    return out;
}

LabelingSummary runLabeling(const Dataset& dataset, LabelStore& store, const Teacher& teacher,
                            const LabelingOptions& options, JobContext& job,
                            const std::function<void(const LabelingProgress&)>& onProgress) {
    const auto t0 = std::chrono::steady_clock::now();
    LabelingSummary summary;
    summary.total = std::int64_t(dataset.samples.size());
    for (const auto& s : dataset.skipped) {
        if (s.reason == "no image")
            ++summary.noImage;
        else
            summary.failed.push_back({s.key, s.image, s.reason});
    }
    const std::int64_t failedBefore = std::int64_t(summary.failed.size());

    LabelingProgress progress;
    progress.total = summary.total;
    auto report = [&](const std::string& key, const std::string& answer) {
        progress.labeled = summary.labeled;
        progress.alreadyThere = summary.alreadyThere;
        progress.failed = std::int64_t(summary.failed.size()) - failedBefore;
        progress.remaining = summary.total - progress.labeled - progress.alreadyThere - progress.failed;
        progress.elapsedSeconds = secondsSince(t0);
        progress.samplesPerSecond =
            progress.elapsedSeconds > 0 ? double(progress.labeled) / progress.elapsedSeconds : 0.0;
        progress.etaSeconds =
            progress.samplesPerSecond > 0 ? double(progress.remaining) / progress.samplesPerSecond : -1.0;
        progress.key = key;
        progress.answer = answer;
        if (onProgress) onProgress(progress);
        job.report(summary.total - progress.remaining, summary.total, formatProgress(progress));
    };

    try {
        options.settings.validate();
        MapSelection selection = MapSelection::forSettings(options.settings);
        selection.add(options.extra);
        const int layers = teacher.layerCount(), heads = teacher.headCount();
        for (const auto& [layer, head] : selectedPairs(selection))
            if (layer < 0 || layer >= layers || head < kHeadMean || head >= heads)
                throw Error("label settings: " + mapName(layer, head) + " is out of range for model " +
                            teacher.modelId() + " (" + std::to_string(layers) + " layers, " +
                            std::to_string(heads) + " heads)");
        const std::vector<int> captureLayers = selection.captureLayers();
        const std::string modelId = options.modelId.empty() ? teacher.modelId() : options.modelId;
        const std::string settingsJson = options.settings.toJson().dump();
        for (const auto& other : store.models())
            if (other != modelId)
                throw Error(store.path() + ": holds labels by model '" + other +
                            "'; this job's teacher is '" + modelId + "' (label into another store)");

        const std::vector<std::string> stored = store.keys(dataset.id);
        const std::unordered_set<std::string> done(stored.begin(), stored.end());

        // The teacher gets its own context: by default a cancel lets the sample in flight finish. Without
        // finishSampleOnCancel, the teacher's per-token progress reports forward the cancel.
        JobContext teacherJob;
        if (!options.finishSampleOnCancel)
            teacherJob.onProgress = [&](const Progress&) {
                if (job.cancelRequested()) teacherJob.requestCancel();
            };

        int consecutiveFailures = 0;
        for (const Sample& sample : dataset.samples) {
            if (job.cancelRequested()) {
                summary.status = Status::cancelledStatus();
                break;
            }
            if (done.count(sample.key)) {
                ++summary.alreadyThere;
                if (summary.alreadyThere % 1000 == 0) report(sample.key, "");
                continue;
            }
            io::ImageRgb8 image;
            try {
                image = io::loadImage(sample.imagePath);
            } catch (const std::exception& e) {
                summary.failed.push_back({sample.key, sample.imagePath, e.what()});
                report(sample.key, "");
                continue;
            }
            const auto ts = std::chrono::steady_clock::now();
            TeacherAnswer answer;
            try {
                answer = teacher.answer(image, sample.question, captureLayers, teacherJob);
            } catch (const CancelledError&) {
                summary.status = Status::cancelledStatus();
                break;
            } catch (const std::exception&) {
                const Status s = statusFromCurrentException();
                summary.failed.push_back({sample.key, sample.imagePath, "the teacher failed: " + s.message});
                if (++consecutiveFailures >= options.maxConsecutiveFailures)
                    throw Error("the teacher failed on " + std::to_string(consecutiveFailures) +
                                " samples in a row; the last (" + sample.key + "): " + s.message);
                report(sample.key, "");
                continue;
            }
            consecutiveFailures = 0;

            StoredSample out;
            out.dataset = dataset.id;
            out.key = sample.key;
            out.image = sample.image;
            out.question = sample.question;
            out.reference = sample.answer;
            out.model = modelId;
            out.answer = answer.answer;
            out.answerTokens = int(answer.maps.rowsOfKind(models::QueryKind::Answer).size());
            out.settings = settingsJson;
            out.geometry = answer.geometry;
            out.modelLayers = layers;
            out.modelHeads = heads;
            out.maps = answerMaps(answer.maps, selection);
            const models::ImageGrid grid =
                answer.maps.imageSpans.empty() ? models::ImageGrid{} : answer.maps.imageSpans.front().grid;
            out.gridRows = grid.rows > 0 ? grid.rows : answer.geometry.gridRows;
            out.gridCols = grid.cols > 0 ? grid.cols : answer.geometry.gridCols;
            out.seconds = secondsSince(ts);
            if (store.put(out))
                ++summary.labeled;
            else
                ++summary.alreadyThere;  // another job sharing the store wrote it meanwhile
            report(sample.key, answer.answer);
        }
    } catch (const std::exception&) {
        summary.status = statusFromCurrentException();
    }
    report("", "");
    summary.seconds = secondsSince(t0);
    return summary;
}

}  // namespace sdrpn::data
