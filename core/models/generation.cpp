#include "core/models/generation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/models/decoder_backbone.h"
#include "core/result.h"

namespace sdrpn::models {

TokenSampler::TokenSampler(const GenerationOptions& options) : m_options(options), m_rng(options.seed) {}

std::int64_t TokenSampler::next(const torch::Tensor& logitsIn) {
    auto logits = logitsIn.detach().to(torch::kCPU, torch::kFloat).contiguous().view({-1});
    std::int64_t n = logits.numel();
    if (m_options.vocabLimit > 0) n = std::min(n, m_options.vocabLimit);
    TORCH_CHECK(n > 0, "sampler: empty logits");
    const float* data = logits.data_ptr<float>();
    if (!m_options.sample || m_options.temperature <= 0.0) {
        return std::int64_t(std::max_element(data, data + n) - data);  // first maximum, like torch.argmax
    }
    std::vector<double> scores(data, data + n);
    for (auto& s : scores) s /= m_options.temperature;
    const double negInf = -std::numeric_limits<double>::infinity();
    std::vector<std::int64_t> order(std::size_t(n), 0);
    std::iota(order.begin(), order.end(), 0);
    if (m_options.topK > 0 && m_options.topK < n) {
        // HF TopKLogitsWarper: keep scores >= the k-th largest.
        std::vector<double> sorted(scores);
        std::nth_element(sorted.begin(), sorted.begin() + (m_options.topK - 1), sorted.end(),
                         std::greater<>());
        const double kth = sorted[std::size_t(m_options.topK - 1)];
        for (auto& s : scores)
            if (s < kth) s = negInf;
    }
    if (m_options.topP < 1.0) {
        // HF TopPLogitsWarper: sort ascending, drop the low tail whose cumulative probability <= 1 - top_p,
        // always keeping the most likely token.
        std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return scores[a] < scores[b]; });
        const double mx = scores[std::size_t(order.back())];
        double z = 0.0;
        for (auto s : scores) z += std::exp(s - mx);
        double cum = 0.0;
        for (std::size_t i = 0; i + 1 < order.size(); ++i) {
            auto& s = scores[std::size_t(order[i])];
            cum += std::exp(s - mx) / z;
            if (cum <= 1.0 - m_options.topP) s = negInf;
        }
    }
    const double mx = *std::max_element(scores.begin(), scores.end());
    std::vector<double> probs(scores.size());
    for (std::size_t i = 0; i < scores.size(); ++i) probs[i] = std::exp(scores[i] - mx);
    std::discrete_distribution<std::int64_t> dist(probs.begin(), probs.end());
    return dist(m_rng);
}

namespace {

bool isStop(std::int64_t token, const Backbone& model, const GenerationOptions& options, StopReason& reason) {
    if (options.stopAtEos && token == model.info().eosTokenId) {
        reason = StopReason::Eos;
        return true;
    }
    if (std::find(options.stopTokens.begin(), options.stopTokens.end(), token) != options.stopTokens.end()) {
        reason = StopReason::StopToken;
        return true;
    }
    return false;
}

// How many of `wanted` new tokens fit after the `length` in a context: the model's context
// (max_position_embeddings of a decoder's text config) minus the length; `wanted` when it has no limit.
std::int64_t contextRoom(const Backbone& model, std::int64_t length, std::int64_t wanted) {
    const auto* decoder = dynamic_cast<const DecoderBackbone*>(&model);
    const std::int64_t context = decoder ? decoder->text()->config().maxPositionEmbeddings : 0;
    if (context <= 0) return wanted;
    return std::max<std::int64_t>(0, std::min(wanted, context - length));
}

bool isGreedy(const GenerationOptions& options) {
    return !options.sample || options.temperature <= 0.0;
}

// Greedy decoding with the tokens chosen on the model's device: up to `burst` tokens are chosen and fed
// back before the host reads them (one synchronisation per burst). Same tokens, logits and final context
// as the per-token loop below.
GenerationResult generateInBursts(const Backbone& model, Context& ctx, torch::Tensor logits,
                                  const GenerationOptions& options, const JobContext& job,
                                  const TokenCallback& onToken, int burst) {
    GenerationResult result;
    result.promptTokens = ctx.length();
    const std::int64_t base = ctx.length();
    const auto t0 = std::chrono::steady_clock::now();
    auto choose = [&](const torch::Tensor& l) {
        const auto v =
            options.vocabLimit > 0 && options.vocabLimit < l.size(0) ? l.narrow(0, 0, options.vocabLimit) : l;
        return v.argmax().reshape({1});  // first maximum, like the host's max_element
    };
    std::vector<torch::Tensor> pendingIds, pendingLogits, steps;
    torch::Tensor token = choose(logits);
    pendingIds.push_back(token);
    if (options.keepStepLogits) pendingLogits.push_back(logits.to(torch::kFloat));
    int chosen = 1;
    std::int64_t readId = -1;  // the last token read by the host and not fed yet
    bool done = options.maxNewTokens <= 0;
    if (done) pendingIds.clear();
    // Reads the pending ids; returns true when a stop token or the token limit ends the answer.
    auto flush = [&]() {
        if (pendingIds.empty()) return false;
        const auto ids = torch::cat(pendingIds).to(torch::kCPU).contiguous();
        const auto lg = pendingLogits.empty() ? torch::Tensor() : torch::stack(pendingLogits).to(torch::kCPU);
        const auto* id = ids.data_ptr<std::int64_t>();
        bool stop = false;
        for (std::int64_t j = 0; j < ids.numel() && !stop; ++j) {
            const std::int64_t t = id[j];
            const std::int64_t i = std::int64_t(result.tokens.size());
            const std::int64_t position = base + i;
            if (position < ctx.length() && ctx.tokens()[std::size_t(position)] == kPendingToken)
                ctx.setToken(position, t);
            result.tokens.push_back(t);
            if (lg.defined()) steps.push_back(lg[j]);
            if (onToken) onToken(t, std::size_t(i));
            job.report(i + 1, options.maxNewTokens, "decoding");
            if (isStop(t, model, options, result.stopReason)) {
                stop = true;
            } else if (i + 1 >= options.maxNewTokens) {
                result.stopReason = StopReason::MaxTokens;
                stop = true;
            }
            if (stop) ctx.truncate(position);  // the reference never feeds the last chosen token
            readId = t;
        }
        pendingIds.clear();
        pendingLogits.clear();
        return stop;
    };
    while (!done) {
        if (job.cancelRequested()) {
            flush();
            job.throwIfCancelled();
        }
        if (chosen < options.maxNewTokens && int(pendingIds.size()) < burst) {
            const std::int64_t position = ctx.length();
            logits = model.decodeStepDevice(ctx, token);
            if (readId >= 0 && ctx.tokens()[std::size_t(position)] == kPendingToken)
                ctx.setToken(position, readId);
            readId = -1;
            token = choose(logits);
            pendingIds.push_back(token);
            if (options.keepStepLogits) pendingLogits.push_back(logits.to(torch::kFloat));
            ++chosen;
            continue;
        }
        done = flush();
    }
    result.decodeSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!steps.empty()) result.stepLogits = torch::stack(steps);
    return result;
}

}  // namespace

int effectiveSyncEvery(const GenerationOptions& options, const torch::Tensor& logits) {
    if (!isGreedy(options)) return 1;
    if (options.syncEvery > 0) return options.syncEvery;
    return logits.defined() && logits.is_cuda() ? 8 : 1;
}

GenerationResult generateFrom(const Backbone& model, Context& ctx, torch::Tensor lastLogits,
                              const GenerationOptions& options, const JobContext& job,
                              const TokenCallback& onToken) {
    torch::NoGradGuard noGrad;
    TORCH_CHECK(lastLogits.defined() && lastLogits.dim() == 1,
                "generate: logits of the last token must be [vocab]");
    if (!torch::isfinite(lastLogits).all().item<bool>()) {
        const auto& info = model.info();
        throw Error(
            "the model's output holds NaN or infinite values (the logits of the prompt's last token): "
            "the weights in " +
            (info.source.empty() ? std::string("the model folder") : info.source) +
            " may hold NaN or Inf values, or " + computeDTypeName(info.dtype) +
            " overflows in this model (try fp32 or bf16)");
    }
    // Every chosen token but the last is fed back: the whole answer has to fit in the context.
    GenerationOptions fitted = options;
    fitted.maxNewTokens = int(contextRoom(model, ctx.length(), options.maxNewTokens));
    const int burst = effectiveSyncEvery(fitted, lastLogits);
    if (burst > 1) return generateInBursts(model, ctx, std::move(lastLogits), fitted, job, onToken, burst);
    GenerationResult result;
    result.promptTokens = ctx.length();
    TokenSampler sampler(options);
    std::vector<torch::Tensor> steps;
    auto logits = std::move(lastLogits);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < fitted.maxNewTokens; ++i) {
        job.throwIfCancelled();
        auto cpuLogits = logits.to(torch::kCPU, torch::kFloat);
        const std::int64_t token = sampler.next(cpuLogits);
        result.tokens.push_back(token);
        if (options.keepStepLogits) steps.push_back(cpuLogits);
        if (onToken) onToken(token, std::size_t(i));
        job.report(i + 1, fitted.maxNewTokens, "decoding");
        if (isStop(token, model, options, result.stopReason)) break;
        if (i + 1 == fitted.maxNewTokens) {
            result.stopReason = StopReason::MaxTokens;
            break;
        }
        logits = model.decodeStep(ctx, token);
    }
    result.decodeSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!steps.empty()) result.stepLogits = torch::stack(steps);
    return result;
}

GenerationResult generate(const Backbone& model, Context& ctx, const PromptInput& prompt,
                          const GenerationOptions& options, const JobContext& job,
                          const TokenCallback& onToken, const PrefillOptions& prefillOptions) {
    torch::NoGradGuard noGrad;
    job.throwIfCancelled();
    PrefillOptions po = prefillOptions;
    po.computeLogits = true;
    po.allLogits = false;
    PrefillResult p = model.prefill(ctx, prompt, po);
    auto result = generateFrom(model, ctx, p.logits, options, job, onToken);
    result.prefillSeconds = p.seconds;
    return result;
}

}  // namespace sdrpn::models
