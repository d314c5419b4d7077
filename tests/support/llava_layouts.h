// Model folders built from the tiny llava-hf fixture for tests of loading and of the studio: the original
// LLaVA layout with its CLIP folder beside it, and an SD-RPN "filled" checkpoint (model and twig together).
#pragma once

#include <string>

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

}  // namespace sdrpn::test
