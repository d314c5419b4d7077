#include "core/text/prompt_ids.h"

#include <algorithm>

#include "core/result.h"

namespace sdrpn::text {

bool PromptIds::isImagePosition(std::int64_t row) const {
    return std::any_of(images.begin(), images.end(),
                       [row](const ImageSpan& s) { return row >= s.start && row < s.end(); });
}

std::vector<std::int64_t> PromptIds::collapsedIds(std::int64_t sentinel) const {
    std::vector<std::int64_t> out;
    out.reserve(ids.size());
    std::size_t next = 0;
    for (std::int64_t row = 0; row < length();) {
        if (next < images.size() && row == images[next].start) {
            out.push_back(sentinel);
            row = images[next].end();
            ++next;
        } else {
            out.push_back(ids[static_cast<std::size_t>(row)]);
            ++row;
        }
    }
    return out;
}

namespace {

PromptIds build(const Tokenizer& tokenizer, const std::string& text, std::size_t questionBegin,
                std::size_t questionEnd, const PromptOptions& options) {
    PromptIds out;
    if (options.addBos) {
        if (tokenizer.bosId() < 0) throw Error("prompt: addBos is set but the tokenizer has no BOS token");
        out.ids.push_back(tokenizer.bosId());
    }
    const std::string placeholder = kImagePlaceholder;
    std::size_t chunkBegin = 0;
    while (true) {
        const std::size_t hit = text.find(placeholder, chunkBegin);
        const std::size_t chunkEnd = hit == std::string::npos ? text.size() : hit;
        // mllm_reference.md §8: each chunk is encoded on its own, so each gets the dummy-prefix "▁".
        const auto spans = tokenizer.encodeWithOffsets(text.substr(chunkBegin, chunkEnd - chunkBegin));
        for (const auto& span : spans) {
            const std::size_t b = chunkBegin + span.begin, e = chunkBegin + span.end;
            if (b < questionEnd && e > questionBegin) out.questionPositions.push_back(out.length());
            out.ids.push_back(span.id);
        }
        if (hit == std::string::npos) break;
        if (options.numImageTokens <= 0) {
            throw Error("prompt: " + std::to_string(options.numImageTokens) + " image tokens per image");
        }
        out.images.push_back({out.length(), options.numImageTokens});
        out.ids.insert(out.ids.end(), static_cast<std::size_t>(options.numImageTokens), options.imageTokenId);
        chunkBegin = hit + placeholder.size();
    }
    if (!out.images.empty()) {
        out.imageTokenStart = out.images.front().start;
        out.numImageTokens = out.images.front().count;
    }
    return out;
}

}  // namespace

PromptIds buildPromptIds(const Tokenizer& tokenizer, const RenderedPrompt& prompt,
                         const PromptOptions& options) {
    return build(tokenizer, prompt.text, prompt.questionBegin, prompt.questionEnd, options);
}

PromptIds buildPromptIds(const Tokenizer& tokenizer, const std::string& prompt,
                         const PromptOptions& options) {
    return build(tokenizer, prompt, 0, 0, options);
}

}  // namespace sdrpn::text
