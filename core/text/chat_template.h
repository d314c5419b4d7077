// Chat templates: how a question (and an image) becomes the prompt string of a model
// (mllm_reference.md §7).
//
//   RenderedPrompt p = renderPrompt(ChatTemplate::VicunaV1, "What is written on the sign?");
//   // p.text: "A chat between a curious user ... USER: <image>\nWhat is written on the sign? ASSISTANT:"
//   // p.text.substr(p.questionBegin, p.questionEnd - p.questionBegin) == "What is written on the sign?"
//
// The templates:
//   vicuna_v1  LLaVA's conv_vicuna_v1: system prompt "A chat between a curious user and an artificial
//              intelligence assistant. ... the user's questions." The LLaVA-1.5 training (--version v1)
//              and eval (--conv-mode vicuna_v1) template, and the one SD-RPN's labels were made with.
//   llava_v1   LLaVA's conv_llava_v1: the same with "curious human" / "human's questions" (what LLaVA's
//              run_llava.py picks for names containing "v1"). The fixture reference prompt uses this one.
//   llava_hf   llava-hf's chat_template.json: "USER: <image>\n<question> ASSISTANT:", no system prompt.
//   qwen2_vl   Qwen2.5-VL's ChatML template: "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n
//              <|im_start|>user\n<|vision_start|><image><|vision_end|>QUESTION<|im_end|>\n<|im_start|>assistant\n".
//   deepseek   DeepSeek-VL's conversation: system prompt, "\n\nUser: <image>QUESTION\n\nAssistant:".
//   raw        the question is the exact prompt; it must hold "<image>" where the image goes.
// All render "<image>" where image features go (buildPromptIds() expands it) and leave the assistant turn
// open (LLaVA's end in "ASSISTANT:" with no trailing space). Pure functions; errors throw sdrpn::Error.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace sdrpn::text {

// The literal that marks where an image's features go in a prompt.
inline constexpr const char* kImagePlaceholder = "<image>";

enum class ChatTemplate { VicunaV1, LlavaV1, LlavaHf, Qwen2Vl, Deepseek, Raw };

const char* chatTemplateName(ChatTemplate kind);  // "vicuna_v1", "llava_v1", "llava_hf", "raw"
std::optional<ChatTemplate> parseChatTemplate(const std::string& name);
// Throws sdrpn::Error naming `name` and listing the known templates.
ChatTemplate chatTemplateFromName(const std::string& name);
const std::vector<ChatTemplate>& allChatTemplates();
// System prompt of the template ("" for llava_hf and raw).
const char* chatTemplateSystemPrompt(ChatTemplate kind);

struct ChatMessage {
    enum class Role { User, Assistant };
    Role role = Role::User;
    std::string text;
    bool image = false;  // the message starts with an image ("<image>\n" + text)
};

struct RenderedPrompt {
    std::string text;
    // Byte range of the last user message's text (the question, without "<image>\n") inside `text`.
    std::size_t questionBegin = 0;
    std::size_t questionEnd = 0;
    std::string question() const { return text.substr(questionBegin, questionEnd - questionBegin); }
};

// A conversation (user first, then alternating), rendered with the assistant turn left open.
// Throws for an empty conversation, a conversation that does not end with a user message, or (raw) more
// than one message.
RenderedPrompt renderChat(ChatTemplate kind, const std::vector<ChatMessage>& messages);

// One question, with one image before it when `withImage` (LLaVA puts it first: "<image>\n" + question).
// For `raw` the question is the prompt: it must contain "<image>" when `withImage` (and must not
// otherwise); the question range is what follows the last "<image>" (and its "\n"), or everything.
RenderedPrompt renderPrompt(ChatTemplate kind, const std::string& question, bool withImage = true);

}  // namespace sdrpn::text
