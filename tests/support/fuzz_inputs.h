// The inputs the fuzz replay tests read: the files of a seed or findings folder.
#pragma once

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <vector>

namespace sdrpn::test {

// The regular files directly in `dir`, sorted by path (none when it does not exist).
inline std::vector<std::filesystem::path> filesIn(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
        if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

}  // namespace sdrpn::test
