// Chat templates (mllm_reference.md §7) and prompt-id layout with a stand-in tokenizer (the real
// SentencePiece cases are in tests/model/test_tokenizer.cpp).
#include <gtest/gtest.h>

#include "core/result.h"
#include "core/text/chat_template.h"
#include "core/text/prompt_ids.h"

namespace {

using namespace sdrpn;
using namespace sdrpn::text;

const std::string kQuestion = "What is written on the sign?";

TEST(ChatTemplate, VicunaV1IsTheLlava15Prompt) {
    const auto p = renderPrompt(ChatTemplate::VicunaV1, kQuestion);
    EXPECT_EQ(
        p.text,
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
        "helpful, detailed, and polite answers to the user's questions. USER: <image>\nWhat is written on "
        "the sign? ASSISTANT:");
    EXPECT_EQ(p.question(), kQuestion);
}

TEST(ChatTemplate, LlavaV1IsTheFixturePrompt) {
    // tests/data/fixtures/tiny-llava-hf/reference.json "prompt"
    const auto p = renderPrompt(ChatTemplate::LlavaV1, kQuestion);
    EXPECT_EQ(
        p.text,
        "A chat between a curious human and an artificial intelligence assistant. The assistant gives "
        "helpful, detailed, and polite answers to the human's questions. USER: <image>\nWhat is written on "
        "the sign? ASSISTANT:");
    EXPECT_EQ(p.question(), kQuestion);
}

TEST(ChatTemplate, LlavaHf) {
    const auto p = renderPrompt(ChatTemplate::LlavaHf, kQuestion);
    EXPECT_EQ(p.text, "USER: <image>\nWhat is written on the sign? ASSISTANT:");
    EXPECT_EQ(p.question(), kQuestion);
    EXPECT_EQ(renderPrompt(ChatTemplate::LlavaHf, "Hi", false).text, "USER: Hi ASSISTANT:");
}

TEST(ChatTemplate, TextOnly) {
    const auto p = renderPrompt(ChatTemplate::VicunaV1, "Hi", false);
    EXPECT_EQ(p.text.find("<image>"), std::string::npos);
    EXPECT_TRUE(p.text.size() > 20 && p.text.compare(p.text.size() - 20, 20, " USER: Hi ASSISTANT:") == 0);
    EXPECT_EQ(p.question(), "Hi");
}

TEST(ChatTemplate, MultiTurn) {
    using Role = ChatMessage::Role;
    const std::vector<ChatMessage> chat = {{Role::User, "What is this?", true},
                                           {Role::Assistant, "A sign.", false},
                                           {Role::User, "Which colour?", false}};
    const auto v = renderChat(ChatTemplate::VicunaV1, chat);
    const std::string sys = chatTemplateSystemPrompt(ChatTemplate::VicunaV1);
    EXPECT_EQ(v.text,
              sys + " USER: <image>\nWhat is this? ASSISTANT: A sign.</s>USER: Which colour? ASSISTANT:");
    EXPECT_EQ(v.question(), "Which colour?");
    const auto h = renderChat(ChatTemplate::LlavaHf, chat);
    EXPECT_EQ(h.text, "USER: <image>\nWhat is this? ASSISTANT: A sign. USER: Which colour? ASSISTANT:");
    EXPECT_EQ(h.question(), "Which colour?");
}

TEST(ChatTemplate, Raw) {
    const std::string prompt = "<image>\nDescribe the sign.";
    const auto p = renderPrompt(ChatTemplate::Raw, prompt);
    EXPECT_EQ(p.text, prompt);
    EXPECT_EQ(p.question(), "Describe the sign.");
    EXPECT_EQ(renderPrompt(ChatTemplate::Raw, "Plain text", false).question(), "Plain text");
    EXPECT_THROW(renderPrompt(ChatTemplate::Raw, "no image here"), Error);
    EXPECT_THROW(renderPrompt(ChatTemplate::Raw, prompt, false), Error);
}

TEST(ChatTemplate, QwenAndDeepseekTurns) {
    const auto qwen = renderPrompt(ChatTemplate::Qwen2Vl, "Q?");
    EXPECT_EQ(qwen.text,
              "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
              "<|vision_start|><image><|vision_end|>Q?<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_EQ(qwen.question(), "Q?");
    const auto qwenChat = renderChat(ChatTemplate::Qwen2Vl, {{ChatMessage::Role::User, "A", true},
                                                             {ChatMessage::Role::Assistant, "B", false},
                                                             {ChatMessage::Role::User, "C", false}});
    EXPECT_NE(qwenChat.text.find("<|im_start|>assistant\nB<|im_end|>\n<|im_start|>user\nC<|im_end|>\n"),
              std::string::npos);
    EXPECT_EQ(qwenChat.question(), "C");

    const auto ds = renderPrompt(ChatTemplate::Deepseek, "Q?");
    EXPECT_EQ(ds.text, std::string(chatTemplateSystemPrompt(ChatTemplate::Deepseek)) +
                           "\n\nUser: <image>Q?\n\nAssistant:");
    EXPECT_EQ(ds.question(), "Q?");
}

TEST(ChatTemplate, Names) {
    for (const auto kind : allChatTemplates()) {
        EXPECT_EQ(parseChatTemplate(chatTemplateName(kind)), kind);
        EXPECT_EQ(chatTemplateFromName(chatTemplateName(kind)), kind);
    }
    EXPECT_EQ(allChatTemplates().size(), 6u);
    EXPECT_FALSE(parseChatTemplate("vicuna"));
    try {
        chatTemplateFromName("vicuna");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("'vicuna'"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("llava_hf"), std::string::npos);
    }
}

TEST(ChatTemplate, BadConversations) {
    using Role = ChatMessage::Role;
    EXPECT_THROW(renderChat(ChatTemplate::VicunaV1, {}), Error);
    EXPECT_THROW(
        renderChat(ChatTemplate::VicunaV1, {{Role::User, "q", false}, {Role::Assistant, "a", false}}), Error);
    EXPECT_THROW(renderChat(ChatTemplate::Raw, {{Role::User, "a", false}, {Role::User, "b", false}}), Error);
}

// One token per byte, SentencePiece-style dummy prefix: a chunk "ab" -> [D, 'a', 'b'].
class ByteTokenizer : public Tokenizer {
public:
    static constexpr std::int64_t kDummy = 300;
    std::vector<std::int64_t> encode(const std::string& text) const override {
        std::vector<std::int64_t> ids;
        if (text.empty()) return ids;
        ids.push_back(kDummy);
        for (unsigned char c : text) ids.push_back(c);
        return ids;
    }
    std::vector<TokenSpan> encodeWithOffsets(const std::string& text) const override {
        std::vector<TokenSpan> spans;
        if (text.empty()) return spans;
        spans.push_back({kDummy, 0, 0});
        for (std::size_t i = 0; i < text.size(); ++i)
            spans.push_back({static_cast<unsigned char>(text[i]), i, i + 1});
        return spans;
    }
    std::string decode(const std::vector<std::int64_t>& ids) const override {
        std::string s;
        for (auto id : ids) {
            if (id < 256) s += static_cast<char>(id);
        }
        return s;
    }
    std::string idToPiece(std::int64_t id) const override { return std::string(1, static_cast<char>(id)); }
    std::int64_t pieceToId(const std::string& piece) const override {
        return piece.size() == 1 ? static_cast<unsigned char>(piece[0]) : -1;
    }
    bool isSpecial(std::int64_t id) const override { return id >= 256; }
    std::int64_t bosId() const override { return 256; }
    std::int64_t eosId() const override { return 257; }
    std::int64_t padId() const override { return -1; }
    std::int64_t vocabSize() const override { return 301; }
};

TEST(PromptIds, LayoutAroundTheImage) {
    ByteTokenizer tok;
    RenderedPrompt p{"ab<image>\ncd e", 10, 12};  // question "cd"
    PromptOptions opt;
    opt.imageTokenId = 299;
    opt.numImageTokens = 4;
    const auto ids = buildPromptIds(tok, p, opt);
    const std::vector<std::int64_t> expected = {256, 300, 'a',  'b', 299, 299, 299,
                                                299, 300, '\n', 'c', 'd', ' ', 'e'};
    EXPECT_EQ(ids.ids, expected);
    EXPECT_EQ(ids.imageTokenStart, 4);
    EXPECT_EQ(ids.numImageTokens, 4);
    EXPECT_EQ(ids.imageTokenEnd(), 8);
    ASSERT_EQ(ids.images.size(), 1u);
    EXPECT_EQ(ids.images[0].start, 4);
    EXPECT_EQ(ids.questionPositions, (std::vector<std::int64_t>{10, 11}));
    EXPECT_EQ(ids.lastPosition(), 13);
    EXPECT_TRUE(ids.isImagePosition(4));
    EXPECT_TRUE(ids.isImagePosition(7));
    EXPECT_FALSE(ids.isImagePosition(8));
    EXPECT_EQ(ids.collapsedIds(),
              (std::vector<std::int64_t>{256, 300, 'a', 'b', -200, 300, '\n', 'c', 'd', ' ', 'e'}));
}

TEST(PromptIds, OriginalLayoutMarksImageRows) {
    ByteTokenizer tok;
    const auto ids = buildPromptIds(tok, std::string("<image>\nq"), PromptOptions{});
    EXPECT_EQ(ids.ids.size(), 1u + 576u + 3u);
    EXPECT_EQ(ids.imageTokenStart, 1);
    EXPECT_EQ(ids.ids[1], -1);
    EXPECT_EQ(ids.ids[576], -1);
    EXPECT_TRUE(ids.questionPositions.empty());
}

TEST(PromptIds, TwoImagesAndNoImage) {
    ByteTokenizer tok;
    PromptOptions opt;
    opt.numImageTokens = 2;
    const auto two = buildPromptIds(tok, std::string("<image><image>x"), opt);
    ASSERT_EQ(two.images.size(), 2u);
    EXPECT_EQ(two.images[0].start, 1);
    EXPECT_EQ(two.images[1].start, 3);
    EXPECT_EQ(two.imageTokenStart, 1);
    EXPECT_EQ(two.length(), 1 + 2 + 2 + 2);
    EXPECT_EQ(two.collapsedIds(), (std::vector<std::int64_t>{256, -200, -200, 300, 'x'}));

    const auto none = buildPromptIds(tok, renderPrompt(ChatTemplate::LlavaHf, "hi", false), opt);
    EXPECT_FALSE(none.hasImage());
    EXPECT_EQ(none.imageTokenStart, -1);
    EXPECT_EQ(none.imageTokenEnd(), -1);
    EXPECT_EQ(none.questionPositions.size(), 2u);

    opt.addBos = false;
    EXPECT_EQ(buildPromptIds(tok, std::string("x"), opt).ids, (std::vector<std::int64_t>{300, 'x'}));
    opt.numImageTokens = 0;
    EXPECT_THROW(buildPromptIds(tok, std::string("<image>"), opt), Error);
}

}  // namespace
