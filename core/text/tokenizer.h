// Tokenizers: text <-> token ids for the language models (mllm_reference.md §8).
//
//   auto tok = loadTokenizer("/models/llava-1.5-7b-hf");       // tokenizer.model (+ added tokens)
//   std::vector<std::int64_t> ids = tok->encode("What is written on the sign?");   // no BOS
//   std::string text = tok->decode(ids);
//
//   TextStream stream(*tok);                                   // streaming generation
//   for (auto id : generated) std::cout << stream.push(id);
//   std::cout << stream.finish();
//
// A loaded Tokenizer is immutable and its const methods may be called from any thread. Errors throw
// sdrpn::Error naming the file, id or piece at fault.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sdrpn::text {

// One token of an encoding and the byte range of the input text it stands for. Ranges are contiguous
// and cover the text; SentencePiece's dummy-prefix space is not part of the text, so the first token of
// a chunk that starts with "▁" begins at 0 all the same.
struct TokenSpan {
    std::int64_t id = 0;
    std::size_t begin = 0;
    std::size_t end = 0;
};

class Tokenizer {
public:
    virtual ~Tokenizer() = default;

    // Ids of `text`, without BOS or EOS. `text` is plain text: added tokens such as "<image>" are not
    // recognised in it (buildPromptIds() splits at "<image>" itself).
    virtual std::vector<std::int64_t> encode(const std::string& text) const = 0;
    // encode() plus where each token came from in `text`.
    virtual std::vector<TokenSpan> encodeWithOffsets(const std::string& text) const;
    // Text of `ids`. Special tokens (BOS, EOS, pad, <image>, ...) produce nothing; incomplete UTF-8 byte
    // sequences become U+FFFD. Throws for an id outside [0, vocabSize()).
    virtual std::string decode(const std::vector<std::int64_t>& ids) const = 0;

    // The vocabulary's spelling of one token ("▁the", "<0x0A>", "<s>", "<image>"). Throws when out of range.
    virtual std::string idToPiece(std::int64_t id) const = 0;
    // Id of an exact piece, or -1 when the vocabulary has no such piece.
    virtual std::int64_t pieceToId(const std::string& piece) const = 0;
    virtual bool isSpecial(std::int64_t id) const = 0;

    virtual std::int64_t bosId() const = 0;  // -1 when the model has none
    virtual std::int64_t eosId() const = 0;
    virtual std::int64_t padId() const = 0;  // -1 when none
    // Ids run 0 .. vocabSize()-1, added tokens included.
    virtual std::int64_t vocabSize() const = 0;
};

// A SentencePiece `tokenizer.model` (LLaMA / Vicuna), plus tokens the model adds after the SentencePiece
// vocabulary (llava-hf: "<image>" = 32000, "<pad>" = 32001).
class SentencePieceTokenizer final : public Tokenizer {
public:
    // Loads `tokenizer.model`. Throws sdrpn::Error naming the file (missing, not a model) or the plugin.
    explicit SentencePieceTokenizer(const std::string& modelFile);
    ~SentencePieceTokenizer() override;
    SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
    SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

    // Setup, before the tokenizer is shared between threads. `id` must be >= spmVocabSize() and unused.
    void addToken(const std::string& content, std::int64_t id, bool special = true);
    void setPadId(std::int64_t id);  // -1: none

    std::vector<std::int64_t> encode(const std::string& text) const override;
    std::vector<TokenSpan> encodeWithOffsets(const std::string& text) const override;
    std::string decode(const std::vector<std::int64_t>& ids) const override;
    std::string idToPiece(std::int64_t id) const override;
    std::int64_t pieceToId(const std::string& piece) const override;
    bool isSpecial(std::int64_t id) const override;
    std::int64_t bosId() const override { return m_bos; }
    std::int64_t eosId() const override { return m_eos; }
    std::int64_t padId() const override { return m_pad; }
    std::int64_t vocabSize() const override { return m_vocabSize; }

    std::int64_t unkId() const { return m_unk; }
    std::int64_t spmVocabSize() const { return m_spmVocabSize; }  // without added tokens
    bool isByte(std::int64_t id) const;                           // "<0x0A>"-style byte-fallback piece
    const std::string& modelFile() const { return m_modelFile; }

private:
    struct Added {
        std::string content;
        bool special = true;
    };
    std::string spmDecode(const std::vector<std::int64_t>& ids) const;

    void* m_handle = nullptr;  // sdrpn_spm*, owned
    std::string m_modelFile;
    std::int64_t m_spmVocabSize = 0;
    std::int64_t m_vocabSize = 0;
    std::int64_t m_bos = -1, m_eos = -1, m_pad = -1, m_unk = -1;
    std::map<std::int64_t, Added> m_added;
    std::map<std::string, std::int64_t> m_addedByContent;
};

// The tokenizer of a model folder: `tokenizer.model`, with added tokens from `added_tokens.json` or
// `tokenizer_config.json` ("added_tokens_decoder") and the pad token from `tokenizer_config.json` when
// those files exist. A folder with `tokenizer.json` and no `tokenizer.model` (Qwen2.5-VL) gives a
// byte-level BpeTokenizer (bpe_tokenizer.h), with eos and pad from `tokenizer_config.json` when given.
// `modelDir` may also name a `.model` or a `tokenizer.json` file. Throws sdrpn::Error naming the folder
// when it holds no tokenizer this build reads.
std::shared_ptr<Tokenizer> loadTokenizer(const std::string& modelDir);

// SentencePiece training options; the defaults give a LLaMA-style tokenizer (BPE, byte fallback, split
// digits, identity normalisation, whitespace kept, <unk>=0 <s>=1 </s>=2, no pad).
struct SentencePieceTrainOptions {
    std::string modelType = "bpe";
    double characterCoverage = 1.0;
    bool byteFallback = true;
    bool splitDigits = true;
    bool addDummyPrefix = true;
    bool removeExtraWhitespaces = false;
    bool allowWhitespaceOnlyPieces = true;
    std::string normalization = "identity";
    int unkId = 0;
    int bosId = 1;
    int eosId = 2;
    int padId = -1;
    std::vector<std::string> userDefinedSymbols;
    int numThreads = 1;
    std::int64_t inputSentenceSize = 0;  // sentences sampled from the corpus; 0 = all
    int maxSentenceLength = 4192;        // bytes; longer lines are skipped
    bool quiet = true;                   // silence SentencePiece's log on stderr
    std::map<std::string, std::string>
        extra;  // any other trainer flag, e.g. {"seed_sentencepiece_size", "..."}
};

// Trains a SentencePiece model on `corpusFile` (UTF-8, one sentence per line) and writes
// `<modelPrefix>.model` and `<modelPrefix>.vocab`. Throws sdrpn::Error naming the corpus (missing, too
// small for `vocabSize`, ...). Calls are serialised (SentencePiece's trainer has global state).
void trainSentencePiece(const std::string& corpusFile, const std::string& modelPrefix, int vocabSize,
                        const SentencePieceTrainOptions& options = {});

// Turns generated ids into text as they arrive, emitting only complete UTF-8 text: a character whose
// bytes are split over several byte-fallback tokens comes out once all its bytes are there.
// Not thread-safe; one per generation.
class TextStream {
public:
    explicit TextStream(const Tokenizer& tokenizer) : m_tokenizer(&tokenizer) {}

    // Appends one id; returns the text that became final ("" when none did).
    std::string push(std::int64_t id);
    // Returns what is still held back (incomplete characters come out as U+FFFD). Later pushes continue.
    std::string finish();

    const std::string& text() const { return m_emitted; }  // everything returned so far
    const std::vector<std::int64_t>& ids() const { return m_ids; }

private:
    const Tokenizer* m_tokenizer;
    std::vector<std::int64_t> m_ids;
    std::string m_emitted;
};

}  // namespace sdrpn::text
