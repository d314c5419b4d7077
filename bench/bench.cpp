// sdrpn-bench: timings of the model core on this machine and what SD-RPN costs on top of a plain answer.
//
//   sdrpn-bench [--preset demo|llava-1.5-7b|llava-1.5-13b|qwen2.5-vl-7b|qwen2.5-vl-demo | --model DIR]
//               [--device cpu|cuda] [--dtype D]
//               [--repeats N] [--decode-tokens N] [--answer-tokens N] [--prefix-tokens N]
//               [--suffix-tokens N] [--rpn-k K] [--rpn-t T] [--threads N] [--json FILE] [--check]
//
// The model is a LLaVA-1.5 or Qwen2.5-VL with random weights of the preset's real shapes, built on the device
// (nothing to download), or a model folder (--model). The prompt is one image between --prefix-tokens text
// tokens (the system prompt, BOS included) and --suffix-tokens (the question); for Qwen2.5-VL the image is
// 672×672 pixels (the paper's evaluation budget: 24×24 merged cells) between <|vision_start|> and
// <|vision_end|>, which take the last prefix and the first suffix token. Every row is the median of --repeats
// runs after a warm-up, timed with the device synchronised; decoding feeds each argmax back on the device
// and synchronises once per run. The CPU rows at the end (labels from stored maps, RoI post-processing) are
// the studio's per-slider-move paths. --check first compares the device with the CPU on the demo shapes
// (runChecks below) and exits 1 when a comparison fails. --json writes every row and value.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <torch/version.h>

#include "core/host_memory.h"
#include "core/models/attention.h"
#include "core/models/device_stats.h"
#include "core/models/generation.h"
#include "core/models/llama.h"
#include "core/models/geometry.h"
#include "core/models/qwen2_5_vl.h"
#include "core/models/random_llava.h"
#include "core/models/random_qwen.h"
#include "core/models/registry.h"
#include "core/models/static_decoder.h"
#include "core/result.h"
#include "core/sdrpn/labels.h"
#include "core/sdrpn/roi.h"
#include "core/sdrpn/rpn.h"

using namespace sdrpn;
using models::Backbone;
using models::DecoderBackbone;
using models::LlavaModel;

namespace {

struct Options {
    std::string preset = "demo", modelDir, device = "cpu", dtype, jsonPath;
    int repeats = 5, decodeTokens = 32, answerTokens = 8, prefixTokens = 35, suffixTokens = 10;
    int rpnK = -1, rpnT = 3, threads = 0;
    bool check = false;
};

struct Row {
    std::string id, name;
    double ms = 0;
    std::string note;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

std::string pct(double value, double base) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%+.1f%%", (value / base - 1.0) * 100.0);
    return buf;
}

[[noreturn]] void usage(int code) {
    std::cerr
        << "usage: sdrpn-bench [--preset demo|llava-1.5-7b|llava-1.5-13b|qwen2.5-vl-7b|qwen2.5-vl-demo |\n"
           "                    --model DIR] [--device cpu|cuda]\n"
           "                   [--dtype fp32|bf16|fp16] [--repeats N] [--decode-tokens N] [--answer-tokens "
           "N]\n"
           "                   [--prefix-tokens N] [--suffix-tokens N] [--rpn-k K] [--rpn-t T] [--threads "
           "N]\n"
           "                   [--json FILE] [--check]\n";
    std::exit(code);
}

Options parseArgs(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "sdrpn-bench: " << a << " needs a value\n";
                std::exit(2);
            }
            return argv[++i];
        };
        auto number = [&](int lo) {
            const std::string v = next();
            try {
                const int n = std::stoi(v);
                if (n >= lo) return n;
            } catch (const std::exception&) {
            }
            std::cerr << "sdrpn-bench: " << a << " needs an integer >= " << lo << ", got '" << v << "'\n";
            std::exit(2);
        };
        if (a == "--preset")
            o.preset = next();
        else if (a == "--model")
            o.modelDir = next();
        else if (a == "--device")
            o.device = next();
        else if (a == "--dtype")
            o.dtype = next();
        else if (a == "--json")
            o.jsonPath = next();
        else if (a == "--repeats")
            o.repeats = number(1);
        else if (a == "--decode-tokens")
            o.decodeTokens = number(2);
        else if (a == "--answer-tokens")
            o.answerTokens = number(1);
        else if (a == "--prefix-tokens")
            o.prefixTokens = number(1);
        else if (a == "--suffix-tokens")
            o.suffixTokens = number(1);
        else if (a == "--rpn-k")
            o.rpnK = number(1);
        else if (a == "--rpn-t")
            o.rpnT = number(1);
        else if (a == "--threads")
            o.threads = number(1);
        else if (a == "--check")
            o.check = true;
        else if (a == "--help" || a == "-h")
            usage(0);
        else {
            std::cerr << "sdrpn-bench: unknown argument '" << a << "'\n";
            usage(2);
        }
    }
    return o;
}

// Wall time of f() in ms with the device drained before and after.
double timed(torch::Device device, const std::function<void()>& f) {
    models::synchronizeDevice(device);
    const auto t0 = std::chrono::steady_clock::now();
    f();
    models::synchronizeDevice(device);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double medianOf(int repeats, torch::Device device, const std::function<void()>& f) {
    std::vector<double> t;
    for (int r = 0; r < repeats + 1; ++r) t.push_back(timed(device, f));
    t.erase(t.begin());  // warm-up
    return median(t);
}

torch::Tensor greedy(const torch::Tensor& logits) {
    return logits.argmax().reshape({1});
}

// Decodes n tokens from `logits`, each argmax fed back on the device.
void decodeOnDevice(const Backbone& model, models::Context& ctx, torch::Tensor logits, int n) {
    auto token = greedy(logits);
    for (int i = 0; i < n; ++i) token = greedy(model.decodeStepDevice(ctx, token));
}

// ---- checks: the device against the CPU on the demo shapes ------------------------------------------------

struct CheckLog {
    int failures = 0;
    void line(const std::string& what, double value, double limit, const std::string& unit = "") {
        const bool ok = std::isfinite(value) && value <= limit;
        failures += ok ? 0 : 1;
        std::printf("check %-58s %10.3g %s(limit %.3g) %s\n", what.c_str(), value, unit.c_str(), limit,
                    ok ? "PASS" : "FAIL");
    }
};

double relErr(const torch::Tensor& a, const torch::Tensor& ref) {
    auto x = a.to(torch::kCPU, torch::kDouble), r = ref.to(torch::kCPU, torch::kDouble);
    return (x - r).norm().item<double>() / std::max(r.norm().item<double>(), 1e-30);
}

// SD-RPN pass 2 with the prefix's keys and values reused (pass 1 to layer 4, then completePrefix) against a
// fresh prefill of the whole pass-2 sequence, on the model's device: `prompt` holds one image whose rows end
// at `prefix`; the second image is the first one's features reversed. Qwen2.5-VL passes its grid.
void checkPass2Reuse(const DecoderBackbone& model, const models::PromptInput& prompt, std::int64_t prefix,
                     std::int64_t imageRows, const std::vector<models::ImageGrid>& grid,
                     const std::string& tag, bool exact, CheckLog& log) {
    const int K = 4;
    auto reuse = model.newContext();
    models::PrefillOptions pass1;
    pass1.endLayer = K;
    pass1.keepHidden = {K};
    pass1.computeLogits = false;
    const auto p1 = model.prefill(*reuse, prompt, pass1);
    model.completePrefix(*reuse, p1.hidden.at(K), K, prefix);
    models::PromptInput rest;
    rest.ids.assign(std::size_t(imageRows), models::kImageSlot);
    rest.ids.insert(rest.ids.end(), prompt.ids.begin() + prefix, prompt.ids.end());
    rest.images = {prompt.images[0].flip({0})};
    rest.grids = grid;
    const auto reused = model.prefill(*reuse, rest);
    auto fresh = model.newContext();
    models::PromptInput full;
    full.ids.assign(prompt.ids.begin(), prompt.ids.begin() + prefix);
    full.ids.insert(full.ids.end(), rest.ids.begin(), rest.ids.end());
    full.images = {prompt.images[0], rest.images[0]};
    full.grids = grid;
    if (!grid.empty()) full.grids.push_back(grid[0]);
    const auto freshP = model.prefill(*fresh, full);
    log.line(tag + "pass 2 with KV reuse vs fresh prefill (relative)", relErr(reused.logits, freshP.logits),
             exact ? 1e-4 : 5e-2);
}

// Qwen2.5-VL demo shapes: M-RoPE prefill, the static / CUDA-graph decode at cache index + rope_deltas, and
// pass 2 with reused keys and values, the device against the CPU.
void runQwenChecks(const Options& o, torch::Device device, torch::ScalarType dtype, CheckLog& log) {
    const auto cfg = models::randomQwenVlConfig("qwen2.5-vl-demo");
    auto cpu = models::makeRandomQwenVl(cfg, torch::kCPU, torch::kFloat, 13, true);
    const models::ImageGrid grid{8, 12};  // 224 x 336 pixels: a grid that is not square
    torch::manual_seed(4);
    const auto pixels = torch::randn({3, grid.rows * 28, grid.cols * 28});
    std::vector<std::int64_t> ids{1};
    std::mt19937 rng(6);
    for (int i = 1; i < o.prefixTokens; ++i) ids.push_back(2 + std::int64_t(rng() % 990));
    ids.push_back(cfg.visionStartTokenId);
    ids.insert(ids.end(), std::size_t(grid.cells()), models::kImageSlot);
    ids.push_back(cfg.visionEndTokenId);
    for (int i = 0; i < o.suffixTokens; ++i) ids.push_back(2 + std::int64_t(rng() % 990));
    const std::int64_t prefix = o.prefixTokens + 1 + grid.cells();
    models::GenerationOptions gen;
    gen.maxNewTokens = 12;
    gen.stopAtEos = false;
    gen.syncEvery = 1;
    models::PromptInput refPrompt;
    refPrompt.ids = ids;
    refPrompt.images = {cpu->encodeImage(pixels)};
    refPrompt.grids = {grid};
    auto refCtx = cpu->newContext();
    const auto refPrefill = cpu->prefill(*refCtx, refPrompt);
    const auto refGen = models::generateFrom(*cpu, *refCtx, refPrefill.logits, gen, JobContext{});

    std::vector<torch::ScalarType> types{torch::kFloat};
    if (dtype != torch::kFloat) types.push_back(dtype);
    for (auto t : types) {
        const std::string tag = "[qwen " + models::computeDTypeName(t) + " on " + device.str() + "] ";
        const bool exact = t == torch::kFloat;
        auto model = models::makeRandomQwenVl(cfg, device, t, 13, true);
        models::PromptInput prompt = refPrompt;
        prompt.images = {model->encodeImage(pixels.to(device, t))};
        log.line(tag + "image features vs CPU fp32 (relative)", relErr(prompt.images[0], refPrompt.images[0]),
                 exact ? 1e-4 : 3e-2);
        torch::Tensor opByOp;
        std::vector<models::StaticDecodeMode> modes{models::StaticDecodeMode::Off};
        for (const auto m : {models::staticDecodeMode(device), models::StaticDecodeMode::Eager})
            if (std::find(modes.begin(), modes.end(), m) == modes.end()) modes.push_back(m);
        for (const auto m : modes) {
            models::setStaticDecodeMode(m);
            gen.syncEvery = 4;
            auto ctx = model->newContext();
            ctx->reserve(std::int64_t(ids.size()) + gen.maxNewTokens);
            const auto p = model->prefill(*ctx, prompt);
            const auto g = models::generateFrom(*model, *ctx, p.logits, gen, JobContext{});
            models::clearStaticDecodeMode();
            const std::string mode = models::staticDecodeModeName(m);
            if (m == models::StaticDecodeMode::Off) opByOp = g.stepLogits;
            if (exact) {
                int same = 0;
                for (std::size_t i = 0; i < std::min(g.tokens.size(), refGen.tokens.size()); ++i)
                    same += g.tokens[i] == refGen.tokens[i];
                log.line(tag + "decode (" + mode + ") tokens differing from the CPU's",
                         double(refGen.tokens.size()) - same, 0);
                log.line(tag + "decode (" + mode + ") step logits vs CPU fp32 (relative)",
                         relErr(g.stepLogits, refGen.stepLogits), 1e-4);
            } else if (m != models::StaticDecodeMode::Off) {
                log.line(tag + "decode (" + mode + ") first step logits vs op by op (relative)",
                         relErr(g.stepLogits.narrow(0, 0, 1), opByOp.narrow(0, 0, 1)), 5e-2);
            }
        }
        checkPass2Reuse(*model, prompt, prefix, grid.cells(), {grid}, tag, exact, log);
    }
}

int runChecks(const Options& o, torch::Device device, torch::ScalarType dtype) {
    c10::InferenceMode inference;
    CheckLog log;
    const auto cfg = models::randomLlavaConfig("demo");
    // The demo's peaked q/k projections (std 0.12) make its logits swing with bf16 rounding; the checks use
    // the usual N(0, 0.02) so that a bf16 run lands within its rounding of the fp32 one.
    models::WeightMap base = models::randomLlavaWeights(cfg, torch::kCPU, torch::kFloat, 11, true);
    for (auto& [name, tensor] : base)
        if (name.find("language_model") != std::string::npos &&
            (name.find("q_proj") != std::string::npos || name.find("k_proj") != std::string::npos))
            tensor.mul_(0.02 / 0.12);
    auto cpu = std::make_shared<const LlavaModel>(cfg, base, torch::kCPU, torch::kFloat, "check");
    std::vector<torch::ScalarType> types{torch::kFloat};
    if (dtype != torch::kFloat) types.push_back(dtype);
    torch::manual_seed(3);
    const auto pixels = torch::randn({3, 336, 336});
    std::vector<std::int64_t> ids{1};
    std::mt19937 rng(5);
    for (int i = 1; i < o.prefixTokens; ++i) ids.push_back(2 + std::int64_t(rng() % 990));
    ids.insert(ids.end(), 576, models::kImageSlot);
    for (int i = 0; i < o.suffixTokens; ++i) ids.push_back(2 + std::int64_t(rng() % 990));
    const std::int64_t prefix = o.prefixTokens + 576;

    models::CaptureRequest capture;
    capture.lastPromptToken = true;
    capture.questionTokens = true;
    capture.answerTokens = true;
    models::GenerationOptions gen;
    gen.maxNewTokens = 12;
    gen.stopAtEos = false;

    // The CPU reference: per-token greedy decoding, captured rows, full logits.
    models::PromptInput refPrompt;
    refPrompt.ids = ids;
    refPrompt.images = {cpu->encodeImage(pixels)};
    auto refCtx = cpu->newContext();
    refCtx->setCaptureRequest(capture);
    const auto refPrefill = cpu->prefill(*refCtx, refPrompt);
    gen.syncEvery = 1;
    const auto refGen = models::generateFrom(*cpu, *refCtx, refPrefill.logits, gen, JobContext{});
    const auto refMaps = refCtx->attentionMaps();

    for (auto t : types) {
        const std::string tag = "[" + models::computeDTypeName(t) + " on " + device.str() + "] ";
        const bool exact = t == torch::kFloat;
        models::WeightMap w;
        for (const auto& [name, tensor] : base) w[name] = tensor.to(device, t);
        // The device runs the fused q/k/v and gate/up products; the CPU reference does not.
        models::fuseLlamaProjections(w, cfg.text, "language_model.");
        auto model = std::make_shared<const LlavaModel>(cfg, w, device, t, "check");
        models::PromptInput prompt;
        prompt.ids = ids;
        prompt.images = {model->encodeImage(pixels.to(device, t))};
        log.line(tag + "image features vs CPU fp32 (relative)", relErr(prompt.images[0], refPrompt.images[0]),
                 exact ? 1e-4 : 3e-2);
        auto ctx = model->newContext();
        ctx->reserve(std::int64_t(ids.size()) + gen.maxNewTokens);
        ctx->setCaptureRequest(capture);
        const auto p = model->prefill(*ctx, prompt);
        log.line(tag + "last-token logits vs CPU fp32 (relative)", relErr(p.logits, refPrefill.logits),
                 exact ? 1e-4 : 5e-2);
        gen.syncEvery = 4;  // the burst path (tokens chosen on the device) on any device
        const auto g = models::generateFrom(*model, *ctx, p.logits, gen, JobContext{});
        const auto maps = ctx->attentionMaps();
        if (exact) {
            int same = 0;
            for (std::size_t i = 0; i < std::min(g.tokens.size(), refGen.tokens.size()); ++i)
                same += g.tokens[i] == refGen.tokens[i];
            log.line(tag + "greedy tokens differing from the CPU's (of " +
                         std::to_string(refGen.tokens.size()) + ")",
                     double(refGen.tokens.size()) - same, 0);
            log.line(tag + "step logits vs CPU fp32 (relative)", relErr(g.stepLogits, refGen.stepLogits),
                     1e-4);
            log.line(tag + "context length after decoding vs CPU",
                     std::abs(double(ctx->length() - refCtx->length())), 0);
            double worst = 0;
            bool sameRows =
                maps.rows.size() == refMaps.rows.size() && maps.layers.size() == refMaps.layers.size();
            for (std::size_t r = 0; sameRows && r < maps.rows.size(); ++r)
                sameRows = maps.rows[r].position == refMaps.rows[r].position &&
                           maps.rows[r].token == refMaps.rows[r].token;
            for (std::size_t l = 0; sameRows && l < maps.layers.size(); ++l)
                for (std::size_t i = 0; i < maps.layers[l].values.size(); ++i)
                    worst = std::max(
                        worst, double(std::abs(maps.layers[l].values[i] - refMaps.layers[l].values[i])));
            log.line(tag + "captured rows (prompt + answer) vs CPU, max abs", sameRows ? worst : 1e9, 1e-5);
        }
        std::vector<models::StaticDecodeMode> modes{models::staticDecodeMode(device)};
        if (modes[0] != models::StaticDecodeMode::Eager) modes.push_back(models::StaticDecodeMode::Eager);
        for (const auto m : modes) {
            // Without answer capture decoding takes the static path (a CUDA graph on a GPU).
            models::setStaticDecodeMode(m);
            gen.syncEvery = 4;  // the burst path (decodeStepDevice) on any device
            auto plainCtx = model->newContext();
            plainCtx->reserve(std::int64_t(ids.size()) + gen.maxNewTokens);
            const auto pp = model->prefill(*plainCtx, prompt);
            const auto g2 = models::generateFrom(*model, *plainCtx, pp.logits, gen, JobContext{});
            models::clearStaticDecodeMode();
            const std::string mode = models::staticDecodeModeName(m);
            if (exact) {
                int same = 0;
                for (std::size_t i = 0; i < std::min(g2.tokens.size(), refGen.tokens.size()); ++i)
                    same += g2.tokens[i] == refGen.tokens[i];
                log.line(tag + "decode (" + mode + ") tokens differing from the CPU's",
                         double(refGen.tokens.size()) - same, 0);
                log.line(tag + "decode (" + mode + ") step logits vs CPU fp32 (relative)",
                         relErr(g2.stepLogits, refGen.stepLogits), 1e-4);
            } else {
                log.line(tag + "decode (" + mode + ") step logits vs the captured run (relative)",
                         relErr(g2.stepLogits.narrow(0, 0, 1), g.stepLogits.narrow(0, 0, 1)), 5e-2);
            }
        }
        checkPass2Reuse(*model, prompt, prefix, 576, {}, tag, exact, log);
    }
    runQwenChecks(o, device, dtype, log);
    std::printf("checks: %d failed\n", log.failures);
    return log.failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    const HostMemoryTuning hostMemory = keepHostMemory();  // as the sdrpn programs do
    const Options o = parseArgs(argc, argv);
    if (o.threads > 0) torch::set_num_threads(o.threads);
    try {
        const torch::Device device = models::parseDevice(o.device);
        models::useOwnStream(device);  // graphs captured on the stream everything runs on
        const torch::ScalarType dtype = models::parseComputeDType(
            !o.dtype.empty() ? o.dtype : (device.is_cuda() ? std::string("bf16") : std::string("fp32")));
        if (o.check) {
            const int rc = runChecks(o, device, dtype);
            if (rc != 0) return rc;
        }
        c10::InferenceMode inference;
        models::resetPeakMemory(device);
        const auto built = std::chrono::steady_clock::now();
        std::shared_ptr<const Backbone> owner;
        std::string what;
        if (!o.modelDir.empty()) {
            models::LoadOptions lo;
            lo.device = o.device;
            lo.dtype = models::computeDTypeName(dtype);
            JobContext job;
            owner = models::loadBackbone(o.modelDir, lo, job);
            what = o.modelDir;
        } else if (const auto qwenPresets = models::randomQwenVlPresets();
                   std::find(qwenPresets.begin(), qwenPresets.end(), o.preset) != qwenPresets.end()) {
            owner = models::makeRandomQwenVl(models::randomQwenVlConfig(o.preset), device, dtype, 0);
            what = o.preset + " (random weights)";
        } else {
            owner = models::makeRandomLlava(models::randomLlavaConfig(o.preset), device, dtype, 0);
            what = o.preset + " (random weights)";
        }
        const Backbone& model = *owner;
        const auto* decoder = dynamic_cast<const DecoderBackbone*>(&model);
        const auto* qwen = dynamic_cast<const models::Qwen2_5VlModel*>(&model);
        const auto& info = model.info();
        // Image geometry: the model's square input, or for Qwen2.5-VL 672² pixels, 24×24 merged cells.
        const models::ImageGrid grid = qwen ? models::ImageGrid{24, 24} : info.grid;
        const std::int64_t imageTokens = qwen ? grid.cells() : info.imageTokens;
        const int imageSide = qwen ? 672 : info.imageSize;
        models::synchronizeDevice(device);
        const double buildSeconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - built).count();
        const auto loaded = models::memoryStats(device);
        const auto weightsBytes = loaded.currentBytes;

        // The prompt: BOS + system text, the image, the question.
        std::mt19937 rng(1);
        const std::int64_t textIds = std::max<std::int64_t>(3, std::min<std::int64_t>(info.vocab, 32000) - 2);
        std::vector<std::int64_t> ids{info.bosTokenId >= 0 ? info.bosTokenId : 1};
        for (int i = 1; i < o.prefixTokens; ++i) ids.push_back(2 + std::int64_t(rng() % textIds));
        if (qwen) ids.back() = qwen->visionStartTokenId();
        ids.insert(ids.end(), std::size_t(imageTokens), models::kImageSlot);
        for (int i = 0; i < o.suffixTokens; ++i) ids.push_back(2 + std::int64_t(rng() % textIds));
        if (qwen) ids[std::size_t(o.prefixTokens + imageTokens)] = qwen->visionEndTokenId();
        const std::int64_t prefix = o.prefixTokens + imageTokens;
        const std::int64_t promptLength = std::int64_t(ids.size());
        const std::int64_t reserve =
            promptLength + imageTokens + std::max(o.decodeTokens, o.answerTokens) + 8;
        torch::manual_seed(2);
        const auto pixels = torch::randn({3, imageSide, imageSide}).to(device, dtype);
        const auto cropPixels = torch::randn({3, imageSide, imageSide}).to(device, dtype);
        std::vector<models::ImageGrid> oneGrid, twoGrids;
        if (qwen) oneGrid = {grid}, twoGrids = {grid, grid};

        std::vector<Row> rows;
        nlohmann::json values;
        torch::Tensor features;
        rows.push_back({"vision", "vision tower + projector",
                        medianOf(o.repeats, device, [&] { features = model.encodeImage(pixels); }),
                        "1 image, " + std::to_string(imageTokens) + " tokens"});
        models::PromptInput prompt;
        prompt.ids = ids;
        prompt.images = {features};
        prompt.grids = oneGrid;

        auto prefillWith = [&](const models::CaptureRequest& req, models::CaptureStats* stats) {
            return medianOf(o.repeats, device, [&] {
                auto ctx = model.newContext();
                ctx->reserve(reserve);
                ctx->setCaptureRequest(req);
                model.prefill(*ctx, prompt);
                if (stats) *stats = ctx->captureStats();
            });
        };
        models::CaptureRequest last;
        last.lastPromptToken = true;
        models::CaptureRequest question = last;
        question.questionTokens = true;
        models::CaptureStats lastStats, questionStats;
        const double plain = prefillWith(models::CaptureRequest::none(), nullptr);
        const double withLast = prefillWith(last, &lastStats);
        const double withQuestion = prefillWith(question, &questionStats);
        rows.push_back({"prefill", "prefill", plain, std::to_string(promptLength) + " tokens"});
        // Pixels to first logits: what a forward with pixel_values does in transformers.
        const double withVision = medianOf(o.repeats, device, [&] {
            auto ctx = model.newContext();
            ctx->reserve(reserve);
            models::PromptInput pi = prompt;
            pi.images = {model.encodeImage(pixels)};
            model.prefill(*ctx, pi);
        });
        rows.push_back(
            {"prefill_vision", "vision tower + prefill", withVision, "pixels to the first logits"});
        rows.push_back(
            {"prefill_capture_last", "prefill + capture (last row, all layers)", withLast,
             pct(withLast, plain) + ", " + std::to_string(lastStats.keptBytes / 1024) + " KiB kept"});
        rows.push_back({"prefill_capture_question", "prefill + capture (question rows, all layers)",
                        withQuestion,
                        pct(withQuestion, plain) + ", " + std::to_string(questionStats.rows) + " rows, " +
                            std::to_string(questionStats.keptBytes / 1024) + " KiB kept"});
        values["capture_overhead_last"] = withLast / plain - 1.0;
        values["capture_overhead_question"] = withQuestion / plain - 1.0;

        auto decodeWith = [&](const models::CaptureRequest& req) {
            std::vector<double> perToken;
            for (int r = 0; r < std::max(2, o.repeats / 2) + 1; ++r) {
                auto ctx = model.newContext();
                ctx->reserve(reserve);
                const auto logits = model.prefill(*ctx, prompt).logits;
                ctx->setCaptureRequest(req);
                perToken.push_back(
                    timed(device, [&] { decodeOnDevice(model, *ctx, logits, o.decodeTokens); }) /
                    o.decodeTokens);
            }
            perToken.erase(perToken.begin());
            return median(perToken);
        };
        models::CaptureRequest answer = models::CaptureRequest::none();
        answer.answerTokens = true;
        const auto mode = models::staticDecodeMode(device);
        const double dec = decodeWith(models::CaptureRequest::none());
        models::setStaticDecodeMode(models::StaticDecodeMode::Off);
        const double decEager = decodeWith(models::CaptureRequest::none());
        models::setStaticDecodeMode(models::StaticDecodeMode::Eager);
        const double decStatic = decodeWith(models::CaptureRequest::none());
        models::clearStaticDecodeMode();
        const double decCap = decodeWith(answer);
        rows.push_back({"decode_token", "decode, per token", dec,
                        std::to_string(o.decodeTokens) + " tokens, " + models::staticDecodeModeName(mode) +
                            ", argmax fed back on the device"});
        rows.push_back(
            {"decode_token_eager", "decode, per token, op by op", decEager, "growing shapes, no graph"});
        rows.push_back({"decode_token_static", "decode, per token, static shapes without a graph", decStatic,
                        "masked attention over the reserved cache"});
        rows.push_back({"decode_capture", "decode + capture (answer rows), per token", decCap,
                        pct(decCap, decEager) + " over op by op (capture decodes op by op)"});
        values["decode_mode"] = models::staticDecodeModeName(mode);

        // SD-RPN (sdrpn.md §4): pass 1 to layer K, the twig, pass 2 with or without the prefix's KV.
        if (decoder) {
            // K: the released checkpoints' (LLaVA-1.5 15, Qwen2.5-VL-7B 16), half the layers for demo shapes.
            const int K =
                o.rpnK > 0 ? o.rpnK : (info.layers >= 28 ? (qwen ? 16 : 15) : std::max(1, info.layers / 2));
            const int T = o.rpnT;
            if (K + T - 1 > info.layers)
                throw Error("--rpn-k/--rpn-t do not fit a model of " + std::to_string(info.layers) +
                            " layers");
            const Rpn rpn = initRpnFromBackbone(model, {K, T, true}, /*shareWeights=*/true);
            models::PrefillOptions pass1;
            pass1.endLayer = K;
            pass1.keepHidden = {K};
            pass1.computeLogits = false;
            const auto geometry = models::makeGridGeometry(imageSide, imageSide, models::ImageFit::Pad);
            // The twig's rotary rows: plain positions for LLaVA, the prompt's M-RoPE rows for Qwen2.5-VL.
            auto twig = [&](const models::Context& c, const torch::Tensor& hidden) {
                if (!qwen) return rpn->forward(hidden, promptLength - 1, o.prefixTokens, imageTokens);
                const auto rope = qwen->ropeRows(c, 0, promptLength, hidden.scalar_type());
                return rpn->forward(hidden, promptLength - 1, o.prefixTokens, imageTokens, &rope);
            };
            models::PrefillResult p1;
            std::unique_ptr<models::Context> ctx;
            const double tPass1 = medianOf(o.repeats, device, [&] {
                ctx = model.newContext();
                ctx->reserve(reserve);
                p1 = model.prefill(*ctx, prompt, pass1);
            });
            torch::Tensor roiLogits;
            const double tRpn = medianOf(o.repeats, device, [&] { roiLogits = twig(*ctx, p1.hidden.at(K)); });
            ctx.reset();  // nothing from these rows stays allocated for the end-to-end runs and their memory
            p1 = models::PrefillResult{};
            models::PromptInput rest;
            rest.ids.assign(std::size_t(imageTokens), models::kImageSlot);
            rest.ids.insert(rest.ids.end(), ids.begin() + prefix, ids.end());
            rest.images = {features};
            rest.grids = oneGrid;
            const double tReuse = medianOf(o.repeats, device,
                                           [&] {
                                               auto c = model.newContext();
                                               c->reserve(reserve);
                                               auto p = model.prefill(*c, prompt, pass1);
                                               decoder->completePrefix(*c, p.hidden.at(K), K, prefix);
                                               model.prefill(*c, rest);
                                           }) -
                                  tPass1;
            models::PromptInput full;
            full.ids.assign(ids.begin(), ids.begin() + prefix);
            full.ids.insert(full.ids.end(), rest.ids.begin(), rest.ids.end());
            full.images = {features, features};
            full.grids = twoGrids;
            const double tFresh = medianOf(o.repeats, device, [&] {
                auto c = model.newContext();
                c->reserve(reserve);
                model.prefill(*c, full);
            });
            rows.push_back({"sdrpn_pass1", "SD-RPN pass 1 (layers 0 .. K-1)", tPass1,
                            "K = " + std::to_string(K) + " of " + std::to_string(info.layers)});
            rows.push_back({"sdrpn_rpn", "SD-RPN twig + RoI logits", tRpn, "T = " + std::to_string(T)});
            rows.push_back({"sdrpn_pass2_reuse", "SD-RPN pass 2, prefix KV reused", tReuse,
                            "layers K.. over the prefix + " + std::to_string(rest.ids.size()) + " tokens"});
            rows.push_back({"sdrpn_pass2_fresh", "SD-RPN pass 2, fresh prefill (reference)", tFresh,
                            std::to_string(full.ids.size()) + " tokens"});

            // End to end: a baseline answer against an SD-RPN answer (both from the pixels, both decoding
            // --answer-tokens tokens; the RoI map goes to the host for post-processing, as in the studio).
            // `trace`: the allocator's current and peak MiB after each stage (where the peak comes from).
            nlohmann::json* trace = nullptr;
            auto stage = [&](const char* name) {
                if (!trace) return;
                models::synchronizeDevice(device);
                const auto m = models::memoryStats(device);
                (*trace)[name] = {{"current_mb", double(m.currentBytes) / (1 << 20)},
                                  {"peak_mb", double(m.peakBytes) / (1 << 20)}};
            };
            auto baselineRun = [&] {
                stage("start");
                auto c = model.newContext();
                c->reserve(promptLength + o.answerTokens);
                stage("reserved");
                models::PromptInput pi = prompt;
                pi.images = {model.encodeImage(pixels)};
                stage("vision");
                const auto p = model.prefill(*c, pi);
                stage("prefill");
                decodeOnDevice(model, *c, p.logits, o.answerTokens - 1);
                stage("decode");
            };
            auto sdrpnRun = [&](bool reuseKv) {
                auto c = model.newContext();
                c->reserve(reserve);
                models::PromptInput pi = prompt;
                pi.images = {model.encodeImage(pixels)};
                const auto p = model.prefill(*c, pi, pass1);
                auto logits = twig(*c, p.hidden.at(K)).to(torch::kCPU, torch::kFloat).contiguous();
                std::vector<float> v(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
                const auto roi = postprocessRoi(v, grid.rows, grid.cols, RoiSettings{}, geometry);
                (void)roi;  // random weights: time the bbox branch whatever the map says
                const auto cropFeatures = model.encodeImage(cropPixels);
                models::PrefillResult p2;
                if (reuseKv) {
                    decoder->completePrefix(*c, p.hidden.at(K), K, prefix);
                    models::PromptInput r2 = rest;
                    r2.images = {cropFeatures};
                    p2 = model.prefill(*c, r2);
                } else {
                    auto f = model.newContext();
                    f->reserve(reserve);
                    models::PromptInput f2 = full;
                    f2.images = {pi.images[0], cropFeatures};
                    c = std::move(f);
                    p2 = model.prefill(*c, f2);
                }
                decodeOnDevice(model, *c, p2.logits, o.answerTokens - 1);
            };
            const double tBase = medianOf(o.repeats, device, baselineRun);
            const double tSd = medianOf(o.repeats, device, [&] { sdrpnRun(true); });
            // Peak memory of one answer each way (weights included), as HF's max_memory_allocated counts it.
            models::synchronizeDevice(device);
            models::resetPeakMemory(device);
            nlohmann::json baseTrace;
            trace = &baseTrace;
            baselineRun();
            trace = nullptr;
            models::synchronizeDevice(device);
            const auto baseMem = models::memoryStats(device);
            if (device.is_cuda()) values["memory_trace_baseline_answer"] = baseTrace;
            models::resetPeakMemory(device);
            sdrpnRun(true);
            models::synchronizeDevice(device);
            const auto sdMem = models::memoryStats(device);
            if (baseMem.peakBytes >= 0 && device.is_cuda()) {
                values["peak_memory_baseline_answer_mb"] = double(baseMem.peakBytes) / (1 << 20);
                values["peak_memory_sdrpn_answer_mb"] = double(sdMem.peakBytes) / (1 << 20);
            }
            const double tSdFresh = medianOf(o.repeats, device, [&] { sdrpnRun(false); });
            const std::string ans = std::to_string(o.answerTokens) + "-token answer";
            rows.push_back({"baseline_answer", "baseline answer, end to end", tBase, ans});
            rows.push_back({"sdrpn_answer", "SD-RPN answer, end to end (KV reuse)", tSd,
                            "throughput " + std::to_string(tBase / tSd).substr(0, 4) + "x of the baseline"});
            rows.push_back(
                {"sdrpn_answer_fresh", "SD-RPN answer, end to end (fresh pass 2)", tSdFresh,
                 "throughput " + std::to_string(tBase / tSdFresh).substr(0, 4) + "x of the baseline"});
            models::setStaticDecodeMode(models::StaticDecodeMode::Off);
            const double tBaseOff = medianOf(o.repeats, device, baselineRun);
            const double tSdOff = medianOf(o.repeats, device, [&] { sdrpnRun(true); });
            models::clearStaticDecodeMode();
            rows.push_back(
                {"baseline_answer_opbyop", "baseline answer, end to end, decode op by op", tBaseOff, ans});
            rows.push_back(
                {"sdrpn_answer_opbyop", "SD-RPN answer, end to end, decode op by op", tSdOff,
                 "throughput " + std::to_string(tBaseOff / tSdOff).substr(0, 4) + "x of the baseline"});
            values["sdrpn_throughput_ratio_opbyop"] = tBaseOff / tSdOff;
            values["sdrpn_throughput_ratio"] = tBase / tSd;
            values["sdrpn_throughput_ratio_fresh"] = tBase / tSdFresh;
            values["rpn_k"] = K;
            values["rpn_t"] = T;
        }
        const auto mem = models::memoryStats(device);
        values["peak_memory_run_mb"] = mem.peakBytes >= 0 ? double(mem.peakBytes) / (1 << 20) : -1.0;
        values["peak_memory_mb"] = values.contains("peak_memory_baseline_answer_mb")
                                       ? values["peak_memory_baseline_answer_mb"]
                                       : values["peak_memory_run_mb"];
        values["weights_mb"] = weightsBytes >= 0 ? double(weightsBytes) / (1 << 20) : -1.0;
        // What the caching allocator holds once the model is built (cached blocks included): the fused
        // projections must not leave the parts' old blocks behind.
        values["reserved_after_load_mb"] =
            loaded.reservedBytes >= 0 ? double(loaded.reservedBytes) / (1 << 20) : -1.0;
        values["memory_source"] = mem.source;
        values["host_memory"] = hostMemory.detail;
        values["fused_projections"] = models::fusedProjectionsEnabled();
        values["build_seconds"] = buildSeconds;

        // The studio's per-slider-move paths (CPU, plain data): re-denoising every layer's map and the RoI
        // post-processing of one map.
        {
            // A LLaVA-1.5-7B map set (32 layers x 32 heads) or the model's own when larger.
            const int layers = std::max(info.layers, 32), heads = std::max(info.heads, 32), answerRows = 8;
            const int cells = int(grid.cells()) > 0 ? int(grid.cells()) : 576;
            models::AttentionMaps maps;
            maps.heads = heads;
            maps.imageKeys = cells;
            for (int r = 0; r < answerRows; ++r)
                maps.rows.push_back({promptLength + r, 100 + r, models::QueryKind::Answer});
            maps.imageSpans.push_back({o.prefixTokens, cells, grid});
            for (int k = 0; k < cells; ++k) maps.imageKeyPositions.push_back(o.prefixTokens + k);
            std::uniform_real_distribution<float> u(0.0f, 2.0f / float(cells));
            for (int l = 0; l < layers; ++l) {
                models::LayerAttention la;
                la.layer = l;
                la.values.resize(std::size_t(heads) * answerRows * std::size_t(cells));
                for (auto& v : la.values) v = u(rng);
                maps.layers.push_back(std::move(la));
            }
            LabelSettings settings =
                LabelSettings::fromPreset(info.layers >= 40 ? "llava-1.5-13b" : "llava-1.5-7b");
            std::vector<int> allHeads(static_cast<std::size_t>(heads));
            for (int h = 0; h < heads; ++h) allHeads[std::size_t(h)] = h;
            settings.sink = {{std::min(2, layers - 1), allHeads}};
            const auto sink = sinkMap(maps, settings);
            const int runs = 20;
            int ok = 0;
            std::vector<double> t;
            for (int r = 0; r < runs; ++r)
                t.push_back(timed(torch::kCPU, [&] {
                    for (int l = 0; l < layers; ++l) {
                        LabelSettings s = settings;
                        s.grounding = {{l, allHeads}};
                        ok += makeLabels(groundingMap(maps, s), sink, s).ok();
                    }
                }));
            rows.push_back({"denoise_all_layers", "re-denoise every layer's map (CPU)", median(t),
                            std::to_string(layers) + " layers x " + std::to_string(heads) + " heads x " +
                                std::to_string(answerRows) + " rows, " + std::to_string(grid.rows) + "x" +
                                std::to_string(grid.cols)});
            std::normal_distribution<float> n(-3.0f, 2.0f);
            std::vector<float> logits(static_cast<std::size_t>(cells));
            for (auto& v : logits) v = n(rng);
            const auto geometry = models::makeGridGeometry(640, 480, models::ImageFit::Pad);
            const int postRuns = 2000;
            int zooms = 0;
            const double ms =
                timed(
                    torch::kCPU,
                    [&] {
                        for (int i = 0; i < postRuns; ++i)
                            zooms +=
                                postprocessRoi(logits, grid.rows, grid.cols, RoiSettings{}, geometry).zoom();
                    }) /
                postRuns;
            rows.push_back({"roi_postprocess", "RoI post-processing (CPU)", ms, "per map"});
            if (ok < 0 || zooms < 0) std::printf("unreachable\n");
        }

        std::printf("sdrpn-bench: %s, %s %s, LibTorch %s, %d CPU threads\n", what.c_str(),
                    device.str().c_str(), models::computeDTypeName(dtype).c_str(), TORCH_VERSION,
                    torch::get_num_threads());
        std::printf("host memory: %s; q/k/v and gate/up projections %s\n", hostMemory.detail.c_str(),
                    models::fusedProjectionsEnabled() ? "fused" : "separate (SDRPN_FUSED_PROJECTIONS=0)");
        std::printf(
            "model: %d layers, %d heads, hidden %d; prompt %lld tokens (%d + %lld image + %d); median of "
            "%d\n",
            info.layers, info.heads, info.hidden, (long long)promptLength, o.prefixTokens,
            (long long)imageTokens, o.suffixTokens, o.repeats);
        std::printf("| %-48s | %10s | %-52s |\n|%s|%s|%s|\n", "what", "ms", "note",
                    std::string(50, '-').c_str(), std::string(12, '-').c_str(), std::string(54, '-').c_str());
        for (const auto& r : rows)
            std::printf("| %-48s | %10.3f | %-52s |\n", r.name.c_str(), r.ms, r.note.c_str());
        std::printf("peak memory %.0f MiB (%s), weights %.0f MiB\n", values["peak_memory_mb"].get<double>(),
                    mem.source.c_str(), values["weights_mb"].get<double>());
        if (loaded.reservedBytes >= 0)
            std::printf("reserved by the caching allocator after loading: %.0f MiB\n",
                        values["reserved_after_load_mb"].get<double>());
        if (values.contains("memory_trace_baseline_answer")) {
            std::printf("memory during one baseline answer (MiB, current / peak):");
            for (const char* k : {"start", "reserved", "vision", "prefill", "decode"}) {
                const auto& t = values["memory_trace_baseline_answer"];
                if (t.contains(k))
                    std::printf(" %s %.0f / %.0f;", k, t[k]["current_mb"].get<double>(),
                                t[k]["peak_mb"].get<double>());
            }
            std::printf("\n");
        }

        if (!o.jsonPath.empty()) {
            nlohmann::json j;
            j["model"] = what;
            j["preset"] = o.modelDir.empty() ? o.preset : "";
            j["device"] = device.str();
            j["dtype"] = models::computeDTypeName(dtype);
            j["libtorch"] = TORCH_VERSION;
            j["threads"] = torch::get_num_threads();
            j["prompt_tokens"] = promptLength;
            j["layers"] = info.layers;
            j["repeats"] = o.repeats;
            j["decode_tokens"] = o.decodeTokens;
            j["answer_tokens"] = o.answerTokens;
            for (const auto& r : rows)
                j["rows"].push_back({{"id", r.id}, {"name", r.name}, {"ms", r.ms}, {"note", r.note}});
            j["values"] = values;
            std::ofstream out(o.jsonPath);
            out << j.dump(2) << "\n";
            if (!out) throw Error("cannot write " + o.jsonPath);
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "sdrpn-bench: " << e.what() << "\n";
        return 1;
    }
}
