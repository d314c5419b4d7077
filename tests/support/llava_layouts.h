// Model folders built from the tiny llava-hf fixture for tests of loading and of the studio: the original
// LLaVA layout with its CLIP folder beside it, an SD-RPN "filled" checkpoint (model and twig together) and
// an "unfilled" one (the twig and only the layers it needs, as the trained checkpoints are released).
#pragma once

#include <string>

#include "core/models/llava.h"

namespace sdrpn::test {

// An original-layout folder `root`/llava-v1.5-tiny (flat config.json whose mm_vision_tower is
// `towerSetting`, model.* keys, no vision weights, the fixture's tokenizer.model) beside a CLIP folder
// `root`/`clipName` (config.json and the fixture's vision tower under vision_model.*). Returns the model
// folder.
std::string writeOriginalLlava(const std::string& root, const std::string& clipName,
                               const std::string& towerSetting);

// A copy of the fixture in `dir` (created) with a twiginit twig (K=3, T=2, multi-head) inside, as the
// released "-filled" checkpoints: the backbone and twig tensors as two shards behind an index, config.json
// with twig_K / twig_T / roi_multi_head. Returns `dir`.
std::string writeFilledCheckpoint(const std::string& dir);

// An unfilled SD-RPN checkpoint in `dir` (created): the fixture's weights without backbone layers ≥ K+T, the
// final norm and lm_head, plus a twiginit twig (K, T, multi-head) under model.twig_layers.* /
// model.twig_norm, in one model.safetensors. `layout` Hub: the fixture's config.json (plus twig_K / twig_T /
// roi_multi_head), llava-hf keys, the vision tower inside, tokenizer and preprocessor config. `layout`
// Original: a flat original-LLaVA config.json whose mm_vision_tower is `towerSetting`, model.* keys, no
// vision weights, the tokenizer only. The fixture folder is its base model. Returns `dir`.
std::string writeUnfilledCheckpoint(const std::string& dir, int K, int T,
                                    models::LlavaKeyLayout layout = models::LlavaKeyLayout::Hub,
                                    const std::string& towerSetting = "clip-tiny");

}  // namespace sdrpn::test
