// What the SD-RPN subcommands (roi, ask --sdrpn, eval) share: which RPN to use and the RoI thresholds.
//
// The RPN, in this order:
//   --rpn CKPT            an SD-RPN checkpoint (folder with config.json twig_K / twig_T, or a .safetensors
//                         written by the studio or `sdrpn train`);
//   --rpn-k K --rpn-t T   an untrained twig initialised from backbone layers K .. K+T-1 ("twiginit");
//   neither               the model folder itself, when it is an SD-RPN checkpoint (its config.json has
//                         twig_K, as the released "-filled" checkpoints); else a usage error.
// The RoI settings: --roi-settings FILE (JSON), then the preset option (--preset for roi, --roi-preset for
// eval and ask), then --thr. Bad values are usage errors naming the option, value or file.
#pragma once

#include <set>
#include <string>

#include "cli/args.h"
#include "core/jobs.h"
#include "core/models/backbone.h"
#include "core/pipeline/ask.h"
#include "core/result.h"
#include "core/sdrpn/roi.h"
#include "core/sdrpn/rpn.h"

namespace sdrpn::cli {

struct RpnChoice {
    enum class Source { Checkpoint, ModelFolder, TwigInit };
    Source source = Source::Checkpoint;
    std::string path;  // the checkpoint (Checkpoint, ModelFolder)
    RpnConfig twig;    // K and T (TwigInit)

    std::string describe() const;  // "CKPT", "the model folder", "twiginit from the backbone"
};

// Adds --rpn, --rpn-k, --rpn-t, --thr, --roi-settings and `presetOption` to a command's valued options.
void addRpnOptions(std::set<std::string>& valued, const std::string& presetOption);

// The help lines of those options, aligned as the commands' usage texts.
std::string rpnUsage(const std::string& presetOption);

// Reads the RPN options. Throws UsageError when none is given and `modelDir` is not an SD-RPN checkpoint,
// for --rpn together with --rpn-k / --rpn-t, for only one of --rpn-k / --rpn-t, and for K or T < 1.
RpnChoice rpnChoiceFrom(const Args& args, const std::string& modelDir);

// Loads (or initialises) the chosen RPN for a loaded backbone.
Result<Rpn> loadChosenRpn(const RpnChoice& choice, const models::Backbone& backbone, const JobContext& job);

// loadChosenRpn for a command: on success prints "loaded DIR in S s; RPN K=.. T=.. (source)<extra>" unless
// quiet and returns kExitOk; else reports on stderr and returns kExitFailed or kExitCancelled.
int loadRpnFor(const std::string& command, const RpnChoice& choice, const pipeline::LoadedModel& model,
               bool quiet, const std::string& extra, const JobContext& job, Rpn& rpn);

// The RoI settings from --roi-settings, the preset option and --thr. Throws UsageError naming the culprit.
RoiSettings roiSettingsFrom(const Args& args, const std::string& presetOption);

}  // namespace sdrpn::cli
