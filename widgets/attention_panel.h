// AttentionPanel: the controls for "where each layer looks": the layer strip (one thumbnail per layer), a
// head picker (mean of heads or one head), a query picker (which query tokens' attention is shown), and the
// heat map's look (colour map, opacity, smooth or blocky, grid lines), with a colour bar of the value range.
//
// It holds no maps: the owner (app/) computes grids from its data, gives thumbnails and the value range, and
// listens to selectionChanged() / styleChanged(). Re-selecting never asks for anything but a recomputation.
//
//   auto* panel = new AttentionPanel;
//   panel->setHeadCount(32);
//   panel->setQueryOptions({"Last prompt token", "Question tokens (mean)", "Answer tokens (mean)"},
//                          {true, true, false}, 2);
//   panel->setLayerThumbnails(thumbs, labels);
//   connect(panel, &AttentionPanel::selectionChanged, this, &Owner::recompute);
//
// Thread affinity: GUI thread only.
#pragma once

#include <QList>
#include <QString>
#include <QStringList>
#include <QWidget>

#include "widgets/heatmap_overlay.h"

class LayerStrip;
class QCheckBox;
class QComboBox;
class QLabel;
class QScrollArea;
class QSlider;

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

    // Heads 0 .. count-1 plus "mean of heads" (index -1). The selection is kept when still in range.
    void setHeadCount(int count);
    int headIndex() const;  // -1: mean of heads
    void setHeadIndex(int head);
    int headCount() const;

    // Keyboard scrubbing: the previous / next layer of the strip, and the previous / next entry of the
    // head picker ("mean of heads", head 0, head 1, ...). No-ops at the ends.
    void selectPreviousLayer();
    void selectNextLayer();
    void selectPreviousHead();
    void selectNextHead();

    // Query choices; disabled ones are shown greyed (no such rows). `preferred` is selected when the
    // current choice is disabled.
    void setQueryOptions(const QStringList& names, const QList<bool>& enabled, int preferred = 0);
    int queryIndex() const;
    void setQueryIndex(int index);

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

    LayerStrip* m_strip = nullptr;
    QScrollArea* m_stripScroll = nullptr;
    QComboBox* m_head = nullptr;
    QComboBox* m_query = nullptr;
    QComboBox* m_colorMap = nullptr;
    QSlider* m_opacity = nullptr;
    QCheckBox* m_smooth = nullptr;
    QCheckBox* m_grid = nullptr;
    QCheckBox* m_show = nullptr;
    ColorBar* m_colorBar = nullptr;
    QLabel* m_summary = nullptr;
    HeatmapStyle m_style;
    bool m_updating = false;  // setters in progress: one signal at the end, not one per widget
};
