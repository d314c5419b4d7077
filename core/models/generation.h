// Autoregressive generation over any Backbone: greedy or sampling (temperature, top-k, top-p, seed), stop
// on EOS / stop tokens / max new tokens, cancel and progress through JobContext, a callback per token for
// streaming. Captured attention rows (Context::setCaptureRequest) accumulate in the context as it goes.
//
//   GenerationOptions opt;  opt.maxNewTokens = 64;
//   auto ctx = model->newContext();
//   GenerationResult r = generate(*model, *ctx, prompt, opt, job,
//                                 [](std::int64_t token, std::size_t i) { stream(token); });
//   // r.tokens, r.stepLogits[i] chose r.tokens[i]; ctx->attentionMaps() has the captured rows
//
// The last generated token is not fed back (as in the reference), so the context ends one token short of
// prompt + answer. Sampling draws from a CPU generator seeded with `seed`, so results do not depend on the
// device. Cancel throws CancelledError between tokens (the context keeps what was decoded so far). Greedy
// decoding on a GPU reads the tokens in bursts (GenerationOptions::syncEvery) with the same result.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include <torch/torch.h>

#include "core/jobs.h"
#include "core/models/backbone.h"

namespace sdrpn::models {

struct GenerationOptions {
    int maxNewTokens = 128;
    bool sample = false;       // false: greedy (argmax)
    double temperature = 1.0;  // sampling only; <= 0 means greedy
    int topK = 0;              // 0: off
    double topP = 1.0;         // 1: off
    std::uint64_t seed = 0;
    bool stopAtEos = true;
    std::vector<std::int64_t> stopTokens;  // besides EOS
    bool keepStepLogits = true;
    // > 0: only ids below it are ever chosen. Models pad their vocabulary (llava-hf: 32064 rows for a
    // tokenizer of 32002); the padding rows have no text, so the pipeline limits choices to the tokenizer.
    std::int64_t vocabLimit = 0;
    // Greedy decoding on a GPU chooses each token on the device and feeds it straight back, so the decode
    // loop never waits for the device; the host reads the chosen ids every `syncEvery` tokens (streaming
    // then comes in bursts of that many, and the context is cut back after a stop token found inside a
    // burst). 0: 8 for greedy decoding on a GPU, 1 (read every token) otherwise. Sampling always reads
    // every token (its generator is on the CPU).
    int syncEvery = 0;
};

enum class StopReason { Eos, StopToken, MaxTokens };

struct GenerationResult {
    std::vector<std::int64_t> tokens;  // generated ids, the stop token included
    torch::Tensor stepLogits;  // [tokens, vocab] fp32 on the CPU: the logits each token was chosen from
    StopReason stopReason = StopReason::MaxTokens;
    std::int64_t promptTokens = 0;  // context length after the prefill
    double prefillSeconds = 0.0;
    double decodeSeconds = 0.0;  // all decode steps together
};

// Called on the worker thread after each token is chosen (index 0 = first answer token).
using TokenCallback = std::function<void(std::int64_t token, std::size_t index)>;

// Chooses tokens from logits as HF's greedy / sampling pipeline does (temperature, then top-k, then top-p).
class TokenSampler {
public:
    explicit TokenSampler(const GenerationOptions& options);
    // logits [vocab] (any device / float dtype).
    std::int64_t next(const torch::Tensor& logits);

private:
    GenerationOptions m_options;
    std::mt19937_64 m_rng;
};

// The number of tokens between host reads that generateFrom uses for these options and logits' device.
int effectiveSyncEvery(const GenerationOptions& options, const torch::Tensor& logits);

// Prefills `prompt` into ctx, then decodes.
GenerationResult generate(const Backbone& model, Context& ctx, const PromptInput& prompt,
                          const GenerationOptions& options, const JobContext& job,
                          const TokenCallback& onToken = {}, const PrefillOptions& prefillOptions = {});

// Decodes from the logits of the context's last token (e.g. after a custom prefill).
GenerationResult generateFrom(const Backbone& model, Context& ctx, torch::Tensor lastLogits,
                              const GenerationOptions& options, const JobContext& job,
                              const TokenCallback& onToken = {});

}  // namespace sdrpn::models
