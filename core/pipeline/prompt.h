// Prompt building shared by ask, the two-stage answer and RPN training: a question (or a raw prompt) through
// the chat template and the tokenizer to prompt ids with one image, and the image through the model's CLIP
// preprocessing.
//
//   text::RenderedPrompt rendered = renderQuestion(model, "What is written on the sign?");
//   text::PromptIds prompt = buildImagePrompt(model, rendered);       // exactly one <image>
//   models::ClipPreprocessConfig pre = preprocessConfig(model, "pad");
//   torch::Tensor features = model.backbone->encodeImage(models::ClipImageProcessor(pre).process(img)...);
//   models::PromptInput input = promptInput(prompt, features);        // image rows as kImageSlot
//
// Pure functions of a read-only model; thread-safe. Errors throw sdrpn::Error naming the value at fault.
#pragma once

#include <string>

#include <torch/torch.h>

#include "core/models/backbone.h"
#include "core/models/clip_image_processor.h"
#include "core/pipeline/ask.h"
#include "core/text/chat_template.h"
#include "core/text/prompt_ids.h"

namespace sdrpn::pipeline {

// `rawPrompt` (must contain "<image>") wins over `question`, which is rendered with `chatTemplate`
// ("vicuna_v1", "llava_v1", "llava_hf", "raw"; "" = the model's default). Throws when both are empty.
text::RenderedPrompt renderQuestion(const LoadedModel& model, const std::string& question,
                                    const std::string& chatTemplate = {}, const std::string& rawPrompt = {});

// Token ids of a rendered prompt with the model's image rows; throws unless it holds exactly one image.
text::PromptIds buildImagePrompt(const LoadedModel& model, const text::RenderedPrompt& rendered);

// The model's preprocessing with the image fit `imageMode` ("pad", "crop"; "" = the model's default).
models::ClipPreprocessConfig preprocessConfig(const LoadedModel& model, const std::string& imageMode);

// The backbone input: the prompt's ids with every image row marked kImageSlot, filled by `features`.
models::PromptInput promptInput(const text::PromptIds& prompt, const torch::Tensor& features);

}  // namespace sdrpn::pipeline
