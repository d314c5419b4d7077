// Files from the SD-RPN and LLaVA releases, opened from the studio as they are: released pseudo-label .pkl
// files imported into a label store (and shown in the store browser), a model folder holding only
// pytorch_model.bin opened and converted to safetensors, and an unfilled SD-RPN checkpoint loaded with the
// base model the studio asks for. The inputs are written by the tests with Debian's python3-numpy and
// python3-torch.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <QImage>
#include <QSignalSpy>

#include "app/interop_tools.h"
#include "app/main_window.h"
#include "app/model_session.h"
#include "app/store_browser.h"
#include "app/studio_tools.h"
#include "core/data/label_store.h"
#include "core/io/safetensors.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/window_test_support.h"
#include "tests/support/llava_layouts.h"
#include "tests/support/test_support.h"
#include "widgets/model_card_panel.h"

#ifndef SDRPN_PYTHON
#define SDRPN_PYTHON "/usr/bin/python3"
#endif

namespace fs = std::filesystem;

namespace {

using sdrpn::test::noSettings;
using sdrpn::test::qs;
using sdrpn::test::waitForIdle;

bool waitFor(QSignalSpy& spy, int count = 1) {
    while (spy.count() < count)
        if (!spy.wait(60000)) return false;
    return true;
}

// Runs `script` with Debian's Python; the test fails (never skips) when numpy or torch is missing.
void runPython(const std::string& dir, const std::string& script, const std::string& args) {
    const std::string path = dir + "/make.py";
    std::ofstream(path) << script;
    const std::string command =
        std::string(SDRPN_PYTHON) + " " + path + " " + args + " > " + dir + "/python.log 2>&1";
    const int rc = std::system(command.c_str());
    std::ifstream log(dir + "/python.log");
    const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    ASSERT_EQ(rc, 0) << "the test inputs are made with " << SDRPN_PYTHON
                     << " (install python3-numpy python3-torch):\n"
                     << text;
}

// A released-style label pickle: a list of dicts with 576-long float32 maps (protocol 4).
constexpr const char* kMakePkl = R"PY(
import pickle, sys
import numpy as np
out, count = sys.argv[1], int(sys.argv[2])
samples = []
for i in range(count):
    g = np.full(576, 1e-4, dtype=np.float32).reshape(24, 24)
    g[4 + i:9 + i, 6:11] = 0.02
    s = np.zeros((24, 24), dtype=np.float32)
    s[0, 0] = 0.5
    samples.append({"question_id": str(1000 + i), "prompt": "What is shown?", "text": "A square.",
                     "image": "img%d.png" % i, "sink_attn": s.reshape(576),
                     "grounding_attn_o2i": g.reshape(576)})
with open(out, "wb") as f:
    pickle.dump(samples, f, protocol=4)
)PY";

// The tiny fixture's safetensors weights re-saved with torch.save as pytorch_model.bin, with its other files.
constexpr const char* kMakeBin = R"PY(
import collections, json, os, shutil, struct, sys
import torch
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
raw = open(os.path.join(src, "model.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
types = {"F16": torch.float16, "F32": torch.float32, "BF16": torch.bfloat16, "I64": torch.int64}
state = collections.OrderedDict()
for name, info in header.items():
    if name == "__metadata__":
        continue
    b, e = info["data_offsets"]
    data = bytearray(raw[8 + n + b:8 + n + e])
    state[name] = torch.frombuffer(data, dtype=types[info["dtype"]]).reshape(info["shape"]).clone()
torch.save(state, os.path.join(dst, "pytorch_model.bin"))
for f in os.listdir(src):
    if f not in ("model.safetensors", "reference.safetensors", "reference.json"):
        shutil.copy(os.path.join(src, f), dst)
)PY";

}  // namespace

TEST(Interop, ImportsReleasedLabelsIntoTheStoreBrowser) {
    const std::string root = sdrpn::test::scratchDir("gui_import_labels");
    runPython(root, kMakePkl, root + "/labels.pkl 3");
    for (int i = 0; i < 3; ++i) {
        QImage image(48, 32, QImage::Format_RGB888);
        image.fill(Qt::darkGreen);
        ASSERT_TRUE(image.save(qs(root + "/img" + std::to_string(i) + ".png")));
    }
    MainWindow window(noSettings());
    window.resize(1200, 800);
    window.show();
    InteropTools* interop = window.interopTools();
    ASSERT_NE(interop, nullptr);
    ImportLabelsDialogValues values;
    values.pklFiles << qs(root + "/labels.pkl");
    values.imageRoot = qs(root);
    values.store = qs(root + "/labels.sdrpn");
    QSignalSpy finished(interop, &InteropTools::importFinished);
    QSignalSpy errors(interop, &InteropTools::errorReported);
    ASSERT_NE(interop->startImport(values), 0u);
    ASSERT_TRUE(waitFor(finished));
    EXPECT_EQ(errors.count(), 0);
    const QString summary = finished.at(0).at(2).toString();
    EXPECT_TRUE(summary.contains(QStringLiteral("3 read, 3 added"))) << summary.toStdString();

    {
        sdrpn::data::LabelStore::Options readOnly;
        readOnly.access = sdrpn::data::LabelStore::Access::ReadOnly;
        const auto store = sdrpn::data::LabelStore::open(root + "/labels.sdrpn", readOnly);
        EXPECT_EQ(store.count(), 3);
        EXPECT_TRUE(store.contains("labels", "1001"));
    }
    // The store is shown where labeling jobs show theirs.
    StoreBrowser* browser = window.studioTools()->storeBrowser();
    EXPECT_EQ(browser->path(), qs(root + "/labels.sdrpn"));
    EXPECT_EQ(browser->rowCount(), 3);

    // Imported again: nothing is added twice.
    ASSERT_NE(interop->startImport(values), 0u);
    ASSERT_TRUE(waitFor(finished, 2));
    const QString again = finished.at(1).at(2).toString();
    EXPECT_TRUE(again.contains(QStringLiteral("0 added, 3 skipped"))) << again.toStdString();
}

TEST(Interop, AMaliciousPickleIsRefusedAndNothingRuns) {
    const std::string root = sdrpn::test::scratchDir("gui_import_malicious");
    const std::string marker = root + "/pwned";
    runPython(root, R"PY(
import os, pickle, sys
class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
with open(sys.argv[1], "wb") as f:
    pickle.dump([Evil()], f, protocol=2)
)PY",
              root + "/evil.pkl " + marker);
    MainWindow window(noSettings());
    InteropTools* interop = window.interopTools();
    ImportLabelsDialogValues values;
    values.pklFiles << qs(root + "/evil.pkl");
    values.checkImages = false;
    values.store = qs(root + "/labels.sdrpn");
    QSignalSpy errors(interop, &InteropTools::errorReported);
    QSignalSpy finished(interop, &InteropTools::importFinished);
    ASSERT_NE(interop->startImport(values), 0u);
    ASSERT_TRUE(waitFor(errors));
    const QString message = errors.at(0).at(0).toString();
    EXPECT_TRUE(message.contains(QStringLiteral("system"))) << message.toStdString();
    EXPECT_TRUE(message.contains(QStringLiteral("evil.pkl"))) << message.toStdString();
    EXPECT_EQ(finished.count(), 0);
    EXPECT_FALSE(fs::exists(marker));
}

TEST(Interop, OpensAndConvertsAPytorchBinModel) {
    const std::string root = sdrpn::test::scratchDir("gui_bin_model");
    const std::string binDir = root + "/tiny-bin";
    runPython(root, kMakeBin, sdrpn::test::fixturePath("tiny-llava-hf") + " " + binDir);
    ASSERT_TRUE(fs::exists(binDir + "/pytorch_model.bin"));
    ASSERT_FALSE(fs::exists(binDir + "/model.safetensors"));

    MainWindow window(noSettings());
    window.resize(1200, 800);
    window.show();
    QSignalSpy loaded(window.modelSession(), &ModelSession::loaded);
    window.openModel(qs(binDir));
    ASSERT_TRUE(waitFor(loaded)) << window.lastError().toStdString();
    ASSERT_EQ(window.modelSession()->state(), ModelSession::State::Ready);
    QString reason;
    EXPECT_TRUE(window.modelSession()->canAnswer(&reason)) << reason.toStdString();

    InteropTools* interop = window.interopTools();
    QSignalSpy converted(interop, &InteropTools::convertFinished);
    QSignalSpy errors(interop, &InteropTools::errorReported);
    ASSERT_NE(interop->startConvert({qs(binDir), qs(root + "/tiny-converted")}), 0u);
    ASSERT_TRUE(waitFor(converted));
    EXPECT_EQ(errors.count(), 0);
    const auto archive = sdrpn::io::SafetensorsArchive::open(root + "/tiny-converted");
    const auto original = sdrpn::io::SafetensorsArchive::open(sdrpn::test::fixturePath("tiny-llava-hf"));
    EXPECT_EQ(archive->names(), original->names());
    EXPECT_TRUE(fs::exists(root + "/tiny-converted/config.json"));
    EXPECT_FALSE(fs::exists(root + "/tiny-converted/pytorch_model.bin"));

    // A second conversion into the now non-empty folder is refused, naming it.
    ASSERT_NE(interop->startConvert({qs(binDir), qs(root + "/tiny-converted")}), 0u);
    ASSERT_TRUE(waitFor(errors));
    EXPECT_TRUE(errors.at(0).at(0).toString().contains(QStringLiteral("tiny-converted")))
        << errors.at(0).at(0).toString().toStdString();

    window.openModel(qs(root + "/tiny-converted"));
    ASSERT_TRUE(waitFor(loaded, 2)) << window.lastError().toStdString();
    EXPECT_EQ(window.modelSession()->state(), ModelSession::State::Ready);
}

TEST(Interop, AsksForTheBaseOfAnUnfilledCheckpoint) {
    const std::string root = sdrpn::test::scratchDir("gui_unfilled");
    const QString checkpoint = qs(sdrpn::test::writeUnfilledCheckpoint(root + "/tiny-roi-K3T2", 3, 2));
    const QString base = qs(sdrpn::test::fixturePath("tiny-llava-hf"));
    MainWindow window(noSettings());
    window.resize(1200, 800);
    window.show();
    int asked = 0;
    QString question;
    window.setAskFolderHandler([&](const QString&, const QString& message, const QString&) {
        ++asked;
        question = message;
        return base;
    });
    QSignalSpy loaded(window.modelSession(), &ModelSession::loaded);
    QSignalSpy needed(window.modelSession(), &ModelSession::baseModelNeeded);
    window.openModel(checkpoint);
    ASSERT_TRUE(waitFor(loaded)) << window.lastError().toStdString();
    EXPECT_EQ(needed.count(), 1);
    EXPECT_EQ(asked, 1);
    EXPECT_TRUE(question.contains(QStringLiteral("unfilled SD-RPN checkpoint"))) << question.toStdString();
    ASSERT_EQ(window.modelSession()->state(), ModelSession::State::Ready);
    EXPECT_EQ(qs(window.modelSession()->model()->baseModel), QDir::cleanPath(base));
    const QString text = window.modelCardPanel()->displayedText();
    EXPECT_TRUE(text.contains(QStringLiteral("Base model: ") + QDir::cleanPath(base))) << text.toStdString();
    // The checkpoint is also the RPN: it loads with the model.
    ASSERT_TRUE(waitForIdle(window.jobManager()));
    EXPECT_TRUE(window.rpnSession()->hasRpn()) << window.lastError().toStdString();

    // Opened again: the base is remembered, nothing is asked.
    window.openModel(checkpoint);
    ASSERT_TRUE(waitFor(loaded, 2)) << window.lastError().toStdString();
    EXPECT_EQ(asked, 1);
}

TEST(Interop, DecliningTheBaseLeavesAClearMessage) {
    const std::string root = sdrpn::test::scratchDir("gui_unfilled_decline");
    const QString checkpoint = qs(sdrpn::test::writeUnfilledCheckpoint(root + "/tiny-roi-K3T2", 3, 2));
    MainWindow window(noSettings());
    window.setAskFolderHandler([](const QString&, const QString&, const QString&) { return QString(); });
    QSignalSpy failed(window.modelSession(), &ModelSession::loadFailed);
    window.openModel(checkpoint);
    ASSERT_TRUE(waitFor(failed));
    const QString message = failed.at(0).at(1).toString();
    EXPECT_TRUE(message.contains(QStringLiteral("unfilled SD-RPN checkpoint"))) << message.toStdString();
    EXPECT_TRUE(message.contains(QStringLiteral("--base"))) << message.toStdString();
    EXPECT_EQ(window.modelSession()->state(), ModelSession::State::Failed);
}
