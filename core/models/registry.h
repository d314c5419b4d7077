// The backbone registry: config `model_type` -> loader. Adding a backbone family is one file
// (core/models/<family>.cpp) and one line in registry.cpp.
//
//   JobContext job;
//   Result<std::shared_ptr<const Backbone>> r = tryLoadBackbone("/models/llava-1.5-7b-hf", {}, job);
//
// Thread safety: loading may run on any thread; progress is reported on that thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/jobs.h"
#include "core/models/backbone.h"
#include "core/models/load_options.h"
#include "core/result.h"

namespace sdrpn::models {

using BackboneLoader = std::shared_ptr<const Backbone> (*)(const std::string& modelDir,
                                                           const LoadOptions& options, const JobContext& job);

// Registered model types, e.g. {"llava"}.
std::vector<std::string> supportedModelTypes();
// The loader for a model type, or nullptr.
BackboneLoader findBackboneLoader(const std::string& modelType);

// Reads `model_type` from <modelDir>/config.json and loads with the matching loader. Throws sdrpn::Error
// naming the folder and the unknown type; CancelledError when cancelled.
std::shared_ptr<const Backbone> loadBackbone(const std::string& modelDir, const LoadOptions& options,
                                             const JobContext& job);
Result<std::shared_ptr<const Backbone>> tryLoadBackbone(const std::string& modelDir,
                                                        const LoadOptions& options, const JobContext& job);

}  // namespace sdrpn::models
