// sdrpn eval: baseline against SD-RPN on a dataset (core/pipeline/evaluate.h), the CLI twin of the
// studio's evaluation.
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <set>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/model_args.h"
#include "cli/rpn_args.h"
#include "core/data/dataset.h"
#include "core/pipeline/ask.h"
#include "core/pipeline/evaluate.h"

namespace sdrpn::cli {
namespace {

std::string evalUsage() {
    return "usage: sdrpn eval --model DIR --data FILE --images DIR [--rpn CKPT | --rpn-k K --rpn-t T]\n"
           "                  [options]\n\n"
           "Answers every question of a dataset twice, with the plain model (baseline) and with SD-RPN\n"
           "(two-stage, sdrpn.md §4), each timed on its own; scores both answers as lmms-eval does (exact\n"
           "match, VQA accuracy over several references, option letters for multiple choice) and compares\n"
           "SD-RPN's RoI with the ground-truth box where the dataset has one (a sample without zoom counts\n"
           "as the whole image). Prints a Markdown summary; Ctrl-C stops after the sample in flight and\n"
           "still reports what was done.\n\n"
           "  --data FILE           JSONL (image, question, answer or answers [list], optional bbox\n"
           "                        [x0, y0, x1, y1] in source pixels) or LLaVA conversation JSON\n"
           "  --images DIR          folder the dataset's image paths are relative to\n" +
           rpnUsage("roi-preset") +
           "  --limit N             evaluate at most N samples\n"
           "  --format F            llava-json | jsonl (default: by the file's extension)\n"
           "  --post-prompt TEXT    appended to every question; \\n in TEXT is a line break. Shortcuts:\n"
           "                        short = \"\\nAnswer the question using a single word or phrase.\",\n"
           "                        letter = \"\\nAnswer with the option's letter from the given choices\n"
           "                        directly.\" (default: none)\n"
           "  --max-new-tokens N    default 128\n"
           "  --json FILE           write the summary and every sample's answers, scores and RoI as JSON\n"
           "  --markdown FILE       write the summary table and a table of every sample\n"
           "  --no-kv-reuse         SD-RPN's pass 2 re-runs the whole prompt (the reference)\n"
           "  --template T          vicuna_v1 | llava_v1 | llava_hf | qwen2_vl | deepseek | raw\n            "
           "            (default: the model's own)\n"
           "  --image-mode M        pad | crop (LLaVA), resize | pad (Qwen2.5-VL); default: the model's\n"
           "  --device D            cpu (default), cuda, cuda:N\n"
           "  --dtype T             fp32 (default), bf16, fp16\n"
           "  --vision-tower DIR    original LLaVA layout: the CLIP folder\n"
           "  --base DIR            unfilled SD-RPN checkpoint: the base model supplying its missing layers\n"
           "  --quiet               print only the summary\n";
}

std::string postPromptFrom(const std::string& text) {
    if (text == "short") return pipeline::kShortAnswerPostPrompt;
    if (text == "letter") return pipeline::kOptionLetterPostPrompt;
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == 'n') {
            out += '\n';
            ++i;
        } else {
            out += text[i];
        }
    }
    return out;
}

std::string duration(double seconds) {
    const long s = long(seconds + 0.5);
    char buf[32];
    if (s >= 3600)
        std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else
        std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
    return buf;
}

// "\r[ 42%] 53/300 key | 0.52 samples/s | ETA 1m05s", at most ~5 times a second and always the last.
class ProgressLine {
public:
    void update(std::int64_t done, std::int64_t total, const std::string& key) {
        const auto now = std::chrono::steady_clock::now();
        if (done < total && now - m_last < std::chrono::milliseconds(200)) return;
        m_last = now;
        const double elapsed = std::chrono::duration<double>(now - m_start).count();
        const double rate = elapsed > 0 ? double(done) / elapsed : 0.0;
        const int percent = total > 0 ? int(100.0 * double(done) / double(total) + 0.5) : 100;
        std::string eta = rate > 0 ? duration(double(total - done) / rate) : std::string("?");
        char line[256];
        std::snprintf(line, sizeof line, "%lld/%lld %.30s | %.2f samples/s | ETA %s", (long long)done,
                      (long long)total, key.c_str(), rate, eta.c_str());
        std::fprintf(stderr, "\r[%3d%%] %-80.80s", percent, line);
        std::fflush(stderr);
    }

private:
    std::chrono::steady_clock::time_point m_start = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point m_last{};
};

}  // namespace

int runEval(const Argv& argv) {
    std::set<std::string> valued = {"model",          "data",   "images",   "limit",        "format",
                                    "post-prompt",    "json",   "markdown", "template",     "image-mode",
                                    "max-new-tokens", "device", "dtype",    "vision-tower", "base"};
    addRpnOptions(valued, "roi-preset");
    Args args(argv, valued, {"no-kv-reuse", "quiet", "help"});
    if (args.flag("help")) {
        std::cout << evalUsage();
        return kExitOk;
    }
    const std::string modelDir = args.require("model");
    const std::string dataPath = args.require("data");
    const bool quiet = args.flag("quiet");
    const data::DatasetOptions datasetOptions = datasetOptionsFrom(args, false);

    pipeline::EvalOptions options;
    options.postPrompt = postPromptFrom(args.get("post-prompt"));
    options.maxNewTokens = args.getInt("max-new-tokens", 128);
    if (options.maxNewTokens < 1) throw UsageError("--max-new-tokens must be at least 1");
    options.chatTemplate = args.get("template");
    options.imageMode = args.get("image-mode");
    options.reuseKv = !args.flag("no-kv-reuse");
    options.roi = roiSettingsFrom(args, "roi-preset");
    const RpnChoice rpnChoice = rpnChoiceFrom(args, modelDir);
    const models::LoadOptions load = loadOptionsFrom(args);

    // The dataset first: its errors should not wait for a model to load.
    auto dataset = data::openDataset(dataPath, datasetOptions);
    if (!dataset) {
        std::cerr << "sdrpn eval: " << dataset.message() << "\n";
        return kExitFailed;
    }
    const data::Dataset& d = dataset.value();
    if (!quiet)
        std::fprintf(stderr, "%s: %zu entries (%s): %zu samples, %zu left out\n", dataPath.c_str(), d.entries,
                     data::datasetFormatName(d.format), d.samples.size(), d.skipped.size());

    JobContext job;
    cancelOnInterrupt(&job);
    if (!quiet) job.onProgress = [](const Progress& p) { printProgress(p.fraction(), p.message); };
    std::shared_ptr<const pipeline::LoadedModel> model;
    if (const int rc = loadModelFor("eval", modelDir, load, job, model); rc != kExitOk) return rc;
    Rpn rpn{nullptr};
    char thresholdNote[96];
    std::snprintf(thresholdNote, sizeof thresholdNote, "; RoI threshold %g (%s)", options.roi.threshold,
                  options.roi.preset.c_str());
    if (const int rc = loadRpnFor("eval", rpnChoice, *model, quiet, thresholdNote, job, rpn); rc != kExitOk)
        return rc;
    job.onProgress = nullptr;

    ProgressLine progress;
    pipeline::EvalSampleCallback onSample;
    if (!quiet)
        onSample = [&](const pipeline::EvalRow*, std::int64_t done, std::int64_t total,
                       const std::string& key) { progress.update(done, total, key); };
    const pipeline::EvalReport report = pipeline::evaluate(*model, rpn, d, options, job, onSample);
    if (!quiet && !d.samples.empty()) std::fputc('\n', stderr);

    std::fputs(pipeline::evalReportMarkdown(report, false).c_str(), stdout);
    std::fflush(stdout);
    int rc = kExitOk;
    auto writeFile = [&](const std::string& option, const std::function<void(const std::string&)>& write) {
        if (!args.has(option)) return;
        const std::string path = args.get(option);
        auto written = guarded([&] { write(path); });
        if (!written) {
            std::cerr << "sdrpn eval: " << written.message() << "\n";
            rc = kExitFailed;
        } else if (!quiet) {
            std::cerr << "wrote " << path << "\n";
        }
    };
    writeFile("json", [&](const std::string& path) { pipeline::writeEvalJson(path, report); });
    writeFile("markdown", [&](const std::string& path) { pipeline::writeEvalMarkdown(path, report, true); });
    if (report.status.cancelled()) {
        std::cerr << "sdrpn eval: interrupted after " << report.rows.size() << " samples\n";
        return kExitCancelled;
    }
    if (!report.status.ok()) {
        std::cerr << "sdrpn eval: " << report.status.message << "\n";
        return kExitFailed;
    }
    return rc;
}

}  // namespace sdrpn::cli
