// CLIP preprocessing against the fixture's reference pixel values (tests/data/fixtures/tiny-llava-hf,
// computed by transformers 5's default fast CLIP processor). ClipArithmetic::TorchvisionFast must match
// them bit for bit; ClipArithmetic::Pillow (transformers 4.x, PIL) may differ by one uint8 step in a few
// resized pixels, i.e. 1 / (255 · std) <= 0.01501 after normalisation.
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "core/io/image.h"
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/clip_image_processor.h"
#include "core/result.h"
#include "tests/support/test_support.h"

namespace {

using namespace sdrpn;
using namespace sdrpn::models;

struct Case {
    const char* image;
    const char* reference;
    ImageFit fit;
    int width, height;
};

const Case kCases[] = {
    {"image_336.png", "pixel_values.336", ImageFit::Crop, 336, 336},
    {"image_336.png", "pixel_values.336_pad", ImageFit::Pad, 336, 336},
    {"image_640x480.png", "pixel_values.640x480", ImageFit::Crop, 640, 480},
    {"image_640x480.png", "pixel_values.640x480_pad", ImageFit::Pad, 640, 480},
};

// One uint8 step after normalisation, for the channel with the smallest std.
const double kOneStep = 1.0 / (255.0 * 0.26130258) + 1e-6;

std::shared_ptr<const io::SafetensorsArchive> referenceArchive() {
    return io::SafetensorsArchive::open(test::fixturePath("tiny-llava-hf/reference.safetensors"));
}

io::ImageRgb8 fixtureImage(const std::string& name) {
    return io::loadImage(test::fixturePath("tiny-llava-hf/" + name));
}

PreprocessedImage run(const Case& c, ClipArithmetic arithmetic) {
    ClipPreprocessConfig cfg;
    cfg.fit = c.fit;
    cfg.arithmetic = arithmetic;
    return ClipImageProcessor(cfg).process(fixtureImage(c.image));
}

TEST(ClipPreprocess, TorchvisionFastMatchesReferenceExactly) {
    const auto archive = referenceArchive();
    for (const auto& c : kCases) {
        const auto out = run(c, ClipArithmetic::TorchvisionFast);
        const torch::Tensor ref = io::loadTensor(*archive, c.reference);
        ASSERT_EQ(out.pixelValues.sizes(), ref.sizes()) << c.reference;
        EXPECT_EQ(out.pixelValues.dtype(), torch::kFloat32);
        EXPECT_TRUE(out.pixelValues.is_contiguous());
        EXPECT_TRUE(torch::equal(out.pixelValues, ref))
            << c.reference << ": max |diff| " << (out.pixelValues - ref).abs().max().item<float>();
    }
}

TEST(ClipPreprocess, PillowIsWithinOneStep) {
    // Measured: 336 inputs (no resize) differ only by float rounding (max 2.4e-7); 640x480 by one uint8
    // step in 257 of 338688 values (crop) and 158 (pad).
    const auto archive = referenceArchive();
    for (const auto& c : kCases) {
        const auto out = run(c, ClipArithmetic::Pillow);
        const torch::Tensor ref = io::loadTensor(*archive, c.reference);
        const bool resized = c.width != 336 || c.height != 336;
        EXPECT_TENSOR_NEAR(out.pixelValues, ref, resized ? kOneStep : 1e-6);
        const auto offByAStep = ((out.pixelValues - ref).abs() > 1e-3).sum().item<std::int64_t>();
        EXPECT_LE(offByAStep, resized ? 400 : 0) << c.reference;
    }
}

TEST(ClipPreprocess, GeometryComesWithThePixels) {
    for (const auto& c : kCases) {
        const auto out = run(c, ClipArithmetic::Pillow);
        EXPECT_EQ(out.geometry.fit, c.fit);
        EXPECT_EQ(out.geometry.sourceWidth, c.width);
        EXPECT_EQ(out.geometry.sourceHeight, c.height);
        EXPECT_EQ(out.geometry.gridRows, 24);
        EXPECT_EQ(out.geometry.processedWidth, 336);
    }
}

TEST(ClipPreprocess, PadBandHoldsTheMeanColour) {
    // 640x480 padded: processed rows 0..41 and 294..335 are band (GridGeometry::contentProcessedRect); away
    // from the content edge they are exactly the pad colour.
    ClipImageProcessor processor;  // defaults: pad, Pillow
    const auto image = fixtureImage("image_640x480.png");
    const io::ImageRgb8 prepared = processor.prepare(image);
    ASSERT_EQ(prepared.width, 336);
    ASSERT_EQ(prepared.height, 336);
    const RectF content = processor.geometry(image.width, image.height).contentProcessedRect();
    EXPECT_DOUBLE_EQ(content.y0, 42.0);
    EXPECT_DOUBLE_EQ(content.y1, 294.0);
    for (int y : {0, 20, 38, 298, 335}) {
        for (int x : {0, 100, 335}) {
            const std::uint8_t* p = prepared.at(x, y);
            EXPECT_EQ(p[0], 122);
            EXPECT_EQ(p[1], 116);
            EXPECT_EQ(p[2], 104);
        }
    }
    // Normalised, the band is (122/255 - mean) / std: small, not zero.
    const torch::Tensor pv = processor.normalize(prepared);
    EXPECT_NEAR(pv[0][0][0].item<float>(), (122 / 255.0 - 0.48145466) / 0.26862954, 1e-6);
}

TEST(ClipPreprocess, ReadsPreprocessorConfig) {
    const auto cfg = readClipPreprocessConfig(test::fixturePath("tiny-llava-hf"));
    EXPECT_EQ(cfg.fit, ImageFit::Crop);  // llava-hf: no do_pad
    EXPECT_EQ(cfg.size, 336);
    EXPECT_EQ(cfg.resample, PilFilter::Bicubic);
    EXPECT_FLOAT_EQ(cfg.mean[0], 0.48145466f);
    EXPECT_FLOAT_EQ(cfg.stdDev[2], 0.27577711f);
    EXPECT_DOUBLE_EQ(cfg.rescaleFactor, 0.00392156862745098);
    EXPECT_EQ(cfg.padColour, (std::array<std::uint8_t, 3>{122, 116, 104}));

    const std::string dir = test::scratchDir("preproc");
    std::ofstream(dir + "/preprocessor_config.json") << R"({"size": {"shortest_edge": 224}, "do_pad": true,
        "resample": 2, "crop_size": {"height": 224, "width": 224}})";
    const auto padded = readClipPreprocessConfig(dir);
    EXPECT_EQ(padded.fit, ImageFit::Pad);
    EXPECT_EQ(padded.size, 224);
    EXPECT_EQ(padded.resample, PilFilter::Bilinear);
    std::ofstream(dir + "/preprocessor_config.json") << R"({"resample": 1})";
    try {
        readClipPreprocessConfig(dir);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("preprocessor_config.json"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("resample"), std::string::npos) << e.what();
    }
    EXPECT_THROW(readClipPreprocessConfig(dir + "/missing"), Error);
}

// Absurd values are refused before anything is converted or allocated, naming the file and the key.
TEST(ClipPreprocess, AbsurdPreprocessorConfigsAreRefusedNamingTheKey) {
    const std::string dir = test::scratchDir("absurd");
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"size": 1e300})", "size"},
        {R"({"size": -3})", "size"},
        {R"({"size": {"shortest_edge": 100000}})", "size.shortest_edge"},
        {R"({"size": {"height": 18446744073709551615}})", "size.height"},
        {R"({"crop_size": {"height": 1e300}})", "crop_size.height"},
        {R"({"image_mean": [1e10, 0.5, 0.5]})", "image_mean"},
        {R"({"image_mean": [0.5, 0.5]})", "image_mean"},
        {R"({"image_std": [0.2, 0, 0.3]})", "image_std"},
        {R"({"image_std": [0.2, "x", 0.3]})", "image_std"},
        {R"({"rescale_factor": -1})", "rescale_factor"},
        {R"({"patch_size": 0})", "patch_size"},
        {R"({"patch_size": 10000})", "patch_size"},
        {R"({"resample": 1e300})", "resample"},
        {R"([1, 2])", "JSON object"},
    };
    for (const auto& [text, key] : cases) {
        std::ofstream(dir + "/preprocessor_config.json") << text;
        try {
            readClipPreprocessConfig(dir);
            ADD_FAILURE() << text << ": no error";
        } catch (const Error& e) {
            const std::string m = e.what();
            EXPECT_NE(m.find("preprocessor_config.json"), std::string::npos) << text << ": " << m;
            EXPECT_NE(m.find(key), std::string::npos) << text << ": " << m;
        }
    }
}

TEST(ClipPreprocess, ResizeBasics) {
    io::ImageRgb8 flat;
    flat.width = 37;
    flat.height = 23;
    flat.pixels.assign(37 * 23 * 3, 0);
    for (std::size_t i = 0; i < flat.pixels.size(); i += 3) {
        flat.pixels[i] = 200;
        flat.pixels[i + 1] = 7;
        flat.pixels[i + 2] = 255;
    }
    for (const auto filter : {PilFilter::Bilinear, PilFilter::Bicubic}) {
        for (const auto arithmetic : {ClipArithmetic::Pillow, ClipArithmetic::TorchvisionFast}) {
            for (const auto& [w, h] : {std::pair{336, 336}, std::pair{10, 50}, std::pair{37, 5}}) {
                const auto out = resizeImage(flat, w, h, filter, arithmetic);
                ASSERT_EQ(out.width, w);
                ASSERT_EQ(out.height, h);
                for (std::size_t i = 0; i < out.pixels.size(); i += 3) {
                    // Weights sum to one: a flat image stays flat (overshoot is clipped).
                    ASSERT_EQ(out.pixels[i], 200);
                    ASSERT_EQ(out.pixels[i + 1], 7);
                    ASSERT_EQ(out.pixels[i + 2], 255);
                }
            }
        }
    }
    EXPECT_EQ(resizePil(flat, 37, 23, PilFilter::Bicubic).pixels, flat.pixels);
    EXPECT_THROW(resizePil(flat, 0, 5, PilFilter::Bicubic), Error);
    EXPECT_THROW(resizePil(io::ImageRgb8{}, 5, 5, PilFilter::Bicubic), Error);
}

TEST(ClipPreprocess, ExpandAndCrop) {
    io::ImageRgb8 img;
    img.width = 4;
    img.height = 2;
    img.pixels.assign(4 * 2 * 3, 9);
    const auto square = expandToSquare(img, {1, 2, 3});
    ASSERT_EQ(square.width, 4);
    ASSERT_EQ(square.height, 4);
    EXPECT_EQ(square.at(0, 0)[0], 1);  // row 0 is background, the image sits at rows 1..2
    EXPECT_EQ(square.at(0, 1)[0], 9);
    EXPECT_EQ(square.at(3, 2)[2], 9);
    EXPECT_EQ(square.at(3, 3)[2], 3);

    const auto crop = cropImage(img, {2, 1, 6, 3});  // partly outside: PIL fills with black
    ASSERT_EQ(crop.width, 4);
    ASSERT_EQ(crop.height, 2);
    EXPECT_EQ(crop.at(0, 0)[0], 9);
    EXPECT_EQ(crop.at(1, 0)[0], 9);
    EXPECT_EQ(crop.at(2, 0)[0], 0);
    EXPECT_EQ(crop.at(0, 1)[0], 0);
    EXPECT_THROW(cropImage(img, {2, 2, 2, 3}), Error);
}

TEST(ClipPreprocess, RoiCropPipeline) {
    // SD-RPN's RoI path (sdrpn.md §4.2): grid box -> source pixels -> crop -> bilinear 336 -> pad (no-op).
    const auto image = fixtureImage("image_640x480.png");
    ClipImageProcessor processor;
    const GridGeometry g = processor.geometry(image.width, image.height);
    const PixelBox box = g.gridBoxToSourcePixels({5, 5, 10, 8});
    const auto crop = resizePil(cropImage(image, box), 336, 336, PilFilter::Bilinear);
    const auto out = processor.process(crop);
    EXPECT_EQ(out.pixelValues.sizes(), (std::vector<std::int64_t>{3, 336, 336}));
    EXPECT_EQ(out.geometry.sourceWidth, 336);
}

}  // namespace
