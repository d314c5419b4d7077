#include "core/text/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "core/text/bpe_tokenizer.h"
#include "core/text/spm_library.h"

namespace sdrpn::text {
namespace {

namespace fs = std::filesystem;
using detail::spmApi;

const std::string kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space
const std::string kReplacement = "\xEF\xBF\xBD";

sdrpn_spm* handleOf(void* h) {
    return static_cast<sdrpn_spm*>(h);
}

std::string lastPluginError() {
    const char* e = spmApi().lastError();
    std::string message = e && *e ? e : "unknown error";
    if (!spmApi().deepBind) {
        message +=
            " (AddressSanitizer build: the SentencePiece plugin is loaded without RTLD_DEEPBIND, so it "
            "cannot run next to LibTorch's protobuf)";
    }
    return message;
}

std::string replaceAll(std::string s, const std::string& from, const std::string& to) {
    for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
        s.replace(pos, from.size(), to);
    }
    return s;
}

// Length of `text` without a trailing incomplete UTF-8 sequence.
std::size_t completeUtf8Prefix(const std::string& text) {
    const std::size_t n = text.size();
    std::size_t i = n;
    int continuation = 0;
    while (i > 0 && continuation < 3 && (static_cast<unsigned char>(text[i - 1]) & 0xC0) == 0x80) {
        --i;
        ++continuation;
    }
    if (i == 0) return n;
    const auto lead = static_cast<unsigned char>(text[i - 1]);
    int need = 0;
    if ((lead & 0x80) == 0) return n;
    if ((lead & 0xE0) == 0xC0)
        need = 1;
    else if ((lead & 0xF0) == 0xE0)
        need = 2;
    else if ((lead & 0xF8) == 0xF0)
        need = 3;
    else
        return n;  // not a lead byte: invalid, nothing to wait for
    return continuation < need ? i - 1 : n;
}

nlohmann::json readJson(const fs::path& path) {
    std::ifstream in(path);
    if (!in) throw Error("cannot read " + path.string());
    try {
        return nlohmann::json::parse(in);
    } catch (const std::exception& e) {
        throw Error(path.string() + ": not valid JSON (" + e.what() + ")");
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------- Tokenizer

std::vector<TokenSpan> Tokenizer::encodeWithOffsets(const std::string& text) const {
    // Generic fallback: the text of each prefix of the ids. Exact for tokenizers whose decode() gives
    // back the input byte for byte (byte-level BPE); overridden where it is not.
    const auto ids = encode(text);
    std::vector<TokenSpan> spans;
    spans.reserve(ids.size());
    std::size_t prev = 0;
    std::vector<std::int64_t> prefix;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        prefix.push_back(ids[i]);
        std::size_t end = i + 1 == ids.size() ? text.size() : std::min(decode(prefix).size(), text.size());
        end = std::max(end, prev);
        spans.push_back({ids[i], prev, end});
        prev = end;
    }
    return spans;
}

// ------------------------------------------------------------------------------ SentencePieceTokenizer

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& modelFile) : m_modelFile(modelFile) {
    std::error_code ec;
    if (!fs::is_regular_file(modelFile, ec)) throw Error("tokenizer model not found: " + modelFile);
    const auto& api = spmApi();
    sdrpn_spm* h = api.load(modelFile.c_str());
    if (!h) throw Error("cannot load the SentencePiece model " + modelFile + ": " + lastPluginError());
    m_handle = h;
    m_spmVocabSize = api.vocabSize(h);
    m_vocabSize = m_spmVocabSize;
    m_bos = api.bosId(h);
    m_eos = api.eosId(h);
    m_pad = api.padId(h);
    m_unk = api.unkId(h);
}

SentencePieceTokenizer::~SentencePieceTokenizer() {
    if (m_handle) spmApi().free(handleOf(m_handle));
}

void SentencePieceTokenizer::addToken(const std::string& content, std::int64_t id, bool special) {
    if (id < m_spmVocabSize) {
        throw Error("added token '" + content + "' has id " + std::to_string(id) +
                    ", inside the SentencePiece vocabulary of " + std::to_string(m_spmVocabSize) + " (" +
                    m_modelFile + ")");
    }
    if (m_added.count(id) && m_added[id].content != content) {
        throw Error("added token id " + std::to_string(id) + " is both '" + m_added[id].content + "' and '" +
                    content + "' (" + m_modelFile + ")");
    }
    m_added[id] = {content, special};
    m_addedByContent[content] = id;
    m_vocabSize = std::max(m_vocabSize, id + 1);
}

void SentencePieceTokenizer::setPadId(std::int64_t id) {
    if (id >= m_vocabSize || id < -1) {
        throw Error("pad id " + std::to_string(id) + " is outside the vocabulary of " +
                    std::to_string(m_vocabSize) + " (" + m_modelFile + ")");
    }
    m_pad = id;
}

std::vector<std::int64_t> SentencePieceTokenizer::encode(const std::string& text) const {
    const auto& api = spmApi();
    std::vector<std::int32_t> buf(text.size() + 8);
    std::int64_t n = api.encode(handleOf(m_handle), text.data(), text.size(), buf.data(), buf.size());
    if (n > static_cast<std::int64_t>(buf.size())) {
        buf.resize(static_cast<std::size_t>(n));
        n = api.encode(handleOf(m_handle), text.data(), text.size(), buf.data(), buf.size());
    }
    if (n < 0)
        throw Error("SentencePiece could not encode the text (" + m_modelFile + "): " + lastPluginError());
    return std::vector<std::int64_t>(buf.begin(), buf.begin() + n);
}

std::vector<TokenSpan> SentencePieceTokenizer::encodeWithOffsets(const std::string& text) const {
    const auto ids = encode(text);
    // Each piece's surface ("▁" read as a space, a byte piece as its byte) concatenates to the normalised
    // input: with LLaMA's identity normalisation that is the text itself, behind the dummy-prefix space.
    std::vector<std::string> surfaces(ids.size());
    std::vector<bool> known(ids.size(), true);
    std::string joined;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const std::string piece = idToPiece(ids[i]);
        if (isByte(ids[i]) && piece.size() == 6) {
            surfaces[i] = std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
        } else if (ids[i] == m_unk || isSpecial(ids[i])) {
            known[i] = false;
        } else {
            surfaces[i] = replaceAll(piece, kSpace, " ");
        }
        joined += surfaces[i];
    }
    const bool allKnown = std::all_of(known.begin(), known.end(), [](bool k) { return k; });
    std::size_t shift = 0;
    if (allKnown && joined == " " + text) {
        shift = 1;
    } else if (!(allKnown && joined == text)) {
        // Unknown pieces or a normaliser that rewrites the text: align what can be aligned.
        shift = (!text.empty() && text[0] != ' ' && !joined.empty() && joined[0] == ' ') ? 1 : 0;
    }
    const std::string expected = std::string(shift, ' ') + text;
    std::vector<TokenSpan> spans(ids.size());
    std::size_t pos = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        std::size_t begin = pos, end = pos;
        if (known[i]) {
            if (expected.compare(pos, surfaces[i].size(), surfaces[i]) == 0) {
                end = pos + surfaces[i].size();
            } else {
                const auto found = expected.find(surfaces[i], pos);
                end = found == std::string::npos ? pos : found + surfaces[i].size();
            }
        } else {
            // Runs until the next token that can be found.
            end = expected.size();
            for (std::size_t j = i + 1; j < ids.size(); ++j) {
                if (!known[j] || surfaces[j].empty()) continue;
                const auto found = expected.find(surfaces[j], pos);
                if (found != std::string::npos) end = found;
                break;
            }
        }
        pos = end;
        const auto toText = [&](std::size_t p) { return p >= shift ? std::min(p - shift, text.size()) : 0; };
        spans[i] = {ids[i], toText(begin), toText(end)};
    }
    if (!spans.empty()) spans.back().end = std::max(spans.back().end, text.size());
    return spans;
}

std::string SentencePieceTokenizer::spmDecode(const std::vector<std::int64_t>& ids) const {
    if (ids.empty()) return {};
    const auto& api = spmApi();
    std::vector<std::int32_t> in(ids.begin(), ids.end());
    std::string out(ids.size() * 8 + 16, '\0');
    std::int64_t n = api.decode(handleOf(m_handle), in.data(), in.size(), out.data(), out.size());
    if (n > static_cast<std::int64_t>(out.size())) {
        out.resize(static_cast<std::size_t>(n));
        n = api.decode(handleOf(m_handle), in.data(), in.size(), out.data(), out.size());
    }
    if (n < 0) throw Error("SentencePiece could not decode (" + m_modelFile + "): " + lastPluginError());
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<std::int64_t>& ids) const {
    std::string out;
    std::vector<std::int64_t> run;
    for (const auto id : ids) {
        if (id < 0 || id >= m_vocabSize) {
            throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " +
                        std::to_string(m_vocabSize) + " (" + m_modelFile + ")");
        }
        if (id < m_spmVocabSize) {
            run.push_back(id);
            continue;
        }
        out += spmDecode(run);
        run.clear();
        const auto it = m_added.find(id);
        if (it != m_added.end() && !it->second.special) out += it->second.content;
    }
    out += spmDecode(run);
    return out;
}

std::string SentencePieceTokenizer::idToPiece(std::int64_t id) const {
    if (id >= m_spmVocabSize && id < m_vocabSize) {
        const auto it = m_added.find(id);
        return it != m_added.end() ? it->second.content : std::string();
    }
    if (id < 0 || id >= m_vocabSize) {
        throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " +
                    std::to_string(m_vocabSize) + " (" + m_modelFile + ")");
    }
    const auto& api = spmApi();
    std::string out(64, '\0');
    std::int64_t n = api.idToPiece(handleOf(m_handle), static_cast<std::int32_t>(id), out.data(), out.size());
    if (n > static_cast<std::int64_t>(out.size())) {
        out.resize(static_cast<std::size_t>(n));
        n = api.idToPiece(handleOf(m_handle), static_cast<std::int32_t>(id), out.data(), out.size());
    }
    if (n < 0) throw Error("no piece for token id " + std::to_string(id) + " (" + m_modelFile + ")");
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::int64_t SentencePieceTokenizer::pieceToId(const std::string& piece) const {
    const auto it = m_addedByContent.find(piece);
    if (it != m_addedByContent.end()) return it->second;
    const std::int64_t id = spmApi().pieceToId(handleOf(m_handle), piece.data(), piece.size());
    if (id < 0) return -1;
    if (id == m_unk && piece != idToPiece(m_unk)) return -1;
    return id;
}

bool SentencePieceTokenizer::isSpecial(std::int64_t id) const {
    if (id >= m_spmVocabSize) {
        const auto it = m_added.find(id);
        return it == m_added.end() || it->second.special;
    }
    if (id < 0) return false;
    const std::int32_t kind = spmApi().pieceKind(handleOf(m_handle), static_cast<std::int32_t>(id));
    return kind >= 0 && (kind & SDRPN_SPM_CONTROL) != 0;
}

bool SentencePieceTokenizer::isByte(std::int64_t id) const {
    if (id < 0 || id >= m_spmVocabSize) return false;
    const std::int32_t kind = spmApi().pieceKind(handleOf(m_handle), static_cast<std::int32_t>(id));
    return kind >= 0 && (kind & SDRPN_SPM_BYTE) != 0;
}

// -------------------------------------------------------------------------------------- loadTokenizer

std::shared_ptr<Tokenizer> loadTokenizer(const std::string& modelDir) {
    const fs::path dir(modelDir);
    std::error_code ec;
    if (fs::is_regular_file(dir, ec) && dir.extension() == ".model") {
        return std::make_shared<SentencePieceTokenizer>(dir.string());
    }
    if (fs::is_regular_file(dir, ec) && dir.extension() == ".json") {
        return std::make_shared<BpeTokenizer>(dir.string());
    }
    const fs::path model = dir / "tokenizer.model";
    if (!fs::is_regular_file(model, ec)) {
        if (fs::is_regular_file(dir / "tokenizer.json", ec)) {
            // Byte-level BPE (Qwen2 / Qwen2.5-VL): eos and pad from tokenizer_config.json when given.
            auto tok = std::make_shared<BpeTokenizer>((dir / "tokenizer.json").string());
            const fs::path config = dir / "tokenizer_config.json";
            if (fs::is_regular_file(config, ec)) {
                const auto j = readJson(config);
                auto idOf = [&](const char* key) -> std::int64_t {
                    if (!j.is_object() || !j.contains(key) || j[key].is_null()) return -2;
                    const auto& t = j[key];
                    const std::string content =
                        t.is_string() ? t.get<std::string>() : (t.is_object() ? t.value("content", "") : "");
                    return content.empty() ? -2 : tok->pieceToId(content);
                };
                if (const auto eos = idOf("eos_token"); eos >= 0) tok->setEosId(eos);
                if (const auto pad = idOf("pad_token"); pad >= 0) tok->setPadId(pad);
            }
            return tok;
        }
        throw Error("no tokenizer in " + modelDir + " (expected tokenizer.model or tokenizer.json)");
    }
    auto tok = std::make_shared<SentencePieceTokenizer>(model.string());

    const fs::path added = dir / "added_tokens.json";
    if (fs::is_regular_file(added, ec)) {
        const auto j = readJson(added);
        if (!j.is_object()) throw Error(added.string() + ": expected an object of token -> id");
        for (const auto& [content, id] : j.items()) {
            if (!id.is_number_integer())
                throw Error(added.string() + ": id of '" + content + "' is not an integer");
            if (id.get<std::int64_t>() >= tok->spmVocabSize())
                tok->addToken(content, id.get<std::int64_t>(), true);
        }
    }
    const fs::path config = dir / "tokenizer_config.json";
    if (fs::is_regular_file(config, ec)) {
        const auto j = readJson(config);
        if (j.contains("added_tokens_decoder") && j["added_tokens_decoder"].is_object()) {
            for (const auto& [key, entry] : j["added_tokens_decoder"].items()) {
                std::int64_t id = 0;
                try {
                    id = std::stoll(key);
                } catch (const std::exception&) {
                    throw Error(config.string() + ": added_tokens_decoder key '" + key + "' is not an id");
                }
                if (id < tok->spmVocabSize() || !entry.is_object() || !entry.contains("content")) continue;
                tok->addToken(entry["content"].get<std::string>(), id, entry.value("special", true));
            }
        }
        if (j.contains("pad_token") && !j["pad_token"].is_null()) {
            const auto& p = j["pad_token"];
            const std::string content =
                p.is_string() ? p.get<std::string>() : (p.is_object() ? p.value("content", "") : "");
            const std::int64_t id = content.empty() ? -1 : tok->pieceToId(content);
            if (id >= 0) tok->setPadId(id);
        }
    }
    return tok;
}

// ---------------------------------------------------------------------------------- trainSentencePiece

void trainSentencePiece(const std::string& corpusFile, const std::string& modelPrefix, int vocabSize,
                        const SentencePieceTrainOptions& options) {
    std::error_code ec;
    if (!fs::is_regular_file(corpusFile, ec)) throw Error("training corpus not found: " + corpusFile);
    if (vocabSize <= 0) throw Error("vocabulary size must be positive, got " + std::to_string(vocabSize));
    const auto flag = [](bool b) { return std::string(b ? "true" : "false"); };
    std::map<std::string, std::string> kw = {
        {"input", corpusFile},
        {"model_prefix", modelPrefix},
        {"vocab_size", std::to_string(vocabSize)},
        {"model_type", options.modelType},
        {"character_coverage", std::to_string(options.characterCoverage)},
        {"byte_fallback", flag(options.byteFallback)},
        {"split_digits", flag(options.splitDigits)},
        {"add_dummy_prefix", flag(options.addDummyPrefix)},
        {"remove_extra_whitespaces", flag(options.removeExtraWhitespaces)},
        {"allow_whitespace_only_pieces", flag(options.allowWhitespaceOnlyPieces)},
        {"normalization_rule_name", options.normalization},
        {"unk_id", std::to_string(options.unkId)},
        {"bos_id", std::to_string(options.bosId)},
        {"eos_id", std::to_string(options.eosId)},
        {"pad_id", std::to_string(options.padId)},
        {"num_threads", std::to_string(options.numThreads)},
        {"max_sentence_length", std::to_string(options.maxSentenceLength)},
    };
    if (options.inputSentenceSize > 0) {
        kw["input_sentence_size"] = std::to_string(options.inputSentenceSize);
        kw["shuffle_input_sentence"] = "true";
    }
    if (!options.userDefinedSymbols.empty()) {
        std::string joined;
        for (const auto& s : options.userDefinedSymbols) joined += (joined.empty() ? "" : ",") + s;
        kw["user_defined_symbols"] = joined;
    }
    if (options.quiet) kw["minloglevel"] = "2";
    for (const auto& [k, v] : options.extra) kw[k] = v;

    std::vector<const char*> keys, values;
    for (const auto& [k, v] : kw) {
        keys.push_back(k.c_str());
        values.push_back(v.c_str());
    }
    const auto& api = spmApi();
    // SentencePiece's trainer keeps global state (flags, log level): one training at a time.
    static std::mutex trainMutex;
    std::lock_guard<std::mutex> lock(trainMutex);
    if (api.train(keys.data(), values.data(), keys.size()) != 0) {
        throw Error("SentencePiece training on " + corpusFile + " (vocabulary " + std::to_string(vocabSize) +
                    ", model " + modelPrefix + ") failed: " + lastPluginError());
    }
}

// ----------------------------------------------------------------------------------------- TextStream

std::string TextStream::push(std::int64_t id) {
    m_ids.push_back(id);
    std::string full = m_tokenizer->decode(m_ids);
    // Hold back what may still change: an unfinished UTF-8 sequence, or replacement characters that stand
    // for bytes of a character whose remaining bytes have not been generated yet.
    full.resize(completeUtf8Prefix(full));
    while (full.size() >= kReplacement.size() &&
           full.compare(full.size() - kReplacement.size(), kReplacement.size(), kReplacement) == 0) {
        full.resize(full.size() - kReplacement.size());
    }
    if (full.size() <= m_emitted.size()) return {};
    std::string fresh = full.substr(m_emitted.size());
    m_emitted += fresh;
    return fresh;
}

std::string TextStream::finish() {
    const std::string full = m_tokenizer->decode(m_ids);
    if (full.size() <= m_emitted.size()) return {};
    std::string fresh = full.substr(m_emitted.size());
    m_emitted += fresh;
    return fresh;
}

}  // namespace sdrpn::text
