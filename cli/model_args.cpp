#include "cli/model_args.h"

#include <iostream>

#include "cli/commands.h"

namespace sdrpn::cli {

models::LoadOptions loadOptionsFrom(const Args& args) {
    models::LoadOptions load;
    load.device = args.get("device", "cpu");
    load.dtype = args.get("dtype", "fp32");
    load.visionTower = args.get("vision-tower");
    load.base = args.get("base");
    return load;
}

int loadModelFor(const std::string& command, const std::string& modelDir, const models::LoadOptions& load,
                 JobContext& job, std::shared_ptr<const pipeline::LoadedModel>& model) {
    auto loaded = pipeline::loadModel(modelDir, load, job);
    if (loaded.status().cancelled()) return kExitCancelled;
    if (!loaded) {
        std::cerr << "\nsdrpn " << command << ": " << loaded.message() << "\n";
        return kExitFailed;
    }
    model = loaded.value();
    return kExitOk;
}

data::DatasetOptions datasetOptionsFrom(const Args& args, bool withShard) {
    if (!args.has("images"))
        throw UsageError("missing required option --images (the dataset's image folder)");
    data::DatasetOptions options;
    options.imageRoot = args.get("images");
    if (withShard && args.has("shard")) {
        try {
            options.shard = data::Shard::parse(args.get("shard"));
        } catch (const Error& e) {
            throw UsageError(std::string("--shard: ") + e.what());
        }
    }
    options.limit = args.getInt("limit", -1);
    if (args.has("limit") && options.limit < 1) throw UsageError("--limit must be at least 1");
    if (args.has("format")) {
        const std::string f = args.get("format");
        if (f == "jsonl")
            options.format = data::DatasetFormat::Jsonl;
        else if (f == "llava-json" || f == "json")
            options.format = data::DatasetFormat::LlavaJson;
        else
            throw UsageError("--format expects llava-json or jsonl, got '" + f + "'");
    }
    return options;
}

int loadImageAndModel(const std::string& command, const std::string& imagePath, const std::string& modelDir,
                      const models::LoadOptions& load, JobContext& job, io::ImageRgb8& image,
                      std::shared_ptr<const pipeline::LoadedModel>& model) {
    auto loadedImage = guarded([&] { return io::loadImage(imagePath); });
    if (!loadedImage) {
        std::cerr << "sdrpn " << command << ": " << loadedImage.message() << "\n";
        return kExitFailed;
    }
    const int rc = loadModelFor(command, modelDir, load, job, model);
    if (rc == kExitOk) image = std::move(loadedImage).value();
    return rc;
}

int joinGroupFor(const std::string& command, models::LoadOptions& load, std::unique_ptr<dist::Group>& group) {
    auto env = guarded([] { return dist::distEnvFromEnvironment(); });
    if (!env) {
        std::cerr << "sdrpn " << command << ": " << env.message() << "\n";
        return kExitFailed;
    }
    if (!env->distributed()) return kExitOk;
    if (load.device == "cuda") load.device = "cuda:" + std::to_string(env->localRank);
    try {
        group = dist::Group::connect(env.value());
    } catch (const std::exception& e) {
        std::cerr << "sdrpn " << command << ": " << e.what() << "\n";
        return kExitFailed;
    }
    return kExitOk;
}

}  // namespace sdrpn::cli
