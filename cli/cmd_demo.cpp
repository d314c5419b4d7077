#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/pipeline/demo_data.h"
#include "core/pipeline/demo_model.h"

namespace sdrpn::cli {

int runMakeDemoModel(const Argv& argv) {
    Args args(argv, {"seed"}, {"overwrite", "help"});
    if (args.flag("help") || args.positional().size() != 1) {
        std::cout
            << "usage: sdrpn make-demo-model DIR [--seed N] [--overwrite]\n\n"
               "Makes the bundled demo model in DIR: a small LLaVA-1.5 (llava-hf layout, 336 px, 24x24 "
               "image\n"
               "tokens, 8 LLM layers) with its own tokenizer and RANDOM weights from a fixed seed. It shows\n"
               "the machinery, not meaning.\n";
        return args.flag("help") ? kExitOk : kExitUsage;
    }
    pipeline::DemoModelOptions options;
    options.seed = static_cast<std::uint64_t>(args.getInt("seed", static_cast<int>(options.seed)));
    options.overwrite = args.flag("overwrite");
    JobContext ctx;
    ctx.onProgress = [](const Progress& p) { printProgress(p.fraction(), p.message); };
    cancelOnInterrupt(&ctx);
    auto r = pipeline::makeDemoModel(args.positional()[0], options, ctx);
    if (const int rc = exitCodeOf("make-demo-model", r.status(), "\n"); rc != kExitOk) return rc;
    std::cout << "demo model written to " << args.positional()[0] << " (random weights)\n";
    return kExitOk;
}

int runMakeDemoData(const Argv& argv) {
    Args args(argv, {"count", "seed", "min-side", "max-side"}, {"overwrite", "help"});
    if (args.flag("help") || args.positional().size() != 1) {
        std::cout
            << "usage: sdrpn make-demo-data DIR [--count N] [--seed N] [--min-side PX] [--max-side PX]\n"
               "                            [--overwrite]\n\n"
               "Makes a small synthetic question set in DIR for the SD-RPN loop on the demo model:\n"
               "DIR/images/demo_NNNN.png (grey distractors and one small coloured target) and\n"
               "DIR/questions.jsonl with {id, image, question, answer, bbox} per line. Use it with\n"
               "`sdrpn label|eval --data DIR/questions.jsonl --images DIR`.\n";
        return args.flag("help") ? kExitOk : kExitUsage;
    }
    pipeline::DemoDataOptions options;
    options.count = args.getInt("count", options.count);
    options.seed = static_cast<std::uint64_t>(args.getInt("seed", static_cast<int>(options.seed)));
    options.minSide = args.getInt("min-side", options.minSide);
    options.maxSide = args.getInt("max-side", options.maxSide);
    options.overwrite = args.flag("overwrite");
    JobContext ctx;
    ctx.onProgress = [](const Progress& p) { printProgress(p.fraction(), p.message); };
    cancelOnInterrupt(&ctx);
    auto r = pipeline::makeDemoDataset(args.positional()[0], options, ctx);
    if (const int rc = exitCodeOf("make-demo-data", r.status(), "\n"); rc != kExitOk) return rc;
    std::cout << "\n" << r.value().count << " questions written to " << r.value().questions << "\n";
    return kExitOk;
}

}  // namespace sdrpn::cli
