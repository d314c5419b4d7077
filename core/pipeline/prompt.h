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

// Token ids of a rendered prompt with `numImageTokens` image rows (-1: the backbone's fixed count; Qwen's
// count depends on the image, PreparedImage::tokens()); throws unless it holds exactly one image, or when the
// model folder has no tokenizer.
text::PromptIds buildImagePrompt(const LoadedModel& model, const text::RenderedPrompt& rendered,
                                 std::int64_t numImageTokens = -1);

// The model's CLIP-style preprocessing with the image fit `imageMode` ("pad", "crop"; "" = the model's
// default). LLaVA and DeepSeek-VL.
models::ClipPreprocessConfig preprocessConfig(const LoadedModel& model, const std::string& imageMode);

// SD-RPN's Qwen2.5-VL labels and RPN training (sdrpn.md §2.6, §3.6): the image padded to a grey square and
// min = max pixels = 576·28², so 672 × 672 px and a 24 × 24 token grid.
constexpr std::int64_t kQwenLabelPixels = 576 * 28 * 28;
constexpr const char* kQwenLabelImageMode = "pad";

// An image as the model's vision tower takes it, and where its token grid lies on the source.
struct PreparedImage {
    torch::Tensor pixelValues;      // float32 [3, H, W], CPU (Qwen: H, W multiples of 28, before patching)
    models::GridGeometry geometry;  // the token grid on the source image
    models::ImageGrid grid;         // rows × cols of image tokens
    std::int64_t tokens() const { return grid.cells(); }
};

// Preprocesses `image` for the model. imageMode: LLaVA / DeepSeek-VL "pad" or "crop"; Qwen2.5-VL "resize"
// (native aspect, smart_resize within the pixel budget) or "pad" (expand2square with grey 127, then
// smart_resize: the label-generation input); "" = the model's default. `maxPixels` > 0 overrides Qwen's
// pixel budget (min = max = maxPixels when `fixedPixels`). Throws naming an unknown mode or an empty image.
PreparedImage prepareImage(const LoadedModel& model, const io::ImageRgb8& image, const std::string& imageMode,
                           std::int64_t maxPixels = 0, bool fixedPixels = false);

// The backbone input: the prompt's ids with every image row marked kImageSlot, filled by `features`, whose
// token grid is `grid` (needed by M-RoPE; {0, 0} = the backbone's fixed grid).
models::PromptInput promptInput(const text::PromptIds& prompt, const torch::Tensor& features,
                                models::ImageGrid grid = {});

}  // namespace sdrpn::pipeline
