// Byte-level BPE tokenizer (core/text/bpe_tokenizer.h) against the Qwen2.5-VL fixture's reference ids
// (tests/data/fixtures/tiny-qwen2_5-vl/reference.json, made with the Hugging Face tokenizer).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/result.h"
#include "core/text/bpe_tokenizer.h"
#include "core/text/chat_template.h"
#include "core/text/prompt_ids.h"
#include "core/text/tokenizer.h"
#include "tests/support/test_support.h"

namespace {

using namespace sdrpn;
using namespace sdrpn::text;
namespace fs = std::filesystem;
using Ids = std::vector<std::int64_t>;

std::string tokenizerFile() {
    return test::fixturePath("tiny-qwen2_5-vl/tokenizer.json");
}

nlohmann::json reference() {
    std::ifstream in(test::fixturePath("tiny-qwen2_5-vl/reference.json"));
    return nlohmann::json::parse(in);
}

const BpeTokenizer& fixtureTokenizer() {
    static const BpeTokenizer tok(tokenizerFile());
    return tok;
}

// Writes `text` as tokenizer.json in a fresh folder and returns the file's path.
std::string writeTokenizerJson(const std::string& tag, const std::string& text) {
    const fs::path file = fs::path(test::scratchDir(tag)) / "tokenizer.json";
    std::ofstream(file) << text;
    return file.string();
}

// The fixture's tokenizer.json, edited by `edit`.
std::string editedFixture(const std::string& tag, const std::function<void(nlohmann::json&)>& edit) {
    std::ifstream in(tokenizerFile());
    auto j = nlohmann::json::parse(in);
    edit(j);
    return writeTokenizerJson(tag, j.dump());
}

// The message of the sdrpn::Error `f` throws ("" when it throws none).
template <class F>
std::string errorOf(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return {};
}

TEST(BpeTokenizer, ReferenceCases) {
    const auto& tok = fixtureTokenizer();
    const auto cases = reference().at("tokenizer_cases");
    ASSERT_GE(cases.size(), 5u);
    for (const auto& [text, ids] : cases.items()) {
        EXPECT_EQ(tok.encode(text), ids.get<Ids>()) << "text: " << text;
    }
}

TEST(BpeTokenizer, SpecialTokens) {
    const auto& tok = fixtureTokenizer();
    const auto specials = reference().at("special_ids");
    ASSERT_EQ(specials.size(), 8u);
    for (const auto& [content, id] : specials.items()) {
        EXPECT_EQ(tok.pieceToId(content), id.get<std::int64_t>()) << content;
        EXPECT_EQ(tok.idToPiece(id.get<std::int64_t>()), content);
        EXPECT_TRUE(tok.isSpecial(id.get<std::int64_t>())) << content;
        // Matched whole in running text, never split.
        EXPECT_EQ(tok.encode("a" + content + "a"), (Ids{64, id.get<std::int64_t>(), 64})) << content;
        EXPECT_EQ(tok.decode({id.get<std::int64_t>()}, false), content);
        EXPECT_EQ(tok.decode({id.get<std::int64_t>()}, true), "");
    }
    EXPECT_EQ(tok.bosId(), -1);
    EXPECT_EQ(tok.eosId(), specials.at("<|im_end|>").get<std::int64_t>());
    EXPECT_EQ(tok.vocabSize(), 409);  // fixtures/README.md: vocab 409
    EXPECT_FALSE(tok.isSpecial(64));
    EXPECT_EQ(tok.pieceToId("no such piece"), -1);
    EXPECT_THROW((void)tok.idToPiece(409), Error);
    EXPECT_THROW((void)tok.decode({409}), Error);
}

TEST(BpeTokenizer, ChatPromptLayout) {
    // reference.json gives the chat text and where the expanded image tokens sit in the model's
    // input_ids (425 long, fixtures/README.md); the ids themselves are only in reference.safetensors.
    const auto& tok = fixtureTokenizer();
    const auto ref = reference();
    const auto specials = ref.at("special_ids");
    const auto imagePad = specials.at("<|image_pad|>").get<std::int64_t>();
    const Ids ids = tok.encode(ref.at("text").get<std::string>());
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.front(), specials.at("<|im_start|>").get<std::int64_t>());
    EXPECT_EQ(std::count(ids.begin(), ids.end(), imagePad), 1);
    const auto at = std::find(ids.begin(), ids.end(), imagePad) - ids.begin();
    EXPECT_EQ(at, ref.at("image_token_start").get<std::int64_t>());
    EXPECT_EQ(ids[at - 1], specials.at("<|vision_start|>").get<std::int64_t>());
    EXPECT_EQ(ids[at + 1], specials.at("<|vision_end|>").get<std::int64_t>());
    const auto expanded =
        static_cast<std::int64_t>(ids.size()) - 1 + ref.at("image_pad_expanded_to").get<std::int64_t>();
    EXPECT_EQ(expanded, 425);
    const auto rowsAfter = ref.at("text_rows_after_image").get<Ids>();
    EXPECT_EQ(rowsAfter.back() + 1, expanded);
    // ... "<|im_end|>\n<|im_start|>assistant\n"
    const Ids tail = {specials.at("<|im_end|>").get<std::int64_t>(), 198,
                      specials.at("<|im_start|>").get<std::int64_t>()};
    ASSERT_GE(ids.size(), 8u);
    EXPECT_TRUE(std::search(ids.end() - 8, ids.end(), tail.begin(), tail.end()) != ids.end());
    EXPECT_EQ(ids.back(), 198);  // "\n", as in tokenizer_cases' "multi\nline\ttext"
    EXPECT_EQ(tok.decode(ids, false), ref.at("text").get<std::string>());
}

TEST(BpeTokenizer, PreTokenizerFollowsTheSplitRegex) {
    // Expected words read off the regex: contractions, an optional non-letter before letters, single
    // digits, punctuation runs taking line breaks, and whitespace runs giving their last space to a word.
    const auto& tok = fixtureTokenizer();
    using Words = std::vector<std::string>;
    EXPECT_EQ(tok.preTokenize("Hello\n\n  world"), (Words{"Hello", "\n\n", " ", " world"}));
    EXPECT_EQ(tok.preTokenize("it's 42"), (Words{"it", "'s", " ", "4", "2"}));
    EXPECT_EQ(tok.preTokenize("DON'T we'LL"), (Words{"DON", "'T", " we", "'LL"}));
    EXPECT_EQ(tok.preTokenize("a...\n\nb"), (Words{"a", "...\n\n", "b"}));
    EXPECT_EQ(tok.preTokenize("x ?!"), (Words{"x", " ?!"}));
    EXPECT_EQ(tok.preTokenize("end  "), (Words{"end", "  "}));
    EXPECT_EQ(tok.preTokenize("a \n b"), (Words{"a", " \n", " b"}));
    EXPECT_EQ(tok.preTokenize("\tx"), (Words{"\tx"}));
    // U+00A0 (no-break space) is White_Space but may lead a word; U+3000 is White_Space too.
    EXPECT_EQ(tok.preTokenize("\xC2\xA0word"), (Words{"\xC2\xA0word"}));
    EXPECT_EQ(tok.preTokenize("\xE3\x80\x80\xE3\x80\x80x"), (Words{"\xE3\x80\x80", "\xE3\x80\x80x"}));
    // Digits one at a time, also outside ASCII (U+0663 ARABIC-INDIC DIGIT THREE is \p{N}).
    EXPECT_EQ(tok.preTokenize("12\xD9\xA3"), (Words{"1", "2", "\xD9\xA3"}));
}

TEST(BpeTokenizer, NfcNormalisation) {
    const auto& tok = fixtureTokenizer();
    const std::string composed = "caf\xC3\xA9";     // "café" with U+00E9
    const std::string decomposed = "cafe\xCC\x81";  // "cafe" + U+0301 COMBINING ACUTE ACCENT
    EXPECT_EQ(tok.encode(decomposed), tok.encode(composed));
    EXPECT_EQ(tok.decode(tok.encode(decomposed)), composed);
    // Without NFC, the decomposed text would be the bytes it is: five code points, not four.
    EXPECT_EQ(tok.preTokenize(decomposed), (std::vector<std::string>{composed}));
}

TEST(BpeTokenizer, RoundTrips) {
    const auto& tok = fixtureTokenizer();
    const std::vector<std::string> texts = {
        "What is written on the sign?",
        "  two  spaces",
        "multi\nline\ttext\r\n",
        "\xC3\xA9moji \xE2\x9C\x93 \xE6\x97\xA5\xE6\x9C\xAC",  // émoji ✓ 日本
        "\xF0\x9F\x98\x80 4-byte \xF0\x9F\x8C\x8D",            // 😀 🌍
        "tabs\t\tand  \n\n  blank lines   ",
        "<|im_start|>user\nhi<|im_end|>",
        "",
    };
    for (const auto& text : texts) EXPECT_EQ(tok.decode(tok.encode(text), false), text) << text;
}

TEST(BpeTokenizer, PartialCharactersDecodeAsBytes) {
    const auto& tok = fixtureTokenizer();
    const std::string check = "\xE2\x9C\x93";  // ✓, one token per byte in this small vocabulary
    const Ids ids = tok.encode(check);
    ASSERT_EQ(ids.size(), 3u);
    EXPECT_EQ(tok.decode({ids[0], ids[1]}), check.substr(0, 2));
    std::string joined;
    for (const auto id : ids) joined += tok.decode({id});
    EXPECT_EQ(joined, check);

    TextStream stream(tok);
    EXPECT_EQ(stream.push(ids[0]), "");
    EXPECT_EQ(stream.push(ids[1]), "");
    EXPECT_EQ(stream.push(ids[2]), check);
}

TEST(BpeTokenizer, OffsetsCoverTheText) {
    const auto& tok = fixtureTokenizer();
    const std::string text = "<|im_start|>user\nWhat is 2+2?<|im_end|>";
    const auto spans = tok.encodeWithOffsets(text);
    ASSERT_EQ(spans.size(), tok.encode(text).size());
    std::size_t prev = 0;
    for (const auto& s : spans) {
        EXPECT_EQ(s.begin, prev);
        EXPECT_GE(s.end, s.begin);
        EXPECT_EQ(text.substr(s.begin, s.end - s.begin), tok.decode({s.id}, false));
        prev = s.end;
    }
    EXPECT_EQ(prev, text.size());
}

TEST(BpeTokenizer, LoadTokenizerPicksBpeForTokenizerJson) {
    const auto tok = loadTokenizer(test::fixturePath("tiny-qwen2_5-vl"));
    ASSERT_NE(dynamic_cast<const BpeTokenizer*>(tok.get()), nullptr);
    EXPECT_EQ(tok->encode("What is written on the sign?"),
              reference().at("tokenizer_cases").at("What is written on the sign?").get<Ids>());

    // eos and pad from tokenizer_config.json
    const fs::path dir = test::scratchDir("bpe_folder");
    fs::copy_file(tokenizerFile(), dir / "tokenizer.json");
    std::ofstream(dir / "tokenizer_config.json")
        << R"({"eos_token": "<|endoftext|>", "pad_token": {"content": "<|vision_pad|>"}})";
    const auto configured = loadTokenizer(dir.string());
    EXPECT_EQ(configured->eosId(), 401);
    EXPECT_EQ(configured->padId(), 406);
}

TEST(BpeTokenizer, QwenChatPromptMatchesReferenceInputIds) {
    // The qwen2_vl template renders reference.json's chat text; its ids, with <|image_pad|> expanded to the
    // 391 merged image tokens and no BOS, are the reference's input_ids exactly.
    const auto ref = reference();
    const RenderedPrompt prompt = renderPrompt(ChatTemplate::Qwen2Vl, "What is written on the sign?");
    std::string expectedText = ref.at("text").get<std::string>();
    const std::string pad = "<|image_pad|>";
    expectedText.replace(expectedText.find(pad), pad.size(), kImagePlaceholder);
    ASSERT_EQ(prompt.text, expectedText);
    EXPECT_EQ(prompt.question(), "What is written on the sign?");

    PromptOptions options;
    options.imageTokenId = ref.at("special_ids").at("<|image_pad|>").get<std::int64_t>();
    options.numImageTokens = ref.at("image_pad_expanded_to").get<std::int64_t>();
    options.addBos = false;
    const PromptIds ids = buildPromptIds(fixtureTokenizer(), prompt, options);

    const auto archive =
        io::SafetensorsArchive::open(test::fixturePath("tiny-qwen2_5-vl/reference.safetensors"));
    const torch::Tensor expected = io::loadTensor(*archive, "input_ids");
    ASSERT_EQ(expected.numel(), 425);
    const Ids expectedIds(expected.data_ptr<std::int64_t>(),
                          expected.data_ptr<std::int64_t>() + expected.numel());
    EXPECT_EQ(ids.ids, expectedIds);
    EXPECT_EQ(ids.imageTokenStart, ref.at("image_token_start").get<std::int64_t>());
    EXPECT_EQ(ids.numImageTokens, 391);
    // The text rows after the image start with <|vision_end|>.
    EXPECT_EQ(ids.imageTokenEnd(), ref.at("text_rows_after_image")[0].get<std::int64_t>());
    Ids questionIds;
    for (auto row : ids.questionPositions) questionIds.push_back(ids.ids[std::size_t(row)]);
    EXPECT_EQ(questionIds, ref.at("tokenizer_cases").at("What is written on the sign?").get<Ids>());
}

TEST(BpeTokenizer, AcceptsMergesAsPairsAndNormalizerForms) {
    const auto& ref = fixtureTokenizer();
    const std::string text = "What is written on the sign? caf\xC3\xA9";
    const auto pairs = editedFixture("bpe_pairs", [](nlohmann::json& j) {
        auto& merges = j["model"]["merges"];
        for (auto& m : merges) {
            if (m.is_array()) {
                m = m[0].get<std::string>() + " " + m[1].get<std::string>();
            } else {
                const auto s = m.get<std::string>();
                const auto sp = s.find(' ');
                m = nlohmann::json::array({s.substr(0, sp), s.substr(sp + 1)});
            }
        }
        j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}}}};
    });
    const BpeTokenizer swapped(pairs);
    EXPECT_EQ(swapped.encode(text), ref.encode(text));
    EXPECT_EQ(swapped.encode("cafe\xCC\x81"), ref.encode("caf\xC3\xA9"));

    const auto noNormalizer =
        editedFixture("bpe_nonorm", [](nlohmann::json& j) { j["normalizer"] = nullptr; });
    const BpeTokenizer plain(noNormalizer);
    EXPECT_EQ(plain.encode(text), ref.encode(text));
    EXPECT_NE(plain.encode("cafe\xCC\x81"), ref.encode("caf\xC3\xA9"));
    EXPECT_EQ(plain.decode(plain.encode("cafe\xCC\x81")), "cafe\xCC\x81");
}

TEST(BpeTokenizer, Gpt2RegexThroughByteLevel) {
    const auto file = editedFixture("bpe_gpt2", [](nlohmann::json& j) {
        j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
    });
    const BpeTokenizer tok(file);
    using Words = std::vector<std::string>;
    // GPT-2: runs of digits, a space joins the digits, no line-break rule.
    EXPECT_EQ(tok.preTokenize("Hi 2024!\n\nok"), (Words{"Hi", " 2024", "!", "\n", "\n", "ok"}));
    EXPECT_EQ(tok.preTokenize("it's  x"), (Words{"it", "'s", " ", " x"}));
}

TEST(BpeTokenizer, ErrorsNameTheFileAndKey) {
    const std::string missing = test::scratchDir("bpe_missing") + "/tokenizer.json";
    EXPECT_NE(errorOf([&] { BpeTokenizer t(missing); }).find(missing), std::string::npos);

    const auto malformed = writeTokenizerJson("bpe_malformed", R"({"model": {"type": "BPE", )");
    const auto m1 = errorOf([&] { BpeTokenizer t(malformed); });
    EXPECT_NE(m1.find(malformed), std::string::npos) << m1;
    EXPECT_NE(m1.find("JSON"), std::string::npos) << m1;

    const auto unigram =
        editedFixture("bpe_unigram", [](nlohmann::json& j) { j["model"]["type"] = "Unigram"; });
    const auto m2 = errorOf([&] { BpeTokenizer t(unigram); });
    EXPECT_NE(m2.find(unigram), std::string::npos) << m2;
    EXPECT_NE(m2.find("model.type"), std::string::npos) << m2;
    EXPECT_NE(m2.find("Unigram"), std::string::npos) << m2;

    const auto badMerge = editedFixture("bpe_badmerge", [](nlohmann::json& j) {
        j["model"]["merges"].push_back(nlohmann::json::array({"zzz_unknown", "q"}));
    });
    const auto m3 = errorOf([&] { BpeTokenizer t(badMerge); });
    EXPECT_NE(m3.find(badMerge), std::string::npos) << m3;
    EXPECT_NE(m3.find("model.merges"), std::string::npos) << m3;
    EXPECT_NE(m3.find("zzz_unknown"), std::string::npos) << m3;

    const auto noVocab = editedFixture("bpe_novocab", [](nlohmann::json& j) { j["model"].erase("vocab"); });
    EXPECT_NE(errorOf([&] { BpeTokenizer t(noVocab); }).find("model.vocab"), std::string::npos);

    const auto missingByte =
        editedFixture("bpe_nobyte", [](nlohmann::json& j) { j["model"]["vocab"].erase("!"); });
    const auto m4 = errorOf([&] { BpeTokenizer t(missingByte); });
    EXPECT_NE(m4.find(missingByte), std::string::npos) << m4;

    const auto badPattern = editedFixture("bpe_pattern", [](nlohmann::json& j) {
        j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+";
    });
    EXPECT_NE(errorOf([&] { BpeTokenizer t(badPattern); }).find("pre_tokenizer"), std::string::npos);

    // A folder with no tokenizer at all names the folder.
    const std::string empty = test::scratchDir("bpe_empty");
    EXPECT_NE(errorOf([&] { (void)loadTokenizer(empty); }).find(empty), std::string::npos);
}

TEST(BpeTokenizer, ConcurrentEncodesAgree) {
    const BpeTokenizer tok(tokenizerFile());
    const std::string text = "What is written on the sign? Hello world 2024!";
    const Ids expected = fixtureTokenizer().encode(text);
    std::vector<std::thread> threads;
    std::vector<int> ok(4, 0);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int k = 0; k < 50; ++k) ok[t] += tok.encode(text) == expected ? 1 : 0;
        });
    }
    for (auto& th : threads) th.join();
    for (int t = 0; t < 4; ++t) EXPECT_EQ(ok[t], 50);
}

}  // namespace
