// The studio's tools in the main window: Jobs › Label a dataset… / Train RPN…, File › Export (view,
// figure, maps, boxes: one menu), the Plots and Training docks in the View menu; the Plots dock follows
// the maps of an answer and the threshold settings, a click on a layer selects it, and a finished run's RPN
// offered for loading lands in the window's RpnSession.
#include <QAction>
#include <QDockWidget>
#include <QMenu>
#include <QMenuBar>
#include <QRegularExpression>
#include <QSignalSpy>
#include <QTest>

#include "app/attention_controller.h"
#include "app/attention_maps.h"
#include "app/export.h"
#include "app/main_window.h"
#include "app/model_session.h"
#include "app/studio_tools.h"
#include "app/threshold_controller.h"
#include "core/pipeline/ask.h"
#include "core/sdrpn/rpn.h"
#include "tests/gui/gui_test_support.h"
#include "tests/gui/window_test_support.h"
#include "tests/support/test_support.h"
#include "widgets/ask_panel.h"
#include "widgets/attention_panel.h"
#include "widgets/plots.h"

namespace {

using sdrpn::test::fixturePath;
using sdrpn::test::noSettings;
using sdrpn::test::qs;
using sdrpn::test::readyWindow;
using sdrpn::test::scratchDir;
using sdrpn::test::waitForIdle;

QMenu* topMenu(MainWindow& window, const QString& title) {
    for (QAction* action : window.menuBar()->actions()) {
        if (action->menu() && action->text().remove(QLatin1Char('&')) == title) return action->menu();
    }
    return nullptr;
}

QStringList actionTexts(const QMenu* menu) {
    QStringList texts;
    for (QAction* action : menu->actions()) {
        if (action->isSeparator()) continue;
        texts << action->text().remove(QLatin1Char('&'));
        if (action->menu()) {
            for (QAction* sub : action->menu()->actions())
                if (!sub->isSeparator())
                    texts << action->text().remove(QLatin1Char('&')) + " › " +
                                 sub->text().remove(QLatin1Char('&'));
        }
    }
    return texts;
}

}  // namespace

TEST(StudioTools, TheMenusHaveTheActionsAndOneExportMenu) {
    MainWindow window(noSettings());
    StudioTools* tools = window.studioTools();
    ASSERT_NE(tools, nullptr);

    QMenu* jobs = topMenu(window, "Jobs");
    ASSERT_NE(jobs, nullptr);
    EXPECT_TRUE(jobs->actions().contains(tools->labelAction()));
    EXPECT_TRUE(jobs->actions().contains(tools->trainAction()));
    const QStringList jobTexts = actionTexts(jobs);
    EXPECT_TRUE(jobTexts.contains("Label a dataset…")) << jobTexts.join(", ").toStdString();
    EXPECT_TRUE(jobTexts.contains("Train RPN…"));

    QMenu* file = topMenu(window, "File");
    ASSERT_NE(file, nullptr);
    const QStringList fileTexts = actionTexts(file);
    for (const char* entry : {"Export › View as PNG…", "Export › Export figure…", "Export › Export maps…",
                              "Export › Export boxes…"})
        EXPECT_TRUE(fileTexts.contains(entry)) << entry << " in " << fileTexts.join(", ").toStdString();
    EXPECT_EQ(fileTexts.filter(QRegularExpression("^Export")).count(QStringLiteral("Export")), 1)
        << fileTexts.join(", ").toStdString();

    QMenu* view = topMenu(window, "View");
    ASSERT_NE(view, nullptr);
    EXPECT_TRUE(view->actions().contains(tools->plotsDock()->toggleViewAction()));
    EXPECT_TRUE(view->actions().contains(tools->trainingDock()->toggleViewAction()));
    // Both docks belong to the window.
    EXPECT_EQ(window.dockWidgetArea(tools->plotsDock()), Qt::RightDockWidgetArea);
    EXPECT_NE(window.dockWidgetArea(tools->trainingDock()), Qt::NoDockWidgetArea);
}

TEST(StudioTools, ThePlotsFollowTheMapsTheSettingsAndTheLayerClicks) {
    auto window = readyWindow();
    ASSERT_EQ(window->modelSession()->state(), ModelSession::State::Ready)
        << window->lastError().toStdString();
    StudioTools* tools = window->studioTools();
    EXPECT_EQ(tools->layerStatsPlot()->layerCount(), 0);
    EXPECT_EQ(tools->mapHistogram()->binCount(), 0);

    QSignalSpy answered(window->askSession(), &AskSession::answered);
    window->askPanel()->setMaxNewTokens(4);
    ASSERT_TRUE(window->ask("What is in the picture?"));
    ASSERT_TRUE(answered.wait(60000)) << window->lastError().toStdString();

    // One point per captured layer; the histogram of the shown map with the three threshold lines.
    const auto result = window->attention()->result();
    ASSERT_NE(result, nullptr);
    EXPECT_EQ(tools->layerStatsPlot()->layerCount(), int(result->maps.layers.size()));
    EXPECT_GT(tools->mapHistogram()->binCount(), 0);
    EXPECT_EQ(tools->mapHistogram()->thresholdCount(), 3);
    EXPECT_EQ(tools->layerStatsPlot()->currentLayer(), window->attention()->selectedLayer());

    // Another layer in the strip moves the plot's mark.
    AttentionPanel* panel = window->attentionPanel();
    panel->setLayerIndex(panel->layerIndex() == 0 ? 1 : 0);
    EXPECT_EQ(tools->layerStatsPlot()->currentLayer(), window->attention()->selectedLayer());

    // A layer picked in the plot is selected in the attention view.
    const int wanted = result->maps.layers.back().layer;
    emit tools->layerRequested(wanted);
    EXPECT_EQ(window->attention()->selectedLayer(), wanted);
    EXPECT_EQ(panel->layerIndex(), int(result->maps.layers.size()) - 1);

    // A set of heads: the exported maps hold those heads' mean for every layer and are named after them,
    // and the figure's caption says which heads.
    ASSERT_TRUE(panel->setHeadSet({0, 1}));
    const std::vector<ExportMap> exported = tools->currentMaps();
    ASSERT_EQ(exported.size(), result->maps.layers.size());
    for (std::size_t slot = 0; slot < exported.size(); ++slot) {
        MapSelection pair;
        pair.layerSlot = int(slot);
        pair.heads = {0, 1};
        pair.query = window->attention()->selection().query;
        EXPECT_EQ(exported[slot].values, attentionGrid(result->maps, pair, window->attention()->tokenGrid()));
        EXPECT_TRUE(exported[slot].name.contains(QStringLiteral(".heads_0_1.")))
            << exported[slot].name.toStdString();
    }
    EXPECT_TRUE(tools->currentFigure().caption.contains(QStringLiteral("heads 0,1")))
        << tools->currentFigure().caption.toStdString();

    // The thresholds dock's label settings reach the plots.
    sdrpn::LabelSettings settings = window->thresholds()->labelSettings();
    settings.sinkThreshold = 2.5e-3;
    window->thresholds()->setLabelSettings(settings);
    EXPECT_DOUBLE_EQ(tools->labelSettings().sinkThreshold, settings.sinkThreshold);
    EXPECT_DOUBLE_EQ(tools->mapHistogram()->thresholds().value(0).value, settings.sinkThreshold);

    // A new image drops the maps: the plots clear.
    QSignalSpy loaded(window.get(), &MainWindow::imageLoaded);
    window->openImage(qs(fixturePath("tiny-llava-hf/image_640x480.png")));
    ASSERT_TRUE(loaded.wait(20000));
    EXPECT_EQ(tools->layerStatsPlot()->layerCount(), 0);
}

TEST(StudioTools, AFinishedRunsRpnLoadsIntoTheRpnSession) {
    auto window = readyWindow();
    const auto model = window->modelSession()->pipelineModel();
    ASSERT_NE(model, nullptr) << window->lastError().toStdString();
    const int layers = model->backbone->info().layers;
    sdrpn::RpnConfig config;
    config.K = layers / 2;
    config.T = 2;
    const std::string folder = scratchDir("studio-tools-rpn") + "/run";
    sdrpn::saveRpn(sdrpn::initRpnFromBackbone(*model->backbone, config), folder);

    RpnSession* rpn = window->rpnSession();
    QSignalSpy loaded(rpn, &RpnSession::loaded);
    emit window->studioTools()->loadRpnRequested(qs(folder));
    ASSERT_TRUE(loaded.wait(60000)) << window->lastError().toStdString();
    EXPECT_EQ(rpn->state(), RpnSession::State::Ready);
    EXPECT_TRUE(rpn->hasRpn());
    EXPECT_EQ(rpn->model(), model.get());
    EXPECT_TRUE(rpn->description().contains("run")) << rpn->description().toStdString();
    EXPECT_TRUE(window->isRoiViewVisible());
}
