// LabelStore: the SQLite file that a labeling job fills and that training, tuning and the studio read.
//
// One row per sample (dataset id + sample key): image, question, the teacher's greedy answer, the model id,
// the label settings JSON used, the grid geometry, and the raw answer→image attention maps that labels are
// rebuilt from (sdrpn.md §2.3, §2.5: stores hold raw maps, not labels). Labels are computed when read, with
// the current thresholds, so changing a threshold never needs relabeling.
//
//   LabelStore store = LabelStore::open("labels.sdrpn");           // creates it when missing
//   if (!store.contains(dataset.id, sample.key)) store.put(storedSample);   // one transaction per sample
//   std::optional<StoredSample> s = store.get(dataset.id, "17");
//   std::vector<float> grounding = s->meanMap(14, {24, 13, 26}).value();
//
// Durability: WAL mode, one transaction per put(). A process killed at any moment (kill -9) loses at most
// the sample it was writing; the file always opens. (synchronous=NORMAL: a power cut may lose the last
// few commits, never consistency.)
// Concurrency: one LabelStore object per thread (it holds one SQLite connection). Any number of readers
// (other objects, other processes, the studio) may read while one job writes; writers from several
// processes wait for each other (busy timeout).
// Errors: everything throws sdrpn::Error whose message starts with the file's path and says what is wrong
// (not a database, not a label store, written by a newer version, corrupt, read-only, disk full).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/jobs.h"
#include "core/models/capture.h"
#include "core/models/geometry.h"
#include "core/result.h"

struct sqlite3;

namespace sdrpn::data {

// StoredMap::head value for the mean over all of a layer's heads.
constexpr int kHeadMean = -1;

// The answer→image attention of one (layer, head), averaged over the fed-back answer tokens
// (sdrpn.md §2.3), or of the head mean (head == kHeadMean). Stored as fp16.
struct StoredMap {
    int layer = 0;
    int head = kHeadMean;
    std::vector<float> values;  // gridRows * gridCols, row-major
};

struct StoredSample {
    std::string dataset;  // Dataset::id
    std::string key;      // Sample::key, unique within the dataset
    std::string image;    // as the dataset writes it (relative to its image root)
    std::string question;
    std::optional<std::string> reference;  // the dataset's own answer, when it has one
    std::string model;                     // model id (by default the model folder's name)
    std::string answer;                    // the teacher's greedy answer (sdrpn.md §2.2)
    int answerTokens = 0;                  // answer rows averaged; 0 = no maps (first token EOS, §2.3 ⚠)
    std::string settings = "{}";           // label settings JSON used when the sample was labeled
    int gridRows = 0, gridCols = 0;        // the maps' grid
    models::GridGeometry geometry;         // where that grid sits on the source image (the preprocessor's)
    int modelLayers = 0, modelHeads = 0;   // the teacher's decoder layer and head counts
    double seconds = 0.0;                  // teacher time for this sample
    std::string created;                   // UTC time of the write, ISO 8601 (set by the store)
    std::vector<StoredMap> maps;           // sorted by (layer, head), head-mean first

    const StoredMap* find(int layer, int head) const;
    // Mean over `heads` of a layer's maps: exact from per-head maps, or from the head-mean map when
    // `heads` is empty (all heads) or names every head. nullopt when the maps needed were not stored.
    std::optional<std::vector<float>> meanMap(int layer, const std::vector<int>& heads) const;
    // The maps as a capture with one Answer row per layer, so label code written for live captures runs
    // on stored samples. Stored heads hold their maps; when the head mean is stored too, the other heads
    // hold the value that keeps the mean exact; with no head mean they hold NaN. Only means over stored
    // heads or over all heads are meaningful.
    models::AttentionMaps toAttentionMaps() const;
};

// A row without its maps, for listings.
struct SampleSummary {
    std::string dataset, key, image, question, answer, model, created;
    int answerTokens = 0;
    int mapCount = 0;
};

struct MergeConflict {
    std::string input;  // the store the sample came from
    std::string dataset, key;
    std::string reason;  // what differs ("answer", "model", "maps", ...)
};

struct MergeReport {
    std::int64_t added = 0;
    std::int64_t duplicates = 0;           // identical samples already there: skipped
    std::vector<MergeConflict> conflicts;  // same key, different content: the first one kept
};

class LabelStore {
public:
    static constexpr int kSchemaVersion = 1;
    static constexpr const char* kApplication = "sdrpn-label-store";

    enum class Access { ReadWrite, ReadOnly };
    struct Options {
        Access access = Access::ReadWrite;
        bool create = true;         // ReadWrite only: create the file when missing
        int busyTimeoutMs = 30000;  // how long to wait for another writer
        // Caps the file at this many pages (0 = no cap): a full disk, on demand, for tests.
        std::int64_t maxPageCount = 0;
    };

    // Opens (or creates) a store. Throws sdrpn::Error naming the file.
    static LabelStore open(const std::string& path, const Options& options);
    static LabelStore open(const std::string& path) { return open(path, Options{}); }

    LabelStore(LabelStore&& other) noexcept;
    LabelStore& operator=(LabelStore&& other) noexcept;
    LabelStore(const LabelStore&) = delete;
    LabelStore& operator=(const LabelStore&) = delete;
    ~LabelStore();

    const std::string& path() const { return m_path; }
    bool readOnly() const { return m_readOnly; }

    // Writes one sample in its own transaction. Returns false, writing nothing, when (dataset, key) is
    // already there. Throws on a sample whose maps do not match its grid, invalid settings JSON, or when
    // the write fails (read-only, disk full: the transaction is rolled back).
    bool put(const StoredSample& sample);

    bool contains(const std::string& dataset, const std::string& key) const;
    // The keys of a dataset's samples (all datasets when `dataset` is empty), in write order.
    std::vector<std::string> keys(const std::string& dataset) const;
    std::int64_t count(const std::string& dataset = {}) const;
    std::vector<std::string> datasets() const;
    std::vector<std::string> models() const;

    std::optional<StoredSample> get(const std::string& dataset, const std::string& key) const;
    // Samples in write order, without maps (browsing).
    std::vector<SampleSummary> list(std::int64_t offset, std::int64_t limit,
                                    const std::string& dataset = {}) const;
    // Every sample with its maps, in write order, read in one snapshot. `visit` returning false stops.
    void forEach(const std::function<bool(const StoredSample&)>& visit) const;

    // Copies every sample of `input` that this store lacks, in batched transactions. Identical samples
    // count as duplicates; a sample whose key is here with different content is a conflict (ours kept).
    MergeReport mergeFrom(const std::string& input, JobContext& job = JobContext::none());

private:
    LabelStore(std::string path, sqlite3* db, bool readOnly);
    bool insert(const StoredSample& sample);
    [[noreturn]] void fail(int rc, const std::string& what) const;
    void exec(const char* sql) const;

    std::string m_path;
    sqlite3* m_db = nullptr;
    bool m_readOnly = false;
};

// `sdrpn merge-stores`: merges `inputs` into `output` (created when missing). Throws naming the file.
MergeReport mergeStores(const std::string& output, const std::vector<std::string>& inputs,
                        JobContext& job = JobContext::none());

// IEEE 754 binary16 conversion (round to nearest even; NaN and infinities kept), the storage format.
std::uint16_t floatToHalf(float value);
float halfToFloat(std::uint16_t half);

}  // namespace sdrpn::data
