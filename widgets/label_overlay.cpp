#include "widgets/label_overlay.h"

#include <algorithm>

#include <QPainter>
#include <QPen>

void LabelOverlay::setLabels(int rows, int cols, std::vector<int> labels, std::vector<std::uint8_t> sinks,
                             std::vector<QRectF> cells, const QRectF& box,
                             std::vector<std::uint8_t> candidates) {
    clear();
    const std::size_t n = std::size_t(std::max(rows, 0)) * std::size_t(std::max(cols, 0));
    if (n == 0 || labels.size() != n || cells.size() != n || (!sinks.empty() && sinks.size() != n) ||
        (!candidates.empty() && candidates.size() != n))
        return;
    m_rows = rows;
    m_cols = cols;
    m_labels = std::move(labels);
    m_sinks = std::move(sinks);
    m_cells = std::move(cells);
    m_candidates = std::move(candidates);
    m_box = box;
}

void LabelOverlay::clear() {
    m_rows = m_cols = 0;
    m_labels.clear();
    m_sinks.clear();
    m_candidates.clear();
    m_cells.clear();
    m_box = QRectF();
}

int LabelOverlay::count(int label) const {
    return int(std::count(m_labels.begin(), m_labels.end(), label));
}

void LabelOverlay::paint(QPainter& painter, const QRectF&, double zoom) {
    if (!m_visible || isEmpty()) return;
    painter.setRenderHint(QPainter::Antialiasing, false);
    painter.setPen(Qt::NoPen);
    // Fills: foreground strong, background lighter, ignore a grey wash so the three read apart.
    for (std::size_t i = 0; i < m_labels.size(); ++i) {
        if (m_cells[i].isEmpty()) continue;
        QColor c;
        double alpha = m_opacity;
        if (m_labels[i] == kForeground) {
            c = foregroundColor();
        } else if (m_labels[i] == kBackground) {
            c = backgroundColor();
            alpha *= 0.7;
        } else {
            c = ignoreColor();
            alpha *= 0.45;
        }
        painter.setOpacity(std::clamp(alpha, 0.0, 1.0));
        painter.fillRect(m_cells[i], c);
    }
    painter.setOpacity(1.0);
    painter.setRenderHint(QPainter::Antialiasing, true);
    painter.setBrush(Qt::NoBrush);

    if (!m_candidates.empty()) {
        QPen pen(foregroundColor());
        pen.setCosmetic(true);
        pen.setWidthF(1.5);
        pen.setStyle(Qt::DashLine);
        painter.setPen(pen);
        for (std::size_t i = 0; i < m_candidates.size(); ++i)
            if (m_candidates[i] && !m_cells[i].isEmpty())
                painter.drawRect(m_cells[i].adjusted(0.5, 0.5, -0.5, -0.5));
    }
    if (!m_sinks.empty()) {
        // A small cross in the middle of every sink cell, sized by the cell but never below a few pixels.
        QColor colour = sinkColor();
        colour.setAlpha(170);
        QPen pen(colour);
        pen.setCosmetic(true);
        pen.setWidthF(1.2);
        painter.setPen(pen);
        for (std::size_t i = 0; i < m_sinks.size(); ++i) {
            if (!m_sinks[i] || m_cells[i].isEmpty()) continue;
            const QRectF& cell = m_cells[i];
            const double r =
                std::max(std::min(cell.width(), cell.height()) * 0.2, 2.5 / std::max(zoom, 1e-6));
            const QPointF c = cell.center();
            painter.drawLine(c + QPointF(-r, -r), c + QPointF(r, r));
            painter.drawLine(c + QPointF(-r, r), c + QPointF(r, -r));
        }
    }
    if (!m_box.isEmpty()) {
        QPen shadow(QColor(0, 0, 0, 160));
        shadow.setCosmetic(true);
        shadow.setWidthF(4.0);
        painter.setPen(shadow);
        painter.drawRect(m_box);
        QPen pen(boxColor());
        pen.setCosmetic(true);
        pen.setWidthF(2.0);
        painter.setPen(pen);
        painter.drawRect(m_box);
    }
}
