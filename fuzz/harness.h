// The fuzz targets: one entry point per parser of outside input (weights, configs, preprocessor configs,
// tokenizers, datasets, label settings, label stores, images). Each takes arbitrary bytes, feeds them to the
// parser the way the studio and `sdrpn` do, and uses what comes back a little (tensor data read, text
// encoded), so that a parser that accepts garbage is caught too.
//
// The contract under test: bad input ends in sdrpn::Error (a message naming the culprit), which the
// harness swallows. Anything else is a finding: a crash, a sanitizer report, an exception of another type
// (an unnamed std::out_of_range, a c10::Error) escaping, an allocation beyond the input's means.
//
//   fuzz/fuzz_<name>            libFuzzer executables (cmake -DSDRPN_BUILD_FUZZ=ON with clang; scripts/fuzz)
//   tests/unit/test_fuzz_replay  replays fuzz/seeds/<name>/ and tests/data/fuzz/<name>/ (found crashes)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sdrpn::fuzz {

struct Target {
    const char* name;
    const char* about;
    // Returns 0 (libFuzzer's convention); aborts with a message on a finding.
    int (*run)(const std::uint8_t* data, std::size_t size);
};

const std::vector<Target>& targets();
const Target* findTarget(const std::string& name);  // nullptr when there is none of that name
// The sdrpn::Error message of this thread's last run ("" when the parser accepted the input).
const std::string& lastRefusal();

}  // namespace sdrpn::fuzz
