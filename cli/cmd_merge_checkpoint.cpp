// sdrpn merge-checkpoint: writes a filled copy of an unfilled SD-RPN checkpoint
// (core/pipeline/checkpoint_merge.h).
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/pipeline/checkpoint_merge.h"

namespace sdrpn::cli {
namespace {

const char* kUsage =
    "usage: sdrpn merge-checkpoint --rpn DIR --base DIR --out DIR [--quiet]\n\n"
    "Writes a filled copy of an SD-RPN checkpoint: the released trained checkpoints hold only backbone\n"
    "layers 0..K+T-1, the twig and the vision weights; the base model they were trained from supplies\n"
    "everything else (the later layers, the final norm, lm_head). The new folder holds every tensor of the\n"
    "checkpoint as stored plus the base's tensors it lacks (renamed to the checkpoint's key layout), the\n"
    "checkpoint's config.json and other files (the base's where the checkpoint has none), in shards of at\n"
    "most 5 GB. Tensors both hold must have the same shape. The result loads without --base.\n\n"
    "  --rpn DIR     the SD-RPN checkpoint (config.json with twig_K / twig_T)\n"
    "  --base DIR    the base model it was trained from (llava-hf, original LLaVA, Qwen2.5-VL, DeepSeek-VL)\n"
    "  --out DIR     the new folder; must not exist or be empty\n"
    "  --quiet       no progress line\n";

std::string gigabytes(std::uint64_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f GB", double(bytes) / 1e9);
    return text;
}

}  // namespace

int runMergeCheckpoint(const Argv& argv) {
    Args args(argv, {"rpn", "base", "out"}, {"quiet", "help"});
    if (args.flag("help")) {
        std::cout << kUsage;
        return kExitOk;
    }
    if (!args.positional().empty()) throw UsageError("unexpected argument '" + args.positional()[0] + "'");
    const std::string rpnDir = args.require("rpn");
    const std::string baseDir = args.require("base");
    const std::string outDir = args.require("out");
    const bool quiet = args.flag("quiet");

    JobContext job;
    cancelOnInterrupt(&job);
    if (!quiet) job.onProgress = [](const Progress& p) { printProgress(p.fraction(), p.message); };
    auto report = pipeline::tryMergeCheckpoint(rpnDir, baseDir, outDir, job);
    if (const int rc = exitCodeOf("merge-checkpoint", report.status(), quiet ? "" : "\n"); rc != kExitOk)
        return rc;
    const pipeline::MergeReport& r = report.value();
    if (!quiet) std::cout << "\n";
    std::cout << "wrote " << r.outDir << ": " << r.checkpointTensors << " tensors from the checkpoint, "
              << r.baseTensors << " from the base, " << gigabytes(r.bytes) << " in " << r.shards.size()
              << (r.shards.size() == 1 ? " file" : " shards") << "\n";
    return kExitOk;
}

}  // namespace sdrpn::cli
