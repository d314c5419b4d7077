// Finding the CLIP vision tower of an original-layout LLaVA checkpoint (mllm_reference.md §2.3): the config
// names it (`mm_vision_tower`, often a hub id such as "openai/clip-vit-large-patch14-336"), and the folder
// is looked for inside and beside the model folder. Plain data, no LibTorch, never throws: the caller
// decides what a missing tower means (the loader throws, the studio asks for the folder).
//
//   VisionTowerLookup tower = findVisionTower("/models/llava-v1.5-7b", cfg.visionTowerName);
//   if (!tower.found()) for (const auto& p : tower.tried) std::cerr << "  " << p << "\n";
#pragma once

#include <string>
#include <vector>

namespace sdrpn::models {

struct VisionTowerLookup {
    std::string name;  // what was looked for: the config's `mm_vision_tower`, or the explicit folder
    bool explicitFolder = false;     // `name` is a folder given by the user (LoadOptions::visionTower)
    std::string folder;              // the CLIP folder found (lexically normal); empty when none
    std::vector<std::string> tried;  // every candidate, in order (lexically normal)

    bool found() const { return !folder.empty(); }
};

// A folder with a config.json (a CLIP folder as the hub has it).
bool isClipFolder(const std::string& path);

// With `explicitFolder` set, only that folder is tried. Otherwise `towerName` (the config's
// mm_vision_tower) as an absolute path, or relative to the model folder and to its parent, then its last
// component in both places. An empty `towerName` and no explicit folder tries nothing.
VisionTowerLookup findVisionTower(const std::string& modelDir, const std::string& towerName,
                                  const std::string& explicitFolder = {});

}  // namespace sdrpn::models
