#include "core/models/qwen_vision.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/models/attention.h"
#include "core/result.h"

namespace sdrpn::models {

namespace {

// Upper bound on one chunk of fp32 window scores in the padded path (bytes).
constexpr std::int64_t kWindowScoreBudgetBytes = std::int64_t(256) << 20;

std::string withDot(const std::string& prefix) {
    return prefix.empty() || prefix.back() == '.' ? prefix : prefix + ".";
}

// Window side in merge units (HF: window_size // spatial_merge_size // patch_size).
std::int64_t windowUnits(const io::QwenVisionConfig& cfg) {
    return cfg.spatialMergeSize > 0 && cfg.patchSize > 0
               ? std::int64_t(cfg.windowSize) / cfg.spatialMergeSize / cfg.patchSize
               : 0;
}

// rotate_half RoPE in fp32 (HF apply_rotary_pos_emb_vision upcasts q and k), cast back.
torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
    auto x32 = x.to(torch::kFloat);
    const std::int64_t half = x.size(-1) / 2;
    auto rotated = torch::cat({x32.narrow(-1, half, half).neg(), x32.narrow(-1, 0, half)}, -1);
    return (x32 * cos + rotated * sin).to(x.scalar_type());
}

// q, k, v [N, heads, d] -> [N, heads * d], non-causal attention within each segment.
torch::Tensor segmentAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const QwenAttentionSegments& seg, double scale) {
    const std::int64_t n = q.size(0), heads = q.size(1), d = q.size(2);
    TORCH_CHECK(n == seg.rows, "Qwen vision: attention segments cover ", seg.rows, " rows, got ", n);
    const std::int64_t len = seg.maxLength;
    if (!seg.gather.defined()) {
        // Equal segments: one batched attention, [segments, heads, len, d].
        auto batched = [&](const torch::Tensor& t) {
            return t.reshape({seg.count, len, heads, d}).transpose(1, 2);
        };
        auto out = scaledDotProductAttention(batched(q), batched(k), batched(v), /*causal=*/false, 0, scale);
        return out.transpose(1, 2).reshape({n, heads * d});
    }
    // Windows cut by the border: pad to the longest, mask the padding keys (every window has a real key).
    const std::int64_t perWindow = std::max<std::int64_t>(1, heads * len * len * 4);
    const std::int64_t chunk = std::clamp<std::int64_t>(kWindowScoreBudgetBytes / perWindow, 1, seg.count);
    std::vector<torch::Tensor> outs;
    for (std::int64_t s0 = 0; s0 < seg.count; s0 += chunk) {
        const std::int64_t c = std::min(chunk, seg.count - s0);
        auto rows = seg.gather.narrow(0, s0 * len, c * len);
        auto padded = [&](const torch::Tensor& t) {
            return t.index_select(0, rows).view({c, len, heads, d}).transpose(1, 2);
        };
        auto scores = torch::matmul(padded(q), padded(k).transpose(2, 3)).mul_(scale);
        auto probs =
            torch::softmax(scores.to(torch::kFloat) + seg.keyBias.narrow(0, s0, c), -1).to(q.scalar_type());
        outs.push_back(torch::matmul(probs, padded(v)).transpose(1, 2).reshape({c * len, heads * d}));
    }
    auto all = outs.size() == 1 ? outs.front() : torch::cat(outs, 0);
    return all.index_select(0, seg.scatter);
}

}  // namespace

void checkQwenVisionConfig(const io::QwenVisionConfig& cfg) {
    auto fail = [](const std::string& message) { throw Error("Qwen vision config: " + message); };
    if (cfg.depth <= 0) fail("depth " + std::to_string(cfg.depth) + " must be positive");
    if (cfg.numHeads <= 0 || cfg.hiddenSize <= 0 || cfg.hiddenSize % cfg.numHeads != 0)
        fail("hidden_size " + std::to_string(cfg.hiddenSize) + " is not divisible by num_heads " +
             std::to_string(cfg.numHeads));
    if (cfg.headDim() % 4 != 0)
        fail("head dim " + std::to_string(cfg.headDim()) +
             " must be a multiple of 4 (2-D RoPE splits it into row and column halves)");
    if (cfg.patchSize <= 0 || cfg.temporalPatchSize <= 0 || cfg.inChannels <= 0 || cfg.spatialMergeSize <= 0)
        fail("patch_size " + std::to_string(cfg.patchSize) + ", temporal_patch_size " +
             std::to_string(cfg.temporalPatchSize) + ", in_channels " + std::to_string(cfg.inChannels) +
             " and spatial_merge_size " + std::to_string(cfg.spatialMergeSize) + " must be positive");
    if (windowUnits(cfg) <= 0)
        fail("window_size " + std::to_string(cfg.windowSize) + " is smaller than one merge unit (" +
             std::to_string(cfg.spatialMergeSize * cfg.patchSize) + " px)");
    for (int index : cfg.fullattBlockIndexes)
        if (index < 0 || index >= cfg.depth)
            fail("fullatt_block_indexes entry " + std::to_string(index) + " is outside the " +
                 std::to_string(cfg.depth) + " blocks");
    if (cfg.intermediateSize <= 0 || cfg.outHiddenSize <= 0)
        fail("intermediate_size " + std::to_string(cfg.intermediateSize) + " and out_hidden_size " +
             std::to_string(cfg.outHiddenSize) + " must be positive");
    checkActivation(cfg.hiddenAct, "Qwen vision config hidden_act");
}

std::vector<WeightSpec> qwenVisionWeightSpecs(const io::QwenVisionConfig& cfg, const std::string& prefixIn) {
    checkQwenVisionConfig(cfg);
    const std::string prefix = withDot(prefixIn);
    const std::int64_t h = cfg.hiddenSize, inter = cfg.intermediateSize, out = cfg.outHiddenSize;
    const std::int64_t merged = h * cfg.spatialMergeSize * cfg.spatialMergeSize;
    std::vector<WeightSpec> specs;
    specs.push_back({prefix + "patch_embed.proj.weight",
                     {h, cfg.inChannels, cfg.temporalPatchSize, cfg.patchSize, cfg.patchSize}});
    for (int i = 0; i < cfg.depth; ++i) {
        const std::string b = prefix + "blocks." + std::to_string(i) + ".";
        specs.push_back({b + "norm1.weight", {h}});
        specs.push_back({b + "norm2.weight", {h}});
        specs.push_back({b + "attn.qkv.weight", {3 * h, h}});
        specs.push_back({b + "attn.qkv.bias", {3 * h}});
        specs.push_back({b + "attn.proj.weight", {h, h}});
        specs.push_back({b + "attn.proj.bias", {h}});
        for (const char* proj : {"mlp.gate_proj", "mlp.up_proj"}) {
            specs.push_back({b + proj + ".weight", {inter, h}});
            specs.push_back({b + proj + ".bias", {inter}});
        }
        specs.push_back({b + "mlp.down_proj.weight", {h, inter}});
        specs.push_back({b + "mlp.down_proj.bias", {h}});
    }
    specs.push_back({prefix + "merger.ln_q.weight", {h}});
    specs.push_back({prefix + "merger.mlp.0.weight", {merged, merged}});
    specs.push_back({prefix + "merger.mlp.0.bias", {merged}});
    specs.push_back({prefix + "merger.mlp.2.weight", {out, merged}});
    specs.push_back({prefix + "merger.mlp.2.bias", {out}});
    return specs;
}

QwenWindows qwenWindowIndex(std::int64_t gridH, std::int64_t gridW, const io::QwenVisionConfig& cfg) {
    const std::int64_t merge = cfg.spatialMergeSize, side = windowUnits(cfg);
    if (merge <= 0 || side <= 0)
        throw Error("Qwen vision: window_size " + std::to_string(cfg.windowSize) +
                    " with spatial_merge_size " + std::to_string(merge) + " and patch_size " +
                    std::to_string(cfg.patchSize) + " gives no window");
    if (gridH <= 0 || gridW <= 0 || gridH % merge != 0 || gridW % merge != 0)
        throw Error("Qwen vision: patch grid " + std::to_string(gridH) + "x" + std::to_string(gridW) +
                    " is not a positive multiple of spatial_merge_size " + std::to_string(merge));
    const std::int64_t unitsH = gridH / merge, unitsW = gridW / merge;
    // mllm_reference.md §9 step 3: HF pads by a full window when the side is already a multiple; the
    // windows that adds are empty and dropped below.
    const std::int64_t windowsH = (unitsH + side - unitsH % side) / side;
    const std::int64_t windowsW = (unitsW + side - unitsW % side) / side;
    const std::int64_t unitPatches = merge * merge;
    QwenWindows out;
    out.unitOrder.reserve(std::size_t(unitsH * unitsW));
    out.cuSeqlens.push_back(0);
    for (std::int64_t wh = 0; wh < windowsH; ++wh) {
        for (std::int64_t ww = 0; ww < windowsW; ++ww) {
            for (std::int64_t r = wh * side; r < std::min((wh + 1) * side, unitsH); ++r)
                for (std::int64_t c = ww * side; c < std::min((ww + 1) * side, unitsW); ++c)
                    out.unitOrder.push_back(r * unitsW + c);
            const std::int64_t end = std::int64_t(out.unitOrder.size()) * unitPatches;
            if (end != out.cuSeqlens.back()) out.cuSeqlens.push_back(end);  // unique_consecutive
        }
    }
    return out;
}

QwenAttentionSegments QwenAttentionSegments::fromCuSeqlens(const std::vector<std::int64_t>& cuSeqlens,
                                                           torch::Device device) {
    TORCH_CHECK(cuSeqlens.size() >= 2 && cuSeqlens.front() == 0,
                "Qwen vision: cu_seqlens must start at 0 and hold at least one segment, got ",
                cuSeqlens.size(), " entries");
    QwenAttentionSegments seg;
    seg.count = std::int64_t(cuSeqlens.size()) - 1;
    seg.rows = cuSeqlens.back();
    bool equal = true;
    for (std::int64_t s = 0; s < seg.count; ++s) {
        const std::int64_t len = cuSeqlens[s + 1] - cuSeqlens[s];
        TORCH_CHECK(len > 0, "Qwen vision: cu_seqlens must increase, segment ", s, " has length ", len);
        if (s > 0 && len != seg.maxLength) equal = false;
        seg.maxLength = std::max(seg.maxLength, len);
    }
    if (equal) return seg;
    const std::int64_t len = seg.maxLength;
    std::vector<std::int64_t> gather(std::size_t(seg.count * len)), scatter(std::size_t(seg.rows));
    auto bias = torch::zeros({seg.count, 1, 1, len}, torch::kFloat);
    auto biasView = bias.accessor<float, 4>();
    for (std::int64_t s = 0; s < seg.count; ++s) {
        const std::int64_t start = cuSeqlens[s], n = cuSeqlens[s + 1] - start;
        for (std::int64_t j = 0; j < len; ++j) {
            // Padding slots repeat the segment's last row (a real row, so no NaNs); their keys are masked.
            gather[std::size_t(s * len + j)] = start + std::min(j, n - 1);
            if (j >= n)
                biasView[s][0][0][j] = -std::numeric_limits<float>::infinity();
            else
                scatter[std::size_t(start + j)] = s * len + j;
        }
    }
    seg.gather = indexTensor(gather, device);
    seg.scatter = indexTensor(scatter, device);
    seg.keyBias = bias.to(device);
    return seg;
}

QwenVisionBlockImpl::QwenVisionBlockImpl(const WeightMap& w, const std::string& prefixIn,
                                         const io::QwenVisionConfig& cfg)
    : m_heads(cfg.numHeads), m_headDim(cfg.headDim()), m_act(cfg.hiddenAct) {
    checkQwenVisionConfig(cfg);
    const std::string prefix = withDot(prefixIn);
    m_scale = 1.0 / std::sqrt(double(m_headDim));
    m_norm1 = register_module("norm1", RmsNorm(w, prefix + "norm1", cfg.rmsNormEps));
    m_norm2 = register_module("norm2", RmsNorm(w, prefix + "norm2", cfg.rmsNormEps));
    m_qkv = register_module("qkv", Dense(w, prefix + "attn.qkv", true));
    m_proj = register_module("proj", Dense(w, prefix + "attn.proj", true));
    m_gate = register_module("gate_proj", Dense(w, prefix + "mlp.gate_proj", true));
    m_up = register_module("up_proj", Dense(w, prefix + "mlp.up_proj", true));
    m_down = register_module("down_proj", Dense(w, prefix + "mlp.down_proj", true));
    TORCH_CHECK(m_qkv->outFeatures() == 3 * m_heads * m_headDim, "Qwen vision: ", prefix, "attn.qkv has ",
                m_qkv->outFeatures(), " outputs, expected ", 3 * m_heads * m_headDim);
}

torch::Tensor QwenVisionBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                           const torch::Tensor& sin,
                                           const QwenAttentionSegments& segments) const {
    const std::int64_t n = x.size(0);
    auto qkv = m_qkv->forward(m_norm1->forward(x)).view({n, 3, m_heads, m_headDim});
    auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);  // [N, 1, headDim], broadcast over heads
    auto q = rotate(qkv.select(1, 0), c, s);
    auto k = rotate(qkv.select(1, 1), c, s);
    auto h = x + m_proj->forward(segmentAttention(q, k, qkv.select(1, 2), segments, m_scale));
    auto y = m_norm2->forward(h);
    return h + m_down->forward(activation(m_act, m_gate->forward(y)) * m_up->forward(y));
}

QwenVisionTowerImpl::QwenVisionTowerImpl(const WeightMap& w, const std::string& prefixIn,
                                         const io::QwenVisionConfig& cfg)
    : m_cfg(cfg) {
    checkQwenVisionConfig(cfg);
    const std::string prefix = withDot(prefixIn);
    const std::string patchName = prefix + "patch_embed.proj.weight";
    const auto& patch = weight(w, patchName);
    const std::vector<std::int64_t> patchShape{cfg.hiddenSize, cfg.inChannels, cfg.temporalPatchSize,
                                               cfg.patchSize, cfg.patchSize};
    TORCH_CHECK(patch.sizes() == torch::IntArrayRef(patchShape), "Qwen vision: ", patchName, " is ",
                patch.sizes(), ", expected ", torch::IntArrayRef(patchShape));
    // mllm_reference.md §9 step 1: Conv3d with kernel = stride over one patch row is a matmul with the
    // kernel flattened in (C, T, p, p) order, the processor's column order.
    m_patchWeight =
        register_parameter("patch_embed", patch.reshape({cfg.hiddenSize, cfg.patchValues()}), false);
    // HF VisionRotaryEmbedding(head_dim / 2): inv_freq = 1 / theta^(arange(0, dim, 2) / dim), in fp32.
    const std::int64_t ropeDim = cfg.headDim() / 2;
    auto exponents = torch::arange(0, ropeDim, 2, torch::kFloat) / double(ropeDim);
    m_invFreq = register_buffer("inv_freq",
                                torch::pow(cfg.ropeTheta, exponents).reciprocal().to(m_patchWeight.device()));
    m_fullAttention.assign(std::size_t(cfg.depth), false);
    for (int index : cfg.fullattBlockIndexes) m_fullAttention[std::size_t(index)] = true;
    for (int i = 0; i < cfg.depth; ++i)
        m_blocks.push_back(register_module("block" + std::to_string(i),
                                           QwenVisionBlock(w, prefix + "blocks." + std::to_string(i), cfg)));
    m_mergerNorm = register_module("merger_ln_q", RmsNorm(w, prefix + "merger.ln_q", cfg.rmsNormEps));
    m_mergerFc1 = register_module("merger_mlp0", Dense(w, prefix + "merger.mlp.0", true));
    m_mergerFc2 = register_module("merger_mlp2", Dense(w, prefix + "merger.mlp.2", true));
}

torch::Tensor QwenVisionTowerImpl::forward(const torch::Tensor& patches,
                                           const std::array<std::int64_t, 3>& gridThw) const {
    const std::int64_t t = gridThw[0], gh = gridThw[1], gw = gridThw[2];
    const std::int64_t merge = m_cfg.spatialMergeSize, unitPatches = merge * merge;
    const std::int64_t hidden = m_cfg.hiddenSize, headDim = m_cfg.headDim();
    TORCH_CHECK(t > 0 && gh > 0 && gw > 0 && gh % merge == 0 && gw % merge == 0, "Qwen vision: grid_thw (", t,
                ", ", gh, ", ", gw, ") must be positive with gh and gw multiples of spatial_merge_size ",
                merge);
    TORCH_CHECK(patches.dim() == 2 && patches.size(1) == m_cfg.patchValues(),
                "Qwen vision: patches must be [N, ", m_cfg.patchValues(), "] (C*T*p*p), got ",
                patches.sizes());
    const std::int64_t framePatches = gh * gw, n = t * framePatches;
    TORCH_CHECK(patches.size(0) == n, "Qwen vision: ", patches.size(0), " patch rows for grid_thw (", t, ", ",
                gh, ", ", gw, "), expected ", n);

    // Window order over every frame (HF offsets each frame's window_index by the units before it); the
    // full-attention blocks attend within each frame (cu_seqlens = gh*gw per frame).
    const QwenWindows frame = qwenWindowIndex(gh, gw, m_cfg);
    const std::int64_t frameUnits = framePatches / unitPatches, unitsW = gw / merge;
    std::vector<std::int64_t> unitOrder, windowCu{0}, frameCu{0};
    std::vector<std::int64_t> rows, cols;
    unitOrder.reserve(std::size_t(t * frameUnits));
    rows.reserve(std::size_t(n));
    cols.reserve(std::size_t(n));
    for (std::int64_t f = 0; f < t; ++f) {
        for (std::int64_t u : frame.unitOrder) {
            unitOrder.push_back(f * frameUnits + u);
            // RoPE positions in the same block-major order as the rows: unit (r, c), then (sr, sc) inside.
            const std::int64_t r = u / unitsW, c = u % unitsW;
            for (std::int64_t sr = 0; sr < merge; ++sr)
                for (std::int64_t sc = 0; sc < merge; ++sc) {
                    rows.push_back(r * merge + sr);
                    cols.push_back(c * merge + sc);
                }
        }
        for (std::size_t i = 1; i < frame.cuSeqlens.size(); ++i)
            windowCu.push_back(f * framePatches + frame.cuSeqlens[i]);
        frameCu.push_back((f + 1) * framePatches);
    }
    std::vector<std::int64_t> inverse(unitOrder.size());
    for (std::size_t i = 0; i < unitOrder.size(); ++i) inverse[std::size_t(unitOrder[i])] = std::int64_t(i);

    const auto device = m_patchWeight.device();
    const auto windows = QwenAttentionSegments::fromCuSeqlens(windowCu, device);
    const auto frames = QwenAttentionSegments::fromCuSeqlens(frameCu, device);

    // [N, hidden], reordered by merge unit into window order.
    auto x = torch::linear(patches.to(device, m_patchWeight.scalar_type()), m_patchWeight);
    x = x.view({n / unitPatches, unitPatches, hidden})
            .index_select(0, indexTensor(unitOrder, device))
            .view({n, hidden});

    // mllm_reference.md §9 step 2: rpe = [row * inv_freq, col * inv_freq], emb = cat(rpe, rpe), in fp32.
    auto rowFreqs = indexTensor(rows, device).to(torch::kFloat).unsqueeze(1) * m_invFreq.unsqueeze(0);
    auto colFreqs = indexTensor(cols, device).to(torch::kFloat).unsqueeze(1) * m_invFreq.unsqueeze(0);
    auto rpe = torch::cat({rowFreqs, colFreqs}, 1);
    auto emb = torch::cat({rpe, rpe}, 1);
    TORCH_CHECK(emb.size(1) == headDim, "Qwen vision: RoPE width ", emb.size(1), " != head dim ", headDim);
    const auto cos = emb.cos(), sin = emb.sin();

    for (std::size_t i = 0; i < m_blocks.size(); ++i)
        x = m_blocks[i]->forward(x, cos, sin, m_fullAttention[i] ? frames : windows);

    // Merger: 4 consecutive rows are one 2x2 unit; then undo the window permutation (argsort).
    x = m_mergerNorm->forward(x).view({n / unitPatches, hidden * unitPatches});
    x = m_mergerFc2->forward(activation("gelu", m_mergerFc1->forward(x)));
    return x.index_select(0, indexTensor(inverse, device));
}

}  // namespace sdrpn::models
