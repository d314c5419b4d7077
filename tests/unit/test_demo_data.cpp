// The synthetic demo question set: deterministic, boxes around the coloured target, readable as a dataset.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/data/dataset.h"
#include "core/io/image.h"
#include "core/pipeline/demo_data.h"
#include "tests/support/test_support.h"

namespace sdrpn::pipeline {
namespace {

bool isGrey(const std::uint8_t* p) {
    return p[0] == p[1] && p[1] == p[2];
}

TEST(DemoData, SameSeedSameImageAndQuestion) {
    DemoDataOptions opt;
    io::ImageRgb8 a, b, c;
    DemoSample sa = makeDemoSample(7, 3, opt, a);
    DemoSample sb = makeDemoSample(7, 3, opt, b);
    DemoSample sc = makeDemoSample(8, 3, opt, c);
    EXPECT_EQ(a.pixels, b.pixels);
    EXPECT_EQ(sa.question, sb.question);
    EXPECT_EQ(sa.bbox, sb.bbox);
    EXPECT_NE(a.pixels, c.pixels);
}

TEST(DemoData, TheBoxHoldsTheColouredTargetAndNothingElseIsColoured) {
    DemoDataOptions opt;
    for (int i = 0; i < 12; ++i) {
        io::ImageRgb8 img;
        DemoSample s = makeDemoSample(11, i, opt, img);
        ASSERT_GE(img.width, opt.minSide);
        ASSERT_LE(img.width, opt.maxSide);
        const auto [x0, y0, x1, y1] = s.bbox;
        ASSERT_LT(x0, x1);
        ASSERT_LT(y0, y1);
        ASSERT_LE(x1, img.width);
        ASSERT_LE(y1, img.height);
        int colouredInside = 0, colouredOutside = 0;
        for (int y = 0; y < img.height; ++y)
            for (int x = 0; x < img.width; ++x) {
                if (isGrey(img.at(x, y))) continue;
                (x >= x0 && x < x1 && y >= y0 && y < y1 ? colouredInside : colouredOutside) += 1;
            }
        EXPECT_GT(colouredInside, 10) << s.id;
        EXPECT_EQ(colouredOutside, 0) << s.id;
        // The box's centre is on the target (every shape covers its centre).
        EXPECT_FALSE(isGrey(img.at((x0 + x1) / 2, (y0 + y1) / 2))) << s.id;
        EXPECT_FALSE(s.answer.empty());
        EXPECT_NE(s.question.find('?'), std::string::npos);
    }
}

TEST(DemoData, FolderReadsAsAJsonlDatasetWithBoxes) {
    const std::string dir = test::scratchDir("demo-data");
    DemoDataOptions opt;
    opt.count = 3;
    opt.minSide = opt.maxSide = 96;
    auto r = makeDemoDataset(dir, opt, JobContext::none());
    ASSERT_TRUE(r) << r.message();
    data::DatasetOptions dopt;
    dopt.imageRoot = dir;
    data::Dataset d = data::readDataset(r.value().questions, dopt);
    ASSERT_EQ(d.samples.size(), 3u);
    EXPECT_TRUE(d.skipped.empty());
    for (const auto& s : d.samples) {
        ASSERT_TRUE(s.answer.has_value());
        ASSERT_TRUE(s.bbox.has_value());
        io::ImageRgb8 img = io::loadImage(s.imagePath);
        EXPECT_EQ(img.width, 96);
    }
    EXPECT_EQ(d.samples[0].key, "demo_0000");
}

TEST(DemoData, RefusesToOverwriteAndRejectsBadCounts) {
    const std::string dir = test::scratchDir("demo-data-twice");
    DemoDataOptions opt;
    opt.count = 1;
    opt.minSide = opt.maxSide = 64;
    ASSERT_TRUE(makeDemoDataset(dir, opt, JobContext::none()));
    auto again = makeDemoDataset(dir, opt, JobContext::none());
    ASSERT_FALSE(again);
    EXPECT_NE(again.message().find("questions.jsonl already exists"), std::string::npos) << again.message();
    opt.overwrite = true;
    EXPECT_TRUE(makeDemoDataset(dir, opt, JobContext::none()));
    opt.count = 0;
    auto none = makeDemoDataset(dir, opt, JobContext::none());
    ASSERT_FALSE(none);
    EXPECT_NE(none.message().find("count"), std::string::npos);
}

TEST(DemoData, CancelLeavesNoQuestionFile) {
    const std::string dir = test::scratchDir("demo-data-cancel");
    DemoDataOptions opt;
    opt.count = 5;
    opt.minSide = opt.maxSide = 64;
    JobContext job;
    job.requestCancel();
    auto r = makeDemoDataset(dir, opt, job);
    EXPECT_TRUE(r.status().cancelled());
    EXPECT_FALSE(std::filesystem::exists(dir + "/questions.jsonl"));
}

}  // namespace
}  // namespace sdrpn::pipeline
