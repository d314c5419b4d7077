#include "core/models/layers.h"

#include <torch/version.h>

#include "core/result.h"

namespace sdrpn::models {

DenseImpl::DenseImpl(const WeightMap& w, const std::string& prefix, bool requireBias)
    : DenseImpl(models::weight(w, prefix + ".weight"),
                requireBias ? models::weight(w, prefix + ".bias") : optionalWeight(w, prefix + ".bias")) {}

DenseImpl::DenseImpl(torch::Tensor weightTensor, torch::Tensor biasTensor) {
    TORCH_CHECK(weightTensor.defined() && weightTensor.dim() == 2, "Dense: weight must be [out, in]");
    m_weight = register_parameter("weight", std::move(weightTensor), /*requires_grad=*/false);
    if (biasTensor.defined()) {
        TORCH_CHECK(biasTensor.dim() == 1 && biasTensor.size(0) == m_weight.size(0), "Dense: bias ",
                    biasTensor.sizes(), " does not match weight ", m_weight.sizes());
        m_bias = register_parameter("bias", std::move(biasTensor), /*requires_grad=*/false);
    }
}

LayerNormImpl::LayerNormImpl(const WeightMap& w, const std::string& prefix, double eps) : m_eps(eps) {
    m_weight = register_parameter("weight", models::weight(w, prefix + ".weight"), false);
    m_bias = register_parameter("bias", models::weight(w, prefix + ".bias"), false);
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) const {
    return torch::layer_norm(x, {m_weight.size(0)}, m_weight, m_bias, m_eps);
}

RmsNormImpl::RmsNormImpl(const WeightMap& w, const std::string& prefix, double eps)
    : RmsNormImpl(models::weight(w, prefix + ".weight"), eps) {}

RmsNormImpl::RmsNormImpl(torch::Tensor weightTensor, double eps) : m_eps(eps) {
    m_weight = register_parameter("weight", std::move(weightTensor), false);
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) const {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 8)
    // LibTorch's fused kernel on a GPU (one launch instead of seven; fp32 inside, rounded once at the end
    // where the reference rounds before the scale: within one unit of the last place in bf16 / fp16).
    if (x.is_cuda() && !torch::GradMode::is_enabled() && x.size(-1) == m_weight.size(0) &&
        x.scalar_type() == m_weight.scalar_type()) {
        const std::vector<std::int64_t> shape{x.size(-1)};
        return at::rms_norm(x, shape, m_weight, m_eps);
    }
#endif
    // mllm_reference.md §5: normalise in fp32, cast back to the activation dtype, then scale.
    auto x32 = x.to(torch::kFloat);
    auto y = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + m_eps);
    return m_weight * y.to(x.scalar_type());
}

torch::Tensor quickGelu(const torch::Tensor& x) {
    return x * torch::sigmoid(1.702 * x);
}

void checkActivation(const std::string& name, const std::string& where) {
    if (name == "gelu" || name == "quick_gelu" || name == "gelu_pytorch_tanh" || name == "gelu_new" ||
        name == "silu" || name == "relu")
        return;
    throw Error(where + ": unsupported activation '" + name + "'");
}

torch::Tensor activation(const std::string& name, const torch::Tensor& x) {
    if (name == "gelu") return torch::gelu(x);  // exact (erf), mllm_reference.md §4
    if (name == "quick_gelu") return quickGelu(x);
    if (name == "gelu_pytorch_tanh" || name == "gelu_new") return torch::gelu(x, "tanh");
    if (name == "silu") return torch::silu(x);
    if (name == "relu") return torch::relu(x);
    throw Error("unsupported activation '" + name + "'");
}

}  // namespace sdrpn::models
