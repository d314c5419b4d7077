// sdrpn: the command-line twin of SD-RPN Studio. Every job the studio runs has a subcommand here.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/host_memory.h"

namespace {

const std::vector<sdrpn::cli::Command> kCommands = {
    {"ask", "answer a question about an image and capture attention maps", &sdrpn::cli::runAsk},
    {"label", "label a dataset: teacher answers and attention maps into a label store",
     &sdrpn::cli::runLabel},
    {"make-demo-model", "make the bundled demo model (random weights) in a folder",
     &sdrpn::cli::runMakeDemoModel},
    {"make-demo-data", "make a small synthetic question set (images, answers, boxes) for the demo",
     &sdrpn::cli::runMakeDemoData},
    {"merge-stores", "merge label stores (e.g. shards) into one", &sdrpn::cli::runMergeStores},
    {"store-info", "what a label store holds; one sample's labels", &sdrpn::cli::runStoreInfo},
    {"roi", "answer with SD-RPN: predict the RoI, zoom in, answer again", &sdrpn::cli::runRoi},
    {"eval", "baseline against SD-RPN on a dataset: accuracy, RoI IoU, time", &sdrpn::cli::runEval},
    {"train", "train the SD-RPN twig on a label store's pseudo-labels", &sdrpn::cli::runTrain},
    {"convert", "write a model's PyTorch .bin weights as safetensors", &sdrpn::cli::runConvert},
    {"import-labels", "import SD-RPN's released pseudo-label .pkl files into a label store",
     &sdrpn::cli::runImportLabels},
    {"labels", "one stored sample's grounding, sink and labels, written to a file", &sdrpn::cli::runLabels},
    {"merge-checkpoint", "fill an SD-RPN checkpoint's missing layers from its base model into a new folder",
     &sdrpn::cli::runMergeCheckpoint},
};

void usage(std::FILE* out) {
    std::fprintf(out, "usage: sdrpn <command> [options]\n\ncommands:\n");
    for (const auto& c : kCommands) std::fprintf(out, "  %-18s %s\n", c.name, c.summary);
    std::fprintf(out, "\n`sdrpn <command> --help` describes a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
    sdrpn::keepHostMemory();
    if (argc < 2) {
        usage(stderr);
        return sdrpn::cli::kExitUsage;
    }
    const std::string name = argv[1];
    if (name == "-h" || name == "--help" || name == "help") {
        usage(stdout);
        return sdrpn::cli::kExitOk;
    }
    for (const auto& c : kCommands) {
        if (name != c.name) continue;
        try {
            return c.run(sdrpn::cli::Argv(argv + 2, argv + argc));
        } catch (const sdrpn::cli::UsageError& e) {
            std::cerr << "sdrpn " << name << ": " << e.what() << "\n(see `sdrpn " << name << " --help`)\n";
            return sdrpn::cli::kExitUsage;
        } catch (const std::exception& e) {
            std::cerr << "sdrpn " << name << ": " << e.what() << "\n";
            return sdrpn::cli::kExitFailed;
        }
    }
    std::cerr << "sdrpn: unknown command '" << name << "'\n";
    usage(stderr);
    return sdrpn::cli::kExitUsage;
}
