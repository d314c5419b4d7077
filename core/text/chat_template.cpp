#include "core/text/chat_template.h"

#include "core/result.h"

namespace sdrpn::text {
namespace {

// mllm_reference.md §7 (LLaVA conversation.py).
constexpr const char* kVicunaSystem =
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the user's questions.";
constexpr const char* kLlavaV1System =
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions.";

// Qwen2.5-VL's chat_template (mllm_reference.md §9): the default system message, ChatML turns, an image as
// <|vision_start|><|image_pad|><|vision_end|> before the text.
constexpr const char* kQwenSystem = "You are a helpful assistant.";
// DeepSeek-VL's "deepseek" conversation: system prompt, "User: " / "Assistant:" turns separated by a blank
// line, the image placeholder before the question, assistant turns closed by the end-of-sentence token.
constexpr const char* kDeepseekSystem =
    "You are a helpful language and vision assistant. You are able to understand the visual content that the "
    "user provides, and assist the user with a variety of tasks using natural language.";

struct Names {
    ChatTemplate kind;
    const char* name;
};
constexpr Names kNames[] = {{ChatTemplate::VicunaV1, "vicuna_v1"}, {ChatTemplate::LlavaV1, "llava_v1"},
                            {ChatTemplate::LlavaHf, "llava_hf"},   {ChatTemplate::Qwen2Vl, "qwen2_vl"},
                            {ChatTemplate::Deepseek, "deepseek"},  {ChatTemplate::Raw, "raw"}};

}  // namespace

const char* chatTemplateName(ChatTemplate kind) {
    for (const auto& n : kNames) {
        if (n.kind == kind) return n.name;
    }
    return "?";
}

std::optional<ChatTemplate> parseChatTemplate(const std::string& name) {
    for (const auto& n : kNames) {
        if (name == n.name) return n.kind;
    }
    return std::nullopt;
}

ChatTemplate chatTemplateFromName(const std::string& name) {
    if (auto kind = parseChatTemplate(name)) return *kind;
    std::string known;
    for (const auto& n : kNames) known += std::string(known.empty() ? "" : ", ") + n.name;
    throw Error("unknown chat template '" + name + "' (known: " + known + ")");
}

const std::vector<ChatTemplate>& allChatTemplates() {
    static const std::vector<ChatTemplate> all = {ChatTemplate::VicunaV1, ChatTemplate::LlavaV1,
                                                  ChatTemplate::LlavaHf,  ChatTemplate::Qwen2Vl,
                                                  ChatTemplate::Deepseek, ChatTemplate::Raw};
    return all;
}

const char* chatTemplateSystemPrompt(ChatTemplate kind) {
    switch (kind) {
        case ChatTemplate::VicunaV1:
            return kVicunaSystem;
        case ChatTemplate::LlavaV1:
            return kLlavaV1System;
        case ChatTemplate::Qwen2Vl:
            return kQwenSystem;
        case ChatTemplate::Deepseek:
            return kDeepseekSystem;
        default:
            return "";
    }
}

RenderedPrompt renderChat(ChatTemplate kind, const std::vector<ChatMessage>& messages) {
    if (messages.empty())
        throw Error(std::string("chat template ") + chatTemplateName(kind) + ": no messages");
    if (messages.back().role != ChatMessage::Role::User) {
        throw Error(std::string("chat template ") + chatTemplateName(kind) +
                    ": the conversation must end with a user message");
    }
    RenderedPrompt out;
    if (kind == ChatTemplate::Raw) {
        if (messages.size() != 1) throw Error("chat template raw: takes exactly one message");
        const auto& m = messages.front();
        out.text = (m.image ? std::string(kImagePlaceholder) + "\n" : std::string()) + m.text;
        out.questionBegin = out.text.size() - m.text.size();
        out.questionEnd = out.text.size();
        return out;
    }
    std::string& s = out.text;
    if (kind == ChatTemplate::Qwen2Vl) {
        s = std::string("<|im_start|>system\n") + kQwenSystem + "<|im_end|>\n";
        for (const auto& m : messages) {
            const bool user = m.role == ChatMessage::Role::User;
            s += user ? "<|im_start|>user\n" : "<|im_start|>assistant\n";
            if (m.image) s += std::string("<|vision_start|>") + kImagePlaceholder + "<|vision_end|>";
            const std::size_t begin = s.size();
            s += m.text;
            if (user) {
                out.questionBegin = begin;
                out.questionEnd = s.size();
            }
            s += "<|im_end|>\n";
        }
        s += "<|im_start|>assistant\n";
        return out;
    }
    if (kind == ChatTemplate::Deepseek) {
        s = std::string(kDeepseekSystem) + "\n\n";
        for (const auto& m : messages) {
            const bool user = m.role == ChatMessage::Role::User;
            s += user ? "User: " : "Assistant: ";
            if (m.image) s += kImagePlaceholder;
            const std::size_t begin = s.size();
            s += m.text;
            if (user) {
                out.questionBegin = begin;
                out.questionEnd = s.size();
            }
            s += user ? "\n\n" : "<\uff5cend\u2581of\u2581sentence\uff5c>";
        }
        s += "Assistant:";
        return out;
    }
    const bool vicuna = kind == ChatTemplate::VicunaV1 || kind == ChatTemplate::LlavaV1;
    if (vicuna) s = std::string(chatTemplateSystemPrompt(kind)) + " ";  // SeparatorStyle.TWO: system + sep
    for (const auto& m : messages) {
        const bool user = m.role == ChatMessage::Role::User;
        s += user ? "USER: " : "ASSISTANT: ";
        if (m.image) s += std::string(kImagePlaceholder) + "\n";
        const std::size_t begin = s.size();
        s += m.text;
        if (user) {
            out.questionBegin = begin;
            out.questionEnd = s.size();
        }
        // vicuna: sep " " after a user turn, sep2 "</s>" after an assistant turn; llava_hf: text + ' '.
        s += (vicuna && !user) ? "</s>" : " ";
    }
    s += "ASSISTANT:";
    return out;
}

RenderedPrompt renderPrompt(ChatTemplate kind, const std::string& question, bool withImage) {
    if (kind != ChatTemplate::Raw) return renderChat(kind, {{ChatMessage::Role::User, question, withImage}});
    const auto last = question.rfind(kImagePlaceholder);
    if (withImage && last == std::string::npos) {
        throw Error("raw prompt has no " + std::string(kImagePlaceholder) + " to put the image at: '" +
                    question + "'");
    }
    if (!withImage && last != std::string::npos) {
        throw Error("raw prompt contains " + std::string(kImagePlaceholder) + " but no image is given: '" +
                    question + "'");
    }
    RenderedPrompt out;
    out.text = question;
    out.questionEnd = question.size();
    if (last != std::string::npos) {
        out.questionBegin = last + std::string(kImagePlaceholder).size();
        if (out.questionBegin < question.size() && question[out.questionBegin] == '\n') ++out.questionBegin;
    }
    return out;
}

}  // namespace sdrpn::text
