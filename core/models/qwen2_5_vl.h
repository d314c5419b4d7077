// Qwen2.5-VL (mllm_reference.md §9): the window-attention ViT (qwen_vision.h) and its 2×2 patch merger give
// one feature row per merged 28×28 cell; a Qwen2 decoder (LLaMA layers with q/k/v bias and GQA) reads them
// at the <|image_pad|> rows with multimodal RoPE (M-RoPE): every row has a (t, h, w) position, text rows
// advance one counter on all three streams, image cell (r, c) gets (st, st + r, st + c) and the text after
// an image continues at the largest position so far + 1 (get_rope_index). Decoded tokens get the context's
// next position on all three streams, i.e. their cache index + rope_deltas.
//
// Loads hub folders (keys `visual.*`, `model.*`, `lm_head.weight`; flat config.json) and folders re-saved by
// transformers >= 4.52 (`model.visual.*`, `model.language_model.*`, `lm_head.weight`; nested config.json).
//
//   auto model = loadQwen2_5Vl("/models/Qwen2.5-VL-7B-Instruct", opt, job);
//   QwenPreprocessedImage image = QwenImageProcessor(readQwenPreprocessConfig(dir)).process(photo);
//   torch::Tensor features = model->encodePatches(image.pixelValues, image.gridThw);   // [gh·gw / 4, hidden]
//   PromptInput prompt = PromptInput::fromTokenIds(ids, model->info().imageTokenId, {features});
//   prompt.grids = {ImageGrid{int(image.gridThw[1] / 2), int(image.gridThw[2] / 2)}};  // merged cells
//   auto ctx = model->newContext();                                                    // a QwenContext
//   PrefillResult p = model->prefill(*ctx, prompt);
//
// Image rows need their merged grid (PromptInput::grids), or explicit positions (PromptInput::positions,
// e.g. for a subset of an image's cells): prefill throws sdrpn::Error otherwise. Thread safety: a loaded
// model is read-only; use one Context per job.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/io/config.h"
#include "core/jobs.h"
#include "core/models/decoder_backbone.h"
#include "core/models/llama.h"
#include "core/models/load_options.h"
#include "core/models/qwen_vision.h"
#include "core/result.h"

namespace sdrpn::models {

// M-RoPE cos / sin [L, headDim] in `dtype` on `device` for positions int64 [3, L] (t, h, w): inv_freq in
// fp32 as plain RoPE, each stream's cat(freqs, freqs), and dimension k taken from the stream of its section
// in [s0, s1, s2, s0, s1, s2] (section sums to headDim / 2); cos / sin in fp32, then cast.
RopeTable mropeTable(const torch::Tensor& positions, std::int64_t headDim, double theta,
                     const std::vector<int>& section, torch::ScalarType dtype, torch::Device device);

// get_rope_index for one sequence: int64 [3, ids.size()] on the CPU. Image rows are kImageSlot (or
// `imageTokenId` for raw ids); consecutive image rows are consumed image by image in the order of `grids`
// (merged cells, rows × cols), image j's cell (r, c) getting (st, st + r, st + c) where st is the
// position the next text row would have had. Text rows run one counter on all three streams, starting at
// `startPosition` and continuing after an image at its largest position + 1. Throws sdrpn::Error when a run
// of image rows does not match its grid, a grid is missing or empty, or grids are left over.
torch::Tensor qwenRopeIndex(const std::vector<std::int64_t>& ids, const std::vector<ImageGrid>& grids,
                            std::int64_t startPosition = 0, std::int64_t imageTokenId = kImageSlot);

// A Context that also keeps the M-RoPE position (t, h, w) of every row.
class QwenContext : public Context {
public:
    QwenContext(int layers, int heads, torch::Device device) : Context(layers, heads, device) {}

    std::unique_ptr<Context> clone() const override;
    void truncate(std::int64_t length) override;

    // Positions of every row so far, int64 [3, length()] on the CPU.
    torch::Tensor positions() const;
    // Positions of rows [begin, begin + length), int64 [3, length] on the CPU.
    torch::Tensor positions(std::int64_t begin, std::int64_t length) const;
    // The first position when rows [begin, begin + length) sit at consecutive positions with t = h = w
    // (text), else -1: where M-RoPE equals plain RoPE.
    std::int64_t sequentialStart(std::int64_t begin, std::int64_t length) const;
    // The position the next text row gets: the largest position so far + 1 (0 when empty).
    std::int64_t nextPosition() const { return m_next; }
    // rope_deltas of the reference: nextPosition() - length().
    std::int64_t ropeDelta() const { return m_next - length(); }

    // For the backbone: records rows [start, start + n) (positions int64 [3, n]); rows from `start` on that
    // were recorded before are replaced.
    void setPositions(std::int64_t start, const torch::Tensor& positions);

private:
    explicit QwenContext(const Context& base) : Context(base) {}  // clone(): base part already deep-copied
    void cutPositions(std::int64_t length);

    std::array<std::vector<std::int64_t>, 3> m_positions;  // t, h, w per row
    std::int64_t m_next = 0;
};

class Qwen2_5VlModel final : public DecoderBackbone {
public:
    // Builds from loaded weights under canonical (hub) names; see qwenVlWeightSpecs. Without vision
    // weights (a text-only WeightMap) the model runs but encodeImage / encodePatches throw.
    Qwen2_5VlModel(const io::QwenVlConfig& cfg, const WeightMap& weights, torch::Device device,
                   torch::ScalarType dtype, std::string source = {});

    std::unique_ptr<Context> newContext() const override;

    // pixels [3, H, W] or [B, 3, H, W], normalised, H and W multiples of patch·merge (28) -> features
    // [B · H/28 · W/28, hidden], merged cells row-major per image.
    torch::Tensor encodeImage(const torch::Tensor& pixels) const override;
    // Patch rows as the processor gives them ([t·gh·gw, 1176], merge-block order) -> [t·gh·gw / 4, hidden].
    torch::Tensor encodePatches(const torch::Tensor& patches, std::array<std::int64_t, 3> gridThw) const;
    bool hasVision() const { return !m_vision.is_empty(); }
    QwenVisionTower vision() const { return m_vision; }

    RopeTable ropeRows(const Context& ctx, std::int64_t begin, std::int64_t length,
                       torch::ScalarType dtype) const override;

    const io::QwenVlConfig& config() const { return m_cfg; }
    std::int64_t visionStartTokenId() const { return m_cfg.visionStartTokenId; }
    std::int64_t visionEndTokenId() const { return m_cfg.visionEndTokenId; }
    // rope_deltas and the positions of a context made by newContext(); throw sdrpn::Error for another.
    std::int64_t ropeDelta(const Context& ctx) const;
    torch::Tensor positions(const Context& ctx) const;  // int64 [3, length] on the CPU

protected:
    // prompt.positions ([3, n]) when defined, else qwenRopeIndex over the new rows from the context's next
    // position with the grids of the call's image spans.
    void appendPositions(Context& ctx, const std::vector<std::int64_t>& ids, const PromptInput& prompt,
                         std::int64_t start) const override;
    // Decoded text rows sit at cache index + rope_deltas on all three streams: plain RoPE there.
    std::int64_t decodeRopeOffset(const Context& ctx) const override { return ropeDelta(ctx); }

private:
    io::QwenVlConfig m_cfg;
    QwenVisionTower m_vision{nullptr};
};

// Every tensor a Qwen2.5-VL model of this config needs, under canonical (hub) names.
std::vector<WeightSpec> qwenVlWeightSpecs(const io::QwenVlConfig& cfg);
// The text side only (`model.*`, `lm_head.weight`).
std::vector<WeightSpec> qwenTextWeightSpecs(const io::QwenVlConfig& cfg);

// Stored key -> canonical (hub) name: hub keys as they are, `model.language_model.*` -> `model.*`,
// `model.visual.*` -> `visual.*`; "" for rotary inv_freq buffers and unknown keys.
std::string normaliseQwenVlKey(const std::string& key);

// Loads a Qwen2.5-VL folder. Progress (bytes) and cancel through `job`. Throws sdrpn::Error naming the
// folder / file / tensors; CancelledError when cancelled.
std::shared_ptr<const Qwen2_5VlModel> loadQwen2_5Vl(const std::string& modelDir, const LoadOptions& options,
                                                    const JobContext& job);
Result<std::shared_ptr<const Qwen2_5VlModel>> tryLoadQwen2_5Vl(const std::string& modelDir,
                                                               const LoadOptions& options,
                                                               const JobContext& job);

}  // namespace sdrpn::models
