// Image loading at the core's edge: RGB order, grey / 16-bit / alpha inputs, EXIF orientation (file and
// memory), size limits, and bad files refused with a message naming the file.
#include "core/io/image.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "core/result.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;
using namespace sdrpn::io;

namespace {

std::string errorOf(const std::function<void()>& f) {
    try {
        f();
    } catch (const sdrpn::Error& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("unexpected exception type: ") + e.what();
    }
    return "no error";
}

void writeBytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::uint8_t> readBytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// An APP1 "Exif" segment holding only IFD0 with the Orientation tag (0x0112), little-endian TIFF.
std::vector<std::uint8_t> exifOrientationSegment(std::uint16_t orientation) {
    return {0xFF,
            0xE1,
            0x00,
            34,  // APP1, length 34
            'E',
            'x',
            'i',
            'f',
            0,
            0,  // Exif identifier
            'I',
            'I',
            0x2A,
            0x00,
            8,
            0,
            0,
            0,  // TIFF header, IFD0 at 8
            1,
            0,  // one entry
            0x12,
            0x01,
            3,
            0,
            1,
            0,
            0,
            0,  // Orientation, SHORT, count 1
            static_cast<std::uint8_t>(orientation),
            0,
            0,
            0,
            0,
            0,
            0,
            0};  // value, next IFD = 0
}

// 48 wide × 32 high JPEG: a red 16×16 block at the top-left corner, blue elsewhere, EXIF spliced in.
std::vector<std::uint8_t> orientedJpeg(std::uint16_t orientation) {
    cv::Mat bgr(32, 48, CV_8UC3, cv::Scalar(255, 0, 0));
    bgr(cv::Rect(0, 0, 16, 16)).setTo(cv::Scalar(0, 0, 255));
    std::vector<std::uint8_t> jpeg;
    EXPECT_TRUE(cv::imencode(".jpg", bgr, jpeg, {cv::IMWRITE_JPEG_QUALITY, 95}));
    const auto app1 = exifOrientationSegment(orientation);
    jpeg.insert(jpeg.begin() + 2, app1.begin(), app1.end());  // right after SOI
    return jpeg;
}

bool isRed(const std::uint8_t* p) {
    return p[0] > 200 && p[1] < 60 && p[2] < 60;
}
bool isBlue(const std::uint8_t* p) {
    return p[0] < 60 && p[1] < 60 && p[2] > 200;
}

}  // namespace

TEST(Image, PngRoundTripKeepsRgbOrder) {
    const std::string path = sdrpn::test::scratchDir() + "/rgb.png";
    ImageRgb8 img;
    img.width = 5;
    img.height = 3;
    img.pixels.resize(5 * 3 * 3);
    for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 5; ++x) {
            std::uint8_t* p = img.at(x, y);
            p[0] = static_cast<std::uint8_t>(10 + x);
            p[1] = static_cast<std::uint8_t>(100 + y);
            p[2] = 200;
        }
    saveImage(img, path);
    ImageRgb8 back = loadImage(path);
    EXPECT_EQ(back.width, 5);
    EXPECT_EQ(back.height, 3);
    EXPECT_EQ(back.pixels, img.pixels);
}

TEST(Image, OpenCvBgrBecomesRgb) {
    const std::string path = sdrpn::test::scratchDir() + "/bgr.png";
    cv::Mat bgr(2, 3, CV_8UC3, cv::Scalar(30, 20, 10));  // B=30, G=20, R=10
    ASSERT_TRUE(cv::imwrite(path, bgr));
    ImageRgb8 img = loadImage(path);
    ASSERT_EQ(img.width, 3);
    ASSERT_EQ(img.height, 2);
    EXPECT_EQ(img.at(2, 1)[0], 10);
    EXPECT_EQ(img.at(2, 1)[1], 20);
    EXPECT_EQ(img.at(2, 1)[2], 30);
}

TEST(Image, GreySixteenBitAndAlphaBecomeRgb8) {
    const std::string dir = sdrpn::test::scratchDir();
    cv::Mat grey(4, 6, CV_8UC1, cv::Scalar(77));
    ASSERT_TRUE(cv::imwrite(dir + "/grey.png", grey));
    ImageRgb8 g = loadImage(dir + "/grey.png");
    ASSERT_EQ(g.pixels.size(), 6u * 4u * 3u);
    EXPECT_EQ(g.at(5, 3)[0], 77);
    EXPECT_EQ(g.at(5, 3)[1], 77);
    EXPECT_EQ(g.at(5, 3)[2], 77);

    cv::Mat deep(4, 6, CV_16UC3, cv::Scalar(0, 0, 65535));  // 16-bit red
    ASSERT_TRUE(cv::imwrite(dir + "/deep.png", deep));
    ImageRgb8 d = loadImage(dir + "/deep.png");
    EXPECT_EQ(d.width, 6);
    EXPECT_EQ(d.at(0, 0)[0], 255);
    EXPECT_EQ(d.at(0, 0)[2], 0);

    cv::Mat deepGrey(3, 3, CV_16UC1, cv::Scalar(65535));
    ASSERT_TRUE(cv::imwrite(dir + "/deepgrey.png", deepGrey));
    ImageRgb8 dg = loadImage(dir + "/deepgrey.png");
    EXPECT_EQ(dg.at(1, 1)[1], 255);

    cv::Mat alpha(5, 5, CV_8UC4, cv::Scalar(255, 0, 0, 128));  // blue, half transparent
    ASSERT_TRUE(cv::imwrite(dir + "/alpha.png", alpha));
    ImageRgb8 a = loadImage(dir + "/alpha.png");
    ASSERT_EQ(a.pixels.size(), 5u * 5u * 3u);
    EXPECT_EQ(a.at(2, 2)[0], 0);
    EXPECT_EQ(a.at(2, 2)[2], 255);
}

TEST(Image, ExifOrientation6ComesOutUpright) {
    const std::string path = sdrpn::test::scratchDir() + "/rot6.jpg";
    writeBytes(path, orientedJpeg(6));
    // Orientation 6: the camera was turned 90° clockwise; the top-left corner lands at the top-right.
    for (const ImageRgb8& img : {loadImage(path), decodeImage(readBytes(path), "rot6.jpg")}) {
        ASSERT_EQ(img.width, 32);
        ASSERT_EQ(img.height, 48);
        EXPECT_TRUE(isRed(img.at(img.width - 4, 4)));
        EXPECT_TRUE(isBlue(img.at(4, 4)));
        EXPECT_TRUE(isBlue(img.at(4, img.height - 4)));
    }
}

TEST(Image, ExifOrientation8ComesOutUpright) {
    const std::vector<std::uint8_t> bytes = orientedJpeg(8);
    // Orientation 8: turned 90° counter-clockwise; the top-left corner lands at the bottom-left.
    ImageRgb8 img = decodeImage(bytes, "rot8.jpg");
    ASSERT_EQ(img.width, 32);
    ASSERT_EQ(img.height, 48);
    EXPECT_TRUE(isRed(img.at(4, img.height - 4)));
    EXPECT_TRUE(isBlue(img.at(4, 4)));
    EXPECT_TRUE(isBlue(img.at(img.width - 4, 4)));
}

TEST(Image, NoExifKeepsTheLayout) {
    ImageRgb8 img = decodeImage(orientedJpeg(1), "plain.jpg");
    ASSERT_EQ(img.width, 48);
    ASSERT_EQ(img.height, 32);
    EXPECT_TRUE(isRed(img.at(4, 4)));
}

TEST(Image, FixtureImages) {
    ImageRgb8 img = loadImage(sdrpn::test::fixturePath("tiny-llava-hf/image_640x480.png"));
    EXPECT_EQ(img.width, 640);
    EXPECT_EQ(img.height, 480);
    EXPECT_EQ(img.pixels.size(), 640u * 480u * 3u);
}

TEST(Image, MissingEmptyAndFolderPaths) {
    const std::string dir = sdrpn::test::scratchDir();
    std::string msg = errorOf([&] { loadImage(dir + "/nope.png"); });
    EXPECT_NE(msg.find(dir + "/nope.png"), std::string::npos) << msg;
    EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;

    writeBytes(dir + "/empty.jpg", {});
    msg = errorOf([&] { loadImage(dir + "/empty.jpg"); });
    EXPECT_NE(msg.find(dir + "/empty.jpg"), std::string::npos) << msg;
    EXPECT_NE(msg.find("empty"), std::string::npos) << msg;

    msg = errorOf([&] { loadImage(dir); });
    EXPECT_NE(msg.find("folder"), std::string::npos) << msg;

    msg = errorOf([&] { decodeImage({}, "clipboard"); });
    EXPECT_NE(msg.find("clipboard"), std::string::npos) << msg;
}

TEST(Image, CorruptAndNonImageBytes) {
    const std::string dir = sdrpn::test::scratchDir();
    const std::string text = "this is a text file, not a picture\n";
    writeBytes(dir + "/notes.png", std::vector<std::uint8_t>(text.begin(), text.end()));
    std::string msg = errorOf([&] { loadImage(dir + "/notes.png"); });
    EXPECT_NE(msg.find(dir + "/notes.png"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cannot decode"), std::string::npos) << msg;

    // A real PNG cut short: the signature and header survive, the pixel data does not.
    cv::Mat noise(64, 64, CV_8UC3);
    cv::randu(noise, 0, 255);
    std::vector<std::uint8_t> png;
    ASSERT_TRUE(cv::imencode(".png", noise, png));
    png.resize(png.size() / 3);
    writeBytes(dir + "/cut.png", png);
    msg = errorOf([&] { loadImage(dir + "/cut.png"); });
    EXPECT_NE(msg.find(dir + "/cut.png"), std::string::npos) << msg;

    // PNG signature followed by garbage.
    std::vector<std::uint8_t> garbage = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    for (int i = 0; i < 100; ++i) garbage.push_back(static_cast<std::uint8_t>(i * 37));
    msg = errorOf([&] { decodeImage(garbage, "garbage.png"); });
    EXPECT_NE(msg.find("garbage.png"), std::string::npos) << msg;

    // JPEG start marker and nothing else.
    msg = errorOf([&] { decodeImage({0xff, 0xd8, 0xff}, "stub.jpg"); });
    EXPECT_NE(msg.find("stub.jpg"), std::string::npos) << msg;
}

TEST(Image, ZeroSizeAndOversizedHeadersAreRefusedBeforeDecoding) {
    std::vector<std::uint8_t> png;
    ASSERT_TRUE(cv::imencode(".png", cv::Mat(4, 4, CV_8UC3, cv::Scalar(1, 2, 3)), png));
    auto withSize = [&](std::uint32_t w, std::uint32_t h) {
        std::vector<std::uint8_t> b = png;
        for (int i = 0; i < 4; ++i) {
            b[16 + i] = static_cast<std::uint8_t>(w >> (24 - 8 * i));
            b[20 + i] = static_cast<std::uint8_t>(h >> (24 - 8 * i));
        }
        return b;
    };
    std::string msg = errorOf([&] { decodeImage(withSize(0, 4), "zero.png"); });
    EXPECT_NE(msg.find("zero.png"), std::string::npos) << msg;
    EXPECT_NE(msg.find("zero width or height"), std::string::npos) << msg;

    msg = errorOf([&] { decodeImage(withSize(30000, 30000), "huge.png"); });
    EXPECT_NE(msg.find("huge.png"), std::string::npos) << msg;
    EXPECT_NE(msg.find("too large"), std::string::npos) << msg;
    EXPECT_NE(msg.find("30000x30000"), std::string::npos) << msg;

    // The same check on a JPEG frame header (SOF0 height/width).
    std::vector<std::uint8_t> jpeg = orientedJpeg(1);
    for (std::size_t i = 2; i + 9 < jpeg.size(); ++i) {
        if (jpeg[i] == 0xff && jpeg[i + 1] == 0xc0) {
            jpeg[i + 5] = 0xff;  // height 65535 ...
            jpeg[i + 6] = 0xff;
            jpeg[i + 7] = 0xff;  // ... × width 65535
            jpeg[i + 8] = 0xff;
            break;
        }
    }
    msg = errorOf([&] { decodeImage(jpeg, "huge.jpg"); });
    EXPECT_NE(msg.find("huge.jpg"), std::string::npos) << msg;
    EXPECT_NE(msg.find("too large"), std::string::npos) << msg;
}

TEST(Image, SaveByExtensionAndErrors) {
    const std::string dir = sdrpn::test::scratchDir();
    ImageRgb8 img;
    img.width = 16;
    img.height = 8;
    img.pixels.assign(16 * 8 * 3, 0);
    for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 16; ++x) img.at(x, y)[0] = 250;  // red

    saveImage(img, dir + "/out.JPG");
    ImageRgb8 jpg = loadImage(dir + "/out.JPG");
    EXPECT_EQ(jpg.width, 16);
    EXPECT_TRUE(isRed(jpg.at(8, 4)));
    saveImage(img, dir + "/out.bmp");
    EXPECT_EQ(loadImage(dir + "/out.bmp").pixels, img.pixels);

    std::string msg = errorOf([&] { saveImage(img, dir + "/out.xyz"); });
    EXPECT_NE(msg.find("out.xyz"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'.xyz'"), std::string::npos) << msg;

    msg = errorOf([&] { saveImage(img, dir + "/missing/folder/out.png"); });
    EXPECT_NE(msg.find("missing/folder/out.png"), std::string::npos) << msg;
    EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;

    msg = errorOf([&] { saveImage(ImageRgb8{}, dir + "/empty.png"); });
    EXPECT_NE(msg.find("empty.png"), std::string::npos) << msg;

    ImageRgb8 broken = img;
    broken.pixels.resize(10);
    msg = errorOf([&] { saveImage(broken, dir + "/broken.png"); });
    EXPECT_NE(msg.find("broken.png"), std::string::npos) << msg;
    EXPECT_FALSE(fs::exists(dir + "/broken.png"));
}

TEST(Image, RandomlyDamagedImagesNeverCrash) {
    // Every outcome is an RGB8 image of consistent size or an sdrpn::Error naming the input.
    cv::Mat noise(24, 40, CV_8UC3);
    cv::randu(noise, 0, 255);
    std::vector<std::uint8_t> png, jpg;
    ASSERT_TRUE(cv::imencode(".png", noise, png));
    jpg = orientedJpeg(6);
    std::uint64_t state = 99;
    auto next = [&] {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<std::uint32_t>(state >> 33);
    };
    for (const auto* source : {&png, &jpg}) {
        for (int round = 0; round < 150; ++round) {
            std::vector<std::uint8_t> bytes = *source;
            for (int f = 0; f < 1 + static_cast<int>(next() % 4); ++f)
                bytes[next() % bytes.size()] = static_cast<std::uint8_t>(next());
            if (next() % 5 == 0) bytes.resize(1 + next() % bytes.size());
            try {
                ImageRgb8 img = decodeImage(bytes, "damaged-input");
                EXPECT_EQ(img.pixels.size(), std::size_t(img.width) * img.height * 3);
            } catch (const sdrpn::Error& e) {
                EXPECT_NE(std::string(e.what()).find("damaged-input"), std::string::npos) << e.what();
            }
        }
    }
}
