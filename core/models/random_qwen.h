// Qwen2.5-VL models with random weights of a named shape, built straight on the device in the compute dtype:
// what sdrpn-bench times, with nothing to download (the LLaVA presets are in random_llava.h).
//
//   io::QwenVlConfig cfg = randomQwenVlConfig("qwen2.5-vl-7b");
//   auto model = makeRandomQwenVl(cfg, torch::Device("cuda"), torch::kBFloat16, /*seed=*/0);
//
// Presets: "qwen2.5-vl-7b" (mllm_reference.md §9: ViT of 32 blocks of 1280 with window attention, decoder of
// 28 layers of 3584 with 28 query and 4 key/value heads, vocabulary 152064) and "qwen2.5-vl-demo" (the same
// structure at demo sizes: 2 ViT blocks of 64, 8 decoder layers of 256, vocabulary 1024). Weights as
// randomWeightsFor: N(0, 0.02), norms 1, biases 0; same seed, same weights on every device.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/io/config.h"
#include "core/models/qwen2_5_vl.h"

namespace sdrpn::models {

std::vector<std::string> randomQwenVlPresets();

// Throws sdrpn::Error naming the preset and the known ones.
io::QwenVlConfig randomQwenVlConfig(const std::string& preset);

std::shared_ptr<const Qwen2_5VlModel> makeRandomQwenVl(const io::QwenVlConfig& cfg, torch::Device device,
                                                       torch::ScalarType dtype, std::uint64_t seed,
                                                       bool deterministic = false);

}  // namespace sdrpn::models
