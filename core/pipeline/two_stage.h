// The SD-RPN two-stage answer (sdrpn.md §4.1–4.5), shared by `sdrpn roi` and the studio:
//
//   image ──► preprocess + encodeImage ──► features
//   pass 1: prefill [sys | img | question] to layer K (all layers when the baseline answer is wanted: it is
//           the baseline's prefill) ──► RPN twig ──► RoI logits ──► postprocessRoi ──► crop box
//   crop (source pixels) ──► resize to the encoder's size (PIL bilinear) ──► preprocess ──► encodeImage
//           ──► all tokens (bbox branch) or the tokens inside the mask (mask branch)
//   pass 2: [sys | img | RoI tokens | question] ──► decode
//
// Beyond the reference: pass 2 does not re-run the shared prefix [sys | img]. Causal attention makes its
// keys and values identical in both passes, so pass 2 keeps pass 1's KV cache for that prefix (truncating
// the question away), computes only the backbone layers pass 1 skipped (K ..) for the prefix, and prefills
// just [RoI tokens | question]. `reuseKv = false` runs the reference's fresh full prefill instead; both give
// the same answer and logits (within float rounding; the model tests check 1e-4).
//
//   auto model = loadModel(dir, {}, job).value();
//   Rpn rpn = loadRpn(rpnDir, *model->backbone);
//   TwoStageOptions opt;  opt.question = "What is the price of the milk?";
//   opt.roi = RoiSettings::fromPreset("textvqa_val");
//   Result<TwoStageResult> r = answerTwoStage(*model, rpn, io::loadImage("shelf.jpg"), opt, job);
//   r->roiAnswer.text; r->baseline.text; r->roi.sourceBox; r->timings.pass2;
//
// Runs on the calling (worker) thread; the model and the RPN are read-only and may be shared. Cancel and
// progress through `job`. Failures come back as a Result naming the culprit.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/io/image.h"
#include "core/jobs.h"
#include "core/models/generation.h"
#include "core/models/geometry.h"
#include "core/pipeline/ask.h"
#include "core/result.h"
#include "core/sdrpn/roi.h"
#include "core/sdrpn/rpn.h"

namespace sdrpn::pipeline {

struct TwoStageOptions {
    std::string question;      // rendered with the chat template
    std::string rawPrompt;     // used as is instead (must contain "<image>"); wins over question
    std::string chatTemplate;  // "" = the model's default
    std::string imageMode;     // "pad", "crop" (LLaVA), "resize" (Qwen); "" = the model's default
    models::GenerationOptions generation;
    RoiSettings roi;
    bool baseline = true;  // also answer from the original prompt (pass 1 then runs every layer)
    bool reuseKv = true;   // pass 2 continues pass 1's [sys | img] KV prefix; false: fresh full prefill
    // Use these RoI logits (rows × cols, row-major) instead of the RPN's: what-if maps in the studio, a
    // teacher's grounding map, tests. The RPN may then be empty.
    std::vector<float> roiLogitsOverride;
    // Attention to capture in pass 1 and the baseline's decoding (the studio's raw and denoised views):
    // none by default. Layers pass 1 skips (without a baseline: K and up) hold NaN. Pass 2 is never captured.
    models::CaptureRequest capture = models::CaptureRequest::none();
};

// Seconds per stage. pass1 is the prefill that feeds the twig (to layer K, or every layer with the
// baseline); rpn the twig and the score head; pass2 the second prefill (with KV reuse: the skipped layers
// over the prefix plus [RoI tokens | question]).
struct TwoStageTimings {
    double preprocess = 0, vision = 0, pass1 = 0, rpn = 0, postprocess = 0, cropEncode = 0, pass2 = 0,
           decode = 0, baselineDecode = 0;
};

struct StageAnswer {
    std::vector<std::int64_t> tokens;  // generated ids, the stop token included
    std::string text;                  // decoded, without the stop token
    torch::Tensor lastLogits;          // [vocab] fp32 (CPU): the logits at the last prompt position
    torch::Tensor stepLogits;          // [tokens, vocab] fp32 (CPU)
    models::StopReason stopReason = models::StopReason::MaxTokens;
};

struct TwoStageResult {
    std::string promptText;
    text::PromptIds prompt;
    models::GridGeometry geometry;  // of the original image
    torch::Tensor roiLogits;        // [rows, cols] fp32 (CPU), what the post-processing read
    RoiSettings roiSettings;        // the settings it ran with
    RoiResult roi;                  // post-processing: blurred map, components, branch, crop box, token mask
    models::PixelBox cropBox;       // = roi.sourceBox; empty without zoom
    std::int64_t roiTokens = 0;     // RoI tokens inserted in pass 2
    models::ImageGrid cropGrid;     // the crop's token grid (roi.tokenMask's shape); {0, 0}: the original's
    std::int64_t pass2Length = 0;   // tokens in the pass-2 sequence (prompt + RoI tokens)
    bool baselineComputed = false;
    StageAnswer baseline;   // answer from the original prompt (when baselineComputed)
    StageAnswer roiAnswer;  // answer with the RoI tokens
    // No zoom and a baseline: the RoI answer is the baseline's (pass 2 would re-run the same prompt).
    bool roiAnswerIsBaseline = false;
    bool kvReused = false;       // pass 2 continued pass 1's prefix
    models::AttentionMaps maps;  // what options.capture asked for (pass 1 and the baseline answer)
    TwoStageTimings timings;
};

enum class AnswerStage { Baseline, Roi };
// Called on the worker thread with each newly complete piece of answer text of either stage.
using StageTextCallback = std::function<void(AnswerStage stage, const std::string& piece)>;

// `rpn` may be empty when options.roiLogitsOverride is set. Needs a backbone with a LLaMA-style decoder and
// a prompt with exactly one image. LLaVA / DeepSeek-VL: §4.1–4.4 (pass 2 reuses pass 1's prefix unless
// options.reuseKv is off). Qwen2.5-VL: §4.7 (the RoI block inside the image's vision markers, M-RoPE
// positions recomputed, crop tokens outside the mask dropped, pass 2 a full prefill; reuseKv does not apply).
Result<TwoStageResult> answerTwoStage(const LoadedModel& model, const Rpn& rpn, const io::ImageRgb8& image,
                                      const TwoStageOptions& options, JobContext& job,
                                      const StageTextCallback& onText = {});

// Writes the `sdrpn roi --dump` file (safetensors):
//   roi_logits F32 [rows, cols], roi_prob_blurred F32 [rows, cols], components I64 [n, 4] (kept boxes
//   x0, y0, x1, y1 in cells, exclusive ends), branch I64 [1] (0 none, 1 bbox, 2 mask), src_box I64 [4]
//   (x0, y0, x1, y1 source pixels; zeros without zoom), n_roi_tokens I64 [1], roi_token_mask U8 [rows, cols],
//   answer_ids_baseline I64 [n] (empty without a baseline), answer_ids_roi I64 [m],
//   timings_ms F32 [5] = vision, pass 1 (prefill + RPN), crop encode, pass 2, decode (RoI answer).
// Metadata: sdrpn.prompt, sdrpn.roi_settings (JSON), sdrpn.branch, sdrpn.reason, sdrpn.timings.
void writeTwoStageDump(const std::string& path, const TwoStageResult& result);

}  // namespace sdrpn::pipeline
