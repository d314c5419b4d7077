#include "core/pipeline/demo_data.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

namespace sdrpn::pipeline {
namespace {

namespace fs = std::filesystem;

struct Colour {
    const char* name;
    std::uint8_t r, g, b;
};

constexpr Colour kColours[] = {{"red", 220, 30, 30},     {"green", 30, 170, 50},   {"blue", 30, 70, 220},
                               {"yellow", 240, 210, 20}, {"purple", 140, 40, 170}, {"orange", 245, 130, 20}};
constexpr const char* kShapes[] = {"circle", "square", "triangle"};

// Deterministic integer in [lo, hi] (not std::uniform_int_distribution: its output may differ by library).
int uniform(std::mt19937_64& rng, int lo, int hi) {
    return lo + int(rng() % std::uint64_t(hi - lo + 1));
}

bool inside(int shape, int x, int y, int cx, int cy, int r) {
    const int dx = x - cx, dy = y - cy;
    switch (shape) {
        case 0:
            return dx * dx + dy * dy <= r * r;
        case 1:
            return std::abs(dx) <= r && std::abs(dy) <= r;
        default: {  // upward triangle inside the box [cx-r, cx+r] x [cy-r, cy+r]
            if (dy < -r || dy > r) return false;
            const double half = double(dy + r) / 2.0;  // 0 at the apex, r at the base
            return std::abs(dx) <= half;
        }
    }
}

void fill(io::ImageRgb8& img, int shape, int cx, int cy, int r, std::uint8_t red, std::uint8_t green,
          std::uint8_t blue) {
    for (int y = std::max(0, cy - r); y <= std::min(img.height - 1, cy + r); ++y)
        for (int x = std::max(0, cx - r); x <= std::min(img.width - 1, cx + r); ++x)
            if (inside(shape, x, y, cx, cy, r)) {
                std::uint8_t* p = img.at(x, y);
                p[0] = red, p[1] = green, p[2] = blue;
            }
}

}  // namespace

DemoSample makeDemoSample(std::uint64_t seed, int index, const DemoDataOptions& options, io::ImageRgb8& img) {
    std::mt19937_64 rng(seed * 1000003ULL + std::uint64_t(index));
    img.width = uniform(rng, options.minSide, options.maxSide);
    img.height = uniform(rng, options.minSide, options.maxSide);
    img.pixels.assign(std::size_t(img.width) * img.height * 3, 0);
    // Background: a soft diagonal gradient with a little noise.
    const int base = uniform(rng, 150, 215);
    for (int y = 0; y < img.height; ++y)
        for (int x = 0; x < img.width; ++x) {
            const int v = base + (x + y) * 30 / (img.width + img.height) + int(rng() % 9) - 4;
            std::uint8_t* p = img.at(x, y);
            p[0] = p[1] = p[2] = std::uint8_t(std::clamp(v, 0, 255));
        }
    const int side = std::min(img.width, img.height);
    for (int i = 0; i < options.distractors; ++i) {
        const int r = uniform(rng, side / 14, side / 6);
        const auto grey = std::uint8_t(uniform(rng, 60, 130));
        fill(img, uniform(rng, 0, 2), uniform(rng, r, img.width - 1 - r), uniform(rng, r, img.height - 1 - r),
             r, grey, grey, grey);
    }
    // The target: small and coloured, somewhere away from the border.
    const int shape = uniform(rng, 0, 2);
    const Colour& colour = kColours[uniform(rng, 0, int(std::size(kColours)) - 1)];
    const int r = uniform(rng, std::max(4, side / 40), std::max(5, side / 20));
    const int cx = uniform(rng, r + 2, img.width - 3 - r), cy = uniform(rng, r + 2, img.height - 3 - r);
    fill(img, shape, cx, cy, r, colour.r, colour.g, colour.b);

    DemoSample s;
    char name[32];
    std::snprintf(name, sizeof name, "demo_%04d", index);
    s.id = name;
    s.image = std::string("images/") + name + ".png";
    if (rng() % 2 == 0) {
        s.question = std::string("What colour is the small ") + kShapes[shape] + "?";
        s.answer = colour.name;
    } else {
        s.question = std::string("What shape is the ") + colour.name + " object?";
        s.answer = kShapes[shape];
    }
    s.bbox = {std::max(0, cx - r), std::max(0, cy - r), std::min(img.width, cx + r + 1),
              std::min(img.height, cy + r + 1)};
    return s;
}

Result<DemoDataSummary> makeDemoDataset(const std::string& folder, const DemoDataOptions& options,
                                        JobContext& job) {
    return guarded([&]() -> DemoDataSummary {
        if (options.count < 1)
            throw Error("demo data: count must be at least 1 (got " + std::to_string(options.count) + ")");
        if (options.minSide < 64 || options.maxSide < options.minSide)
            throw Error("demo data: image sides must satisfy 64 <= min <= max (got " +
                        std::to_string(options.minSide) + ", " + std::to_string(options.maxSide) + ")");
        const fs::path root(folder);
        const fs::path questions = root / "questions.jsonl";
        if (fs::exists(questions) && !options.overwrite)
            throw Error(questions.string() + " already exists (overwrite it explicitly)");
        std::error_code ec;
        fs::create_directories(root / "images", ec);
        if (ec) throw Error(folder + ": cannot create the folder: " + ec.message());

        std::string lines;
        io::ImageRgb8 img;
        for (int i = 0; i < options.count; ++i) {
            job.throwIfCancelled();
            const DemoSample s = makeDemoSample(options.seed, i, options, img);
            io::saveImage(img, (root / s.image).string());
            nlohmann::json j = {{"id", s.id},
                                {"image", s.image},
                                {"question", s.question},
                                {"answer", s.answer},
                                {"bbox", {s.bbox[0], s.bbox[1], s.bbox[2], s.bbox[3]}}};
            lines += j.dump() + "\n";
            job.report(i + 1, options.count,
                       "image " + std::to_string(i + 1) + "/" + std::to_string(options.count));
        }
        const fs::path tmp = root / "questions.jsonl.tmp";
        {
            std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
            out << lines;
            out.flush();
            if (!out) throw Error(tmp.string() + ": cannot write (disk full or read-only?)");
        }
        fs::rename(tmp, questions, ec);
        if (ec) throw Error(questions.string() + ": cannot write: " + ec.message());
        return DemoDataSummary{root.string(), questions.string(), options.count};
    });
}

}  // namespace sdrpn::pipeline
