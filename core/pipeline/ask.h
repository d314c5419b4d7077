// Ask: the path of one question through the core, shared by `sdrpn ask` and the studio.
//
//   image ──► preprocessor (pixels + GridGeometry) ──► Backbone::encodeImage ──► features
//   question ──► chat template + tokenizer ──► prompt ids (image rows marked)
//   ids + features ──► prefill with capture ──► decode (streamed) ──► answer + AttentionMaps + timings
//
//   JobContext job;
//   auto model = loadModel("/models/llava-1.5-7b-hf", {}, job);          // Result<shared_ptr<const
//   LoadedModel>> AskOptions opt;  opt.question = "What is written on the sign?"; auto r =
//   ask(*model.value(), io::loadImage("sign.jpg"), opt, job, [](const std::string& piece) { print(piece); });
//
// The loaded model is read-only and may be shared by several jobs; ask() keeps its state in its own context.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "core/io/config.h"
#include "core/io/image.h"
#include "core/jobs.h"
#include "core/models/backbone.h"
#include "core/models/clip_image_processor.h"
#include "core/models/generation.h"
#include "core/models/geometry.h"
#include "core/models/load_options.h"
#include "core/models/qwen_image_processor.h"
#include "core/result.h"
#include "core/text/chat_template.h"
#include "core/text/prompt_ids.h"
#include "core/text/tokenizer.h"

namespace sdrpn::pipeline {

// The backbone families a model folder can hold (config.json `model_type`).
enum class ModelFamily { Llava, Qwen2_5Vl, DeepseekVl };
const char* modelFamilyName(ModelFamily family);  // "llava", "qwen2_5_vl", "deepseek_vl"

struct LoadedModel {
    std::string folder;
    std::shared_ptr<const models::Backbone> backbone;
    // nullptr when the folder has no tokenizer (tokenizerError says why): the model loads, asking fails
    std::shared_ptr<const text::Tokenizer> tokenizer;
    std::string tokenizerError;
    ModelFamily family = ModelFamily::Llava;
    models::ClipPreprocessConfig preprocess;      // LLaVA, DeepSeek-VL: preprocessor_config.json or defaults
    models::QwenPreprocessConfig qwenPreprocess;  // Qwen2.5-VL: dynamic resolution
    io::LlavaLayout layout = io::LlavaLayout::Hf;
    text::ChatTemplate defaultTemplate = text::ChatTemplate::LlavaHf;
    double loadSeconds = 0.0;
};

// Loads backbone, tokenizer and preprocessing settings of a model folder. Progress and cancel through job.
Result<std::shared_ptr<const LoadedModel>> loadModel(const std::string& folder,
                                                     const models::LoadOptions& options, JobContext& job);

struct AskOptions {
    std::string question;      // rendered with the chat template
    std::string rawPrompt;     // used as is instead (must contain "<image>"); wins over question
    std::string chatTemplate;  // "vicuna_v1", "llava_v1", "llava_hf", "qwen2_vl", "deepseek", "raw";
                               // "" = the model's default
    std::string imageMode;  // "pad", "crop" (LLaVA), "resize" (Qwen: native aspect); "" = the model's default
    // Qwen2.5-VL's pixel budget: > 0 overrides max_pixels (and min_pixels too when fixedPixels).
    std::int64_t maxPixels = 0;
    bool fixedPixels = false;
    // Qwen2.5-VL: positions 0, 1, 2, ... on all three M-RoPE streams instead of the image's 3-D positions.
    bool sequentialPositions = false;
    models::GenerationOptions generation;
    models::CaptureRequest capture = defaultCapture();

    // Last prompt token, question tokens and fed-back answer tokens, every layer.
    static models::CaptureRequest defaultCapture();
};

struct AskTimings {
    double preprocess = 0, vision = 0, prefill = 0, decode = 0, capture = 0;
    double total() const { return preprocess + vision + prefill + decode; }
};

struct AskResult {
    std::string promptText;
    text::PromptIds prompt;
    torch::Tensor pixelValues;  // [3, H, W] float32, what the vision tower received (Qwen: before patching)
    models::GridGeometry geometry;
    torch::Tensor lastLogits;  // [vocab] float32 at the last prompt position
    models::GenerationResult generation;
    std::string answer;
    models::AttentionMaps maps;
    AskTimings timings;
};

// Called on the worker thread with each newly complete piece of answer text.
using TextCallback = std::function<void(const std::string& piece)>;

Result<AskResult> ask(const LoadedModel& model, const io::ImageRgb8& image, const AskOptions& options,
                      JobContext& job, const TextCallback& onText = {});

// Writes the `sdrpn ask --dump` file (safetensors, F32 unless noted):
//   prompt_ids I64 [L] (image rows −1), image_token_start I64 [1], pixel_values [3,H,W], last_logits [V],
//   answer_ids I64 [N], step_logits [N,V], attn_last.{layer} [heads, n_image],
//   attn_answer.{layer} [heads, n_image] (mean over the fed-back answer tokens; absent when N < 2).
void writeAskDump(const std::string& path, const AskResult& result);

}  // namespace sdrpn::pipeline
