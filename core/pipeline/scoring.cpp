#include "core/pipeline/scoring.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <regex>
#include <sstream>

namespace sdrpn::pipeline {
namespace {

// The VQA evaluation's contraction table (answers typed without apostrophes), as the EvalAI processor has
// it, quirks included ("somebody'd" → "somebodyd").
const std::map<std::string, std::string>& contractions() {
    static const std::map<std::string, std::string> table = {
        {"aint", "ain't"},
        {"arent", "aren't"},
        {"cant", "can't"},
        {"couldve", "could've"},
        {"couldnt", "couldn't"},
        {"couldn'tve", "couldn't've"},
        {"couldnt've", "couldn't've"},
        {"didnt", "didn't"},
        {"doesnt", "doesn't"},
        {"dont", "don't"},
        {"hadnt", "hadn't"},
        {"hadnt've", "hadn't've"},
        {"hadn'tve", "hadn't've"},
        {"hasnt", "hasn't"},
        {"havent", "haven't"},
        {"hed", "he'd"},
        {"hed've", "he'd've"},
        {"he'dve", "he'd've"},
        {"hes", "he's"},
        {"howd", "how'd"},
        {"howll", "how'll"},
        {"hows", "how's"},
        {"Id've", "I'd've"},
        {"I'dve", "I'd've"},
        {"Im", "I'm"},
        {"Ive", "I've"},
        {"isnt", "isn't"},
        {"itd", "it'd"},
        {"itd've", "it'd've"},
        {"it'dve", "it'd've"},
        {"itll", "it'll"},
        {"let's", "let's"},
        {"maam", "ma'am"},
        {"mightnt", "mightn't"},
        {"mightnt've", "mightn't've"},
        {"mightn'tve", "mightn't've"},
        {"mightve", "might've"},
        {"mustnt", "mustn't"},
        {"mustve", "must've"},
        {"neednt", "needn't"},
        {"notve", "not've"},
        {"oclock", "o'clock"},
        {"oughtnt", "oughtn't"},
        {"ow's'at", "'ow's'at"},
        {"'ows'at", "'ow's'at"},
        {"'ow'sat", "'ow's'at"},
        {"shant", "shan't"},
        {"shed've", "she'd've"},
        {"she'dve", "she'd've"},
        {"she's", "she's"},
        {"shouldve", "should've"},
        {"shouldnt", "shouldn't"},
        {"shouldnt've", "shouldn't've"},
        {"shouldn'tve", "shouldn't've"},
        {"somebody'd", "somebodyd"},
        {"somebodyd've", "somebody'd've"},
        {"somebody'dve", "somebody'd've"},
        {"somebodyll", "somebody'll"},
        {"somebodys", "somebody's"},
        {"someoned", "someone'd"},
        {"someoned've", "someone'd've"},
        {"someone'dve", "someone'd've"},
        {"someonell", "someone'll"},
        {"someones", "someone's"},
        {"somethingd", "something'd"},
        {"somethingd've", "something'd've"},
        {"something'dve", "something'd've"},
        {"somethingll", "something'll"},
        {"thats", "that's"},
        {"thered", "there'd"},
        {"thered've", "there'd've"},
        {"there'dve", "there'd've"},
        {"therere", "there're"},
        {"theres", "there's"},
        {"theyd", "they'd"},
        {"theyd've", "they'd've"},
        {"they'dve", "they'd've"},
        {"theyll", "they'll"},
        {"theyre", "they're"},
        {"theyve", "they've"},
        {"twas", "'twas"},
        {"wasnt", "wasn't"},
        {"wed've", "we'd've"},
        {"we'dve", "we'd've"},
        {"weve", "we've"},
        {"werent", "weren't"},
        {"whatll", "what'll"},
        {"whatre", "what're"},
        {"whats", "what's"},
        {"whatve", "what've"},
        {"whens", "when's"},
        {"whered", "where'd"},
        {"wheres", "where's"},
        {"whereve", "where've"},
        {"whod", "who'd"},
        {"whod've", "who'd've"},
        {"who'dve", "who'd've"},
        {"wholl", "who'll"},
        {"whos", "who's"},
        {"whove", "who've"},
        {"whyll", "why'll"},
        {"whyre", "why're"},
        {"whys", "why's"},
        {"wont", "won't"},
        {"wouldve", "would've"},
        {"wouldnt", "wouldn't"},
        {"wouldnt've", "wouldn't've"},
        {"wouldn'tve", "wouldn't've"},
        {"yall", "y'all"},
        {"yall'll", "y'all'll"},
        {"y'allll", "y'all'll"},
        {"yall'd've", "y'all'd've"},
        {"y'alld've", "y'all'd've"},
        {"y'all'dve", "y'all'd've"},
        {"youd", "you'd"},
        {"youd've", "you'd've"},
        {"you'dve", "you'd've"},
        {"youll", "you'll"},
        {"youre", "you're"},
        {"youve", "you've"},
    };
    return table;
}

const std::map<std::string, std::string>& numberWords() {
    static const std::map<std::string, std::string> table = {
        {"none", "0"}, {"zero", "0"}, {"one", "1"},   {"two", "2"},   {"three", "3"}, {"four", "4"},
        {"five", "5"}, {"six", "6"},  {"seven", "7"}, {"eight", "8"}, {"nine", "9"},  {"ten", "10"},
    };
    return table;
}

constexpr const char* kPunctuation[] = {";",  "/", "[", "]", "\"", "{", "}", "(", ")", "=", "+",
                                        "\\", "_", "-", ">", "<",  "@", "`", ",", "?", "!"};
// The reference calls PERIOD_STRIP.sub("", text, re.UNICODE): re.UNICODE (32) lands in the count argument.
constexpr int kMaxPeriodsRemoved = 32;

bool isSpace(char c) {
    return std::isspace(static_cast<unsigned char>(c)) != 0;
}
bool isDigit(char c) {
    return c >= '0' && c <= '9';
}

std::string replaceAll(std::string text, const std::string& from, const std::string& to) {
    std::size_t pos = 0;
    while ((pos = text.find(from, pos)) != std::string::npos) {
        text.replace(pos, from.size(), to);
        pos += to.size();
    }
    return text;
}

std::string trim(const std::string& text) {
    std::size_t b = 0, e = text.size();
    while (b < e && isSpace(text[b])) ++b;
    while (e > b && isSpace(text[e - 1])) --e;
    return text.substr(b, e - b);
}

std::string lowerAscii(std::string text) {
    for (char& c : text)
        if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    return text;
}

std::string upperAscii(std::string text) {
    for (char& c : text)
        if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
    return text;
}

// COMMA_STRIP: a comma between two digits.
bool hasDigitComma(const std::string& text) {
    for (std::size_t i = 1; i + 1 < text.size(); ++i)
        if (text[i] == ',' && isDigit(text[i - 1]) && isDigit(text[i + 1])) return true;
    return false;
}

std::string processPunctuation(const std::string& in) {
    std::string out = in;
    const bool digitComma = hasDigitComma(in);
    for (const char* mark : kPunctuation) {
        const std::string p = mark;
        // Decided on the input text, as the reference does, not on the partly processed one.
        if (in.find(p + " ") != std::string::npos || in.find(" " + p) != std::string::npos || digitComma)
            out = replaceAll(out, p, "");
        else
            out = replaceAll(out, p, " ");
    }
    std::string result;
    result.reserve(out.size());
    int removed = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
        const bool digitFollows = i + 1 < out.size() && isDigit(out[i + 1]);
        if (out[i] == '.' && !digitFollows && removed < kMaxPeriodsRemoved) {
            ++removed;
            continue;
        }
        result += out[i];
    }
    return result;
}

std::string processDigitArticle(const std::string& in) {
    std::istringstream words(lowerAscii(in));
    std::vector<std::string> kept;
    for (std::string word; words >> word;) {
        if (auto it = numberWords().find(word); it != numberWords().end()) word = it->second;
        if (word != "a" && word != "an" && word != "the") kept.push_back(word);
    }
    std::string out;
    for (std::size_t i = 0; i < kept.size(); ++i) {
        if (auto it = contractions().find(kept[i]); it != contractions().end()) kept[i] = it->second;
        if (i > 0) out += ' ';
        out += kept[i];
    }
    return out;
}

// "B", " B ", "B.", "B)", "(B)" → 'B'; anything else → nullopt.
std::optional<char> referenceLetter(const std::string& reference) {
    std::string r = trim(reference);
    if (r.size() == 3 && r.front() == '(' && r.back() == ')') r = r.substr(1, 1);
    if (r.size() == 2 && (r.back() == '.' || r.back() == ')')) r.pop_back();
    if (r.size() == 1 && r[0] >= 'A' && r[0] <= 'F') return r[0];
    return std::nullopt;
}

}  // namespace

std::string normalizeAnswer(const std::string& answer) {
    // word_tokenize
    std::string text = lowerAscii(answer);
    text = replaceAll(text, ",", "");
    text = replaceAll(text, "?", "");
    text = replaceAll(text, "'s", " 's");
    text = trim(text);
    text = replaceAll(text, "\n", " ");
    text = replaceAll(text, "\t", " ");
    text = trim(text);
    return processDigitArticle(processPunctuation(text));
}

double vqaAccuracy(const std::string& prediction, const std::vector<std::string>& references) {
    if (references.empty()) return 0.0;
    const std::string predicted = normalizeAnswer(prediction);
    std::vector<std::string> refs;
    refs.reserve(references.size());
    for (const auto& r : references) refs.push_back(normalizeAnswer(r));
    if (refs.size() == 1) return refs[0] == predicted ? 1.0 : 0.0;
    double sum = 0.0;
    for (std::size_t i = 0; i < refs.size(); ++i) {
        int matches = 0;
        for (std::size_t j = 0; j < refs.size(); ++j)
            if (j != i && refs[j] == predicted) ++matches;
        sum += std::min(1.0, double(matches) / 3.0);
    }
    return sum / double(refs.size());
}

std::vector<std::pair<char, std::string>> parseOptions(const std::string& question) {
    std::vector<std::pair<char, std::string>> options;
    // V* style: "... (A) red (B) blue", the pattern of vstar_bench's doc_to_text with letters up to F and
    // an option's text ending at a line break too (an instruction may follow on the next line).
    static const std::regex inlineOption(R"(\(([A-F])\)[ \t]*([^()\n]+?)(?=\s*\([A-F]\)|\n|$))");
    for (auto it = std::sregex_iterator(question.begin(), question.end(), inlineOption);
         it != std::sregex_iterator(); ++it)
        options.emplace_back((*it)[1].str()[0], trim((*it)[2].str()));
    if (!options.empty()) return options;
    // One option per line: "A. red" or "A) red".
    std::istringstream lines(question);
    static const std::regex lineOption(R"(^\s*([A-F])[.)]\s+(.+)$)");
    for (std::string line; std::getline(lines, line);) {
        std::smatch m;
        if (std::regex_match(line, m, lineOption)) options.emplace_back(m[1].str()[0], trim(m[2].str()));
    }
    return options;
}

std::optional<char> extractOptionLetter(const std::string& response, char lastLetter) {
    lastLetter = std::clamp(lastLetter, 'A', 'Z');
    const std::string text = upperAscii(trim(response));
    const std::string letter = std::string("[A-") + lastLetter + "]";
    auto inRange = [&](char c) { return c >= 'A' && c <= lastLetter; };
    // vstar_bench's patterns, in its order; the first that matches anywhere wins.
    const std::regex patterns[] = {
        std::regex("^(" + letter + ")"),
        std::regex("(?:THE\\s+)?(?:ANSWER|CHOICE|OPTION)(?:\\s+IS)?[\\s:]+(" + letter + ")"),
        std::regex("\\((" + letter + ")\\)"),
        std::regex("(" + letter + ")\\s*(?:\\.|\\)|\\])"),
        std::regex("(?:^|\\s)(" + letter + ")(?:\\s|$)"),
    };
    for (const auto& pattern : patterns) {
        std::smatch m;
        if (std::regex_search(text, m, pattern)) return m[1].str()[0];
    }
    std::optional<char> only;
    int count = 0;
    for (char c : text)
        if (inRange(c)) {
            only = c;
            ++count;
        }
    if (count == 1) return only;
    return std::nullopt;
}

const char* scoreRuleName(ScoreRule rule) {
    switch (rule) {
        case ScoreRule::None:
            return "none";
        case ScoreRule::ExactMatch:
            return "exact_match";
        case ScoreRule::VqaAccuracy:
            return "vqa_accuracy";
        case ScoreRule::MultipleChoice:
            return "multiple_choice";
    }
    return "none";
}

AnswerScore scoreAnswer(const std::string& question, const std::string& prediction,
                        const std::vector<std::string>& references) {
    AnswerScore s;
    if (references.empty()) return s;

    std::optional<char> gold = referenceLetter(references.front());
    const auto options = parseOptions(question);
    if (!gold && !options.empty()) {
        for (const auto& reference : references) {
            const std::string r = normalizeAnswer(reference);
            for (const auto& [letter, text] : options)
                if (!r.empty() && normalizeAnswer(text) == r) gold = letter;
            if (gold) break;
        }
    }
    if (gold) {
        char last = std::max('D', *gold);
        for (const auto& option : options) last = std::max(last, option.first);
        s.rule = ScoreRule::MultipleChoice;
        const auto predicted = extractOptionLetter(prediction, last);
        s.normalized = predicted ? std::string(1, *predicted) : std::string();
        s.reference = std::string(1, *gold);
        s.score = predicted == gold ? 1.0 : 0.0;
        return s;
    }
    s.rule = references.size() == 1 ? ScoreRule::ExactMatch : ScoreRule::VqaAccuracy;
    s.normalized = normalizeAnswer(prediction);
    s.reference = normalizeAnswer(references.front());
    s.score = vqaAccuracy(prediction, references);
    return s;
}

double boxIou(const std::array<double, 4>& a, const std::array<double, 4>& b) {
    auto area = [](const std::array<double, 4>& r) {
        return std::max(0.0, r[2] - r[0]) * std::max(0.0, r[3] - r[1]);
    };
    const double iw = std::min(a[2], b[2]) - std::max(a[0], b[0]);
    const double ih = std::min(a[3], b[3]) - std::max(a[1], b[1]);
    const double inter = (iw > 0 && ih > 0) ? iw * ih : 0.0;
    const double uni = area(a) + area(b) - inter;
    return uni > 0 ? inter / uni : 0.0;
}

}  // namespace sdrpn::pipeline
