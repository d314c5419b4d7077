#include "app/attention_controller.h"

#include <cmath>

#include <QList>
#include <QStringList>

#include "widgets/attention_panel.h"
#include "widgets/image_view.h"
#include "widgets/layer_strip.h"

namespace {

QString formatValue(double v) {
    if (v == 0.0) return QStringLiteral("0");
    const double a = std::abs(v);
    if (a >= 1e-3 && a < 1e4) return QString::number(v, 'g', 4);
    return QString::number(v, 'e', 3);
}

}  // namespace

AttentionController::AttentionController(ImageView* view, AttentionPanel* panel, QObject* parent)
    : QObject(parent), m_view(view), m_panel(panel), m_overlay(std::make_shared<HeatmapOverlay>()) {
    m_overlay->setStyle(m_panel->style());
    m_overlay->setVisible(m_panel->overlayVisible());
    m_view->addOverlay(m_overlay);
    connect(m_panel, &AttentionPanel::selectionChanged, this, [this] {
        if (!m_result) return;
        if (m_panel->headIndex() != m_gridsHead || m_panel->queryIndex() != m_gridsQuery) rebuildLayers();
        showSelectedLayer();
    });
    connect(m_panel, &AttentionPanel::styleChanged, this, [this](const HeatmapStyle& style) {
        const bool colours = style.colorMap != m_overlay->style().colorMap;
        m_overlay->setStyle(style);
        if (colours) refreshThumbnails();
        m_view->update();
    });
    connect(m_panel, &AttentionPanel::overlayVisibilityChanged, this, [this](bool visible) {
        m_overlay->setVisible(visible);
        m_view->update();
    });
}

AttentionController::~AttentionController() {
    // The view may outlive this controller (both are children of the window): take the overlay back.
    if (m_view) m_view->removeOverlay(m_overlay);
}

void AttentionController::setResult(std::shared_ptr<const QuestionResult> result,
                                    const QString& emptyMessage) {
    m_result = std::move(result);
    m_layerGrids.clear();
    m_grid.clear();
    m_gridsHead = -2;
    m_gridsQuery = -1;
    m_overlay->clear();
    m_tokenGrid = {};
    m_cells.clear();
    m_drawn.clear();
    if (m_result) m_tokenGrid = imageTokenGrid(m_result->maps, m_result->geometry);
    if (!m_result || m_result->maps.empty() || m_tokenGrid.cells() == 0) {
        QString message = emptyMessage;
        if (message.isEmpty()) {
            message = m_result ? tr("This answer has no attention maps to show.")
                               : tr("Ask a question to see where each layer looks.");
        }
        m_panel->clearMaps(message);
        m_view->update();
        emit mapChanged();
        return;
    }
    m_cells = cellRectsOnSource(m_result->geometry, m_tokenGrid.rows, m_tokenGrid.cols);
    m_drawn = drawnCells(m_cells);

    const auto& maps = m_result->maps;
    // Query choices that have rows; the answer's by default, as "where the model looked while answering".
    QStringList names = queryChoiceNames();
    QList<bool> enabled;
    for (int q = 0; q < names.size(); ++q) {
        const std::size_t n = queryRows(maps, QueryChoice(q)).size();
        enabled << (n > 0);
        if (QueryChoice(q) != QueryChoice::LastPrompt && n > 0) names[q] += tr(" · %1 rows").arg(n);
    }
    int preferred = int(QueryChoice::Answer);
    if (!enabled.value(preferred)) preferred = enabled.value(int(QueryChoice::Question)) ? 1 : 0;

    const bool firstMaps = m_panel->layerStrip()->count() == 0;
    {
        const QSignalBlocker block(m_panel);
        m_panel->setHeadCount(maps.heads);
        m_panel->setQueryOptions(names, enabled, preferred);
    }
    rebuildLayers();
    if (firstMaps) {
        // The middle of the stack: early layers spread evenly, late ones gather on a few sink tokens.
        const QSignalBlocker block(m_panel);
        m_panel->setLayerIndex(int(maps.layers.size()) / 2);
    }
    showSelectedLayer();
}

MapSelection AttentionController::selection() const {
    MapSelection s;
    s.layerSlot = m_panel->layerIndex();
    s.head = m_panel->headIndex();
    s.query = QueryChoice(std::max(0, m_panel->queryIndex()));
    return s;
}

int AttentionController::selectedLayer() const {
    if (!m_result) return -1;
    const int slot = m_panel->layerIndex();
    if (slot < 0 || slot >= int(m_result->maps.layers.size())) return -1;
    return m_result->maps.layers[std::size_t(slot)].layer;
}

void AttentionController::rebuildLayers() {
    m_layerGrids.clear();
    if (!m_result) return;
    MapSelection s = selection();
    m_gridsHead = m_panel->headIndex();
    m_gridsQuery = m_panel->queryIndex();
    const auto& maps = m_result->maps;
    m_layerGrids.reserve(maps.layers.size());
    for (std::size_t slot = 0; slot < maps.layers.size(); ++slot) {
        s.layerSlot = int(slot);
        m_layerGrids.push_back(attentionGrid(maps, s, m_tokenGrid));
    }
    refreshThumbnails();
}

void AttentionController::refreshThumbnails() {
    if (!m_result) return;
    QList<QImage> thumbs;
    QStringList labels;
    const ColorMap map = m_overlay->style().colorMap;
    for (std::size_t slot = 0; slot < m_layerGrids.size(); ++slot) {
        thumbs << HeatmapOverlay::renderGrid(m_tokenGrid.rows, m_tokenGrid.cols, m_layerGrids[slot], map,
                                             m_drawn);
        labels << QString::number(m_result->maps.layers[slot].layer);
    }
    const QSignalBlocker block(m_panel);
    m_panel->setLayerThumbnails(thumbs, labels);
}

QString AttentionController::headText(int head) const {
    if (head >= 0) return tr("head %1").arg(head);
    return tr("mean of %1 heads").arg(m_result ? m_result->maps.heads : 0);
}

void AttentionController::showSelectedLayer() {
    const int slot = m_panel->layerIndex();
    m_grid =
        slot >= 0 && slot < int(m_layerGrids.size()) ? m_layerGrids[std::size_t(slot)] : std::vector<float>{};
    if (m_grid.empty()) {
        m_overlay->clear();
        m_panel->setSummary(tr("No map for this selection."));
    } else {
        m_overlay->setGrid(m_tokenGrid.rows, m_tokenGrid.cols, m_grid, m_cells);
        const auto [low, high] = m_overlay->valueRange();
        m_panel->setValueRange(low, high);
        int peak = -1;
        for (std::size_t i = 0; i < m_grid.size(); ++i)
            if (m_drawn[i] && (peak < 0 || m_grid[i] > m_grid[std::size_t(peak)])) peak = int(i);
        const MapSelection s = selection();
        QString text = tr("Layer %1 of %2 · %3 · %4")
                           .arg(selectedLayer())
                           .arg(m_result->maps.layers.size())
                           .arg(headText(s.head), queryChoiceShortName(s.query));
        if (peak >= 0) {
            text += tr(" · peak %1 at cell (%2, %3)")
                        .arg(formatValue(m_grid[std::size_t(peak)]))
                        .arg(peak / m_tokenGrid.cols)
                        .arg(peak % m_tokenGrid.cols);
        }
        m_panel->setSummary(text);
    }
    m_view->update();
    emit mapChanged();
}

QString AttentionController::readOut(const QPoint& pixel) const {
    if (!m_result || m_grid.empty()) return {};
    const auto cell = m_overlay->cellAt(QPointF(pixel) + QPointF(0.5, 0.5));
    if (!cell) return {};
    const auto [row, col] = *cell;
    const MapSelection s = selection();
    return tr("cell (%1, %2) = %3 · layer %4 · %5 · %6")
        .arg(row)
        .arg(col)
        .arg(formatValue(m_grid[std::size_t(row) * m_tokenGrid.cols + col]))
        .arg(selectedLayer())
        .arg(headText(s.head), queryChoiceShortName(s.query));
}
