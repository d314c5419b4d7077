#include "core/pipeline/prompt.h"

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

text::PromptIds buildImagePrompt(const LoadedModel& model, const text::RenderedPrompt& rendered) {
    const models::BackboneInfo& info = model.backbone->info();
    text::PromptOptions options;
    options.imageTokenId = info.imageTokenId >= 0 ? info.imageTokenId : -1;
    options.numImageTokens = info.imageTokens;
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

models::PromptInput promptInput(const text::PromptIds& prompt, const torch::Tensor& features) {
    models::PromptInput input;
    input.ids = prompt.ids;
    for (const auto& span : prompt.images)
        for (std::int64_t i = span.start; i < span.end(); ++i) input.ids[std::size_t(i)] = models::kImageSlot;
    input.images = {features};
    return input;
}

}  // namespace sdrpn::pipeline
