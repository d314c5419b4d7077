// Prompt ids: a rendered prompt turned into the token sequence a LLaVA-style model runs on, with image
// slots expanded to one row per image feature (mllm_reference.md §5, §8).
//
//   auto tok = loadTokenizer(modelDir);
//   RenderedPrompt prompt = renderPrompt(ChatTemplate::VicunaV1, "What is written on the sign?");
//   PromptOptions opt;
//   opt.imageTokenId = 32000;   // llava-hf: the added <image> token; -1 (default) for the original layout
//   PromptIds p = buildPromptIds(*tok, prompt, opt);
//   // p.ids: [BOS, system + "USER: " ..., 576 x 32000, "\n" + question + " ASSISTANT:" ...]
//   // p.imageTokenStart == 35 for vicuna_v1 with LLaMA's tokenizer; p.lastPosition() is the SD-RPN query.
//
// Recipe (§8): split the prompt at "<image>", SentencePiece-encode each chunk on its own (each chunk gets
// its own dummy-prefix "▁", hence the 29871 on both sides of the image), put BOS first, and give each image
// `numImageTokens` consecutive rows. The layout is the same for llava-hf (rows hold the <image> id) and the
// original LLaVA (rows hold -1; the model splices the projected features in there instead of the -200
// sentinel of tokenizer_image_token; collapsedIds() gives that form back).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/text/chat_template.h"
#include "core/text/tokenizer.h"

namespace sdrpn::text {

// IMAGE_TOKEN_INDEX of the original LLaVA code.
inline constexpr std::int64_t kOriginalImageSentinel = -200;

struct PromptOptions {
    std::int64_t imageTokenId = -1;     // value of every image row; -1 marks rows with no token id
    std::int64_t numImageTokens = 576;  // rows per image: (336/14)^2 for LLaVA-1.5
    bool addBos = true;
};

struct ImageSpan {
    std::int64_t start = 0;  // first row
    std::int64_t count = 0;
    std::int64_t end() const { return start + count; }
};

struct PromptIds {
    std::vector<std::int64_t> ids;  // one per sequence row, image rows included
    // The first image: its first row and row count (-1 / 0 without an image). LLaVA-1.5 prompts hold one.
    std::int64_t imageTokenStart = -1;
    std::int64_t numImageTokens = 0;
    std::vector<ImageSpan> images;  // every image, in prompt order
    // Rows of the tokens that spell the question (RenderedPrompt's question range), ascending. Empty when
    // the prompt came without a question range.
    std::vector<std::int64_t> questionPositions;

    std::int64_t length() const { return static_cast<std::int64_t>(ids.size()); }
    bool hasImage() const { return !images.empty(); }
    std::int64_t imageTokenEnd() const { return imageTokenStart < 0 ? -1 : imageTokenStart + numImageTokens; }
    // The last prompt row: the token whose next-token prediction starts the answer (the end of
    // "ASSISTANT:"), SD-RPN's query token.
    std::int64_t lastPosition() const { return length() - 1; }
    bool isImagePosition(std::int64_t row) const;
    // Text rows only, each image collapsed to one `sentinel` (the original tokenizer_image_token output).
    std::vector<std::int64_t> collapsedIds(std::int64_t sentinel = kOriginalImageSentinel) const;
};

// Throws sdrpn::Error when the options are inconsistent (numImageTokens <= 0 with an image in the prompt,
// addBos with a tokenizer that has no BOS).
PromptIds buildPromptIds(const Tokenizer& tokenizer, const RenderedPrompt& prompt,
                         const PromptOptions& options = {});
// A prompt string without a question range (questionPositions stays empty).
PromptIds buildPromptIds(const Tokenizer& tokenizer, const std::string& prompt,
                         const PromptOptions& options = {});

}  // namespace sdrpn::text
