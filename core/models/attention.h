// Attention kernels shared by every backbone.
//
// scaledDotProductAttention: the fast path. With LibTorch >= 2.0 it calls at::scaled_dot_product_attention
// (flash / memory-efficient kernels on CUDA); with 1.13 it runs matmul + fp32 softmax + matmul in query
// blocks so the score matrix never exceeds a fixed budget. Neither path returns probabilities.
//
// attentionRows: the capture path (mllm_reference.md §10). For a few query rows it recomputes
// softmax(q·Kᵀ·scale + causal mask) in fp32 from post-RoPE Q and K, normalised over ALL keys, and keeps
// only the requested key columns.
//
// Shapes: q [B, heads, Lq, d]; k, v [B, kvHeads, Lk, d]; heads % kvHeads == 0 and query head h reads
// kv head h / (heads / kvHeads) (HF repeat_kv). Query row i sits at absolute position queryStart + i and
// key j at position j; with `causal`, row i sees keys 0 .. queryStart + i.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace sdrpn::models {

torch::Tensor scaledDotProductAttention(const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& v, bool causal, std::int64_t queryStart,
                                        double scale);

// Whether scaledDotProductAttention uses at::scaled_dot_product_attention (LibTorch >= 2.0).
bool usesFusedAttention();

// qRows [heads, S, d]; keys [kvHeads, Lk, d]; rowPositions: absolute position of each row (keys after it
// are masked); columns: int64 indices into the Lk keys (on the keys' device). Returns [heads, S, columns]
// fp32 probabilities.
torch::Tensor attentionRows(const torch::Tensor& qRows, const torch::Tensor& keys,
                            const std::vector<std::int64_t>& rowPositions, const torch::Tensor& columns,
                            double scale);

}  // namespace sdrpn::models
