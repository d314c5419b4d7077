// A small command-line parser for the sdrpn subcommands: `--name value`, `--name=value`, boolean flags
// and positionals. Unknown options and missing values are errors that name the option.
#pragma once

#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace sdrpn::cli {

class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Args {
public:
    // `valued`: options that take a value; `flags`: options that do not.
    Args(const std::vector<std::string>& argv, const std::set<std::string>& valued,
         const std::set<std::string>& flags);

    bool has(const std::string& name) const { return m_values.count(name) > 0 || m_flags.count(name) > 0; }
    bool flag(const std::string& name) const { return m_flags.count(name) > 0; }
    std::string get(const std::string& name, const std::string& fallback = {}) const;
    std::string require(const std::string& name) const;  // throws UsageError
    int getInt(const std::string& name, int fallback) const;
    double getDouble(const std::string& name, double fallback) const;
    const std::vector<std::string>& positional() const { return m_positional; }

private:
    std::map<std::string, std::string> m_values;
    std::set<std::string> m_flags;
    std::vector<std::string> m_positional;
};

// The whole of a settings file given on the command line; throws sdrpn::Error naming it when it cannot be
// read.
std::string readSettingsFile(const std::string& path);

}  // namespace sdrpn::cli
