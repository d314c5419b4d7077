// Dataset readers for labeling and evaluation: LLaVA conversation JSON (llava_v1_5_mix665k.json style) and
// JSONL (one question per line), resolved against an image root folder.
//
//   DatasetOptions opt;
//   opt.imageRoot = "/data/images";
//   opt.shard = Shard::parse("1/4");                    // entries 1, 5, 9, ... of the file
//   Dataset d = readDataset("/data/llava_v1_5_mix665k.json", opt);
//   for (const Sample& s : d.samples) label(s.imagePath, s.question);
//   for (const SkippedEntry& e : d.skipped) warn(e.key, e.reason);   // no image, image missing
//
// LLaVA JSON: a list of {id, image, conversations: [{from: "human", value}, {from: "gpt", value}, ...]}.
// As sdrpn.md §2.1: entries without an image are left out, only the first human turn is used, with
// "<image>\n" / "\n<image>" (and any other "<image>") removed; the gpt turn that follows it becomes the
// optional reference answer. The sample key is the entry's index in the file (the reference's
// question_id), so keys match pseudo-label files made by the reference code.
//
// JSONL: one object per line: `image`, `question` (or `text`, as the reference's make_jsonl writes),
// optional `answer`, optional `answers` (a list of reference answers, as TextVQA / VQAv2 have: scored with
// VQA accuracy), optional `bbox` [x0, y0, x1, y1] in source pixels, optional `question_id` or `id` (the key;
// else the line's index among non-empty lines). Duplicate keys are an error.
//
// Errors: malformed files throw sdrpn::Error naming the file and the line (JSON syntax) or the entry / line
// (wrong shape). Missing images are never an error: they are skipped and listed in Dataset::skipped.
// Corrupt images can only be found by decoding; the labeling job reports those.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace sdrpn::data {

// A deterministic split of a file's entries into `count` shards: entry i belongs to shard i % count.
// Shards depend only on the entry's position in the file, never on which images exist.
struct Shard {
    int index = 0;  // 0-based
    int count = 1;

    bool contains(std::size_t entry) const { return int(entry % std::size_t(count)) == index; }
    std::string toString() const { return std::to_string(index) + "/" + std::to_string(count); }
    // "i/n" with 0 <= i < n. Throws sdrpn::Error on anything else.
    static Shard parse(const std::string& text);
};

enum class DatasetFormat { LlavaJson, Jsonl };

const char* datasetFormatName(DatasetFormat format);  // "llava-json", "jsonl"

struct Sample {
    std::string key;                    // unique within the dataset
    std::size_t entry = 0;              // position of the entry in the file (0-based; JSONL: non-empty lines)
    std::string image;                  // as written in the file
    std::string imagePath;              // imageRoot / image (an absolute `image` is kept as is)
    std::string question;               // the first human turn without <image>
    std::optional<std::string> answer;  // reference answer, when the file has one
    // Every reference answer: `answers` of a JSONL line (in order), else the one `answer`; empty when the
    // file has none. `answer` is the single `answer` when given, else the first of `answers`.
    std::vector<std::string> answers;
    std::optional<std::array<double, 4>> bbox;  // ground-truth box [x0, y0, x1, y1], source pixels
};

struct SkippedEntry {
    std::string key;
    std::string image;   // the resolved path, or empty when the entry has no image
    std::string reason;  // "no image", "image not found", ...
};

struct DatasetOptions {
    std::string imageRoot;                // "" = paths are relative to the working folder
    std::optional<DatasetFormat> format;  // default: by extension (.jsonl → JSONL, else LLaVA JSON)
    Shard shard;                          // keep only this shard's entries
    std::int64_t limit = -1;              // keep at most this many samples (after the shard), -1 = all
    bool checkImages = true;              // skip entries whose image file does not exist
};

struct Dataset {
    std::string path;
    std::string id;  // the file name without its extension: identifies the dataset in a label store
    DatasetFormat format = DatasetFormat::LlavaJson;
    std::size_t entries = 0;            // entries in the file (all shards)
    std::vector<Sample> samples;        // this shard's usable samples, in file order
    std::vector<SkippedEntry> skipped;  // this shard's entries that were left out
};

// Reads a dataset file. Throws sdrpn::Error naming the file (and line / entry) when it cannot be read or is
// malformed. Large LLaVA files are parsed entry by entry, not held as one JSON document.
Dataset readDataset(const std::string& path, const DatasetOptions& options = {});

// The same, at the core's edge.
Result<Dataset> openDataset(const std::string& path, const DatasetOptions& options = {});

// sdrpn.md §2.1: the question text of a first human turn, without the <image> placeholder.
std::string stripImagePlaceholder(const std::string& text);

}  // namespace sdrpn::data
