// Evaluation (sdrpn.md §6): every sample of a dataset answered twice, by the baseline (the plain model,
// pipeline::ask without capture) and by SD-RPN (answerTwoStage with baseline = false), each timed on its
// own, both answers scored (core/pipeline/scoring.h), and the RoI compared with the ground-truth box.
//
//   auto model = loadModel(dir, {}, job).value();
//   Rpn rpn = loadRpn(ckpt, *model->backbone);
//   data::Dataset d = data::readDataset("textvqa_val.jsonl", {imageRoot});
//   EvalOptions opt;  opt.postPrompt = kShortAnswerPostPrompt;  opt.roi =
//   RoiSettings::fromPreset("textvqa_val"); EvalReport r = evaluate(*model, rpn, d, opt, job, [](const
//   EvalRow& row, std::int64_t done,
//                                                        std::int64_t total) { ... });
//   r.summary.sdrpnAccuracy; r.summary.throughputRatio; writeEvalJson("eval.json", r);
//
// What is measured
// * Accuracy: the mean score over the samples with a reference answer (scoreAnswer: exact match with one
//   reference, VQA accuracy with several, option letters for multiple choice). Samples without a reference
//   are answered and timed, not scored.
// * Time: wall-clock seconds of ask() and of answerTwoStage() per sample, image decoding excluded (both
//   start from the same decoded image). Throughput ratio = baseline seconds / SD-RPN seconds over all
//   evaluated samples (the paper's "0.62×": SD-RPN's throughput relative to the baseline's).
// * RoI IoU, for samples with a ground-truth bbox only: the crop box SD-RPN answered from, in source pixels,
//   against the bbox. A sample where SD-RPN did not zoom (no component, or a component too large) counts as
//   the whole image box [0, 0, width, height]: that is what its answer saw.
// * Skipped samples: entries the dataset reader left out (no image, image not found) and images that do not
//   decode, each with its reason. Never fatal.
//
// Runs on the calling (worker) thread; the model and RPN are read-only. Progress through `job` counts
// samples (done / total, the message is the sample's key). Cancel through `job`: the sample in
// flight is dropped and the report holds the samples finished before it, with status Cancelled. A failure
// of the model on a sample stops the run with status Failed naming the sample; the report still holds the
// finished samples. No exception leaves evaluate().
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/data/dataset.h"
#include "core/jobs.h"
#include "core/pipeline/ask.h"
#include "core/pipeline/scoring.h"
#include "core/result.h"
#include "core/sdrpn/roi.h"
#include "core/sdrpn/rpn.h"

namespace sdrpn::pipeline {

// lmms-eval's post-prompt for short-answer VQA tasks (TextVQA, POPE, ...).
inline constexpr const char* kShortAnswerPostPrompt = "\nAnswer the question using a single word or phrase.";
// lmms-eval's post-prompt for V* (multiple choice).
inline constexpr const char* kOptionLetterPostPrompt =
    "\nAnswer with the option's letter from the given choices directly.";

struct EvalOptions {
    std::string postPrompt;    // appended to every question (e.g. kShortAnswerPostPrompt); "" = none
    int maxNewTokens = 128;    // both methods
    std::string chatTemplate;  // "" = the model's default
    std::string imageMode;     // "" = the model's preprocessor default
    RoiSettings roi;           // SD-RPN's thresholds
    bool reuseKv = true;       // see TwoStageOptions::reuseKv
};

struct EvalRow {
    std::string key;
    std::string image;     // resolved path
    std::string question;  // as asked (with the post-prompt)
    std::vector<std::string> references;
    std::optional<std::array<double, 4>> bbox;  // ground truth, source pixels

    std::string baselineAnswer;
    AnswerScore baselineScore;
    double baselineSeconds = 0.0;

    std::string sdrpnAnswer;
    AnswerScore sdrpnScore;
    double sdrpnSeconds = 0.0;

    RoiBranch branch = RoiBranch::None;
    std::string roiReason;           // why there is no zoom ("" with a zoom)
    std::array<double, 4> roiBox{};  // the box SD-RPN answered from; the whole image without zoom
    std::int64_t roiTokens = 0;      // RoI tokens inserted in pass 2
    std::optional<double> iou;       // only for samples with a bbox
    bool scored() const { return baselineScore.rule != ScoreRule::None; }
    bool zoomed() const { return branch != RoiBranch::None; }
};

struct EvalSkipped {
    std::string key;
    std::string image;
    std::string reason;
};

struct EvalSummary {
    std::string dataset;          // the dataset's id (file name without extension)
    std::int64_t count = 0;       // samples answered by both methods
    std::int64_t scored = 0;      // of them, with a reference answer
    double baselineAccuracy = 0;  // mean score over the scored samples, in [0, 1]
    double sdrpnAccuracy = 0;     //
    std::int64_t boxCount = 0;    // samples with a ground-truth bbox
    double meanIou = 0;           // mean RoI IoU over them (0 without any)
    std::int64_t zoomed = 0;      // samples where SD-RPN zoomed in
    double baselineSeconds = 0;   // total
    double sdrpnSeconds = 0;      // total
    double baselineSecondsPerSample = 0;
    double sdrpnSecondsPerSample = 0;
    double throughputRatio = 0;  // baselineSeconds / sdrpnSeconds (0 when nothing ran)
    std::int64_t skipped = 0;    // = EvalReport::skipped.size()
};

struct EvalReport {
    Status status;  // Ok, Cancelled (partial), Failed (partial; the message names the sample)
    EvalOptions options;
    EvalSummary summary;
    std::vector<EvalRow> rows;
    std::vector<EvalSkipped> skipped;
};

// Called on the worker thread after each sample (evaluated or skipped; `row` is null for a skipped one).
using EvalSampleCallback =
    std::function<void(const EvalRow* row, std::int64_t done, std::int64_t total, const std::string& key)>;

EvalReport evaluate(const LoadedModel& model, const Rpn& rpn, const data::Dataset& dataset,
                    const EvalOptions& options, JobContext& job, const EvalSampleCallback& onSample = {});

// The summary recomputed from rows and skipped entries (what evaluate() fills in).
EvalSummary summarize(const std::string& datasetId, const std::vector<EvalRow>& rows,
                      const std::vector<EvalSkipped>& skipped);

// The JSON report: {"summary": {...}, "options": {...}, "status", "samples": [per-sample rows], "skipped":
// [{key, image, reason}]}. Accuracies are fractions in [0, 1]; times in seconds; boxes [x0, y0, x1, y1].
std::string evalReportJson(const EvalReport& report);
// Markdown: a summary table (method | accuracy | s/sample | throughput) with a line on IoU, zoom and
// skipped samples; with `perSample`, a table of every sample after it.
std::string evalReportMarkdown(const EvalReport& report, bool perSample);
// Write those to files; throw sdrpn::Error naming the file when it cannot be written.
void writeEvalJson(const std::string& path, const EvalReport& report);
void writeEvalMarkdown(const std::string& path, const EvalReport& report, bool perSample = true);

}  // namespace sdrpn::pipeline
