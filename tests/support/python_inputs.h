// Test inputs that a Python script makes at run time with Debian's python3 (SDRPN_PYTHON, defined by
// tests/CMakeLists.txt) and python3-numpy / python3-torch: pickles, PyTorch .bin files, released labels.
// A suite generates once into a scratch folder of its own; a failed generator fails every test of the
// suite with the script's output (never a skip).
//
//   class PickleTest : public test::GeneratedInputs<PickleTest> {
//   protected:
//       static void SetUpTestSuite() { generate("pickles", "io/make_pickles.py", "pickles"); }
//   };
//   TEST_F(PickleTest, X) { ... path("protocol2.pkl") ... }
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "tests/support/test_support.h"

namespace sdrpn::test {

template <class Suite>
class GeneratedInputs : public ::testing::Test {
protected:
    // Runs tests/data/<script> <scratch folder> <args> (`args` already shell-quoted where needed).
    static void generate(const std::string& scratchTag, const std::string& script,
                         const std::string& args = "") {
        s_dir = new std::string(scratchDir(scratchTag));
        const std::string command = shellQuote(SDRPN_PYTHON) + " " + shellQuote(dataPath(script)) + " " +
                                    shellQuote(*s_dir) + (args.empty() ? "" : " " + args);
        std::string output;
        s_rc = runCommand(command, &output);
        if (s_rc != 0)
            s_failure =
                new std::string("tests/data/" + script + " failed; it needs Debian's PyTorch and numpy " +
                                "(apt-get install python3-torch python3-numpy):\n" + command + "\n" + output);
    }
    static bool generated() { return s_rc == 0; }
    void SetUp() override {
        ASSERT_TRUE(generated()) << (s_failure ? *s_failure : std::string("the generator did not run"));
    }
    static std::string path(const std::string& name) { return *s_dir + "/" + name; }
    static const std::string& dir() { return *s_dir; }

private:
    static inline std::string* s_dir = nullptr;
    static inline std::string* s_failure = nullptr;
    static inline int s_rc = -1;
};

}  // namespace sdrpn::test
