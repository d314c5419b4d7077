// Filling an unfilled SD-RPN checkpoint (sdrpn.md §0 `filled`): the released trained checkpoints hold only
// backbone layers [0, K+T), the twig and the vision / projector weights; mergeCheckpoint writes a new folder
// that also holds every tensor of the base model the checkpoint lacks (layers K+T .. N-1, the final norm,
// lm_head, ...), as the reference's migrate_weights.py does, so that it loads without a base model.
//
//   JobContext job;
//   pipeline::MergeReport r = pipeline::mergeCheckpoint("/models/llava-13b-roi-K18T3",
//   "/models/llava-1.5-13b",
//                                                       "/models/llava-13b-roi-K18T3-filled", job);
//
// What it writes: every tensor of the checkpoint as stored (same key, dtype and bytes), plus the base's
// tensors that the checkpoint lacks by canonical name, renamed into the checkpoint's key layout (the base
// may use another layout, e.g. llava-hf against an original-LLaVA checkpoint: names are mapped through the
// canonical names and back by the prefixes the checkpoint's own keys use) and kept in their stored dtype.
// An original-LLaVA checkpoint without a vision tower gets none from the base (it reads its CLIP folder).
// Shards of at most MergeOptions::maxShardBytes (one model.safetensors when everything fits, else
// model-0000i-of-0000n.safetensors with model.safetensors.index.json); config.json and the other files
// (tokenizer, preprocessor config, ...) from the checkpoint, and the base's files the checkpoint lacks.
// Weight files of either folder (*.safetensors, *.bin, index files, ...) are not copied.
//
// Errors: throws sdrpn::Error when `outDir` exists and is not an empty folder, when the families
// (model_type) differ, when the decoder configs differ (naming the key: "base model <base> does not match
// <checkpoint>: config hidden_size is ..."), when a tensor both hold differs in shape (the first in
// canonical-name order: "...: model.layers.0.self_attn.q_proj.weight is [64, 64] in the checkpoint and
// [128, 128] in the base"), or on any read / write failure; CancelledError when cancelled. Nothing is left
// behind then: the folder is written under a temporary name beside `outDir` and renamed when complete.
// Progress (bytes written) and cancel per tensor through `job`; tensor bytes are copied straight from the
// memory-mapped source files.
//
// Thread safety: none needed; it runs on the calling thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/jobs.h"
#include "core/result.h"

namespace sdrpn::pipeline {

struct MergeOptions {
    std::uint64_t maxShardBytes = 5'000'000'000;  // per weight file
};

struct MergeReport {
    std::string outDir;
    std::size_t checkpointTensors = 0;  // copied as stored
    std::size_t baseTensors = 0;        // filled in from the base
    std::uint64_t bytes = 0;            // tensor bytes written
    std::vector<std::string> shards;    // weight file names, in order
    std::vector<std::string> files;     // other files copied (names), from either folder
};

MergeReport mergeCheckpoint(const std::string& rpnDir, const std::string& baseDir, const std::string& outDir,
                            JobContext& job, const MergeOptions& options = {});
Result<MergeReport> tryMergeCheckpoint(const std::string& rpnDir, const std::string& baseDir,
                                       const std::string& outDir, JobContext& job,
                                       const MergeOptions& options = {});

}  // namespace sdrpn::pipeline
