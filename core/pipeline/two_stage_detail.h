// Internal to the two-stage answer (two_stage.cpp, two_stage_qwen.cpp): what both architectures' paths share.
#pragma once

#include "core/pipeline/two_stage.h"

namespace sdrpn::pipeline::detail {

// Greedy / sampled decoding from `lastLogits` in `ctx`, streaming text pieces of `stage`; `seconds` gets the
// decode time.
StageAnswer decodeAnswer(const LoadedModel& model, models::Context& ctx, const torch::Tensor& lastLogits,
                         const TwoStageOptions& options, AnswerStage stage, JobContext& job,
                         const StageTextCallback& onText, double& seconds);

// sdrpn.md §4.7: the Qwen2.5-VL two-stage answer.
Result<TwoStageResult> answerTwoStageQwen(const LoadedModel& model, const Rpn& rpn,
                                          const io::ImageRgb8& image, const TwoStageOptions& options,
                                          JobContext& job, const StageTextCallback& onText);

}  // namespace sdrpn::pipeline::detail
