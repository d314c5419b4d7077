// sdrpn train: the CLI twin of the studio's training job (core/pipeline/train_rpn.h).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/model_args.h"
#include "core/pipeline/ask.h"
#include "core/pipeline/train_rpn.h"

namespace sdrpn::cli {
namespace {

const char* kTrainUsage =
    "usage: sdrpn train --model DIR --store FILE --out DIR [options]\n\n"
    "Trains the SD-RPN twig (sdrpn.md §3) on the pseudo-labels of a label store made by `sdrpn label`.\n"
    "The backbone stays frozen: each sample runs through it to layer K once (kept in memory for later\n"
    "epochs when it fits --cache-mb), and only the twig learns. The output folder gets model.safetensors\n"
    "+ config.json (the trained twig, loadable with `sdrpn roi --rpn DIR`), training_args.json,\n"
    "metrics.jsonl (one line per step) and checkpoint-<step>/ folders. Ctrl-C finishes the step in\n"
    "flight, writes a checkpoint and exits 130; run again with --resume to continue exactly.\n\n"
    "  --store FILE          label store to learn from\n"
    "  --out DIR             output folder (created when missing)\n"
    "  --images ROOT         folder the stored image paths are relative to (default: as stored)\n"
    "  --dataset ID          only this dataset of the store\n"
    "  --epochs N            default 1\n"
    "  --max-steps N         stop after N optimizer steps\n"
    "  --limit N             use at most N samples\n"
    "  --batch N             samples per micro-batch (default 8)\n"
    "  --accum N             micro-batches per optimizer step (default 1)\n"
    "  --lr X                peak learning rate (default 5e-5)\n"
    "  --warmup-ratio X      linear warmup share of the steps, then cosine decay (default 0.03)\n"
    "  --weight-decay X      AdamW weight decay (default 0)\n"
    "  --beta2 X             AdamW beta2 (default 0.98)\n"
    "  --max-grad-norm X     gradient clipping; 0 turns it off (default 1)\n"
    "  --seed N              sample order (default 42)\n"
    "  --K N, --T N          twig branch layer and depth (default: 15, 3 for 32/40-layer models, scaled\n"
    "                        otherwise)\n"
    "  --no-multi-head       plain q.k RoI logits instead of the head mean (roi_multi_head = false)\n"
    "  --init CKPT           start from an SD-RPN checkpoint instead of the backbone's layers K..K+T-1\n"
    "  --label-settings FILE label settings JSON to make the labels with (default: each sample's stored\n"
    "                        settings)\n"
    "  --preset NAME         or a label settings preset (llava-1.5-7b, llava-1.5-13b, ...)\n"
    "  --template T          vicuna_v1 | llava_v1 | llava_hf | raw (default: the model's own)\n"
    "  --image-mode M        pad | crop (default: the fit each sample was labeled with)\n"
    "  --save-every N        write a checkpoint every N steps (default: only at the end and on Ctrl-C)\n"
    "  --keep N              checkpoints kept, newest first (default 2; 0 = all)\n"
    "  --cache-mb N          memory for the backbone's hidden states (default 1024)\n"
    "  --no-bf16             CUDA: no bf16 autocast for the twig\n"
    "  --resume              continue from the newest checkpoint in --out\n"
    "  --resume-from DIR     continue from this checkpoint folder\n"
    "  --log-every N         print a line every N steps (default 10)\n"
    "  --device D            cpu (default), cuda, cuda:N\n"
    "  --dtype T             fp32 (default), bf16, fp16: the frozen backbone's compute dtype\n"
    "  --vision-tower DIR    original LLaVA layout: the CLIP folder\n"
    "  --base DIR            unfilled SD-RPN checkpoint: the base model supplying its missing layers\n"
    "  --quiet               print only the summary\n\n"
    "Several processes (data-parallel; see docs/distributed.md): start one process per rank with RANK,\n"
    "WORLD_SIZE, MASTER_ADDR, MASTER_PORT set (torchrun, mpirun or scripts/launch -n N -- sdrpn train ...).\n"
    "Each rank computes --batch samples of every micro-batch, so a step sees batch x ranks x accum samples;\n"
    "rank 0 writes the output. --device cuda gives rank r the GPU cuda:LOCAL_RANK. A rank that dies stops\n"
    "the others within SDRPN_DIST_TIMEOUT seconds (default 300).\n";

std::string readTextFile(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Error(path + ": cannot open the label settings file");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string clock(double seconds) {
    if (seconds < 0) return "?";
    const long s = long(seconds + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    return buf;
}

int positiveInt(const Args& args, const std::string& name, int fallback) {
    const int v = args.getInt(name, fallback);
    if (args.has(name) && v < 1) throw UsageError("--" + name + " must be at least 1");
    return v;
}

double nonNegative(const Args& args, const std::string& name, double fallback) {
    const double v = args.getDouble(name, fallback);
    if (!(v >= 0.0)) throw UsageError("--" + name + " must be >= 0");
    return v;
}

}  // namespace

int runTrain(const Argv& argv) {
    Args args(argv,
              {"model",        "store",          "out",           "images",    "dataset",    "epochs",
               "max-steps",    "limit",          "batch",         "accum",     "lr",         "warmup-ratio",
               "weight-decay", "beta2",          "max-grad-norm", "seed",      "K",          "T",
               "init",         "label-settings", "preset",        "template",  "image-mode", "save-every",
               "keep",         "cache-mb",       "resume-from",   "log-every", "device",     "dtype",
               "base",         "vision-tower"},
              {"no-multi-head", "no-bf16", "resume", "quiet", "help"});
    if (args.flag("help")) {
        std::cout << kTrainUsage;
        return kExitOk;
    }
    const std::string modelDir = args.require("model");
    pipeline::TrainOptions o;
    o.store = args.require("store");
    o.outDir = args.require("out");
    o.imageRoot = args.get("images");
    o.dataset = args.get("dataset");
    o.epochs = positiveInt(args, "epochs", o.epochs);
    o.maxSteps = args.has("max-steps") ? positiveInt(args, "max-steps", 1) : -1;
    o.limit = args.has("limit") ? positiveInt(args, "limit", 1) : -1;
    o.batch = positiveInt(args, "batch", o.batch);
    o.accum = positiveInt(args, "accum", o.accum);
    o.lr = args.getDouble("lr", o.lr);
    if (!(o.lr > 0.0)) throw UsageError("--lr must be > 0");
    o.warmupRatio = nonNegative(args, "warmup-ratio", o.warmupRatio);
    if (o.warmupRatio > 1.0) throw UsageError("--warmup-ratio must lie in [0, 1]");
    o.weightDecay = nonNegative(args, "weight-decay", o.weightDecay);
    o.beta2 = nonNegative(args, "beta2", o.beta2);
    if (o.beta2 >= 1.0) throw UsageError("--beta2 must lie in [0, 1)");
    o.maxGradNorm = nonNegative(args, "max-grad-norm", o.maxGradNorm);
    if (args.has("seed")) {
        const int seed = args.getInt("seed", 0);
        if (seed < 0) throw UsageError("--seed must be >= 0");
        o.seed = std::uint64_t(seed);
    }
    if (args.has("K") || args.has("T") || args.flag("no-multi-head")) {
        if (args.has("init"))
            throw UsageError("--K, --T and --no-multi-head come from the --init checkpoint");
        if (args.has("K") != args.has("T")) throw UsageError("--K and --T go together");
        o.rpnFromModel = !args.has("K");
        o.rpn.K = positiveInt(args, "K", o.rpn.K);
        o.rpn.T = positiveInt(args, "T", o.rpn.T);
        o.rpn.multiHead = !args.flag("no-multi-head");
    }
    o.initFrom = args.get("init");
    if (args.has("label-settings") && args.has("preset"))
        throw UsageError("give --label-settings or --preset, not both");
    if (args.has("label-settings")) {
        const std::string file = args.get("label-settings");
        auto settings = guarded([&] { return LabelSettings::fromJsonText(readTextFile(file), file); });
        if (!settings) {
            std::cerr << "sdrpn train: " << settings.message() << "\n";
            return kExitFailed;
        }
        o.labels = settings.value();
        o.labelsFromStore = false;
    } else if (args.has("preset")) {
        try {
            o.labels = LabelSettings::fromPreset(args.get("preset"));
        } catch (const Error& e) {
            throw UsageError(std::string("--preset: ") + e.what());
        }
        o.labelsFromStore = false;
    }
    o.chatTemplate = args.get("template");
    o.imageMode = args.get("image-mode");
    if (args.has("save-every")) o.saveEvery = positiveInt(args, "save-every", 1);
    o.keepCheckpoints = args.getInt("keep", o.keepCheckpoints);
    if (o.keepCheckpoints < 0) throw UsageError("--keep must be >= 0");
    o.cacheHiddenMb = args.getInt("cache-mb", int(o.cacheHiddenMb));
    if (o.cacheHiddenMb < 0) throw UsageError("--cache-mb must be >= 0");
    o.bf16Autocast = !args.flag("no-bf16");
    if (args.flag("resume") && args.has("resume-from"))
        throw UsageError("give --resume or --resume-from, not both");
    o.resume = args.flag("resume");
    o.resumeFrom = args.get("resume-from");
    const int logEvery = positiveInt(args, "log-every", 10);
    models::LoadOptions load = loadOptionsFrom(args);

    // Several ranks (torchrun, mpirun, scripts/launch): rank 0 reports and writes, the others stay quiet.
    std::unique_ptr<dist::Group> group;
    if (const int rc = joinGroupFor("train", load, group); rc != kExitOk) return rc;
    o.group = group.get();
    const bool lead = group == nullptr || group->rank() == 0;
    const bool quiet = args.flag("quiet") || !lead;
    if (group != nullptr && lead && !args.flag("quiet"))
        std::fprintf(stderr, "training on %d ranks (%s), %d samples per micro-batch\n", group->size(),
                     group->env().launcher.c_str(), o.batch * group->size());

    JobContext job;
    cancelOnInterrupt(&job);
    if (!quiet) job.onProgress = [](const Progress& p) { printProgress(p.fraction(), p.message); };
    std::shared_ptr<const pipeline::LoadedModel> model;
    if (const int rc = loadModelFor("train", modelDir, load, job, model); rc != kExitOk) return rc;
    if (!quiet) std::fprintf(stderr, "\rloaded %s in %.2f s\n", modelDir.c_str(), model->loadSeconds);

    // The progress line between the per-N-steps lines: step, loss, rate and ETA.
    if (!quiet)
        job.onProgress = [](const Progress& p) {
            if (p.total > 0) printProgress(p.fraction() >= 1.0 ? 0.999 : p.fraction(), p.message);
        };
    pipeline::TrainCallback onStep = [&](const pipeline::TrainMetrics& m) {
        if (quiet) return;
        if (m.step % logEvery != 0 && m.step != m.totalSteps && m.step != 1) return;
        std::fprintf(stderr, "\r%-80s\r", "");
        std::printf(
            "step %lld/%lld  epoch %d  loss %.5f  lr %.3g  grad-norm %.3g  cells %lld  elapsed %s  ETA %s\n",
            (long long)m.step, (long long)m.totalSteps, m.epoch, m.loss, m.lr, m.gradNorm,
            (long long)m.validCells, clock(m.seconds).c_str(), clock(m.etaSeconds).c_str());
        std::fflush(stdout);
    };
    auto r = pipeline::trainRpn(*model, o, job, onStep);
    if (!quiet) std::fprintf(stderr, "\r%-80s\r", "");
    if (r.status().cancelled()) {
        std::cerr << "sdrpn train: interrupted before the first step; nothing written\n";
        return kExitCancelled;
    }
    if (!r) {
        std::cerr << "sdrpn train: " << r.message() << "\n";
        return kExitFailed;
    }
    const pipeline::TrainSummary& s = r.value();
    if (!lead && s.status.ok()) return kExitOk;  // rank 0 prints the summary
    std::printf("%s: %lld steps on %lld samples (%lld skipped) in %s, loss %.5f -> %.5f\n", s.outDir.c_str(),
                (long long)s.steps, (long long)s.samplesUsed, (long long)s.skipped, clock(s.seconds).c_str(),
                s.firstLoss, s.lastLoss);
    for (const auto& reason : s.skippedReasons) std::printf("  skipped %s\n", reason.c_str());
    if (s.skipped > std::int64_t(s.skippedReasons.size()))
        std::printf("  ... and %lld more skipped\n",
                    (long long)(s.skipped - std::int64_t(s.skippedReasons.size())));
    if (!s.lastCheckpoint.empty()) std::printf("checkpoint: %s\n", s.lastCheckpoint.c_str());
    if (s.status.cancelled()) {
        std::cerr << "sdrpn train: interrupted; run the same command with --resume to continue\n";
        return kExitCancelled;
    }
    if (!s.status.ok()) {
        std::cerr << "sdrpn train: " << s.status.message << "\n";
        return kExitFailed;
    }
    std::printf("model: %s/model.safetensors\n", s.outDir.c_str());
    return kExitOk;
}

}  // namespace sdrpn::cli
