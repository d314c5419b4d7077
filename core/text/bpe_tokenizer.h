// Byte-level BPE tokenizer read from a Hugging Face `tokenizer.json` (Qwen2 / Qwen2.5-VL, GPT-2 style;
// mllm_reference.md §9).
//
//   BpeTokenizer tok("/models/Qwen2.5-VL-3B-Instruct/tokenizer.json");
//   auto ids = tok.encode("<|im_start|>user\nWhat is written on the sign?<|im_end|>\n");   // no BOS
//   std::string text = tok.decode(ids, /*skipSpecial=*/false);
//
// Encoding: added tokens (`<|im_start|>`, `<|image_pad|>`, ...) are matched literally in the input and
// never split; the text between them is NFC-normalised, cut into words by the pre-tokenizer regex (Qwen2's
// split regex or GPT-2's), mapped byte by byte onto the GPT-2 byte alphabet, and merged by BPE rank.
// Unlike SentencePieceTokenizer::encode(), encode() here recognises added tokens in the text, as the
// Hugging Face tokenizer does.
//
// Decoding keeps bytes as they are: a character whose bytes are spread over several tokens comes out as
// an incomplete UTF-8 sequence when only some of them are decoded, so that a stream can join later pieces
// (TextStream holds such tails back).
//
// A loaded BpeTokenizer is immutable after setup (setEosId / setPadId) and its const methods may be called
// from any thread (the word cache is guarded). Errors throw sdrpn::Error naming the file and the key.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/text/tokenizer.h"

namespace sdrpn::text {

class BpeTokenizer final : public Tokenizer {
public:
    // Reads `tokenizer.json`. Throws sdrpn::Error naming the file and the key when the file is missing,
    // not JSON, not a BPE model, uses a normalizer / pre-tokenizer / decoder this class does not implement,
    // or has a merge naming tokens that are not in the vocabulary.
    explicit BpeTokenizer(const std::string& tokenizerJson);
    ~BpeTokenizer() override;
    BpeTokenizer(const BpeTokenizer&) = delete;
    BpeTokenizer& operator=(const BpeTokenizer&) = delete;

    // Setup, before the tokenizer is shared between threads. -1: none.
    void setEosId(std::int64_t id);
    void setPadId(std::int64_t id);

    std::vector<std::int64_t> encode(const std::string& text) const override;
    std::vector<TokenSpan> encodeWithOffsets(const std::string& text) const override;
    // Special added tokens produce nothing (as the Tokenizer contract says); see the overload.
    std::string decode(const std::vector<std::int64_t>& ids) const override;
    // Text of `ids`; added tokens come out as their content unless `skipSpecial` and they are special.
    // Throws for an id that is neither in the vocabulary nor an added token.
    std::string decode(const std::vector<std::int64_t>& ids, bool skipSpecial) const;

    std::string idToPiece(std::int64_t id) const override;
    std::int64_t pieceToId(const std::string& piece) const override;
    bool isSpecial(std::int64_t id) const override;
    std::int64_t bosId() const override { return -1; }  // byte-level BPE adds no BOS
    std::int64_t eosId() const override { return m_eos; }
    std::int64_t padId() const override { return m_pad; }
    std::int64_t vocabSize() const override { return m_vocabSize; }

    // The words the pre-tokenizer cuts `text` into (after NFC), before the byte mapping. For tests and
    // for debugging prompt ids.
    std::vector<std::string> preTokenize(const std::string& text) const;
    const std::string& file() const { return m_file; }

private:
    struct Added {
        std::string content;
        bool special = true;
    };
    struct Merge {
        int rank = 0;
        std::int64_t merged = 0;
    };
    struct PairHash {
        std::size_t operator()(const std::pair<std::int64_t, std::int64_t>& p) const noexcept {
            return std::hash<std::int64_t>()(p.first * 1000003 + p.second);
        }
    };

    // Appends the ids of one plain-text segment (no added tokens in it); `spans` gets offsets relative to
    // the segment's normalised text when not null.
    void encodePlain(const std::string& text, std::vector<std::int64_t>& ids,
                     std::vector<std::pair<std::size_t, std::size_t>>* spans) const;
    std::vector<std::int64_t> bpeWord(const std::string& word) const;
    std::string normalize(const std::string& text) const;

    // The pre-tokenizer's split regex, recognised by its pattern and implemented by hand (bpe_tokenizer.cpp).
    enum class SplitRule { Qwen2, Gpt2 };

    std::string m_file;
    bool m_nfc = false;
    SplitRule m_split = SplitRule::Qwen2;
    int m_maxDigits = 1;  // Qwen2: \p{N}; Llama-3 style patterns: \p{N}{1,3}
    bool m_addPrefixSpace = false;
    bool m_ignoreMerges = false;
    std::unordered_map<std::string, std::int64_t> m_vocab;
    std::unordered_map<std::int64_t, std::string> m_pieces;
    std::unordered_map<std::pair<std::int64_t, std::int64_t>, Merge, PairHash> m_merges;
    std::map<std::int64_t, Added> m_added;
    std::map<std::string, std::int64_t> m_addedByContent;
    std::int64_t m_vocabSize = 0;
    std::int64_t m_eos = -1;
    std::int64_t m_pad = -1;

    mutable std::mutex m_cacheMutex;
    mutable std::unordered_map<std::string, std::vector<std::int64_t>> m_cache;
};

}  // namespace sdrpn::text
