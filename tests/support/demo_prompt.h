// Prompts for tests on the random demo LLaVA (core/models/random_llava.h): BOS, text, the image slots
// filled with `features`, a question; and the capture request the decode tests share.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "core/models/backbone.h"
#include "core/models/capture.h"

namespace sdrpn::test {

inline models::PromptInput demoImagePrompt(std::int64_t bos, const std::vector<std::int64_t>& text,
                                           std::int64_t imageTokens,
                                           const std::vector<std::int64_t>& question,
                                           const torch::Tensor& features) {
    models::PromptInput p;
    p.ids.push_back(bos);
    p.ids.insert(p.ids.end(), text.begin(), text.end());
    p.ids.insert(p.ids.end(), std::size_t(imageTokens), models::kImageSlot);
    p.ids.insert(p.ids.end(), question.begin(), question.end());
    p.images = {features};
    return p;
}

// The last prompt row and every answer row, all layers.
inline models::CaptureRequest lastAndAnswerCapture() {
    models::CaptureRequest request;
    request.lastPromptToken = true;
    request.answerTokens = true;
    return request;
}

}  // namespace sdrpn::test
