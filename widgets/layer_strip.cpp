#include "widgets/layer_strip.h"

#include <algorithm>

#include <QKeyEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QPalette>

namespace {

constexpr int kMargin = 4;   // around the strip
constexpr int kSpacing = 6;  // between cells
constexpr int kFrame = 2;    // selection frame around a thumbnail

}  // namespace

LayerStrip::LayerStrip(QWidget* parent) : QWidget(parent) {
    setFocusPolicy(Qt::StrongFocus);
    setSizePolicy(QSizePolicy::Fixed, QSizePolicy::Fixed);
    m_placeholder = tr("No maps yet");
}

void LayerStrip::setThumbnails(const QList<QImage>& thumbnails, const QStringList& labels) {
    m_thumbnails = thumbnails;
    m_labels = labels;
    const int old = m_current;
    if (m_thumbnails.isEmpty()) {
        m_current = -1;
    } else if (m_current < 0 || m_current >= m_thumbnails.size()) {
        m_current = 0;
    }
    updateGeometry();
    update();
    if (m_current != old) emit currentIndexChanged(m_current);
}

QString LayerStrip::label(int index) const {
    if (index < 0 || index >= m_thumbnails.size()) return {};
    return index < m_labels.size() ? m_labels.at(index) : QString::number(index);
}

void LayerStrip::setThumbnailSize(int side) {
    m_side = std::max(16, side);
    updateGeometry();
    update();
}

void LayerStrip::setPlaceholderText(const QString& text) {
    m_placeholder = text;
    update();
}

int LayerStrip::thumbnailSizeFor(const QSize& room, int minSide, int maxSide) const {
    const int labelHeight = fontMetrics().height() + 2;
    const int byHeight = room.height() - 2 * kMargin - 2 * kFrame - labelHeight;
    int side = std::clamp(byHeight, minSide, maxSide);
    const int n = int(m_thumbnails.size());
    if (n > 0) {
        const int byWidth = (room.width() - 2 * kMargin + kSpacing) / n - kSpacing - 2 * kFrame;
        if (byWidth >= minSide) side = std::min(side, byWidth);
    }
    return side;
}

QRect LayerStrip::cellRect(int index) const {
    const int labelHeight = fontMetrics().height();
    const int cell = m_side + 2 * kFrame;
    return {kMargin + index * (cell + kSpacing), kMargin, cell, cell + labelHeight + 2};
}

int LayerStrip::indexAt(const QPoint& pos) const {
    for (int i = 0; i < m_thumbnails.size(); ++i)
        if (cellRect(i).contains(pos)) return i;
    return -1;
}

QSize LayerStrip::sizeHint() const {
    const QRect first = cellRect(0);
    if (m_thumbnails.isEmpty())
        return {fontMetrics().horizontalAdvance(m_placeholder) + 2 * kMargin + 8,
                first.height() + 2 * kMargin};
    const QRect last = cellRect(m_thumbnails.size() - 1);
    return {last.right() + 1 + kMargin, last.bottom() + 1 + kMargin};
}

QSize LayerStrip::minimumSizeHint() const {
    return sizeHint();
}

void LayerStrip::setCurrentIndex(int index) {
    if (m_thumbnails.isEmpty()) return;
    index = std::clamp(index, 0, int(m_thumbnails.size()) - 1);
    if (index == m_current) return;
    m_current = index;
    update();
    emit currentIndexChanged(m_current);
}

void LayerStrip::paintEvent(QPaintEvent*) {
    QPainter painter(this);
    const QPalette& pal = palette();
    if (m_thumbnails.isEmpty()) {
        painter.setPen(pal.color(QPalette::PlaceholderText));
        painter.drawText(rect().adjusted(kMargin, 0, 0, 0), Qt::AlignLeft | Qt::AlignVCenter, m_placeholder);
        return;
    }
    const QColor highlight = pal.color(QPalette::Highlight);
    for (int i = 0; i < m_thumbnails.size(); ++i) {
        const QRect cell = cellRect(i);
        const QRect thumb(cell.left() + kFrame, cell.top() + kFrame, m_side, m_side);
        const bool current = i == m_current;
        if (current) {
            painter.fillRect(QRect(cell.left(), cell.top(), cell.width(), cell.width()), highlight);
        }
        // Thumbnails are cell grids (one pixel per cell): scale them without smoothing, cells stay sharp.
        const QImage& image = m_thumbnails.at(i);
        if (!image.isNull()) {
            painter.drawImage(thumb, image.scaled(thumb.size(), Qt::KeepAspectRatio, Qt::FastTransformation));
        }
        QFont f = font();
        f.setBold(current);
        painter.setFont(f);
        painter.setPen(current ? highlight : pal.color(QPalette::WindowText));
        const QRect text(cell.left() - kSpacing / 2, cell.top() + cell.width(), cell.width() + kSpacing,
                         cell.height() - cell.width());
        painter.drawText(text, Qt::AlignHCenter | Qt::AlignVCenter, label(i));
    }
    if (hasFocus() && m_current >= 0) {
        QPen pen(highlight, 1, Qt::DotLine);
        painter.setPen(pen);
        painter.setBrush(Qt::NoBrush);
        painter.drawRect(cellRect(m_current).adjusted(-2, -2, 1, 1));
    }
}

void LayerStrip::mousePressEvent(QMouseEvent* event) {
    const int index = indexAt(event->position().toPoint());
    if (index >= 0 && event->button() == Qt::LeftButton) {
        setFocus(Qt::MouseFocusReason);
        setCurrentIndex(index);
        event->accept();
        return;
    }
    QWidget::mousePressEvent(event);
}

void LayerStrip::keyPressEvent(QKeyEvent* event) {
    switch (event->key()) {
        case Qt::Key_Left:
        case Qt::Key_Up:
            selectPrevious();
            break;
        case Qt::Key_Right:
        case Qt::Key_Down:
            selectNext();
            break;
        case Qt::Key_Home:
            setCurrentIndex(0);
            break;
        case Qt::Key_End:
            setCurrentIndex(int(m_thumbnails.size()) - 1);
            break;
        default:
            QWidget::keyPressEvent(event);
            return;
    }
    event->accept();
}
