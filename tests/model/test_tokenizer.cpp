// SentencePiece tokenizer through the sdrpn_spm plugin, against the fixture's reference ids
// (tests/data/fixtures/tiny-llava-hf/reference.json, "tokenizer_cases").
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/result.h"
#include "core/text/prompt_ids.h"
#include "core/text/spm_library.h"
#include "core/text/tokenizer.h"
#include "tests/support/test_support.h"

namespace {

using namespace sdrpn;
using namespace sdrpn::text;
namespace fs = std::filesystem;

std::string modelFile() {
    return test::fixturePath("tiny-llava-hf/tokenizer.model");
}

nlohmann::json reference() {
    std::ifstream in(test::fixturePath("tiny-llava-hf/reference.json"));
    return nlohmann::json::parse(in);
}

bool validUtf8(const std::string& s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const std::size_t n = c < 0x80             ? 1
                              : (c & 0xE0) == 0xC0 ? 2
                              : (c & 0xF0) == 0xE0 ? 3
                              : (c & 0xF8) == 0xF0 ? 4
                                                   : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (std::size_t k = 1; k < n; ++k) {
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
        }
        i += n;
    }
    return true;
}

TEST(Tokenizer, PluginIsFound) {
    const auto& api = text::detail::spmApi();
    EXPECT_TRUE(fs::exists(api.path)) << api.path;
    EXPECT_NE(api.path.find("libsdrpn_spm.so"), std::string::npos);
}

TEST(Tokenizer, LoadsFixtureModel) {
    SentencePieceTokenizer tok(modelFile());
    EXPECT_EQ(tok.spmVocabSize(), 512);
    EXPECT_EQ(tok.vocabSize(), 512);
    EXPECT_EQ(tok.unkId(), 0);
    EXPECT_EQ(tok.bosId(), 1);
    EXPECT_EQ(tok.eosId(), 2);
    EXPECT_EQ(tok.padId(), -1);
    EXPECT_EQ(tok.idToPiece(1), "<s>");
    EXPECT_EQ(tok.idToPiece(2), "</s>");
    EXPECT_EQ(tok.idToPiece(3 + 0x0A), "<0x0A>");  // byte fallback: id = 3 + byte
    EXPECT_TRUE(tok.isByte(3 + 0x0A));
    EXPECT_FALSE(tok.isByte(446));
    EXPECT_TRUE(tok.isSpecial(1));
    EXPECT_TRUE(tok.isSpecial(2));
    EXPECT_FALSE(tok.isSpecial(446));
    EXPECT_EQ(tok.pieceToId("<0x0A>"), 13);
    EXPECT_EQ(tok.pieceToId("<unk>"), 0);
    EXPECT_EQ(tok.pieceToId("no such piece"), -1);
    for (std::int64_t id : {0, 3, 100, 446, 511}) EXPECT_EQ(tok.pieceToId(tok.idToPiece(id)), id) << id;
    EXPECT_THROW(tok.idToPiece(512), Error);
    EXPECT_THROW(tok.idToPiece(-1), Error);
}

TEST(Tokenizer, MatchesReferenceCases) {
    SentencePieceTokenizer tok(modelFile());
    const auto cases = reference()["tokenizer_cases"];
    ASSERT_EQ(cases.size(), 7u);
    for (const auto& [text, ids] : cases.items()) {
        EXPECT_EQ(tok.encode(text), ids.get<std::vector<std::int64_t>>()) << "text: " << text;
        EXPECT_EQ(tok.decode(tok.encode(text)), text);
    }
}

TEST(Tokenizer, WorksNextToLibTorch) {
    // The executable links LibTorch (libprotobuf 3.21); the plugin keeps sentencepiece's copy apart.
    const auto t = torch::arange(4).sum();
    SentencePieceTokenizer tok(modelFile());
    EXPECT_EQ(tok.encode("What is written on the sign?").size(), 10u);
    EXPECT_EQ(t.item<std::int64_t>(), 6);
}

TEST(Tokenizer, OffsetsCoverTheText) {
    SentencePieceTokenizer tok(modelFile());
    const auto ref = reference();  // items() refers into it: it must outlive the loop
    for (const auto& [text, ids] : ref["tokenizer_cases"].items()) {
        const auto spans = tok.encodeWithOffsets(text);
        ASSERT_EQ(spans.size(), ids.size()) << text;
        std::size_t pos = 0;
        for (std::size_t i = 0; i < spans.size(); ++i) {
            EXPECT_EQ(spans[i].id, ids[i].get<std::int64_t>());
            EXPECT_EQ(spans[i].begin, pos) << text << " token " << i;
            EXPECT_GE(spans[i].end, spans[i].begin);
            pos = spans[i].end;
        }
        EXPECT_EQ(pos, text.size()) << text;
    }
    // "What" -> "▁What"-like pieces: the first token starts at 0 despite the dummy-prefix space.
    const std::string q = "What is written on the sign?";
    const auto spans = tok.encodeWithOffsets(q);
    EXPECT_EQ(spans.front().begin, 0u);
    EXPECT_EQ(q.substr(spans.back().begin, spans.back().end - spans.back().begin), "?");
}

TEST(Tokenizer, AddedTokensFromModelFolder) {
    const std::string dir = test::scratchDir("tok_folder");
    fs::copy_file(modelFile(), fs::path(dir) / "tokenizer.model");
    std::ofstream(fs::path(dir) / "added_tokens.json") << R"({"<image>": 512})";
    std::ofstream(fs::path(dir) / "tokenizer_config.json") << R"({
      "added_tokens_decoder": {
        "0": {"content": "<unk>", "special": true},
        "512": {"content": "<image>", "special": true},
        "513": {"content": "<pad>", "special": true}
      },
      "pad_token": "<pad>"
    })";
    const auto tok = loadTokenizer(dir);
    EXPECT_EQ(tok->vocabSize(), 514);
    EXPECT_EQ(tok->pieceToId("<image>"), 512);
    EXPECT_EQ(tok->pieceToId("<pad>"), 513);
    EXPECT_EQ(tok->padId(), 513);
    EXPECT_EQ(tok->idToPiece(513), "<pad>");
    EXPECT_TRUE(tok->isSpecial(512));
    // Special tokens vanish when decoding, text on both sides survives.
    auto ids = tok->encode("Hello world");
    ids.insert(ids.begin() + 1, 512);
    ids.push_back(513);
    ids.insert(ids.begin(), 1);
    EXPECT_EQ(tok->decode(ids).find("<"), std::string::npos);
    EXPECT_THROW(tok->decode({514}), Error);
}

TEST(Tokenizer, FolderErrorsNameTheFolder) {
    const std::string dir = test::scratchDir("tok_missing");
    try {
        (void)loadTokenizer(dir);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(dir), std::string::npos) << e.what();
    }
    EXPECT_THROW(SentencePieceTokenizer(dir + "/nothing.model"), Error);
    std::ofstream(fs::path(dir) / "tokenizer.model") << "not a model";
    try {
        SentencePieceTokenizer bad(dir + "/tokenizer.model");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("tokenizer.model"), std::string::npos) << e.what();
    }
}

TEST(Tokenizer, StreamEmitsOnlyCompleteCharacters) {
    SentencePieceTokenizer tok(modelFile());
    const std::string text = "\xC3\xA9moji \xE2\x9C\x93 \xE6\x97\xA5\xE6\x9C\xAC and more";
    const auto ids = tok.encode(text);
    TextStream stream(tok);
    std::string joined;
    bool heldBack = false;
    for (const auto id : ids) {
        const std::string piece = stream.push(id);
        EXPECT_TRUE(validUtf8(piece)) << "partial character emitted after id " << id;
        if (piece.empty()) heldBack = true;
        joined += piece;
    }
    joined += stream.finish();
    EXPECT_TRUE(heldBack);  // the byte-fallback pieces of 日 and 本 wait for their last byte
    EXPECT_EQ(joined, text);
    EXPECT_EQ(stream.text(), text);
    EXPECT_EQ(stream.ids(), ids);
}

TEST(Tokenizer, StreamFinishFlushesAnIncompleteCharacter) {
    SentencePieceTokenizer tok(modelFile());
    TextStream stream(tok);
    EXPECT_EQ(stream.push(3 + 0xE6), "");  // first byte of a three-byte character
    EXPECT_EQ(stream.finish(), "\xEF\xBF\xBD");
}

TEST(Tokenizer, TrainsAModel) {
    const std::string dir = test::scratchDir("tok_train");
    const std::string corpus = dir + "/corpus.txt";
    {
        std::ofstream out(corpus);
        const char* words[] = {"the",   "red",    "sign", "says", "stop",    "a",   "cat",
                               "on",    "mat",    "what", "is",   "written", "box", "left",
                               "right", "number", "42",   "blue", "car"};
        for (int i = 0; i < 400; ++i) {
            for (int w = 0; w < 8; ++w) out << words[(i * 7 + w * 3) % 19] << (w == 7 ? "" : " ");
            out << (i % 3 == 0 ? "?" : ".") << "\n";
        }
    }
    trainSentencePiece(corpus, dir + "/demo", 320);
    ASSERT_TRUE(fs::exists(dir + "/demo.model"));
    ASSERT_TRUE(fs::exists(dir + "/demo.vocab"));
    SentencePieceTokenizer tok(dir + "/demo.model");
    EXPECT_EQ(tok.vocabSize(), 320);
    EXPECT_EQ(tok.bosId(), 1);
    EXPECT_EQ(tok.eosId(), 2);
    EXPECT_EQ(tok.idToPiece(3), "<0x00>");
    const std::string text = "what is written on the red sign? 2024 \xE6\x97\xA5";
    EXPECT_EQ(tok.decode(tok.encode(text)), text);
    EXPECT_LT(tok.encode("the red sign").size(), 6u);  // merges were learnt

    EXPECT_THROW(trainSentencePiece(dir + "/missing.txt", dir + "/x", 320), Error);
    try {
        trainSentencePiece(corpus, dir + "/too_big", 100000);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(corpus), std::string::npos) << e.what();
    }
}

TEST(PromptIds, MatchesReferenceInputIds) {
    // reference.json's prompt is LLaVA's conv_llava_v1 ("curious human"), rendered here as llava_v1.
    SentencePieceTokenizer tok(modelFile());
    const auto ref = reference();
    const auto prompt = renderPrompt(ChatTemplate::LlavaV1, "What is written on the sign?");
    ASSERT_EQ(prompt.text, ref["prompt"].get<std::string>());

    PromptOptions opt;
    opt.imageTokenId = ref["image_token_id"].get<std::int64_t>();
    opt.numImageTokens = ref["num_image_tokens"].get<std::int64_t>();
    const PromptIds ids = buildPromptIds(tok, prompt, opt);

    const auto archive =
        io::SafetensorsArchive::open(test::fixturePath("tiny-llava-hf/reference.safetensors"));
    const torch::Tensor expected = io::loadTensor(*archive, "input_ids");
    ASSERT_EQ(expected.numel(), 646);
    const std::vector<std::int64_t> expectedIds(expected.data_ptr<std::int64_t>(),
                                                expected.data_ptr<std::int64_t>() + expected.numel());
    EXPECT_EQ(ids.ids, expectedIds);
    EXPECT_EQ(ids.imageTokenStart, 49);
    EXPECT_EQ(ids.imageTokenStart, ref["image_token_start"].get<std::int64_t>());
    EXPECT_EQ(ids.numImageTokens, 576);
    EXPECT_EQ(ids.lastPosition(), 645);
    // Rows after the image are the reference's "text_rows_after_image" (625..645).
    EXPECT_EQ(ids.imageTokenEnd(), ref["text_rows_after_image"][0].get<std::int64_t>());
    // The question's tokens: "\nWhat is written on the sign? ASSISTANT:" encodes as
    // [▁, \n, W, hat, ...]; the question itself is the 9 tokens after "▁\n".
    ASSERT_EQ(ids.questionPositions.size(), 9u);
    EXPECT_EQ(ids.questionPositions.front(), 627);
    EXPECT_EQ(ids.questionPositions.back(), 635);
    std::vector<std::int64_t> questionIds;
    for (auto row : ids.questionPositions) questionIds.push_back(ids.ids[row]);
    EXPECT_EQ(tok.decode(questionIds), "What is written on the sign?");

    // The original layout: same rows, image rows marked -1, and the -200 form of tokenizer_image_token.
    const PromptIds original = buildPromptIds(tok, prompt);
    EXPECT_EQ(original.length(), 646);
    EXPECT_EQ(original.imageTokenStart, 49);
    EXPECT_EQ(original.ids[49], -1);
    const auto collapsed = original.collapsedIds();
    EXPECT_EQ(collapsed.size(), 646u - 575u);
    EXPECT_EQ(collapsed[49], kOriginalImageSentinel);
}

TEST(PromptIds, ChunksAreEncodedSeparately) {
    // mllm_reference.md §8: "USER: " and "\n..." each get their own dummy prefix around the image.
    SentencePieceTokenizer tok(modelFile());
    const auto p = buildPromptIds(tok, renderPrompt(ChatTemplate::LlavaHf, "What is written on the sign?"));
    auto expected = tok.encode("USER: ");
    expected.insert(expected.begin(), tok.bosId());
    expected.insert(expected.end(), 576, -1);
    const auto post = tok.encode("\nWhat is written on the sign? ASSISTANT:");
    expected.insert(expected.end(), post.begin(), post.end());
    EXPECT_EQ(p.ids, expected);
}

TEST(Tokenizer, PluginSearchOrder) {
    const char* saved = std::getenv("SDRPN_SPM_PLUGIN");
    unsetenv("SDRPN_SPM_PLUGIN");
    const auto candidates = text::detail::spmPluginCandidates();
    ASSERT_GE(candidates.size(), 3u);
    EXPECT_NE(candidates[1].find("lib/sdrpn/libsdrpn_spm.so"), std::string::npos);
    setenv("SDRPN_SPM_PLUGIN", "/elsewhere/libsdrpn_spm.so", 1);
    EXPECT_EQ(text::detail::spmPluginCandidates(), std::vector<std::string>{"/elsewhere/libsdrpn_spm.so"});
    if (saved)
        setenv("SDRPN_SPM_PLUGIN", saved, 1);
    else
        unsetenv("SDRPN_SPM_PLUGIN");
}

TEST(TokenizerDeathTest, MissingPluginIsAClearError) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");  // a fresh process: the plugin is not loaded yet
    EXPECT_EXIT(
        {
            setenv("SDRPN_SPM_PLUGIN", "/nonexistent/libsdrpn_spm.so", 1);
            try {
                SentencePieceTokenizer tok(modelFile());
            } catch (const Error& e) {
                std::fprintf(stderr, "%s\n", e.what());
                std::exit(3);
            }
            std::exit(0);
        },
        ::testing::ExitedWithCode(3),
        "cannot load the SentencePiece plugin.*\n.*/nonexistent/libsdrpn_spm.so");
}

TEST(TokenizerDeathTest, EnvironmentOverrideIsUsed) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    // The child re-runs this body up to EXPECT_EXIT: nothing here may load the plugin.
    unsetenv("SDRPN_SPM_PLUGIN");
    const std::string plugin = text::detail::spmPluginCandidates().front();  // the build tree's copy
    const std::string copy = test::scratchDir("plugin_copy") + "/libsdrpn_spm.so";
    fs::copy_file(plugin, copy);
    EXPECT_EXIT(
        {
            setenv("SDRPN_SPM_PLUGIN", copy.c_str(), 1);
            SentencePieceTokenizer tok(modelFile());
            std::exit(text::detail::spmApi().path == copy && tok.vocabSize() == 512 ? 4 : 5);
        },
        ::testing::ExitedWithCode(4), "");
}

}  // namespace
