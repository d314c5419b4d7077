#include "core/models/weights.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "core/io/tensor_io.h"
#include "core/result.h"

namespace sdrpn::models {

std::string shapeString(const std::vector<std::int64_t>& shape) {
    std::ostringstream os;
    os << "[";
    for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
    os << "]";
    return os.str();
}

namespace {

bool isFloat(io::DType d) {
    return d == io::DType::F32 || d == io::DType::F16 || d == io::DType::BF16 || d == io::DType::F64;
}

std::string fileOf(const WeightSource::Entry& e) {
    for (const auto& f : e.archive->files())
        if (f->find(e.storedName)) return f->path();
    return e.archive->source();
}

}  // namespace

void WeightSource::addArchive(std::shared_ptr<const io::SafetensorsArchive> archive,
                              const KeyNormaliser& normalise) {
    TORCH_CHECK(archive, "WeightSource: null archive");
    for (const auto& name : archive->names()) {
        std::string canonical = normalise(name);
        if (canonical.empty()) continue;
        auto [it, inserted] = m_entries.emplace(canonical, Entry{archive, name});
        if (!inserted)
            throw Error("two stored tensors map to '" + canonical + "': '" + it->second.storedName + "' in " +
                        it->second.archive->source() + " and '" + name + "' in " + archive->source());
    }
    m_archives.push_back(std::move(archive));
}

std::size_t WeightSource::addMissingFrom(std::shared_ptr<const io::SafetensorsArchive> archive,
                                         const KeyNormaliser& normalise, const std::string& what) {
    TORCH_CHECK(archive, "WeightSource: null archive");
    // Canonical name -> stored name in `archive`, sorted so that the first mismatch reported is the first
    // in canonical-name order.
    std::map<std::string, std::string> incoming;
    for (const auto& name : archive->names()) {
        std::string canonical = normalise(name);
        if (canonical.empty()) continue;
        auto [it, inserted] = incoming.emplace(canonical, name);
        if (!inserted)
            throw Error("two stored tensors map to '" + canonical + "': '" + it->second + "' and '" + name +
                        "' in " + archive->source());
    }
    for (const auto& [canonical, stored] : incoming) {
        const Entry* own = find(canonical);
        if (!own) continue;
        const auto& mine = own->archive->info(own->storedName).shape;
        const auto& theirs = archive->info(stored).shape;
        if (mine != theirs)
            throw Error(what + ": " + canonical + " is " + shapeString(mine) + " in the checkpoint and " +
                        shapeString(theirs) + " in the base ('" + own->storedName + "' in " + fileOf(*own) +
                        ", '" + stored + "' in " + archive->source() + ")");
    }
    std::size_t added = 0;
    for (const auto& [canonical, stored] : incoming)
        if (m_entries.emplace(canonical, Entry{archive, stored}).second) ++added;
    if (added) m_archives.push_back(std::move(archive));
    return added;
}

std::vector<std::string> WeightSource::names() const {
    std::vector<std::string> out;
    out.reserve(m_entries.size());
    for (const auto& e : m_entries) out.push_back(e.first);
    std::sort(out.begin(), out.end());
    return out;
}

const WeightSource::Entry* WeightSource::find(const std::string& canonical) const {
    auto it = m_entries.find(canonical);
    return it == m_entries.end() ? nullptr : &it->second;
}

std::string WeightSource::describe() const {
    std::string out;
    for (std::size_t i = 0; i < m_archives.size(); ++i) out += (i ? " + " : "") + m_archives[i]->source();
    return out;
}

void checkWeights(const WeightSource& source, const std::vector<WeightSpec>& specs, const std::string& what) {
    std::vector<std::string> problems;
    for (const auto& spec : specs) {
        const auto* e = source.find(spec.name);
        if (!e) {
            problems.push_back("missing: " + spec.name + " (expected " + shapeString(spec.shape) + ")");
            continue;
        }
        const auto& info = e->archive->info(e->storedName);
        if (info.shape != spec.shape)
            problems.push_back("shape mismatch: " + spec.name + " expected " + shapeString(spec.shape) +
                               " found " + shapeString(info.shape) + " ('" + e->storedName + "' in " +
                               fileOf(*e) + ")");
        else if (!isFloat(info.dtype))
            problems.push_back("dtype: " + spec.name + " is " + io::dtypeName(info.dtype) +
                               ", expected a float type ('" + e->storedName + "' in " + fileOf(*e) + ")");
    }
    if (problems.empty()) return;
    std::ostringstream os;
    os << what << ": " << problems.size() << " of " << specs.size() << " expected tensors are missing or do "
       << "not match (weights from " << source.describe() << "):";
    for (const auto& p : problems) os << "\n  " << p;
    throw Error(os.str());
}

WeightMap loadWeights(const WeightSource& source, const std::vector<WeightSpec>& specs, torch::Device device,
                      torch::ScalarType dtype, const JobContext& job, const std::string& what) {
    std::int64_t total = 0;
    for (const auto& spec : specs)
        if (spec.load)
            if (const auto* e = source.find(spec.name))
                total += std::int64_t(e->archive->info(e->storedName).nbytes());
    WeightMap out;
    std::int64_t done = 0;
    job.report(0, total, "loading " + what);
    for (const auto& spec : specs) {
        if (!spec.load) continue;
        job.throwIfCancelled();
        const auto* e = source.find(spec.name);
        if (!e) throw Error(what + ": missing tensor " + spec.name);
        torch::Tensor t = io::loadTensor(*e->archive, e->storedName);
        out[spec.name] = t.to(device, dtype).contiguous();
        done += std::int64_t(e->archive->info(e->storedName).nbytes());
        job.report(done, total, spec.name);
    }
    job.throwIfCancelled();
    return out;
}

const torch::Tensor& weight(const WeightMap& weights, const std::string& name) {
    auto it = weights.find(name);
    if (it == weights.end() || !it->second.defined()) throw Error("weight not loaded: " + name);
    return it->second;
}

torch::Tensor optionalWeight(const WeightMap& weights, const std::string& name) {
    auto it = weights.find(name);
    return it == weights.end() ? torch::Tensor() : it->second;
}

}  // namespace sdrpn::models
