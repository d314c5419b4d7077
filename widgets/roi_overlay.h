// RoiOverlay: what SD-RPN's RoI post-processing decided, drawn over the image: the cells above the RoI
// threshold (outlined), every connected component's box (kept ones solid, grown ones with their grown
// box, skipped ones dotted grey) and the crop box that the second pass re-encodes. All in image pixels;
// the owner maps grid boxes through the image's geometry. Plain data, no core types.
//
//   auto roi = std::make_shared<RoiOverlay>();
//   roi->setRoi(aboveCellRects, {{box, RoiOverlay::Component::Kept}}, cropRect);
//   view->addOverlay(roi);
//
// Thread affinity: GUI thread.
#pragma once

#include <vector>

#include <QColor>
#include <QRectF>

#include "widgets/image_view.h"

class RoiOverlay : public ImageOverlay {
public:
    enum class Component { Kept, Grown, Skipped };
    struct Box {
        QRectF rect;
        Component kind = Component::Kept;
    };

    static QColor cropColor() { return QColor(60, 230, 120); }
    static QColor componentColor() { return QColor(255, 255, 255); }

    void setRoi(std::vector<QRectF> aboveCells, std::vector<Box> components, const QRectF& crop);
    void clear();
    bool isEmpty() const { return m_above.empty() && m_components.empty() && m_crop.isEmpty(); }
    void setVisible(bool visible) { m_visible = visible; }
    bool isVisible() const { return m_visible; }

    const std::vector<Box>& components() const { return m_components; }
    QRectF cropBox() const { return m_crop; }
    int aboveCount() const { return int(m_above.size()); }

    void paint(QPainter& painter, const QRectF& imageRect, double zoom) override;

private:
    std::vector<QRectF> m_above;
    std::vector<Box> m_components;
    QRectF m_crop;
    bool m_visible = true;
};
