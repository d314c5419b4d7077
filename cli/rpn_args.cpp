#include "cli/rpn_args.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "core/pipeline/sdrpn_checkpoint.h"

namespace sdrpn::cli {
namespace {

int positiveInt(const Args& args, const std::string& name) {
    const int v = args.getInt(name, -1);
    if (v < 1) throw UsageError("--" + name + " must be a positive integer");
    return v;
}

std::string readFile(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Error(path + ": cannot open");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

std::string RpnChoice::describe() const {
    switch (source) {
        case Source::Checkpoint:
            return path;
        case Source::ModelFolder:
            return "the model folder " + path;
        case Source::TwigInit:
            return "twiginit from the backbone";
    }
    return path;
}

void addRpnOptions(std::set<std::string>& valued, const std::string& presetOption) {
    valued.insert({"rpn", "rpn-k", "rpn-t", "thr", "roi-settings", presetOption});
}

std::string rpnUsage(const std::string& presetOption) {
    std::string preset = "  --" + presetOption + " NAME";
    preset.resize(24, ' ');
    return "  --rpn CKPT            SD-RPN checkpoint (folder with config.json twig_K / twig_T, or a\n"
           "                        .safetensors written by the studio); default: the model folder when\n"
           "                        it is one\n"
           "  --rpn-k K --rpn-t T   without a checkpoint: initialise the twig from backbone layers\n"
           "                        K .. K+T-1 (\"twiginit\"; untrained, for trying the machinery)\n"
           "  --thr T               RoI threshold (default 0.15; negative: relative to the peak)\n" +
           preset +
           "RoI thresholds of a benchmark: textvqa_val, infovqa_val, chartqa, ocrbench,\n"
           "                        docvqa_val, vstar_bench, pope, hrbench (--thr overrides)\n"
           "  --roi-settings FILE   RoI settings JSON (as the studio saves them; --" +
           presetOption + " and --thr override)\n";
}

RpnChoice rpnChoiceFrom(const Args& args, const std::string& modelDir) {
    RpnChoice choice;
    const bool twig = args.has("rpn-k") || args.has("rpn-t");
    if (args.has("rpn")) {
        if (twig) throw UsageError("give either --rpn CKPT or --rpn-k K --rpn-t T, not both");
        choice.source = RpnChoice::Source::Checkpoint;
        choice.path = args.get("rpn");
        return choice;
    }
    if (twig) {
        if (!(args.has("rpn-k") && args.has("rpn-t")))
            throw UsageError("give both --rpn-k K and --rpn-t T to initialise the RPN from the backbone");
        choice.source = RpnChoice::Source::TwigInit;
        choice.twig.K = positiveInt(args, "rpn-k");
        choice.twig.T = positiveInt(args, "rpn-t");
        return choice;
    }
    if (pipeline::isSdrpnCheckpoint(modelDir)) {
        choice.source = RpnChoice::Source::ModelFolder;
        choice.path = modelDir;
        return choice;
    }
    throw UsageError(
        modelDir +
        " is not an SD-RPN checkpoint (its config.json has no twig_K): give --rpn CKPT, or --rpn-k K "
        "and --rpn-t T to initialise an untrained RPN from the backbone");
}

Result<Rpn> loadChosenRpn(const RpnChoice& choice, const models::Backbone& backbone, const JobContext& job) {
    if (choice.source == RpnChoice::Source::TwigInit)
        return guarded([&] { return initRpnFromBackbone(backbone, choice.twig); });
    return tryLoadRpn(choice.path, backbone, job);
}

int loadRpnFor(const std::string& command, const RpnChoice& choice, const pipeline::LoadedModel& model,
               bool quiet, const std::string& extra, const JobContext& job, Rpn& rpn) {
    auto loaded = loadChosenRpn(choice, *model.backbone, job);
    if (loaded.status().cancelled()) return kExitCancelled;
    if (!loaded) {
        std::cerr << "\nsdrpn " << command << ": " << loaded.message() << "\n";
        return kExitFailed;
    }
    rpn = loaded.value();
    if (!quiet) {
        const RpnConfig& c = rpn->config();
        std::fprintf(stderr, "\rloaded %s in %.2f s; RPN K=%d T=%d (%s)%s\n", model.folder.c_str(),
                     model.loadSeconds, c.K, c.T, choice.describe().c_str(), extra.c_str());
    }
    return kExitOk;
}

RoiSettings roiSettingsFrom(const Args& args, const std::string& presetOption) {
    auto settings = guarded([&] {
        RoiSettings s;
        if (args.has("roi-settings")) {
            const std::string file = args.get("roi-settings");
            s = RoiSettings::fromJsonText(readFile(file), file);
        }
        if (args.has(presetOption)) s = RoiSettings::fromPreset(args.get(presetOption));
        if (args.has("thr")) {
            s.threshold = args.getDouble("thr", s.threshold);
            s.preset = "custom";
            s.validate("--thr");
        }
        return s;
    });
    if (!settings) throw UsageError(settings.message());
    return settings.value();
}

}  // namespace sdrpn::cli
