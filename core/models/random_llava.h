// LLaVA-1.5 models with random weights of a named shape, built straight on the device in the compute dtype:
// what sdrpn-bench times and the GPU checks compare, with nothing to download.
//
//   io::LlavaConfig cfg = randomLlavaConfig("llava-1.5-7b");
//   auto model = makeRandomLlava(cfg, torch::Device("cuda"), torch::kBFloat16, /*seed=*/0);
//
// Presets: "llava-1.5-7b" (CLIP ViT-L/14-336 + Vicuna-7B: hidden 4096, 32 layers), "llava-1.5-13b"
// (hidden 5120, 40 layers), "demo" (the bundled demo model's shapes: 576 image tokens, 8 layers of 256).
// Weights: N(0, 0.02) for matrices and embeddings (the demo: q/k projections N(0, 0.12), as the demo model),
// 1 for norm weights, 0 for biases. Same seed, same weights on every device.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/io/config.h"
#include "core/models/llava.h"

namespace sdrpn::models {

// The preset names randomLlavaConfig accepts.
std::vector<std::string> randomLlavaPresets();

// Throws sdrpn::Error naming the preset and the known ones.
io::LlavaConfig randomLlavaConfig(const std::string& preset);

// Random weights for `specs`: N(0, std) for matrices and embeddings (`qkStd` for the language model's q/k
// projections when > 0), 1 for norm weights, 0 for biases; drawn on the CPU in fp32 from `seed` when
// `deterministic`, else on `device` in `dtype`.
WeightMap randomWeightsFor(const std::vector<WeightSpec>& specs, torch::Device device,
                           torch::ScalarType dtype, std::uint64_t seed, bool deterministic,
                           double qkStd = 0.0);

// Random weights for every tensor of llavaWeightSpecs(cfg), drawn on the CPU in fp32 from `seed` when
// `deterministic` (small models, checks across devices), else drawn on `device` directly in `dtype`.
WeightMap randomLlavaWeights(const io::LlavaConfig& cfg, torch::Device device, torch::ScalarType dtype,
                             std::uint64_t seed, bool deterministic = false);

std::shared_ptr<const LlavaModel> makeRandomLlava(const io::LlavaConfig& cfg, torch::Device device,
                                                  torch::ScalarType dtype, std::uint64_t seed,
                                                  bool deterministic = false);

}  // namespace sdrpn::models
