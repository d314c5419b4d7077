// The Label store dock: a store written by the core lists its samples, grows while it is open (only the new
// rows, the selection kept), draws the selected sample's labels, and a file that is no store says so.
#include <fstream>
#include <random>

#include <QDockWidget>
#include <QTableWidget>

#include "app/main_window.h"
#include "app/store_browser.h"
#include "app/studio_tools.h"
#include "core/data/label_store.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/window_test_support.h"
#include "tests/support/test_support.h"
#include "widgets/label_overlay.h"

namespace {

using sdrpn::data::kHeadMean;
using sdrpn::data::LabelStore;
using sdrpn::data::StoredMap;
using sdrpn::data::StoredSample;
using sdrpn::test::qs;
using sdrpn::test::scratchDir;

// A sample with the maps the llava-1.5-7b preset reads: a bright 3 × 3 patch on layer 14's heads, so the
// labels have a foreground.
StoredSample makeSample(const std::string& key, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> attention(0.0f, 0.005f);
    StoredSample s;
    s.dataset = "gqa";
    s.key = key;
    s.image = "images/" + key + ".jpg";
    s.question = "What is on the table? (" + key + ")";
    s.model = "llava-1.5-7b-hf";
    s.answer = "A cup " + std::to_string(seed);
    s.answerTokens = 3;
    s.settings = R"({"preset":"llava-1.5-7b"})";
    s.gridRows = 24;
    s.gridCols = 24;
    s.geometry = sdrpn::models::makeGridGeometry(640, 480, sdrpn::models::ImageFit::Pad);
    s.modelLayers = 32;
    s.modelHeads = 32;
    auto map = [&](int layer, int head, bool patch) {
        StoredMap m;
        m.layer = layer;
        m.head = head;
        m.values.resize(576);
        for (float& v : m.values) v = attention(rng);
        if (patch)
            for (int r = 10; r < 13; ++r)
                for (int c = 10; c < 13; ++c) m.values[r * 24 + c] = 0.2f;
        return m;
    };
    s.maps = {map(2, kHeadMean, false), map(14, 13, true), map(14, 24, true), map(14, 26, true)};
    return s;
}

std::string writeStore(const std::string& name, int count) {
    const std::string path = scratchDir("store_browser") + "/" + name;
    std::remove(path.c_str());
    LabelStore store = LabelStore::open(path);
    for (int i = 0; i < count; ++i) store.put(makeSample(std::to_string(i), unsigned(i + 1)));
    return path;
}

StoreBrowser* quietBrowser(StoreBrowser& b) {
    b.setRefreshIntervalMs(0);  // the test refreshes by hand
    b.setLabelSettings(sdrpn::LabelSettings::fromPreset("llava-1.5-7b"));
    return &b;
}

}  // namespace

TEST(StoreBrowser, ListsTheSamplesOfAStore) {
    const std::string path = writeStore("three.sdrpn", 3);
    StoreBrowser browser;
    quietBrowser(browser);
    QString error;
    ASSERT_TRUE(browser.open(qs(path), &error)) << error.toStdString();
    ASSERT_EQ(browser.rowCount(), 3);
    QTableWidget* table = browser.table();
    EXPECT_EQ(table->item(0, StoreBrowser::KeyColumn)->text(), QStringLiteral("0"));
    EXPECT_EQ(table->item(1, StoreBrowser::QuestionColumn)->text(),
              QStringLiteral("What is on the table? (1)"));
    EXPECT_EQ(table->item(2, StoreBrowser::AnswerColumn)->text(), QStringLiteral("A cup 3"));
    EXPECT_EQ(table->item(0, StoreBrowser::StatusColumn)->text(), QStringLiteral("ok"));
    EXPECT_GT(table->item(0, StoreBrowser::ForegroundColumn)->text().toInt(), 0);
    EXPECT_GT(table->item(0, StoreBrowser::BackgroundColumn)->text().toInt(), 0);
}

TEST(StoreBrowser, ShowsNewRowsAndKeepsTheSelection) {
    const std::string path = writeStore("growing.sdrpn", 2);
    StoreBrowser browser;
    quietBrowser(browser);
    ASSERT_TRUE(browser.open(qs(path)));
    ASSERT_EQ(browser.rowCount(), 2);
    browser.selectRow(1);
    EXPECT_EQ(browser.selectedKey(), QStringLiteral("1"));

    {
        LabelStore writer = LabelStore::open(path);  // a second connection, as a labeling job has
        ASSERT_TRUE(writer.put(makeSample("2", 3)));
    }
    browser.refresh();
    EXPECT_EQ(browser.rowCount(), 3);
    EXPECT_EQ(browser.table()->item(2, StoreBrowser::KeyColumn)->text(), QStringLiteral("2"));
    EXPECT_EQ(browser.selectedKey(), QStringLiteral("1"));
    browser.refresh();  // nothing new: nothing added twice
    EXPECT_EQ(browser.rowCount(), 3);
}

TEST(StoreBrowser, TheTimerPicksUpNewRows) {
    const std::string path = writeStore("timer.sdrpn", 1);
    StoreBrowser browser;
    browser.setLabelSettings(sdrpn::LabelSettings::fromPreset("llava-1.5-7b"));
    browser.setRefreshIntervalMs(50);
    ASSERT_TRUE(browser.open(qs(path)));
    ASSERT_EQ(browser.rowCount(), 1);
    QSignalSpy added(&browser, &StoreBrowser::rowsAdded);
    {
        LabelStore writer = LabelStore::open(path);
        ASSERT_TRUE(writer.put(makeSample("1", 2)));
    }
    ASSERT_TRUE(added.wait(10000));
    EXPECT_EQ(browser.rowCount(), 2);
}

TEST(StoreBrowser, SelectingARowDrawsItsLabels) {
    const std::string path = writeStore("labels.sdrpn", 2);
    StoreBrowser browser;
    quietBrowser(browser);
    ASSERT_TRUE(browser.open(qs(path)));
    browser.selectRow(0);
    const auto overlay = browser.labelOverlay();
    ASSERT_FALSE(overlay->isEmpty());
    EXPECT_EQ(overlay->rows(), 24);
    EXPECT_EQ(overlay->cols(), 24);
    EXPECT_GT(overlay->count(LabelOverlay::kForeground), 0);
    EXPECT_TRUE(browser.preview()->hasImage());  // a stand-in of the source size: no image on disk
    EXPECT_EQ(browser.preview()->image().size(), QSize(640, 480));
    EXPECT_TRUE(browser.previewCaption().contains(QStringLiteral("image not found")));
}

TEST(StoreBrowser, ANonStoreFileGivesAClearError) {
    const std::string path = scratchDir("store_browser") + "/not_a_store.sdrpn";
    {
        std::ofstream out(path);
        out << "this is a text file, not a label store\n";
    }
    StoreBrowser browser;
    quietBrowser(browser);
    QSignalSpy errors(&browser, &StoreBrowser::errorReported);
    QString error;
    EXPECT_FALSE(browser.open(qs(path), &error));
    EXPECT_FALSE(browser.isOpen());
    EXPECT_EQ(browser.rowCount(), 0);
    EXPECT_TRUE(error.contains(qs(path))) << error.toStdString();
    EXPECT_EQ(errors.count(), 1);
}

TEST(StoreBrowser, TheWindowOpensAStoreInItsDock) {
    const std::string path = writeStore("window.sdrpn", 4);
    MainWindow::Options options;
    options.useSettings = false;
    MainWindow window(options);
    window.show();
    StudioTools* tools = window.studioTools();
    ASSERT_NE(tools->openStoreAction(), nullptr);
    ASSERT_TRUE(tools->openLabelStore(qs(path)));
    EXPECT_TRUE(tools->storeDock()->isVisible());
    EXPECT_EQ(tools->storeBrowser()->rowCount(), 4);

    QSignalSpy errors(tools, &StudioTools::errorReported);
    EXPECT_FALSE(tools->openLabelStore(qs(path + ".missing")));
    EXPECT_EQ(errors.count(), 1);
}

TEST(StoreBrowser, AWatchedStoreOpensOnceItIsCreated) {
    const std::string path = scratchDir("store_browser") + "/later.sdrpn";
    std::remove(path.c_str());
    StoreBrowser browser;
    quietBrowser(browser);
    ASSERT_TRUE(browser.watch(qs(path)));
    EXPECT_FALSE(browser.isOpen());
    browser.refresh();  // still missing: nothing happens
    EXPECT_FALSE(browser.isOpen());
    {
        LabelStore writer = LabelStore::open(path);  // what a labeling job does first
        ASSERT_TRUE(writer.put(makeSample("0", 1)));
    }
    browser.refresh();
    ASSERT_TRUE(browser.isOpen());
    EXPECT_EQ(browser.path(), qs(path));
    EXPECT_EQ(browser.rowCount(), 1);
}
