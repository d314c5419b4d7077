// The labeling job (sdrpn.md §2.1–2.5): for every sample of a dataset that the store lacks, the teacher
// answers greedily with the answer rows captured, and the answer→image maps that the label settings need
// are written to the store, one transaction per sample. Labels themselves are made when read
// (labelsOf), with whatever thresholds are current.
//
//   Dataset data = readDataset("mix665k.json", {"/data/images"});
//   LabelStore store = LabelStore::open("labels.sdrpn");
//   PipelineTeacher teacher(model);                              // pipeline_teacher.h
//   LabelingOptions opt;
//   opt.settings = LabelSettings::fromPreset("llava-1.5-7b");
//   LabelingSummary s = runLabeling(data, store, teacher, opt, job, onProgress);
//   if (s.status.cancelled()) ...;  // rerun to resume: finished samples are skipped
//
//   Labels l = labelsOf(*store.get(data.id, "17"), LabelSettings::fromPreset("llava-1.5-7b"));
//
// Thread affinity: runLabeling runs on the caller's (worker) thread and calls onProgress there.
// Cancel: JobContext::requestCancel() from any thread; the sample in flight is finished and written first
// (LabelingOptions::finishSampleOnCancel), then the job returns with a Cancelled status.
// Errors are values: runLabeling never throws. Unreadable images and samples the teacher fails on are
// listed in the summary and left out of the store (a rerun retries them); a store that cannot be written
// (disk full, read-only) or a teacher failing on every sample stops the job with a Failed status.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/data/dataset.h"
#include "core/data/label_store.h"
#include "core/io/image.h"
#include "core/jobs.h"
#include "core/models/capture.h"
#include "core/models/geometry.h"
#include "core/result.h"
#include "core/sdrpn/labels.h"

namespace sdrpn::data {

// Which answer→image maps the job keeps per sample.
struct MapSelection {
    std::vector<std::pair<int, int>> heads;  // (layer, head): that head's map
    std::vector<int> meanLayers;             // the head mean of these layers
    bool allLayerMeans = false;              // the head mean of every layer (small tuning sets)

    // What `settings` needs: every head of a HeadGroup that names heads, the head mean of one that does
    // not (LLaVA-7B: layer 14 heads 24, 13, 26 and the layer-2 head mean; sdrpn.md §2.4).
    static MapSelection forSettings(const LabelSettings& settings);
    void addAllHeads(int layer, int headCount);  // keep every head of a layer (to pick heads later)
    void add(const MapSelection& other);
    // The decoder layers to capture; empty means every layer (allLayerMeans).
    std::vector<int> captureLayers() const;
};

// One stored map per (layer, head) of `selection`, each averaged over the answer rows of `maps`
// (sdrpn.md §2.3), on the first image's grid. Empty when no answer row was captured (the first token was
// EOS, §2.3 ⚠). Throws sdrpn::Error when a layer was not captured or a head is out of range.
std::vector<StoredMap> answerMaps(const models::AttentionMaps& maps, const MapSelection& selection);

// The (layer, head) maps `settings` needs that `sample` lacks, as "layer 14 head 25" / "layer 2 head mean".
std::vector<std::string> missingMaps(const StoredSample& sample, const LabelSettings& settings);

// Labels of a stored sample with the given settings (sdrpn.md §2.6, §2.7; the known-background mask of
// §2.7 from the stored geometry). A sample without maps gives LabelStatus::NonFinite (all −100). Throws
// sdrpn::Error naming the sample and the missing maps when the store does not hold what `settings` needs.
Labels labelsOf(const StoredSample& sample, const LabelSettings& settings);

// What the teacher gives back for one sample.
struct TeacherAnswer {
    std::string answer;
    models::AttentionMaps maps;  // answer rows (QueryKind::Answer) of the requested layers
    models::GridGeometry geometry;
};

// The model that answers. Implementations must be usable for one call at a time from the job's thread.
class Teacher {
public:
    virtual ~Teacher() = default;
    virtual std::string modelId() const = 0;
    virtual int layerCount() const = 0;
    virtual int headCount() const = 0;
    // Greedy answer to `question` about `image`, capturing the fed-back answer tokens of `layers` (empty =
    // every layer). Throws on failure; CancelledError when `job` is cancelled.
    virtual TeacherAnswer answer(const io::ImageRgb8& image, const std::string& question,
                                 const std::vector<int>& layers, JobContext& job) const = 0;
};

struct LabelingOptions {
    LabelSettings settings;  // stored with every sample as JSON; chooses the maps kept
    MapSelection extra;      // maps kept besides those the settings need (--layers, --all-layer-means)
    std::string modelId;     // "" = teacher.modelId()
    bool finishSampleOnCancel = true;  // false: cancel also stops the teacher mid-answer
    int maxConsecutiveFailures = 10;   // teacher failures in a row that stop the job
};

struct FailedSample {
    std::string key;
    std::string image;   // resolved path
    std::string reason;  // "image not found", the decoder's or the teacher's message
};

struct LabelingProgress {
    std::int64_t total = 0;         // samples in the dataset (this shard, after the limit)
    std::int64_t labeled = 0;       // written by this run
    std::int64_t alreadyThere = 0;  // skipped: in the store before this run
    std::int64_t failed = 0;
    std::int64_t remaining = 0;
    double elapsedSeconds = 0.0;
    double samplesPerSecond = 0.0;  // labeled / elapsed
    double etaSeconds = -1.0;       // -1 until the rate is known
    std::string key;                // the sample just finished
    std::string answer;             // its teacher answer ("" when it failed)
};

struct LabelingSummary {
    Status status;  // ok, cancelled, or failed with the reason
    std::int64_t total = 0;
    std::int64_t labeled = 0;
    std::int64_t alreadyThere = 0;
    std::int64_t noImage = 0;          // dataset entries without an image (text-only conversations)
    std::vector<FailedSample> failed;  // images missing or unreadable, teacher failures
    double seconds = 0.0;
};

// A one-line progress message: "12/300 labeled, 40 already there, 1 failed | 2.31 samples/s | ETA 2m05s".
std::string formatProgress(const LabelingProgress& progress);

LabelingSummary runLabeling(const Dataset& dataset, LabelStore& store, const Teacher& teacher,
                            const LabelingOptions& options, JobContext& job,
                            const std::function<void(const LabelingProgress&)>& onProgress = {});

}  // namespace sdrpn::data
