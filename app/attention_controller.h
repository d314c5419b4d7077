// AttentionController: the glue between the current question's result (QuestionResult: geometry + captured
// attention maps, kept here, in app/) and what shows it: the HeatmapOverlay on the ImageView and the
// AttentionPanel (layer strip, head and query pickers, style).
//
// Selecting a layer, a head or a query recomputes from the kept maps (attention_maps.h); nothing here runs
// the model or starts a job. The per-layer maps of the current head / query selection are cached, so moving
// along the layer strip only swaps the grid the overlay draws.
//
//   auto* attention = new AttentionController(view, panel, this);
//   attention->setResult(askSession->result());        // after an answer; nullptr clears
//   QString text = attention->readOut(QPoint(120, 80));  // "cell (3, 4) = 0.0021 · layer 14 · mean of heads"
//
// Thread affinity: GUI thread.
#pragma once

#include <memory>
#include <vector>

#include <QObject>
#include <QPoint>
#include <QPointer>
#include <QString>

#include "app/ask_session.h"
#include "app/attention_maps.h"
#include "widgets/heatmap_overlay.h"

class AttentionPanel;
class ImageView;

class AttentionController : public QObject {
    Q_OBJECT
public:
    AttentionController(ImageView* view, AttentionPanel* panel, QObject* parent = nullptr);
    ~AttentionController() override;

    // Shows `result`'s maps (nullptr: none; the panel says why with `emptyMessage`).
    void setResult(std::shared_ptr<const QuestionResult> result, const QString& emptyMessage = {});
    std::shared_ptr<const QuestionResult> result() const { return m_result; }

    std::shared_ptr<HeatmapOverlay> overlay() const { return m_overlay; }
    // What the panel selects, in terms of the maps.
    MapSelection selection() const;
    // The decoder layer number of the selected slot (-1 when none).
    int selectedLayer() const;
    // The grid the overlay shows (empty when none).
    const std::vector<float>& currentGrid() const { return m_grid; }
    const TokenGrid& tokenGrid() const { return m_tokenGrid; }

    // The hover read-out for image pixel `pixel`: cell, value, layer, head, query; empty when the pixel
    // is on no drawn cell or there are no maps.
    QString readOut(const QPoint& pixel) const;

signals:
    // The overlay's grid changed (selection or result).
    void mapChanged();

private:
    void rebuildLayers();  // per-layer grids + thumbnails for the current head / query
    void showSelectedLayer();
    void refreshThumbnails();
    QString headText(int head) const;

    QPointer<ImageView> m_view;
    AttentionPanel* m_panel;
    std::shared_ptr<HeatmapOverlay> m_overlay;
    std::shared_ptr<const QuestionResult> m_result;
    TokenGrid m_tokenGrid;
    std::vector<QRectF> m_cells;
    std::vector<bool> m_drawn;
    std::vector<std::vector<float>> m_layerGrids;  // per slot, for the current head / query
    int m_gridsHead = -2;                          // the selection m_layerGrids was computed for
    int m_gridsQuery = -1;
    std::vector<float> m_grid;
};
