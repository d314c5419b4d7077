// Internal helpers for the preprocessor_config.json readers (CLIP and Qwen2-VL image processors): typed,
// bounded reads whose errors name the file and the key. A number is checked before it is converted, so a
// 1e300 where an integer belongs is an error, not undefined behaviour.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace sdrpn::models::preprocess_json {

// The JSON object of a preprocessor_config.json (a file, or the one in a model folder) and the file's path.
inline std::pair<nlohmann::json, std::string> readObject(const std::string& pathOrDir) {
    namespace fs = std::filesystem;
    fs::path path(pathOrDir);
    std::error_code ec;
    if (fs::is_directory(path, ec)) path /= "preprocessor_config.json";
    const std::string file = path.string();
    std::ifstream in(path);
    if (!in) throw Error("cannot read " + file);
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
        throw Error(file + ": not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object()) throw Error(file + ": must be a JSON object, got " + std::string(j.type_name()));
    return {std::move(j), file};
}

inline std::int64_t boundedInt(const nlohmann::json& v, const std::string& file, const std::string& key,
                               std::int64_t lo, std::int64_t hi) {
    if (!v.is_number_integer())
        throw Error(file + ": " + key + " must be an integer, got " + v.dump().substr(0, 40));
    // Unsigned values above int64's range read back negative; either way out of [lo, hi].
    const auto n = v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(INT64_MAX)
                       ? INT64_MAX
                       : v.get<std::int64_t>();
    if (n < lo || n > hi)
        throw Error(file + ": " + key + " is " + v.dump() + ", outside " + std::to_string(lo) + " to " +
                    std::to_string(hi));
    return n;
}

// A finite number in [lo, hi].
inline double boundedNumber(const nlohmann::json& v, const std::string& file, const std::string& key,
                            double lo, double hi) {
    if (!v.is_number()) throw Error(file + ": " + key + " must be a number, got " + v.dump().substr(0, 40));
    const double d = v.get<double>();
    if (!std::isfinite(d) || d < lo || d > hi)
        throw Error(file + ": " + key + " is " + v.dump() + ", outside " + std::to_string(lo) + " to " +
                    std::to_string(hi));
    return d;
}

// image_mean (each in [0, 1]) or image_std (each in (0, 10]).
inline std::array<float, 3> channelTriple(const nlohmann::json& v, const std::string& file,
                                          const std::string& key, bool isStd) {
    if (!v.is_array() || v.size() != 3) throw Error(file + ": " + key + " must have 3 values");
    std::array<float, 3> out{};
    for (std::size_t c = 0; c < 3; ++c) {
        const double d = boundedNumber(v[c], file, key, 0.0, isStd ? 10.0 : 1.0);
        if (isStd && d == 0.0) throw Error(file + ": " + key + " must not contain 0");
        out[c] = float(d);
    }
    return out;
}

}  // namespace sdrpn::models::preprocess_json
