#include "core/pipeline/two_stage.h"

#include <chrono>

#include "core/io/tensor_io.h"
#include "core/models/clip_image_processor.h"
#include "core/models/llava.h"
#include "core/pipeline/prompt.h"
#include "core/pipeline/two_stage_detail.h"

namespace sdrpn::pipeline {
namespace {

double secondsSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

namespace detail {

StageAnswer decodeAnswer(const LoadedModel& model, models::Context& ctx, const torch::Tensor& lastLogits,
                         const TwoStageOptions& options, AnswerStage stage, JobContext& job,
                         const StageTextCallback& onText, double& seconds) {
    const models::Backbone& backbone = *model.backbone;
    const std::int64_t eos = backbone.info().eosTokenId;
    text::TextStream stream(*model.tokenizer);
    bool first = true;
    auto emit = [&](std::string piece) {
        if (first && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
        if (!piece.empty()) first = false;
        if (!piece.empty() && onText) onText(stage, piece);
    };
    auto onToken = [&](std::int64_t token, std::size_t) {
        if (token != eos) emit(stream.push(token));
    };
    models::GenerationOptions gen = options.generation;
    if (gen.vocabLimit <= 0) gen.vocabLimit = model.tokenizer->vocabSize();
    models::GenerationResult g = models::generateFrom(backbone, ctx, lastLogits, gen, job, onToken);
    emit(stream.finish());
    StageAnswer a;
    a.tokens = g.tokens;
    std::vector<std::int64_t> ids = g.tokens;
    if (!ids.empty() && ids.back() == eos) ids.pop_back();
    a.text = model.tokenizer->decode(ids);
    a.lastLogits = lastLogits.to(torch::kCPU, torch::kFloat).clone();
    a.stepLogits = g.stepLogits;
    a.stopReason = g.stopReason;
    seconds = g.decodeSeconds;
    return a;
}

}  // namespace detail

namespace {

// Pixels of the RoI crop as the reference makes them (§4.2–4.3): PIL crop of the original image, PIL
// bilinear resize to the encoder's square, then the model's CLIP preprocessing (a no-op pad / resize /
// centre crop on a square of the right size, then rescale and normalise).
torch::Tensor cropPixels(const io::ImageRgb8& image, const models::PixelBox& box,
                         const models::ClipPreprocessConfig& pre, int encoderSize) {
    const io::ImageRgb8 crop = models::cropImage(image, box);
    const io::ImageRgb8 square =
        models::resizePil(crop, encoderSize, encoderSize, models::PilFilter::Bilinear);
    return models::ClipImageProcessor(pre).process(square).pixelValues;
}

}  // namespace

Result<TwoStageResult> answerTwoStage(const LoadedModel& model, const Rpn& rpn, const io::ImageRgb8& image,
                                      const TwoStageOptions& options, JobContext& job,
                                      const StageTextCallback& onText) {
    if (model.family == ModelFamily::Qwen2_5Vl)
        return detail::answerTwoStageQwen(model, rpn, image, options, job, onText);
    return guarded([&]() -> TwoStageResult {
        c10::InferenceMode inference;
        const models::Backbone& backbone = *model.backbone;
        const models::BackboneInfo& info = backbone.info();
        const auto* llava = dynamic_cast<const models::DecoderBackbone*>(&backbone);
        if (!llava)
            throw Error("SD-RPN two-stage answers need a backbone with a LLaMA-style decoder; '" +
                        info.modelType + "' has none");
        const bool useRpn = options.roiLogitsOverride.empty();
        if (useRpn && rpn.is_empty())
            throw Error("no RPN given (load one, or initialise it from the backbone)");
        const models::ImageGrid grid = info.grid;
        if (grid.cells() <= 0 || grid.cells() != info.imageTokens)
            throw Error("SD-RPN needs the image tokens to form a grid; this model has " +
                        std::to_string(info.imageTokens) + " tokens per image");
        if (!useRpn && std::int64_t(options.roiLogitsOverride.size()) != grid.cells())
            throw Error("the RoI logits override has " + std::to_string(options.roiLogitsOverride.size()) +
                        " values, the image grid " + std::to_string(grid.cells()));
        if (!rpn.is_empty() && rpn->config().K > info.layers)
            throw Error("the RPN branches off layer " + std::to_string(rpn->config().K) +
                        " but the model has " + std::to_string(info.layers) + " layers");
        options.roi.validate();
        TwoStageResult out;
        out.roiSettings = options.roi;

        // Prompt ids.
        const text::RenderedPrompt rendered =
            renderQuestion(model, options.question, options.chatTemplate, options.rawPrompt);
        out.promptText = rendered.text;
        out.prompt = buildImagePrompt(model, rendered);
        const std::int64_t imageStart = out.prompt.imageTokenStart;
        const std::int64_t imageCount = info.imageTokens;
        const std::int64_t prefixLength = imageStart + imageCount;  // [sys | img]: shared by both passes
        const std::int64_t promptLength = out.prompt.length();
        if (promptLength <= prefixLength)
            throw Error(
                "SD-RPN needs prompt text after the image (its query token is the last prompt token)");

        // Pixels and the vision tower.
        auto t0 = std::chrono::steady_clock::now();
        const models::ClipPreprocessConfig pre = preprocessConfig(model, options.imageMode);
        if (image.empty()) throw Error("the image is empty");
        const models::PreprocessedImage processed = models::ClipImageProcessor(pre).process(image);
        out.geometry = processed.geometry;
        out.timings.preprocess = secondsSince(t0);
        job.throwIfCancelled();
        t0 = std::chrono::steady_clock::now();
        const torch::Tensor features = backbone.encodeImage(processed.pixelValues);
        out.timings.vision = secondsSince(t0);
        job.throwIfCancelled();

        const models::PromptInput input = promptInput(out.prompt, features);

        // Pass 1 (§4.1): to layer K for the twig, or every layer when it doubles as the baseline's prefill.
        const int layers = info.layers;
        const int K = rpn.is_empty() ? layers : rpn->config().K;
        const int passEnd = options.baseline ? layers : K;
        models::PrefillOptions pass1;
        pass1.endLayer = passEnd;
        pass1.computeLogits = passEnd == layers;
        if (useRpn) pass1.keepHidden.push_back(K);
        if (passEnd < layers && !(useRpn && passEnd == K)) pass1.keepHidden.push_back(passEnd);
        auto ctx = backbone.newContext();
        // Room for the prompt, the RoI tokens of pass 2 and either answer: the cache is allocated once.
        const std::int64_t reserve = promptLength + imageCount + options.generation.maxNewTokens;
        ctx->reserve(reserve);
        ctx->setCaptureRequest(options.capture);
        const models::PrefillResult p1 = backbone.prefill(*ctx, input, pass1);
        out.timings.pass1 = p1.seconds;
        job.throwIfCancelled();

        // RoI logits and post-processing (§3.2, §4.2).
        t0 = std::chrono::steady_clock::now();
        torch::Tensor logits;
        if (useRpn) {
            logits = rpn->forward(p1.hidden.at(K), promptLength - 1, imageStart, imageCount);
            logits = logits.to(torch::kCPU, torch::kFloat).contiguous();
        } else {
            logits = torch::tensor(options.roiLogitsOverride, torch::kFloat);
        }
        out.timings.rpn = useRpn ? secondsSince(t0) : 0.0;
        out.roiLogits = logits.view({grid.rows, grid.cols}).clone();
        t0 = std::chrono::steady_clock::now();
        std::vector<float> logitValues(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
        out.roi = postprocessRoi(logitValues, grid.rows, grid.cols, options.roi, out.geometry);
        out.timings.postprocess = secondsSince(t0);
        out.cropBox = out.roi.sourceBox;
        job.throwIfCancelled();

        // Baseline answer from pass 1's full prefill; then drop the question so the prefix can be reused.
        if (options.baseline) {
            out.baseline = detail::decodeAnswer(model, *ctx, p1.logits, options, AnswerStage::Baseline, job,
                                                onText, out.timings.baselineDecode);
            out.baselineComputed = true;
        }
        if (options.capture.any()) {
            out.maps = ctx->attentionMaps();
            ctx->setCaptureRequest(models::CaptureRequest::none());
        }
        if (options.baseline) {
            if (!out.roi.zoom()) {
                // Without RoI tokens pass 2 is the original prompt again (§4.2): the baseline answer stands.
                out.roiAnswer = out.baseline;
                out.roiAnswerIsBaseline = true;
                out.pass2Length = promptLength;
                return out;
            }
        }

        // The RoI tokens (§4.3): all crop tokens (bbox branch) or those inside the mask (mask branch).
        torch::Tensor roiFeatures;
        if (out.roi.zoom()) {
            t0 = std::chrono::steady_clock::now();
            const torch::Tensor pixels = cropPixels(image, out.roi.sourceBox, pre, info.imageSize);
            roiFeatures = backbone.encodeImage(pixels);
            if (out.roi.roiTokens < roiFeatures.size(0)) {
                std::vector<std::int64_t> keep;
                for (std::size_t v = 0; v < out.roi.tokenMask.size(); ++v)
                    if (out.roi.tokenMask[v]) keep.push_back(std::int64_t(v));
                roiFeatures =
                    roiFeatures.index_select(0, torch::tensor(keep, torch::kLong).to(roiFeatures.device()));
            }
            out.timings.cropEncode = secondsSince(t0);
            out.roiTokens = roiFeatures.size(0);
            job.throwIfCancelled();
        }
        const std::int64_t n = out.roiTokens;
        const models::ImageGrid roiGrid = n == grid.cells() ? grid : models::ImageGrid{};
        std::vector<std::int64_t> question(input.ids.begin() + prefixLength, input.ids.end());

        // Pass 2 (§4.3–4.4): [sys | img | RoI(N) | question], positions contiguous, then decoding.
        models::PrefillResult p2;
        std::unique_ptr<models::Context> fresh;
        models::Context* pass2Ctx = ctx.get();
        t0 = std::chrono::steady_clock::now();
        if (options.reuseKv) {
            if (passEnd < layers)
                llava->completePrefix(*ctx, p1.hidden.at(passEnd), passEnd, prefixLength);  // layers K ..
            else
                ctx->truncate(prefixLength);
            models::PromptInput rest;
            rest.ids.assign(std::size_t(n), models::kImageSlot);
            rest.ids.insert(rest.ids.end(), question.begin(), question.end());
            if (n > 0) {
                rest.images = {roiFeatures};
                rest.grids = {roiGrid};
            }
            p2 = backbone.prefill(*ctx, rest);
            out.kvReused = true;
        } else {
            models::PromptInput full;
            full.ids.assign(input.ids.begin(), input.ids.begin() + prefixLength);
            full.ids.insert(full.ids.end(), std::size_t(n), models::kImageSlot);
            full.ids.insert(full.ids.end(), question.begin(), question.end());
            full.images = {features};
            full.grids = {grid};
            if (n > 0) {
                full.images.push_back(roiFeatures);
                full.grids.push_back(roiGrid);
            }
            fresh = backbone.newContext();
            fresh->reserve(reserve);
            pass2Ctx = fresh.get();
            ctx.reset();
            p2 = backbone.prefill(*fresh, full);
        }
        out.timings.pass2 = secondsSince(t0);
        out.pass2Length = pass2Ctx->length();
        job.throwIfCancelled();

        out.roiAnswer = detail::decodeAnswer(model, *pass2Ctx, p2.logits, options, AnswerStage::Roi, job,
                                             onText, out.timings.decode);
        return out;
    });
}

void writeTwoStageDump(const std::string& path, const TwoStageResult& r) {
    using Pair = std::pair<std::string, torch::Tensor>;
    std::vector<Pair> t;
    const RoiResult& roi = r.roi;
    auto grid = [&](const std::vector<float>& v) {
        return torch::tensor(v, torch::kFloat).view({roi.rows, roi.cols});
    };
    t.emplace_back("roi_logits", grid(roi.logits));
    t.emplace_back("roi_prob_blurred", grid(roi.blurred));
    std::vector<std::int64_t> boxes;
    for (const auto& b : roi.boxes) boxes.insert(boxes.end(), {b.x0, b.y0, b.x1, b.y1});
    t.emplace_back("components",
                   torch::tensor(boxes, torch::kLong).view({std::int64_t(roi.boxes.size()), 4}));
    t.emplace_back("branch",
                   torch::tensor(std::vector<std::int64_t>{std::int64_t(roi.branch)}, torch::kLong));
    const auto& s = roi.sourceBox;
    t.emplace_back("src_box", torch::tensor(std::vector<std::int64_t>{s.x0, s.y0, s.x1, s.y1}, torch::kLong));
    t.emplace_back("n_roi_tokens", torch::tensor(std::vector<std::int64_t>{r.roiTokens}, torch::kLong));
    // The crop's own token grid: the original grid for LLaVA, the crop's smart-resized grid for Qwen2.5-VL.
    const int maskRows = r.cropGrid.cells() > 0 ? r.cropGrid.rows : roi.rows;
    const int maskCols = r.cropGrid.cells() > 0 ? r.cropGrid.cols : roi.cols;
    std::vector<std::uint8_t> mask = roi.tokenMask;
    mask.resize(std::size_t(maskRows) * std::size_t(maskCols), 0);
    t.emplace_back("roi_token_mask",
                   torch::tensor(std::vector<std::int64_t>(mask.begin(), mask.end()), torch::kLong)
                       .to(torch::kUInt8)
                       .view({maskRows, maskCols}));
    t.emplace_back("answer_ids_baseline", torch::tensor(r.baseline.tokens, torch::kLong));
    t.emplace_back("answer_ids_roi", torch::tensor(r.roiAnswer.tokens, torch::kLong));
    const auto& tm = r.timings;
    const std::vector<float> ms = {float(tm.vision * 1e3), float((tm.pass1 + tm.rpn) * 1e3),
                                   float(tm.cropEncode * 1e3), float(tm.pass2 * 1e3), float(tm.decode * 1e3)};
    t.emplace_back("timings_ms", torch::tensor(ms, torch::kFloat));
    io::saveTensors(path, t,
                    {{"format", "pt"},
                     {"sdrpn.prompt", r.promptText},
                     {"sdrpn.roi_settings", r.roiSettings.toJson().dump()},
                     {"sdrpn.branch", roiBranchName(roi.branch)},
                     {"sdrpn.reason", roi.reason},
                     {"sdrpn.timings", "vision,pass1+rpn,crop_encode,pass2,decode"}});
}

}  // namespace sdrpn::pipeline
