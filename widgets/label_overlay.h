// LabelOverlay: SD-RPN's denoised view of a grounding map drawn over the image: every image-token cell
// coloured by its pseudo-label (foreground, background, ignore), the sink cells marked, the foreground box
// framed. Plain data in (labels 1 / 0 / −100 per cell, row-major; sink flags; where each cell lies in image
// pixels; the box in image pixels), so it knows nothing of the core.
//
//   auto labels = std::make_shared<LabelOverlay>();
//   labels->setLabels(24, 24, values, sinks, cellRects, boxRect);
//   view->addOverlay(labels);                         // view->update() after later changes
//
// When the sample gives no labels (every cell ignore: box too large, no signal), `candidates` (cells that
// would be foreground) are outlined instead, so the reason stays visible.
//
// Thread affinity: GUI thread.
#pragma once

#include <cstdint>
#include <vector>

#include <QColor>
#include <QRectF>

#include "widgets/image_view.h"

class LabelOverlay : public ImageOverlay {
public:
    static constexpr int kForeground = 1;
    static constexpr int kBackground = 0;
    static constexpr int kIgnore = -100;

    // The colours of the legend.
    static QColor foregroundColor() { return QColor(255, 112, 40); }
    static QColor backgroundColor() { return QColor(48, 128, 255); }
    static QColor ignoreColor() { return QColor(128, 128, 128); }
    static QColor sinkColor() { return QColor(255, 40, 200); }
    static QColor boxColor() { return QColor(255, 225, 40); }

    // All vectors hold rows * cols entries (`sinks` and `candidates` may be empty); mismatched sizes clear.
    void setLabels(int rows, int cols, std::vector<int> labels, std::vector<std::uint8_t> sinks,
                   std::vector<QRectF> cells, const QRectF& box, std::vector<std::uint8_t> candidates = {});
    void clear();
    bool isEmpty() const { return m_labels.empty(); }

    void setVisible(bool visible) { m_visible = visible; }
    bool isVisible() const { return m_visible; }
    void setOpacity(double opacity) { m_opacity = opacity; }

    int rows() const { return m_rows; }
    int cols() const { return m_cols; }
    const std::vector<int>& labels() const { return m_labels; }
    const std::vector<std::uint8_t>& sinks() const { return m_sinks; }
    QRectF box() const { return m_box; }
    // Cells with each label.
    int count(int label) const;

    void paint(QPainter& painter, const QRectF& imageRect, double zoom) override;

private:
    int m_rows = 0, m_cols = 0;
    std::vector<int> m_labels;
    std::vector<std::uint8_t> m_sinks;
    std::vector<std::uint8_t> m_candidates;
    std::vector<QRectF> m_cells;
    QRectF m_box;
    double m_opacity = 0.5;
    bool m_visible = true;
};
