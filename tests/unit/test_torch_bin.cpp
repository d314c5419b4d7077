// PyTorch zip checkpoints written by torch.save (tests/data/io/make_pickles.py) read through
// SafetensorsArchive: every dtype, shared storages, non-contiguous tensors and parameters bit-exact against
// raw references; a sharded folder with pytorch_model.bin.index.json; legacy and damaged files refused;
// conversion to safetensors (`sdrpn convert`: tests/model/test_convert_cli.cpp).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "core/io/weight_convert.h"
#include "core/result.h"
#include "tests/support/test_support.h"
#include "tests/support/torch_bin_inputs.h"

namespace fs = std::filesystem;
using namespace sdrpn;
using namespace sdrpn::io;

using sdrpn::test::expectMatches;
using sdrpn::test::openError;
using sdrpn::test::readBytes;
using sdrpn::test::readReference;
using sdrpn::test::TorchBinTest;
using sdrpn::test::writeBytes;

TEST_F(TorchBinTest, StateDictMatchesTheReferenceBitForBit) {
    const auto ref = readReference(path("state_ref"));
    auto archive = SafetensorsArchive::open(path("state.bin"));
    expectMatches(*archive, ref);
    const auto& file = *archive->files().at(0);
    EXPECT_EQ(file.metadata().at("format"), "pt");
    // Views of one storage share its bytes, and so does one tensor under two names.
    EXPECT_EQ(archive->raw("same1").data, archive->raw("same2").data);
    EXPECT_EQ(archive->raw("view_b").data - archive->raw("view_a").data, 8 * 4);
    // The transpose was copied into row-major order.
    EXPECT_EQ(archive->info("transposed").shape, (std::vector<std::int64_t>{5, 4}));
}

TEST_F(TorchBinTest, NestedStateDictAndFileTypes) {
    const auto ref = readReference(path("state_ref"));
    expectMatches(*SafetensorsArchive::open(path("wrapped.bin")), ref);
    // The format is told by the magic, not the name.
    fs::copy_file(path("state.bin"), path("weights.pt"), fs::copy_options::overwrite_existing);
    expectMatches(*SafetensorsArchive::open(path("weights.pt")), ref);
}

TEST_F(TorchBinTest, ShardedFolderWithIndex) {
    const auto ref = readReference(path("state_ref"));
    auto archive = SafetensorsArchive::open(path("sharded"));
    EXPECT_EQ(archive->files().size(), 2u);
    expectMatches(*archive, ref);
    expectMatches(*SafetensorsArchive::open(path("sharded/pytorch_model.bin.index.json")), ref);

    // safetensors is preferred when both are there.
    const std::string both = test::scratchDir("both");
    fs::copy(path("sharded"), both, fs::copy_options::recursive);
    float one = 1.0f;
    writeSafetensors(both + "/model.safetensors", {{"only", DType::F32, {1}, &one}});
    EXPECT_EQ(SafetensorsArchive::open(both)->names(), std::vector<std::string>{"only"});

    // A missing shard names the shard and the index.
    const std::string missing = test::scratchDir("missing");
    fs::copy(path("sharded"), missing, fs::copy_options::recursive);
    fs::remove(missing + "/pytorch_model-00002-of-00002.bin");
    const std::string msg = openError(missing);
    EXPECT_NE(msg.find("pytorch_model-00002-of-00002.bin"), std::string::npos) << msg;
    EXPECT_NE(msg.find("pytorch_model.bin.index.json"), std::string::npos) << msg;
}

TEST_F(TorchBinTest, LegacyFormatIsRefused) {
    const std::string msg = openError(path("legacy.bin"));
    EXPECT_NE(
        msg.find(path("legacy.bin") + ": a legacy (pre-1.6) torch.save file; re-save it with torch ≥1.6 or "
                                      "convert it with transformers"),
        std::string::npos)
        << msg;
}

TEST_F(TorchBinTest, DamagedFilesAreRefusedNamingTheFile) {
    const auto bytes = readBytes(path("state.bin"));
    const std::string cut = path("cut.bin");
    // Every truncation (a step keeps it quick) fails with the file named; none crashes.
    for (std::size_t n = 0; n < bytes.size(); n += (n < 64 || n + 200 > bytes.size()) ? 1 : 37) {
        writeBytes(cut, std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + std::ptrdiff_t(n)));
        const std::string msg = openError(cut);
        ASSERT_NE(msg.find(cut), std::string::npos) << "cut at " << n << ": '" << msg << "'";
    }
    // Flipped bytes anywhere: an error or a successful read, never a crash.
    for (std::size_t i = 0; i < bytes.size(); i += 7) {
        auto copy = bytes;
        copy[i] ^= 0x5a;
        writeBytes(cut, copy);
        (void)openError(cut);
    }
    // A compressed entry is refused with a message.
    auto compressed = bytes;
    for (std::size_t i = 0; i + 4 <= compressed.size(); ++i)
        if (compressed[i] == 'P' && compressed[i + 1] == 'K' && compressed[i + 2] == 1 &&
            compressed[i + 3] == 2) {
            compressed[i + 10] = 8;  // deflate in the central directory
            break;
        }
    writeBytes(cut, compressed);
    EXPECT_NE(openError(cut).find("is compressed"), std::string::npos) << openError(cut);
}

TEST_F(TorchBinTest, ConvertShardedFolderRoundTrip) {
    const std::string out = test::scratchDir("converted") + "/out";
    JobContext job;
    int reports = 0;
    job.onProgress = [&](const Progress&) { ++reports; };
    const ConvertReport report = convertToSafetensors(path("sharded"), out, job);
    EXPECT_EQ(report.shards, 1);
    EXPECT_EQ(report.tensors, 19);
    EXPECT_GT(reports, 0);
    EXPECT_TRUE(fs::exists(out + "/model.safetensors"));
    EXPECT_TRUE(fs::exists(out + "/config.json"));
    EXPECT_TRUE(fs::exists(out + "/tokenizer_config.json"));
    EXPECT_FALSE(fs::exists(out + "/pytorch_model.bin.index.json"));
    EXPECT_FALSE(fs::exists(out + "/pytorch_model-00001-of-00002.bin"));
    auto converted = SafetensorsArchive::open(out);
    EXPECT_EQ(converted->files().at(0)->metadata().at("format"), "pt");
    expectMatches(*converted, readReference(path("state_ref")));

    // A second conversion into the same (now non-empty) folder is refused, and so is converting in place.
    EXPECT_THROW(convertToSafetensors(path("sharded"), out), Error);
    EXPECT_THROW(convertToSafetensors(path("sharded"), path("sharded")), Error);

    // Cancel before the first tensor: no shard is left behind.
    const std::string cancelled = test::scratchDir("cancelled") + "/out";
    JobContext cancel;
    cancel.requestCancel();
    EXPECT_THROW(convertToSafetensors(path("sharded"), cancelled, cancel), CancelledError);
    EXPECT_FALSE(fs::exists(cancelled + "/model.safetensors"));
}
