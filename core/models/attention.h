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

// Attention with an explicit mask: q [B, heads, Lq, d]; k, v [B, kvHeads, Lk, d]; visible bool [Lk] (the same
// keys for every row) or [Lq, Lk], true = attend. Shapes do not depend on the mask's contents (static
// decoding over a reserved cache).
torch::Tensor maskedAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& visible, double scale);

// qRows [heads, S, d]; keys [kvHeads, Lk, d]; rowPositions: absolute position of each row (keys after it
// are masked); columns: int64 indices into the Lk keys (on the keys' device). Returns [heads, S, columns]
// fp32 probabilities.
torch::Tensor attentionRows(const torch::Tensor& qRows, const torch::Tensor& keys,
                            const std::vector<std::int64_t>& rowPositions, const torch::Tensor& columns,
                            double scale);
// The same with the row positions as an int64 tensor [S] on the keys' device: no host-to-device copy, so a
// prefill or decode step that captures never waits for the device.
torch::Tensor attentionRows(const torch::Tensor& qRows, const torch::Tensor& keys,
                            const torch::Tensor& rowPositions, const torch::Tensor& columns, double scale);

// The capture path split in two, so that a call capturing every layer builds its mask once: the additive
// mask [rep * S, Lk] fp32 (0 where row i, repeated for the `rep` query heads of a kv group, may see key j;
// -inf after its position), and the rows' probabilities with that mask (one fused q·Kᵀ·scale + mask).
torch::Tensor captureRowsBias(const torch::Tensor& rowPositions, std::int64_t keys, std::int64_t rep);
torch::Tensor attentionRowsBiased(const torch::Tensor& qRows, const torch::Tensor& keys,
                                  const torch::Tensor& bias, const torch::Tensor& columns, double scale);

// An int64 index tensor on `device`. On CUDA the values travel through pinned memory without blocking the
// host (the copy is ordered on the current stream), so building an index never synchronises the device.
torch::Tensor indexTensor(const std::vector<std::int64_t>& values, torch::Device device);

}  // namespace sdrpn::models
