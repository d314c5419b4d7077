// AttentionController: the glue between the current question's result (QuestionResult: geometry + captured
// attention maps, kept here, in app/) and what shows it: the HeatmapOverlay on the ImageView and the
// AttentionPanel (layer strip, head and query pickers, style).
//
// Selecting a layer, a head selection (one head, a set, the mean, the label settings' grounding heads) or a
// query (rows of a kind, or one answer token) recomputes from the kept maps (attention_maps.h); nothing here
// runs the model or starts a job. The per-layer maps of the current head / query selection are cached, so
// moving along the layer strip only swaps the grid the overlay draws.
//
//   auto* attention = new AttentionController(view, panel, this);
//   attention->setGroundingHeads(AttentionController::headsByLayer(labelSettings.grounding));
//   attention->setResult(askSession->result());        // after an answer; nullptr clears
//   QString text = attention->readOut(QPoint(120, 80));  // "cell (3, 4) = 0.0021 · layer 14 · heads 0,2 · …"
//
// Thread affinity: GUI thread.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include <QList>
#include <QObject>
#include <QPoint>
#include <QPointer>
#include <QString>

#include "app/ask_session.h"
#include "app/attention_maps.h"
#include "core/sdrpn/labels.h"
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

    // The grounding heads per decoder layer (an empty vector: every head of that layer), what the panel's
    // "Grounding heads" entry averages. A layer without an entry disables it; with it chosen, such a layer
    // shows the mean of heads and the summary says so.
    void setGroundingHeads(std::map<int, std::vector<int>> headsByLayer);
    const std::map<int, std::vector<int>>& groundingHeads() const { return m_grounding; }
    // The label settings' grounding groups per layer: the union of a layer's groups, every head when one
    // of them is empty.
    static std::map<int, std::vector<int>> headsByLayer(const std::vector<sdrpn::HeadGroup>& groups);

    // What the panel selects, in terms of the maps, at the selected layer slot.
    MapSelection selection() const;
    // The same at another layer slot (the grounding heads are per layer).
    MapSelection selectionAt(int slot) const;
    // The decoder layer number of the selected slot (-1 when none).
    int selectedLayer() const;
    // The grid the overlay shows (empty when none).
    const std::vector<float>& currentGrid() const { return m_grid; }
    const TokenGrid& tokenGrid() const { return m_tokenGrid; }

    // The hover read-out for image pixel `pixel`: cell, value, layer, heads, query ("cell (3, 4) = 0.0021 ·
    // layer 14 · grounding heads 13,24,26 · answer token 2"); empty when the pixel is on no drawn cell or
    // there are no maps.
    QString readOut(const QPoint& pixel) const;
    // The head selection at the selected layer in words: "mean of heads", "head 4", "heads 0,2",
    // "grounding heads 1,3", "mean of heads (layer 5 has no grounding heads)".
    QString headText() const;
    // The query in words: "answer tokens", "answer token 2", ...
    QString queryText() const;

signals:
    // The overlay's grid changed (selection or result).
    void mapChanged();

private:
    // What the cached per-layer grids depend on besides the maps.
    struct GridKey {
        bool valid = false;  // false: no grids
        int choice = -1;
        int head = -1;
        QList<int> set;
        int query = -1;
        int answerToken = 0;
        std::map<int, std::vector<int>> grounding;  // only for the grounding choice
        bool operator==(const GridKey& o) const {
            return valid == o.valid && choice == o.choice && head == o.head && set == o.set &&
                   query == o.query && answerToken == o.answerToken && grounding == o.grounding;
        }
    };
    GridKey currentKey() const;
    void rebuildLayers();  // per-layer grids + thumbnails for the current head / query
    void showSelectedLayer();
    void refreshThumbnails();
    void updateGroundingEntry();  // the panel's grounding entry for the selected layer
    // The grounding heads of the decoder layer at `slot`, or nullptr when it has none.
    const std::vector<int>* groundingAt(int slot) const;

    QPointer<ImageView> m_view;
    AttentionPanel* m_panel;
    std::shared_ptr<HeatmapOverlay> m_overlay;
    std::shared_ptr<const QuestionResult> m_result;
    TokenGrid m_tokenGrid;
    std::vector<QRectF> m_cells;
    std::vector<bool> m_drawn;
    std::vector<std::vector<float>> m_layerGrids;  // per slot, for the current head / query
    GridKey m_gridsKey;                            // the selection m_layerGrids was computed for
    std::map<int, std::vector<int>> m_grounding;
    std::vector<float> m_grid;
};
