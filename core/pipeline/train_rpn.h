// RPN training (sdrpn.md §3.3–3.5): the twig learns the pseudo-labels of a label store while the backbone
// stays frozen.
//
//   for each optimizer step:
//     for each of `accum` micro-batches of `batch` stored samples:
//       image ──► preprocess + encodeImage ──► prompt [sys | img | question] ──► prefill to layer K (no grad)
//       hidden[K] ──► twig (grad) ──► RoI logits [rows·cols]      labels ◄── labelsOf(sample, settings)
//       loss = BCE-with-logits, mean over the micro-batch's non-ignored cells, / micro-batches in the step
//     clip grad norm ──► AdamW (β2 0.98) ──► cosine schedule with linear warmup
//
//   auto model = loadModel(dir, {}, job).value();
//   TrainOptions opt;  opt.store = "labels.sdrpn";  opt.imageRoot = "/data/images";  opt.outDir = "runs/rpn";
//   Result<TrainSummary> r = trainRpn(*model, opt, job, [](const TrainMetrics& m) { plot(m.step, m.loss); });
//
// The query row is the last prompt token, which is the token before the first answer token of the
// reference's training sequence (§3.1): attention is causal, so the answer tokens never change q or k and
// are not fed. Output folder:
//   outDir/model.safetensors + config.json    the final twig in SD-RPN's key layout (rpn.h saveRpn)
//   outDir/training_args.json                 the run's settings (TrainOptions + label settings)
//   outDir/metrics.jsonl                      one line per optimizer step: step, epoch, loss, lr, grad_norm,
//                                             valid_cells, samples, seconds
//   outDir/checkpoint-<step>/                 model.safetensors, config.json, trainer_state.json,
//   optimizer.pt
// Checkpoints are written to a temporary folder and renamed, so a killed run leaves only whole checkpoints.
// Resume continues from the newest checkpoint with the same weights, optimizer moments, schedule position
// and sample order, so an interrupted run ends where an uninterrupted one would.
//
// Runs on the calling (worker) thread; onStep is called there after every optimizer step, and job.report()
// too (done = steps, total = planned steps, message "step 12/300 | loss 0.4312 | lr 4.9e-05"). Cancel through
// `job`: the job stops after the optimizer step in flight, writes a checkpoint, and returns a value whose
// TrainSummary::status is Cancelled (lastCheckpoint says where to resume); a cancel while the labels are
// still being read returns a Result whose own status is Cancelled (nothing written). Errors come back as a
// failed Result naming the culprit (store, image root, checkpoint, out folder, the option at fault).
//
// Samples: the store's samples in write order (of `dataset`, at most `limit`); a sample whose labels are
// all ignored, whose maps the label settings need are missing, or whose image file is missing is left out
// before training; one whose image cannot be decoded is left out when met. Each epoch visits the samples in
// a shuffled order fixed by seed + epoch. A fresh run refuses an output folder that already holds
// checkpoints (resume it or pick another folder); resume checks that batch, accum, seed and the sample
// count match the checkpoint's.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dist/group.h"
#include "core/jobs.h"
#include "core/pipeline/ask.h"
#include "core/result.h"
#include "core/sdrpn/labels.h"
#include "core/sdrpn/rpn.h"

namespace sdrpn::pipeline {

struct TrainOptions {
    std::string store;      // label store to learn from
    std::string imageRoot;  // the stored image paths are relative to it ("" = as stored)
    std::string outDir;     // created when missing
    std::string dataset;    // only this dataset of the store ("" = all)

    // The twig: initialised from the backbone ("twiginit", §3.4) unless initFrom names an SD-RPN checkpoint.
    RpnConfig rpn;             // K, T, multiHead; see defaultRpnConfig()
    bool rpnFromModel = true;  // true: rpn = defaultRpnConfig(backbone) (ignored when initFrom is set)
    std::string initFrom;

    // Labels: the settings stored with each sample, unless `labels` is given (changed thresholds).
    bool labelsFromStore = true;
    LabelSettings labels;

    std::string chatTemplate;  // "" = the model's default
    std::string imageMode;     // "pad", "crop"; "" = the fit each sample was labeled with (stored geometry)

    int epochs = 1;
    std::int64_t maxSteps = -1;  // stop after this many optimizer steps (-1 = epochs decide)
    std::int64_t limit = -1;     // use at most this many samples (-1 = all)
    int batch = 8;               // samples per micro-batch
    int accum = 1;               // micro-batches per optimizer step (fewer at an epoch's last step)
    double lr = 5e-5;
    double warmupRatio = 0.03;
    double weightDecay = 0.0;
    double beta1 = 0.9, beta2 = 0.98, eps = 1e-8;
    double maxGradNorm = 1.0;    // <= 0: no clipping
    std::uint64_t seed = 42;     // sample order
    bool bf16Autocast = true;    // CUDA only: twig forward in bf16 autocast (master weights stay fp32)
    std::int64_t saveEvery = 0;  // write a checkpoint every N optimizer steps (0 = only at the end / cancel)
    int keepCheckpoints = 2;     // newest checkpoints kept (0 = all)
    std::int64_t cacheHiddenMb = 1024;  // keep hidden[K] of samples in memory up to this size (epochs > 1)
    bool resume = false;                // continue from the newest checkpoint in outDir
    std::string resumeFrom;             // or from this checkpoint folder

    // Data-parallel training (nullptr: this process alone). Each optimizer step takes accum micro-batches
    // of batch × ranks samples; rank r computes the r-th `batch` of each, the gradients are summed over
    // the ranks (bucketed all-reduce) and every rank takes the same AdamW step, so the result equals one
    // process with batch × ranks. Rank 0 alone writes the output folder. Every rank must read the same
    // store and images (a shared folder) and, to resume, the same output folder.
    dist::Group* group = nullptr;
};

struct TrainMetrics {
    std::int64_t step = 0;        // optimizer steps done (1-based after the first)
    std::int64_t totalSteps = 0;  // planned
    int epoch = 0;                // 0-based epoch of this step
    double loss = 0.0;            // mean BCE of the step (over its valid cells)
    double lr = 0.0;              // learning rate the step used
    double gradNorm = 0.0;        // before clipping
    std::int64_t validCells = 0;  // non-ignored label cells in the step
    std::int64_t samples = 0;     // samples in the step
    double seconds = 0.0;         // since the run (or the resumed run) started
    double etaSeconds = -1.0;
};

struct TrainSummary {
    Status status;                 // ok, cancelled (checkpoint written) or failed
    std::int64_t steps = 0;        // optimizer steps done in total (resumed ones included)
    std::int64_t samplesUsed = 0;  // samples in the training set
    std::int64_t skipped = 0;      // samples left out: image missing / unreadable, no maps, all cells ignored
    std::vector<std::string> skippedReasons;  // "key: reason", the first few
    double firstLoss = 0.0, lastLoss = 0.0;
    std::string outDir;
    std::string lastCheckpoint;  // "" when none was written
    double seconds = 0.0;
};

using TrainCallback = std::function<void(const TrainMetrics&)>;

// K and T for a backbone: the released values for 32- and 40-layer LLaMA decoders (15, 3), else
// K = round(layers · 15 / 32), T = 3 (shrunk to fit: K + T <= layers, K >= 1).
RpnConfig defaultRpnConfig(const models::Backbone& backbone);

// Learning rate at optimizer step `step` (0-based) of `total`: linear warmup over ceil(warmupRatio · total)
// steps, then cosine decay to 0 (the HF cosine schedule with warmup).
double cosineLearningRate(double baseLr, std::int64_t step, std::int64_t total, double warmupRatio);

Result<TrainSummary> trainRpn(const LoadedModel& model, const TrainOptions& options, JobContext& job,
                              const TrainCallback& onStep = {});

}  // namespace sdrpn::pipeline
