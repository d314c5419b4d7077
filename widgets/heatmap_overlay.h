// HeatmapOverlay: a grid of values (an attention map over image tokens) drawn over the ImageView's image
// through a colour map, plus the colour maps themselves. Plain data in: a row-major std::vector<float>, the
// grid's rows and columns, and where each cell lies in image pixels (an empty rectangle: the cell is not
// drawn, e.g. a cell in the pad band). Or a ready-made QImage and where it goes.
//
//   auto heat = std::make_shared<HeatmapOverlay>();
//   heat->setGrid(24, 24, values, cellRects);        // cellRects[row * cols + col], image pixels
//   HeatmapStyle style;  style.colorMap = ColorMap::Inferno;  style.smooth = true;
//   heat->setStyle(style);
//   view->addOverlay(heat);                          // call view->update() after later changes
//
// Values are normalised to [min, max] over the drawn cells (valueRange()); a constant map draws at the
// middle of the colour map. Blocky mode fills each cell's rectangle; smooth mode interpolates the values
// bilinearly between cell centres (then colours them), inside the drawn cells' bounding box.
//
// Thread affinity: GUI thread (the static helpers are reentrant). Knows nothing of models.
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include <QColor>
#include <QImage>
#include <QPoint>
#include <QRectF>
#include <QString>
#include <QStringList>
#include <QVector>

#include "widgets/image_view.h"

enum class ColorMap { Viridis, Inferno, Jet, Gray };

// Display names in enum order ("viridis", "inferno", "jet", "gray").
QStringList colorMapNames();
QString colorMapName(ColorMap map);
// The colour at t in [0, 1] (clamped), opaque.
QRgb colorMapColor(ColorMap map, double t);
// 256 entries, t = i / 255.
const QVector<QRgb>& colorMapTable(ColorMap map);

struct HeatmapStyle {
    ColorMap colorMap = ColorMap::Viridis;
    double opacity = 0.55;   // 0: invisible, 1: opaque
    bool smooth = false;     // bilinear between cell centres instead of one flat colour per cell
    bool gridLines = false;  // thin lines around every drawn cell
    bool outline = true;     // a thin frame around the drawn region (e.g. what a centre crop keeps)
    bool operator==(const HeatmapStyle& o) const {
        return colorMap == o.colorMap && opacity == o.opacity && smooth == o.smooth &&
               gridLines == o.gridLines && outline == o.outline;
    }
    bool operator!=(const HeatmapStyle& o) const { return !(*this == o); }
};

class HeatmapOverlay : public ImageOverlay {
public:
    HeatmapOverlay() = default;

    // `values` and `cells` hold rows * cols entries, row-major; mismatched sizes clear the overlay.
    void setGrid(int rows, int cols, std::vector<float> values, std::vector<QRectF> cells);
    // A picture drawn as is (scaled to `target`, image pixels) with the style's opacity.
    void setImage(const QImage& image, const QRectF& target);
    void clear();

    void setStyle(const HeatmapStyle& style);
    const HeatmapStyle& style() const { return m_style; }
    void setVisible(bool visible) { m_visible = visible; }
    bool isVisible() const { return m_visible; }

    bool isEmpty() const { return m_values.empty() && m_image.isNull(); }
    int rows() const { return m_rows; }
    int cols() const { return m_cols; }
    const std::vector<float>& values() const { return m_values; }
    const std::vector<QRectF>& cells() const { return m_cells; }
    float valueAt(int row, int col) const { return m_values[std::size_t(row) * m_cols + col]; }
    // (min, max) over the drawn cells; (0, 0) when there are none.
    std::pair<float, float> valueRange() const { return {m_min, m_max}; }
    // The cell (row, col) that draws image point `p`, if any.
    std::optional<std::pair<int, int>> cellAt(const QPointF& p) const;
    // The colour (opaque) a value is drawn with.
    QRgb colorOf(float value) const;

    void paint(QPainter& painter, const QRectF& imageRect, double zoom) override;

    // A rows × cols picture of a grid (one pixel per cell), normalised over the cells where `drawn` is
    // true (all when empty); cells not drawn get `background`. For thumbnails; scale it with
    // Qt::FastTransformation to keep the cells sharp.
    static QImage renderGrid(int rows, int cols, const std::vector<float>& values, ColorMap map,
                             const std::vector<bool>& drawn = {}, QColor background = QColor(40, 40, 44));

private:
    void updateRange();
    const QImage& smoothImage();

    int m_rows = 0;
    int m_cols = 0;
    std::vector<float> m_values;
    std::vector<QRectF> m_cells;
    float m_min = 0.f;
    float m_max = 0.f;
    QRectF m_bounds;  // bounding box of the drawn cells
    QImage m_image;   // setImage()
    QRectF m_imageTarget;
    QImage m_smooth;  // cached interpolated picture over m_bounds
    bool m_smoothValid = false;
    HeatmapStyle m_style;
    bool m_visible = true;
};
