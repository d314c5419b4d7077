// `sdrpn convert`: a sharded pytorch_model.bin folder (tests/data/io/make_pickles.py) written as
// safetensors with bit-exact tensors; an occupied output folder and a missing --out are refused.
#include <filesystem>

#include "tests/support/test_support.h"
#include "tests/support/torch_bin_inputs.h"

namespace fs = std::filesystem;
using namespace sdrpn;
using namespace sdrpn::io;
using sdrpn::test::expectMatches;
using sdrpn::test::readReference;
using sdrpn::test::TorchBinTest;

TEST_F(TorchBinTest, ConvertCommandLine) {
    const std::string exe = test::sdrpnExecutable();
    if (!fs::exists(exe)) FAIL() << exe << " is missing: build the sdrpn target first";
    const std::string out = test::scratchDir("cli") + "/out";
    std::string output;
    int rc = test::runCommand(test::shellQuote(exe) + " convert --in " + test::shellQuote(path("sharded")) +
                                  " --out " + test::shellQuote(out),
                              &output);
    ASSERT_EQ(rc, 0) << output;
    EXPECT_NE(output.find("19 tensors"), std::string::npos) << output;
    expectMatches(*SafetensorsArchive::open(out), readReference(path("state_ref")));

    rc = test::runCommand(test::shellQuote(exe) + " convert --in " + test::shellQuote(path("sharded")) +
                              " --out " + test::shellQuote(out),
                          &output);
    EXPECT_EQ(rc, 1) << output;
    EXPECT_NE(output.find(out + " is not empty"), std::string::npos) << output;

    rc = test::runCommand(test::shellQuote(exe) + " convert --in " + test::shellQuote(path("sharded")),
                          &output);
    EXPECT_EQ(rc, 2) << output;
}
