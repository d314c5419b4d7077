#include "widgets/roi_overlay.h"

#include <QPainter>
#include <QPen>

void RoiOverlay::setRoi(std::vector<QRectF> aboveCells, std::vector<Box> components, const QRectF& crop) {
    m_above = std::move(aboveCells);
    m_components = std::move(components);
    m_crop = crop;
}

void RoiOverlay::clear() {
    m_above.clear();
    m_components.clear();
    m_crop = QRectF();
}

void RoiOverlay::paint(QPainter& painter, const QRectF&, double) {
    if (!m_visible || isEmpty()) return;
    painter.setOpacity(1.0);
    painter.setBrush(Qt::NoBrush);
    painter.setRenderHint(QPainter::Antialiasing, false);
    QPen cellPen(QColor(255, 255, 255, 110));
    cellPen.setCosmetic(true);
    cellPen.setWidthF(1.0);
    painter.setPen(cellPen);
    for (const QRectF& cell : m_above) painter.drawRect(cell);

    painter.setRenderHint(QPainter::Antialiasing, true);
    for (const Box& box : m_components) {
        QPen pen(box.kind == Component::Skipped ? QColor(190, 190, 190) : componentColor());
        pen.setCosmetic(true);
        pen.setWidthF(box.kind == Component::Skipped ? 1.0 : 1.6);
        pen.setStyle(box.kind == Component::Skipped ? Qt::DotLine
                     : box.kind == Component::Grown ? Qt::DashLine
                                                    : Qt::SolidLine);
        painter.setPen(pen);
        painter.drawRect(box.rect);
    }
    if (!m_crop.isEmpty()) {
        QPen shadow(QColor(0, 0, 0, 170));
        shadow.setCosmetic(true);
        shadow.setWidthF(5.0);
        painter.setPen(shadow);
        painter.drawRect(m_crop);
        QPen pen(cropColor());
        pen.setCosmetic(true);
        pen.setWidthF(2.5);
        painter.setPen(pen);
        painter.drawRect(m_crop);
    }
}
