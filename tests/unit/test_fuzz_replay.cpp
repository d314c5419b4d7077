// Replays the fuzz targets' seed corpora (fuzz/seeds/<target>/) and every input that once broke a parser
// (tests/data/fuzz/<target>/) through the fuzz harness (fuzz/harness.h). A parser that crashes, trips a
// sanitizer or lets anything but sdrpn::Error escape aborts this test; scripts/test runs it under ASan +
// UBSan.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include <gtest/gtest.h>

#include "fuzz/harness.h"
#include "tests/support/fuzz_inputs.h"

namespace fs = std::filesystem;
using sdrpn::test::filesIn;

namespace {

std::vector<std::uint8_t> bytesOf(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class FuzzReplay : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(FuzzReplay, SeedsAndFoundCrashesEndInAClearErrorOrSuccess) {
    const sdrpn::fuzz::Target* target = sdrpn::fuzz::findTarget(GetParam());
    ASSERT_NE(target, nullptr);
    const fs::path seeds = fs::path(SDRPN_SOURCE_DIR) / "fuzz" / "seeds" / GetParam();
    const fs::path found = fs::path(SDRPN_TEST_DATA_DIR) / "fuzz" / GetParam();
    std::vector<fs::path> inputs = filesIn(seeds);
    EXPECT_FALSE(inputs.empty()) << seeds << " holds no seed";
    const std::size_t seedCount = inputs.size();
    for (const auto& f : filesIn(found)) inputs.push_back(f);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const fs::path& file = inputs[i];
        SCOPED_TRACE(file.string());
        const std::vector<std::uint8_t> bytes = bytesOf(file);
        EXPECT_EQ(target->run(bytes.data(), bytes.size()), 0);
        // A seed is a valid input (so that the fuzzer starts from what parses), unless named bad_*.
        if (i < seedCount && file.filename().string().rfind("bad_", 0) != 0) {
            EXPECT_EQ(sdrpn::fuzz::lastRefusal(), "") << "the seed is refused";
        }
        // Every prefix a download cut short could leave: the first byte, half, all but one.
        for (std::size_t n : {std::size_t(1), bytes.size() / 2, bytes.size() > 0 ? bytes.size() - 1 : 0})
            EXPECT_EQ(target->run(bytes.data(), std::min(n, bytes.size())), 0) << n << " bytes";
    }
    EXPECT_EQ(target->run(nullptr, 0), 0) << "empty input";
}

INSTANTIATE_TEST_SUITE_P(Parsers, FuzzReplay, ::testing::ValuesIn([] {
                             std::vector<std::string> names;
                             for (const auto& t : sdrpn::fuzz::targets()) names.push_back(t.name);
                             return names;
                         }()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });
