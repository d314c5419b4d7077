#include "core/pipeline/prompt.h"

#include <algorithm>

namespace sdrpn::pipeline {

text::RenderedPrompt renderQuestion(const LoadedModel& model, const std::string& question,
                                    const std::string& chatTemplate, const std::string& rawPrompt) {
    if (!rawPrompt.empty()) {
        if (rawPrompt.find(text::kImagePlaceholder) == std::string::npos)
            throw Error("the raw prompt has no <image> placeholder");
        return text::renderPrompt(text::ChatTemplate::Raw, rawPrompt);
    }
    if (question.empty()) throw Error("no question given");
    const text::ChatTemplate kind =
        chatTemplate.empty() ? model.defaultTemplate : text::chatTemplateFromName(chatTemplate);
    return text::renderPrompt(kind, question);
}

text::PromptIds buildImagePrompt(const LoadedModel& model, const text::RenderedPrompt& rendered,
                                 std::int64_t numImageTokens) {
    if (!model.tokenizer)
        throw Error(model.folder + ": cannot build a prompt without a tokenizer (" + model.tokenizerError +
                    ")");
    const models::BackboneInfo& info = model.backbone->info();
    text::PromptOptions options;
    options.imageTokenId = info.imageTokenId >= 0 ? info.imageTokenId : -1;
    options.numImageTokens = numImageTokens >= 0 ? numImageTokens : info.imageTokens;
    if (options.numImageTokens <= 0)
        throw Error(model.folder + ": the number of image tokens depends on the image; preprocess it first");
    // Qwen2.5-VL adds no BOS (mllm_reference.md §9); LLaMA-style tokenizers do when they have one.
    options.addBos = model.family != ModelFamily::Qwen2_5Vl && model.tokenizer->bosId() >= 0;
    text::PromptIds prompt = text::buildPromptIds(*model.tokenizer, rendered, options);
    if (prompt.images.size() != 1)
        throw Error("the prompt must hold exactly one <image>, it holds " +
                    std::to_string(prompt.images.size()));
    return prompt;
}

models::ClipPreprocessConfig preprocessConfig(const LoadedModel& model, const std::string& imageMode) {
    models::ClipPreprocessConfig pre = model.preprocess;
    if (!imageMode.empty()) {
        auto fit = models::parseImageFit(imageMode);
        if (!fit) throw Error("unknown image mode '" + imageMode + "' (expected pad or crop)");
        pre.fit = *fit;
    }
    return pre;
}

PreparedImage prepareImage(const LoadedModel& model, const io::ImageRgb8& image, const std::string& imageMode,
                           std::int64_t maxPixels, bool fixedPixels) {
    if (image.empty()) throw Error("the image is empty");
    PreparedImage out;
    if (model.family != ModelFamily::Qwen2_5Vl) {
        models::PreprocessedImage p =
            models::ClipImageProcessor(preprocessConfig(model, imageMode)).process(image);
        out.pixelValues = p.pixelValues;
        out.geometry = p.geometry;
        out.grid = {p.geometry.gridRows, p.geometry.gridCols};
        return out;
    }
    models::QwenPreprocessConfig cfg = model.qwenPreprocess;
    if (maxPixels > 0) {
        cfg.maxPixels = maxPixels;
        if (fixedPixels) cfg.minPixels = maxPixels;
        cfg.minPixels = std::min(cfg.minPixels, cfg.maxPixels);
    }
    const models::QwenImageProcessor processor(cfg);
    if (imageMode.empty() || imageMode == "resize") {
        out.pixelValues = processor.normalize(processor.prepare(image));
        out.geometry = processor.geometry(image.width, image.height);
    } else if (imageMode == "pad") {
        // SD-RPN's Qwen label input: expand2square with (127, 127, 127), then the processor.
        const io::ImageRgb8 square = models::expandToSquare(image, {127, 127, 127});
        out.pixelValues = processor.normalize(processor.prepare(square));
        const int s = int(out.pixelValues.size(1));
        out.geometry =
            models::makeGridGeometry(image.width, image.height, models::ImageFit::Pad, s, cfg.factor());
    } else {
        throw Error("unknown image mode '" + imageMode + "' for Qwen2.5-VL (expected resize or pad)");
    }
    out.grid = {out.geometry.gridRows, out.geometry.gridCols};
    return out;
}

models::PromptInput promptInput(const text::PromptIds& prompt, const torch::Tensor& features,
                                models::ImageGrid grid) {
    models::PromptInput input;
    input.ids = prompt.ids;
    for (const auto& span : prompt.images)
        for (std::int64_t i = span.start; i < span.end(); ++i) input.ids[std::size_t(i)] = models::kImageSlot;
    input.images = {features};
    if (grid.cells() > 0) input.grids = {grid};
    return input;
}

}  // namespace sdrpn::pipeline
