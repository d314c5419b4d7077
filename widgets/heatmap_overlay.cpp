#include "widgets/heatmap_overlay.h"

#include <algorithm>
#include <array>
#include <cmath>

#include <QPainter>

namespace {

struct Anchor {
    double t;
    int r, g, b;
};

// Nine samples of matplotlib's perceptually uniform maps, interpolated linearly (their 256-entry tables
// differ from this by at most a couple of levels).
constexpr std::array<Anchor, 9> kViridis = {{{0.000, 68, 1, 84},
                                             {0.125, 71, 45, 123},
                                             {0.250, 59, 82, 139},
                                             {0.375, 44, 114, 142},
                                             {0.500, 33, 145, 140},
                                             {0.625, 40, 174, 128},
                                             {0.750, 94, 201, 98},
                                             {0.875, 173, 220, 48},
                                             {1.000, 253, 231, 37}}};
constexpr std::array<Anchor, 9> kInferno = {{{0.000, 0, 0, 4},
                                             {0.125, 31, 12, 72},
                                             {0.250, 85, 15, 109},
                                             {0.375, 136, 34, 106},
                                             {0.500, 186, 54, 85},
                                             {0.625, 227, 89, 51},
                                             {0.750, 249, 142, 9},
                                             {0.875, 248, 201, 50},
                                             {1.000, 252, 255, 164}}};

QRgb fromAnchors(const std::array<Anchor, 9>& anchors, double t) {
    for (std::size_t i = 1; i < anchors.size(); ++i) {
        if (t <= anchors[i].t) {
            const Anchor& a = anchors[i - 1];
            const Anchor& b = anchors[i];
            const double u = (t - a.t) / (b.t - a.t);
            auto mix = [u](int x, int y) { return int(std::lround(x + (y - x) * u)); };
            return qRgb(mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b));
        }
    }
    const Anchor& last = anchors.back();
    return qRgb(last.r, last.g, last.b);
}

int unit(double x) {
    return int(std::lround(255.0 * std::clamp(x, 0.0, 1.0)));
}

QVector<QRgb> makeTable(ColorMap map) {
    QVector<QRgb> table(256);
    for (int i = 0; i < 256; ++i) table[i] = colorMapColor(map, i / 255.0);
    return table;
}

// Where a coordinate falls between two cell centres: lower index, upper index, weight of the upper.
struct Interp {
    int i0 = 0, i1 = 0;
    float t = 0.f;
};

Interp interpolate(const std::vector<double>& centres, const std::vector<int>& index, double x) {
    if (x <= centres.front()) return {index.front(), index.front(), 0.f};
    if (x >= centres.back()) return {index.back(), index.back(), 0.f};
    const auto it = std::upper_bound(centres.begin(), centres.end(), x);
    const std::size_t hi = std::size_t(it - centres.begin());
    const std::size_t lo = hi - 1;
    return {index[lo], index[hi], float((x - centres[lo]) / (centres[hi] - centres[lo]))};
}

}  // namespace

QStringList colorMapNames() {
    return {QStringLiteral("viridis"), QStringLiteral("inferno"), QStringLiteral("jet"),
            QStringLiteral("gray")};
}

QString colorMapName(ColorMap map) {
    return colorMapNames().value(int(map));
}

QRgb colorMapColor(ColorMap map, double t) {
    t = std::isfinite(t) ? std::clamp(t, 0.0, 1.0) : 0.0;
    switch (map) {
        case ColorMap::Viridis:
            return fromAnchors(kViridis, t);
        case ColorMap::Inferno:
            return fromAnchors(kInferno, t);
        case ColorMap::Jet:
            return qRgb(unit(1.5 - std::abs(4 * t - 3)), unit(1.5 - std::abs(4 * t - 2)),
                        unit(1.5 - std::abs(4 * t - 1)));
        case ColorMap::Gray:
            return qRgb(unit(t), unit(t), unit(t));
    }
    return qRgb(0, 0, 0);
}

const QVector<QRgb>& colorMapTable(ColorMap map) {
    static const std::array<QVector<QRgb>, 4> tables = {makeTable(ColorMap::Viridis),
                                                        makeTable(ColorMap::Inferno),
                                                        makeTable(ColorMap::Jet), makeTable(ColorMap::Gray)};
    return tables[std::size_t(map)];
}

void HeatmapOverlay::setGrid(int rows, int cols, std::vector<float> values, std::vector<QRectF> cells) {
    clear();
    const std::size_t n = std::size_t(std::max(rows, 0)) * std::size_t(std::max(cols, 0));
    if (n == 0 || values.size() != n || cells.size() != n) return;
    m_rows = rows;
    m_cols = cols;
    m_values = std::move(values);
    m_cells = std::move(cells);
    updateRange();
}

void HeatmapOverlay::setImage(const QImage& image, const QRectF& target) {
    clear();
    m_image = image;
    m_imageTarget = target;
}

void HeatmapOverlay::clear() {
    m_rows = m_cols = 0;
    m_values.clear();
    m_cells.clear();
    m_min = m_max = 0.f;
    m_bounds = QRectF();
    m_image = QImage();
    m_imageTarget = QRectF();
    m_smooth = QImage();
    m_smoothValid = false;
}

void HeatmapOverlay::setStyle(const HeatmapStyle& style) {
    if (style.colorMap != m_style.colorMap) m_smoothValid = false;
    m_style = style;
    m_style.opacity = std::clamp(m_style.opacity, 0.0, 1.0);
}

void HeatmapOverlay::updateRange() {
    bool any = false;
    m_bounds = QRectF();
    for (std::size_t i = 0; i < m_values.size(); ++i) {
        if (m_cells[i].isEmpty()) continue;
        const float v = m_values[i];
        if (!std::isfinite(v)) continue;
        m_min = any ? std::min(m_min, v) : v;
        m_max = any ? std::max(m_max, v) : v;
        m_bounds = any ? m_bounds.united(m_cells[i]) : m_cells[i];
        any = true;
    }
    m_smoothValid = false;
}

QRgb HeatmapOverlay::colorOf(float value) const {
    const double span = double(m_max) - double(m_min);
    const double t = span > 0 ? (double(value) - m_min) / span : 0.5;
    return colorMapTable(m_style.colorMap)[std::clamp(int(std::lround(t * 255.0)), 0, 255)];
}

std::optional<std::pair<int, int>> HeatmapOverlay::cellAt(const QPointF& p) const {
    for (std::size_t i = 0; i < m_cells.size(); ++i) {
        const QRectF& c = m_cells[i];
        if (!c.isEmpty() && p.x() >= c.left() && p.x() < c.right() && p.y() >= c.top() && p.y() < c.bottom())
            return std::make_pair(int(i) / m_cols, int(i) % m_cols);
    }
    return std::nullopt;
}

const QImage& HeatmapOverlay::smoothImage() {
    if (m_smoothValid) return m_smooth;
    m_smoothValid = true;
    m_smooth = QImage();
    if (m_bounds.isEmpty()) return m_smooth;

    // The grid is rectilinear (cells share their column's x-extent and their row's y-extent): find the
    // centre of every column and row that has drawn cells.
    std::vector<double> colCentres, rowCentres;
    std::vector<int> colIndex, rowIndex;
    std::vector<double> colLeft(m_cols, 0), colRight(m_cols, 0), rowTop(m_rows, 0), rowBottom(m_rows, 0);
    std::vector<bool> colUsed(m_cols, false), rowUsed(m_rows, false);
    for (int r = 0; r < m_rows; ++r) {
        for (int c = 0; c < m_cols; ++c) {
            const QRectF& cell = m_cells[std::size_t(r) * m_cols + c];
            if (cell.isEmpty()) continue;
            colLeft[c] = colUsed[c] ? std::min(colLeft[c], cell.left()) : cell.left();
            colRight[c] = colUsed[c] ? std::max(colRight[c], cell.right()) : cell.right();
            rowTop[r] = rowUsed[r] ? std::min(rowTop[r], cell.top()) : cell.top();
            rowBottom[r] = rowUsed[r] ? std::max(rowBottom[r], cell.bottom()) : cell.bottom();
            colUsed[c] = rowUsed[r] = true;
        }
    }
    for (int c = 0; c < m_cols; ++c) {
        if (!colUsed[c]) continue;
        colCentres.push_back((colLeft[c] + colRight[c]) / 2);
        colIndex.push_back(c);
    }
    for (int r = 0; r < m_rows; ++r) {
        if (!rowUsed[r]) continue;
        rowCentres.push_back((rowTop[r] + rowBottom[r]) / 2);
        rowIndex.push_back(r);
    }

    // About 12 picture pixels per cell: smooth enough once the painter scales it bilinearly, small enough
    // to rebuild on every change.
    const int width = std::clamp(int(colCentres.size()) * 12, 1, 2048);
    const int height = std::clamp(int(rowCentres.size()) * 12, 1, 2048);
    std::vector<Interp> xs(width), ys(height);
    std::vector<int> xCol(width, -1), yRow(height, -1);
    for (int u = 0; u < width; ++u) {
        const double x = m_bounds.left() + (u + 0.5) * m_bounds.width() / width;
        xs[u] = interpolate(colCentres, colIndex, x);
        for (int c : colIndex)
            if (x >= colLeft[c] && x < colRight[c]) xCol[u] = c;
    }
    for (int v = 0; v < height; ++v) {
        const double y = m_bounds.top() + (v + 0.5) * m_bounds.height() / height;
        ys[v] = interpolate(rowCentres, rowIndex, y);
        for (int r : rowIndex)
            if (y >= rowTop[r] && y < rowBottom[r]) yRow[v] = r;
    }

    const QVector<QRgb>& table = colorMapTable(m_style.colorMap);
    const double span = double(m_max) - double(m_min);
    auto drawn = [this](int r, int c) {
        const std::size_t i = std::size_t(r) * m_cols + c;
        return !m_cells[i].isEmpty() && std::isfinite(m_values[i]);
    };
    m_smooth = QImage(width, height, QImage::Format_ARGB32_Premultiplied);
    for (int v = 0; v < height; ++v) {
        auto* line = reinterpret_cast<QRgb*>(m_smooth.scanLine(v));
        for (int u = 0; u < width; ++u) {
            if (yRow[v] < 0 || xCol[u] < 0 || !drawn(yRow[v], xCol[u])) {
                line[u] = 0;
                continue;
            }
            // Bilinear over the four neighbouring centres, leaving out neighbours that are not drawn.
            const Interp& X = xs[u];
            const Interp& Y = ys[v];
            double sum = 0, weight = 0;
            const int rr[2] = {Y.i0, Y.i1};
            const int cc[2] = {X.i0, X.i1};
            const double wr[2] = {1.0 - Y.t, Y.t};
            const double wc[2] = {1.0 - X.t, X.t};
            for (int a = 0; a < 2; ++a) {
                for (int b = 0; b < 2; ++b) {
                    const double w = wr[a] * wc[b];
                    if (w <= 0 || !drawn(rr[a], cc[b])) continue;
                    sum += w * m_values[std::size_t(rr[a]) * m_cols + cc[b]];
                    weight += w;
                }
            }
            const double value =
                weight > 0 ? sum / weight : m_values[std::size_t(yRow[v]) * m_cols + xCol[u]];
            const double t = span > 0 ? (value - m_min) / span : 0.5;
            line[u] = table[std::clamp(int(std::lround(t * 255.0)), 0, 255)];
        }
    }
    return m_smooth;
}

void HeatmapOverlay::paint(QPainter& painter, const QRectF&, double zoom) {
    if (!m_visible || isEmpty() || m_style.opacity <= 0) return;
    painter.setOpacity(m_style.opacity);
    if (!m_image.isNull()) {
        painter.setRenderHint(QPainter::SmoothPixmapTransform, m_style.smooth);
        painter.drawImage(m_imageTarget, m_image);
        return;
    }
    if (m_style.smooth) {
        const QImage& picture = smoothImage();
        painter.setRenderHint(QPainter::SmoothPixmapTransform, true);
        if (!picture.isNull()) painter.drawImage(m_bounds, picture);
    } else {
        // Without antialiasing, neighbouring cells share their edge pixels exactly: no seams.
        painter.setRenderHint(QPainter::Antialiasing, false);
        for (std::size_t i = 0; i < m_values.size(); ++i) {
            if (m_cells[i].isEmpty() || !std::isfinite(m_values[i])) continue;
            painter.fillRect(m_cells[i], QColor(colorOf(m_values[i])));
        }
    }
    if (m_style.outline && !m_bounds.isEmpty()) {
        painter.setOpacity(1.0);
        painter.setRenderHint(QPainter::Antialiasing, true);
        QPen pen(QColor(255, 255, 255, 150));
        pen.setCosmetic(true);
        pen.setWidthF(1.0);
        painter.setPen(pen);
        painter.setBrush(Qt::NoBrush);
        painter.drawRect(m_bounds);
    }
    if (m_style.gridLines) {
        painter.setOpacity(1.0);
        painter.setRenderHint(QPainter::Antialiasing, true);
        QPen pen(QColor(255, 255, 255, 70));
        pen.setCosmetic(true);
        pen.setWidthF(zoom >= 4 ? 1.0 : 0.6);
        painter.setPen(pen);
        painter.setBrush(Qt::NoBrush);
        for (const QRectF& cell : m_cells)
            if (!cell.isEmpty()) painter.drawRect(cell);
    }
}

QImage HeatmapOverlay::renderGrid(int rows, int cols, const std::vector<float>& values, ColorMap map,
                                  const std::vector<bool>& drawn, QColor background) {
    const std::size_t n = std::size_t(std::max(rows, 0)) * std::size_t(std::max(cols, 0));
    if (n == 0 || values.size() != n || (!drawn.empty() && drawn.size() != n)) return {};
    bool any = false;
    float lo = 0, hi = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if ((!drawn.empty() && !drawn[i]) || !std::isfinite(values[i])) continue;
        lo = any ? std::min(lo, values[i]) : values[i];
        hi = any ? std::max(hi, values[i]) : values[i];
        any = true;
    }
    const QVector<QRgb>& table = colorMapTable(map);
    QImage out(cols, rows, QImage::Format_RGB32);
    const double span = double(hi) - double(lo);
    for (int r = 0; r < rows; ++r) {
        auto* line = reinterpret_cast<QRgb*>(out.scanLine(r));
        for (int c = 0; c < cols; ++c) {
            const std::size_t i = std::size_t(r) * cols + c;
            if ((!drawn.empty() && !drawn[i]) || !std::isfinite(values[i])) {
                line[c] = background.rgb();
                continue;
            }
            const double t = span > 0 ? (values[i] - lo) / span : 0.5;
            line[c] = table[std::clamp(int(std::lround(t * 255.0)), 0, 255)];
        }
    }
    return out;
}
