// The SD-RPN RoI predictor, the "twig" (sdrpn.md §3.1–3.2, §3.4, §3.6 LLaVA part): T decoder layers that
// branch off the backbone's hidden state after layer K. Twig layers 0 .. T−2 are full LLaMA decoder
// layers, then twig_norm (RMSNorm); of twig layer T−1 only input_layernorm, q_proj and k_proj are used. The
// RoI logit of image token v is the head mean of the scaled q·k between the query token (the last prompt
// token) and v ("Mheads"), or the plain q·k without roi_multi_head.
//
//   auto model = loadModel(dir, {}, job).value();                       // core/pipeline/ask.h
//   Rpn rpn = initRpnFromBackbone(*model->backbone, {15, 3, true});     // "twiginit", or:
//   Rpn rpn = loadRpn("/models/llava-v1.5-7b-roi-K15T3-152k-v1bf16Mheads-twiginit-filled", *model->backbone);
//   PrefillOptions pass1;  pass1.endLayer = rpn->config().K;  pass1.keepHidden = {rpn->config().K};
//   pass1.computeLogits = false;
//   auto p = model->backbone->prefill(*ctx, prompt, pass1);
//   torch::Tensor logits = rpn->forward(p.hidden.at(K), prompt.ids.size() - 1, imageStart, 576);  // [576]
//   fp32 saveRpn(rpn, "/tmp/my-rpn");                     // model.safetensors (SD-RPN key layout) +
//   config.json
//
// The module is a proper torch::nn::Module: parameters() are the trainable ones (twig layers 0 .. T−2,
// twig_norm, and input_layernorm / q_proj / k_proj of twig layer T−1); setTrainable(true) turns their
// gradients on (frozen by default). The twig runs in the backbone's dtype on its device; the final dot
// products are computed in fp32. forward() is const and may be called from several threads.
// Errors throw sdrpn::Error (files, keys, shapes) or c10::Error (TORCH_CHECK on arguments).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "core/io/config.h"
#include "core/jobs.h"
#include "core/models/backbone.h"
#include "core/models/layers.h"
#include "core/models/llama.h"
#include "core/models/weights.h"
#include "core/result.h"

namespace sdrpn {

struct RpnConfig {
    int K = 15;             // twig_K: the twig reads the input of backbone layer K (after layers 0 .. K−1)
    int T = 3;              // twig_T: twig layers (T − 1 full layers + the score layer)
    bool multiHead = true;  // roi_multi_head: mean over heads of q_h·k_h / √d_h; false: q·k
    // twig_norm before the score layer: LLaVA yes; Qwen2.5-VL no (§3.6, the line is commented out there).
    // Not stored in checkpoints: set from the backbone (rpnUsesTwigNorm) by initRpnFromBackbone and loadRpn.
    bool twigNorm = true;
    bool operator==(const RpnConfig& o) const {
        return K == o.K && T == o.T && multiHead == o.multiHead && twigNorm == o.twigNorm;
    }
};

// input_layernorm, q_proj and k_proj of the last twig layer (named as in a LlamaDecoderLayer, so that
// the SD-RPN keys twig_layers.{T−1}.input_layernorm.weight, .self_attn.q_proj.weight, ... line up).
class TwigQkProjImpl : public torch::nn::Module {
public:
    TwigQkProjImpl(const models::WeightMap& w, const std::string& prefix);
    models::Dense q() const { return m_q; }
    models::Dense k() const { return m_k; }

private:
    models::Dense m_q{nullptr}, m_k{nullptr};
};
TORCH_MODULE(TwigQkProj);

class TwigScoreLayerImpl : public torch::nn::Module {
public:
    // `prefix` e.g. "twig_layers.2": reads <prefix>.input_layernorm.weight, <prefix>.self_attn.{q,k}_proj.*
    TwigScoreLayerImpl(const models::WeightMap& w, const std::string& prefix, const io::LlamaConfig& cfg);
    // h [n, hidden] → (q [nq, heads·d], k [nk, kvHeads·d]) for the query rows and the key rows.
    std::pair<torch::Tensor, torch::Tensor> project(const torch::Tensor& query,
                                                    const torch::Tensor& keys) const;

private:
    models::RmsNorm m_norm{nullptr};
    TwigQkProj m_attn{nullptr};
};
TORCH_MODULE(TwigScoreLayer);

class RpnImpl : public torch::nn::Module {
public:
    // `weights` under the SD-RPN names without the "model." prefix: twig_layers.{t}.<HF layer sub-name> for
    // t < T−1, twig_layers.{T−1}.{input_layernorm, self_attn.q_proj, self_attn.k_proj}.*, twig_norm.weight.
    // `text` gives the layer shapes, norm eps and RoPE of the backbone's decoder.
    RpnImpl(const RpnConfig& config, const io::LlamaConfig& text, const models::WeightMap& weights);

    // hidden: [L, hidden] or [1, L, hidden], the input of backbone layer K for the whole sequence from
    // position 0 (PrefillResult::hidden[K] of pass 1). Returns the fp32 RoI logits [imageCount] of image rows
    // [imageStart, imageStart + imageCount) against row `queryRow`. The twig layers see the same causal
    // mask and positions as the backbone: plain RoPE at rows 0 .., or `rope` (cos / sin of rows 0 .. at least
    // the query row, e.g. DecoderBackbone::ropeRows of the pass-1 context for Qwen2.5-VL's M-RoPE).
    torch::Tensor forward(const torch::Tensor& hidden, std::int64_t queryRow, std::int64_t imageStart,
                          std::int64_t imageCount, const models::RopeTable* rope = nullptr) const;

    const RpnConfig& config() const { return m_config; }
    const io::LlamaConfig& textConfig() const { return m_text; }
    // Every tensor under its SD-RPN checkpoint key ("model.twig_layers.0.mlp.up_proj.weight", ...,
    // "model.twig_norm.weight"); the tensors share storage with the module.
    std::vector<std::pair<std::string, torch::Tensor>> checkpointTensors() const;
    // Turns gradients of every parameter on or off (off after construction and loading).
    void setTrainable(bool trainable);

private:
    RpnConfig m_config;
    io::LlamaConfig m_text;
    torch::nn::ModuleList m_twigLayers{nullptr};
    std::vector<models::LlamaDecoderLayer> m_layers;  // twig layers 0 .. T−2
    TwigScoreLayer m_score{nullptr};                  // twig layer T−1
    models::RmsNorm m_twigNorm{nullptr};
    models::RotaryEmbedding m_rope;
};
TORCH_MODULE(Rpn);

// Canonical twig tensor names (without "model.") and shapes for a config and decoder.
std::vector<models::WeightSpec> rpnWeightSpecs(const RpnConfig& config, const io::LlamaConfig& text);

// A stored checkpoint key → canonical twig name ("twig_layers.0.…", "twig_norm.weight"), or "" for keys
// that are not part of the twig (the backbone, twig_head, twig layer T−1's unused v/o/MLP/post-norm).
// Accepts the original ("model.twig_layers.…") and llava-hf style ("language_model.model.twig_layers.…")
// keys.
std::string normaliseRpnKey(const std::string& key, const RpnConfig& config);

// The backbone's decoder config; throws sdrpn::Error for a backbone without a LLaMA-style decoder (the twig
// is built from its layers).
const io::LlamaConfig& rpnTextConfig(const models::Backbone& backbone);
// Whether the backbone's twig has twig_norm (everything but Qwen2.5-VL, §3.6).
bool rpnUsesTwigNorm(const models::Backbone& backbone);

// "twiginit" (sdrpn.md §3.4): twig layer t from backbone layer K + t, twig_norm from the final norm. The
// tensors are copied (a trainer changes its own copy) unless `shareWeights`. Throws when K + T exceeds the
// backbone's layers or K, T < 1.
Rpn initRpnFromBackbone(const models::Backbone& backbone, const RpnConfig& config, bool shareWeights = false);

// twig_K, twig_T and roi_multi_head from `path` (a folder's config.json, a .json file, or the metadata of a
// .safetensors file written by saveRpn). roi_multi_head defaults to true when absent (the released
// "Mheads" checkpoints). Throws naming the file and key.
RpnConfig readRpnConfig(const std::string& path);

// Loads the twig of an SD-RPN checkpoint: a folder (config.json + model.safetensors or shards, the whole
// "filled" model or just the twig) or a .safetensors file from saveRpn. Only the twig tensors are read,
// converted to the backbone's dtype and device. Throws sdrpn::Error listing every missing or mismatched
// tensor with the file; CancelledError when cancelled.
Rpn loadRpn(const std::string& path, const models::Backbone& backbone,
            const JobContext& job = JobContext::none());
Result<Rpn> tryLoadRpn(const std::string& path, const models::Backbone& backbone,
                       const JobContext& job = JobContext::none());

// Writes `folder`/model.safetensors (SD-RPN keys, the module's dtype, metadata twig_K / twig_T /
// roi_multi_head) and `folder`/config.json ({"twig_K", "twig_T", "roi_multi_head"}); creates the folder.
void saveRpn(const Rpn& rpn, const std::string& folder);

}  // namespace sdrpn
