// `sdrpn import-labels` and `sdrpn labels` on pseudo-label files laid out like SD-RPN's released ones
// (made at test time by tests/data/io/make_release_pkls.py with Debian's Python): the summary and the
// problems it lists, rerun, whole-file errors and hostile pickles, and the dumped maps and labels read back
// from safetensors.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/data/label_store.h"
#include "core/data/release_labels.h"
#include "core/io/safetensors.h"
#include "tests/support/python_inputs.h"
#include "tests/support/test_support.h"

#ifndef SDRPN_PYTHON
#define SDRPN_PYTHON "/usr/bin/python3"
#endif

using namespace sdrpn;
namespace fs = std::filesystem;

namespace {

const std::string kSdrpn = test::sdrpnExecutable();

int run(const std::string& args, std::string* output = nullptr) {
    return test::runCommand(kSdrpn + " " + args, output);
}

template <class T>
std::vector<T> valuesOf(const io::SafetensorsFile& file, const std::string& name) {
    const io::RawTensor raw = file.raw(name);
    std::vector<T> out(std::size_t(raw.info->numel()));
    std::memcpy(out.data(), raw.data, out.size() * sizeof(T));
    return out;
}

bool sameFloats(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
    return true;
}

}  // namespace

class ImportLabelsCli : public test::GeneratedInputs<ImportLabelsCli> {
protected:
    static void SetUpTestSuite() { generate("release_pkls", "io/make_release_pkls.py"); }
    void SetUp() override {
        GeneratedInputs::SetUp();
        if (!fs::exists(kSdrpn)) FAIL() << kSdrpn << " is missing: build the sdrpn target first";
    }
    static std::string file(const std::string& name) { return path(name); }
    static std::string images() { return " --images " + test::shellQuote(file("images")); }
};

TEST_F(ImportLabelsCli, ImportsSeveralFilesThenARerunAddsNothing) {
    const std::string store = test::scratchDir("s") + "/labels.sdrpn";
    const std::string cmd = "import-labels --pkl " + file("llava_p4.pkl") + " --pkl=" + file("llava_p2.pkl") +
                            images() + " --store " + store + " --quiet";
    std::string out;
    ASSERT_EQ(run(cmd, &out), 0) << out;
    EXPECT_NE(out.find("llava_p4.pkl: read 5, added 5, skipped 0, rejected 0 (dataset llava_p4, preset "
                       "llava-1.5-7b)"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("llava_p2.pkl: read 2, added 2, skipped 0, rejected 0"), std::string::npos) << out;
    EXPECT_NE(out.find("question_id 1004: NaN"), std::string::npos) << out;
    EXPECT_NE(out.find(store + ": read 7, added 7, skipped 0, rejected 0 from 2 files"), std::string::npos)
        << out;

    ASSERT_EQ(run(cmd, &out), 0) << out;
    EXPECT_NE(out.find("read 7, added 0, skipped 7, rejected 0"), std::string::npos) << out;
    data::LabelStore::Options readOnly;
    readOnly.access = data::LabelStore::Access::ReadOnly;
    EXPECT_EQ(data::LabelStore::open(store, readOnly).count(), 7);
}

TEST_F(ImportLabelsCli, ListsRejectedSamplesByQuestionId) {
    const std::string store = test::scratchDir("s") + "/labels.sdrpn";
    std::string out;
    ASSERT_EQ(run("import-labels --pkl " + file("problems.pkl") + images() + " --store " + store +
                      " --dataset bad --model teacher-x",
                  &out),
              0)
        << out;
    EXPECT_NE(out.find("read 9, added 1, skipped 1, rejected 7 (dataset bad"), std::string::npos) << out;
    EXPECT_NE(out.find("question_id p_badsize: 'grounding_attn_o2i' has shape (575,)"), std::string::npos)
        << out;
    EXPECT_NE(out.find("question_id p_lost: "), std::string::npos) << out;
    data::LabelStore::Options readOnly;
    readOnly.access = data::LabelStore::Access::ReadOnly;
    EXPECT_EQ(data::LabelStore::open(store, readOnly).models(), std::vector<std::string>{"teacher-x"});

    // --no-images keeps the sample whose image is missing; no --images needed.
    const std::string other = test::scratchDir("s") + "/labels.sdrpn";
    ASSERT_EQ(run("import-labels --no-images --pkl " + file("problems.pkl") + " --store " + other, &out), 0)
        << out;
    EXPECT_NE(out.find("added 2, skipped 1, rejected 6"), std::string::npos) << out;
}

TEST_F(ImportLabelsCli, FilesThatCannotBeReadFailNamingTheFile) {
    const std::string dir = test::scratchDir("s");
    std::string out;
    EXPECT_EQ(run("import-labels --pkl " + file("not_a_list.pkl") + images() + " --store " + dir + "/a.sdrpn",
                  &out),
              1)
        << out;
    EXPECT_NE(out.find(file("not_a_list.pkl") + ": expected a list of dicts"), std::string::npos) << out;
    EXPECT_FALSE(fs::exists(dir + "/a.sdrpn"));

    EXPECT_EQ(
        run("import-labels --pkl " + file("evil.pkl") + images() + " --store " + dir + "/b.sdrpn", &out), 1)
        << out;
    EXPECT_NE(out.find("evil.pkl"), std::string::npos) << out;
    EXPECT_FALSE(fs::exists(dir + "/b.sdrpn"));
    EXPECT_FALSE(fs::exists(file("PWNED")));

    // One bad file among good ones: the good ones are imported, the exit status says one failed.
    EXPECT_EQ(run("import-labels --pkl " + file("evil.pkl") + " --pkl " + file("qwen.pkl") + images() +
                      " --store " + dir + "/c.sdrpn --quiet",
                  &out),
              1)
        << out;
    EXPECT_NE(out.find("qwen.pkl: read 2, added 2"), std::string::npos) << out;

    EXPECT_EQ(run("import-labels --pkl " + file("qwen.pkl") + " --store " + dir + "/d.sdrpn", &out), 2)
        << out;
    EXPECT_NE(out.find("--images"), std::string::npos) << out;
    EXPECT_EQ(run("import-labels --pkl " + file("qwen.pkl") + images() + " --store " + dir +
                      "/d.sdrpn --preset nope",
                  &out),
              2)
        << out;
}

TEST_F(ImportLabelsCli, LabelsDumpMatchesTheStoredSample) {
    const std::string dir = test::scratchDir("s");
    const std::string store = dir + "/labels.sdrpn";
    std::string out;
    ASSERT_EQ(run("import-labels --quiet --pkl " + file("llava_p4.pkl") + " --pkl " + file("qwen.pkl") +
                      images() + " --store " + store,
                  &out),
              0)
        << out;
    data::LabelStore::Options readOnly;
    readOnly.access = data::LabelStore::Access::ReadOnly;

    struct Case {
        std::string id, extra;
        LabelSettings settings;
        std::string status;
    };
    LabelSettings looser = LabelSettings::fromPreset("llava-1.5-7b");
    looser.foregroundRatio = 0.5;
    std::ofstream(dir + "/looser.json") << looser.toJson().dump();
    const std::vector<Case> cases = {
        {"1001", "", LabelSettings::fromPreset("llava-1.5-7b"), "ok"},
        {"1004", "", LabelSettings::fromPreset("llava-1.5-7b"), "non-finite"},
        {"q2", "", LabelSettings::fromPreset("qwen2.5-vl-7b"), "ok"},
        {"1002", " --label-settings " + dir + "/looser.json", looser, "ok"},
        {"1002", " --preset llava-1.5-7b --dataset llava_p4", LabelSettings::fromPreset("llava-1.5-7b"),
         "ok"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.id + c.extra);
        const std::string dump = dir + "/" + c.id + ".safetensors";
        ASSERT_EQ(run("labels --store " + store + " --id " + c.id + " --dump " + dump + c.extra, &out), 0)
            << out;
        EXPECT_NE(out.find("wrote " + dump), std::string::npos) << out;
        const auto st = io::SafetensorsFile::open(dump);
        ASSERT_EQ(st->tensors().size(), 3u);
        for (const char* name : {"grounding", "sink", "labels"}) {
            ASSERT_TRUE(st->find(name)) << name;
            EXPECT_EQ(st->find(name)->shape, std::vector<std::int64_t>{576}) << name;
        }
        EXPECT_EQ(st->find("grounding")->dtype, io::DType::F32);
        EXPECT_EQ(st->find("sink")->dtype, io::DType::F32);
        EXPECT_EQ(st->find("labels")->dtype, io::DType::I64);
        EXPECT_EQ(st->metadata().at("status"), c.status);

        const data::LabelStore s = data::LabelStore::open(store, readOnly);
        const std::string dataset = c.id[0] == 'q' ? "qwen" : "llava_p4";
        const data::SampleLabelDump expected = data::dumpSampleLabels(*s.get(dataset, c.id), c.settings);
        EXPECT_TRUE(sameFloats(valuesOf<float>(*st, "grounding"), expected.grounding));
        EXPECT_TRUE(sameFloats(valuesOf<float>(*st, "sink"), expected.sink));
        EXPECT_EQ(valuesOf<std::int64_t>(*st, "labels"), expected.labels);
    }

    // Without --dump: the counts.
    ASSERT_EQ(run("labels --store " + store + " --id 1001", &out), 0) << out;
    EXPECT_NE(out.find("llava_p4/1001: labels ok, "), std::string::npos) << out;
    EXPECT_NE(out.find(" foreground, "), std::string::npos) << out;
}

TEST_F(ImportLabelsCli, LabelsNamesUnknownAndAmbiguousIds) {
    const std::string dir = test::scratchDir("s");
    const std::string store = dir + "/labels.sdrpn";
    std::string out;
    for (const char* dataset : {"first", "second"})
        ASSERT_EQ(run("import-labels --quiet --pkl " + file("llava_p4.pkl") + images() + " --store " + store +
                          " --dataset " + dataset,
                      &out),
                  0)
            << out;
    EXPECT_EQ(run("labels --store " + store + " --id 9999", &out), 1) << out;
    EXPECT_NE(out.find(store + ": no sample with id '9999'"), std::string::npos) << out;
    EXPECT_EQ(run("labels --store " + store + " --id 1001", &out), 1) << out;
    EXPECT_NE(out.find("is in several datasets (first, second); give one with --dataset"), std::string::npos)
        << out;
    EXPECT_EQ(run("labels --store " + store + " --id 1001 --dataset second", &out), 0) << out;
    EXPECT_NE(out.find("second/1001: labels ok"), std::string::npos) << out;
    // Settings that need heads the import did not store.
    EXPECT_EQ(run("labels --store " + store + " --id 1001 --dataset second --preset llava-1.5-13b", &out), 1)
        << out;
    EXPECT_NE(out.find("does not hold"), std::string::npos) << out;
    EXPECT_EQ(run("labels --store " + store + " --id 1001 --preset a --label-settings b", &out), 2) << out;
}
