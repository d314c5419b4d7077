// Unfilled SD-RPN checkpoints (sdrpn.md §0 `filled`, §3.4): the released trained checkpoints store only
// backbone layers [0, K+T), the twig and the vision / projector weights; the final norm, lm_head and
// layers K+T .. N-1 come from the base model they were trained from (config.json still describes the whole
// model). The loaders take that base model through LoadOptions::base; without it they refuse such a folder
// with unfilledCheckpointMessage() instead of a list of missing tensors. Plain data, no LibTorch.
//
//   if (models::isUnfilledSdrpnCheckpoint(dir) && options.base.empty())
//       throw Error(models::unfilledCheckpointMessage(dir));
//   models::checkBaseConfig(cfg.text, baseCfg.text, dir, options.base);   // then
//   WeightSource::addMissingFrom
//
// Thread safety: the functions keep no state.
#pragma once

#include <string>

#include "core/io/config.h"

namespace sdrpn::models {

// True when `folder`/config.json names a twig (`twig_K`) and the folder's safetensors weights (any key
// layout) lack the final norm (`model.norm.weight`), lm_head (unless tie_word_embeddings) or the last
// backbone layer (num_hidden_layers − 1). Errors: none; an unreadable config or weights give false.
bool isUnfilledSdrpnCheckpoint(const std::string& folder);

// What a loader says for an unfilled checkpoint given without a base model: that it is one, what it lacks
// and to pass --base DIR (or write a filled copy with `sdrpn merge-checkpoint`).
std::string unfilledCheckpointMessage(const std::string& folder);

// Throws sdrpn::Error when the decoder basics of a checkpoint and its base model differ, naming the config
// key and both values: "base model <base> does not match <checkpoint>: config hidden_size is 64 in the
// checkpoint and 128 in the base". Compares hidden_size, num_hidden_layers, vocab_size,
// intermediate_size, num_attention_heads and num_key_value_heads.
void checkBaseConfig(const io::LlamaConfig& checkpoint, const io::LlamaConfig& base,
                     const std::string& checkpointDir, const std::string& baseDir);

// "base model <base> does not match <checkpoint>": the first words of every mismatch message.
std::string baseMismatchPrefix(const std::string& checkpointDir, const std::string& baseDir);

}  // namespace sdrpn::models
