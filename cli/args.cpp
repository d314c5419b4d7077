#include "cli/args.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/result.h"

namespace sdrpn::cli {

Args::Args(const std::vector<std::string>& argv, const std::set<std::string>& valued,
           const std::set<std::string>& flags) {
    for (std::size_t i = 0; i < argv.size(); ++i) {
        const std::string& a = argv[i];
        if (a.rfind("--", 0) != 0 || a == "--") {
            m_positional.push_back(a);
            continue;
        }
        std::string name = a.substr(2);
        std::string value;
        bool inlineValue = false;
        if (auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            inlineValue = true;
        }
        if (valued.count(name)) {
            if (!inlineValue) {
                if (i + 1 >= argv.size()) throw UsageError("option --" + name + " needs a value");
                value = argv[++i];
            }
            m_values[name] = value;
        } else if (flags.count(name)) {
            if (inlineValue) throw UsageError("option --" + name + " takes no value");
            m_flags.insert(name);
        } else {
            throw UsageError("unknown option --" + name);
        }
    }
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
    auto it = m_values.find(name);
    return it == m_values.end() ? fallback : it->second;
}

std::string Args::require(const std::string& name) const {
    auto it = m_values.find(name);
    if (it == m_values.end()) throw UsageError("missing required option --" + name);
    return it->second;
}

int Args::getInt(const std::string& name, int fallback) const {
    auto it = m_values.find(name);
    if (it == m_values.end()) return fallback;
    char* end = nullptr;
    long v = std::strtol(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != '\0')
        throw UsageError("--" + name + " expects an integer, got '" + it->second + "'");
    return static_cast<int>(v);
}

double Args::getDouble(const std::string& name, double fallback) const {
    auto it = m_values.find(name);
    if (it == m_values.end()) return fallback;
    char* end = nullptr;
    double v = std::strtod(it->second.c_str(), &end);
    if (it->second.empty() || *end != '\0')
        throw UsageError("--" + name + " expects a number, got '" + it->second + "'");
    return v;
}

std::string readSettingsFile(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Error(path + ": cannot open the settings file");
    std::stringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw Error(path + ": cannot read the settings file");
    return ss.str();
}

}  // namespace sdrpn::cli
