#include "core/text/bpe_tokenizer.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include "core/result.h"

namespace sdrpn::text {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// mllm_reference.md §9: Qwen2's pre-tokenizer split regex, and the same with runs of up to three digits
// (Llama-3 style). GPT-2's regex is what ByteLevel(use_regex=true) applies.
const std::string kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const std::string kDigits3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const std::string kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

constexpr std::size_t kMaxCachedWords = 50000;

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes are moved
// to U+0100 and up, in byte order.
struct ByteAlphabet {
    std::array<std::string, 256> byteToUtf8;
    std::unordered_map<std::uint32_t, std::uint8_t> codePointToByte;

    ByteAlphabet() {
        std::uint32_t next = 256;
        for (std::uint32_t b = 0; b < 256; ++b) {
            const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            const std::uint32_t cp = printable ? b : next++;
            char buf[4];
            std::int32_t len = 0;
            U8_APPEND_UNSAFE(buf, len, cp);
            byteToUtf8[b] = std::string(buf, static_cast<std::size_t>(len));
            codePointToByte[cp] = static_cast<std::uint8_t>(b);
        }
    }
};

const ByteAlphabet& byteAlphabet() {
    static const ByteAlphabet alphabet;
    return alphabet;
}

// One code point of the input and where its bytes are. Invalid UTF-8 bytes come one at a time as U+FFFD,
// which classifies them as "other"; their bytes still go through the byte mapping unchanged.
struct CodePoint {
    UChar32 cp = 0;
    std::size_t begin = 0;
    std::size_t end = 0;
};

std::vector<CodePoint> codePoints(const std::string& text) {
    std::vector<CodePoint> out;
    out.reserve(text.size());
    const auto* s = reinterpret_cast<const std::uint8_t*>(text.data());
    const auto n = static_cast<std::int32_t>(text.size());
    std::int32_t i = 0;
    while (i < n) {
        const std::int32_t start = i;
        UChar32 c = 0;
        U8_NEXT(s, i, n, c);
        if (c < 0) c = 0xFFFD;
        out.push_back({c, static_cast<std::size_t>(start), static_cast<std::size_t>(i)});
    }
    return out;
}

// The classes of the regexes: \p{L}, \p{N} (general categories) and \s (the White_Space property, which
// is what Oniguruma and Rust's regex mean by \s in Unicode mode).
bool isLetter(UChar32 c) {
    return (U_GET_GC_MASK(c) & U_GC_L_MASK) != 0;
}
bool isNumber(UChar32 c) {
    return (U_GET_GC_MASK(c) & U_GC_N_MASK) != 0;
}
bool isSpace(UChar32 c) {
    return u_hasBinaryProperty(c, UCHAR_WHITE_SPACE) != 0;
}
bool isOther(UChar32 c) {  // [^\s\p{L}\p{N}]
    return !isSpace(c) && !isLetter(c) && !isNumber(c);
}
bool isNewline(UChar32 c) {
    return c == '\r' || c == '\n';
}

// Case-insensitive ASCII letter compare, with U+017F (long s), which simple case folding maps to 's'.
bool foldEquals(UChar32 c, char lower) {
    if (c == lower || c == lower - 'a' + 'A') return true;
    return lower == 's' && c == 0x017F;
}

// Length in code points of a contraction ('s 't 're 've 'm 'll 'd) at `i`, or 0.
std::size_t contraction(const std::vector<CodePoint>& cps, std::size_t i, bool ignoreCase) {
    const std::size_t n = cps.size();
    if (cps[i].cp != '\'' || i + 1 >= n) return 0;
    auto eq = [&](std::size_t k, char lower) {
        if (k >= n) return false;
        return ignoreCase ? foldEquals(cps[k].cp, lower) : cps[k].cp == lower;
    };
    // Alternatives in the order of the pattern; none is a prefix of an earlier one.
    if (eq(i + 1, 's') || eq(i + 1, 't')) return 2;
    if ((eq(i + 1, 'r') || eq(i + 1, 'v')) && eq(i + 2, 'e')) return 3;
    if (eq(i + 1, 'm')) return 2;
    if (eq(i + 1, 'l') && eq(i + 2, 'l')) return 3;
    if (eq(i + 1, 'd')) return 2;
    return 0;
}

// End of the run of code points from `i` for which `pred` holds.
template <class Pred>
std::size_t runEnd(const std::vector<CodePoint>& cps, std::size_t i, Pred pred) {
    while (i < cps.size() && pred(cps[i].cp)) ++i;
    return i;
}

// Whitespace alternatives shared by both regexes: \s+(?!\S) then \s+. The lookahead makes a run of
// spaces before a word give up its last space, which the word then takes.
std::size_t matchSpaces(const std::vector<CodePoint>& cps, std::size_t i) {
    const std::size_t j = runEnd(cps, i, isSpace);
    if (j == i) return 0;
    if (j == cps.size()) return j - i;  // \s+(?!\S) at the end of the text
    if (j - 1 > i) return j - 1 - i;    // backtracked by one: the next code point is a space
    return j - i;                       // \s+
}

// Qwen2's regex at `i`, alternative by alternative (leftmost-first): length of the match in code points.
std::size_t matchQwen2(const std::vector<CodePoint>& cps, std::size_t i, int maxDigits) {
    const std::size_t n = cps.size();
    const UChar32 c = cps[i].cp;
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (std::size_t len = contraction(cps, i, true)) return len;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!isNewline(c) && !isLetter(c) && !isNumber(c) && i + 1 < n && isLetter(cps[i + 1].cp))
        return runEnd(cps, i + 1, isLetter) - i;
    if (isLetter(c)) return runEnd(cps, i, isLetter) - i;
    // \p{N} or \p{N}{1,3}
    if (isNumber(c)) {
        std::size_t j = i;
        while (j < n && j - i < static_cast<std::size_t>(maxDigits) && isNumber(cps[j].cp)) ++j;
        return j - i;
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    {
        std::size_t j = i;
        if (c == ' ' && i + 1 < n && isOther(cps[i + 1].cp)) ++j;
        if (isOther(cps[j].cp)) {
            j = runEnd(cps, j, isOther);
            j = runEnd(cps, j, isNewline);
            return j - i;
        }
    }
    // \s*[\r\n]+ : greedy \s* backs off to the last line break of the whitespace run.
    {
        const std::size_t j = runEnd(cps, i, isSpace);
        for (std::size_t k = j; k > i; --k) {
            if (isNewline(cps[k - 1].cp)) return k - i;
        }
    }
    return matchSpaces(cps, i);
}

// GPT-2's regex at `i`.
std::size_t matchGpt2(const std::vector<CodePoint>& cps, std::size_t i) {
    const std::size_t n = cps.size();
    if (std::size_t len = contraction(cps, i, false)) return len;
    const std::size_t j = cps[i].cp == ' ' && i + 1 < n ? i + 1 : i;
    for (auto pred : {isLetter, isNumber, isOther}) {
        if (pred(cps[j].cp)) return runEnd(cps, j, pred) - i;
    }
    return matchSpaces(cps, i);
}

json readJson(const fs::path& path) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) throw Error("tokenizer file not found: " + path.string());
    std::ifstream in(path);
    if (!in) throw Error("cannot read " + path.string());
    try {
        return json::parse(in);
    } catch (const std::exception& e) {
        throw Error(path.string() + ": not valid JSON (" + e.what() + ")");
    }
}

std::string typeOf(const json& j) {
    if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return {};
    return j["type"].get<std::string>();
}

}  // namespace

// ------------------------------------------------------------------------------------------ loading

BpeTokenizer::BpeTokenizer(const std::string& tokenizerJson) : m_file(tokenizerJson) {
    const json root = readJson(tokenizerJson);
    auto fail = [&](const std::string& key, const std::string& what) {
        return Error(m_file + ": " + key + ": " + what);
    };
    if (!root.is_object()) throw fail("(top level)", "expected an object");

    // model
    if (!root.contains("model") || !root["model"].is_object())
        throw fail("model", "missing or not an object");
    const json& model = root["model"];
    const std::string modelType = model.contains("type") ? typeOf(model) : "BPE";  // old files omit it
    if (modelType != "BPE")
        throw fail("model.type", "unsupported model type '" + modelType + "' (this reader handles BPE)");
    if (model.contains("byte_fallback") && model["byte_fallback"].is_boolean() &&
        model["byte_fallback"].get<bool>())
        throw fail("model.byte_fallback", "byte fallback is not supported (byte-level BPE needs none)");
    m_ignoreMerges = model.contains("ignore_merges") && model["ignore_merges"].is_boolean() &&
                     model["ignore_merges"].get<bool>();
    if (!model.contains("vocab") || !model["vocab"].is_object())
        throw fail("model.vocab", "missing or not an object of token -> id");
    for (const auto& [piece, id] : model["vocab"].items()) {
        if (!id.is_number_integer() || id.get<std::int64_t>() < 0)
            throw fail("model.vocab", "id of '" + piece + "' is not a non-negative integer");
        const auto v = id.get<std::int64_t>();
        if (m_pieces.count(v)) throw fail("model.vocab", "id " + std::to_string(v) + " is used twice");
        m_vocab[piece] = v;
        m_pieces[v] = piece;
        m_vocabSize = std::max(m_vocabSize, v + 1);
    }
    if (!model.contains("merges") || !model["merges"].is_array())
        throw fail("model.merges", "missing or not an array");
    const auto& merges = model["merges"];
    m_merges.reserve(merges.size());
    for (std::size_t r = 0; r < merges.size(); ++r) {
        const json& m = merges[r];
        std::string a, b;
        if (m.is_string()) {  // "a b"
            const auto s = m.get<std::string>();
            const auto space = s.find(' ', 1);
            if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
                throw fail("model.merges[" + std::to_string(r) + "]", "'" + s + "' is not two tokens");
            a = s.substr(0, space);
            b = s.substr(space + 1);
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {  // ["a", "b"]
            a = m[0].get<std::string>();
            b = m[1].get<std::string>();
        } else {
            throw fail("model.merges[" + std::to_string(r) + "]", "expected \"a b\" or [\"a\", \"b\"]");
        }
        const auto ia = m_vocab.find(a), ib = m_vocab.find(b), iab = m_vocab.find(a + b);
        for (const auto& [it, tok] : {std::pair{ia, a}, std::pair{ib, b}, std::pair{iab, a + b}}) {
            if (it == m_vocab.end())
                throw fail("model.merges[" + std::to_string(r) + "]",
                           "token '" + tok + "' is not in model.vocab");
        }
        // The first occurrence of a pair keeps its rank, as in the Hugging Face reader.
        m_merges.emplace(std::pair{ia->second, ib->second}, Merge{static_cast<int>(r), iab->second});
    }

    // added_tokens
    if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
        if (!root["added_tokens"].is_array()) throw fail("added_tokens", "not an array");
        std::size_t k = 0;
        for (const auto& t : root["added_tokens"]) {
            const std::string key = "added_tokens[" + std::to_string(k++) + "]";
            if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
                !t.contains("content") || !t["content"].is_string() ||
                t["content"].get<std::string>().empty())
                throw fail(key, "expected an object with an integer id and a non-empty content");
            const auto id = t["id"].get<std::int64_t>();
            if (id < 0) throw fail(key, "negative id");
            const auto content = t["content"].get<std::string>();
            const bool special =
                t.contains("special") && t["special"].is_boolean() && t["special"].get<bool>();
            m_added[id] = {content, special};
            m_addedByContent[content] = id;
            m_vocabSize = std::max(m_vocabSize, id + 1);
        }
    }

    // normalizer: NFC, null, or a Sequence of those
    if (root.contains("normalizer") && !root["normalizer"].is_null()) {
        const json& n = root["normalizer"];
        auto take = [&](const json& one, const std::string& key) {
            const auto type = typeOf(one);
            if (type == "NFC")
                m_nfc = true;
            else
                throw fail(key, "unsupported normalizer '" + type + "' (this reader handles NFC)");
        };
        if (typeOf(n) == "Sequence") {
            if (!n.contains("normalizers") || !n["normalizers"].is_array())
                throw fail("normalizer.normalizers", "missing or not an array");
            std::size_t k = 0;
            for (const auto& one : n["normalizers"])
                take(one, "normalizer.normalizers[" + std::to_string(k++) + "]");
        } else {
            take(n, "normalizer");
        }
    }

    // pre_tokenizer: Sequence[Split(regex, Isolated), ByteLevel(use_regex=false)] or ByteLevel(use_regex)
    if (!root.contains("pre_tokenizer") || root["pre_tokenizer"].is_null())
        throw fail("pre_tokenizer", "missing (byte-level BPE needs a ByteLevel pre-tokenizer)");
    {
        const json& p = root["pre_tokenizer"];
        std::vector<std::pair<const json*, std::string>> steps;
        if (typeOf(p) == "Sequence") {
            if (!p.contains("pretokenizers") || !p["pretokenizers"].is_array())
                throw fail("pre_tokenizer.pretokenizers", "missing or not an array");
            std::size_t k = 0;
            for (const auto& one : p["pretokenizers"])
                steps.emplace_back(&one, "pre_tokenizer.pretokenizers[" + std::to_string(k++) + "]");
        } else {
            steps.emplace_back(&p, "pre_tokenizer");
        }
        bool haveSplit = false, haveByteLevel = false;
        for (const auto& [step, key] : steps) {
            const auto type = typeOf(*step);
            if (type == "Split") {
                if (haveSplit || haveByteLevel)
                    throw fail(key, "only one Split, before ByteLevel, is supported");
                const json& pattern = step->value("pattern", json());
                if (!pattern.is_object() || !pattern.contains("Regex") || !pattern["Regex"].is_string())
                    throw fail(key + ".pattern", "expected {\"Regex\": ...}");
                const auto regex = pattern["Regex"].get<std::string>();
                if (regex == kQwen2Pattern) {
                    m_split = SplitRule::Qwen2;
                    m_maxDigits = 1;
                } else if (regex == kDigits3Pattern) {
                    m_split = SplitRule::Qwen2;
                    m_maxDigits = 3;
                } else if (regex == kGpt2Pattern) {
                    m_split = SplitRule::Gpt2;
                } else {
                    throw fail(key + ".pattern.Regex", "unsupported split pattern '" + regex + "'");
                }
                if (step->value("behavior", std::string("Isolated")) != "Isolated" ||
                    step->value("invert", false))
                    throw fail(key + ".behavior", "only Isolated, not inverted, is supported");
                haveSplit = true;
            } else if (type == "ByteLevel") {
                if (haveByteLevel) throw fail(key, "ByteLevel given twice");
                const bool useRegex = step->value("use_regex", true);
                if (useRegex && haveSplit)
                    throw fail(key + ".use_regex", "a Split and a ByteLevel regex both");
                if (useRegex) m_split = SplitRule::Gpt2;
                if (!useRegex && !haveSplit) throw fail(key + ".use_regex", "false, and no Split before it");
                m_addPrefixSpace = step->value("add_prefix_space", false);
                haveByteLevel = true;
            } else {
                throw fail(key, "unsupported pre-tokenizer '" + type + "'");
            }
        }
        if (!haveByteLevel)
            throw fail("pre_tokenizer", "no ByteLevel step (this reader handles byte-level BPE)");
    }

    // decoder: ByteLevel (or absent)
    if (root.contains("decoder") && !root["decoder"].is_null() && typeOf(root["decoder"]) != "ByteLevel")
        throw fail("decoder", "unsupported decoder '" + typeOf(root["decoder"]) + "' (expected ByteLevel)");

    // Every byte must have its symbol, or some texts could not be encoded.
    for (const auto& symbol : byteAlphabet().byteToUtf8) {
        if (!m_vocab.count(symbol)) throw fail("model.vocab", "byte symbol '" + symbol + "' is missing");
    }

    // Defaults for eos (loadTokenizer() overrides them from tokenizer_config.json).
    for (const char* eos : {"<|im_end|>", "<|endoftext|>", "</s>"}) {
        if (auto it = m_addedByContent.find(eos); it != m_addedByContent.end()) {
            m_eos = it->second;
            break;
        }
    }
}

BpeTokenizer::~BpeTokenizer() = default;

void BpeTokenizer::setEosId(std::int64_t id) {
    if (id >= m_vocabSize)
        throw Error("eos id " + std::to_string(id) + " is outside the vocabulary of " + m_file);
    m_eos = id < 0 ? -1 : id;
}

void BpeTokenizer::setPadId(std::int64_t id) {
    if (id >= m_vocabSize)
        throw Error("pad id " + std::to_string(id) + " is outside the vocabulary of " + m_file);
    m_pad = id < 0 ? -1 : id;
}

// ------------------------------------------------------------------------------------------ encoding

std::string BpeTokenizer::normalize(const std::string& text) const {
    if (!m_nfc || text.empty()) return text;
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
    if (U_FAILURE(status)) throw Error(std::string("ICU NFC normaliser unavailable: ") + u_errorName(status));
    if (text.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        throw Error("text of " + std::to_string(text.size()) + " bytes is too long to normalise");
    const auto source =
        icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<std::int32_t>(text.size())));
    if (nfc->isNormalized(source, status) && U_SUCCESS(status)) {
        // Already NFC; keep the original bytes (fromUTF8 would have replaced invalid ones).
        return text;
    }
    status = U_ZERO_ERROR;
    const icu::UnicodeString normalised = nfc->normalize(source, status);
    if (U_FAILURE(status)) throw Error(std::string("NFC normalisation failed: ") + u_errorName(status));
    std::string out;
    normalised.toUTF8String(out);
    return out;
}

std::vector<std::string> BpeTokenizer::preTokenize(const std::string& text) const {
    std::string normalised = normalize(text);
    if (m_addPrefixSpace && !normalised.empty() && normalised[0] != ' ') normalised.insert(0, 1, ' ');
    const auto cps = codePoints(normalised);
    std::vector<std::string> words;
    std::size_t i = 0;
    while (i < cps.size()) {
        std::size_t len = m_split == SplitRule::Qwen2 ? matchQwen2(cps, i, m_maxDigits) : matchGpt2(cps, i);
        if (len == 0) len = 1;  // cannot happen (every code point is a letter, number, space or other)
        const std::size_t end = std::min(i + len, cps.size());
        words.push_back(normalised.substr(cps[i].begin, cps[end - 1].end - cps[i].begin));
        i = end;
    }
    return words;
}

std::vector<std::int64_t> BpeTokenizer::bpeWord(const std::string& word) const {
    {
        std::lock_guard<std::mutex> lock(m_cacheMutex);
        if (auto it = m_cache.find(word); it != m_cache.end()) return it->second;
    }
    const auto& alphabet = byteAlphabet();
    std::string mapped;
    std::vector<std::int64_t> symbols;
    symbols.reserve(word.size());
    for (const char ch : word) {
        const std::string& symbol = alphabet.byteToUtf8[static_cast<std::uint8_t>(ch)];
        mapped += symbol;
        const auto it = m_vocab.find(symbol);
        // The constructor checked that all 256 byte symbols are there; keep the check for clarity.
        if (it == m_vocab.end()) throw Error(m_file + ": byte symbol '" + symbol + "' is not in model.vocab");
        symbols.push_back(it->second);
    }
    if (m_ignoreMerges) {
        if (auto it = m_vocab.find(mapped); it != m_vocab.end()) symbols.assign(1, it->second);
    }
    // Merge the adjacent pair of lowest rank (leftmost on ties) until no pair has a merge.
    while (symbols.size() > 1) {
        int bestRank = std::numeric_limits<int>::max();
        std::size_t bestAt = 0;
        std::int64_t bestMerged = 0;
        for (std::size_t k = 0; k + 1 < symbols.size(); ++k) {
            const auto it = m_merges.find({symbols[k], symbols[k + 1]});
            if (it != m_merges.end() && it->second.rank < bestRank) {
                bestRank = it->second.rank;
                bestAt = k;
                bestMerged = it->second.merged;
            }
        }
        if (bestRank == std::numeric_limits<int>::max()) break;
        symbols[bestAt] = bestMerged;
        symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(bestAt) + 1);
    }
    std::lock_guard<std::mutex> lock(m_cacheMutex);
    if (m_cache.size() >= kMaxCachedWords) m_cache.clear();
    m_cache.emplace(word, symbols);
    return symbols;
}

void BpeTokenizer::encodePlain(const std::string& text, std::vector<std::int64_t>& ids,
                               std::vector<std::pair<std::size_t, std::size_t>>* spans) const {
    std::size_t offset = 0;
    for (const auto& word : preTokenize(text)) {
        const auto wordIds = bpeWord(word);
        std::size_t at = offset;
        for (const auto id : wordIds) {
            ids.push_back(id);
            if (spans) {
                const std::size_t len = m_pieces.count(id) ? codePoints(m_pieces.at(id)).size() : 1;
                spans->emplace_back(at, std::min(at + len, offset + word.size()));  // one symbol per byte
                at += len;
            }
        }
        offset += word.size();
    }
}

namespace {

// Splits `text` at added tokens: (begin, end, id) with id -1 for plain text between them. Leftmost
// match first, the longest added token at that position.
struct Segment {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::int64_t id = -1;
};

std::vector<Segment> splitAdded(const std::string& text, const std::map<std::string, std::int64_t>& added) {
    std::vector<Segment> out;
    std::size_t plainStart = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        std::size_t bestLen = 0;
        std::int64_t bestId = -1;
        // Candidates share the first byte; std::map keeps them together.
        for (auto it = added.lower_bound(std::string(1, text[i]));
             it != added.end() && it->first[0] == text[i]; ++it) {
            if (it->first.size() > bestLen && text.compare(i, it->first.size(), it->first) == 0) {
                bestLen = it->first.size();
                bestId = it->second;
            }
        }
        if (bestLen == 0) {
            ++i;
            continue;
        }
        if (i > plainStart) out.push_back({plainStart, i, -1});
        out.push_back({i, i + bestLen, bestId});
        i += bestLen;
        plainStart = i;
    }
    if (plainStart < text.size()) out.push_back({plainStart, text.size(), -1});
    return out;
}

}  // namespace

std::vector<std::int64_t> BpeTokenizer::encode(const std::string& text) const {
    std::vector<std::int64_t> ids;
    for (const auto& s : splitAdded(text, m_addedByContent)) {
        if (s.id >= 0)
            ids.push_back(s.id);
        else
            encodePlain(text.substr(s.begin, s.end - s.begin), ids, nullptr);
    }
    return ids;
}

std::vector<TokenSpan> BpeTokenizer::encodeWithOffsets(const std::string& text) const {
    std::vector<TokenSpan> out;
    for (const auto& s : splitAdded(text, m_addedByContent)) {
        if (s.id >= 0) {
            out.push_back({s.id, s.begin, s.end});
            continue;
        }
        std::vector<std::int64_t> ids;
        std::vector<std::pair<std::size_t, std::size_t>> spans;
        encodePlain(text.substr(s.begin, s.end - s.begin), ids, &spans);
        // Offsets are exact when NFC left the segment alone; otherwise they are clamped to it.
        const std::size_t length = s.end - s.begin;
        for (std::size_t k = 0; k < ids.size(); ++k) {
            const std::size_t begin = out.empty() ? 0 : std::max(out.back().end, s.begin);
            std::size_t end = s.begin + std::min(spans[k].second, length);
            if (k + 1 == ids.size()) end = s.end;
            out.push_back({ids[k], begin, std::max(begin, end)});
        }
    }
    return out;
}

// ------------------------------------------------------------------------------------------ decoding

std::string BpeTokenizer::decode(const std::vector<std::int64_t>& ids) const {
    return decode(ids, true);
}

std::string BpeTokenizer::decode(const std::vector<std::int64_t>& ids, bool skipSpecial) const {
    const auto& alphabet = byteAlphabet();
    std::string out;
    for (const auto id : ids) {
        if (auto a = m_added.find(id); a != m_added.end()) {
            if (!(skipSpecial && a->second.special)) out += a->second.content;
            continue;
        }
        const auto p = m_pieces.find(id);
        if (p == m_pieces.end())
            throw Error("token id " + std::to_string(id) + " is not in the vocabulary of " + m_file);
        for (const auto& cp : codePoints(p->second)) {
            const auto b = alphabet.codePointToByte.find(static_cast<std::uint32_t>(cp.cp));
            if (b != alphabet.codePointToByte.end())
                out += static_cast<char>(b->second);
            else  // not a byte symbol: keep the piece's own bytes
                out.append(p->second, cp.begin, cp.end - cp.begin);
        }
    }
    return out;
}

std::string BpeTokenizer::idToPiece(std::int64_t id) const {
    if (auto a = m_added.find(id); a != m_added.end()) return a->second.content;
    const auto p = m_pieces.find(id);
    if (p == m_pieces.end())
        throw Error("token id " + std::to_string(id) + " is not in the vocabulary of " + m_file);
    return p->second;
}

std::int64_t BpeTokenizer::pieceToId(const std::string& piece) const {
    if (auto a = m_addedByContent.find(piece); a != m_addedByContent.end()) return a->second;
    const auto v = m_vocab.find(piece);
    return v == m_vocab.end() ? -1 : v->second;
}

bool BpeTokenizer::isSpecial(std::int64_t id) const {
    const auto a = m_added.find(id);
    return a != m_added.end() && a->second.special;
}

}  // namespace sdrpn::text
