// ImageView: loading, fit, zoom (buttons, wheel, 100 %), pan by drag, exact view state, overlays, drops.
#include <QMimeData>
#include <QMouseEvent>
#include <QPainter>
#include <QSignalSpy>
#include <QWheelEvent>

#include "tests/gui/gui_test_support.h"
#include "widgets/image_view.h"

namespace {

QImage testImage(int w = 640, int h = 480) {
    QImage image(w, h, QImage::Format_RGB32);
    image.fill(Qt::darkCyan);
    return image;
}

void sendMouse(QWidget* w, QEvent::Type type, QPointF pos, Qt::MouseButton button, Qt::MouseButtons buttons) {
    QMouseEvent event(type, pos, w->mapToGlobal(pos), button, buttons, Qt::NoModifier);
    QApplication::sendEvent(w, &event);
}

class RecordingOverlay : public ImageOverlay {
public:
    void paint(QPainter& painter, const QRectF& imageRect, double zoom) override {
        ++calls;
        lastRect = imageRect;
        lastZoom = zoom;
        painter.setPen(Qt::red);
        painter.drawRect(QRectF(10, 10, 20, 20));
    }
    int calls = 0;
    QRectF lastRect;
    double lastZoom = 0;
};

}  // namespace

TEST(ImageView, LoadsAndFitsTheImage) {
    ImageView view;
    view.resize(800, 600);
    EXPECT_FALSE(view.hasImage());
    view.setImage(testImage());
    ASSERT_TRUE(view.hasImage());
    EXPECT_TRUE(view.isFitToView());
    // The whole image is visible and touches the view on one axis (less the margin).
    const QRectF onScreen = view.imageToView().mapRect(QRectF(0, 0, 640, 480));
    EXPECT_TRUE(QRectF(view.rect()).contains(onScreen)) << onScreen.width() << "x" << onScreen.height();
    EXPECT_NEAR(std::max(onScreen.width() / 800.0, onScreen.height() / 600.0), 1.0, 0.05);
    EXPECT_DOUBLE_EQ(view.center().x(), 320.0);
    EXPECT_DOUBLE_EQ(view.center().y(), 240.0);

    // Fit follows the window size (a shown widget gets its resize events at once).
    view.show();
    const double before = view.zoom();
    view.resize(400, 300);
    EXPECT_TRUE(view.isFitToView());
    EXPECT_LT(view.zoom(), before);
}

TEST(ImageView, ZoomsInOutToActualSizeAndBackToFit) {
    ImageView view;
    view.resize(800, 600);
    view.setImage(testImage());
    const double fit = view.zoom();
    QSignalSpy zoomSpy(&view, &ImageView::zoomChanged);

    view.zoomIn();
    EXPECT_NEAR(view.zoom(), fit * ImageView::kZoomStep, 1e-9);
    EXPECT_FALSE(view.isFitToView());
    view.zoomOut();
    view.zoomOut();
    EXPECT_NEAR(view.zoom(), fit / ImageView::kZoomStep, 1e-9);
    view.zoomToActualSize();
    EXPECT_DOUBLE_EQ(view.zoom(), 1.0);
    view.zoomToFit();
    EXPECT_TRUE(view.isFitToView());
    EXPECT_DOUBLE_EQ(view.zoom(), fit);
    EXPECT_GE(zoomSpy.count(), 4);

    for (int i = 0; i < 100; ++i) view.zoomIn();
    EXPECT_DOUBLE_EQ(view.zoom(), ImageView::kMaxZoom);
    for (int i = 0; i < 100; ++i) view.zoomOut();
    EXPECT_DOUBLE_EQ(view.zoom(), ImageView::kMinZoom);
}

TEST(ImageView, WheelZoomKeepsThePointUnderTheCursor) {
    ImageView view;
    view.resize(800, 600);
    view.setImage(testImage());
    const QPointF cursor(250, 180);
    const QPointF before = view.viewToImage(cursor);
    const double zoom = view.zoom();
    QWheelEvent wheel(cursor, view.mapToGlobal(cursor), QPoint(), QPoint(0, 120), Qt::NoButton,
                      Qt::NoModifier, Qt::NoScrollPhase, false);
    QApplication::sendEvent(&view, &wheel);
    EXPECT_NEAR(view.zoom(), zoom * ImageView::kZoomStep, 1e-9);
    const QPointF after = view.viewToImage(cursor);
    EXPECT_NEAR(after.x(), before.x(), 1e-6);
    EXPECT_NEAR(after.y(), before.y(), 1e-6);
}

TEST(ImageView, DragPans) {
    ImageView view;
    view.resize(800, 600);
    view.setImage(testImage());
    view.zoomToActualSize();
    const QPointF center = view.center();
    sendMouse(&view, QEvent::MouseButtonPress, QPointF(400, 300), Qt::LeftButton, Qt::LeftButton);
    sendMouse(&view, QEvent::MouseMove, QPointF(350, 280), Qt::NoButton, Qt::LeftButton);
    sendMouse(&view, QEvent::MouseButtonRelease, QPointF(350, 280), Qt::LeftButton, Qt::NoButton);
    // Dragging the picture left by 50 view pixels at 100 % moves the centre 50 image pixels right.
    EXPECT_NEAR(view.center().x(), center.x() + 50, 1e-9);
    EXPECT_NEAR(view.center().y(), center.y() + 20, 1e-9);
    EXPECT_FALSE(view.isFitToView());
}

TEST(ImageView, RestoresAViewStateExactly) {
    ImageView view;
    view.resize(800, 600);
    view.setImage(testImage());
    ImageViewState state;
    state.fitToView = false;
    state.zoom = 2.718281828459045;
    state.center = QPointF(123.456789, 98.7654321);
    view.setViewState(state);
    const ImageViewState back = view.viewState();
    EXPECT_FALSE(back.fitToView);
    EXPECT_EQ(back.zoom, state.zoom);
    EXPECT_EQ(back.center, state.center);
}

TEST(ImageView, PaintsOverlaysInImageCoordinates) {
    ImageView view;
    view.resize(800, 600);
    view.setImage(testImage(100, 50));
    auto overlay = std::make_shared<RecordingOverlay>();
    view.addOverlay(overlay);
    const QImage picture = view.grab().toImage();
    EXPECT_GE(overlay->calls, 1);
    EXPECT_EQ(overlay->lastRect, QRectF(0, 0, 100, 50));
    EXPECT_DOUBLE_EQ(overlay->lastZoom, view.zoom());
    // The overlay's red square, mapped by the view's transform, is on screen.
    const QPointF corner = view.imageToView().map(QPointF(10, 10));
    EXPECT_EQ(picture.pixelColor(corner.toPoint()), QColor(Qt::red));

    view.removeOverlay(overlay);
    const int calls = overlay->calls;
    (void)view.grab();
    EXPECT_EQ(overlay->calls, calls);
}

TEST(ImageView, DrawsAPlaceholderWithoutAnImage) {
    ImageView view;
    view.resize(640, 400);
    const QImage picture = view.grab().toImage();
    EXPECT_EQ(picture.size(), QSize(640, 400));
    view.setImage(testImage());
    view.clear();
    EXPECT_FALSE(view.hasImage());
    (void)view.grab();
}

TEST(ImageView, EmitsDroppedFiles) {
    ImageView view;
    view.resize(400, 300);
    QSignalSpy spy(&view, &ImageView::urlsDropped);
    QMimeData mime;
    mime.setUrls({QUrl::fromLocalFile("/tmp/picture.png")});
    QDragEnterEvent enter(QPoint(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(&view, &enter);
    EXPECT_TRUE(enter.isAccepted());
    QDropEvent drop(QPointF(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(&view, &drop);
    ASSERT_EQ(spy.count(), 1);
    const auto urls = spy.at(0).at(0).value<QList<QUrl>>();
    ASSERT_EQ(urls.size(), 1);
    EXPECT_EQ(urls[0].toLocalFile(), QStringLiteral("/tmp/picture.png"));
}
