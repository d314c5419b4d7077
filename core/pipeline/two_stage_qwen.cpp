// SD-RPN's two-stage answer on Qwen2.5-VL (sdrpn.md §3.6, §4.7): pass 1 to layer K on the image at its native
// aspect ratio, the twig with M-RoPE positions and no twig_norm, the "mask"-style RoI (no component
// analysis), the crop encoded at the same pixel budget, and pass 2 as a full prefill of
//   … <|vision_start|> IMG <|vision_start|> ROI(h'·w') <|vision_end|> <|vision_end|> text …
// with M-RoPE positions computed over that sequence and the crop tokens outside the resized mask dropped (the
// kept ones keep their positions; decoding continues after the largest position).
#include <chrono>

#include "core/models/clip_image_processor.h"
#include "core/models/qwen2_5_vl.h"
#include "core/pipeline/prompt.h"
#include "core/pipeline/two_stage_detail.h"

namespace sdrpn::pipeline::detail {
namespace {

double secondsSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Result<TwoStageResult> answerTwoStageQwen(const LoadedModel& model, const Rpn& rpn,
                                          const io::ImageRgb8& image, const TwoStageOptions& options,
                                          JobContext& job, const StageTextCallback& onText) {
    return guarded([&]() -> TwoStageResult {
        c10::InferenceMode inference;
        const auto* qwen = dynamic_cast<const models::Qwen2_5VlModel*>(model.backbone.get());
        if (!qwen) throw Error(model.folder + ": not a Qwen2.5-VL backbone");
        const models::BackboneInfo& info = qwen->info();
        const bool useRpn = options.roiLogitsOverride.empty();
        if (useRpn && rpn.is_empty())
            throw Error("no RPN given (load one, or initialise it from the backbone)");
        if (!rpn.is_empty() && rpn->config().K > info.layers)
            throw Error("the RPN branches off layer " + std::to_string(rpn->config().K) +
                        " but the model has " + std::to_string(info.layers) + " layers");
        options.roi.validate();
        TwoStageResult out;
        out.roiSettings = options.roi;

        // Pixels at the native aspect ratio, then the prompt (its image token count depends on them).
        auto t0 = std::chrono::steady_clock::now();
        const PreparedImage prepared = prepareImage(model, image, options.imageMode);
        out.geometry = prepared.geometry;
        const models::ImageGrid grid = prepared.grid;
        out.timings.preprocess = secondsSince(t0);
        if (!useRpn && std::int64_t(options.roiLogitsOverride.size()) != grid.cells())
            throw Error("the RoI logits override has " + std::to_string(options.roiLogitsOverride.size()) +
                        " values, the image grid " + std::to_string(grid.rows) + "x" +
                        std::to_string(grid.cols) + " has " + std::to_string(grid.cells()));
        const text::RenderedPrompt rendered =
            renderQuestion(model, options.question, options.chatTemplate, options.rawPrompt);
        out.promptText = rendered.text;
        out.prompt = buildImagePrompt(model, rendered, grid.cells());
        const std::int64_t imageStart = out.prompt.imageTokenStart;
        const std::int64_t imageCount = grid.cells();
        const std::int64_t promptLength = out.prompt.length();
        if (promptLength <= imageStart + imageCount)
            throw Error(
                "SD-RPN needs prompt text after the image (its query token is the last prompt token)");
        job.throwIfCancelled();

        t0 = std::chrono::steady_clock::now();
        const torch::Tensor features = qwen->encodeImage(prepared.pixelValues);
        out.timings.vision = secondsSince(t0);
        job.throwIfCancelled();
        const models::PromptInput input = promptInput(out.prompt, features, grid);

        // Pass 1: to layer K for the twig, or every layer when it doubles as the baseline's prefill.
        const int layers = info.layers;
        const int K = rpn.is_empty() ? layers : rpn->config().K;
        const int passEnd = options.baseline ? layers : K;
        models::PrefillOptions pass1;
        pass1.endLayer = passEnd;
        pass1.computeLogits = passEnd == layers;
        if (useRpn) pass1.keepHidden.push_back(K);
        auto ctx = qwen->newContext();
        ctx->reserve(promptLength + options.generation.maxNewTokens);
        ctx->setCaptureRequest(options.capture);
        const models::PrefillResult p1 = qwen->prefill(*ctx, input, pass1);
        out.timings.pass1 = p1.seconds;
        job.throwIfCancelled();

        // RoI logits (§3.6: M-RoPE positions of the real sequence, no twig_norm) and the mask-style RoI.
        t0 = std::chrono::steady_clock::now();
        torch::Tensor logits;
        if (useRpn) {
            const torch::Tensor hidden = p1.hidden.at(K);
            const models::RopeTable rope = qwen->ropeRows(*ctx, 0, promptLength, hidden.scalar_type());
            logits = rpn->forward(hidden, promptLength - 1, imageStart, imageCount, &rope);
            logits = logits.to(torch::kCPU, torch::kFloat).contiguous();
        } else {
            logits = torch::tensor(options.roiLogitsOverride, torch::kFloat);
        }
        out.timings.rpn = useRpn ? secondsSince(t0) : 0.0;
        out.roiLogits = logits.view({grid.rows, grid.cols}).clone();
        t0 = std::chrono::steady_clock::now();
        const std::vector<float> logitValues(logits.data_ptr<float>(),
                                             logits.data_ptr<float>() + logits.numel());
        out.roi = postprocessRoiQwen(logitValues, grid.rows, grid.cols, options.roi, out.geometry);
        out.timings.postprocess = secondsSince(t0);
        out.cropBox = out.roi.sourceBox;
        job.throwIfCancelled();

        if (options.baseline) {
            out.baseline = decodeAnswer(model, *ctx, p1.logits, options, AnswerStage::Baseline, job, onText,
                                        out.timings.baselineDecode);
            out.baselineComputed = true;
        }
        if (options.capture.any()) out.maps = ctx->attentionMaps();
        ctx.reset();
        if (options.baseline && !out.roi.zoom()) {
            out.roiAnswer = out.baseline;
            out.roiAnswerIsBaseline = true;
            out.pass2Length = promptLength;
            return out;
        }

        // The crop at the same pixel budget, its own grid, and the mask resized onto it.
        std::vector<std::int64_t> ids = input.ids;
        std::vector<torch::Tensor> images = {features};
        std::vector<models::ImageGrid> grids = {grid};
        std::vector<std::int64_t>
            keepRows;  // rows of the pass-2 sequence that stay (all but dropped crop tokens)
        if (out.roi.zoom()) {
            t0 = std::chrono::steady_clock::now();
            const PreparedImage crop = prepareImage(model, models::cropImage(image, out.roi.sourceBox),
                                                    options.imageMode == "pad" ? "pad" : "");
            out.cropGrid = crop.grid;
            qwenCropTokenMask(out.roi, crop.grid.rows, crop.grid.cols);
            torch::Tensor roiFeatures = qwen->encodeImage(crop.pixelValues);
            out.timings.cropEncode = secondsSince(t0);
            job.throwIfCancelled();

            // … <|vision_start|> IMG <|vision_start|> ROI <|vision_end|> <|vision_end|> …
            const std::int64_t insertAt = imageStart + imageCount;
            std::vector<std::int64_t> block = {qwen->visionStartTokenId()};
            block.insert(block.end(), std::size_t(crop.grid.cells()), models::kImageSlot);
            block.push_back(qwen->visionEndTokenId());
            ids.insert(ids.begin() + insertAt, block.begin(), block.end());
            grids.push_back(crop.grid);
            std::vector<std::int64_t> keep;
            std::vector<std::int64_t> keptCells;
            for (std::int64_t r = 0; r < std::int64_t(ids.size()); ++r) {
                const std::int64_t cell = r - (insertAt + 1);
                const bool cropRow = cell >= 0 && cell < crop.grid.cells();
                if (!cropRow || out.roi.tokenMask[std::size_t(cell)]) keep.push_back(r);
                if (cropRow && out.roi.tokenMask[std::size_t(cell)]) keptCells.push_back(cell);
            }
            out.roiTokens = std::int64_t(keptCells.size());
            roiFeatures =
                roiFeatures.index_select(0, torch::tensor(keptCells, torch::kLong).to(roiFeatures.device()));
            images.push_back(roiFeatures);
            keepRows = std::move(keep);
        }

        // Pass 2: positions over the whole new sequence, then the dropped crop rows removed.
        models::PromptInput full;
        full.positions = models::qwenRopeIndex(ids, grids);
        if (!keepRows.empty()) {
            full.positions = full.positions.index_select(1, torch::tensor(keepRows, torch::kLong));
            std::vector<std::int64_t> kept;
            kept.reserve(keepRows.size());
            for (const std::int64_t r : keepRows) kept.push_back(ids[std::size_t(r)]);
            ids = std::move(kept);
        }
        full.ids = std::move(ids);
        full.images = std::move(images);
        full.grids = {grid};
        if (full.images.size() > 1)
            full.grids.push_back(out.roiTokens == out.cropGrid.cells() ? out.cropGrid : models::ImageGrid{});
        auto fresh = qwen->newContext();
        fresh->reserve(std::int64_t(full.ids.size()) + options.generation.maxNewTokens);
        t0 = std::chrono::steady_clock::now();
        const models::PrefillResult p2 = qwen->prefill(*fresh, full);
        out.timings.pass2 = secondsSince(t0);
        out.pass2Length = fresh->length();
        job.throwIfCancelled();

        out.roiAnswer = decodeAnswer(model, *fresh, p2.logits, options, AnswerStage::Roi, job, onText,
                                     out.timings.decode);
        return out;
    });
}

}  // namespace sdrpn::pipeline::detail
