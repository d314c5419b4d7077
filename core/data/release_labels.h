// SD-RPN's released pseudo-label files (sdrpn.md §2.5: a pickled list of dicts, one per sample, holding the
// teacher's answer and two already-reduced 24×24 maps) imported into a label store, and one stored
// sample's maps and labels as plain arrays.
//
//   ReleaseImportOptions opt;
//   opt.imageRoot = "/data/images";            // the folder the dicts' `image` paths are relative to
//   ReleaseImportReport r = importReleasedLabels("llava_7b_labels.pkl", "labels.sdrpn", opt, job);
//   std::printf("%lld added, %lld skipped, %lld rejected\n", r.added, r.skipped, r.rejected);
//
//   SampleLabelDump d = dumpSampleLabels(*store.get("llava_7b_labels", "17"), settings);
//
// How a released sample is stored: the label store keeps per-(layer, head) answer→image maps and makes
// labels from them when read (labelsOf). A released sample holds the grounding map and the sink map
// already averaged over the preset's heads, so the grounding map is stored under every (layer, head) of
// the preset's grounding groups (the head mean kHeadMean for a group naming no heads) and the sink map
// under those of its sink groups. Every mean labelsOf takes over them is then the released map itself, and
// changing the thresholds later (α, β, τs, the box limit) works as for samples the studio labeled.
// Changing the heads does not: the store holds only the preset's (layer, head) pairs.
// Maps are stored as fp16 (the store's format): values within a relative 2⁻¹¹ of a threshold may fall on
// the other side of it than in float32.
//
// Per sample, in file order: a dict with a missing key, a value of the wrong type, a map whose shape is
// not (576,) or (24, 24), an infinite value (or one beyond fp16's range) in a map the preset uses, or a
// missing image is rejected (counted, the reason naming the question_id listed in `problems`); a sample
// whose key is already in the store, or earlier in the file, is skipped and never overwritten; a map
// holding NaN (the teacher's answer had no tokens) is kept without maps and answerTokens 0, so its labels
// are all ignored (LabelStatus::NonFinite).
// Whole-file errors throw sdrpn::Error naming the file before anything is written: an unreadable or
// unsafe pickle (anything that would run code is refused by the restricted unpickler; the store is not
// even opened), a top level that is not a list of dicts, an unknown preset or one whose grounding and
// sink share a (layer, head), a store that holds another model's labels.
// Writes: one LabelStore::put() (one transaction) per sample, so an interrupted import keeps what it
// wrote and a rerun adds only what is missing. Progress: job.report() after every sample; a cancel is
// honoured between samples by throwing CancelledError.
// Thread safety: the functions keep no state and may run on any thread; imports into the same store from
// several threads or processes are serialised by the store, and a key written by one is skipped by the
// other.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/data/label_store.h"
#include "core/jobs.h"
#include "core/sdrpn/labels.h"

namespace sdrpn::data {

struct ReleaseImportOptions {
    std::string dataset;  // dataset id; "" = the .pkl file's stem
    std::string preset;   // label preset; "" = llava-1.5-7b, or qwen2.5-vl-7b for (24, 24) maps
    std::string model = "sdrpn-release";  // model id written with every sample
    std::string imageRoot;                // the folder the dicts' `image` paths are relative to
    bool checkImages = true;              // false: no image is read; the geometry is the square grid
};

struct ReleaseImportReport {
    static constexpr std::size_t kMaxProblems = 1000;
    std::int64_t read = 0;      // dicts in the file
    std::int64_t added = 0;     // written to the store
    std::int64_t skipped = 0;   // key already in the store or earlier in the file
    std::int64_t rejected = 0;  // invalid dict or missing image
    // One line per rejected sample and per sample kept without maps, the first kMaxProblems of them.
    std::vector<std::string> problems;
    std::string dataset;  // the dataset id used
    std::string preset;   // the label preset used
};

// Imports one released .pkl file into the store at `storePath` (created when missing). Throws
// sdrpn::Error for whole-file problems (see above) and store failures, CancelledError on cancel.
ReleaseImportReport importReleasedLabels(const std::string& pklPath, const std::string& storePath,
                                         const ReleaseImportOptions& options,
                                         JobContext& job = JobContext::none());

// The grid placement a released sample's maps had: the image padded to a square (LLaVA's expand2square,
// 336 px, 14 px cells; Qwen's with 672 px and 28 px merged cells), for a source of width × height.
models::GridGeometry releaseGeometry(LabelVariant variant, int width, int height);

// The pixel size of an image file, from its header where the format allows (PNG, JPEG, GIF, BMP, WebP;
// EXIF orientation is not applied, as in the reference's PIL loading), else by decoding it. Throws
// sdrpn::Error naming the file when it is missing or unreadable.
std::pair<int, int> imageFileSize(const std::string& path);

// One stored sample's grounding and sink maps under `settings` and its labels, row-major, rows × cols.
struct SampleLabelDump {
    std::vector<float> grounding;      // the grounding map (NaN when the sample has no maps)
    std::vector<float> sink;           // the sink map (zeros when the settings have none)
    std::vector<std::int64_t> labels;  // 1 / 0 / −100 (makeLabels)
    int rows = 0, cols = 0;
    LabelStatus status = LabelStatus::NoSignal;
};

// Throws sdrpn::Error (as labelsOf) when the sample lacks the maps `settings` needs.
SampleLabelDump dumpSampleLabels(const StoredSample& sample, const LabelSettings& settings);

}  // namespace sdrpn::data
