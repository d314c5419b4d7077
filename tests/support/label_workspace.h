// A folder for tests that run `sdrpn label` and `sdrpn train` on the tiny LLaVA fixture: its two images
// (a.png, b.png), label settings that fit its 4 layers, questions about the images, and the command lines.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/job_outputs.h"
#include "tests/support/test_support.h"

namespace sdrpn::test {

class LabelWorkspace : public ::testing::Test {
protected:
    void SetUp() override {
        if (!std::filesystem::exists(sdrpnExecutable()))
            FAIL() << sdrpnExecutable() << " is missing: build the sdrpn target first";
        dir = scratchDir("ws");
        fixture = fixturePath("tiny-llava-hf");
        std::filesystem::copy_file(fixture + "/image_336.png", dir + "/a.png");
        std::filesystem::copy_file(fixture + "/image_640x480.png", dir + "/b.png");
        std::ofstream(dir + "/settings.json")
            << R"({"preset": "llava-1.5-7b", "grounding": [{"layer": 3, "heads": [1, 2]}], "sink": [],
                  "foreground_ratio": 0.9, "background_ratio": 0.5, "max_box_ratio": 1.0})";
    }

    // `n` questions about the two images, alternating; the path of the JSONL.
    std::string writeQuestions(int n) const {
        const std::string path = dir + "/questions-" + std::to_string(n) + ".jsonl";
        std::ofstream jsonl(path);
        for (int i = 0; i < n; ++i)
            jsonl << R"({"question_id": "q)" << i << R"(", "image": ")" << (i % 2 ? "b" : "a")
                  << R"(.png", "question": "What is thing number )" << i << R"(?"})"
                  << "\n";
        return path;
    }

    std::string labelArgs(const std::string& questions, const std::string& store, int tokens) const {
        return "label --model " + fixture + " --data " + questions + " --images " + dir + " --store " +
               shellQuote(store) + " --settings " + dir + "/settings.json --max-new-tokens " +
               std::to_string(tokens);
    }

    std::string trainArgs(const std::string& store, const std::string& out) const {
        return "train --model " + fixture + " --store " + store + " --images " + dir + " --out " +
               shellQuote(out) + " --K 3 --T 2 --lr 1e-3 --warmup-ratio 0 --quiet";
    }

    // Store `b` holds the same `samples` as store `a` (test::expectSameStore, on a copy of `a`).
    void expectSameStore(const std::string& a, const std::string& b, std::int64_t samples) {
        test::expectSameStore(a, b, samples, dir + "/compare-" + std::to_string(++compares) + ".sdrpn");
    }

    std::string dir, fixture;
    int compares = 0;
};

}  // namespace sdrpn::test
