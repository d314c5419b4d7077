// The workspace of the studio's job tests: questions about the tiny LLaVA fixture's two images, label
// settings that fit its 4 layers, and a count of a store's samples.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>

#include <QString>

#include "core/data/label_store.h"
#include "tests/support/test_support.h"

namespace sdrpn::test {

// `n` questions about the fixture's two images, and label settings that fit its 4 layers: a small
// foreground box on a near-uniform random model, so that most samples give usable labels.
struct Workspace {
    QString dir, data, settings;
};

inline Workspace makeWorkspace(int n) {
    Workspace w;
    const std::string dir = sdrpn::test::scratchDir("jobs");
    const std::string fixture = sdrpn::test::fixturePath("tiny-llava-hf");
    std::filesystem::copy_file(fixture + "/image_336.png", dir + "/a.png");
    std::filesystem::copy_file(fixture + "/image_640x480.png", dir + "/b.png");
    std::ofstream jsonl(dir + "/questions.jsonl");
    for (int i = 0; i < n; ++i)
        jsonl << R"({"question_id": "q)" << i << R"(", "image": ")" << (i % 2 ? "b" : "a")
              << R"(.png", "question": "What is thing number )" << i << R"(?"})"
              << "\n";
    std::ofstream(dir + "/settings.json")
        << R"({"preset": "llava-1.5-7b", "grounding": [{"layer": 3, "heads": [1, 2]}],
              "sink": [{"layer": 1, "heads": []}], "sink_threshold": 1.0,
              "foreground_ratio": 0.9, "background_ratio": 0.99, "max_box_ratio": 1.0})";
    w.dir = QString::fromStdString(dir);
    w.data = w.dir + "/questions.jsonl";
    w.settings = w.dir + "/settings.json";
    return w;
}

inline std::int64_t countIn(const QString& store) {
    sdrpn::data::LabelStore::Options readOnly;
    readOnly.access = sdrpn::data::LabelStore::Access::ReadOnly;
    return sdrpn::data::LabelStore::open(store.toStdString(), readOnly).count();
}

}  // namespace sdrpn::test
