#include "cli/model_args.h"

#include <iostream>

#include "cli/commands.h"

namespace sdrpn::cli {

models::LoadOptions loadOptionsFrom(const Args& args) {
    models::LoadOptions load;
    load.device = args.get("device", "cpu");
    load.dtype = args.get("dtype", "fp32");
    load.visionTower = args.get("vision-tower");
    return load;
}

int loadImageAndModel(const std::string& command, const std::string& imagePath, const std::string& modelDir,
                      const models::LoadOptions& load, JobContext& job, io::ImageRgb8& image,
                      std::shared_ptr<const pipeline::LoadedModel>& model) {
    auto loadedImage = guarded([&] { return io::loadImage(imagePath); });
    if (!loadedImage) {
        std::cerr << "sdrpn " << command << ": " << loadedImage.message() << "\n";
        return kExitFailed;
    }
    auto loaded = pipeline::loadModel(modelDir, load, job);
    if (loaded.status().cancelled()) return kExitCancelled;
    if (!loaded) {
        std::cerr << "\nsdrpn " << command << ": " << loaded.message() << "\n";
        return kExitFailed;
    }
    image = std::move(loadedImage).value();
    model = loaded.value();
    return kExitOk;
}

}  // namespace sdrpn::cli
