// The labeling job with a scripted teacher (no model): maps kept per the label settings, labels rebuilt
// from the store equal the live ones, cancel finishes the sample in flight, resume, failed images, teacher
// failures, a store of another model, answers without answer rows.
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include <gtest/gtest.h>

#include "core/data/labeling.h"
#include "core/io/image.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
using namespace sdrpn::data;
namespace fs = std::filesystem;

namespace {

constexpr int kLayers = 4, kHeads = 4, kSinkLayer = 1;

// Attention shaped like a real teacher's: a bright 3x3 blob where the question points, two sink tokens
// (keys 0 and 1) that every layer attends to, and the sink layer looking only at the sinks.
models::AttentionMaps scriptedMaps(const std::string& question, const std::vector<int>& layers,
                                   int answerRows) {
    const int centre = 30 + int(std::hash<std::string>()(question) % 500);
    const int r0 = std::min(centre / 24, 21), c0 = std::min(centre % 24, 21);
    models::AttentionMaps m;
    m.heads = kHeads;
    m.imageKeys = 576;
    for (int k = 0; k < 576; ++k) m.imageKeyPositions.push_back(10 + k);
    m.imageSpans = {models::ImageSpan{10, 576, {24, 24}}};
    m.rows.push_back({700, 5, models::QueryKind::LastPrompt});  // must not count as an answer row
    for (int r = 0; r < answerRows; ++r) m.rows.push_back({701 + r, 40 + r, models::QueryKind::Answer});
    std::vector<int> captured = layers;
    if (captured.empty())
        for (int l = 0; l < kLayers; ++l) captured.push_back(l);
    for (int layer : captured) {
        models::LayerAttention la;
        la.layer = layer;
        const std::size_t rows = m.rows.size();
        la.values.resize(std::size_t(kHeads) * rows * 576);
        for (int h = 0; h < kHeads; ++h)
            for (std::size_t r = 0; r < rows; ++r)
                for (int k = 0; k < 576; ++k) {
                    const int row = k / 24, col = k % 24;
                    const bool blob = row >= r0 && row < r0 + 3 && col >= c0 && col < c0 + 3;
                    float v = 0.0002f + 1e-6f * float(h);
                    if (k < 2)
                        v = 0.2f;
                    else if (blob && layer != kSinkLayer)
                        v = 0.05f + 0.001f * float(r) + 0.002f * float(h) +
                            0.005f * float((row - r0) * 3 + col - c0);
                    la.values[(std::size_t(h) * rows + r) * 576 + std::size_t(k)] = v;
                }
        m.layers.push_back(std::move(la));
    }
    return m;
}

class ScriptedTeacher : public Teacher {
public:
    std::string id = "scripted-teacher";
    std::function<void(const std::string& question)> onAnswer;  // runs inside answer()
    std::set<std::string> failOn;                               // questions that throw
    bool failAlways = false;
    std::set<std::string> eosFirst;  // questions answered with EOS at once: no answer rows
    mutable int calls = 0;
    mutable std::vector<int> lastLayers;

    std::string modelId() const override { return id; }
    int layerCount() const override { return kLayers; }
    int headCount() const override { return kHeads; }
    TeacherAnswer answer(const io::ImageRgb8& image, const std::string& question,
                         const std::vector<int>& layers, JobContext& job) const override {
        ++calls;
        lastLayers = layers;
        if (onAnswer) onAnswer(question);
        job.report(1, 3, "decoding");  // as generation reports each token
        job.throwIfCancelled();
        if (failAlways || failOn.count(question)) throw Error("scripted failure for '" + question + "'");
        TeacherAnswer out;
        out.answer = eosFirst.count(question) ? "" : "answer to " + question;
        out.maps = scriptedMaps(question, layers, eosFirst.count(question) ? 0 : 3);
        out.geometry = models::makeGridGeometry(image.width, image.height, models::ImageFit::Pad);
        return out;
    }
};

LabelSettings testSettings() {
    return LabelSettings::fromJsonText(
        R"({"preset": "llava-1.5-7b", "grounding": [{"layer": 3, "heads": [1, 2]}], "sink": [{"layer": 1, "heads": []}]})");
}

// A dataset of `n` good images (q0..), plus optional broken entries, as JSONL in a scratch folder.
Dataset makeDataset(int n, bool withBrokenImages = false) {
    const std::string dir = test::scratchDir("data");
    std::ofstream jsonl(dir + "/set.jsonl");
    for (int i = 0; i < n; ++i) {
        io::ImageRgb8 img;
        img.width = 40 + i;
        img.height = 30;
        img.pixels.assign(std::size_t(img.width) * 30 * 3, std::uint8_t(20 * i));
        io::saveImage(img, dir + "/img" + std::to_string(i) + ".png");
        jsonl << R"({"question_id": "q)" << i << R"(", "image": "img)" << i
              << R"(.png", "question": "Where is thing )" << i << R"(?"})"
              << "\n";
    }
    if (withBrokenImages) {
        std::ofstream(dir + "/corrupt.png") << "this is not a png";
        jsonl << R"({"question_id": "corrupt", "image": "corrupt.png", "question": "Q?"})"
              << "\n";
        jsonl << R"({"question_id": "missing", "image": "missing.png", "question": "Q?"})"
              << "\n";
    }
    jsonl.close();
    DatasetOptions opt;
    opt.imageRoot = dir;
    return readDataset(dir + "/set.jsonl", opt);
}

LabelingOptions testOptions() {
    LabelingOptions o;
    o.settings = testSettings();
    return o;
}

}  // namespace

TEST(MapSelection, FollowsTheSettings) {
    MapSelection s = MapSelection::forSettings(LabelSettings::fromPreset("llava-1.5-7b"));
    EXPECT_EQ(s.heads, (std::vector<std::pair<int, int>>{{14, 24}, {14, 13}, {14, 26}}));
    EXPECT_EQ(s.meanLayers, (std::vector<int>{2}));
    EXPECT_EQ(s.captureLayers(), (std::vector<int>{2, 14}));

    s = MapSelection::forSettings(LabelSettings::fromPreset("llava-1.5-13b"));
    EXPECT_EQ(s.heads.size(), 9u);  // 7 grounding pairs + 2 sink heads (§2.4)
    EXPECT_TRUE(s.meanLayers.empty());
    EXPECT_EQ(s.captureLayers(), (std::vector<int>{13, 15, 16}));

    s.allLayerMeans = true;
    EXPECT_TRUE(s.captureLayers().empty());  // every layer
}

TEST(LabelingJob, StoresTheNeededMapsAndLabelsMatchTheLiveOnes) {
    Dataset data = makeDataset(3);
    LabelStore store = LabelStore::open(test::scratchDir() + "/labels.sdrpn");
    ScriptedTeacher teacher;
    std::vector<LabelingProgress> seen;
    JobContext job;
    LabelingSummary s = runLabeling(data, store, teacher, testOptions(), job,
                                    [&](const LabelingProgress& p) { seen.push_back(p); });
    ASSERT_TRUE(s.status.ok()) << s.status.message;
    EXPECT_EQ(s.total, 3);
    EXPECT_EQ(s.labeled, 3);
    EXPECT_EQ(s.alreadyThere, 0);
    EXPECT_TRUE(s.failed.empty());
    EXPECT_EQ(teacher.lastLayers, (std::vector<int>{1, 3}));  // only the layers the settings need
    ASSERT_GE(seen.size(), 3u);
    EXPECT_EQ(seen[0].key, "q0");
    EXPECT_EQ(seen[0].answer, "answer to Where is thing 0?");
    EXPECT_EQ(seen[0].remaining, 2);
    EXPECT_GT(seen[2].samplesPerSecond, 0.0);

    auto stored = store.get(data.id, "q1");
    ASSERT_TRUE(stored);
    EXPECT_EQ(stored->model, "scripted-teacher");
    EXPECT_EQ(stored->image, "img1.png");
    EXPECT_EQ(stored->question, "Where is thing 1?");
    EXPECT_EQ(stored->answer, "answer to Where is thing 1?");
    EXPECT_EQ(stored->answerTokens, 3);
    EXPECT_EQ(LabelSettings::fromJsonText(stored->settings), testSettings());
    EXPECT_EQ(stored->gridRows, 24);
    EXPECT_EQ(stored->geometry.sourceWidth, 41);
    EXPECT_EQ(stored->modelHeads, kHeads);
    ASSERT_EQ(stored->maps.size(), 3u);  // layer 1 head mean, layer 3 heads 1 and 2
    EXPECT_EQ(stored->maps[0].layer, 1);
    EXPECT_EQ(stored->maps[0].head, kHeadMean);
    EXPECT_EQ(stored->maps[2].head, 2);

    // Labels from the store equal those from the live capture.
    const models::AttentionMaps live = scriptedMaps("Where is thing 1?", {1, 3}, 3);
    const LabelSettings settings = testSettings();
    const Labels want = makeLabels(groundingMap(live, settings), sinkMap(live, settings), settings);
    const Labels got = labelsOf(*stored, settings);
    ASSERT_EQ(want.status, LabelStatus::Ok);
    EXPECT_EQ(got.status, LabelStatus::Ok);
    EXPECT_EQ(got.values, want.values);
    EXPECT_EQ(got.foreground, 9);
    EXPECT_EQ(got.background, want.background);

    // Other thresholds, no relabeling: a stricter foreground ratio keeps fewer cells.
    LabelSettings strict = settings;
    strict.foregroundRatio = 0.99;
    EXPECT_LT(labelsOf(*stored, strict).foreground, 9);

    // Settings that need maps the store lacks are named.
    LabelSettings other = settings;
    other.grounding = {{3, {0, 1}}, {2, {}}};
    EXPECT_EQ(missingMaps(*stored, other), (std::vector<std::string>{"layer 2 head mean", "layer 3 head 0"}));
    try {
        labelsOf(*stored, other);
        FAIL() << "no error";
    } catch (const sdrpn::Error& e) {
        EXPECT_NE(std::string(e.what()).find(
                      "sample set/q1: the store does not hold layer 2 head mean, layer 3 head 0"),
                  std::string::npos)
            << e.what();
    }
}

TEST(LabelingJob, CancelFinishesTheSampleInFlightAndARerunResumes) {
    Dataset data = makeDataset(4);
    const std::string path = test::scratchDir() + "/labels.sdrpn";
    JobContext job;
    {
        LabelStore store = LabelStore::open(path);
        ScriptedTeacher teacher;
        // Ctrl-C arrives while the second sample is being answered.
        teacher.onAnswer = [&](const std::string& q) {
            if (q == "Where is thing 1?") job.requestCancel();
        };
        LabelingSummary s = runLabeling(data, store, teacher, testOptions(), job);
        EXPECT_TRUE(s.status.cancelled()) << s.status.message;
        EXPECT_EQ(s.labeled, 2);  // the one in flight was finished and written
        EXPECT_EQ(teacher.calls, 2);
        EXPECT_EQ(store.count(), 2);
    }
    LabelStore store = LabelStore::open(path);
    ScriptedTeacher teacher;
    JobContext again;
    LabelingSummary s = runLabeling(data, store, teacher, testOptions(), again);
    ASSERT_TRUE(s.status.ok()) << s.status.message;
    EXPECT_EQ(s.alreadyThere, 2);
    EXPECT_EQ(s.labeled, 2);
    EXPECT_EQ(teacher.calls, 2);  // only the missing samples were asked
    EXPECT_EQ(store.keys(data.id), (std::vector<std::string>{"q0", "q1", "q2", "q3"}));
}

TEST(LabelingJob, CancelCanStopTheTeacherMidAnswer) {
    Dataset data = makeDataset(2);
    LabelStore store = LabelStore::open(test::scratchDir() + "/labels.sdrpn");
    ScriptedTeacher teacher;
    JobContext job;
    LabelingOptions o = testOptions();
    o.finishSampleOnCancel = false;
    // Ctrl-C while the first answer is generated; the job forwards it through the teacher's progress.
    teacher.onAnswer = [&](const std::string&) { job.requestCancel(); };
    LabelingSummary s = runLabeling(data, store, teacher, o, job);
    EXPECT_TRUE(s.status.cancelled()) << s.status.message;
    EXPECT_EQ(s.labeled, 0);
    EXPECT_EQ(teacher.calls, 1);
    EXPECT_EQ(store.count(), 0);
}

TEST(LabelingJob, BrokenImagesAreListedAndNotFatal) {
    Dataset data = makeDataset(2, /*withBrokenImages*/ true);
    LabelStore store = LabelStore::open(test::scratchDir() + "/labels.sdrpn");
    ScriptedTeacher teacher;
    JobContext job;
    LabelingSummary s = runLabeling(data, store, teacher, testOptions(), job);
    ASSERT_TRUE(s.status.ok()) << s.status.message;
    EXPECT_EQ(s.labeled, 2);
    ASSERT_EQ(s.failed.size(), 2u);
    std::map<std::string, std::string> reasons;
    for (const auto& f : s.failed) reasons[f.key] = f.reason;
    EXPECT_EQ(reasons["missing"], "image not found");
    EXPECT_NE(reasons["corrupt"].find("corrupt.png"), std::string::npos) << reasons["corrupt"];
    EXPECT_EQ(store.count(), 2);
    EXPECT_EQ(teacher.calls, 2);
}

TEST(LabelingJob, TeacherFailuresAreListedAndManyInARowStopTheJob) {
    Dataset data = makeDataset(4);
    {
        LabelStore store = LabelStore::open(test::scratchDir() + "/labels.sdrpn");
        ScriptedTeacher teacher;
        teacher.failOn = {"Where is thing 2?"};
        JobContext job;
        LabelingSummary s = runLabeling(data, store, teacher, testOptions(), job);
        ASSERT_TRUE(s.status.ok()) << s.status.message;
        EXPECT_EQ(s.labeled, 3);
        ASSERT_EQ(s.failed.size(), 1u);
        EXPECT_EQ(s.failed[0].key, "q2");
        EXPECT_NE(s.failed[0].reason.find("scripted failure"), std::string::npos);
    }
    LabelStore store = LabelStore::open(test::scratchDir() + "/labels.sdrpn");
    ScriptedTeacher teacher;
    teacher.failAlways = true;
    LabelingOptions o = testOptions();
    o.maxConsecutiveFailures = 3;
    JobContext job;
    LabelingSummary s = runLabeling(data, store, teacher, o, job);
    EXPECT_EQ(s.status.code, StatusCode::Failed);
    EXPECT_NE(s.status.message.find("failed on 3 samples in a row"), std::string::npos) << s.status.message;
    EXPECT_EQ(teacher.calls, 3);
}

TEST(LabelingJob, RefusesAStoreOfAnotherModelAndSettingsOutOfRange) {
    Dataset data = makeDataset(1);
    const std::string path = test::scratchDir() + "/labels.sdrpn";
    LabelStore store = LabelStore::open(path);
    ScriptedTeacher teacher;
    JobContext job;
    ASSERT_TRUE(runLabeling(data, store, teacher, testOptions(), job).status.ok());
    ScriptedTeacher other;
    other.id = "another-model";
    LabelingSummary s = runLabeling(data, store, other, testOptions(), job);
    EXPECT_EQ(s.status.code, StatusCode::Failed);
    EXPECT_NE(s.status.message.find(path + ": holds labels by model 'scripted-teacher'"), std::string::npos)
        << s.status.message;
    EXPECT_EQ(other.calls, 0);

    LabelingOptions o = testOptions();
    o.settings = LabelSettings::fromPreset("llava-1.5-7b");  // layer 14 of a 4-layer teacher
    s = runLabeling(data, store, teacher, o, job);
    EXPECT_EQ(s.status.code, StatusCode::Failed);
    EXPECT_NE(s.status.message.find(
                  "layer 14 head 13 is out of range for model scripted-teacher (4 layers, 4 heads)"),
              std::string::npos)
        << s.status.message;
}

TEST(LabelingJob, AnswerWithoutAnswerRowsIsStoredWithoutMaps) {
    Dataset data = makeDataset(2);
    LabelStore store = LabelStore::open(test::scratchDir() + "/labels.sdrpn");
    ScriptedTeacher teacher;
    teacher.eosFirst = {"Where is thing 0?"};
    JobContext job;
    ASSERT_TRUE(runLabeling(data, store, teacher, testOptions(), job).status.ok());
    auto s = store.get(data.id, "q0");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->answerTokens, 0);
    EXPECT_TRUE(s->maps.empty());
    const Labels l = labelsOf(*s, testSettings());
    EXPECT_EQ(l.status, LabelStatus::NonFinite);
    EXPECT_EQ(l.values, std::vector<int>(576, kIgnoreLabel));
}

TEST(LabelingJob, ExtraMapsAndAllLayerMeans) {
    Dataset data = makeDataset(1);
    LabelStore store = LabelStore::open(test::scratchDir() + "/labels.sdrpn");
    ScriptedTeacher teacher;
    LabelingOptions o = testOptions();
    o.extra.addAllHeads(0, kHeads);
    o.extra.allLayerMeans = true;
    JobContext job;
    ASSERT_TRUE(runLabeling(data, store, teacher, o, job).status.ok());
    EXPECT_TRUE(teacher.lastLayers.empty());  // every layer captured
    auto s = store.get(data.id, "q0");
    ASSERT_TRUE(s);
    // Layer 0: mean + 4 heads; layer 1: mean; layer 2: mean; layer 3: mean + heads 1, 2.
    EXPECT_EQ(s->maps.size(), 5u + 1u + 1u + 3u);
    for (int l = 0; l < kLayers; ++l) EXPECT_TRUE(s->find(l, kHeadMean)) << l;
    // Any head group of layer 0 can now be picked without relabeling.
    LabelSettings picked = testSettings();
    picked.grounding = {{0, {0, 3}}};
    EXPECT_TRUE(missingMaps(*s, picked).empty());
}

TEST(LabelingJob, ProgressLine) {
    LabelingProgress p;
    p.total = 300;
    p.labeled = 12;
    p.alreadyThere = 40;
    p.failed = 1;
    p.samplesPerSecond = 2.314;
    p.etaSeconds = 125;
    EXPECT_EQ(formatProgress(p),
              "53/300 (12 labeled, 40 already there, 1 failed) | 2.31 samples/s | ETA 2m05s");
    p.etaSeconds = -1;
    p.alreadyThere = 0;
    p.failed = 0;
    EXPECT_EQ(formatProgress(p), "12/300 (12 labeled) | 2.31 samples/s | ETA --");
}
