// The bundled demo model: a small LLaVA-1.5 in the llava-hf folder layout with the real geometry
// (336 px, patch 14, 24×24 image tokens), 8 LLM layers and its own sentencepiece tokenizer, made from a
// fixed seed. Its weights are random: it shows the machinery (maps, labels, boxes, jobs), not meaning.
//
//   JobContext ctx;
//   Result<void> r = makeDemoModel("models/demo", DemoModelOptions{}, ctx);
#pragma once

#include <cstdint>
#include <string>

#include "core/jobs.h"
#include "core/result.h"

namespace sdrpn::pipeline {

struct DemoModelOptions {
    std::uint64_t seed = 1234;
    int tokenizerVocab = 1000;  // sentencepiece pieces; <image> and <pad> are added after them
    int visionHidden = 64;
    int visionLayers = 4;
    int visionHeads = 4;
    int textHidden = 256;
    int textLayers = 8;
    int textHeads = 8;
    int textIntermediate = 688;
    double attentionStd = 0.12;  // std of the language model's q_proj / k_proj (peaked, not uniform, maps)
    bool overwrite = false;      // refuse to write into a folder that already holds a model unless set
};

// The safetensors `__metadata__` key/value that marks random weights (the studio warns about them).
constexpr const char* kDemoMetadataKey = "sdrpn.demo";
constexpr const char* kDemoMetadataValue = "random";
// Bumped whenever the same seed makes different weights; written to the metadata ("sdrpn.demo_version") and
// to README.txt ("demo model version N"), so scripts can tell a stale demo folder.
constexpr int kDemoModelVersion = 2;

// Writes config.json, preprocessor_config.json, tokenizer.model, model.safetensors and README.txt into
// `folder` (created if needed). Progress through ctx; cancel leaves no half-written model.safetensors.
Result<void> makeDemoModel(const std::string& folder, const DemoModelOptions& options, JobContext& ctx);

}  // namespace sdrpn::pipeline
