// ImageView: the studio's central canvas. Shows one QImage with zoom (wheel, keys, fit, 100 %) and pan
// (drag), accepts dropped files and images, and paints overlays (heat maps, boxes) in image coordinates.
//
//   auto* view = new ImageView;
//   view->setImage(QImage("photo.png"));            // starts in fit mode
//   view->addOverlay(std::make_shared<MyBoxes>());  // painted after the image, in image pixels
//   connect(view, &ImageView::urlsDropped, ...);    // the owner decides what a dropped file means
//
// Thread affinity: GUI thread only. Knows nothing of models: it takes QImages and overlays.
#pragma once

#include <memory>
#include <vector>

#include <QImage>
#include <QList>
#include <QPointF>
#include <QString>
#include <QTransform>
#include <QUrl>
#include <QWidget>

class QPainter;

// Something drawn over the image: heat maps, boxes, grid lines. paint() gets a painter already transformed
// so that one unit is one source-image pixel (the image covers `imageRect` = (0,0)-(width,height)) and
// clipped to the visible part of the view; `zoom` is screen pixels per image pixel (for pen widths).
class ImageOverlay {
public:
    virtual ~ImageOverlay() = default;
    virtual void paint(QPainter& painter, const QRectF& imageRect, double zoom) = 0;
};

// What the user sees, in terms that survive a window resize: the image point at the view's centre.
struct ImageViewState {
    double zoom = 1.0;      // screen pixels per image pixel
    QPointF center;         // image coordinates shown at the centre of the view
    bool fitToView = true;  // when true, zoom and centre follow the view's size
};

class ImageView : public QWidget {
    Q_OBJECT
public:
    static constexpr double kMinZoom = 0.02;
    static constexpr double kMaxZoom = 64.0;
    static constexpr double kZoomStep = 1.25;

    explicit ImageView(QWidget* parent = nullptr);

    // Shows `image` in fit mode; a null image clears the view (placeholder text shown).
    void setImage(const QImage& image);
    void clear() { setImage(QImage()); }
    const QImage& image() const { return m_image; }
    bool hasImage() const { return !m_image.isNull(); }

    double zoom() const { return m_state.zoom; }
    bool isFitToView() const { return m_state.fitToView; }
    QPointF center() const { return m_state.center; }
    ImageViewState viewState() const { return m_state; }
    // Restores a saved state exactly (zoom and centre clamped to the legal range).
    void setViewState(const ImageViewState& state);

    // Sets the zoom keeping the image point under `anchor` (view coordinates) fixed; the view centre
    // when `anchor` is omitted. Leaves fit mode.
    void setZoom(double zoom);
    void setZoomAt(double zoom, const QPointF& anchor);
    void setCenter(const QPointF& imagePoint);

    QTransform imageToView() const;
    QPointF viewToImage(const QPointF& viewPoint) const;

    void addOverlay(std::shared_ptr<ImageOverlay> overlay);
    void removeOverlay(const std::shared_ptr<ImageOverlay>& overlay);
    void clearOverlays();

    // Shown when there is no image.
    void setPlaceholderText(const QString& text);

    QSize sizeHint() const override { return {800, 600}; }

public slots:
    void zoomIn();
    void zoomOut();
    void zoomToFit();
    void zoomToActualSize();

signals:
    void viewChanged();  // zoom or centre changed
    void zoomChanged(double zoom);
    // Cursor over the image: pixel under it, or inside == false when outside / no image.
    void hoveredPixelChanged(const QPoint& pixel, bool inside);
    void urlsDropped(const QList<QUrl>& urls);
    void imageDropped(const QImage& image);

protected:
    void paintEvent(QPaintEvent* event) override;
    void resizeEvent(QResizeEvent* event) override;
    void wheelEvent(QWheelEvent* event) override;
    void mousePressEvent(QMouseEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;
    void mouseDoubleClickEvent(QMouseEvent* event) override;
    void leaveEvent(QEvent* event) override;
    void keyPressEvent(QKeyEvent* event) override;
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dragLeaveEvent(QDragLeaveEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    double fitZoom() const;
    void applyFit();
    QPointF clampCenter(const QPointF& center, double zoom) const;
    void stateChanged(double oldZoom);
    void paintPlaceholder(QPainter& painter);

    QImage m_image;
    ImageViewState m_state;
    std::vector<std::shared_ptr<ImageOverlay>> m_overlays;
    QString m_placeholder;
    bool m_panning = false;
    bool m_dragHover = false;
    QPointF m_panStart;
    QPointF m_panStartCenter;
};
