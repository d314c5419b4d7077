// ModelCard: what a model folder holds, read without loading any weights into memory.
//
// inspectModel() reads config.json (every backbone family the studio knows: llava-hf, original LLaVA,
// Qwen2.5-VL, DeepSeek-VL; others by their common keys), opens the safetensors weights memory-mapped and
// walks their headers to count parameters and bytes and to find the dominant dtype. It is the first,
// cheap part of loading a model and what the studio shows in its model card.
//
//   sdrpn::JobContext ctx;
//   sdrpn::Result<sdrpn::ModelCard> card = sdrpn::inspectModel("/models/llava-1.5-7b-hf", ctx);
//   if (!card) std::cerr << card.message() << "\n";   // names the file and key at fault
//
// Thread affinity: none; it runs on whatever thread calls it (a studio worker thread). Progress goes to
// ctx.onProgress on that thread; cancel is honoured between files and tensors.
// Errors: never throws; a missing or malformed config.json or weight file gives a failed Result whose
// message names the file (and key), cancel gives StatusCode::Cancelled.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/jobs.h"
#include "core/result.h"

namespace sdrpn {

struct ModelCard {
    std::string folder;        // as given
    std::string architecture;  // `architectures[0]` of config.json, or a name derived from `model_type`
    std::string modelType;     // `model_type` ("llava", "qwen2_5_vl", "deepseek_vl", ...)
    std::string dtype;         // dominant weight dtype by bytes ("F16", "BF16", "F32", ...)
    int llmLayers = 0;
    int llmHeads = 0;
    int llmKvHeads = 0;
    int llmHidden = 0;
    int visionLayers = 0;
    int imageSize = 0;  // vision input side in pixels (0: dynamic resolution)
    int patchSize = 0;
    int gridRows = 0;  // image-token grid (0: depends on the image, e.g. Qwen2.5-VL)
    int gridCols = 0;
    std::int64_t parameterCount = 0;
    std::uint64_t weightBytes = 0;
    bool randomWeights = false;  // a safetensors file carries `"sdrpn.demo": "random"` in __metadata__
    std::string note;            // one line for a person: caveats (demo weights, separate vision tower, ...)

    // SD-RPN checkpoint (pipeline::isSdrpnCheckpoint): config.json names a twig, the RPN is in the folder.
    bool sdrpnCheckpoint = false;
    int twigK = 0, twigT = 0;  // its config's twig_K / twig_T (0 when not given as integers)
    // Unfilled SD-RPN checkpoint (pipeline::isUnfilledSdrpnCheckpoint): it loads only with its base model
    // (LoadOptions::base), which supplies the layers from K+T on, the final norm and lm_head.
    bool needsBase = false;

    // Original LLaVA layout whose weights hold no vision tower: the CLIP folder it needs
    // (models::findVisionTower without an explicit folder).
    bool needsVisionTower = false;
    std::string visionTowerName;                // config `mm_vision_tower`
    std::string visionTowerFolder;              // where it was found; empty when not found
    std::vector<std::string> visionTowerTried;  // the folders looked at
    bool visionTowerMissing() const { return needsVisionTower && visionTowerFolder.empty(); }
};

Result<ModelCard> inspectModel(const std::string& folder, JobContext& ctx);

}  // namespace sdrpn
