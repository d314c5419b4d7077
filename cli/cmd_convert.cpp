// sdrpn convert: a model folder's PyTorch .bin weights written as safetensors (core/io/weight_convert.h).
#include <cstdio>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/io/weight_convert.h"

namespace sdrpn::cli {
namespace {

const char* kUsage =
    "usage: sdrpn convert --in DIR --out DIR [--quiet]\n\n"
    "Writes the weights of a model folder (pytorch_model.bin, sharded .bin files with\n"
    "pytorch_model.bin.index.json, or safetensors) as model.safetensors, or as 5 GB shards with\n"
    "model.safetensors.index.json, into a new or empty folder, and copies the folder's other files\n"
    "(config.json, tokenizer, preprocessor config). The .bin files are read without running any of\n"
    "their code: only tensors are taken.\n"
    "Exit status: 0 converted, 1 failed (nothing is left in --out), 2 usage, 130 interrupted.\n";

}  // namespace

int runConvert(const Argv& argv) {
    Args args(argv, {"in", "out"}, {"quiet", "help"});
    if (args.flag("help")) {
        std::cout << kUsage;
        return kExitOk;
    }
    const std::string in = args.require("in");
    const std::string out = args.require("out");
    if (!args.positional().empty()) throw UsageError("unexpected argument '" + args.positional()[0] + "'");

    JobContext job;
    cancelOnInterrupt(&job);
    const bool quiet = args.flag("quiet");
    if (!quiet) job.onProgress = [](const Progress& p) { printProgress(p.fraction(), p.message); };
    auto report = guarded([&] { return io::convertToSafetensors(in, out, job); });
    if (report.status().cancelled()) {
        std::fprintf(stderr, "%ssdrpn convert: interrupted; nothing was left in %s\n", quiet ? "" : "\n",
                     out.c_str());
        return kExitCancelled;
    }
    if (!report) return exitCodeOf("convert", report.status(), quiet ? "" : "\n");
    const io::ConvertReport& r = report.value();
    if (!quiet) std::printf("\n");
    std::printf("%s: %lld tensors, %.1f MB in %d shard%s; copied %zu other file%s\n", r.out.c_str(),
                (long long)r.tensors, double(r.bytes) / 1e6, r.shards, r.shards == 1 ? "" : "s",
                r.copied.size(), r.copied.size() == 1 ? "" : "s");
    for (const std::string& name : r.copied) std::printf("  %s\n", name.c_str());
    return kExitOk;
}

}  // namespace sdrpn::cli
