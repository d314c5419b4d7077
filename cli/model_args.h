// What every model-running subcommand shares: the load options it reads (--device, --dtype,
// --vision-tower, --base: an unfilled SD-RPN checkpoint's base model) and loading its image and model with
// errors reported as "sdrpn <command>: ...".
#pragma once

#include <memory>
#include <string>

#include "cli/args.h"
#include "core/data/dataset.h"
#include "core/dist/group.h"
#include "core/io/image.h"
#include "core/jobs.h"
#include "core/models/load_options.h"
#include "core/pipeline/ask.h"

namespace sdrpn::cli {

// --device, --dtype, --vision-tower and --base (each command lists them among its valued options).
models::LoadOptions loadOptionsFrom(const Args& args);

// Reads the image, then loads the model (progress through job). Returns kExitOk, kExitFailed or
// kExitCancelled; on failure the reason is already on stderr.
// Loads the model (progress through job). Returns kExitOk, kExitFailed or kExitCancelled; on failure the
// reason is already on stderr.
int loadModelFor(const std::string& command, const std::string& modelDir, const models::LoadOptions& load,
                 JobContext& job, std::shared_ptr<const pipeline::LoadedModel>& model);

// The dataset options label and eval share: --images (required), --limit, --format, and --shard when
// `withShard`. Throws UsageError for bad values.
data::DatasetOptions datasetOptionsFrom(const Args& args, bool withShard);

int loadImageAndModel(const std::string& command, const std::string& imagePath, const std::string& modelDir,
                      const models::LoadOptions& load, JobContext& job, io::ImageRgb8& image,
                      std::shared_ptr<const pipeline::LoadedModel>& model);

// A multi-process run (torchrun, mpirun or scripts/launch set RANK and WORLD_SIZE; core/dist/dist_env.h):
// joins the group, and gives each rank its own GPU when --device is a bare "cuda" (cuda:LOCAL_RANK).
// `group` stays empty when this process runs alone. Returns kExitOk or kExitFailed (reason on stderr).
int joinGroupFor(const std::string& command, models::LoadOptions& load, std::unique_ptr<dist::Group>& group);

}  // namespace sdrpn::cli
