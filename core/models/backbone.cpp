#include "core/models/backbone.h"

#include <algorithm>

#include <torch/version.h>

#include "core/result.h"

namespace sdrpn::models {

PromptInput PromptInput::fromTokenIds(std::vector<std::int64_t> ids, std::int64_t imageTokenId,
                                      std::vector<torch::Tensor> images) {
    PromptInput p;
    for (auto& id : ids)
        if (id == imageTokenId) id = kImageSlot;
    p.ids = std::move(ids);
    p.images = std::move(images);
    return p;
}

std::int64_t PromptInput::imageSlotCount() const {
    return std::int64_t(std::count(ids.begin(), ids.end(), kImageSlot));
}

std::int64_t PromptInput::firstImageSlot() const {
    auto it = std::find(ids.begin(), ids.end(), kImageSlot);
    return it == ids.end() ? -1 : std::int64_t(it - ids.begin());
}

std::vector<std::int64_t> expandImageSentinels(const std::vector<std::int64_t>& ids, std::int64_t sentinel,
                                               std::int64_t tokensPerImage) {
    std::vector<std::int64_t> out;
    out.reserve(ids.size() + std::size_t(tokensPerImage));
    for (auto id : ids) {
        if (id == sentinel)
            out.insert(out.end(), std::size_t(tokensPerImage), kImageSlot);
        else
            out.push_back(id);
    }
    return out;
}

std::unique_ptr<Context> Backbone::newContext() const {
    return std::make_unique<Context>(info().layers, info().heads, info().device);
}

torch::Tensor Backbone::decodeStepDevice(Context& ctx, const torch::Tensor& token) const {
    TORCH_CHECK(token.defined() && token.numel() == 1, "decode: expected one token id, got ",
                token.defined() ? token.sizes() : torch::IntArrayRef{});
    return decodeStep(ctx, token.reshape({}).item<std::int64_t>());
}

torch::Device parseDevice(const std::string& name) {
    if (name.empty() || name == "cpu") return torch::kCPU;
    if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
        if (!torch::cuda::is_available())
            throw Error("device '" + name + "': CUDA is not available in this build or on this machine");
        int index = 0;
        if (name.size() > 5) {
            try {
                std::size_t used = 0;
                index = std::stoi(name.substr(5), &used);
                if (used != name.size() - 5) throw std::invalid_argument(name);
            } catch (const std::exception&) {
                throw Error("device '" + name + "': expected cuda:N");
            }
        }
        if (index < 0 || index >= int(torch::cuda::device_count()))
            throw Error("device '" + name + "': only " + std::to_string(torch::cuda::device_count()) +
                        " CUDA device(s)");
        return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
    }
    throw Error("unknown device '" + name + "' (expected cpu, cuda or cuda:N)");
}

torch::ScalarType parseComputeDType(const std::string& name) {
    if (name.empty() || name == "fp32" || name == "float32" || name == "float") return torch::kFloat;
    if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
    if (name == "fp16" || name == "float16" || name == "half") return torch::kHalf;
    throw Error("unknown compute dtype '" + name + "' (expected fp32, bf16 or fp16)");
}

std::string computeDTypeName(torch::ScalarType dtype) {
    switch (dtype) {
        case torch::kFloat:
            return "fp32";
        case torch::kBFloat16:
            return "bf16";
        case torch::kHalf:
            return "fp16";
        default:
            return std::string(c10::toString(dtype));
    }
}

void checkComputeSupport(torch::Device device, torch::ScalarType dtype) {
    // Probe the kernels a forward needs; older LibTorch lacks some half-precision CPU kernels.
    try {
        torch::NoGradGuard noGrad;
        auto a = torch::ones({4, 4}, torch::TensorOptions().dtype(dtype).device(device));
        auto w = torch::ones({4}, torch::TensorOptions().dtype(dtype).device(device));
        auto y = torch::linear(torch::matmul(a, a), a, w);
        y = torch::layer_norm(torch::gelu(y), {4}, w, w, 1e-5);
        y = torch::softmax(y, -1, torch::kFloat).to(dtype) * torch::sigmoid(y);
        auto img = torch::ones({1, 1, 4, 4}, torch::TensorOptions().dtype(dtype).device(device));
        (void)torch::conv2d(img, torch::ones({1, 1, 2, 2}, img.options()), {}, 2);
        (void)torch::embedding(a,
                               torch::zeros({1}, torch::TensorOptions().dtype(torch::kLong).device(device)));
    } catch (const c10::Error& e) {
        std::string what = e.what_without_backtrace();
        throw Error("compute dtype " + computeDTypeName(dtype) + " is not supported on " + device.str() +
                    " by this LibTorch (" + TORCH_VERSION + "): " + what.substr(0, what.find('\n')) +
                    "; use fp32 or bf16");
    }
}

void selectCaptureRows(const CaptureRequest& request, const std::vector<std::int64_t>& ids,
                       std::int64_t start, std::int64_t lastImagePosition, bool decoding,
                       std::vector<std::int64_t>& rows, std::vector<QueryRow>& meta) {
    rows.clear();
    meta.clear();
    const std::int64_t len = std::int64_t(ids.size());
    for (std::int64_t r = 0; r < len; ++r) {
        const std::int64_t pos = start + r;
        QueryKind kind;
        bool take = false;
        if (decoding) {
            take = request.answerTokens;
            kind = QueryKind::Answer;
        } else if (r == len - 1 && request.lastPromptToken) {
            take = true;
            kind = QueryKind::LastPrompt;
        } else if (request.questionTokens && pos > lastImagePosition && ids[std::size_t(r)] != kImageSlot) {
            take = true;
            kind = r == len - 1 ? QueryKind::LastPrompt : QueryKind::Question;
        } else {
            kind = QueryKind::Prompt;
            take =
                std::find(request.positions.begin(), request.positions.end(), pos) != request.positions.end();
        }
        if (!take) continue;
        rows.push_back(r);
        meta.push_back(QueryRow{pos, ids[std::size_t(r)], kind});
    }
}

}  // namespace sdrpn::models
