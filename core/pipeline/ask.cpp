#include "core/pipeline/ask.h"

#include <chrono>
#include <filesystem>

#include "core/io/tensor_io.h"
#include "core/models/registry.h"
#include "core/pipeline/prompt.h"

namespace fs = std::filesystem;

namespace sdrpn::pipeline {
namespace {

double secondsSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

models::CaptureRequest AskOptions::defaultCapture() {
    models::CaptureRequest request;
    request.lastPromptToken = true;
    request.questionTokens = true;
    request.answerTokens = true;
    return request;
}

const char* modelFamilyName(ModelFamily family) {
    switch (family) {
        case ModelFamily::Qwen2_5Vl:
            return "qwen2_5_vl";
        case ModelFamily::DeepseekVl:
            return "deepseek_vl";
        default:
            return "llava";
    }
}

Result<std::shared_ptr<const LoadedModel>> loadModel(const std::string& folder,
                                                     const models::LoadOptions& options, JobContext& job) {
    return guarded([&]() -> std::shared_ptr<const LoadedModel> {
        const auto t0 = std::chrono::steady_clock::now();
        if (!fs::is_directory(folder))
            throw Error(folder + ": not a folder (expected a model folder with config.json)");
        auto model = std::make_shared<LoadedModel>();
        model->folder = folder;
        const bool hasPreprocessor = fs::exists(fs::path(folder) / "preprocessor_config.json");
        const std::string modelType = io::readModelType(folder).modelType;
        if (modelType == "qwen2_5_vl") {
            model->family = ModelFamily::Qwen2_5Vl;
            model->defaultTemplate = text::ChatTemplate::Qwen2Vl;
            if (hasPreprocessor) model->qwenPreprocess = models::readQwenPreprocessConfig(folder);
            const io::QwenVlConfig cfg = io::readQwenVlConfig(folder);
            model->qwenPreprocess.patchSize = cfg.vision.patchSize;
            model->qwenPreprocess.temporalPatchSize = cfg.vision.temporalPatchSize;
            model->qwenPreprocess.mergeSize = cfg.vision.spatialMergeSize;
        } else if (modelType == "deepseek_vl") {
            model->family = ModelFamily::DeepseekVl;
            model->defaultTemplate = text::ChatTemplate::Deepseek;
            const io::DeepseekVlConfig cfg = io::readDeepseekVlConfig(folder);
            if (hasPreprocessor) {
                model->preprocess = models::readClipPreprocessConfig(folder);
            } else {
                // DeepSeek-VL's processor: the image padded to a square of grey (the mean, 0.5 · 255 = 127),
                // resized to the SigLIP size, normalised with mean = std = 0.5.
                model->preprocess.mean = {0.5f, 0.5f, 0.5f};
                model->preprocess.stdDev = {0.5f, 0.5f, 0.5f};
                model->preprocess.padColour = {127, 127, 127};
            }
            model->preprocess.fit = models::ImageFit::Pad;
            model->preprocess.size = cfg.vision.imageSize;
            model->preprocess.patchSize = cfg.vision.patchSize;
        } else {
            const io::LlavaConfig cfg = io::readLlavaConfig(folder);
            model->layout = cfg.layout;
            model->defaultTemplate = cfg.layout == io::LlavaLayout::Original ? text::ChatTemplate::VicunaV1
                                                                             : text::ChatTemplate::LlavaHf;
            if (hasPreprocessor) {
                model->preprocess = models::readClipPreprocessConfig(folder);
                // The vision tower's position embeddings fix the image size, and its patch the grid.
                if (model->preprocess.size != cfg.vision.imageSize)
                    throw Error((fs::path(folder) / "preprocessor_config.json").string() + ": size " +
                                std::to_string(model->preprocess.size) +
                                " does not match the vision tower's image_size " +
                                std::to_string(cfg.vision.imageSize) + " in config.json");
                model->preprocess.patchSize = cfg.vision.patchSize;
            } else {
                model->preprocess.fit =
                    cfg.imageAspectRatio == "pad" || cfg.layout == io::LlavaLayout::Original
                        ? models::ImageFit::Pad
                        : models::ImageFit::Crop;
                model->preprocess.size = cfg.vision.imageSize;
                model->preprocess.patchSize = cfg.vision.patchSize;
            }
        }
        try {
            model->tokenizer = text::loadTokenizer(folder);
        } catch (const Error& e) {
            // A folder without any tokenizer still loads (to look at its layers); a broken one is an error.
            if (fs::exists(fs::path(folder) / "tokenizer.json") ||
                fs::exists(fs::path(folder) / "tokenizer.model"))
                throw;
            model->tokenizerError = e.what();
        }
        job.throwIfCancelled();
        model->backbone = models::loadBackbone(folder, options, job);
        model->loadSeconds = secondsSince(t0);
        return model;
    });
}

Result<AskResult> ask(const LoadedModel& model, const io::ImageRgb8& image, const AskOptions& options,
                      JobContext& job, const TextCallback& onText) {
    return guarded([&]() -> AskResult {
        c10::InferenceMode inference;
        const models::Backbone& backbone = *model.backbone;
        const models::BackboneInfo& info = backbone.info();
        AskResult out;

        // Pixels (first: Qwen's image token count depends on the image).
        auto t0 = std::chrono::steady_clock::now();
        const PreparedImage prepared =
            prepareImage(model, image, options.imageMode, options.maxPixels, options.fixedPixels);
        out.pixelValues = prepared.pixelValues;
        out.geometry = prepared.geometry;
        out.timings.preprocess = secondsSince(t0);
        job.throwIfCancelled();

        // Prompt text and ids.
        const text::RenderedPrompt rendered =
            renderQuestion(model, options.question, options.chatTemplate, options.rawPrompt);
        out.promptText = rendered.text;
        out.prompt = buildImagePrompt(model, rendered, prepared.tokens());

        // Vision tower + projector.
        t0 = std::chrono::steady_clock::now();
        torch::Tensor features = backbone.encodeImage(out.pixelValues);
        out.timings.vision = secondsSince(t0);
        job.throwIfCancelled();

        // Prefill + decode with capture.
        models::PromptInput input = promptInput(out.prompt, features, prepared.grid);
        if (options.sequentialPositions) {
            if (model.family != ModelFamily::Qwen2_5Vl)
                throw Error(
                    "sequential positions are a Qwen2.5-VL option; this model's positions are always so");
            input.positions =
                torch::arange(std::int64_t(input.ids.size()), torch::kLong).unsqueeze(0).repeat({3, 1});
        }

        auto ctx = backbone.newContext();
        ctx->reserve(std::int64_t(input.ids.size()) + options.generation.maxNewTokens);  // one allocation
        ctx->setCaptureRequest(options.capture);
        models::GenerationOptions gen = options.generation;
        if (gen.vocabLimit <= 0) gen.vocabLimit = model.tokenizer->vocabSize();
        text::TextStream stream(*model.tokenizer);
        bool firstToken = true;
        torch::Tensor lastLogits;
        auto onToken = [&](std::int64_t token, std::size_t) {
            if (token == info.eosTokenId) return;
            std::string piece = stream.push(token);
            if (firstToken && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
            if (!piece.empty()) firstToken = false;
            if (!piece.empty() && onText) onText(piece);
        };
        out.generation = models::generate(backbone, *ctx, input, gen, job, onToken);
        std::string rest = stream.finish();
        if (firstToken && !rest.empty() && rest[0] == ' ') rest.erase(0, 1);
        if (!rest.empty() && onText) onText(rest);
        std::vector<std::int64_t> answerIds = out.generation.tokens;
        if (!answerIds.empty() && answerIds.back() == info.eosTokenId) answerIds.pop_back();
        out.answer = model.tokenizer->decode(answerIds);
        if (out.generation.stepLogits.defined() && out.generation.stepLogits.size(0) > 0)
            out.lastLogits = out.generation.stepLogits[0].clone();
        out.timings.prefill = out.generation.prefillSeconds;
        out.timings.decode = out.generation.decodeSeconds;
        out.maps = ctx->attentionMaps();
        out.timings.capture = out.maps.stats.seconds;
        return out;
    });
}

void writeAskDump(const std::string& path, const AskResult& r) {
    std::vector<std::pair<std::string, torch::Tensor>> t;
    std::vector<std::int64_t> ids = r.prompt.ids;
    for (const auto& span : r.prompt.images)
        for (std::int64_t i = span.start; i < span.end(); ++i) ids[std::size_t(i)] = -1;
    t.emplace_back("prompt_ids", torch::tensor(ids, torch::kLong));
    t.emplace_back("image_token_start",
                   torch::tensor(std::vector<std::int64_t>{r.prompt.imageTokenStart}, torch::kLong));
    t.emplace_back("pixel_values", r.pixelValues.to(torch::kFloat));
    if (r.lastLogits.defined()) t.emplace_back("last_logits", r.lastLogits.to(torch::kFloat));
    t.emplace_back("answer_ids", torch::tensor(r.generation.tokens, torch::kLong));
    if (r.generation.stepLogits.defined())
        t.emplace_back("step_logits", r.generation.stepLogits.to(torch::kFloat));

    const auto& maps = r.maps;
    const auto lastRows = maps.rowsOfKind(models::QueryKind::LastPrompt);
    const auto answerRows = maps.rowsOfKind(models::QueryKind::Answer);
    const std::int64_t heads = maps.heads, rows = std::int64_t(maps.rows.size()), keys = maps.imageKeys;
    for (std::size_t slot = 0; slot < maps.layers.size(); ++slot) {
        const auto& layer = maps.layers[slot];
        torch::Tensor all =
            torch::from_blob(const_cast<float*>(layer.values.data()), {heads, rows, keys}, torch::kFloat);
        const std::string suffix = "." + std::to_string(layer.layer);
        if (!lastRows.empty())
            t.emplace_back("attn_last" + suffix, all.select(1, std::int64_t(lastRows.back())).clone());
        if (!answerRows.empty()) {
            std::vector<std::int64_t> idx(answerRows.begin(), answerRows.end());
            t.emplace_back("attn_answer" + suffix,
                           all.index_select(1, torch::tensor(idx, torch::kLong)).mean(1));
        }
    }
    io::saveTensors(path, t, {{"format", "pt"}, {"sdrpn.prompt", r.promptText}});
}

}  // namespace sdrpn::pipeline
