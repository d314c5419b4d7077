// Qwen2.5-VL vision encoder (mllm_reference.md §9 "Vision encoder forward"): Conv3d patch embedding as one
// matmul, 2-D vision RoPE, window reordering by 2x2 merge units, pre-norm blocks with window attention
// (full attention in `fullatt_block_indexes`), SwiGLU MLP, and the patch merger (RMSNorm, 2x2 concat,
// Linear, exact GELU, Linear), returned in merged-grid row-major order.
//
//   auto cfg = io::readQwenVlConfig(dir).vision;
//   WeightMap w = loadWeights(source, qwenVisionWeightSpecs(cfg, "visual."), device, dtype, job, "vision");
//   QwenVisionTower tower(w, "visual.", cfg);
//   torch::Tensor tokens = tower->forward(pixelValues, {1, 34, 46});   // [1564, 1176] -> [391, outHidden]
//
// Weights are read-only after construction; forward is safe from several threads. Works in fp32, bf16 and
// fp16 (RoPE and softmax in fp32). Bad shapes or configs throw (TORCH_CHECK / sdrpn::Error) naming the value.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/io/config.h"
#include "core/models/layers.h"
#include "core/models/weights.h"

namespace sdrpn::models {

// Canonical names and shapes under `prefix` (e.g. "visual."; a missing trailing '.' is added):
// patch_embed.proj.weight [hidden, C, T, p, p], blocks.N.{norm1,norm2}.weight,
// blocks.N.attn.qkv.{weight,bias}, blocks.N.attn.proj.{weight,bias},
// blocks.N.mlp.{gate_proj,up_proj,down_proj}.{weight,bias}, merger.ln_q.weight, merger.mlp.0.{weight,bias}
// [h*m*m, h*m*m], merger.mlp.2.{weight,bias} [out, h*m*m]. Throws sdrpn::Error for an inconsistent config
// (see checkQwenVisionConfig).
std::vector<WeightSpec> qwenVisionWeightSpecs(const io::QwenVisionConfig& cfg, const std::string& prefix);

// Throws sdrpn::Error naming the field at fault: heads that do not divide hidden, a head dim the 2-D RoPE
// cannot split (must be a multiple of 4), a window smaller than one merge unit, a full-attention block index
// outside [0, depth), an unknown activation.
void checkQwenVisionConfig(const io::QwenVisionConfig& cfg);

// Window partition of one frame (HF get_window_index for a single image): `unitOrder` is the permutation
// `window_index` over the (gridH / merge) x (gridW / merge) merge units (windows row-major, units row-major
// inside each window, padding skipped); `cuSeqlens` the cumulative patch counts per window starting at 0,
// with empty windows removed (unique_consecutive). Throws sdrpn::Error when the grid is not a positive
// multiple of the merge size.
struct QwenWindows {
    std::vector<std::int64_t> unitOrder;
    std::vector<std::int64_t> cuSeqlens;
};
QwenWindows qwenWindowIndex(std::int64_t gridH, std::int64_t gridW, const io::QwenVisionConfig& cfg);

// Which rows attend to which in one block: consecutive segments of the (window-ordered) sequence, given by
// cumulative lengths. Equal segments run as one batched attention; unequal ones (windows cut by the image
// border) are padded to the longest with the padding keys masked. Built once per forward, on `device`.
struct QwenAttentionSegments {
    std::int64_t rows = 0;       // N
    std::int64_t count = 0;      // segments
    std::int64_t maxLength = 0;  // longest segment
    torch::Tensor gather;        // [count * maxLength] row of each padded slot; undefined when all are equal
    torch::Tensor keyBias;       // [count, 1, 1, maxLength] fp32, 0 or -inf on padding; with `gather`
    torch::Tensor scatter;       // [N] padded slot of each row; with `gather`

    static QwenAttentionSegments fromCuSeqlens(const std::vector<std::int64_t>& cuSeqlens,
                                               torch::Device device);
};

// One encoder block: x + proj(attn(norm1 x)) with 2-D RoPE on q and k, then x + down(act(gate y) * up y)
// with y = norm2 x.
class QwenVisionBlockImpl : public torch::nn::Module {
public:
    QwenVisionBlockImpl(const WeightMap& w, const std::string& prefix, const io::QwenVisionConfig& cfg);
    // x [N, hidden] in window order; cos, sin [N, headDim] fp32 in the same order.
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                          const QwenAttentionSegments& segments) const;

private:
    RmsNorm m_norm1{nullptr}, m_norm2{nullptr};
    Dense m_qkv{nullptr}, m_proj{nullptr}, m_gate{nullptr}, m_up{nullptr}, m_down{nullptr};
    std::int64_t m_heads, m_headDim;
    double m_scale;
    std::string m_act;
};
TORCH_MODULE(QwenVisionBlock);

class QwenVisionTowerImpl : public torch::nn::Module {
public:
    // `prefix` as for qwenVisionWeightSpecs; every tensor of those specs must be in `w`.
    QwenVisionTowerImpl(const WeightMap& w, const std::string& prefix, const io::QwenVisionConfig& cfg);
    // patches [N, C*T*p*p] in the processor's 2x2 merge-block order (Qwen pixel_values), grid (t, gh, gw) in
    // patches -> merged features [N / merge^2, outHidden] in merged-grid row-major order (frame by frame).
    // Patches are moved to the weights' device and dtype. Throws when N != t*gh*gw, the width is not
    // C*T*p*p, or gh / gw are not multiples of the merge size.
    torch::Tensor forward(const torch::Tensor& patches, const std::array<std::int64_t, 3>& gridThw) const;

    const io::QwenVisionConfig& config() const { return m_cfg; }

private:
    io::QwenVisionConfig m_cfg;
    torch::Tensor m_patchWeight;  // [hidden, C*T*p*p]
    torch::Tensor m_invFreq;      // [headDim / 4] fp32, on the weights' device
    std::vector<QwenVisionBlock> m_blocks;
    std::vector<bool> m_fullAttention;  // per block
    RmsNorm m_mergerNorm{nullptr};
    Dense m_mergerFc1{nullptr}, m_mergerFc2{nullptr};
};
TORCH_MODULE(QwenVisionTower);

}  // namespace sdrpn::models
