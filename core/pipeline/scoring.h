// Answer scoring for evaluation (sdrpn.md §6), as lmms-eval scores the benchmarks SD-RPN reports:
//
//   normalizeAnswer("The Two Dogs!")            == "2 dogs"        // EvalAI / VQA answer processor
//   vqaAccuracy("2 dogs", tenAnswers)                               // min(1, matches / 3), leave-one-out
//   mean extractOptionLetter("(B) the red one")      == 'B'             // vstar_bench's letter extraction
//   AnswerScore s = scoreAnswer(question, prediction, references); // picks the rule for the sample
//   boxIou({0, 0, 10, 10}, {5, 0, 15, 10})      == 1.0 / 3
//
// Pure functions on plain strings: no model, no tokenizer, no exceptions. Thread-safe.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sdrpn::pipeline {

// lmms-eval's EvalAIAnswerProcessor (the VQA evaluation's answer processing), step by step:
// 1. lower-case (ASCII), remove ',' and '?', "'s" → " 's", trim;
// 2. newlines and tabs → spaces, trim;
// 3. each punctuation mark of ; / [ ] " { } ( ) = + \ _ - > < @ ` , ? ! is removed everywhere when the
//    text has it next to a space (or has a digit,digit comma), else replaced by spaces; then a '.' not
//    followed by a digit is removed (the first 32 of them: the reference passes re.UNICODE as the count);
// 4. split on whitespace, number words zero..ten (and "none") → digits, articles a / an / the dropped,
//    contractions without apostrophe restored ("dont" → "don't"), joined by single spaces.
std::string normalizeAnswer(const std::string& answer);

// VQA accuracy of a prediction against reference answers, both normalised with normalizeAnswer.
// Several references (TextVQA's ten): for each reference i, min(1, #(other references equal to the
// prediction) / 3), averaged over i (the "10 choose 9" subsets). One reference: 1 when equal, else 0 (the
// leave-one-out rule would always give 0). No reference: 0.
double vqaAccuracy(const std::string& prediction, const std::vector<std::string>& references);

// The answer options a multiple-choice question lists: "(A) red (B) blue" (V* style, inline) or lines
// "A. red" / "A) red". Letters A–F, in the order they appear; empty when the question has none.
std::vector<std::pair<char, std::string>> parseOptions(const std::string& question);

// The option letter of a response, as lmms-eval's vstar_bench extract_answer_letter: on the trimmed,
// upper-cased response, the first of these that matches (letters A..lastLetter):
//   a leading letter ("B", "B.", "BLUE" too: the reference's rule); "ANSWER: B" / "THE ANSWER IS B" /
//   "OPTION B" / "CHOICE B"; "(B)"; "B." / "B)" / "B]"; a letter standing alone between spaces;
// then the only such letter anywhere in the response. nullopt when nothing matches.
std::optional<char> extractOptionLetter(const std::string& response, char lastLetter = 'D');

enum class ScoreRule {
    None,            // no reference answer: not scored
    ExactMatch,      // one reference: normalised equality
    VqaAccuracy,     // several references: vqaAccuracy
    MultipleChoice,  // option letters compared
};
const char* scoreRuleName(ScoreRule rule);  // "none", "exact_match", "vqa_accuracy", "multiple_choice"

struct AnswerScore {
    ScoreRule rule = ScoreRule::None;
    double score = 0.0;      // in [0, 1]
    std::string normalized;  // the normalised prediction (VQA rules) or the extracted letter ("" if none)
    std::string reference;   // the reference letter (multiple choice), else the first normalised reference
};

// Scores one prediction. Multiple choice when the first reference is a single capital letter A–F
// (surrounding spaces, a trailing '.' and the form "(B)" allowed), or when the question lists options and
// a reference equals one option's text after normalisation (that option's letter is then the reference);
// the letter is extracted with extractOptionLetter up to max('D', the highest option / reference letter).
// Otherwise ExactMatch (one reference) or VqaAccuracy (several); None without references.
AnswerScore scoreAnswer(const std::string& question, const std::string& prediction,
                        const std::vector<std::string>& references);

// Intersection over union of two boxes [x0, y0, x1, y1] (exclusive ends; any unit). 0 when the union
// is empty; boxes with x1 < x0 or y1 < y0 count as empty.
double boxIou(const std::array<double, 4>& a, const std::array<double, 4>& b);

}  // namespace sdrpn::pipeline
