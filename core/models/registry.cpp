#include "core/models/registry.h"

#include <utility>

#include "core/io/config.h"
#include "core/models/deepseek_vl.h"
#include "core/models/llava.h"
#include "core/models/qwen2_5_vl.h"

namespace sdrpn::models {

namespace {

std::shared_ptr<const Backbone> loadLlavaBackbone(const std::string& dir, const LoadOptions& options,
                                                  const JobContext& job) {
    return loadLlava(dir, options, job);
}

std::shared_ptr<const Backbone> loadDeepseekVlBackbone(const std::string& dir, const LoadOptions& options,
                                                       const JobContext& job) {
    return loadDeepseekVl(dir, options, job);
}

std::shared_ptr<const Backbone> loadQwenBackbone(const std::string& dir, const LoadOptions& options,
                                                 const JobContext& job) {
    return loadQwen2_5Vl(dir, options, job);
}

// One line per backbone family.
const std::vector<std::pair<std::string, BackboneLoader>>& table() {
    static const std::vector<std::pair<std::string, BackboneLoader>> kTable = {
        {"llava", &loadLlavaBackbone},
        {"qwen2_5_vl", &loadQwenBackbone},
        {"deepseek_vl", &loadDeepseekVlBackbone},
    };
    return kTable;
}

}  // namespace

std::vector<std::string> supportedModelTypes() {
    std::vector<std::string> out;
    for (const auto& e : table()) out.push_back(e.first);
    return out;
}

BackboneLoader findBackboneLoader(const std::string& modelType) {
    for (const auto& e : table())
        if (e.first == modelType) return e.second;
    return nullptr;
}

std::shared_ptr<const Backbone> loadBackbone(const std::string& modelDir, const LoadOptions& options,
                                             const JobContext& job) {
    const io::ModelTypeInfo type = io::readModelType(modelDir);
    BackboneLoader loader = findBackboneLoader(type.modelType);
    if (!loader) {
        std::string known;
        for (const auto& t : supportedModelTypes()) known += (known.empty() ? "" : ", ") + t;
        throw Error(modelDir + ": model_type '" + type.modelType + "' is not supported (supported: " + known +
                    ")");
    }
    return loader(modelDir, options, job);
}

Result<std::shared_ptr<const Backbone>> tryLoadBackbone(const std::string& modelDir,
                                                        const LoadOptions& options, const JobContext& job) {
    return guarded([&] { return loadBackbone(modelDir, options, job); });
}

}  // namespace sdrpn::models
