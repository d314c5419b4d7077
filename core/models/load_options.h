// Options every backbone loader accepts. Plain data (no LibTorch), shared by the CLI, the studio and the
// settings JSON.
#pragma once

#include <string>

namespace sdrpn::models {

struct LoadOptions {
    std::string device = "cpu";  // "cpu", "cuda", "cuda:N"
    std::string dtype = "fp32";  // compute dtype: "fp32", "bf16", "fp16"; stored weights are converted
    std::string visionTower;     // original LLaVA: the CLIP folder, overriding config `mm_vision_tower`
    std::string base;  // an unfilled SD-RPN checkpoint: the base model that supplies the tensors it lacks
};

}  // namespace sdrpn::models
