// Backbone: the one interface every multimodal LLM family implements (llava, and later qwen2_5_vl,
// deepseek_vl), one file per family behind the registry (core/models/registry.h).
//
// A Backbone holds loaded, read-only weights and may be shared by several jobs (threads); everything a run
// changes (KV cache, tokens so far, captured attention rows) lives in a Context made by newContext().
//
//   std::shared_ptr<const Backbone> model = loadBackbone("/models/llava-1.5-7b-hf", {}, job);
//   torch::NoGradGuard noGrad;                                   // or c10::InferenceMode in the worker
//   torch::Tensor features = model->encodeImage(pixels);         // [576, hidden]
//   PromptInput prompt = PromptInput::fromTokenIds(ids, model->info().imageTokenId, {features});
//   auto ctx = model->newContext();
//   ctx->setCaptureRequest(request);                             // optional (capture.h)
//   PrefillResult p = model->prefill(*ctx, prompt);              // p.logits: [vocab] of the last token
//   torch::Tensor next = model->decodeStep(*ctx, token);         // [vocab]
//
// Conventions: batch 1 in the language model; logits are fp32 on the model's device; positions are
// 0 .. length-1 over the expanded sequence (image rows count like text). Errors: TORCH_CHECK / sdrpn::Error
// naming the value at fault; a failed prefill or decode step leaves the Context as it was before the call.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/models/capture.h"
#include "core/models/context.h"
#include "core/models/weights.h"

namespace sdrpn::models {

// Marks a prompt row that is filled from image features.
constexpr std::int64_t kImageSlot = -1;

// Token ids with image rows marked, plus the features that fill them.
struct PromptInput {
    std::vector<std::int64_t> ids;      // kImageSlot (-1) at image rows
    std::vector<torch::Tensor> images;  // [n_i, hidden] each, filling the slots in order
    std::vector<ImageGrid> grids;       // optional, per image; default: the backbone's grid when
                                        // n_i equals its cell count, else {0, 0}
    torch::Tensor positions;            // optional int64 [3, ids.size()]: M-RoPE (t, h, w) positions of the
                                        // rows (Qwen2.5-VL; computed from ids and grids when undefined).
                                        // Plain-RoPE backbones ignore it.

    // llava-hf style ids: every id == imageTokenId becomes a slot (as HF masked_scatter does).
    static PromptInput fromTokenIds(std::vector<std::int64_t> ids, std::int64_t imageTokenId,
                                    std::vector<torch::Tensor> images = {});
    std::int64_t imageSlotCount() const;
    std::int64_t firstImageSlot() const;  // -1 when none
};

// Original-LLaVA style ids: each `sentinel` (-200) is replaced by `tokensPerImage` kImageSlot rows.
std::vector<std::int64_t> expandImageSentinels(const std::vector<std::int64_t>& ids, std::int64_t sentinel,
                                               std::int64_t tokensPerImage);

struct PrefillOptions {
    int endLayer = -1;            // run decoder layers [0, endLayer) only (SD-RPN pass 1); -1 = all. The
                                  // skipped layers' KV is not extended: truncate() before continuing.
                                  // Rows captured by such a call hold NaN in the layers it skips.
    std::vector<int> keepHidden;  // hidden states to return: k = input of layer k (0 = embeddings),
                                  // layerCount() = last layer's output before the final norm
    bool computeLogits = true;    // needs all layers
    bool allLogits = false;       // logits of every row instead of the last one
};

struct PrefillResult {
    torch::Tensor logits;                 // [vocab] (last row) or [L, vocab] with allLogits; fp32
    std::map<int, torch::Tensor> hidden;  // keepHidden -> [L, hidden] for this call's rows
    std::int64_t start = 0;               // position of this call's first row
    double seconds = 0.0;
};

struct BackboneInfo {
    std::string modelType;     // registry key, e.g. "llava"
    std::string architecture;  // e.g. "LlavaForConditionalGeneration"
    std::string source;        // folder the weights came from
    int layers = 0, heads = 0, kvHeads = 0, headDim = 0, hidden = 0;
    std::int64_t vocab = 0;
    std::int64_t bosTokenId = -1, eosTokenId = -1, padTokenId = -1;
    std::int64_t imageTokenId = -1;  // id the tokenizer gives the image placeholder (llava-hf: 32000)
    std::int64_t imageSentinel = 0;  // original LLaVA: -200; 0 when unused
    std::int64_t imageTokens = 0;    // feature rows per image
    ImageGrid grid;                  // image token grid (LLaVA-1.5: 24 x 24)
    int imageSize = 0;               // side of the square pixel input (336)
    torch::Device device = torch::kCPU;
    torch::ScalarType dtype = torch::kFloat;
};

class Backbone {
public:
    virtual ~Backbone() = default;

    virtual const BackboneInfo& info() const = 0;
    int layerCount() const { return info().layers; }
    int headCount() const { return info().heads; }
    ImageGrid imageGrid() const { return info().grid; }

    // pixels [3, S, S] or [B, 3, S, S] (preprocessed) -> features [B * imageTokens, hidden] in the compute
    // dtype on the model's device.
    virtual torch::Tensor encodeImage(const torch::Tensor& pixels) const = 0;

    virtual std::unique_ptr<Context> newContext() const;
    // Appends the prompt to ctx (positions ctx.length() ..) and runs it.
    virtual PrefillResult prefill(Context& ctx, const PromptInput& prompt,
                                  const PrefillOptions& options = {}) const = 0;
    // Appends one token and returns the next-token logits [vocab] (fp32).
    virtual torch::Tensor decodeStep(Context& ctx, std::int64_t token) const = 0;
    // decodeStep with the token as a one-element int64 tensor on the model's device (e.g. the argmax of the
    // previous logits), so that a decode loop never waits for the device. The context records kPendingToken
    // at that position until Context::setToken; the id is not range-checked on the host. The default reads
    // the id (one synchronisation) and calls decodeStep.
    virtual torch::Tensor decodeStepDevice(Context& ctx, const torch::Tensor& token) const;

    // Weights of decoder layer `layer` under their HF sub-names ("input_layernorm.weight",
    // "self_attn.q_proj.weight", ...), and the final norm's weight: what an SD-RPN twig is initialised from.
    virtual WeightMap decoderLayerWeights(int layer) const = 0;
    virtual torch::Tensor finalNormWeight() const = 0;
};

// "cpu", "cuda", "cuda:N" -> device; throws sdrpn::Error for anything else or CUDA that is not available.
torch::Device parseDevice(const std::string& name);
// "fp32" / "float32", "bf16" / "bfloat16", "fp16" / "float16" -> dtype; throws sdrpn::Error otherwise.
torch::ScalarType parseComputeDType(const std::string& name);
std::string computeDTypeName(torch::ScalarType dtype);
// Throws sdrpn::Error when this LibTorch cannot run the model's kernels in `dtype` on `device` (e.g. fp16
// on the CPU before LibTorch 2.1).
void checkComputeSupport(torch::Device device, torch::ScalarType dtype);

// Which rows of a call to capture (used by Backbone implementations): request + the call's ids,
// its first position and the position of the last image row of the whole context (-1 if none).
void selectCaptureRows(const CaptureRequest& request, const std::vector<std::int64_t>& ids,
                       std::int64_t start, std::int64_t lastImagePosition, bool decoding,
                       std::vector<std::int64_t>& rows, std::vector<QueryRow>& meta);

}  // namespace sdrpn::models
