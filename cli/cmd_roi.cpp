#include <cstdio>
#include <iostream>
#include <set>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/model_args.h"
#include "cli/rpn_args.h"
#include "core/io/image.h"
#include "core/pipeline/two_stage.h"

namespace sdrpn::cli {
namespace {

std::string roiUsage() {
    return "usage: sdrpn roi --model DIR [--rpn CKPT | --rpn-k K --rpn-t T] --image FILE\n"
           "                 (--question TEXT | --raw-prompt TEXT) [options]\n\n"
           "Answers a question twice: from the image (baseline), then with SD-RPN's zoomed RoI tokens added\n"
           "(two-stage). Prints both answers, the RoI and the time of each stage.\n\n" +
           rpnUsage("preset") +
           "  --no-baseline         skip the baseline answer (pass 1 then stops at layer K)\n"
           "  --no-kv-reuse         pass 2 re-runs the whole prompt (the reference) instead of reusing\n"
           "                        pass 1's [system | image] keys and values\n"
           "  --template T          vicuna_v1 | llava_v1 | llava_hf | qwen2_vl | deepseek | raw\n            "
           "            (default: the model's own)\n"
           "  --image-mode M        pad | crop (LLaVA), resize | pad (Qwen2.5-VL); default: the model's\n"
           "  --max-new-tokens N    default 128\n"
           "  --device D            cpu (default), cuda, cuda:N\n"
           "  --dtype T             fp32 (default), bf16, fp16\n"
           "  --vision-tower DIR    original LLaVA layout: the CLIP folder\n"
           "  --base DIR            unfilled SD-RPN checkpoint: the base model supplying its missing layers\n"
           "  --dump FILE           write RoI logits, blurred map, boxes, branch, crop box, answer ids and\n"
           "                        timings as safetensors\n"
           "  --quiet               print only the answers\n";
}

}  // namespace

int runRoi(const Argv& argv) {
    std::set<std::string> valued = {"model",    "image",        "question",       "raw-prompt",
                                    "template", "image-mode",   "max-new-tokens", "device",
                                    "dtype",    "vision-tower", "base",           "dump"};
    addRpnOptions(valued, "preset");
    Args args(argv, valued, {"no-baseline", "no-kv-reuse", "quiet", "help"});
    if (args.flag("help")) {
        std::cout << roiUsage();
        return kExitOk;
    }
    const std::string modelDir = args.require("model");
    const std::string imagePath = args.require("image");
    if (!args.has("question") && !args.has("raw-prompt"))
        throw UsageError("give --question TEXT or --raw-prompt TEXT");
    const RpnChoice rpnChoice = rpnChoiceFrom(args, modelDir);
    const bool quiet = args.flag("quiet");

    pipeline::TwoStageOptions options;
    options.question = args.get("question");
    options.rawPrompt = args.get("raw-prompt");
    options.chatTemplate = args.get("template");
    options.imageMode = args.get("image-mode");
    options.generation.maxNewTokens = args.getInt("max-new-tokens", 128);
    if (options.generation.maxNewTokens < 1) throw UsageError("--max-new-tokens must be at least 1");
    options.baseline = !args.flag("no-baseline");
    options.reuseKv = !args.flag("no-kv-reuse");
    options.roi = roiSettingsFrom(args, "preset");

    const models::LoadOptions load = loadOptionsFrom(args);

    JobContext job;
    if (!quiet) job.onProgress = [](const Progress& p) { printProgress(p.fraction(), p.message); };
    cancelOnInterrupt(&job);

    io::ImageRgb8 image;
    std::shared_ptr<const pipeline::LoadedModel> model;
    if (int rc = loadImageAndModel("roi", imagePath, modelDir, load, job, image, model); rc != kExitOk)
        return rc;
    Rpn rpn{nullptr};
    if (const int rc = loadRpnFor("roi", rpnChoice, *model, quiet, "", job, rpn); rc != kExitOk) return rc;
    job.onProgress = nullptr;

    pipeline::AnswerStage current = pipeline::AnswerStage::Baseline;
    bool started = false;
    auto onText = [&](pipeline::AnswerStage stage, const std::string& piece) {
        if (!started || stage != current) {
            if (started) std::fputc('\n', stdout);
            std::fflush(stdout);
            std::fputs(stage == pipeline::AnswerStage::Baseline ? "baseline: " : "roi:      ", stdout);
            started = true;
            current = stage;
        }
        printStreamed(piece);
    };
    auto result = pipeline::answerTwoStage(*model, rpn, image, options, job, onText);
    if (started) std::fputc('\n', stdout);
    std::fflush(stdout);
    if (const int rc = exitCodeOf("roi", result.status()); rc != kExitOk) return rc;
    const auto& r = result.value();
    if (r.roiAnswerIsBaseline) {
        std::printf("roi:      %s\n", r.roiAnswer.text.c_str());
        std::fflush(stdout);
    }
    if (!quiet) {
        const auto& roi = r.roi;
        const auto& s = roi.sourceBox;
        if (roi.zoom())
            std::fprintf(
                stderr,
                "RoI: %s branch, %zu box(es), cells [%d,%d)x[%d,%d), crop (%d,%d)-(%d,%d) px, %lld RoI "
                "tokens\n",
                roiBranchName(roi.branch), roi.boxes.size(), roi.gridBox.x0, roi.gridBox.x1, roi.gridBox.y0,
                roi.gridBox.y1, s.x0, s.y0, s.x1, s.y1, static_cast<long long>(r.roiTokens));
        else
            std::fprintf(stderr, "RoI: no zoom (%s)\n", roi.reason.c_str());
        const auto& t = r.timings;
        std::fprintf(stderr,
                     "vision %.1f ms, pass 1 %.1f ms, RPN %.1f ms, crop encode %.1f ms, pass 2 %.1f ms%s, "
                     "decode %.1f ms (baseline decode %.1f ms)\n",
                     t.vision * 1e3, t.pass1 * 1e3, t.rpn * 1e3, t.cropEncode * 1e3, t.pass2 * 1e3,
                     r.kvReused ? " (KV prefix reused)" : "", t.decode * 1e3, t.baselineDecode * 1e3);
    }
    if (args.has("dump")) {
        auto written = guarded([&] { pipeline::writeTwoStageDump(args.get("dump"), r); });
        if (!written) {
            std::cerr << "sdrpn roi: " << written.message() << "\n";
            return kExitFailed;
        }
        if (!quiet) std::cerr << "wrote " << args.get("dump") << "\n";
    }
    return kExitOk;
}

}  // namespace sdrpn::cli
