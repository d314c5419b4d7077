// A small synthetic VQA set for the demo and the end-to-end tests: images with a few grey distractor
// shapes and one small coloured target, a question about the target, its answer and its box. The SD-RPN
// loop (label → train → RoI → answer → evaluate) needs images, questions, answers and ground-truth boxes;
// this makes them offline, from a seed.
//
//   DemoDataOptions opt;  opt.count = 24;
//   Result<DemoDataSummary> r = makeDemoDataset("data/demo", opt, job);
//   // data/demo/questions.jsonl ({"id", "image", "question", "answer", "bbox"} per line),
//   data/demo/images/*.png
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "core/io/image.h"
#include "core/jobs.h"
#include "core/result.h"

namespace sdrpn::pipeline {

struct DemoDataOptions {
    int count = 24;          // images (one question each)
    std::uint64_t seed = 7;  // same seed, same files
    int minSide = 360;       // image sides are drawn from [minSide, maxSide]
    int maxSide = 720;
    int distractors = 6;     // grey shapes per image
    bool overwrite = false;  // refuse to write into a folder that already has questions.jsonl unless set
};

struct DemoSample {
    std::string id, image, question, answer;
    std::array<int, 4> bbox{};  // x0, y0, x1, y1 (exclusive ends), source pixels
};

struct DemoDataSummary {
    std::string folder;
    std::string questions;  // path of questions.jsonl
    int count = 0;
};

// One sample: the image and its question, answer and box (deterministic in `seed` and `index`).
DemoSample makeDemoSample(std::uint64_t seed, int index, const DemoDataOptions& options,
                          io::ImageRgb8& image);

// Writes `folder`/questions.jsonl and `folder`/images/demo_NNNN.png. Progress and cancel through job; the
// JSONL is written last, atomically, so a cancelled run leaves no dataset that names missing images.
Result<DemoDataSummary> makeDemoDataset(const std::string& folder, const DemoDataOptions& options,
                                        JobContext& job);

}  // namespace sdrpn::pipeline
