// Small building blocks built from loaded weights (no random initialisation, parameters frozen):
// Dense (y = x·Wᵀ + b), LayerNorm, RmsNorm (mllm_reference.md §5: fp32 compute, cast back, then × weight),
// and the activations the reference uses.
//
//   Dense q(weights, "language_model.model.layers.0.self_attn.q_proj");   // reads .weight (and .bias if any)
//   auto y = q->forward(x);
//
// Module parameters are registered with requires_grad = false; a trainer that fine-tunes a copy turns it on.
#pragma once

#include <string>

#include <torch/torch.h>

#include "core/models/weights.h"

namespace sdrpn::models {

class DenseImpl : public torch::nn::Module {
public:
    // `prefix` + ".weight" [out, in] must be in `w`; `prefix` + ".bias" is used when present (or required
    // when `requireBias`).
    DenseImpl(const WeightMap& w, const std::string& prefix, bool requireBias = false);
    DenseImpl(torch::Tensor weight, torch::Tensor bias);
    torch::Tensor forward(const torch::Tensor& x) const { return torch::linear(x, m_weight, m_bias); }
    const torch::Tensor& weight() const { return m_weight; }
    const torch::Tensor& bias() const { return m_bias; }
    std::int64_t outFeatures() const { return m_weight.size(0); }

private:
    torch::Tensor m_weight, m_bias;
};
TORCH_MODULE(Dense);

class LayerNormImpl : public torch::nn::Module {
public:
    LayerNormImpl(const WeightMap& w, const std::string& prefix, double eps);
    torch::Tensor forward(const torch::Tensor& x) const;

private:
    torch::Tensor m_weight, m_bias;
    double m_eps;
};
TORCH_MODULE(LayerNorm);

class RmsNormImpl : public torch::nn::Module {
public:
    RmsNormImpl(const WeightMap& w, const std::string& prefix, double eps);
    RmsNormImpl(torch::Tensor weight, double eps);
    torch::Tensor forward(const torch::Tensor& x) const;
    const torch::Tensor& weight() const { return m_weight; }
    double eps() const { return m_eps; }

private:
    torch::Tensor m_weight;
    double m_eps;
};
TORCH_MODULE(RmsNorm);

// x·sigmoid(1.702x) (CLIP's "quick_gelu").
torch::Tensor quickGelu(const torch::Tensor& x);
// By config name: "gelu" (erf), "quick_gelu", "gelu_pytorch_tanh" / "gelu_new" (tanh), "silu", "relu".
// Throws sdrpn::Error naming an unknown activation.
torch::Tensor activation(const std::string& name, const torch::Tensor& x);
void checkActivation(const std::string& name, const std::string& where);

}  // namespace sdrpn::models
