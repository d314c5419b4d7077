#include <cstdio>
#include <iostream>
#include <set>
#include <sstream>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/model_args.h"
#include "cli/rpn_args.h"
#include "core/io/image.h"
#include "core/pipeline/ask.h"
#include "core/pipeline/two_stage.h"

namespace sdrpn::cli {
namespace {

std::string askUsage() {
    return "usage: sdrpn ask --model DIR --image FILE (--question TEXT | --raw-prompt TEXT) [options]\n\n"
           "Answers a question about an image, streaming the answer, and captures where every layer looks.\n"
           "With --sdrpn it answers with SD-RPN instead (sdrpn.md §4): the RPN predicts the region of\n"
           "interest, its crop is encoded and added to the prompt, and the answer streamed is the one\n"
           "with the zoomed tokens; the box, branch and RoI token count go to stderr.\n\n"
           "  --template T          vicuna_v1 | llava_v1 | llava_hf | qwen2_vl | deepseek | raw\n            "
           "            (default: the model's own)\n"
           "  --image-mode M        pad | crop (LLaVA), resize | pad (Qwen2.5-VL); default: the model's\n"
           "  --positions P         Qwen2.5-VL: mrope (default, 3-D positions over the image) or\n"
           "                        sequential (0, 1, 2, ... on all three streams, as a forward without the\n"
           "                        image's token types computes them)\n"
           "  --max-new-tokens N    default 128\n"
           "  --temperature T       0 = greedy (default); > 0 samples\n"
           "  --top-p P             nucleus sampling (default 1 = off)\n"
           "  --seed N              sampling seed (default 0)\n"
           "  --device D            cpu (default), cuda, cuda:N\n"
           "  --dtype T             fp32 (default), bf16, fp16\n"
           "  --vision-tower DIR    original LLaVA layout: the CLIP folder\n"
           "  --base DIR            unfilled SD-RPN checkpoint: the base model supplying its missing layers\n"
           "  --layers L            capture only these layers, e.g. 0,5,12 (default all; not with --sdrpn)\n"
           "  --dump FILE           write ids, pixels, logits and attention maps as safetensors (with\n"
           "                        --sdrpn: the `sdrpn roi --dump` file)\n"
           "  --quiet               print only the answer\n\n"
           "SD-RPN (with --sdrpn):\n" +
           rpnUsage("roi-preset");
}

std::vector<int> parseLayers(const std::string& text) {
    std::vector<int> layers;
    std::stringstream ss(text);
    for (std::string item; std::getline(ss, item, ',');) {
        try {
            std::size_t used = 0;
            int v = std::stoi(item, &used);
            if (used != item.size() || v < 0) throw std::invalid_argument(item);
            layers.push_back(v);
        } catch (const std::exception&) {
            throw UsageError("--layers expects comma-separated layer numbers, got '" + item + "'");
        }
    }
    return layers;
}

// `sdrpn ask --sdrpn`: the two-stage answer without the baseline (answerTwoStage, baseline = false).
int askSdrpn(const Args& args, const std::string& modelDir, const std::string& imagePath,
             const pipeline::AskOptions& ask, const models::LoadOptions& load) {
    if (args.has("layers")) throw UsageError("--layers does not apply with --sdrpn (nothing is captured)");
    const RpnChoice rpnChoice = rpnChoiceFrom(args, modelDir);
    const bool quiet = args.flag("quiet");
    pipeline::TwoStageOptions options;
    options.question = ask.question;
    options.rawPrompt = ask.rawPrompt;
    options.chatTemplate = ask.chatTemplate;
    options.imageMode = ask.imageMode;
    options.generation = ask.generation;
    options.roi = roiSettingsFrom(args, "roi-preset");
    options.baseline = false;

    JobContext job;
    if (!quiet) job.onProgress = [](const Progress& p) { printProgress(p.fraction(), p.message); };
    cancelOnInterrupt(&job);

    io::ImageRgb8 image;
    std::shared_ptr<const pipeline::LoadedModel> model;
    if (int rc = loadImageAndModel("ask", imagePath, modelDir, load, job, image, model); rc != kExitOk)
        return rc;
    Rpn rpn{nullptr};
    if (const int rc = loadRpnFor("ask", rpnChoice, *model, quiet, "", job, rpn); rc != kExitOk) return rc;
    job.onProgress = nullptr;

    auto result = pipeline::answerTwoStage(
        *model, rpn, image, options, job,
        [](pipeline::AnswerStage, const std::string& piece) { printStreamed(piece); });
    std::fputc('\n', stdout);
    std::fflush(stdout);
    if (const int rc = exitCodeOf("ask", result.status()); rc != kExitOk) return rc;
    const auto& r = result.value();
    if (!quiet) {
        const auto& roi = r.roi;
        const auto& b = r.cropBox;
        if (roi.zoom())
            std::fprintf(stderr, "RoI: %s branch, box (%d,%d)-(%d,%d) px, %lld RoI tokens\n",
                         roiBranchName(roi.branch), b.x0, b.y0, b.x1, b.y1,
                         static_cast<long long>(r.roiTokens));
        else
            std::fprintf(stderr, "RoI: no zoom (%s), 0 RoI tokens\n", roi.reason.c_str());
        const auto& t = r.timings;
        std::fprintf(stderr,
                     "%zu answer tokens | vision %.1f ms, pass 1 %.1f ms, RPN %.1f ms, crop encode %.1f ms, "
                     "pass 2 %.1f ms, decode %.1f ms\n",
                     r.roiAnswer.tokens.size(), t.vision * 1e3, t.pass1 * 1e3, t.rpn * 1e3,
                     t.cropEncode * 1e3, t.pass2 * 1e3, t.decode * 1e3);
    }
    if (args.has("dump")) {
        auto written = guarded([&] { pipeline::writeTwoStageDump(args.get("dump"), r); });
        if (!written) {
            std::cerr << "sdrpn ask: " << written.message() << "\n";
            return kExitFailed;
        }
        if (!quiet) std::cerr << "wrote " << args.get("dump") << "\n";
    }
    return kExitOk;
}

}  // namespace

int runAsk(const Argv& argv) {
    std::set<std::string> valued = {"model",      "image",          "question",     "raw-prompt", "template",
                                    "image-mode", "max-new-tokens", "temperature",  "top-p",      "seed",
                                    "device",     "dtype",          "vision-tower", "base",       "layers",
                                    "dump",       "positions"};
    addRpnOptions(valued, "roi-preset");
    Args args(argv, valued, {"sdrpn", "quiet", "help"});
    if (args.flag("help")) {
        std::cout << askUsage();
        return kExitOk;
    }
    const std::string modelDir = args.require("model");
    const std::string imagePath = args.require("image");
    if (!args.has("question") && !args.has("raw-prompt"))
        throw UsageError("give --question TEXT or --raw-prompt TEXT");
    const bool quiet = args.flag("quiet");

    pipeline::AskOptions options;
    options.question = args.get("question");
    options.rawPrompt = args.get("raw-prompt");
    options.chatTemplate = args.get("template");
    options.imageMode = args.get("image-mode");
    const std::string positions = args.get("positions");
    if (!positions.empty() && positions != "mrope" && positions != "sequential")
        throw UsageError("--positions must be mrope or sequential, got '" + positions + "'");
    options.sequentialPositions = positions == "sequential";
    options.generation.maxNewTokens = args.getInt("max-new-tokens", 128);
    if (options.generation.maxNewTokens < 1) throw UsageError("--max-new-tokens must be at least 1");
    const double temperature = args.getDouble("temperature", 0.0);
    options.generation.sample = temperature > 0;
    options.generation.temperature = temperature > 0 ? temperature : 1.0;
    options.generation.topP = args.getDouble("top-p", 1.0);
    options.generation.seed = static_cast<std::uint64_t>(args.getInt("seed", 0));
    if (args.has("layers")) options.capture.layers = parseLayers(args.get("layers"));

    const models::LoadOptions load = loadOptionsFrom(args);
    if (args.flag("sdrpn")) return askSdrpn(args, modelDir, imagePath, options, load);
    for (const char* name : {"rpn", "rpn-k", "rpn-t", "thr", "roi-preset", "roi-settings"})
        if (args.has(name)) throw UsageError(std::string("--") + name + " needs --sdrpn");

    JobContext job;
    if (!quiet) job.onProgress = [](const Progress& p) { printProgress(p.fraction(), p.message); };
    cancelOnInterrupt(&job);

    io::ImageRgb8 image;
    std::shared_ptr<const pipeline::LoadedModel> model;
    if (int rc = loadImageAndModel("ask", imagePath, modelDir, load, job, image, model); rc != kExitOk)
        return rc;
    if (!quiet) std::fprintf(stderr, "\rloaded %s in %.2f s\n", modelDir.c_str(), model->loadSeconds);
    job.onProgress = nullptr;

    auto result = pipeline::ask(*model, image, options, job, printStreamed);
    std::fputc('\n', stdout);
    if (const int rc = exitCodeOf("ask", result.status()); rc != kExitOk) return rc;
    const auto& r = result.value();
    if (!quiet) {
        const auto& t = r.timings;
        const std::size_t n = r.generation.tokens.size();
        std::fprintf(
            stderr,
            "%zu prompt tokens, %zu answer tokens | preprocess %.1f ms, vision %.1f ms, prefill %.1f ms, "
            "decode %.1f ms (%.1f ms/token), capture %.1f ms for %zu layers\n",
            r.prompt.ids.size(), n, t.preprocess * 1e3, t.vision * 1e3, t.prefill * 1e3, t.decode * 1e3,
            n > 1 ? t.decode * 1e3 / double(n - 1) : 0.0, t.capture * 1e3, r.maps.layers.size());
    }
    if (args.has("dump")) {
        auto written = guarded([&] { pipeline::writeAskDump(args.get("dump"), r); });
        if (!written) {
            std::cerr << "sdrpn ask: " << written.message() << "\n";
            return kExitFailed;
        }
        if (!quiet) std::cerr << "wrote " << args.get("dump") << "\n";
    }
    return kExitOk;
}

}  // namespace sdrpn::cli
