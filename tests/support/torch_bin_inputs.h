// What the tests of PyTorch zip checkpoints share: the inputs that tests/data/io/make_pickles.py writes with
// Debian's python3-torch (once per test suite), and bit-exact comparison against its raw references.
#pragma once

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "core/result.h"
#include "tests/support/python_inputs.h"
#include "tests/support/test_support.h"

namespace sdrpn::test {

using io::dtypeName;
using io::RawTensor;
using io::SafetensorsArchive;

inline std::vector<std::uint8_t> readBytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<std::uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline void writeBytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

struct Reference {
    std::string dtype;
    std::vector<std::int64_t> shape;
    std::vector<std::uint8_t> bytes;
};

inline std::map<std::string, Reference> readReference(const std::string& folder) {
    std::ifstream in(folder + "/manifest.json");
    nlohmann::json manifest = nlohmann::json::parse(in);
    std::map<std::string, Reference> out;
    for (auto it = manifest.begin(); it != manifest.end(); ++it) {
        Reference r;
        r.dtype = (*it)["dtype"].get<std::string>();
        r.shape = (*it)["shape"].get<std::vector<std::int64_t>>();
        r.bytes = readBytes(folder + "/" + (*it)["file"].get<std::string>());
        out[it.key()] = std::move(r);
    }
    return out;
}

// Every reference tensor is in the archive with the same dtype, shape and bytes.
inline void expectMatches(const SafetensorsArchive& archive, const std::map<std::string, Reference>& ref) {
    EXPECT_EQ(archive.names().size(), ref.size());
    for (const auto& [name, r] : ref) {
        SCOPED_TRACE(name);
        ASSERT_TRUE(archive.contains(name));
        const RawTensor raw = archive.raw(name);
        EXPECT_EQ(dtypeName(raw.info->dtype), r.dtype);
        EXPECT_EQ(raw.info->shape, r.shape);
        ASSERT_EQ(raw.info->nbytes(), r.bytes.size());
        EXPECT_TRUE(r.bytes.empty() || std::memcmp(raw.data, r.bytes.data(), r.bytes.size()) == 0);
    }
}

inline std::string openError(const std::string& path) {
    try {
        SafetensorsArchive::open(path);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

class TorchBinTest : public test::GeneratedInputs<TorchBinTest> {
protected:
    static void SetUpTestSuite() { generate("torch-bin", "io/make_pickles.py", "torch"); }
};

}  // namespace sdrpn::test
