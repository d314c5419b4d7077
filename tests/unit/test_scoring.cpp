// Answer scoring (sdrpn.md §6): the EvalAI / VQA answer normalisation, VQA accuracy over several references,
// option letters as lmms-eval's vstar_bench extracts them, the rule each sample gets, and box IoU. Every
// expected value is worked by hand from the reference's rules (and agrees with its Python).
#include <gtest/gtest.h>

#include "core/pipeline/scoring.h"

using namespace sdrpn::pipeline;

namespace {

struct NormalizeCase {
    const char* input;
    const char* expected;
};

const NormalizeCase kNormalizeCases[] = {
    {"The Two Dogs!", "2 dogs"},                // lower-case, '!' → space, digit word, article
    {"Hello, World.", "hello world"},           // comma removed, trailing period removed
    {"it's 3.5 dollars", "it 's 3.5 dollars"},  // "'s" split off; a period before a digit stays
    {"dont know", "don't know"},                // contraction restored
    {"a cat-dog", "cat dog"},                   // '-' without spaces → space; article dropped
    {"coca - cola", "coca cola"},               // '-' next to a space → removed
    {"5,000", "5000"},                          // commas removed first
    {"NONE", "0"},                              // "none" is a number word
    {"none of them", "0 of them"},              //
    {"$12.50", "$12.50"},                       // '$' is not in the list
    {"12.50.", "12.50"},                        // only the period not followed by a digit goes
    {"Mr. Smith's car", "mr smith 's car"},     //
    {"x.y.z", "xyz"},                           // periods between letters removed
    {"What's up?", "what 's up"},               // '?' removed, "'s" split off
    {"an apple / a pear", "apple pear"},        // '/' next to a space → removed; both articles dropped
    {"One\tTwo\nThree", "1 2 3"},               // tabs and newlines are spaces
    {"a;b", "b"},                               // ';' → space, then "a" is an article
    {"3 . 5", "3 5"},                           // a lone period not followed by a digit
    {"somebody'd", "somebodyd"},                // the table's own quirk
    {"YALL", "y'all"},                          //
    {"\"quoted\"", "quoted"},                   //
    {"under_score", "under score"},             //
    {"10:30 pm", "10:30 pm"},                   // ':' is not in the list
    {"  The   answer  ", "answer"},             // whitespace collapsed
    {"", ""},                                   //
};

TEST(NormalizeAnswer, FollowsTheEvalAiProcessor) {
    for (const auto& c : kNormalizeCases) EXPECT_EQ(normalizeAnswer(c.input), c.expected) << c.input;
}

TEST(NormalizeAnswer, RemovesAtMost32Periods) {
    // The reference's PERIOD_STRIP.sub gets re.UNICODE (32) as its count.
    const std::string dots(40, '.');
    EXPECT_EQ(normalizeAnswer("x" + dots), "x" + std::string(8, '.'));
}

struct VqaCase {
    const char* prediction;
    std::vector<std::string> references;
    double expected;
};

TEST(VqaAccuracy, LeaveOneOutMeanOfMinOneMatchesOverThree) {
    const std::vector<std::string> tenWith4 = {"red",  "red",  "Red.", "the red", "blue",
                                               "blue", "blue", "blue", "green",   "pink"};
    const VqaCase cases[] = {
        // 4 references say red: each subset without a red one has 4 matches (→1), with one 3 (→1).
        {"red", tenWith4, 1.0},
        // 4 say blue too: same.
        {"Blue", tenWith4, 1.0},
        // 1 says green: the 9 subsets keeping it give 1/3, the one without it 0 → 9/10 · 1/3 = 0.3.
        {"green", tenWith4, 0.3},
        // nobody says yellow.
        {"yellow", tenWith4, 0.0},
        // 2 of 10 say x: 8 subsets with both (2/3), 2 with one (1/3) → (8·2/3 + 2·1/3) / 10 = 0.6.
        {"x", {"x", "x", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"}, 0.6},
        // 3 of 10 say x: 7 subsets with three (1), 3 with two (2/3) → (7 + 2) / 10 = 0.9.
        {"x", {"x", "x", "x", "a1", "a2", "a3", "a4", "a5", "a6", "a7"}, 0.9},
        // two references, both match: each subset has one match → 1/3.
        {"cat", {"cat", "Cat"}, 1.0 / 3.0},
        // one reference: exact match after normalisation.
        {"Two", {"2"}, 1.0},
        {"two dogs", {"2"}, 0.0},
        {"anything", {}, 0.0},
    };
    for (const auto& c : cases)
        EXPECT_NEAR(vqaAccuracy(c.prediction, c.references), c.expected, 1e-12) << c.prediction;
}

struct LetterCase {
    const char* response;
    char expected;  // '-' = none
    char last = 'D';
};

TEST(ExtractOptionLetter, FollowsVstarBench) {
    const LetterCase cases[] = {
        {"B", 'B'},
        {"  d  ", 'D'},
        {"(B) the red one", 'B'},       // "(B)"
        {"BLUE", 'B'},                  // a leading letter wins, as in the reference
        {"the answer is c", 'C'},       // "THE ANSWER IS C"
        {"answer: A", 'A'},             // a leading A also
        {"Option B", 'B'},              // "OPTION B"
        {"The answer is (C).", 'C'},    //
        {"I think D.", 'D'},            // "D."
        {"It is C", 'C'},               // a lone letter
        {"yellow [b]", 'B'},            // "B]"
        {"Both B and C", 'B'},          // a leading letter again
        {"It is B or C", 'B'},          // the first lone letter
        {"The Two Dogs!", 'D'},         // the only letter A–D anywhere
        {"xyz", '-'},                   //
        {"", '-'},                      //
        {"E", '-'},                     // beyond D
        {"E", 'E', 'F'},                // in range with six options
        {"The answer is F", 'F', 'F'},  //
    };
    for (const auto& c : cases) {
        const auto got = extractOptionLetter(c.response, c.last);
        EXPECT_EQ(got ? *got : '-', c.expected) << c.response;
    }
}

TEST(ParseOptions, InlineAndOnePerLine) {
    auto o = parseOptions("What color is the cup? (A) red (B) dark blue (C) green\nAnswer with the letter.");
    ASSERT_EQ(o.size(), 3u);
    EXPECT_EQ(o[0], (std::pair<char, std::string>{'A', "red"}));
    EXPECT_EQ(o[1], (std::pair<char, std::string>{'B', "dark blue"}));
    EXPECT_EQ(o[2], (std::pair<char, std::string>{'C', "green"}));

    o = parseOptions("Where is the cat?\nA. left\nB) right\n");
    ASSERT_EQ(o.size(), 2u);
    EXPECT_EQ(o[0], (std::pair<char, std::string>{'A', "left"}));
    EXPECT_EQ(o[1], (std::pair<char, std::string>{'B', "right"}));

    EXPECT_TRUE(parseOptions("What is written on the sign?").empty());
}

struct ScoreCase {
    const char* question;
    const char* prediction;
    std::vector<std::string> references;
    ScoreRule rule;
    double score;
    const char* normalized;
};

TEST(ScoreAnswer, PicksTheRuleOfTheSample) {
    const ScoreCase cases[] = {
        {"What is written?", "STOP.", {"stop"}, ScoreRule::ExactMatch, 1.0, "stop"},
        {"What is written?", "stop sign", {"stop"}, ScoreRule::ExactMatch, 0.0, "stop sign"},
        // three of four say 3: leaving out a "3" leaves two matches (2/3), leaving out "4" three (1)
        {"How many?", "Three", {"3", "3", "three", "4"}, ScoreRule::VqaAccuracy, 0.75, "3"},
        // a letter reference: multiple choice
        {"Which one? (A) red (B) blue", "(B)", {"B"}, ScoreRule::MultipleChoice, 1.0, "B"},
        {"Which one? (A) red (B) blue", "A", {"(B)"}, ScoreRule::MultipleChoice, 0.0, "A"},
        {"Which one?", "The answer is C.", {"C"}, ScoreRule::MultipleChoice, 1.0, "C"},
        // options in the question and the reference is an option's text: its letter is the reference
        {"Which one? (A) red (B) dark blue", "B", {"Dark blue"}, ScoreRule::MultipleChoice, 1.0, "B"},
        // option E: letters up to E are extracted
        {"Pick: (A) a (B) b (C) c (D) d (E) e", "E", {"E"}, ScoreRule::MultipleChoice, 1.0, "E"},
        // a lower-case letter reference is a word ("a" is an article), not an option
        {"Which letter?", "b", {"b"}, ScoreRule::ExactMatch, 1.0, "b"},
        {"Anything?", "yes", {}, ScoreRule::None, 0.0, ""},
    };
    for (const auto& c : cases) {
        const AnswerScore s = scoreAnswer(c.question, c.prediction, c.references);
        EXPECT_EQ(s.rule, c.rule) << c.question << " / " << c.prediction;
        EXPECT_NEAR(s.score, c.score, 1e-12) << c.question << " / " << c.prediction;
        EXPECT_EQ(s.normalized, c.normalized) << c.question << " / " << c.prediction;
    }
    EXPECT_STREQ(scoreRuleName(ScoreRule::VqaAccuracy), "vqa_accuracy");
    EXPECT_STREQ(scoreRuleName(ScoreRule::MultipleChoice), "multiple_choice");
}

struct IouCase {
    std::array<double, 4> a, b;
    double expected;
};

TEST(BoxIou, HandWorkedBoxes) {
    const IouCase cases[] = {
        {{0, 0, 10, 10}, {0, 0, 10, 10}, 1.0},
        {{0, 0, 10, 10}, {5, 0, 15, 10}, 50.0 / 150.0},    // half overlap
        {{0, 0, 10, 10}, {2, 2, 4, 4}, 4.0 / 100.0},       // inside
        {{0, 0, 10, 10}, {10, 0, 20, 10}, 0.0},            // touching edges
        {{0, 0, 10, 10}, {20, 20, 30, 30}, 0.0},           // apart
        {{0, 0, 4, 2}, {2, 0, 6, 4}, 4.0 / (8 + 16 - 4)},  // 2×2 overlap
        {{0, 0, 0, 0}, {0, 0, 0, 0}, 0.0},                 // empty union
        {{10, 0, 0, 10}, {0, 0, 10, 10}, 0.0},             // inverted box is empty
    };
    for (const auto& c : cases) {
        EXPECT_NEAR(boxIou(c.a, c.b), c.expected, 1e-12);
        EXPECT_NEAR(boxIou(c.b, c.a), c.expected, 1e-12);  // symmetric
    }
}

}  // namespace
