#include "core/pipeline/sdrpn_checkpoint.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace sdrpn::pipeline {

bool isSdrpnCheckpoint(const std::string& folder) {
    namespace fs = std::filesystem;
    const fs::path config = fs::path(folder) / "config.json";
    std::error_code ec;
    if (!fs::is_regular_file(config, ec)) return false;
    std::ifstream in(config);
    const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    return j.is_object() && j.contains("twig_K");
}

}  // namespace sdrpn::pipeline
