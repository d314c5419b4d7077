// AttentionPanel: the controls for "where each layer looks": the layer strip (one thumbnail per layer), a
// head picker (the mean of heads, the label settings' grounding heads of the layer, a typed set of heads such
// as "0,3,5-7", or one head), a query picker (which query tokens' attention is shown; one entry may pick a
// single answer token with a spin box), and the heat map's look (colour map, opacity, smooth or blocky, grid
// lines), with a colour bar of the value range.
//
// It holds no maps: the owner (app/) computes grids from its data, gives thumbnails, the value range, the
// grounding heads of the current layer and the number of answer tokens, and listens to selectionChanged() /
// styleChanged(). Re-selecting never asks for anything but a recomputation.
//
//   auto* panel = new AttentionPanel;
//   panel->setHeadCount(32);
//   panel->setQueryOptions({"Last prompt token", "Question tokens (mean)", "Answer tokens (mean)",
//                           "One answer token"}, {true, true, false, false}, 2);
//   panel->setAnswerTokenChoice(3, answerRows);
//   panel->setGroundingHeads({13, 24, 26});   // for the current layer; clearGroundingHeads() when none
//   panel->setLayerThumbnails(thumbs, labels);
//   connect(panel, &AttentionPanel::selectionChanged, this, &Owner::recompute);
//
// Thread affinity: GUI thread only.
#pragma once

#include <optional>

#include <QList>
#include <QString>
#include <QStringList>
#include <QWidget>

#include "widgets/heatmap_overlay.h"

class LayerStrip;
class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QScrollArea;
class QSlider;
class QSpinBox;

class ColorBar : public QWidget {
    Q_OBJECT
public:
    explicit ColorBar(QWidget* parent = nullptr);
    void setColorMap(ColorMap map);
    // No range: the bar is drawn without numbers.
    void setRange(double low, double high);
    void clearRange();
    QSize sizeHint() const override { return {180, 34}; }

protected:
    void paintEvent(QPaintEvent* event) override;

private:
    ColorMap m_map = ColorMap::Viridis;
    bool m_hasRange = false;
    double m_low = 0, m_high = 0;
};

class AttentionPanel : public QWidget {
    Q_OBJECT
public:
    explicit AttentionPanel(QWidget* parent = nullptr);

    LayerStrip* layerStrip() const { return m_strip; }

    // Thumbnails and labels, one per captured layer. The current layer is kept when still in range.
    void setLayerThumbnails(const QList<QImage>& thumbnails, const QStringList& labels);
    // Clears the thumbnails and shows `message` where they were (e.g. "Ask a question to see…").
    void clearMaps(const QString& message);
    int layerIndex() const;
    void setLayerIndex(int index);

    // What the head picker selects.
    enum class HeadChoice {
        Mean,       // the mean over every head
        Grounding,  // the grounding heads of the current layer (groundingHeads())
        Set,        // the typed set of heads (headSet())
        One,        // one head (headIndex())
    };

    // The picker's entries: "Mean of heads", "Grounding heads (preset)", "Set of heads…", "Head 0" ..
    // "Head count-1". The selection is kept when still in range, else it becomes the mean.
    void setHeadCount(int count);
    int headCount() const;
    HeadChoice headChoice() const;
    int headIndex() const;  // the one head; -1 for any other choice
    // -1: the mean of heads; 0 .. count-1: that head (out of range: no change).
    void setHeadIndex(int head);
    // The set of heads (sorted, unique) while HeadChoice::Set is selected, else empty.
    QList<int> headSet() const;
    // Selects "Set of heads…" with `heads`; false (no change) when empty or a head is out of range.
    bool setHeadSet(const QList<int>& heads);
    // Selects "Grounding heads (preset)", whether or not the current layer has any (the owner then shows
    // the mean and says so).
    void selectGroundingHeads();

    // The label settings' grounding heads of the current layer (empty: every head of the layer), given by
    // the owner on every layer change; clearGroundingHeads() when the layer has none, which disables the
    // entry. Neither changes the selection nor emits selectionChanged().
    void setGroundingHeads(const QList<int>& heads);
    void clearGroundingHeads();
    bool hasGroundingHeads() const { return m_hasGrounding; }
    QList<int> groundingHeads() const { return m_groundingHeads; }

    // A plain description of the head selection: "mean of heads", "grounding heads 1,3", "heads 0,2",
    // "head 4".
    QString headDescription() const;

    // "0,3,5-7" → {0, 3, 5, 6, 7} (sorted, unique; spaces and empty items ignored); nullopt with a message
    // in `error` for text that is not such a list, an empty list or a head outside 0 .. count-1.
    static std::optional<QList<int>> parseHeadList(const QString& text, int count, QString* error = nullptr);
    // {0, 1, 2, 3, 7} → "0-3,7": the inverse of parseHeadList.
    static QString formatHeadList(const QList<int>& heads);

    // Keyboard scrubbing: the previous / next layer of the strip, and the previous / next enabled entry of
    // the head picker ("Mean of heads", "Grounding heads", "Set of heads…", head 0, head 1, ...). No-ops at
    // the ends.
    void selectPreviousLayer();
    void selectNextLayer();
    void selectPreviousHead();
    void selectNextHead();

    // Query choices; disabled ones are shown greyed (no such rows). `preferred` is selected when the
    // current choice is disabled.
    void setQueryOptions(const QStringList& names, const QList<bool>& enabled, int preferred = 0);
    int queryIndex() const;
    void setQueryIndex(int index);
    // The query entry `queryIndex` picks one of `tokenCount` answer tokens: while it is selected a spin box
    // (0 .. tokenCount-1) shows which. The token index is kept when still in range.
    void setAnswerTokenChoice(int queryIndex, int tokenCount);
    int answerTokenIndex() const;
    void setAnswerTokenIndex(int index);

    HeatmapStyle style() const { return m_style; }
    void setStyle(const HeatmapStyle& style);
    bool overlayVisible() const;
    void setOverlayVisible(bool visible);

    // The value range of the shown map (for the colour bar) and a one-line description of it.
    void setValueRange(double low, double high);
    void setSummary(const QString& text);
    QString summary() const;

protected:
    void resizeEvent(QResizeEvent* event) override;
    // The layer strip's ↑/↓ pick heads (←/→ stay layers).
    bool eventFilter(QObject* watched, QEvent* event) override;

signals:
    // Layer, head or query changed (by the user or a setter).
    void selectionChanged();
    void styleChanged(const HeatmapStyle& style);
    void overlayVisibilityChanged(bool visible);

private:
    void emitStyle();
    void fitThumbnails();
    void headEntryChosen();
    void headSetEdited(const QString& text);
    void updateGroundingEntry();
    void updateTokenPicker();
    void selectHeadEntry(int step);
    // The heads of the entry that was selected before "Set of heads…" (a starting set to edit).
    QList<int> headsOfEntry(int entry) const;

    LayerStrip* m_strip = nullptr;
    QScrollArea* m_stripScroll = nullptr;
    QComboBox* m_head = nullptr;
    QLineEdit* m_headSetEdit = nullptr;
    QLabel* m_headSetMessage = nullptr;
    QWidget* m_headSetRow = nullptr;
    QComboBox* m_query = nullptr;
    QSpinBox* m_token = nullptr;
    QWidget* m_tokenRow = nullptr;
    QComboBox* m_colorMap = nullptr;
    QSlider* m_opacity = nullptr;
    QCheckBox* m_smooth = nullptr;
    QCheckBox* m_grid = nullptr;
    QCheckBox* m_show = nullptr;
    ColorBar* m_colorBar = nullptr;
    QLabel* m_summary = nullptr;
    HeatmapStyle m_style;
    int m_headCount = 0;
    int m_headEntry = 0;   // the head picker's current entry (the previous one while it changes)
    QList<int> m_headSet;  // the last valid typed set of heads
    bool m_hasGrounding = false;
    QList<int> m_groundingHeads;
    int m_tokenChoice = -1;   // the query entry that picks one answer token
    bool m_updating = false;  // setters in progress: one signal at the end, not one per widget
};
