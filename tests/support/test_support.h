// Helpers shared by the test suites: fixture paths, scratch folders, tolerance compares for tensors.
#pragma once

#include <string>

#include <torch/torch.h>
#include <gtest/gtest.h>

namespace sdrpn::test {

// tests/data/<relative>
std::string dataPath(const std::string& relative);
// tests/data/fixtures/<name> (copied from the reference implementation; see its README)
std::string fixturePath(const std::string& name);
// A fresh empty folder under the build tree, unique per test; removed when the process exits normally.
std::string scratchDir(const std::string& tag = "");

// The built `sdrpn` executable, for tests of the command line.
std::string sdrpnExecutable();
// `s` single-quoted for /bin/sh.
std::string shellQuote(const std::string& s);
// Runs a shell command with stdout and stderr captured into `output`; returns its exit code (-1 if it
// did not exit normally).
int runCommand(const std::string& command, std::string* output = nullptr);

// Compare with |a-b| <= atol + rtol*|b|; on failure reports the worst element, its index and both values.
::testing::AssertionResult tensorsNear(const torch::Tensor& actual, const torch::Tensor& expected,
                                       double atol, double rtol = 0.0);

}  // namespace sdrpn::test

#define EXPECT_TENSOR_NEAR(actual, expected, atol) \
    EXPECT_TRUE(::sdrpn::test::tensorsNear((actual), (expected), (atol)))
#define ASSERT_TENSOR_NEAR(actual, expected, atol) \
    ASSERT_TRUE(::sdrpn::test::tensorsNear((actual), (expected), (atol)))
