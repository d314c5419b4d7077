// Internal helpers for the settings objects of core/sdrpn (LabelSettings, RoiSettings): typed reads from a
// JSON object whose errors name the key and the source.
#pragma once

#include <cmath>
#include <cstdint>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace sdrpn::settings_json {

[[noreturn]] inline void badKey(const std::string& source, const std::string& key, const std::string& why) {
    throw Error(source + ": key '" + key + "' " + why);
}

inline void checkObject(const nlohmann::json& j, const std::set<std::string>& known,
                        const std::string& source, const std::string& what) {
    if (!j.is_object()) throw Error(source + ": " + what + " must be a JSON object, got " + j.type_name());
    for (auto it = j.begin(); it != j.end(); ++it)
        if (!known.count(it.key())) {
            std::string list;
            for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
            badKey(source, it.key(), "is not known (known keys: " + list + ")");
        }
}

inline double readNumber(const nlohmann::json& j, const std::string& key, const std::string& source) {
    const auto& v = j.at(key);
    if (!v.is_number()) badKey(source, key, "must be a number, got " + std::string(v.type_name()));
    const double d = v.get<double>();
    if (!std::isfinite(d)) badKey(source, key, "must be finite");
    return d;
}

inline int readInt(const nlohmann::json& j, const std::string& key, const std::string& source) {
    const auto& v = j.at(key);
    if (!v.is_number_integer()) badKey(source, key, "must be an integer, got " + v.dump());
    const auto i = v.get<std::int64_t>();
    if (i < -1000000 || i > 1000000) badKey(source, key, "is out of range: " + v.dump());
    return int(i);
}

inline bool readBool(const nlohmann::json& j, const std::string& key, const std::string& source) {
    const auto& v = j.at(key);
    if (!v.is_boolean()) badKey(source, key, "must be true or false, got " + std::string(v.type_name()));
    return v.get<bool>();
}

inline nlohmann::json parse(const std::string& text, const std::string& source) {
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {  // parse errors, and numbers that overflow (406)
        throw Error(source + ": not valid JSON (" + e.what() + ")");
    }
}

}  // namespace sdrpn::settings_json
