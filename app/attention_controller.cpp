#include "app/attention_controller.h"

#include <algorithm>
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
        updateGroundingEntry();
        if (!m_result) return;
        if (!(currentKey() == m_gridsKey)) rebuildLayers();
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
    m_gridsKey = {};
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
        updateGroundingEntry();
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
    const std::size_t answerRows = queryRows(maps, QueryChoice::Answer).size();
    for (int q = 0; q < names.size(); ++q) {
        const QueryChoice choice = QueryChoice(q);
        const std::size_t n =
            choice == QueryChoice::AnswerToken ? answerRows : queryRows(maps, choice).size();
        enabled << (n > 0);
        if ((choice == QueryChoice::Question || choice == QueryChoice::Answer) && n > 0)
            names[q] += tr(" · %1 rows").arg(n);
    }
    int preferred = int(QueryChoice::Answer);
    if (!enabled.value(preferred)) preferred = enabled.value(int(QueryChoice::Question)) ? 1 : 0;

    const bool firstMaps = m_panel->layerStrip()->count() == 0;
    {
        const QSignalBlocker block(m_panel);
        m_panel->setHeadCount(maps.heads);
        m_panel->setQueryOptions(names, enabled, preferred);
        m_panel->setAnswerTokenChoice(int(QueryChoice::AnswerToken), int(answerRows));
    }
    rebuildLayers();
    if (firstMaps) {
        // The middle of the stack: early layers spread evenly, late ones gather on a few sink tokens.
        const QSignalBlocker block(m_panel);
        m_panel->setLayerIndex(int(maps.layers.size()) / 2);
    }
    updateGroundingEntry();
    showSelectedLayer();
}

std::map<int, std::vector<int>> AttentionController::headsByLayer(
    const std::vector<sdrpn::HeadGroup>& groups) {
    std::map<int, std::vector<int>> out;
    std::map<int, bool> every;
    for (const auto& group : groups) {
        std::vector<int>& heads = out[group.layer];
        if (group.heads.empty()) every[group.layer] = true;
        heads.insert(heads.end(), group.heads.begin(), group.heads.end());
    }
    for (auto& [layer, heads] : out) {
        if (every[layer]) {
            heads.clear();
            continue;
        }
        std::sort(heads.begin(), heads.end());
        heads.erase(std::unique(heads.begin(), heads.end()), heads.end());
    }
    return out;
}

void AttentionController::setGroundingHeads(std::map<int, std::vector<int>> headsByLayer) {
    if (headsByLayer == m_grounding) return;
    m_grounding = std::move(headsByLayer);
    updateGroundingEntry();
    if (!m_result || m_panel->headChoice() != AttentionPanel::HeadChoice::Grounding) return;
    rebuildLayers();
    showSelectedLayer();
}

const std::vector<int>* AttentionController::groundingAt(int slot) const {
    if (!m_result || slot < 0 || slot >= int(m_result->maps.layers.size())) return nullptr;
    const auto it = m_grounding.find(m_result->maps.layers[std::size_t(slot)].layer);
    return it == m_grounding.end() ? nullptr : &it->second;
}

void AttentionController::updateGroundingEntry() {
    const std::vector<int>* heads = groundingAt(m_panel->layerIndex());
    if (heads) {
        m_panel->setGroundingHeads(QList<int>(heads->begin(), heads->end()));
    } else {
        m_panel->clearGroundingHeads();
    }
}

MapSelection AttentionController::selection() const {
    return selectionAt(m_panel->layerIndex());
}

MapSelection AttentionController::selectionAt(int slot) const {
    MapSelection s;
    s.layerSlot = slot;
    s.query = QueryChoice(std::max(0, m_panel->queryIndex()));
    s.answerToken = m_panel->answerTokenIndex();
    switch (m_panel->headChoice()) {
        case AttentionPanel::HeadChoice::Mean:
            break;
        case AttentionPanel::HeadChoice::One:
            s.head = m_panel->headIndex();
            break;
        case AttentionPanel::HeadChoice::Set: {
            const QList<int> set = m_panel->headSet();
            s.heads.assign(set.begin(), set.end());
            break;
        }
        case AttentionPanel::HeadChoice::Grounding:
            // A layer without grounding heads falls back to the mean (headText() says so).
            if (const std::vector<int>* heads = groundingAt(slot)) s.heads = *heads;
            break;
    }
    return s;
}

AttentionController::GridKey AttentionController::currentKey() const {
    GridKey key;
    key.valid = true;
    key.choice = int(m_panel->headChoice());
    key.head = m_panel->headIndex();
    key.set = m_panel->headSet();
    key.query = m_panel->queryIndex();
    // The token matters only to the one-token query.
    key.answerToken = key.query == int(QueryChoice::AnswerToken) ? m_panel->answerTokenIndex() : 0;
    if (m_panel->headChoice() == AttentionPanel::HeadChoice::Grounding) key.grounding = m_grounding;
    return key;
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
    m_gridsKey = currentKey();
    const auto& maps = m_result->maps;
    m_layerGrids.reserve(maps.layers.size());
    for (std::size_t slot = 0; slot < maps.layers.size(); ++slot)
        m_layerGrids.push_back(attentionGrid(maps, selectionAt(int(slot)), m_tokenGrid));
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

QString AttentionController::headText() const {
    const int heads = m_result ? m_result->maps.heads : 0;
    const MapSelection s = selection();
    const std::vector<int> chosen = s.chosenHeads();
    const QString list = AttentionPanel::formatHeadList(QList<int>(chosen.begin(), chosen.end()));
    if (m_panel->headChoice() == AttentionPanel::HeadChoice::Grounding) {
        if (!groundingAt(s.layerSlot))
            return tr("mean of %1 heads (layer %2 has no grounding heads)").arg(heads).arg(selectedLayer());
        if (chosen.empty()) return tr("grounding heads (all %1)").arg(heads);
        return tr("grounding heads %1").arg(list);
    }
    if (chosen.empty()) return tr("mean of %1 heads").arg(heads);
    if (chosen.size() == 1) return tr("head %1").arg(chosen.front());
    return tr("heads %1").arg(list);
}

QString AttentionController::queryText() const {
    const MapSelection s = selection();
    return queryChoiceShortName(s.query, s.answerToken);
}

void AttentionController::showSelectedLayer() {
    const int slot = m_panel->layerIndex();
    m_grid =
        slot >= 0 && slot < int(m_layerGrids.size()) ? m_layerGrids[std::size_t(slot)] : std::vector<float>{};
    if (m_grid.empty()) {
        m_overlay->clear();
        QString why;
        if (m_result) {
            const std::vector<int> heads = selection().chosenHeads();
            if (!heads.empty() && heads.back() >= m_result->maps.heads)
                why = tr(" (%1: the model has %2 heads)").arg(headText()).arg(m_result->maps.heads);
        }
        m_panel->setSummary(tr("No map for this selection%1.").arg(why));
    } else {
        m_overlay->setGrid(m_tokenGrid.rows, m_tokenGrid.cols, m_grid, m_cells);
        const auto [low, high] = m_overlay->valueRange();
        m_panel->setValueRange(low, high);
        int peak = -1;
        for (std::size_t i = 0; i < m_grid.size(); ++i)
            if (m_drawn[i] && (peak < 0 || m_grid[i] > m_grid[std::size_t(peak)])) peak = int(i);
        QString text = tr("Layer %1 of %2 · %3 · %4")
                           .arg(selectedLayer())
                           .arg(m_result->maps.layers.size())
                           .arg(headText(), queryText());
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
    return tr("cell (%1, %2) = %3 · layer %4 · %5 · %6")
        .arg(row)
        .arg(col)
        .arg(formatValue(m_grid[std::size_t(row) * m_tokenGrid.cols + col]))
        .arg(selectedLayer())
        .arg(headText(), queryText());
}
