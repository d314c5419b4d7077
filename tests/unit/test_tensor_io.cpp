// The torch bridge: dtype maps, owned tensors out of the mapping, and saveTensors round trips.
#include "core/io/tensor_io.h"

#include <cstring>
#include <fstream>

#include <gtest/gtest.h>

#include "core/result.h"
#include "tests/support/test_support.h"

using namespace sdrpn::io;

TEST(TensorIoDType, MapsBothWays) {
    for (DType d : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I16,
                    DType::I8, DType::U8, DType::BOOL}) {
        EXPECT_EQ(fromTorchDType(toTorchDType(d)), d) << dtypeName(d);
        EXPECT_EQ(c10::elementSize(toTorchDType(d)), dtypeSize(d)) << dtypeName(d);
    }
    EXPECT_EQ(toTorchDType(DType::F16), torch::kHalf);
    EXPECT_EQ(toTorchDType(DType::BF16), torch::kBFloat16);
    EXPECT_THROW(fromTorchDType(torch::kComplexFloat), sdrpn::Error);
}

TEST(TensorIo, RoundTripEverySupportedDType) {
    const std::string path = sdrpn::test::scratchDir() + "/all.safetensors";
    torch::manual_seed(0);
    std::vector<std::pair<std::string, torch::Tensor>> tensors = {
        {"f32", torch::randn({3, 4})},
        {"f16", torch::randn({2, 5}).to(torch::kHalf)},
        {"bf16", torch::randn({7}).to(torch::kBFloat16)},
        {"f64", torch::randn({2, 2}, torch::kDouble)},
        {"i64", torch::arange(-5, 5, torch::kLong).reshape({2, 5})},
        {"i32", torch::tensor({-3, 0, 2147483647}, torch::kInt)},
        {"i16", torch::tensor({-300, 300}, torch::kShort)},
        {"i8", torch::tensor({-128, 127}, torch::kChar)},
        {"u8", torch::tensor({0, 128, 255}, torch::kByte)},
        {"bool", torch::tensor({true, false, true})},
        {"scalar", torch::tensor(2.5)},
        {"empty", torch::zeros({0, 3})},
        // Non-contiguous input must be written in logical order.
        {"transposed", torch::arange(6, torch::kFloat).reshape({2, 3}).t()},
    };
    saveTensors(path, tensors, {{"format", "pt"}});
    auto archive = SafetensorsArchive::open(path);
    EXPECT_EQ(archive->files().front()->metadata().at("format"), "pt");
    ASSERT_EQ(archive->names().size(), tensors.size());
    for (const auto& [name, expected] : tensors) {
        SCOPED_TRACE(name);
        torch::Tensor got = loadTensor(*archive, name);
        EXPECT_EQ(got.scalar_type(), expected.scalar_type());
        EXPECT_EQ(got.sizes(), expected.sizes());
        EXPECT_TRUE(got.is_contiguous());
        EXPECT_TRUE(torch::equal(got, expected.contiguous()));
    }
    auto all = loadTensors(*archive);
    EXPECT_EQ(all.size(), tensors.size());
    auto some = loadTensors(*archive, "f");
    EXPECT_EQ(some.size(), 3u);  // f16, f32, f64
}

TEST(TensorIo, LoadedTensorsOwnTheirMemoryAndSurviveTheArchive) {
    const std::string path = sdrpn::test::scratchDir() + "/own.safetensors";
    saveTensors(path, {{"w", torch::arange(10, torch::kFloat)}});
    torch::Tensor w;
    {
        auto archive = SafetensorsArchive::open(path);
        w = loadTensor(*archive, "w");
    }
    w.add_(1);  // writable: not a view of the read-only mapping
    EXPECT_EQ(w[9].item<float>(), 10.0f);
}

TEST(TensorIo, UnalignedDataIsCopiedCorrectly) {
    const std::string path = sdrpn::test::scratchDir() + "/unaligned.safetensors";
    // A U8 byte first, so the F32 tensor starts at an odd offset.
    const std::string header = R"({"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                               R"("w":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
    std::ofstream out(path, std::ios::binary);
    std::uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out << header;
    float values[2] = {1.25f, -3.5f};
    out.put(7);
    out.write(reinterpret_cast<const char*>(values), sizeof values);
    out.close();
    auto archive = SafetensorsArchive::open(path);
    EXPECT_TRUE(torch::equal(loadTensor(*archive, "w"), torch::tensor({1.25f, -3.5f})));
}

TEST(TensorIo, BoolBytesAreNormalised) {
    const std::string path = sdrpn::test::scratchDir() + "/bool.safetensors";
    std::vector<std::uint8_t> raw = {0, 1, 7};
    writeSafetensors(path, {{"b", DType::BOOL, {3}, raw.data()}});
    auto archive = SafetensorsArchive::open(path);
    torch::Tensor b = loadTensor(*archive, "b");
    EXPECT_EQ(b.sum().item<std::int64_t>(), 2);
    EXPECT_EQ(b.to(torch::kByte)[2].item<std::uint8_t>(), 1);
}

TEST(TensorIo, BF16BitsAreTheTopOfFloat32) {
    const std::string path = sdrpn::test::scratchDir() + "/bf16.safetensors";
    std::vector<std::uint16_t> bits = {0x3f80, 0xc040};  // 1.0, -3.0
    writeSafetensors(path, {{"x", DType::BF16, {2}, bits.data()}});
    auto archive = SafetensorsArchive::open(path);
    torch::Tensor x = loadTensor(*archive, "x").to(torch::kFloat);
    EXPECT_EQ(x[0].item<float>(), 1.0f);
    EXPECT_EQ(x[1].item<float>(), -3.0f);
}

TEST(TensorIo, ErrorsNameTheTensor) {
    const std::string path = sdrpn::test::scratchDir() + "/err.safetensors";
    try {
        saveTensors(path, {{"ok", torch::ones({1})}, {"cplx", torch::ones({1}, torch::kComplexFloat)}});
        FAIL() << "expected an error";
    } catch (const sdrpn::Error& e) {
        EXPECT_NE(std::string(e.what()).find("'cplx'"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
    try {
        saveTensors(path, {{"undef", torch::Tensor()}});
        FAIL() << "expected an error";
    } catch (const sdrpn::Error& e) {
        EXPECT_NE(std::string(e.what()).find("'undef'"), std::string::npos) << e.what();
    }
    saveTensors(path, {{"w", torch::ones({2})}});
    auto archive = SafetensorsArchive::open(path);
    try {
        loadTensor(*archive, "missing");
        FAIL() << "expected an error";
    } catch (const sdrpn::Error& e) {
        EXPECT_NE(std::string(e.what()).find("'missing'"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
}

TEST(TensorIo, LoadsTheTinyLlavaFixture) {
    auto archive = SafetensorsArchive::open(sdrpn::test::fixturePath("tiny-llava-hf"));
    for (const std::string& name : archive->names()) {
        torch::Tensor t = loadTensor(*archive, name);
        const TensorInfo& info = archive->info(name);
        EXPECT_EQ(t.scalar_type(), toTorchDType(info.dtype)) << name;
        EXPECT_EQ(t.numel(), info.numel()) << name;
        if (t.is_floating_point()) {
            EXPECT_TRUE(torch::isfinite(t).all().item<bool>()) << name;
        }
    }
}
