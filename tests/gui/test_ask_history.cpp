// The question history of the Question dock: the last 20 questions, newest first, without duplicates, in a
// drop-down next to the question box; picking one puts it back in the box; the window keeps the list in
// QSettings when it uses settings, and leaves QSettings alone when it does not.
#include <QComboBox>
#include <QSettings>
#include <QSignalSpy>

#include "app/main_window.h"
#include "tests/gui/gui_test_support.h"
#include "widgets/ask_panel.h"

namespace {

const QString kKey = QStringLiteral("ask/history");

MainWindow::Options withSettings(bool on) {
    MainWindow::Options options;
    options.useSettings = on;
    return options;
}

}  // namespace

TEST(AskHistory, KeepsTheLastTwentyNewestFirst) {
    AskPanel panel;
    EXPECT_TRUE(panel.history().isEmpty());
    EXPECT_FALSE(panel.historyBox()->isEnabled());
    QSignalSpy changed(&panel, &AskPanel::historyChanged);
    for (int i = 0; i < 25; ++i) panel.addToHistory(QStringLiteral("question %1").arg(i));
    ASSERT_EQ(panel.history().size(), AskPanel::kMaxHistory);
    EXPECT_EQ(panel.history().first(), QStringLiteral("question 24"));
    EXPECT_EQ(panel.history().last(), QStringLiteral("question 5"));
    EXPECT_EQ(changed.count(), 25);

    panel.addToHistory(QStringLiteral("  question 10 "));  // asked again: moved to the front, not doubled
    EXPECT_EQ(panel.history().size(), AskPanel::kMaxHistory);
    EXPECT_EQ(panel.history().first(), QStringLiteral("question 10"));
    EXPECT_EQ(panel.history().count(QStringLiteral("question 10")), 1);
    EXPECT_TRUE(panel.historyBox()->isEnabled());
    EXPECT_EQ(panel.historyBox()->count(), AskPanel::kMaxHistory + 1);  // with the "Recent…" line
}

TEST(AskHistory, PickingAnEntryFillsTheQuestionBox) {
    AskPanel panel;
    panel.setHistory({QStringLiteral("What does the sign say?"), QStringLiteral("How many cups?")});
    QSignalSpy asked(&panel, &AskPanel::askRequested);
    panel.historyBox()->setCurrentIndex(2);
    emit panel.historyBox()->activated(2);
    EXPECT_EQ(panel.question(), QStringLiteral("How many cups?"));
    EXPECT_EQ(panel.historyBox()->currentIndex(), 0);
    EXPECT_EQ(asked.count(), 0);  // picking does not ask
}

TEST(AskHistory, TheWindowKeepsItInSettings) {
    QSettings().setValue(kKey, QStringList{QStringLiteral("old question")});
    {
        MainWindow window(withSettings(true));
        EXPECT_EQ(window.askPanel()->history(), QStringList{QStringLiteral("old question")});
        window.askPanel()->addToHistory(QStringLiteral("new question"));
        EXPECT_EQ(QSettings().value(kKey).toStringList(),
                  (QStringList{QStringLiteral("new question"), QStringLiteral("old question")}));
    }
    {
        MainWindow window(withSettings(false));
        EXPECT_TRUE(window.askPanel()->history().isEmpty());
        window.askPanel()->addToHistory(QStringLiteral("not kept"));
        EXPECT_EQ(QSettings().value(kKey).toStringList().size(), 2);
    }
    QSettings().remove(kKey);
}
