// Qwen2.5-VL preprocessing (mllm_reference.md §9) against the fixture's reference tensors
// (tests/data/fixtures/tiny-qwen2_5-vl/reference.safetensors: `pixel_values` [1564, 1176] and
// `image_grid_thw` [1, 3], computed by transformers 5.17's default fast Qwen2VLImageProcessor from
// image_640x480.png), plus smart_resize cases worked out by hand from the formula.
//
// Tolerances: the grid is exact. ClipArithmetic::TorchvisionFast (what transformers 5 ran) must match the
// pixel values within 1e-6 (the fixtures README promises 1e-4 in fp32; measured: bit-exact, max |diff| 0).
// Pillow (transformers 4.x with PIL) differs by a few uint8 steps in a few resized pixels
// (mllm_reference.md §6 "Resampling fidelity"): one step is 1 / (255 · min std) <= 0.01501 after
// normalisation; measured: 82 of 1839264 values off (41 pixel channels, each in both frames), one of them by
// two steps (max |diff| 0.0300).
#include <cfenv>
#include <cmath>
#include <fstream>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "core/io/image.h"
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/qwen_image_processor.h"
#include "core/result.h"
#include "tests/support/test_support.h"

namespace {

using namespace sdrpn;
using namespace sdrpn::models;

const double kExactTolerance = 1e-6;
// Two uint8 steps after normalisation, for the channel with the smallest std.
const double kTwoSteps = 2.0 / (255.0 * 0.26130258) + 1e-6;

std::string fixture(const std::string& name) {
    return test::fixturePath("tiny-qwen2_5-vl/" + name);
}

std::shared_ptr<const io::SafetensorsArchive> referenceArchive() {
    return io::SafetensorsArchive::open(fixture("reference.safetensors"));
}

QwenPreprocessedImage run(ClipArithmetic arithmetic) {
    QwenPreprocessConfig cfg = readQwenPreprocessConfig(fixture(""));
    cfg.arithmetic = arithmetic;
    return QwenImageProcessor(cfg).process(io::loadImage(fixture("image_640x480.png")));
}

// ------------------------------------------------------------------------------------- smart_resize

TEST(QwenSmartResize, RoundsToNearestMultipleOf28) {
    // 480 / 28 = 17.14 -> 17 -> 476; 640 / 28 = 22.86 -> 23 -> 644 (fixtures README).
    EXPECT_EQ(smartResize(480, 640), std::make_pair(476, 644));
    // 1080 / 28 = 38.57 -> 39 -> 1092; 1920 / 28 = 68.57 -> 69 -> 1932.
    EXPECT_EQ(smartResize(1080, 1920), std::make_pair(1092, 1932));
    // Already multiples of 28: unchanged.
    EXPECT_EQ(smartResize(392, 392), std::make_pair(392, 392));
}

TEST(QwenSmartResize, TiesRoundHalfToEven) {
    // 70 / 28 = 2.5 -> 2 (std::round would give 3 -> 84); 98 / 28 = 3.5 -> 4 -> 112.
    EXPECT_EQ(smartResize(70, 98), std::make_pair(56, 112));
    // 42 / 28 = 1.5 -> 2 -> 56; 126 / 28 = 4.5 -> 4 -> 112.
    EXPECT_EQ(smartResize(42, 126), std::make_pair(56, 112));
    EXPECT_EQ(smartResize(98, 70), std::make_pair(112, 56));
}

TEST(QwenSmartResize, ClampsToMinPixels) {
    // 28×28 = 784 < 3136: β = sqrt(3136 / 784) = 2, ceil(28·2 / 28)·28 = 56.
    EXPECT_EQ(smartResize(28, 28), std::make_pair(56, 56));
    // 30×40 -> 28×28 = 784 < 3136: β = sqrt(3136 / 1200) = 1.6166; ceil(30β/28 = 1.73) = 2 -> 56,
    // ceil(40β/28 = 2.31) = 3 -> 84.
    EXPECT_EQ(smartResize(30, 40), std::make_pair(56, 84));
}

TEST(QwenSmartResize, ClampsToMaxPixels) {
    // 1000 -> 36·28 = 1008; 1008² > 200000: β = sqrt(1e6 / 2e5) = 2.236, floor(1000/β/28 = 15.97) = 15 ->
    // 420.
    EXPECT_EQ(smartResize(1000, 1000, 28, kQwenMinPixels, 200000), std::make_pair(420, 420));
    // The default max 12845056 = 3584²: 4000 -> 4004, 4004² is above it; β = 4000 / 3584 -> 3584.
    EXPECT_EQ(smartResize(4000, 4000), std::make_pair(3584, 3584));
    // The short side would floor to 0 (28/β/28 = 0.22 with β = sqrt(20)); it stays at one factor.
    // The long side: floor(5600/β/28 = 44.7) = 44 -> 1232.
    EXPECT_EQ(smartResize(28, 5600, 28, kQwenMinPixels, 7840), std::make_pair(28, 1232));
}

TEST(QwenSmartResize, RefusesExtremeAspectAndTinyImages) {
    EXPECT_EQ(smartResize(28, 5600), std::make_pair(28, 5600));  // ratio exactly 200 is allowed
    EXPECT_THROW(smartResize(28, 5628), Error);                  // 201
    EXPECT_THROW(smartResize(5628, 28), Error);
    EXPECT_THROW(smartResize(27, 100), Error);  // a side below the factor
    EXPECT_THROW(smartResize(100, 27), Error);
    EXPECT_THROW(smartResize(0, 100), Error);
    EXPECT_THROW(smartResize(100, 100, 0), Error);
    EXPECT_THROW(smartResize(100, 100, 28, 5000, 4000), Error);  // max below min
    try {
        smartResize(28, 5628);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("aspect ratio"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("5628"), std::string::npos) << e.what();
    }
}

TEST(QwenSmartResize, DoesNotDependOnTheCallersRoundingMode) {
    ASSERT_EQ(std::fesetround(FE_UPWARD), 0);
    const auto r = smartResize(70, 98);
    std::fesetround(FE_TONEAREST);
    EXPECT_EQ(r, std::make_pair(56, 112));
}

// ------------------------------------------------------------------------------------ configuration

TEST(QwenPreprocessConfigFile, ReadsTheFixtureConfig) {
    const QwenPreprocessConfig cfg = readQwenPreprocessConfig(fixture("preprocessor_config.json"));
    EXPECT_EQ(cfg.minPixels, 3136);
    EXPECT_EQ(cfg.maxPixels, 12845056);
    EXPECT_EQ(cfg.patchSize, 14);
    EXPECT_EQ(cfg.temporalPatchSize, 2);
    EXPECT_EQ(cfg.mergeSize, 2);
    EXPECT_EQ(cfg.factor(), 28);
    EXPECT_EQ(cfg.resample, PilFilter::Bicubic);
    EXPECT_FLOAT_EQ(cfg.mean[0], 0.48145466f);
    EXPECT_FLOAT_EQ(cfg.stdDev[2], 0.27577711f);
    EXPECT_THROW(readQwenPreprocessConfig(fixture("no_such_file.json")), Error);
}

TEST(QwenPreprocessConfigFile, AbsurdValuesAreRefusedNamingTheKey) {
    const std::string dir = test::scratchDir("absurd");
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"min_pixels": 1000000000000, "max_pixels": 1000000000000})", "min_pixels"},
        {R"({"max_pixels": 18446744073709551615})", "max_pixels"},
        {R"({"size": {"shortest_edge": 1e300}})", "size.shortest_edge"},
        {R"({"max_pixels": 0})", "max_pixels"},
        {R"({"merge_size": 1e300})", "merge_size"},
        {R"({"patch_size": 100000})", "patch_size"},
        {R"({"temporal_patch_size": -1})", "temporal_patch_size"},
        {R"({"image_std": [0, 0.2, 0.2]})", "image_std"},
        {R"({"image_mean": [0.5, -7, 0.5]})", "image_mean"},
        {R"({"rescale_factor": 1e300})", "rescale_factor"},
        {R"("text")", "JSON object"},
    };
    for (const auto& [text, key] : cases) {
        std::ofstream(dir + "/preprocessor_config.json") << text;
        try {
            readQwenPreprocessConfig(dir);
            ADD_FAILURE() << text << ": no error";
        } catch (const Error& e) {
            const std::string m = e.what();
            EXPECT_NE(m.find("preprocessor_config.json"), std::string::npos) << text << ": " << m;
            EXPECT_NE(m.find(key), std::string::npos) << text << ": " << m;
        }
    }
}

// ----------------------------------------------------------------------------- against the fixture

TEST(QwenImageProcessor, GridMatchesReferenceExactly) {
    const auto archive = referenceArchive();
    const torch::Tensor grid = io::loadTensor(*archive, "image_grid_thw");
    const auto out = run(ClipArithmetic::TorchvisionFast);
    EXPECT_TRUE(torch::equal(out.gridThwTensor(), grid.to(torch::kInt64))) << grid;
    EXPECT_EQ(out.gridThw, (std::array<std::int64_t, 3>{1, 34, 46}));
    EXPECT_EQ(out.resizedWidth, 644);
    EXPECT_EQ(out.resizedHeight, 476);
    EXPECT_EQ(out.numPatches(), 1564);
    EXPECT_EQ(out.numImageTokens, 391);  // 17 × 23
    EXPECT_EQ(out.geometry.gridRows, 17);
    EXPECT_EQ(out.geometry.gridCols, 23);
    EXPECT_EQ(out.geometry.numCells(), 391);
    // The merged grid covers the whole photo: the last cell ends at the image corner.
    const RectF last = out.geometry.cellToSource(16, 22);
    EXPECT_NEAR(last.x1, 640.0, 1e-9);
    EXPECT_NEAR(last.y1, 480.0, 1e-9);
    EXPECT_NEAR(last.x0, 640.0 - 28.0 * 640.0 / 644.0, 1e-9);
}

TEST(QwenImageProcessor, TorchvisionFastMatchesReferencePixelValues) {
    const auto archive = referenceArchive();
    const torch::Tensor ref = io::loadTensor(*archive, "pixel_values");
    const auto out = run(ClipArithmetic::TorchvisionFast);
    ASSERT_EQ(out.pixelValues.sizes(), ref.sizes());
    EXPECT_EQ(out.pixelValues.dtype(), torch::kFloat32);
    EXPECT_TRUE(out.pixelValues.is_contiguous());
    const double maxDiff = (out.pixelValues - ref).abs().max().item<double>();
    RecordProperty("max_abs_diff", std::to_string(maxDiff));
    std::cout << "[ info ] TorchvisionFast max |diff| vs reference: " << maxDiff << "\n";
    EXPECT_TENSOR_NEAR(out.pixelValues, ref, kExactTolerance);
}

TEST(QwenImageProcessor, PillowIsWithinTwoSteps) {
    const auto archive = referenceArchive();
    const torch::Tensor ref = io::loadTensor(*archive, "pixel_values");
    const auto out = run(ClipArithmetic::Pillow);
    ASSERT_EQ(out.pixelValues.sizes(), ref.sizes());
    const double maxDiff = (out.pixelValues - ref).abs().max().item<double>();
    const auto offByAStep = ((out.pixelValues - ref).abs() > 1e-3).sum().item<std::int64_t>();
    std::cout << "[ info ] Pillow max |diff| vs reference: " << maxDiff << ", " << offByAStep << " of "
              << ref.numel() << " values off by a step\n";
    EXPECT_TENSOR_NEAR(out.pixelValues, ref, kTwoSteps);
    EXPECT_LE(offByAStep, 200);
}

TEST(QwenImageProcessor, RowsAreMergeBlockMajorAndFramesRepeat) {
    const QwenImageProcessor processor;
    const io::ImageRgb8 prepared = processor.prepare(io::loadImage(fixture("image_640x480.png")));
    const torch::Tensor chw = processor.normalize(prepared);   // [3, 476, 644]
    const torch::Tensor rows = processor.flattenPatches(chw);  // [1564, 1176]
    ASSERT_EQ(rows.sizes(), (std::vector<std::int64_t>{1564, 1176}));
    const std::int64_t gw = 46;
    // Row index of patch (r, c): block (r/2, c/2) row-major over 23 blocks per row, then (r%2, c%2).
    const std::vector<std::pair<std::int64_t, std::int64_t>> patches = {{0, 0}, {0, 1}, {1, 0},   {1, 1},
                                                                        {0, 2}, {5, 7}, {33, 45}, {20, 13}};
    for (const auto& [r, c] : patches) {
        const std::int64_t row = ((r / 2) * (gw / 2) + c / 2) * 4 + (r % 2) * 2 + (c % 2);
        const torch::Tensor patch =
            chw.slice(1, r * 14, r * 14 + 14).slice(2, c * 14, c * 14 + 14);  // [3,14,14]
        const torch::Tensor got = rows[row].view({3, 2, 14, 14});             // (C, T, py, px)
        EXPECT_TRUE(torch::equal(got.select(1, 0), patch)) << "patch (" << r << ", " << c << ")";
        EXPECT_TRUE(torch::equal(got.select(1, 1), patch)) << "patch (" << r << ", " << c << ")";
    }
}

TEST(QwenImageProcessor, RefusesBadInput) {
    const QwenImageProcessor processor;
    EXPECT_THROW(processor.process(io::ImageRgb8{}), Error);
    io::ImageRgb8 tiny;
    tiny.width = 20;
    tiny.height = 40;
    tiny.pixels.assign(20 * 40 * 3, 128);
    EXPECT_THROW(processor.process(tiny), Error);  // a side below 28
    EXPECT_THROW(processor.flattenPatches(torch::zeros({3, 30, 56})), Error);
    QwenPreprocessConfig bad;
    bad.mergeSize = 0;
    EXPECT_THROW(QwenImageProcessor{bad}, Error);
}

}  // namespace
