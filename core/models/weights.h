// Checkpoint weights by canonical name: where each tensor is stored (WeightSource), what a model expects
// (WeightSpec), a check of all of it before anything is read, and loading with dtype/device conversion.
//
//   WeightSource source;
//   source.addArchive(SafetensorsArchive::open(dir), normaliseKey);   // maps stored -> canonical names
//   checkWeights(source, specs);               // throws one sdrpn::Error listing every missing/mismatched
//   one WeightMap w = loadWeights(source, specs, device, torch::kFloat, job);   // progress + cancel per
//   tensor
//
// Thread safety: a WeightSource is read-only after it is built.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/torch.h>

#include "core/io/safetensors.h"
#include "core/jobs.h"

namespace sdrpn::models {

using WeightMap = std::unordered_map<std::string, torch::Tensor>;

struct WeightSpec {
    std::string name;                 // canonical name
    std::vector<std::int64_t> shape;  // expected shape
    bool load = true;                 // false: must exist with this shape, but the model does not use it
};

// Maps a stored key to its canonical name; returns "" for keys to ignore.
using KeyNormaliser = std::function<std::string(const std::string&)>;

class WeightSource {
public:
    struct Entry {
        std::shared_ptr<const io::SafetensorsArchive> archive;
        std::string storedName;
    };

    // Adds every tensor of `archive` under normalise(name). A canonical name found twice throws, naming both
    // stored keys and the archives.
    void addArchive(std::shared_ptr<const io::SafetensorsArchive> archive, const KeyNormaliser& normalise);

    // Fills in from `archive` (a base model) every canonical name this source lacks; tensors present in both
    // stay as they are. First checks that every canonical name present in both has the same shape and throws
    // an sdrpn::Error naming the first differing tensor in canonical-name order: "<what>: model.layers.0.
    // self_attn.q_proj.weight is [64, 64] in the checkpoint and [128, 128] in the base". Nothing is added
    // when it throws. Returns how many tensors were added.
    std::size_t addMissingFrom(std::shared_ptr<const io::SafetensorsArchive> archive,
                               const KeyNormaliser& normalise, const std::string& what);

    const Entry* find(const std::string& canonical) const;
    // Every canonical name, sorted.
    std::vector<std::string> names() const;
    std::size_t size() const { return m_entries.size(); }
    // "<archive source>" of each archive, for messages.
    std::string describe() const;

private:
    std::unordered_map<std::string, Entry> m_entries;
    std::vector<std::shared_ptr<const io::SafetensorsArchive>> m_archives;
};

// Checks presence, shape and dtype (a float type) of every spec; throws sdrpn::Error listing all problems:
// "missing: <name> (expected [a, b])", "shape mismatch: <name> expected [..] found [..] (<stored key> in
// <file>)".
void checkWeights(const WeightSource& source, const std::vector<WeightSpec>& specs, const std::string& what);

// Loads the specs with load == true, converted to `dtype` on `device`; reports progress (done / total
// bytes) through `job` and throws CancelledError between tensors when cancelled.
WeightMap loadWeights(const WeightSource& source, const std::vector<WeightSpec>& specs, torch::Device device,
                      torch::ScalarType dtype, const JobContext& job, const std::string& what);

// weights.at(name) with an error naming the missing tensor (for module constructors).
const torch::Tensor& weight(const WeightMap& weights, const std::string& name);
// weights[name] or an undefined tensor.
torch::Tensor optionalWeight(const WeightMap& weights, const std::string& name);

std::string shapeString(const std::vector<std::int64_t>& shape);

}  // namespace sdrpn::models
