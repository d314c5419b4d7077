#include "core/models/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <torch/version.h>

namespace sdrpn::models {

namespace {

// Upper bound on one block of fp32 scores in the matmul path (bytes).
constexpr std::int64_t kScoreBudgetBytes = std::int64_t(64) << 20;

void checkShapes(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
    TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
                "attention: q, k, v must be [B, heads, L, d], got ", q.sizes(), ", ", k.sizes(), ", ",
                v.sizes());
    TORCH_CHECK(k.sizes() == v.sizes(), "attention: k ", k.sizes(), " and v ", v.sizes(), " differ");
    TORCH_CHECK(q.size(0) == k.size(0) && q.size(3) == k.size(3), "attention: q ", q.sizes(),
                " does not match k ", k.sizes());
    TORCH_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0, "attention: ", q.size(1),
                " query heads are not a multiple of ", k.size(1), " kv heads");
}

// Matmul + fp32 softmax + matmul, query blocks bounded by kScoreBudgetBytes. GQA without copying K/V:
// the query heads of one kv group are stacked along the row axis.
[[maybe_unused]] torch::Tensor blockedAttention(const torch::Tensor& q, const torch::Tensor& k,
                                                const torch::Tensor& v, bool causal, std::int64_t queryStart,
                                                double scale) {
    const std::int64_t batch = q.size(0), heads = q.size(1), lq = q.size(2), d = q.size(3);
    const std::int64_t kvHeads = k.size(1), lk = k.size(2), rep = heads / kvHeads;
    TORCH_CHECK(!causal || queryStart + lq <= lk, "attention: query rows end at ", queryStart + lq,
                " but only ", lk, " keys");
    // Causal blocks only compute keys up to their last row (about half the work of the full square) and
    // mask only their trailing n x n window.
    const std::int64_t perRow = std::max<std::int64_t>(1, batch * heads * lk * 4);
    const std::int64_t maxBlock = causal ? (q.is_cuda() ? 512 : 128) : lq;
    const std::int64_t block = std::clamp<std::int64_t>(kScoreBudgetBytes / perRow, 1,
                                                        std::max<std::int64_t>(1, std::min(lq, maxBlock)));
    std::vector<torch::Tensor> outs;
    for (std::int64_t r0 = 0; r0 < lq; r0 += block) {
        const std::int64_t n = std::min(block, lq - r0);
        const std::int64_t keys = causal ? queryStart + r0 + n : lk;
        auto kb = k.narrow(2, 0, keys);
        auto vb = v.narrow(2, 0, keys);
        auto qb = q.narrow(2, r0, n).reshape({batch, kvHeads, rep * n, d});
        auto scores = torch::matmul(qb, kb.transpose(2, 3)).mul_(scale);  // [B, kvHeads, rep*n, keys]
        if (causal && n > 1) {
            // Row i (position queryStart + r0 + i) sees keys up to its own position: in the trailing window
            // [keys - n, keys) that is the upper triangle above the diagonal masked.
            auto upper =
                torch::ones({n, n}, torch::TensorOptions().dtype(torch::kBool).device(q.device())).triu_(1);
            scores.view({batch, kvHeads, rep, n, keys})
                .narrow(4, keys - n, n)
                .masked_fill_(upper, -std::numeric_limits<double>::infinity());
        }
        auto probs = torch::softmax(scores, -1, torch::kFloat).to(q.scalar_type());
        outs.push_back(torch::matmul(probs, vb).view({batch, heads, n, d}));
    }
    return outs.size() == 1 ? outs.front() : torch::cat(outs, 2);
}

#if TORCH_VERSION_MAJOR >= 2
torch::Tensor fusedAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             bool causal, std::int64_t queryStart, double scale) {
    const std::int64_t heads = q.size(1), lq = q.size(2), d = q.size(3);
    const std::int64_t kvHeads = k.size(1), lk = k.size(2), rep = heads / kvHeads;
    auto kk = k, vv = v;
    if (rep > 1) {
        kk = k.unsqueeze(2).expand({k.size(0), kvHeads, rep, lk, d}).reshape({k.size(0), heads, lk, d});
        vv = v.unsqueeze(2).expand({v.size(0), kvHeads, rep, lk, d}).reshape({v.size(0), heads, lk, d});
    }
    // SDPA's is_causal aligns the mask top-left, which is right only when queries and keys start together.
    bool isCausal = false;
    torch::Tensor mask;
    if (causal) {
        TORCH_CHECK(queryStart + lq <= lk, "attention: query rows end at ", queryStart + lq, " but only ", lk,
                    " keys");
        kk = kk.narrow(2, 0, queryStart + lq);
        vv = vv.narrow(2, 0, queryStart + lq);
        if (queryStart == 0) {
            isCausal = lq > 1;
        } else if (lq > 1 && q.is_cuda()) {
            // Rows at the end of the keys (bottom-right causal): SDPA's is_causal aligns top-left, and an
            // explicit mask leaves the flash kernels. Zero query rows in front make the two alignments the
            // same at the cost of attention over queryStart extra rows (a few percent of a layer), then drop
            // them.
            auto padded = torch::cat({torch::zeros({q.size(0), heads, queryStart, d}, q.options()), q}, 2);
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 1
            auto out = at::scaled_dot_product_attention(padded, kk, vv, {}, 0.0, true, scale);
#else
            auto out = at::scaled_dot_product_attention(padded, kk, vv, {}, 0.0, true);
#endif
            return out.narrow(2, queryStart, lq);
        } else if (lq > 1) {
            auto rowPos = torch::arange(queryStart, queryStart + lq,
                                        torch::TensorOptions().dtype(torch::kLong).device(q.device()));
            auto keyPos =
                torch::arange(queryStart + lq, torch::TensorOptions().dtype(torch::kLong).device(q.device()));
            mask = keyPos.unsqueeze(0) <= rowPos.unsqueeze(1);  // true = attend
        }
    }
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 1
    (void)d;
    if (mask.defined()) return at::scaled_dot_product_attention(q, kk, vv, mask, 0.0, false, scale);
    return at::scaled_dot_product_attention(q, kk, vv, {}, 0.0, isCausal, scale);
#else
    if (std::abs(scale * std::sqrt(double(d)) - 1.0) > 1e-12)
        return blockedAttention(q, k, v, causal, queryStart, scale);
    if (mask.defined()) return at::scaled_dot_product_attention(q, kk, vv, mask, 0.0, false);
    return at::scaled_dot_product_attention(q, kk, vv, {}, 0.0, isCausal);
#endif
}
#endif

}  // namespace

bool usesFusedAttention() {
#if TORCH_VERSION_MAJOR >= 2
    return true;
#else
    return false;
#endif
}

torch::Tensor scaledDotProductAttention(const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& v, bool causal, std::int64_t queryStart,
                                        double scale) {
    checkShapes(q, k, v);
#if TORCH_VERSION_MAJOR >= 2
    return fusedAttention(q, k, v, causal, queryStart, scale);
#else
    return blockedAttention(q, k, v, causal, queryStart, scale);
#endif
}

torch::Tensor maskedAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& visible, double scale) {
    checkShapes(q, k, v);
    const std::int64_t batch = q.size(0), heads = q.size(1), lq = q.size(2), d = q.size(3);
    const std::int64_t kvHeads = k.size(1), lk = k.size(2), rep = heads / kvHeads;
    TORCH_CHECK(visible.scalar_type() == torch::kBool && visible.size(-1) == lk &&
                    (visible.dim() == 1 || (visible.dim() == 2 && visible.size(0) == lq)),
                "maskedAttention: mask ", visible.sizes(), " for ", lq, " rows and ", lk, " keys");
    const auto mask = visible.dim() == 1 ? visible.view({1, 1, 1, lk}) : visible.view({1, 1, lq, lk});
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
    auto kk = k, vv = v;
    if (rep > 1) {
        kk = k.unsqueeze(2).expand({batch, kvHeads, rep, lk, d}).reshape({batch, heads, lk, d});
        vv = v.unsqueeze(2).expand({batch, kvHeads, rep, lk, d}).reshape({batch, heads, lk, d});
    }
    return at::scaled_dot_product_attention(q, kk, vv, mask, 0.0, false, scale);
#else
    // Query heads of one kv group stacked along the rows (GQA without copying K/V).
    auto qg = q.reshape({batch, kvHeads, rep * lq, d});
    auto scores = torch::matmul(qg, k.transpose(2, 3)).mul_(scale).view({batch, kvHeads, rep, lq, lk});
    scores.masked_fill_(mask.logical_not().view({1, 1, 1, mask.size(2), lk}),
                        -std::numeric_limits<double>::infinity());
    auto probs =
        torch::softmax(scores, -1, torch::kFloat).to(q.scalar_type()).view({batch, kvHeads, rep * lq, lk});
    return torch::matmul(probs, v).view({batch, heads, lq, d});
#endif
}

torch::Tensor indexTensor(const std::vector<std::int64_t>& values, torch::Device device) {
    auto host = torch::tensor(values, torch::kLong);
    if (!device.is_cuda()) return host.to(device);
    return host.pin_memory().to(device, /*non_blocking=*/true);
}

torch::Tensor attentionRows(const torch::Tensor& qRows, const torch::Tensor& keys,
                            const std::vector<std::int64_t>& rowPositions, const torch::Tensor& columns,
                            double scale) {
    TORCH_CHECK(std::int64_t(rowPositions.size()) == qRows.size(1), "attentionRows: ", rowPositions.size(),
                " positions for ", qRows.size(1), " rows");
    return attentionRows(qRows, keys, indexTensor(rowPositions, keys.device()), columns, scale);
}

torch::Tensor attentionRows(const torch::Tensor& qRows, const torch::Tensor& keys,
                            const torch::Tensor& rowPositions, const torch::Tensor& columns, double scale) {
    TORCH_CHECK(qRows.dim() == 3 && keys.dim() == 3 && keys.size(0) > 0 && qRows.size(0) % keys.size(0) == 0,
                "attentionRows: q rows [heads, S, d] and keys [kvHeads, L, d] expected, got ", qRows.sizes(),
                " and ", keys.sizes());
    TORCH_CHECK(rowPositions.dim() == 1 && rowPositions.size(0) == qRows.size(1),
                "attentionRows: ", rowPositions.sizes(), " positions for ", qRows.size(1), " rows");
    return attentionRowsBiased(
        qRows, keys,
        captureRowsBias(rowPositions.to(keys.device()), keys.size(1), qRows.size(0) / keys.size(0)), columns,
        scale);
}

torch::Tensor captureRowsBias(const torch::Tensor& rowPositions, std::int64_t keys, std::int64_t rep) {
    TORCH_CHECK(rowPositions.dim() == 1 && keys >= 0 && rep > 0, "captureRowsBias: positions ",
                rowPositions.sizes(), ", ", keys, " keys, rep ", rep);
    const auto device = rowPositions.device();
    auto keyPos = torch::arange(keys, torch::TensorOptions().dtype(torch::kLong).device(device));
    auto hidden = keyPos.unsqueeze(0) > rowPositions.to(torch::kLong).unsqueeze(1);  // [S, Lk]
    auto bias =
        torch::zeros({rowPositions.size(0), keys}, torch::TensorOptions().dtype(torch::kFloat).device(device))
            .masked_fill_(hidden, -std::numeric_limits<double>::infinity());
    return rep == 1 ? bias : bias.repeat({rep, 1});
}

torch::Tensor attentionRowsBiased(const torch::Tensor& qRows, const torch::Tensor& keys,
                                  const torch::Tensor& bias, const torch::Tensor& columns, double scale) {
    TORCH_CHECK(qRows.dim() == 3 && keys.dim() == 3 && qRows.size(2) == keys.size(2),
                "attentionRows: q rows [heads, S, d] and keys [kvHeads, L, d] expected, got ", qRows.sizes(),
                " and ", keys.sizes());
    const std::int64_t heads = qRows.size(0), rows = qRows.size(1), d = qRows.size(2);
    const std::int64_t kvHeads = keys.size(0), lk = keys.size(1);
    TORCH_CHECK(kvHeads > 0 && heads % kvHeads == 0, "attentionRows: ", heads, " heads vs ", kvHeads,
                " kv heads");
    const std::int64_t rep = heads / kvHeads;
    TORCH_CHECK(bias.dim() == 2 && bias.size(0) == rep * rows && bias.size(1) == lk, "attentionRows: mask ",
                bias.sizes(), " for ", rep * rows, " stacked rows and ", lk, " keys");
    auto q32 = qRows.to(torch::kFloat).reshape({kvHeads, rep * rows, d});
    auto k32 = keys.to(torch::kFloat);
    // scale · q·Kᵀ + mask in one call; the query heads of a kv group are stacked along the rows.
    auto logits = torch::baddbmm(bias.unsqueeze(0), q32, k32.transpose(1, 2), /*beta=*/1.0, /*alpha=*/scale);
    auto probs = torch::softmax(logits.view({kvHeads, rep, rows, lk}), -1);
    return probs.index_select(-1, columns).reshape({heads, rows, columns.size(0)});
}

}  // namespace sdrpn::models
