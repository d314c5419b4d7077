#include "widgets/image_view.h"

#include <algorithm>
#include <cmath>

#include <QDragEnterEvent>
#include <QDropEvent>
#include <QKeyEvent>
#include <QMimeData>
#include <QMouseEvent>
#include <QPainter>
#include <QPalette>
#include <QResizeEvent>
#include <QWheelEvent>

namespace {

constexpr double kFitMargin = 12.0;  // view pixels left around a fitted image
const QColor kCanvas(0x2b, 0x2d, 0x31);
const QColor kCanvasText(0xb8, 0xbc, 0xc4);
const QColor kDropHighlight(0x4a, 0x90, 0xd9);

double clampZoom(double zoom) {
    return std::clamp(zoom, ImageView::kMinZoom, ImageView::kMaxZoom);
}

bool canAccept(const QMimeData* mime) {
    return mime && (mime->hasUrls() || mime->hasImage());
}

}  // namespace

ImageView::ImageView(QWidget* parent) : QWidget(parent) {
    setMouseTracking(true);
    setFocusPolicy(Qt::StrongFocus);
    setAcceptDrops(true);
    setAttribute(Qt::WA_OpaquePaintEvent);
    setMinimumSize(200, 150);
    m_placeholder = tr("Open an image (Ctrl+O), drop a file here, or paste one (Ctrl+V)");
}

void ImageView::setImage(const QImage& image) {
    const double oldZoom = m_state.zoom;
    // A premultiplied 32-bit copy draws fastest at every zoom.
    if (image.isNull()) {
        m_image = QImage();
    } else if (image.hasAlphaChannel()) {
        m_image = image.convertToFormat(QImage::Format_ARGB32_Premultiplied);
    } else {
        m_image = image.convertToFormat(QImage::Format_RGB32);
    }
    m_state.fitToView = true;
    applyFit();
    stateChanged(oldZoom);
    update();
}

void ImageView::setViewState(const ImageViewState& state) {
    const double oldZoom = m_state.zoom;
    m_state.fitToView = state.fitToView;
    if (state.fitToView) {
        applyFit();
    } else {
        m_state.zoom = clampZoom(state.zoom);
        m_state.center = clampCenter(state.center, m_state.zoom);
    }
    stateChanged(oldZoom);
    update();
}

void ImageView::setZoom(double zoom) {
    setZoomAt(zoom, QPointF(width() / 2.0, height() / 2.0));
}

void ImageView::setZoomAt(double zoom, const QPointF& anchor) {
    const double oldZoom = m_state.zoom;
    const double newZoom = clampZoom(zoom);
    // Keep the image point under the anchor where it is: anchor = viewCentre + (p - c') * z'.
    const QPointF imagePoint = viewToImage(anchor);
    const QPointF viewCentre(width() / 2.0, height() / 2.0);
    m_state.zoom = newZoom;
    m_state.fitToView = false;
    m_state.center = clampCenter(imagePoint - (anchor - viewCentre) / newZoom, newZoom);
    stateChanged(oldZoom);
    update();
}

void ImageView::setCenter(const QPointF& imagePoint) {
    m_state.center = clampCenter(imagePoint, m_state.zoom);
    m_state.fitToView = false;
    stateChanged(m_state.zoom);
    update();
}

QTransform ImageView::imageToView() const {
    QTransform t;
    t.translate(width() / 2.0, height() / 2.0);
    t.scale(m_state.zoom, m_state.zoom);
    t.translate(-m_state.center.x(), -m_state.center.y());
    return t;
}

QPointF ImageView::viewToImage(const QPointF& viewPoint) const {
    return (viewPoint - QPointF(width() / 2.0, height() / 2.0)) / m_state.zoom + m_state.center;
}

void ImageView::addOverlay(std::shared_ptr<ImageOverlay> overlay) {
    if (!overlay) return;
    m_overlays.push_back(std::move(overlay));
    update();
}

void ImageView::removeOverlay(const std::shared_ptr<ImageOverlay>& overlay) {
    m_overlays.erase(std::remove(m_overlays.begin(), m_overlays.end(), overlay), m_overlays.end());
    update();
}

void ImageView::clearOverlays() {
    m_overlays.clear();
    update();
}

void ImageView::setPlaceholderText(const QString& text) {
    m_placeholder = text;
    update();
}

void ImageView::zoomIn() {
    setZoom(m_state.zoom * kZoomStep);
}
void ImageView::zoomOut() {
    setZoom(m_state.zoom / kZoomStep);
}

void ImageView::zoomToFit() {
    const double oldZoom = m_state.zoom;
    m_state.fitToView = true;
    applyFit();
    stateChanged(oldZoom);
    update();
}

void ImageView::zoomToActualSize() {
    setZoom(1.0);
}

double ImageView::fitZoom() const {
    if (m_image.isNull()) return 1.0;
    const double w = std::max(1.0, width() - 2 * kFitMargin);
    const double h = std::max(1.0, height() - 2 * kFitMargin);
    return clampZoom(std::min(w / m_image.width(), h / m_image.height()));
}

void ImageView::applyFit() {
    m_state.zoom = fitZoom();
    m_state.center = m_image.isNull() ? QPointF() : QPointF(m_image.width() / 2.0, m_image.height() / 2.0);
}

QPointF ImageView::clampCenter(const QPointF& center, double) const {
    if (m_image.isNull()) return {};
    // The centre may go anywhere over the image, so any part of it can be brought to the middle.
    return {std::clamp(center.x(), 0.0, double(m_image.width())),
            std::clamp(center.y(), 0.0, double(m_image.height()))};
}

void ImageView::stateChanged(double oldZoom) {
    emit viewChanged();
    if (oldZoom != m_state.zoom) emit zoomChanged(m_state.zoom);
}

void ImageView::paintEvent(QPaintEvent*) {
    QPainter painter(this);
    painter.fillRect(rect(), kCanvas);
    if (m_image.isNull()) {
        paintPlaceholder(painter);
    } else {
        const QRectF imageRect(0, 0, m_image.width(), m_image.height());
        painter.save();
        painter.setTransform(imageToView());
        if (m_image.hasAlphaChannel()) {
            // Checkerboard under transparent pixels, in view pixels so it does not scale.
            painter.save();
            painter.setTransform(QTransform());
            const QRectF onScreen = imageToView().mapRect(imageRect).intersected(QRectF(rect()));
            const int cell = 8;
            painter.setClipRect(onScreen);
            for (int y = int(onScreen.top()) / cell * cell; y < onScreen.bottom(); y += cell)
                for (int x = int(onScreen.left()) / cell * cell; x < onScreen.right(); x += cell)
                    painter.fillRect(x, y, cell, cell,
                                     ((x / cell + y / cell) % 2) ? Qt::lightGray : Qt::white);
            painter.restore();
        }
        // Smooth when shrinking or mildly enlarging; crisp pixels when zoomed in to inspect cells.
        painter.setRenderHint(QPainter::SmoothPixmapTransform, m_state.zoom < 3.0);
        painter.drawImage(imageRect, m_image);
        painter.setRenderHint(QPainter::Antialiasing, true);
        for (const auto& overlay : m_overlays) {
            painter.save();
            overlay->paint(painter, imageRect, m_state.zoom);
            painter.restore();
        }
        painter.restore();
    }
    if (m_dragHover) {
        painter.setPen(QPen(kDropHighlight, 3));
        painter.setBrush(Qt::NoBrush);
        painter.drawRect(QRectF(rect()).adjusted(1.5, 1.5, -1.5, -1.5));
    }
}

void ImageView::paintPlaceholder(QPainter& painter) {
    painter.setRenderHint(QPainter::Antialiasing, true);
    const QRectF frame = QRectF(rect()).adjusted(40, 40, -40, -40);
    if (frame.width() > 80 && frame.height() > 80) {
        QPen dashed(QColor(0x55, 0x59, 0x60), 2, Qt::DashLine);
        painter.setPen(dashed);
        painter.setBrush(Qt::NoBrush);
        painter.drawRoundedRect(frame, 12, 12);
    }
    QFont title = font();
    title.setPointSizeF(title.pointSizeF() * 1.6);
    title.setBold(true);
    painter.setFont(title);
    painter.setPen(kCanvasText);
    const QRectF upper(rect().left(), rect().top(), rect().width(), rect().height() / 2.0 - 6);
    painter.drawText(upper, Qt::AlignHCenter | Qt::AlignBottom, tr("No image"));
    painter.setFont(font());
    const QRectF lower(rect().left() + 60, rect().height() / 2.0 + 6, rect().width() - 120,
                       rect().height() / 2.0);
    painter.drawText(lower, Qt::AlignHCenter | Qt::AlignTop | Qt::TextWordWrap, m_placeholder);
}

void ImageView::resizeEvent(QResizeEvent* event) {
    QWidget::resizeEvent(event);
    if (m_state.fitToView) {
        const double oldZoom = m_state.zoom;
        applyFit();
        stateChanged(oldZoom);
    }
}

void ImageView::wheelEvent(QWheelEvent* event) {
    if (m_image.isNull()) return;
    const double steps = event->angleDelta().y() / 120.0;
    if (steps == 0.0) return;
    setZoomAt(m_state.zoom * std::pow(kZoomStep, steps), event->position());
    event->accept();
}

void ImageView::mousePressEvent(QMouseEvent* event) {
    if (!m_image.isNull() && (event->button() == Qt::LeftButton || event->button() == Qt::MiddleButton)) {
        m_panning = true;
        m_panStart = event->position();
        m_panStartCenter = m_state.center;
        setCursor(Qt::ClosedHandCursor);
        event->accept();
        return;
    }
    QWidget::mousePressEvent(event);
}

void ImageView::mouseMoveEvent(QMouseEvent* event) {
    if (m_panning) {
        const QPointF delta = (event->position() - m_panStart) / m_state.zoom;
        m_state.fitToView = false;
        m_state.center = clampCenter(m_panStartCenter - delta, m_state.zoom);
        stateChanged(m_state.zoom);
        update();
    }
    if (!m_image.isNull()) {
        const QPointF p = viewToImage(event->position());
        const QPoint pixel(int(std::floor(p.x())), int(std::floor(p.y())));
        emit hoveredPixelChanged(pixel, m_image.rect().contains(pixel));
    }
    QWidget::mouseMoveEvent(event);
}

void ImageView::mouseReleaseEvent(QMouseEvent* event) {
    if (m_panning && (event->button() == Qt::LeftButton || event->button() == Qt::MiddleButton)) {
        m_panning = false;
        unsetCursor();
        event->accept();
        return;
    }
    QWidget::mouseReleaseEvent(event);
}

void ImageView::mouseDoubleClickEvent(QMouseEvent* event) {
    if (m_image.isNull() || event->button() != Qt::LeftButton) return QWidget::mouseDoubleClickEvent(event);
    if (m_state.fitToView) {
        setZoomAt(1.0, event->position());
    } else {
        zoomToFit();
    }
}

void ImageView::leaveEvent(QEvent* event) {
    emit hoveredPixelChanged(QPoint(), false);
    QWidget::leaveEvent(event);
}

void ImageView::keyPressEvent(QKeyEvent* event) {
    switch (event->key()) {
        case Qt::Key_Plus:
        case Qt::Key_Equal:
            zoomIn();
            break;
        case Qt::Key_Minus:
            zoomOut();
            break;
        case Qt::Key_0:
        case Qt::Key_F:
            zoomToFit();
            break;
        case Qt::Key_1:
            zoomToActualSize();
            break;
        default:
            QWidget::keyPressEvent(event);
            return;
    }
    event->accept();
}

void ImageView::dragEnterEvent(QDragEnterEvent* event) {
    if (!canAccept(event->mimeData())) return;
    event->acceptProposedAction();
    m_dragHover = true;
    update();
}

void ImageView::dragLeaveEvent(QDragLeaveEvent* event) {
    m_dragHover = false;
    update();
    QWidget::dragLeaveEvent(event);
}

void ImageView::dropEvent(QDropEvent* event) {
    m_dragHover = false;
    update();
    const QMimeData* mime = event->mimeData();
    if (!canAccept(mime)) return;
    event->acceptProposedAction();
    if (mime->hasUrls()) {
        emit urlsDropped(mime->urls());
    } else {
        emit imageDropped(qvariant_cast<QImage>(mime->imageData()));
    }
}
