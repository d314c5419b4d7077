// Importing SD-RPN's released pseudo-label .pkl files (core/data/release_labels.h): the files are made at
// test time by tests/data/io/make_release_pkls.py with Debian's Python (numpy), protocols 2 and 4, LLaVA
// (576,) and Qwen (24, 24) maps. The stored samples give the same labels as makeLabels on the released
// maps; bad samples are rejected naming their question_id, duplicates skipped, hostile files refused.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/data/label_store.h"
#include "core/data/labeling.h"
#include "core/data/release_labels.h"
#include "core/io/image.h"
#include "tests/support/python_inputs.h"
#include "tests/support/test_support.h"

#ifndef SDRPN_PYTHON
#define SDRPN_PYTHON "/usr/bin/python3"
#endif

using namespace sdrpn;
using namespace sdrpn::data;
namespace fs = std::filesystem;

namespace {

std::vector<float> floats(const nlohmann::json& j) {
    std::vector<float> out;
    for (const auto& v : j) out.push_back(v.get<float>());
    return out;
}

// What the store keeps: every value rounded to fp16.
std::vector<float> asStored(const std::vector<float>& v) {
    std::vector<float> out;
    for (float x : v) out.push_back(halfToFloat(floatToHalf(x)));
    return out;
}

GridMap grid(std::vector<float> values) {
    GridMap m;
    m.rows = m.cols = 24;
    m.values = std::move(values);
    m.queries = 1;
    return m;
}

}  // namespace

class ReleaseLabels : public test::GeneratedInputs<ReleaseLabels> {
protected:
    static void SetUpTestSuite() {
        generate("release_pkls", "io/make_release_pkls.py");
        if (!generated()) return;
        std::ifstream in(path("manifest.json"));
        s_manifest = new nlohmann::json(nlohmann::json::parse(in));
    }

    static std::string file(const std::string& name) { return path(name); }
    static const nlohmann::json& manifest(const std::string& pkl, const std::string& qid) {
        return (*s_manifest)[pkl][qid];
    }
    ReleaseImportOptions options() const {
        ReleaseImportOptions o;
        o.imageRoot = file("images");
        return o;
    }
    std::string freshStore() const { return test::scratchDir("store") + "/labels.sdrpn"; }

    // labelsOf on the stored sample equals makeLabels on the released maps (as the store rounds them),
    // and matches the float32 maps in status and counts.
    static void expectSameLabels(const StoredSample& s, const nlohmann::json& released,
                                 const LabelSettings& settings, LabelStatus expected) {
        SCOPED_TRACE("sample " + s.key);
        const std::vector<float> g = floats(released["grounding"]), k = floats(released["sink"]);
        std::vector<std::uint8_t> known;
        if (settings.maskKnownBackground) known = knownBackgroundMask(s.geometry);
        const Labels stored = labelsOf(s, settings);
        const Labels direct = makeLabels(grid(asStored(g)), grid(asStored(k)), settings, known);
        const Labels float32 = makeLabels(grid(g), grid(k), settings, known);
        EXPECT_EQ(stored.status, expected) << labelStatusName(stored.status);
        EXPECT_EQ(stored.status, direct.status);
        EXPECT_EQ(stored.values, direct.values);
        EXPECT_EQ(stored.grounding, direct.grounding);
        EXPECT_EQ(stored.peak, direct.peak);
        EXPECT_EQ(stored.foreground, direct.foreground);
        EXPECT_EQ(stored.background, direct.background);
        EXPECT_EQ(stored.box.x0, direct.box.x0);
        EXPECT_EQ(stored.box.y0, direct.box.y0);
        EXPECT_EQ(stored.box.x1, direct.box.x1);
        EXPECT_EQ(stored.box.y1, direct.box.y1);
        EXPECT_EQ(stored.status, float32.status);
        EXPECT_EQ(stored.foreground, float32.foreground);
        EXPECT_EQ(stored.background, float32.background);
        if (expected == LabelStatus::Ok) {
            EXPECT_GT(stored.foreground, 0);
            EXPECT_GT(stored.background, 0);
        }
        // dumpSampleLabels: the stored maps are exactly the released ones.
        const SampleLabelDump d = dumpSampleLabels(s, settings);
        EXPECT_EQ(d.rows, 24);
        EXPECT_EQ(d.cols, 24);
        EXPECT_EQ(d.status, stored.status);
        EXPECT_EQ(d.grounding, asStored(g));
        EXPECT_EQ(d.sink, settings.sink.empty() ? std::vector<float>(576, 0.0f) : asStored(k));
        EXPECT_EQ(d.labels, std::vector<std::int64_t>(stored.values.begin(), stored.values.end()));
    }

    static inline nlohmann::json* s_manifest = nullptr;
};

TEST_F(ReleaseLabels, LlavaProtocol4IsStoredUnderThePresetHeads) {
    const std::string path = freshStore();
    const ReleaseImportReport r = importReleasedLabels(file("llava_p4.pkl"), path, options());
    EXPECT_EQ(r.dataset, "llava_p4");
    EXPECT_EQ(r.preset, "llava-1.5-7b");
    EXPECT_EQ(r.read, 5);
    EXPECT_EQ(r.added, 5);
    EXPECT_EQ(r.skipped, 0);
    EXPECT_EQ(r.rejected, 0);
    ASSERT_EQ(r.problems.size(), 1u);  // the NaN sample, kept without maps
    EXPECT_NE(r.problems[0].find("1004"), std::string::npos) << r.problems[0];

    const LabelStore store = LabelStore::open(path);
    EXPECT_EQ(store.keys("llava_p4"), (std::vector<std::string>{"1001", "1002", "1003", "1004", "1005"}));
    const std::optional<StoredSample> s = store.get("llava_p4", "1001");
    ASSERT_TRUE(s);
    const nlohmann::json& m = manifest("llava_p4", "1001");
    EXPECT_EQ(s->image, "coco/a.png");
    EXPECT_EQ(s->question, m["prompt"].get<std::string>());
    EXPECT_EQ(s->answer, m["text"].get<std::string>());
    EXPECT_FALSE(s->reference);
    EXPECT_EQ(s->model, "sdrpn-release");
    EXPECT_EQ(s->answerTokens, 1);
    EXPECT_EQ(s->gridRows, 24);
    EXPECT_EQ(s->gridCols, 24);
    EXPECT_EQ(s->modelLayers, 15);
    EXPECT_EQ(s->modelHeads, 27);
    EXPECT_EQ(LabelSettings::fromJsonText(s->settings), LabelSettings::fromPreset("llava-1.5-7b"));
    // The grid on a 640×480 image padded to a square (expand2square, 336 px).
    EXPECT_EQ(s->geometry.fit, models::ImageFit::Pad);
    EXPECT_EQ(s->geometry.sourceWidth, 640);
    EXPECT_EQ(s->geometry.sourceHeight, 480);
    EXPECT_EQ(s->geometry.processedWidth, 336);
    EXPECT_EQ(s->geometry.gridRows, 24);
    std::vector<std::pair<int, int>> pairs;
    for (const auto& map : s->maps) pairs.emplace_back(map.layer, map.head);
    EXPECT_EQ(pairs, (std::vector<std::pair<int, int>>{{2, kHeadMean}, {14, 13}, {14, 24}, {14, 26}}));
    EXPECT_EQ(*s->meanMap(14, {24, 13, 26}), asStored(floats(m["grounding"])));
    EXPECT_EQ(*s->meanMap(2, {}), asStored(floats(m["sink"])));

    // An int question_id is stored as its decimal text.
    ASSERT_TRUE(store.get("llava_p4", "1003"));
    EXPECT_EQ(store.get("llava_p4", "1003")->image, "gqa/c.png");
    // No answer tokens: no maps, every label ignored.
    const std::optional<StoredSample> none = store.get("llava_p4", "1004");
    ASSERT_TRUE(none);
    EXPECT_EQ(none->answerTokens, 0);
    EXPECT_TRUE(none->maps.empty());
    const SampleLabelDump d = dumpSampleLabels(*none, LabelSettings::fromPreset("llava-1.5-7b"));
    EXPECT_EQ(d.status, LabelStatus::NonFinite);
    EXPECT_EQ(d.labels, std::vector<std::int64_t>(576, kIgnoreLabel));
    EXPECT_TRUE(std::isnan(d.grounding[0]));
}

TEST_F(ReleaseLabels, StoredSamplesGiveTheLabelsOfTheReleasedMaps) {
    const std::string path = freshStore();
    (void)importReleasedLabels(file("llava_p4.pkl"), path, options());
    const LabelStore store = LabelStore::open(path);
    const LabelSettings settings = LabelSettings::fromPreset("llava-1.5-7b");
    for (const char* key : {"1001", "1002", "1003"})
        expectSameLabels(*store.get("llava_p4", key), manifest("llava_p4", key), settings, LabelStatus::Ok);
    expectSameLabels(*store.get("llava_p4", "1005"), manifest("llava_p4", "1005"), settings,
                     LabelStatus::BoxTooLarge);

    // Thresholds changed after the import apply as to any stored sample.
    LabelSettings looser = settings;
    looser.foregroundRatio = 0.5;
    looser.preset = "custom";
    expectSameLabels(*store.get("llava_p4", "1001"), manifest("llava_p4", "1001"), looser, LabelStatus::Ok);
    EXPECT_LT(labelsOf(*store.get("llava_p4", "1001"), looser).foreground,
              labelsOf(*store.get("llava_p4", "1001"), settings).foreground);
}

TEST_F(ReleaseLabels, Protocol2WithFloat16AndFloat64Maps) {
    const std::string path = freshStore();
    ReleaseImportOptions o = options();
    o.dataset = "mix665k";
    const ReleaseImportReport r = importReleasedLabels(file("llava_p2.pkl"), path, o);
    EXPECT_EQ(r.added, 2);
    EXPECT_EQ(r.rejected, 0);
    const LabelStore store = LabelStore::open(path);
    EXPECT_EQ(store.datasets(), std::vector<std::string>{"mix665k"});
    const LabelSettings settings = LabelSettings::fromPreset("llava-1.5-7b");
    for (const char* key : {"2001", "2002"})
        expectSameLabels(*store.get("mix665k", key), manifest("llava_p2", key), settings, LabelStatus::Ok);
}

TEST_F(ReleaseLabels, QwenGridMapsPickTheQwenPresetAndItsPadBand) {
    const std::string path = freshStore();
    const ReleaseImportReport r = importReleasedLabels(file("qwen.pkl"), path, options());
    EXPECT_EQ(r.preset, "qwen2.5-vl-7b");
    EXPECT_EQ(r.added, 2);
    const LabelStore store = LabelStore::open(path);
    const LabelSettings settings = LabelSettings::fromPreset("qwen2.5-vl-7b");
    const std::optional<StoredSample> s = store.get("qwen", "q1");
    ASSERT_TRUE(s);
    EXPECT_EQ(LabelSettings::fromJsonText(s->settings), settings);
    EXPECT_EQ(s->geometry.processedWidth, 672);
    EXPECT_EQ(s->geometry.sourceWidth, 640);
    EXPECT_EQ(s->geometry.sourceHeight, 480);
    EXPECT_EQ(s->modelLayers, 20);
    EXPECT_EQ(s->modelHeads, 23);
    std::vector<std::pair<int, int>> pairs;
    for (const auto& map : s->maps) pairs.emplace_back(map.layer, map.head);
    EXPECT_EQ(pairs, (std::vector<std::pair<int, int>>{
                         {9, 4}, {9, 22}, {16, 1}, {16, 7}, {16, 17}, {19, 17}, {19, 20}}));
    // A landscape image: the pad band (top and bottom rows) is known background.
    const std::vector<std::uint8_t> known = knownBackgroundMask(s->geometry);
    EXPECT_EQ(known[0], 1);
    EXPECT_EQ(known[12 * 24 + 12], 0);
    for (const char* key : {"q1", "q2"})
        expectSameLabels(*store.get("qwen", key), manifest("qwen", key), settings, LabelStatus::Ok);
    const Labels l = labelsOf(*s, settings);
    EXPECT_EQ(l.values[0], 0);  // the pad band is background
}

TEST_F(ReleaseLabels, AnotherPresetStoresItsOwnHeads) {
    const std::string path = freshStore();
    ReleaseImportOptions o = options();
    o.preset = "llava-1.5-13b";
    const ReleaseImportReport r = importReleasedLabels(file("llava_p4.pkl"), path, o);
    EXPECT_EQ(r.preset, "llava-1.5-13b");
    const LabelStore store = LabelStore::open(path);
    const std::optional<StoredSample> s = store.get("llava_p4", "1002");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->maps.size(), 9u);  // 7 grounding heads, 2 sink heads
    EXPECT_EQ(s->modelLayers, 17);
    EXPECT_EQ(s->modelHeads, 31);
    expectSameLabels(*s, manifest("llava_p4", "1002"), LabelSettings::fromPreset("llava-1.5-13b"),
                     LabelStatus::Ok);

    o.preset = "no-such-model";
    EXPECT_THROW((void)importReleasedLabels(file("llava_p4.pkl"), freshStore(), o), Error);
}

TEST_F(ReleaseLabels, BadSamplesAreRejectedNamingTheirQuestionId) {
    const std::string path = freshStore();
    const ReleaseImportReport r = importReleasedLabels(file("problems.pkl"), path, options());
    EXPECT_EQ(r.read, 9);
    EXPECT_EQ(r.added, 1);
    EXPECT_EQ(r.skipped, 1);  // the duplicated p_ok
    EXPECT_EQ(r.rejected, 7);
    std::string all;
    for (const auto& p : r.problems) all += p + "\n";
    for (const char* expected :
         {"question_id p_badsize: 'grounding_attn_o2i' has shape (575,), expected (576,) or (24, 24)",
          "question_id p_lost: ", "lost.png: image not found", "question_id p_nokey: missing key 'text'",
          "question_id p_inf: 'grounding_attn_o2i' holds an infinite value at index 7",
          "question_id p_type: 'prompt' is an int", "question_id p_list: 'grounding_attn_o2i' is a list",
          "item 8: question_id is a float"})
        EXPECT_NE(all.find(expected), std::string::npos) << "no '" << expected << "' in\n" << all;
    const LabelStore store = LabelStore::open(path);
    EXPECT_EQ(store.keys("problems"), std::vector<std::string>{"p_ok"});
    EXPECT_EQ(store.get("problems", "p_ok")->image, "coco/a.png");  // the first one, not overwritten

    // Without images the sample with a missing image is kept, on the square grid.
    const std::string noImages = freshStore();
    ReleaseImportOptions o;
    o.checkImages = false;
    const ReleaseImportReport n = importReleasedLabels(file("problems.pkl"), noImages, o);
    EXPECT_EQ(n.added, 2);
    EXPECT_EQ(n.rejected, 6);
    const std::optional<StoredSample> lost = LabelStore::open(noImages).get("problems", "p_lost");
    ASSERT_TRUE(lost);
    EXPECT_EQ(lost->geometry.sourceWidth, 336);
    EXPECT_EQ(lost->geometry.sourceHeight, 336);
}

TEST_F(ReleaseLabels, RerunAddsNothingAndDuplicatesAreNeverOverwritten) {
    const std::string path = freshStore();
    EXPECT_EQ(importReleasedLabels(file("llava_p4.pkl"), path, options()).added, 5);
    const std::string created = LabelStore::open(path).get("llava_p4", "1001")->created;
    const ReleaseImportReport again = importReleasedLabels(file("llava_p4.pkl"), path, options());
    EXPECT_EQ(again.added, 0);
    EXPECT_EQ(again.skipped, 5);
    EXPECT_EQ(LabelStore::open(path).count(), 5);
    EXPECT_EQ(LabelStore::open(path).get("llava_p4", "1001")->created, created);
}

TEST_F(ReleaseLabels, CancelStopsBetweenSamplesAndARerunResumes) {
    const std::string path = freshStore();
    JobContext job;
    std::int64_t lastDone = 0;
    job.onProgress = [&](const Progress& p) {
        lastDone = p.done;
        EXPECT_EQ(p.total, 5);
        if (p.done >= 2) job.requestCancel();
    };
    EXPECT_THROW((void)importReleasedLabels(file("llava_p4.pkl"), path, options(), job), CancelledError);
    EXPECT_EQ(lastDone, 2);
    EXPECT_EQ(LabelStore::open(path).count(), 2);
    const ReleaseImportReport r = importReleasedLabels(file("llava_p4.pkl"), path, options());
    EXPECT_EQ(r.added, 3);
    EXPECT_EQ(r.skipped, 2);
}

TEST_F(ReleaseLabels, WholeFileErrorsNameTheFileAndWriteNothing) {
    for (const char* name : {"not_a_list.pkl", "list_of_str.pkl"}) {
        const std::string path = freshStore();
        try {
            (void)importReleasedLabels(file(name), path, options());
            ADD_FAILURE() << name << " was accepted";
        } catch (const Error& e) {
            const std::string what = e.what();
            EXPECT_NE(what.find(file(name)), std::string::npos) << what;
            EXPECT_NE(what.find("list of dicts"), std::string::npos) << what;
        }
        EXPECT_FALSE(fs::exists(path)) << name;
    }
    EXPECT_THROW((void)importReleasedLabels(file("missing.pkl"), freshStore(), options()), Error);
}

TEST_F(ReleaseLabels, APickleThatWouldRunCodeIsRefused) {
    const std::string path = freshStore();
    try {
        (void)importReleasedLabels(file("evil.pkl"), path, options());
        ADD_FAILURE() << "evil.pkl was accepted";
    } catch (const Error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("evil.pkl"), std::string::npos) << what;
        EXPECT_NE(what.find("system"), std::string::npos) << what;
    }
    EXPECT_FALSE(fs::exists(path));
    EXPECT_FALSE(fs::exists(file("PWNED")));
}

TEST_F(ReleaseLabels, AStoreOfAnotherModelIsRefused) {
    const std::string path = freshStore();
    (void)importReleasedLabels(file("llava_p4.pkl"), path, options());
    ReleaseImportOptions o = options();
    o.model = "llava-1.5-7b-teacher";
    try {
        (void)importReleasedLabels(file("llava_p2.pkl"), path, o);
        ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("sdrpn-release"), std::string::npos) << e.what();
    }
    EXPECT_EQ(LabelStore::open(path).count(), 5);
}

TEST_F(ReleaseLabels, EveryImportedSampleIsReadyForTraining) {
    // What the training reader does (core/pipeline/train_rpn.cpp): the stored settings, then labelsOf.
    const std::string path = freshStore();
    for (const char* name : {"llava_p4.pkl", "llava_p2.pkl", "problems.pkl"})
        (void)importReleasedLabels(file(name), path, options());
    (void)importReleasedLabels(file("qwen.pkl"), path, options());
    LabelStore::Options readOnly;
    readOnly.access = LabelStore::Access::ReadOnly;
    const LabelStore store = LabelStore::open(path, readOnly);
    int ok = 0, visited = 0;
    store.forEach([&](const StoredSample& s) {
        ++visited;
        EXPECT_EQ(s.gridRows * s.gridCols, 576);
        const LabelSettings settings = LabelSettings::fromJsonText(s.settings, s.key);
        const Labels l = labelsOf(s, settings);
        EXPECT_EQ(l.values.size(), 576u);
        ok += l.ok() ? 1 : 0;
        return true;
    });
    EXPECT_EQ(visited, 5 + 2 + 1 + 2);
    EXPECT_EQ(ok, 3 + 2 + 1 + 2);
}

TEST_F(ReleaseLabels, ImageSizesComeFromTheHeaders) {
    EXPECT_EQ(imageFileSize(file("images/coco/a.png")), std::make_pair(640, 480));
    EXPECT_EQ(imageFileSize(file("images/coco/b.png")), std::make_pair(300, 500));
    io::ImageRgb8 image;
    image.width = 50;
    image.height = 30;
    image.pixels.assign(50 * 30 * 3, 90);
    const std::string dir = test::scratchDir("images");
    io::saveImage(image, dir + "/x.jpg");
    EXPECT_EQ(imageFileSize(dir + "/x.jpg"), std::make_pair(50, 30));
    try {
        (void)imageFileSize(dir + "/none.png");
        ADD_FAILURE() << "a missing image was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("none.png: image not found"), std::string::npos) << e.what();
    }
    std::ofstream(dir + "/junk.png") << "not an image";
    EXPECT_THROW((void)imageFileSize(dir + "/junk.png"), Error);
}

TEST_F(ReleaseLabels, GeometryIsThePaddedSquareGrid) {
    const models::GridGeometry llava = releaseGeometry(LabelVariant::Llava, 640, 480);
    const models::GridGeometry direct = models::makeGridGeometry(640, 480, models::ImageFit::Pad);
    EXPECT_EQ(llava.processedWidth, direct.processedWidth);
    EXPECT_EQ(llava.padTop, direct.padTop);
    EXPECT_EQ(llava.scaleX, direct.scaleX);
    const models::GridGeometry qwen = releaseGeometry(LabelVariant::Qwen, 300, 500);
    EXPECT_EQ(qwen.processedWidth, 672);
    EXPECT_EQ(qwen.gridRows, 24);
    EXPECT_EQ(qwen.gridCols, 24);
    EXPECT_GT(qwen.padLeft, 0);
}
