// Conversion of a model folder's weights (PyTorch .bin, sharded or not, or safetensors) to safetensors, as
// `sdrpn convert` does it: `model.safetensors`, or shards `model-0000N-of-0000M.safetensors` of at most
// 5 GB each with `model.safetensors.index.json` (metadata.total_size, weight_map), metadata
// {"format": "pt"}; every other file of the folder (config.json, tokenizer files, ...) is copied, not the
// `*.bin` / `*.bin.index.json` ones.
//
//   JobContext job;
//   ConvertReport r = convertToSafetensors("/models/llava-v1.5-7b", "/models/llava-v1.5-7b-st", job);
//   std::cout << r.tensors << " tensors in " << r.shards << " shards\n";
//
// Errors: sdrpn::Error naming the folder or file at fault: the output exists and is not empty, is the
// input, the input has no weights, a tensor is damaged, the disk is full. Progress is reported through
// `job` per tensor, and cancel (CancelledError) is honoured between tensors. On failure or cancel, every
// file this call wrote is removed again (shards are written atomically, so none is ever half-written).
// Thread safety: one call per output folder; the inputs are only read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/jobs.h"

namespace sdrpn::io {

struct ConvertReport {
    int shards = 0;
    std::int64_t tensors = 0;
    std::uint64_t bytes = 0;          // of tensor data written
    std::vector<std::string> copied;  // file names copied alongside the weights
    std::string out;                  // the output folder
};

// Largest shard written, in bytes of tensor data (as transformers' "5GB").
constexpr std::uint64_t kMaxShardBytes = 5'000'000'000ULL;

// `inDir`: a model folder (or one weights file / index). `maxShardBytes`: the shard limit (tests use small
// ones); a tensor larger than it gets a shard of its own.
ConvertReport convertToSafetensors(const std::string& inDir, const std::string& outDir,
                                   JobContext& job = JobContext::none(),
                                   std::uint64_t maxShardBytes = kMaxShardBytes);

}  // namespace sdrpn::io
