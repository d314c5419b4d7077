// RPN training (sdrpn.md §3.3–3.5) on the tiny LLaVA fixture: a small set labeled by the model itself, then
// the twig (K=3, T=2) trained on it: the loss falls, the schedule's table, the saved twig loads back, an
// interrupted and resumed run ends where an uninterrupted one does, and bad inputs are named.
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "core/data/dataset.h"
#include "core/data/label_store.h"
#include "core/data/labeling.h"
#include "core/data/pipeline_teacher.h"
#include "core/io/image.h"
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/pipeline/ask.h"
#include "core/pipeline/train_rpn.h"
#include "tests/support/test_support.h"

using namespace sdrpn;
using namespace sdrpn::pipeline;
namespace fs = std::filesystem;

namespace {

constexpr int kSamples = 8;

// Grounding from layer 3 heads 1 and 2 and no sink map: a random model's sink layer would mark every cell
// a sink. A high foreground ratio keeps the foreground to the few brightest cells.
const char* kSettingsJson =
    R"({"preset": "llava-1.5-7b", "grounding": [{"layer": 3, "heads": [1, 2]}], "sink": [],
        "foreground_ratio": 0.9, "background_ratio": 0.5, "max_box_ratio": 1.0})";

// An image with a bright square on a dark background, placed and coloured per index.
io::ImageRgb8 makeImage(int i) {
    io::ImageRgb8 img;
    img.width = 96 + 8 * i;
    img.height = 72;
    img.pixels.assign(std::size_t(img.width) * std::size_t(img.height) * 3, std::uint8_t(10 + 5 * i));
    const int x0 = (i * 23) % (img.width - 24), y0 = (i * 17) % (img.height - 24);
    for (int y = y0; y < y0 + 24; ++y)
        for (int x = x0; x < x0 + 24; ++x)
            for (int c = 0; c < 3; ++c)
                img.pixels[(std::size_t(y) * std::size_t(img.width) + std::size_t(x)) * 3 + std::size_t(c)] =
                    std::uint8_t(c == i % 3 ? 250 : 60 + 20 * c);
    return img;
}

std::vector<std::string> readLines(const std::string& path) {
    std::vector<std::string> lines;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) lines.push_back(line);
    return lines;
}

std::map<std::string, torch::Tensor> tensorsOf(const std::string& file) {
    return io::loadTensors(*io::SafetensorsArchive::open(file));
}

}  // namespace

class TrainRpn : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        JobContext job;
        auto model = loadModel(test::fixturePath("tiny-llava-hf"), {}, job);
        ASSERT_TRUE(model.ok()) << model.message();
        s_model = new std::shared_ptr<const LoadedModel>(model.value());

        s_dir = new std::string(test::scratchDir("train-set"));
        std::ofstream jsonl(*s_dir + "/set.jsonl");
        for (int i = 0; i < kSamples; ++i) {
            io::saveImage(makeImage(i), *s_dir + "/img" + std::to_string(i) + ".png");
            jsonl << R"({"question_id": "q)" << i << R"(", "image": "img)" << i
                  << R"(.png", "question": "Where is the square number )" << i << R"(?"})"
                  << "\n";
        }
        jsonl.close();
        data::DatasetOptions datasetOptions;
        datasetOptions.imageRoot = *s_dir;
        const data::Dataset dataset = data::readDataset(*s_dir + "/set.jsonl", datasetOptions);

        s_store = new std::string(*s_dir + "/labels.sdrpn");
        data::LabelStore store = data::LabelStore::open(*s_store);
        AskOptions ask = data::PipelineTeacher::defaultOptions();
        ask.generation.maxNewTokens = 4;
        data::PipelineTeacher teacher(model.value(), ask);
        data::LabelingOptions labeling;
        labeling.settings = LabelSettings::fromJsonText(kSettingsJson);
        const data::LabelingSummary s = data::runLabeling(dataset, store, teacher, labeling, job);
        ASSERT_TRUE(s.status.ok()) << s.status.message;
        ASSERT_EQ(s.labeled, kSamples);
    }
    static void TearDownTestSuite() {
        delete s_model;
        delete s_dir;
        delete s_store;
    }

    static TrainOptions options(const std::string& outDir) {
        TrainOptions o;
        o.store = *s_store;
        o.imageRoot = *s_dir;
        o.outDir = outDir;
        o.rpnFromModel = false;
        o.rpn = {3, 2, true};
        o.batch = 2;
        o.accum = 1;
        o.lr = 1e-3;
        o.warmupRatio = 0.0;
        o.maxGradNorm = 1.0;
        return o;
    }
    static Result<TrainSummary> train(const TrainOptions& o, const TrainCallback& onStep = {},
                                      JobContext& job = JobContext::none()) {
        return trainRpn(**s_model, o, job, onStep);
    }
    static TrainSummary trainOk(const TrainOptions& o, const TrainCallback& onStep = {}) {
        auto r = train(o, onStep);
        EXPECT_TRUE(r.ok()) << r.message();
        if (!r.ok()) throw std::runtime_error(r.message());
        return std::move(r).value();
    }
    static std::string failure(const TrainOptions& o) {
        auto r = train(o);
        return r.ok() ? "(no error)" : r.message();
    }

    static std::shared_ptr<const LoadedModel>* s_model;
    static std::string* s_dir;
    static std::string* s_store;
};

std::shared_ptr<const LoadedModel>* TrainRpn::s_model = nullptr;
std::string* TrainRpn::s_dir = nullptr;
std::string* TrainRpn::s_store = nullptr;

TEST(CosineLearningRate, WarmupThenCosineToZero) {
    struct Row {
        std::int64_t step;
        double expected;
    };
    // 100 steps, warmup 0.1 → 10 warmup steps; the cosine runs over the remaining 90.
    const std::vector<Row> table = {
        {0, 0.0}, {1, 0.1}, {5, 0.5}, {10, 1.0}, {55, 0.5}, {100, 0.0},
    };
    for (const auto& row : table)
        EXPECT_NEAR(cosineLearningRate(1.0, row.step, 100, 0.1), row.expected, 1e-12) << "step " << row.step;
    EXPECT_NEAR(cosineLearningRate(2e-4, 0, 100, 0.0), 2e-4, 1e-15);  // no warmup: the peak at once
    EXPECT_NEAR(cosineLearningRate(1.0, 3, 10, 0.03), std::cos(std::acos(-1.0) * 2.0 / 9.0) * 0.5 + 0.5,
                1e-12);
    for (std::int64_t s = 11; s < 100; ++s)  // decreasing after the peak
        EXPECT_LT(cosineLearningRate(1.0, s, 100, 0.1), cosineLearningRate(1.0, s - 1, 100, 0.1));
}

TEST_F(TrainRpn, DefaultRpnConfigFitsTheBackbone) {
    const RpnConfig c = defaultRpnConfig(*(*s_model)->backbone);  // 6 layers: K = round(6·15/32) = 3
    EXPECT_EQ(c.K, 3);
    EXPECT_EQ(c.T, 3);
    EXPECT_TRUE(c.multiHead);
}

TEST_F(TrainRpn, LossFallsAndTheOutputFolderIsComplete) {
    const std::string out = test::scratchDir("loss");
    TrainOptions o = options(out);
    o.epochs = 100;
    o.maxSteps = 40;
    std::vector<double> losses;
    std::int64_t reported = 0;
    const TrainSummary s = trainOk(o, [&](const TrainMetrics& m) {
        EXPECT_EQ(m.step, std::int64_t(losses.size()) + 1);
        EXPECT_EQ(m.totalSteps, 40);
        EXPECT_GT(m.validCells, 0);
        losses.push_back(m.loss);
        reported = m.step;
    });
    ASSERT_TRUE(s.status.ok()) << s.status.message;
    ASSERT_EQ(losses.size(), 40u);
    EXPECT_EQ(reported, 40);
    EXPECT_EQ(s.steps, 40);
    EXPECT_GT(s.samplesUsed, 2);
    EXPECT_EQ(s.samplesUsed + s.skipped, kSamples);
    double first = 0, last = 0;
    for (int i = 0; i < 5; ++i) {
        first += losses[std::size_t(i)] / 5;
        last += losses[losses.size() - 1 - std::size_t(i)] / 5;
    }
    EXPECT_LT(last, 0.6 * first) << "first steps " << first << ", last steps " << last;
    EXPECT_DOUBLE_EQ(s.firstLoss, losses.front());
    EXPECT_DOUBLE_EQ(s.lastLoss, losses.back());

    for (const char* f : {"model.safetensors", "config.json", "training_args.json", "metrics.jsonl"})
        EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
    EXPECT_EQ(readLines(out + "/metrics.jsonl").size(), 40u);
    EXPECT_EQ(s.lastCheckpoint, (fs::path(out) / "checkpoint-40").string());
    for (const char* f : {"model.safetensors", "config.json", "trainer_state.json", "optimizer.pt"})
        EXPECT_TRUE(fs::exists(s.lastCheckpoint + "/" + f)) << f;

    // The saved twig loads back and gives the logits of the last checkpoint; training changed it.
    const models::Backbone& backbone = *(*s_model)->backbone;
    const Rpn trained = loadRpn(out, backbone);
    const Rpn checkpoint = loadRpn(s.lastCheckpoint, backbone);
    const Rpn initial = initRpnFromBackbone(backbone, {3, 2, true});
    EXPECT_EQ(trained->config(), (RpnConfig{3, 2, true}));
    torch::manual_seed(0);
    const torch::Tensor hidden = torch::randn({620, 64});
    const torch::Tensor a = trained->forward(hidden, 619, 5, 576);
    EXPECT_TENSOR_NEAR(a, checkpoint->forward(hidden, 619, 5, 576), 1e-6);
    EXPECT_GT((a - initial->forward(hidden, 619, 5, 576)).abs().max().item<double>(), 1e-3);
    const auto stored = tensorsOf(out + "/model.safetensors");
    for (const auto& [key, tensor] : trained->checkpointTensors()) {
        ASSERT_TRUE(stored.count(key)) << key;
        EXPECT_EQ(stored.at(key).scalar_type(), torch::kFloat) << key;
        EXPECT_TENSOR_NEAR(tensor, stored.at(key), 0.0);
    }
}

TEST_F(TrainRpn, ResumedRunEndsWhereAnUninterruptedOneDoes) {
    constexpr std::int64_t kSteps = 8;  // 4 steps per epoch: the run crosses an epoch
    auto opts = [&](const std::string& out) {
        TrainOptions o = options(out);
        o.epochs = 3;
        o.maxSteps = kSteps;
        o.warmupRatio = 0.25;
        o.weightDecay = 0.01;
        o.keepCheckpoints = 0;
        return o;
    };
    const std::string whole = test::scratchDir("whole");
    const TrainSummary a = trainOk(opts(whole));
    ASSERT_TRUE(a.status.ok()) << a.status.message;

    // Cancel after step 3: a whole checkpoint, no temporary folder, no final model.
    const std::string parts = test::scratchDir("parts");
    JobContext job;
    auto cancelled = train(
        opts(parts),
        [&](const TrainMetrics& m) {
            if (m.step == kSteps / 2 - 1) job.requestCancel();
        },
        job);
    ASSERT_TRUE(cancelled.ok()) << cancelled.message();
    EXPECT_TRUE(cancelled.value().status.cancelled());
    EXPECT_EQ(cancelled.value().steps, kSteps / 2 - 1);
    const std::string checkpoint = (fs::path(parts) / "checkpoint-3").string();
    EXPECT_EQ(cancelled.value().lastCheckpoint, checkpoint);
    for (const char* f : {"model.safetensors", "config.json", "trainer_state.json", "optimizer.pt"})
        EXPECT_TRUE(fs::exists(checkpoint + "/" + f)) << f;
    for (const auto& entry : fs::directory_iterator(parts))
        EXPECT_NE(entry.path().extension(), ".tmp") << entry.path();
    EXPECT_FALSE(fs::exists(parts + "/model.safetensors"));

    // A run killed after writing another metrics line: the resumed run drops it.
    std::ofstream(parts + "/metrics.jsonl", std::ios::app) << R"({"step": 4, "loss": 123.0})"
                                                           << "\n";
    std::ofstream(parts + "/metrics.jsonl", std::ios::app) << R"({"step": 5, "lo)";  // cut off

    // Killed while step 3 was being written again: its earlier copy stood aside as checkpoint-3.old and
    // the new one was unfinished. The next run puts the earlier copy back.
    fs::rename(checkpoint, checkpoint + ".old");
    fs::create_directories(checkpoint + ".tmp");
    std::ofstream(checkpoint + ".tmp/model.safetensors") << "cut off";

    // A fresh run refuses the folder; resume continues.
    EXPECT_NE(failure(opts(parts)).find("resume"), std::string::npos);
    EXPECT_TRUE(fs::exists(checkpoint + "/trainer_state.json"));
    TrainOptions resume = opts(parts);
    resume.resume = true;
    const TrainSummary b = trainOk(resume);
    ASSERT_TRUE(b.status.ok()) << b.status.message;
    EXPECT_EQ(b.steps, kSteps);
    EXPECT_DOUBLE_EQ(b.firstLoss, a.firstLoss);
    EXPECT_NEAR(b.lastLoss, a.lastLoss, 1e-5);

    const auto wa = tensorsOf(whole + "/model.safetensors");
    const auto wb = tensorsOf(parts + "/model.safetensors");
    ASSERT_EQ(wa.size(), wb.size());
    for (const auto& [key, tensor] : wa) {
        ASSERT_TRUE(wb.count(key)) << key;
        EXPECT_TENSOR_NEAR(wb.at(key), tensor, 1e-5) << key;
    }
    const auto lines = readLines(parts + "/metrics.jsonl");
    EXPECT_EQ(lines.size(), std::size_t(kSteps));
    EXPECT_EQ(lines.size(), readLines(whole + "/metrics.jsonl").size());
    for (const auto& line : lines) EXPECT_EQ(line.find("\"loss\": 123"), std::string::npos) << line;

    // A different batch cannot continue the checkpoint's sample order.
    TrainOptions other = opts(parts);
    other.resumeFrom = checkpoint;
    other.batch = 3;
    EXPECT_NE(failure(other).find("batch"), std::string::npos);

    // Resumed from step 3 again, the run writes checkpoint-8 a second time: it replaces the first whole.
    TrainOptions again = opts(parts);
    again.resumeFrom = checkpoint;
    const TrainSummary c = trainOk(again);
    ASSERT_TRUE(c.status.ok()) << c.status.message;
    EXPECT_EQ(c.lastCheckpoint, (fs::path(parts) / "checkpoint-8").string());
    EXPECT_TRUE(fs::exists(c.lastCheckpoint + "/trainer_state.json"));
    EXPECT_NEAR(c.lastLoss, a.lastLoss, 1e-5);
    for (const auto& entry : fs::directory_iterator(parts)) {
        EXPECT_NE(entry.path().extension(), ".tmp") << entry.path();
        EXPECT_NE(entry.path().extension(), ".old") << entry.path();
    }
}

TEST_F(TrainRpn, BadInputsNameTheCulprit) {
    const std::string out = test::scratchDir("bad");
    TrainOptions o = options(out);
    o.store = out + "/missing.sdrpn";
    EXPECT_NE(failure(o).find("missing.sdrpn"), std::string::npos) << failure(o);

    o = options(out);
    o.rpn = {5, 3, true};
    EXPECT_NE(failure(o).find("K + T"), std::string::npos) << failure(o);

    o = options(out);
    o.batch = 0;
    EXPECT_NE(failure(o).find("batch"), std::string::npos) << failure(o);

    o = options(out);
    o.lr = 0.0;
    EXPECT_NE(failure(o).find("lr"), std::string::npos) << failure(o);

    const std::string empty = out + "/empty.sdrpn";
    data::LabelStore::open(empty);
    o = options(out);
    o.store = empty;
    EXPECT_NE(failure(o).find("empty.sdrpn: no usable sample"), std::string::npos) << failure(o);

    const std::string notStore = out + "/notes.txt";
    std::ofstream(notStore) << "not a database";
    o = options(out);
    o.store = notStore;
    EXPECT_NE(failure(o).find("notes.txt"), std::string::npos) << failure(o);

    o = options(out);
    o.imageRoot = out + "/no-images";
    EXPECT_NE(failure(o).find("no-images"), std::string::npos) << failure(o);

    // Images gone: every sample is skipped, and the error says why.
    const std::string elsewhere = test::scratchDir("elsewhere");
    o = options(out);
    o.imageRoot = elsewhere;
    const std::string message = failure(o);
    EXPECT_NE(message.find("no usable sample"), std::string::npos) << message;
    EXPECT_NE(message.find("image not found"), std::string::npos) << message;

    o = options(out);
    o.resume = true;
    EXPECT_NE(failure(o).find("no checkpoint"), std::string::npos) << failure(o);
}
