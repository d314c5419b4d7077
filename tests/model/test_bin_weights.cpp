// The tiny LLaVA fixture re-saved by torch.save as pytorch_model.bin (tests/data/io/make_pickles.py) loads
// through the same loader as its safetensors folder and gives identical logits, before and after
// `convertToSafetensors`.
#include <filesystem>

#include <gtest/gtest.h>

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/io/weight_convert.h"
#include "core/models/llava.h"
#include "tests/support/python_inputs.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;
using namespace sdrpn;
using namespace sdrpn::models;

namespace {

std::string fixture() {
    return test::fixturePath("tiny-llava-hf");
}

const std::map<std::string, torch::Tensor>& reference() {
    static const auto ref =
        io::loadTensors(*io::SafetensorsArchive::open(fixture() + "/reference.safetensors"));
    return ref;
}

torch::Tensor logitsOf(const LlavaModel& model) {
    torch::NoGradGuard noGrad;
    auto idsTensor = reference().at("input_ids").contiguous();
    PromptInput p;
    p.ids.assign(idsTensor.data_ptr<std::int64_t>(), idsTensor.data_ptr<std::int64_t>() + idsTensor.numel());
    p.images = {model.encodeImage(reference().at("pixel_values.336"))};
    PrefillOptions o;
    o.allLogits = true;
    auto ctx = model.newContext();
    return model.prefill(*ctx, p, o).logits;
}

class BinWeightsTest : public test::GeneratedInputs<BinWeightsTest> {
protected:
    static void SetUpTestSuite() {
        generate("bin-weights", "io/make_pickles.py", "llava " + test::shellQuote(fixture()));
    }
};

}  // namespace

TEST_F(BinWeightsTest, PytorchModelBinGivesTheSameLogitsAsSafetensors) {
    const std::string binDir = path("llava-bin");
    ASSERT_TRUE(fs::exists(binDir + "/pytorch_model.bin"));
    // Same tensors, bit for bit.
    auto bin = io::SafetensorsArchive::open(binDir);
    auto st = io::SafetensorsArchive::open(fixture() + "/model.safetensors");
    ASSERT_EQ(bin->names(), st->names());
    for (const std::string& name : st->names())
        ASSERT_TRUE(torch::equal(io::loadTensor(*bin, name), io::loadTensor(*st, name))) << name;

    auto fromBin = tryLoadLlava(binDir, LoadOptions{}, JobContext::none());
    ASSERT_TRUE(fromBin.ok()) << fromBin.message();
    auto fromSafetensors = tryLoadLlava(fixture(), LoadOptions{}, JobContext::none());
    ASSERT_TRUE(fromSafetensors.ok()) << fromSafetensors.message();
    const torch::Tensor logits = logitsOf(*fromBin.value());
    EXPECT_TRUE(torch::equal(logits, logitsOf(*fromSafetensors.value())));
    EXPECT_TENSOR_NEAR(logits, reference().at("logits"), 1e-4);

    // Converted to safetensors: loads the same.
    const std::string converted = path("llava-converted");
    const io::ConvertReport report = io::convertToSafetensors(binDir, converted);
    EXPECT_EQ(report.shards, 1);
    EXPECT_TRUE(fs::exists(converted + "/model.safetensors"));
    EXPECT_TRUE(fs::exists(converted + "/config.json"));
    EXPECT_FALSE(fs::exists(converted + "/pytorch_model.bin"));
    auto fromConverted = tryLoadLlava(converted, LoadOptions{}, JobContext::none());
    ASSERT_TRUE(fromConverted.ok()) << fromConverted.message();
    EXPECT_TRUE(torch::equal(logitsOf(*fromConverted.value()), logits));
}

TEST_F(BinWeightsTest, ConvertInSmallShards) {
    const std::string binDir = path("llava-bin");
    const std::string out = path("llava-shards");
    const io::ConvertReport report = io::convertToSafetensors(binDir, out, JobContext::none(), 200'000);
    EXPECT_GT(report.shards, 1);
    EXPECT_TRUE(fs::exists(out + "/model.safetensors.index.json"));
    EXPECT_TRUE(fs::exists(out + "/model-00001-of-" + [&] {
        char buf[8];
        std::snprintf(buf, sizeof buf, "%05d", report.shards);
        return std::string(buf);
    }() + ".safetensors"));
    auto converted = io::SafetensorsArchive::open(out);
    auto st = io::SafetensorsArchive::open(fixture() + "/model.safetensors");
    ASSERT_EQ(converted->names(), st->names());
    for (const std::string& name : st->names())
        ASSERT_TRUE(torch::equal(io::loadTensor(*converted, name), io::loadTensor(*st, name))) << name;
}
