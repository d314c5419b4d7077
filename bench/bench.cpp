// sdrpn-bench: timings of the model core on this machine (prefill, decode, vision tower) and what
// attention capture costs on top. On CPU it measures the bundled demo model (made in a temporary folder
// unless --model is given). Prints a table; --json FILE writes the same numbers.
//
//   sdrpn-bench [--model DIR] [--repeats N] [--decode-tokens N] [--threads N] [--json FILE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/pipeline/ask.h"
#include "core/pipeline/demo_model.h"
#include "core/sdrpn/labels.h"
#include "core/sdrpn/roi.h"
#include <random>

namespace fs = std::filesystem;
using namespace sdrpn;

namespace {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

double timeIt(const std::function<void()>& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// "+3%" / "-2%": the change of `value` over `base`.
std::string pct(double value, double base) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%+.0f%%", (value / base - 1.0) * 100.0);
    return buf;
}

struct Row {
    std::string name;
    double ms;
    std::string note;
};

}  // namespace

int main(int argc, char** argv) {
    std::string modelDir, jsonPath;
    int repeats = 5, decodeTokens = 16, threads = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "sdrpn-bench: " << a << " needs a value\n";
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--model")
            modelDir = next();
        else if (a == "--json")
            jsonPath = next();
        else if (a == "--repeats")
            repeats = std::max(1, std::stoi(next()));
        else if (a == "--decode-tokens")
            decodeTokens = std::max(2, std::stoi(next()));
        else if (a == "--threads")
            threads = std::stoi(next());
        else {
            std::cerr << "usage: sdrpn-bench [--model DIR] [--repeats N] [--decode-tokens N] [--threads N] "
                         "[--json FILE]\n";
            return a == "--help" ? 0 : 2;
        }
    }
    if (threads > 0) torch::set_num_threads(threads);

    JobContext job;
    fs::path tmp;
    if (modelDir.empty()) {
        tmp = fs::temp_directory_path() / ("sdrpn-bench-demo-" + std::to_string(::getpid()));
        auto made = pipeline::makeDemoModel(tmp.string(), {}, job);
        if (!made) {
            std::cerr << "sdrpn-bench: " << made.message() << "\n";
            return 1;
        }
        modelDir = tmp.string();
    }
    auto loaded = pipeline::loadModel(modelDir, {}, job);
    if (!loaded) {
        std::cerr << "sdrpn-bench: " << loaded.message() << "\n";
        return 1;
    }
    const pipeline::LoadedModel& model = *loaded.value();
    const models::Backbone& backbone = *model.backbone;
    const auto& info = backbone.info();
    c10::InferenceMode inference;

    // One image and a ~40-token question, the shape of a typical ask.
    torch::manual_seed(0);
    torch::Tensor pixels = torch::randn({3, info.imageSize, info.imageSize});
    text::RenderedPrompt rendered =
        text::renderPrompt(model.defaultTemplate,
                           "What is written on the small green sign next to the red circle on the "
                           "pole, and what colour are its letters? Answer briefly.");
    text::PromptOptions po;
    po.imageTokenId = info.imageTokenId;
    po.numImageTokens = info.imageTokens;
    text::PromptIds ids = text::buildPromptIds(*model.tokenizer, rendered, po);
    models::PromptInput prompt;
    prompt.ids = ids.ids;
    for (const auto& s : ids.images)
        for (auto i = s.start; i < s.end(); ++i) prompt.ids[std::size_t(i)] = models::kImageSlot;

    torch::Tensor features;
    std::vector<Row> rows;
    std::vector<double> t;
    for (int r = 0; r < repeats + 1; ++r)
        t.push_back(timeIt([&] { features = backbone.encodeImage(pixels); }));
    t.erase(t.begin());  // warm-up
    rows.push_back({"vision tower + projector", median(t), "1 image"});
    prompt.images = {features};

    auto prefillWith = [&](const models::CaptureRequest& req, models::CaptureStats* stats) {
        std::vector<double> times;
        for (int r = 0; r < repeats + 1; ++r) {
            auto ctx = backbone.newContext();
            ctx->setCaptureRequest(req);
            times.push_back(timeIt([&] { backbone.prefill(*ctx, prompt); }));
            if (stats) *stats = ctx->captureStats();
        }
        times.erase(times.begin());
        return median(times);
    };
    models::CaptureRequest none = models::CaptureRequest::none();
    models::CaptureRequest last;
    last.lastPromptToken = true;
    models::CaptureRequest question;
    question.lastPromptToken = true;
    question.questionTokens = true;
    models::CaptureStats lastStats, questionStats;
    const double plain = prefillWith(none, nullptr);
    const double withLast = prefillWith(last, &lastStats);
    const double withQuestion = prefillWith(question, &questionStats);
    const std::string len = std::to_string(prompt.ids.size()) + " tokens";
    rows.push_back({"prefill", plain, len});
    rows.push_back({"prefill + capture (last row, all layers)", withLast,
                    pct(withLast, plain) + ", " + std::to_string(lastStats.keptBytes / 1024) + " KiB kept"});
    rows.push_back({"prefill + capture (question rows, all layers)", withQuestion,
                    pct(withQuestion, plain) + ", " + std::to_string(questionStats.keptBytes / 1024) +
                        " KiB kept, " + std::to_string(questionStats.peakScratchBytes / 1024) +
                        " KiB scratch"});

    auto decodeWith = [&](const models::CaptureRequest& req) {
        std::vector<double> perToken;
        for (int r = 0; r < std::max(1, repeats / 2); ++r) {
            auto ctx = backbone.newContext();
            ctx->setCaptureRequest(models::CaptureRequest::none());
            torch::Tensor logits = backbone.prefill(*ctx, prompt).logits;
            ctx->setCaptureRequest(req);
            std::int64_t token = logits.argmax().item<std::int64_t>();
            for (int k = 0; k < decodeTokens; ++k) {
                perToken.push_back(timeIt([&] { logits = backbone.decodeStep(*ctx, token); }));
                token = logits.argmax().item<std::int64_t>();
            }
        }
        return median(perToken);
    };
    models::CaptureRequest answer;
    answer.lastPromptToken = false;
    answer.answerTokens = true;
    const double dec = decodeWith(none), decCap = decodeWith(answer);
    rows.push_back({"decode, per token", dec, std::to_string(decodeTokens) + " tokens"});
    rows.push_back({"decode + capture (answer rows), per token", decCap, pct(decCap, dec)});

    // The pure, per-slider-move paths: labels from stored maps, RoI post-processing (24x24 grids).
    {
        std::mt19937 rng(7);
        std::uniform_real_distribution<float> u(0.0f, 1e-2f);
        std::normal_distribution<float> n(-3.0f, 2.0f);
        std::vector<float> g(576), s(576), logits(576);
        for (auto& v : g) v = u(rng);
        for (auto& v : s) v = u(rng) * 0.2f;
        for (auto& v : logits) v = n(rng);
        GridMap gm, sm;
        gm.rows = sm.rows = 24;
        gm.cols = sm.cols = 24;
        gm.values = g;
        gm.queries = sm.queries = 1;
        sm.values = s;
        const auto geometry = models::makeGridGeometry(640, 480, models::ImageFit::Pad);
        const int runs = 2000;
        for (const char* preset : {"llava-1.5-7b", "qwen2.5-vl-7b"}) {
            const auto settings = LabelSettings::fromPreset(preset);
            int ok = 0;
            const double ms = timeIt([&] {
                                  for (int i = 0; i < runs; ++i) ok += makeLabels(gm, sm, settings).ok();
                              }) /
                              runs;
            rows.push_back({std::string("labels from maps (") + preset + ")", ms, "per 24x24 map"});
        }
        int zooms = 0;
        const double ms = timeIt([&] {
                              for (int i = 0; i < runs; ++i)
                                  zooms += postprocessRoi(logits, 24, 24, RoiSettings{}, geometry).zoom();
                          }) /
                          runs;
        rows.push_back({"RoI post-processing", ms, "per 24x24 map"});
    }

    std::printf("sdrpn-bench: %s (%s, %d layers, %d heads, hidden %d), %d threads, median of %d\n",
                modelDir.c_str(), info.architecture.c_str(), info.layers, info.heads, info.hidden,
                torch::get_num_threads(), repeats);
    std::printf("| %-46s | %10s | %-40s |\n|%s|%s|%s|\n", "what", "ms", "note", std::string(48, '-').c_str(),
                std::string(12, '-').c_str(), std::string(42, '-').c_str());
    for (const auto& r : rows)
        std::printf("| %-46s | %10.2f | %-40s |\n", r.name.c_str(), r.ms, r.note.c_str());

    if (!jsonPath.empty()) {
        nlohmann::json j;
        j["model"] = modelDir;
        j["threads"] = torch::get_num_threads();
        j["prompt_tokens"] = prompt.ids.size();
        for (const auto& r : rows) j["rows"].push_back({{"name", r.name}, {"ms", r.ms}, {"note", r.note}});
        std::ofstream(jsonPath) << j.dump(2) << "\n";
    }
    if (!tmp.empty()) fs::remove_all(tmp);
    return 0;
}
