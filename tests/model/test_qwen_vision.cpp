// Qwen2.5-VL vision encoder (mllm_reference.md §9 "Vision encoder forward") against the fixture
// tests/data/fixtures/tiny-qwen2_5-vl (transformers 5.17, fp32 from fp16 weights, eager attention):
// `pixel_values` [1564, 1176] with grid (1, 34, 46) -> `vision.out` [391, 64], the merger output in
// merged-grid row-major order. The grid has 17 x 23 merge units, so window attention sees 5 x 6 windows of
// which the last row and column are cut by the border (the padded path); blocks 1 and 3 attend over the
// whole image.
//
// Tolerance: the fixtures README promises 1e-4 absolute in fp32; measured max |diff| 2.98e-8 (CPU, fp32).
// Window partitions are checked against values worked out by hand from HF get_window_index.
#include <array>
#include <iostream>
#include <string>
#include <vector>

#include "core/io/config.h"
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/jobs.h"
#include "core/models/qwen_vision.h"
#include "core/result.h"
#include "tests/support/test_support.h"

namespace {

using namespace sdrpn;
using namespace sdrpn::models;

const double kParityTolerance = 1e-4;

std::string fixture(const std::string& name) {
    return test::fixturePath("tiny-qwen2_5-vl/" + name);
}

io::QwenVisionConfig visionConfig() {
    return io::readQwenVlConfig(fixture("")).vision;
}

torch::Tensor reference(const std::string& name) {
    static const auto archive = io::SafetensorsArchive::open(fixture("reference.safetensors"));
    return io::loadTensor(*archive, name);
}

WeightMap loadVisionWeights(const io::QwenVisionConfig& cfg, torch::Device device, torch::ScalarType dtype) {
    WeightSource source;
    source.addArchive(io::SafetensorsArchive::open(fixture("model.safetensors")),
                      [](const std::string& key) { return key.rfind("visual.", 0) == 0 ? key : ""; });
    const auto specs = qwenVisionWeightSpecs(cfg, "visual.");
    checkWeights(source, specs, "tiny-qwen2_5-vl vision");
    return loadWeights(source, specs, device, dtype, JobContext::none(), "tiny-qwen2_5-vl vision");
}

const WeightMap& fp32Weights() {
    static const WeightMap w = loadVisionWeights(visionConfig(), torch::kCPU, torch::kFloat);
    return w;
}

// The tower loaded once (fp32, CPU) for every test of the suite.
const QwenVisionTower& tower() {
    static const QwenVisionTower loaded(fp32Weights(), "visual.", visionConfig());
    return loaded;
}

std::array<std::int64_t, 3> fixtureGrid() {
    return {1, 34, 46};
}

template <typename F>
std::string thrownMessage(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

// ------------------------------------------------------------------------------------- window partition

TEST(QwenWindowIndex, BorderWindowsArePaddedAndSkipped) {
    // Grid 12 x 20 patches -> 6 x 10 merge units; window side 112 / 2 / 14 = 4 units; pad_h = 4 - 6 % 4 = 2,
    // pad_w = 4 - 10 % 4 = 2 -> 2 x 3 windows:
    //   (0,0) rows 0-3, cols 0-3: 16 units     (0,1) rows 0-3, cols 4-7: 16     (0,2) rows 0-3, cols 8-9: 8
    //   (1,0) rows 4-5, cols 0-3:  8           (1,1) rows 4-5, cols 4-7:  8     (1,2) rows 4-5, cols 8-9: 4
    // unit id = row * 10 + col; cu_seqlens count patches (4 per unit).
    const QwenWindows w = qwenWindowIndex(12, 20, visionConfig());
    const std::vector<std::int64_t> order{
        0,  1,  2,  3,  10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33,  // (0,0)
        4,  5,  6,  7,  14, 15, 16, 17, 24, 25, 26, 27, 34, 35, 36, 37,  // (0,1)
        8,  9,  18, 19, 28, 29, 38, 39,                                  // (0,2)
        40, 41, 42, 43, 50, 51, 52, 53,                                  // (1,0)
        44, 45, 46, 47, 54, 55, 56, 57,                                  // (1,1)
        48, 49, 58, 59};                                                 // (1,2)
    EXPECT_EQ(w.unitOrder, order);
    EXPECT_EQ(w.cuSeqlens, (std::vector<std::int64_t>{0, 64, 128, 160, 192, 224, 240}));
}

TEST(QwenWindowIndex, EmptyPaddingWindowsAreDropped) {
    // 8 x 8 patches -> 4 x 4 units: HF pads by a whole window (pad = 4 - 4 % 4 = 4), giving 2 x 2 windows of
    // which three are empty; unique_consecutive leaves [0, 64].
    const QwenWindows w = qwenWindowIndex(8, 8, visionConfig());
    std::vector<std::int64_t> order(16);
    for (std::int64_t i = 0; i < 16; ++i) order[std::size_t(i)] = i;
    EXPECT_EQ(w.unitOrder, order);
    EXPECT_EQ(w.cuSeqlens, (std::vector<std::int64_t>{0, 64}));
}

TEST(QwenWindowIndex, SmallImageIsOneWindow) {
    // 4 x 6 patches -> 2 x 3 units, one window in row-major order.
    const QwenWindows w = qwenWindowIndex(4, 6, visionConfig());
    EXPECT_EQ(w.unitOrder, (std::vector<std::int64_t>{0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(w.cuSeqlens, (std::vector<std::int64_t>{0, 24}));
}

TEST(QwenWindowIndex, FixtureGrid) {
    // 34 x 46 patches -> 17 x 23 units -> 5 x 6 windows; the last window row holds 1 unit row, the last
    // window column 3 unit columns. Window (0,0) starts with units 0..3, then 23..26.
    const QwenWindows w = qwenWindowIndex(34, 46, visionConfig());
    ASSERT_EQ(w.unitOrder.size(), 391u);
    EXPECT_EQ(std::vector<std::int64_t>(w.unitOrder.begin(), w.unitOrder.begin() + 6),
              (std::vector<std::int64_t>{0, 1, 2, 3, 23, 24}));
    ASSERT_EQ(w.cuSeqlens.size(), 31u);
    EXPECT_EQ(w.cuSeqlens[1], 64);                     // full window: 16 units
    EXPECT_EQ(w.cuSeqlens[6] - w.cuSeqlens[5], 48);    // (0,5): 4 rows x 3 cols
    EXPECT_EQ(w.cuSeqlens[30] - w.cuSeqlens[29], 12);  // (4,5): 1 row x 3 cols
    EXPECT_EQ(w.cuSeqlens.back(), 1564);
}

TEST(QwenWindowIndex, RejectsGridNotMultipleOfMerge) {
    const auto message = thrownMessage([] { qwenWindowIndex(5, 8, visionConfig()); });
    EXPECT_NE(message.find("5x8"), std::string::npos) << message;
    EXPECT_THROW(qwenWindowIndex(0, 8, visionConfig()), Error);
}

// ------------------------------------------------------------------------------------- weights, config

TEST(QwenVisionWeights, SpecsNameEveryTensorWithShapes) {
    const auto cfg = visionConfig();
    const auto specs = qwenVisionWeightSpecs(cfg, "visual");  // trailing '.' added
    // patch embed + 12 per block + merger (ln_q + 2 x (weight, bias)).
    ASSERT_EQ(specs.size(), 1u + 12u * std::size_t(cfg.depth) + 5u);
    EXPECT_EQ(specs.front().name, "visual.patch_embed.proj.weight");
    EXPECT_EQ(specs.front().shape, (std::vector<std::int64_t>{32, 3, 2, 14, 14}));
    EXPECT_EQ(specs[1].name, "visual.blocks.0.norm1.weight");
    EXPECT_EQ(specs[3].name, "visual.blocks.0.attn.qkv.weight");
    EXPECT_EQ(specs[3].shape, (std::vector<std::int64_t>{96, 32}));
    EXPECT_EQ(specs[specs.size() - 4].name, "visual.merger.mlp.0.weight");
    EXPECT_EQ(specs[specs.size() - 4].shape, (std::vector<std::int64_t>{128, 128}));
    EXPECT_EQ(specs.back().name, "visual.merger.mlp.2.bias");
    EXPECT_EQ(specs.back().shape, (std::vector<std::int64_t>{64}));
}

TEST(QwenVisionWeights, BadConfigNamesTheField) {
    auto cfg = visionConfig();
    cfg.fullattBlockIndexes = {1, 9};
    const auto message = thrownMessage([&] { qwenVisionWeightSpecs(cfg, "visual."); });
    EXPECT_NE(message.find("fullatt_block_indexes entry 9"), std::string::npos) << message;
    cfg = visionConfig();
    cfg.numHeads = 3;
    EXPECT_THROW(qwenVisionWeightSpecs(cfg, "visual."), Error);
}

// ------------------------------------------------------------------------------------- forward

TEST(QwenVisionTower, MatchesReferenceMergerOutput) {
    const auto pixels = reference("pixel_values");
    ASSERT_EQ(pixels.sizes(), torch::IntArrayRef({1564, 1176}));
    const auto grid = reference("image_grid_thw").to(torch::kLong).view({-1});
    ASSERT_EQ(grid.size(0), 3);
    const std::array<std::int64_t, 3> thw{grid[0].item<std::int64_t>(), grid[1].item<std::int64_t>(),
                                          grid[2].item<std::int64_t>()};
    EXPECT_EQ(thw, fixtureGrid());
    torch::NoGradGuard noGrad;
    const auto out = tower()->forward(pixels, thw);
    const auto expected = reference("vision.out");
    ASSERT_EQ(out.sizes(), torch::IntArrayRef({391, 64}));
    std::cout << "[ vision.out max |diff| " << (out - expected).abs().max().item<double>() << " ]\n";
    EXPECT_TENSOR_NEAR(out, expected, kParityTolerance);
}

TEST(QwenVisionTower, FramesAreIndependent) {
    // The first 2 merge-block rows (2 * 23 units * 4 = 184 rows) are the top 4 x 46 patches of the image, a
    // valid image on their own. Two identical frames (t = 2) must give the one-frame output twice: windows
    // and full attention both stay within a frame.
    torch::NoGradGuard noGrad;
    const auto top = reference("pixel_values").narrow(0, 0, 184);
    const auto one = tower()->forward(top, {1, 4, 46});
    ASSERT_EQ(one.sizes(), torch::IntArrayRef({46, 64}));
    const auto two = tower()->forward(torch::cat({top, top}, 0), {2, 4, 46});
    ASSERT_EQ(two.sizes(), torch::IntArrayRef({92, 64}));
    EXPECT_TENSOR_NEAR(two.narrow(0, 0, 46), one, 1e-5);
    EXPECT_TENSOR_NEAR(two.narrow(0, 46, 46), one, 1e-5);
}

TEST(QwenVisionTower, RejectsWrongRowCount) {
    const auto pixels = torch::zeros({1000, 1176});
    const auto message = thrownMessage([&] { tower()->forward(pixels, {1, 34, 46}); });
    EXPECT_NE(message.find("1000 patch rows"), std::string::npos) << message;
    EXPECT_NE(message.find("expected 1564"), std::string::npos) << message;
}

TEST(QwenVisionTower, RejectsWrongWidth) {
    const auto pixels = torch::zeros({1564, 588});
    const auto message = thrownMessage([&] { tower()->forward(pixels, {1, 34, 46}); });
    EXPECT_NE(message.find("[N, 1176]"), std::string::npos) << message;
    EXPECT_NE(message.find("588"), std::string::npos) << message;
}

TEST(QwenVisionTower, RejectsOddGrid) {
    const auto pixels = torch::zeros({35 * 46, 1176});
    const auto message = thrownMessage([&] { tower()->forward(pixels, {1, 35, 46}); });
    EXPECT_NE(message.find("spatial_merge_size 2"), std::string::npos) << message;
}

TEST(QwenVisionTower, WindowAttentionMatters) {
    // The fixture tells window attention from full attention: the same weights with every block attending
    // over the whole image (or none) miss the reference by far more than the tolerance (measured: 3.1e-3 and
    // 2.3e-3 max |diff|, the outputs span +-0.086).
    torch::NoGradGuard noGrad;
    const auto pixels = reference("pixel_values");
    const auto expected = reference("vision.out");
    for (const std::vector<int>& full : {std::vector<int>{0, 1, 2, 3}, std::vector<int>{}}) {
        auto cfg = visionConfig();
        cfg.fullattBlockIndexes = full;
        const QwenVisionTower variant(fp32Weights(), "visual.", cfg);
        const auto diff = (variant->forward(pixels, fixtureGrid()) - expected).abs().max().item<double>();
        EXPECT_GT(diff, 10 * kParityTolerance) << full.size() << " full-attention blocks";
    }
}

TEST(QwenVisionTower, Bf16CpuStaysClose) {
    // bf16 weights and activations (RoPE and softmax still fp32): within 5% of the output range (measured:
    // max |diff| 4.2e-4 for outputs up to 0.086).
    torch::NoGradGuard noGrad;
    const auto cfg = visionConfig();
    const QwenVisionTower bf16(loadVisionWeights(cfg, torch::kCPU, torch::kBFloat16), "visual.", cfg);
    const auto out = bf16->forward(reference("pixel_values"), fixtureGrid());
    ASSERT_EQ(out.scalar_type(), torch::kBFloat16);
    const auto expected = reference("vision.out");
    const auto diff = (out.to(torch::kFloat) - expected).abs().max().item<double>();
    std::cout << "[ bf16 CPU max |diff| " << diff << ", output range " << expected.abs().max().item<double>()
              << " ]\n";
    EXPECT_LT(diff, 0.05 * expected.abs().max().item<double>());
}

TEST(QwenVisionTower, CudaDtypesStayClose) {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available";
    const auto cfg = visionConfig();
    torch::NoGradGuard noGrad;
    const auto expected = reference("vision.out");
    for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
        const QwenVisionTower gpu(loadVisionWeights(cfg, torch::Device(torch::kCUDA), dtype), "visual.", cfg);
        const auto out = gpu->forward(reference("pixel_values"), fixtureGrid());
        ASSERT_EQ(out.scalar_type(), dtype);
        ASSERT_TRUE(out.is_cuda());
        const auto diff = (out.to(torch::kCPU, torch::kFloat) - expected).abs().max().item<double>();
        std::cout << "[ CUDA " << dtype << " max |diff| " << diff << " ]\n";
        const double tolerance = dtype == torch::kFloat ? 1e-3 : 0.05 * expected.abs().max().item<double>();
        EXPECT_LT(diff, tolerance) << dtype;
    }
}

}  // namespace
