// Dataset readers: LLaVA conversation JSON and JSONL from tests/data/datasets/, with an image root the test
// fills, shards, limits, missing images and malformed files.
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "core/data/dataset.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
using namespace sdrpn::data;
namespace fs = std::filesystem;

namespace {

std::string datasetFile(const std::string& name) {
    return test::dataPath("datasets/" + name);
}

// An image root holding coco/a.png, gqa/b.png and ocr_vqa/c.png (contents do not matter to the readers).
std::string imageRoot() {
    const std::string root = test::scratchDir("images");
    for (const char* f : {"coco/a.png", "gqa/b.png", "ocr_vqa/c.png"}) {
        fs::create_directories(fs::path(root) / fs::path(f).parent_path());
        std::ofstream(fs::path(root) / f) << "x";
    }
    return root;
}

std::string errorOf(const std::string& file, DatasetOptions options = {}) {
    try {
        readDataset(datasetFile(file), options);
    } catch (const sdrpn::Error& e) {
        return e.what();
    }
    return "no error";
}

}  // namespace

TEST(StripImagePlaceholder, RemovesThePlaceholderAndTheNewlinesAroundIt) {
    struct Case {
        const char* in;
        const char* out;
    };
    const Case cases[] = {
        {"<image>\nWhat is it?", "What is it?"},
        {"What is it?\n<image>", "What is it?"},
        {"<image>\nWhat is it?\nAnswer the question using a single word or phrase.",
         "What is it?\nAnswer the question using a single word or phrase."},
        {"What <image> is it?", "What  is it?"},
        {"\n<image>\n\nWhat is it?\n", "What is it?"},
        {"<image>", ""},
        {"No placeholder", "No placeholder"},
    };
    for (const auto& c : cases) EXPECT_EQ(stripImagePlaceholder(c.in), c.out) << c.in;
}

TEST(Shard, ParsesAndSplitsByEntryIndex) {
    Shard s = Shard::parse("1/3");
    EXPECT_EQ(s.index, 1);
    EXPECT_EQ(s.count, 3);
    EXPECT_FALSE(s.contains(0));
    EXPECT_TRUE(s.contains(1));
    EXPECT_TRUE(s.contains(4));
    EXPECT_EQ(s.toString(), "1/3");
    for (const char* bad : {"3/3", "1", "a/2", "-1/2", "1/0", "1/2/3", ""})
        EXPECT_THROW(Shard::parse(bad), sdrpn::Error) << bad;
}

TEST(LlavaJson, FirstHumanTurnWithoutPlaceholderAndTheGptAnswer) {
    DatasetOptions opt;
    opt.imageRoot = imageRoot();
    Dataset d = readDataset(datasetFile("mix_small.json"), opt);
    EXPECT_EQ(d.id, "mix_small");
    EXPECT_EQ(d.format, DatasetFormat::LlavaJson);
    EXPECT_EQ(d.entries, 5u);
    ASSERT_EQ(d.samples.size(), 3u);

    const Sample& a = d.samples[0];
    EXPECT_EQ(a.key, "0");  // the index in the file, as the reference's question_id
    EXPECT_EQ(a.entry, 0u);
    EXPECT_EQ(a.image, "coco/a.png");
    EXPECT_EQ(a.imagePath, (fs::path(opt.imageRoot) / "coco/a.png").string());
    EXPECT_EQ(a.question, "What color is the bus?\nAnswer the question using a single word or phrase.");
    ASSERT_TRUE(a.answer);
    EXPECT_EQ(*a.answer, "White");  // the answer to the first turn, not a later one

    EXPECT_EQ(d.samples[1].key, "2");
    EXPECT_EQ(d.samples[1].question, "Is the sky dark?");
    EXPECT_EQ(d.samples[2].key, "4");
    EXPECT_EQ(d.samples[2].question, "What is the title  of this book?");
    EXPECT_FALSE(d.samples[2].answer);

    // The text-only entry and the missing image are skipped and reported, not fatal.
    ASSERT_EQ(d.skipped.size(), 2u);
    EXPECT_EQ(d.skipped[0].key, "1");
    EXPECT_EQ(d.skipped[0].reason, "no image");
    EXPECT_EQ(d.skipped[1].key, "3");
    EXPECT_EQ(d.skipped[1].reason, "image not found");
    EXPECT_NE(d.skipped[1].image.find("ocr_vqa/missing.png"), std::string::npos);
}

TEST(LlavaJson, ShardsPartitionTheEntriesAndLimitCaps) {
    const std::string root = imageRoot();
    std::set<std::string> all;
    std::size_t skipped = 0;
    for (int i = 0; i < 2; ++i) {
        DatasetOptions opt;
        opt.imageRoot = root;
        opt.shard = Shard{i, 2};
        Dataset d = readDataset(datasetFile("mix_small.json"), opt);
        EXPECT_EQ(d.entries, 5u);
        for (const auto& s : d.samples) {
            EXPECT_EQ(s.entry % 2, std::size_t(i));
            EXPECT_TRUE(all.insert(s.key).second) << s.key << " in two shards";
        }
        skipped += d.skipped.size();
    }
    EXPECT_EQ(all, (std::set<std::string>{"0", "2", "4"}));
    EXPECT_EQ(skipped, 2u);

    DatasetOptions opt;
    opt.imageRoot = root;
    opt.limit = 2;
    Dataset d = readDataset(datasetFile("mix_small.json"), opt);
    ASSERT_EQ(d.samples.size(), 2u);
    EXPECT_EQ(d.samples[1].key, "2");
    EXPECT_EQ(d.skipped.size(), 1u);  // entries after the limit are not looked at
}

TEST(LlavaJson, WithoutImageCheckEveryImageEntryIsASample) {
    DatasetOptions opt;
    opt.checkImages = false;
    Dataset d = readDataset(datasetFile("mix_small.json"), opt);
    EXPECT_EQ(d.samples.size(), 4u);
    EXPECT_EQ(d.samples[2].imagePath, "ocr_vqa/missing.png");
}

TEST(LlavaJson, MalformedFilesNameTheFileAndTheLineOrEntry) {
    std::string e = errorOf("bad_syntax.json");
    EXPECT_NE(e.find("bad_syntax.json"), std::string::npos) << e;
    EXPECT_NE(e.find("line 5"), std::string::npos) << e;

    e = errorOf("bad_entry.json");
    EXPECT_NE(e.find("bad_entry.json: entry 1 (id 1)"), std::string::npos) << e;
    EXPECT_NE(e.find("conversations"), std::string::npos) << e;

    e = errorOf("not_a_list.json");
    EXPECT_NE(e.find("not_a_list.json: expected a list"), std::string::npos) << e;

    e = errorOf("no_such_file.json");
    EXPECT_NE(e.find("no_such_file.json: dataset file not found"), std::string::npos) << e;

    // A malformed entry outside the shard is parsed but not checked.
    DatasetOptions other;
    other.shard = Shard{0, 2};
    other.checkImages = false;
    EXPECT_EQ(readDataset(datasetFile("bad_entry.json"), other).samples.size(), 1u);
}

TEST(Jsonl, ReadsQuestionsAnswersBoxesAndKeys) {
    DatasetOptions opt;
    opt.imageRoot = imageRoot();
    Dataset d = readDataset(datasetFile("questions.jsonl"), opt);
    EXPECT_EQ(d.format, DatasetFormat::Jsonl);
    EXPECT_EQ(d.id, "questions");
    EXPECT_EQ(d.entries, 4u);  // the blank line is not an entry
    ASSERT_EQ(d.samples.size(), 3u);

    EXPECT_EQ(d.samples[0].key, "q1");
    EXPECT_EQ(d.samples[0].question, "What color is the bus?");
    EXPECT_EQ(d.samples[0].answer.value_or(""), "white");
    ASSERT_TRUE(d.samples[0].bbox);
    EXPECT_EQ(*d.samples[0].bbox, (std::array<double, 4>{10, 20, 110, 220}));

    EXPECT_EQ(d.samples[1].key, "7");                      // numeric question_id
    EXPECT_EQ(d.samples[1].question, "Is the sky dark?");  // `text`, placeholder removed
    EXPECT_FALSE(d.samples[1].answer);
    EXPECT_FALSE(d.samples[1].bbox);

    EXPECT_EQ(d.samples[2].key, "3");  // no id: the entry index
    ASSERT_EQ(d.skipped.size(), 1u);
    EXPECT_EQ(d.skipped[0].key, "2");
    EXPECT_EQ(d.skipped[0].reason, "image not found");
}

TEST(Jsonl, MalformedLinesNameTheFileAndLine) {
    std::string e = errorOf("bad_syntax.jsonl");
    EXPECT_NE(e.find("bad_syntax.jsonl:3: not valid JSON"), std::string::npos) << e;

    e = errorOf("duplicate_keys.jsonl");
    EXPECT_NE(e.find("duplicate_keys.jsonl:3: duplicate key 'x' (first at line 1)"), std::string::npos) << e;

    e = errorOf("bad_bbox.jsonl");
    EXPECT_NE(e.find("bad_bbox.jsonl:1: bbox"), std::string::npos) << e;
}

TEST(Jsonl, AnswersListKeepsEveryReference) {
    const std::string dir = test::scratchDir("answers");
    std::ofstream(dir + "/a.png") << "x";
    {
        std::ofstream out(dir + "/refs.jsonl");
        out << R"({"question_id": "many", "image": "a.png", "question": "Q?", "answers": ["red", "Red", "blue"]})"
            << "\n"
            << R"({"question_id": "both", "image": "a.png", "question": "Q?", "answer": "B", "answers": ["x", "y"]})"
            << "\n"
            << R"({"question_id": "one", "image": "a.png", "question": "Q?", "answer": "cat"})"
            << "\n"
            << R"({"question_id": "none", "image": "a.png", "question": "Q?"})"
            << "\n";
    }
    DatasetOptions opt;
    opt.imageRoot = dir;
    Dataset d = readDataset(dir + "/refs.jsonl", opt);
    ASSERT_EQ(d.samples.size(), 4u);
    EXPECT_EQ(d.samples[0].answers, (std::vector<std::string>{"red", "Red", "blue"}));
    EXPECT_EQ(d.samples[0].answer.value_or(""), "red");  // the first of the list
    EXPECT_EQ(d.samples[1].answers, (std::vector<std::string>{"x", "y"}));
    EXPECT_EQ(d.samples[1].answer.value_or(""), "B");  // an explicit answer stays
    EXPECT_EQ(d.samples[2].answers, (std::vector<std::string>{"cat"}));
    EXPECT_TRUE(d.samples[3].answers.empty());
    EXPECT_FALSE(d.samples[3].answer);

    std::ofstream(dir + "/bad.jsonl") << R"({"image": "a.png", "question": "Q?", "answers": ["ok", 3]})"
                                      << "\n";
    try {
        readDataset(dir + "/bad.jsonl", opt);
        ADD_FAILURE() << "no error";
    } catch (const sdrpn::Error& e) {
        EXPECT_NE(std::string(e.what()).find("bad.jsonl:1: answers must be a list of strings"),
                  std::string::npos)
            << e.what();
    }
}

TEST(Jsonl, FormatCanBeForcedAndOpenDatasetReturnsAResult) {
    DatasetOptions opt;
    opt.format = DatasetFormat::Jsonl;
    auto r = openDataset(datasetFile("mix_small.json"), opt);  // a JSON list is not JSONL
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("mix_small.json:1"), std::string::npos) << r.message();

    auto ok = openDataset(datasetFile("questions.jsonl"));
    ASSERT_TRUE(ok.ok()) << ok.message();
    EXPECT_EQ(ok.value().samples.size(), 0u);  // images relative to the working folder: none there
    EXPECT_EQ(ok.value().skipped.size(), 4u);
}
