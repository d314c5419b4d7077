// LayerStrip: one small thumbnail per decoder layer in a row; click one, or use ←/→ (Home/End), to select
// it. The owner renders the thumbnails (HeatmapOverlay::renderGrid) and listens to currentIndexChanged().
//
//   auto* strip = new LayerStrip;
//   strip->setThumbnails(images, {"0", "1", ...});   // one per layer; the selection is kept when it fits
//   connect(strip, &LayerStrip::currentIndexChanged, this, [](int layer) { ... });
//
// Thread affinity: GUI thread only.
#pragma once

#include <QImage>
#include <QList>
#include <QStringList>
#include <QWidget>

class LayerStrip : public QWidget {
    Q_OBJECT
public:
    explicit LayerStrip(QWidget* parent = nullptr);

    // Replaces the thumbnails (and labels, one per thumbnail; missing labels are the index). The current
    // index is kept when still in range, else becomes 0 (-1 when empty); currentIndexChanged() only when
    // it changes.
    void setThumbnails(const QList<QImage>& thumbnails, const QStringList& labels = {});
    void clear() { setThumbnails({}); }
    int count() const { return m_thumbnails.size(); }
    int currentIndex() const { return m_current; }
    QString label(int index) const;

    // Side of a thumbnail in pixels (default 56).
    void setThumbnailSize(int side);
    int thumbnailSize() const { return m_side; }
    // The largest side in [minSide, maxSide] with which the strip fits into `room` in height, and in width
    // too when that is possible without going under minSide.
    int thumbnailSizeFor(const QSize& room, int minSide = 40, int maxSide = 112) const;
    // Where thumbnail `index` (with its label) is drawn, in widget coordinates.
    QRect cellRect(int index) const;
    int indexAt(const QPoint& pos) const;

    // Shown when there are no thumbnails.
    void setPlaceholderText(const QString& text);

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

public slots:
    void setCurrentIndex(int index);
    void selectNext() { setCurrentIndex(m_current + 1); }
    void selectPrevious() { setCurrentIndex(m_current - 1); }

signals:
    void currentIndexChanged(int index);

protected:
    void paintEvent(QPaintEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    void keyPressEvent(QKeyEvent* event) override;

private:
    QList<QImage> m_thumbnails;
    QStringList m_labels;
    QString m_placeholder;
    int m_current = -1;
    int m_side = 56;
};
