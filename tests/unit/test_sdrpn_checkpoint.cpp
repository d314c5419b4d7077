// pipeline::isSdrpnCheckpoint: a model folder is an SD-RPN checkpoint when its config.json names a twig
// (twig_K); anything else, a broken config included, is not one.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/pipeline/sdrpn_checkpoint.h"
#include "tests/support/test_support.h"

using sdrpn::pipeline::isSdrpnCheckpoint;

namespace {

std::string folderWithConfig(const std::string& tag, const std::string& config) {
    const std::string dir = sdrpn::test::scratchDir(tag);
    std::ofstream(dir + "/config.json") << config;
    return dir;
}

}  // namespace

TEST(SdrpnCheckpoint, TwigKInTheConfigMakesACheckpoint) {
    EXPECT_TRUE(
        isSdrpnCheckpoint(folderWithConfig("twig", R"({"model_type": "llava", "twig_K": 15, "twig_T": 3})")));
    EXPECT_FALSE(isSdrpnCheckpoint(folderWithConfig("plain", R"({"model_type": "llava", "twig_T": 3})")));
    EXPECT_FALSE(isSdrpnCheckpoint(sdrpn::test::fixturePath("tiny-llava-hf")));
}

TEST(SdrpnCheckpoint, BrokenOrMissingConfigIsNoCheckpoint) {
    EXPECT_FALSE(isSdrpnCheckpoint(folderWithConfig("broken", R"({"twig_K": )")));
    EXPECT_FALSE(isSdrpnCheckpoint(folderWithConfig("array", R"(["twig_K"])")));
    EXPECT_FALSE(isSdrpnCheckpoint(sdrpn::test::scratchDir("empty")));
    EXPECT_FALSE(isSdrpnCheckpoint("/nonexistent/model"));
    // A config.json that is a folder is not read.
    const std::string odd = sdrpn::test::scratchDir("odd");
    std::filesystem::create_directories(odd + "/config.json");
    EXPECT_FALSE(isSdrpnCheckpoint(odd));
}
