#include "core/models/vision_tower.h"

#include <filesystem>

namespace fs = std::filesystem;

namespace sdrpn::models {

bool isClipFolder(const std::string& path) {
    std::error_code ec;
    return !path.empty() && fs::is_directory(path, ec) && fs::exists(fs::path(path) / "config.json", ec);
}

VisionTowerLookup findVisionTower(const std::string& modelDir, const std::string& towerName,
                                  const std::string& explicitFolder) {
    VisionTowerLookup out;
    if (!explicitFolder.empty()) {
        out.name = explicitFolder;
        out.explicitFolder = true;
        out.tried.push_back(explicitFolder);
        if (isClipFolder(explicitFolder)) out.folder = explicitFolder;
        return out;
    }
    out.name = towerName;
    if (towerName.empty()) return out;
    std::vector<fs::path> candidates;
    const fs::path named(towerName);
    if (named.is_absolute()) {
        candidates.push_back(named);
    } else {
        const fs::path dir(modelDir);
        candidates.push_back(dir / named);
        candidates.push_back(dir.parent_path() / named);
        if (named.has_parent_path()) {
            candidates.push_back(dir / named.filename());
            candidates.push_back(dir.parent_path() / named.filename());
        }
    }
    for (const auto& p : candidates) {
        out.tried.push_back(p.lexically_normal().string());
        if (out.folder.empty() && isClipFolder(p.string())) out.folder = p.lexically_normal().string();
    }
    return out;
}

}  // namespace sdrpn::models
