#include "widgets/plots.h"

#include <cmath>
#include <limits>

#include <QMouseEvent>
#include <QVBoxLayout>

#include <qcustomplot.h>

namespace {

const QColor kMassColor(40, 110, 200);
const QColor kEntropyColor(230, 140, 20);
const QColor kSinkColor(150, 60, 170);
const QColor kLossColor(40, 110, 200);
const QColor kLrColor(60, 160, 80);

QCustomPlot* makePlot(QWidget* parent) {
    auto* layout = new QVBoxLayout(parent);
    layout->setContentsMargins(0, 0, 0, 0);
    auto* plot = new QCustomPlot(parent);
    plot->setMinimumSize(200, 140);
    plot->setNoAntialiasingOnDrag(true);
    layout->addWidget(plot);
    return plot;
}

QCPGraph* makeGraph(QCustomPlot* plot, QCPAxis* key, QCPAxis* value, const QString& name, const QColor& color,
                    bool dots) {
    QCPGraph* g = plot->addGraph(key, value);
    g->setName(name);
    QPen pen(color);
    pen.setWidthF(1.6);
    g->setPen(pen);
    if (dots) g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, color, color, 5));
    return g;
}

// The finite range of `values`, or `fallback` when there is none; a flat range gets some room.
QCPRange finiteRange(const QVector<double>& values, QCPRange fallback) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (double v : values) {
        if (!std::isfinite(v)) continue;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    if (!(hi >= lo)) return fallback;
    if (hi - lo < 1e-12) {
        const double pad = lo != 0.0 ? std::abs(lo) * 0.1 : 1.0;
        return QCPRange(lo - pad, hi + pad);
    }
    const double pad = (hi - lo) * 0.05;
    return QCPRange(lo - pad, hi + pad);
}

}  // namespace

// ---- LayerStatsPlot ------------------------------------------------------------------------------------

LayerStatsPlot::LayerStatsPlot(QWidget* parent) : QWidget(parent) {
    m_plot = makePlot(this);
    m_plot->xAxis->setLabel(tr("layer"));
    m_plot->yAxis->setLabel(tr("attention share"));
    m_plot->yAxis2->setVisible(true);
    m_plot->yAxis2->setLabel(tr("entropy (nats)"));
    m_plot->xAxis->ticker()->setTickStepStrategy(QCPAxisTicker::tssReadability);
    m_mass = makeGraph(m_plot, m_plot->xAxis, m_plot->yAxis, tr("mass on image"), kMassColor, true);
    m_sink = makeGraph(m_plot, m_plot->xAxis, m_plot->yAxis, tr("sink mass"), kSinkColor, true);
    m_entropy = makeGraph(m_plot, m_plot->xAxis, m_plot->yAxis2, tr("entropy"), kEntropyColor, true);
    m_plot->legend->setVisible(true);
    m_plot->legend->setFont(QFont(font().family(), 8));
    m_plot->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignLeft);

    m_marker = new QCPItemStraightLine(m_plot);
    QPen pen(QColor(200, 40, 40));
    pen.setStyle(Qt::DashLine);
    m_marker->setPen(pen);
    m_marker->setSelectable(false);
    m_marker->setVisible(false);

    connect(m_plot, &QCustomPlot::mousePress, this, &LayerStatsPlot::onMousePress);
    clear();
}

void LayerStatsPlot::setStats(const QVector<double>& layers, const QVector<double>& imageMass,
                              const QVector<double>& entropy, const QVector<double>& sinkMass) {
    const int n = layers.size();
    if (imageMass.size() != n || entropy.size() != n || sinkMass.size() != n) {
        clear();
        return;
    }
    m_layers = layers;
    m_mass->setData(layers, imageMass, true);
    m_entropy->setData(layers, entropy, true);
    m_sink->setData(layers, sinkMass, true);
    const QCPRange x = finiteRange(layers, QCPRange(0, 1));
    m_plot->xAxis->setRange(x.lower - 0.5, x.upper + 0.5);
    QVector<double> shares = imageMass;
    shares += sinkMass;
    QCPRange y = finiteRange(shares, QCPRange(0, 1));
    m_plot->yAxis->setRange(std::min(0.0, y.lower), y.upper);
    const QCPRange e = finiteRange(entropy, QCPRange(0, 1));
    m_plot->yAxis2->setRange(std::min(0.0, e.lower), e.upper);
    setCurrentLayer(m_current);
}

void LayerStatsPlot::clear() {
    m_layers.clear();
    m_mass->data()->clear();
    m_entropy->data()->clear();
    m_sink->data()->clear();
    m_plot->xAxis->setRange(0, 1);
    m_plot->yAxis->setRange(0, 1);
    m_plot->yAxis2->setRange(0, 1);
    m_marker->setVisible(false);
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void LayerStatsPlot::setCurrentLayer(int layer) {
    m_current = layer;
    const bool shown = layer >= 0 && m_layers.contains(double(layer));
    m_marker->setVisible(shown);
    if (shown) {
        m_marker->point1->setCoords(layer, 0);
        m_marker->point2->setCoords(layer, 1);
    }
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

int LayerStatsPlot::layerAtPixel(double x) const {
    if (m_layers.isEmpty()) return -1;
    const double key = m_plot->xAxis->pixelToCoord(x);
    double best = m_layers.front();
    for (double l : m_layers)
        if (std::abs(l - key) < std::abs(best - key)) best = l;
    return int(std::lround(best));
}

double LayerStatsPlot::pixelOfLayer(int layer) const {
    return m_plot->xAxis->coordToPixel(layer);
}

void LayerStatsPlot::onMousePress(QMouseEvent* event) {
    if (event->button() != Qt::LeftButton || m_layers.isEmpty()) return;
    if (!m_plot->axisRect()->rect().contains(event->pos())) return;
    const int layer = layerAtPixel(event->position().x());
    if (layer < 0) return;
    setCurrentLayer(layer);
    emit layerClicked(layer);
}

// ---- MapHistogram --------------------------------------------------------------------------------------

MapHistogram::MapHistogram(QWidget* parent) : QWidget(parent) {
    m_plot = makePlot(this);
    m_plot->xAxis->setLabel(tr("value"));
    m_plot->yAxis->setLabel(tr("cells"));
    m_bars = new QCPBars(m_plot->xAxis, m_plot->yAxis);
    m_bars->setPen(QPen(QColor(40, 110, 200)));
    m_bars->setBrush(QColor(40, 110, 200, 140));
    m_bars->setWidthType(QCPBars::wtPlotCoords);
    clear();
}

void MapHistogram::setHistogram(double min, double max, const QVector<double>& counts) {
    if (counts.isEmpty() || !(max > min) || !std::isfinite(min) || !std::isfinite(max)) {
        clear();
        return;
    }
    m_min = min;
    m_max = max;
    const double width = (max - min) / counts.size();
    QVector<double> keys(counts.size());
    double top = 0.0;
    for (int i = 0; i < counts.size(); ++i) {
        keys[i] = min + width * (i + 0.5);
        top = std::max(top, counts[i]);
    }
    m_bars->setWidth(width);
    m_bars->setData(keys, counts, true);
    m_plot->xAxis->setRange(min, max);
    m_plot->yAxis->setRange(0, top > 0 ? top * 1.15 : 1.0);
    rebuildLines();
}

void MapHistogram::setThresholds(const QVector<ThresholdLine>& lines) {
    m_lines = lines;
    rebuildLines();
}

void MapHistogram::setValueLabel(const QString& label) {
    m_plot->xAxis->setLabel(label);
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void MapHistogram::clear() {
    m_bars->data()->clear();
    m_min = m_max = 0.0;
    m_plot->xAxis->setRange(0, 1);
    m_plot->yAxis->setRange(0, 1);
    rebuildLines();
}

int MapHistogram::binCount() const {
    return m_bars->data()->size();
}

void MapHistogram::rebuildLines() {
    // Items are few (a handful of thresholds): rebuilding them is simpler than diffing.
    m_plot->clearItems();
    for (const ThresholdLine& t : std::as_const(m_lines)) {
        if (!std::isfinite(t.value)) continue;
        auto* line = new QCPItemStraightLine(m_plot);
        QPen pen(t.color);
        pen.setWidthF(1.5);
        line->setPen(pen);
        line->setSelectable(false);
        line->point1->setCoords(t.value, 0);
        line->point2->setCoords(t.value, 1);
        if (!t.label.isEmpty()) {
            auto* text = new QCPItemText(m_plot);
            text->setSelectable(false);
            text->position->setTypeX(QCPItemPosition::ptPlotCoords);
            text->position->setTypeY(QCPItemPosition::ptAxisRectRatio);
            text->position->setCoords(t.value, 0.02);
            text->setPositionAlignment(Qt::AlignLeft | Qt::AlignTop);
            text->setPadding(QMargins(3, 0, 0, 0));
            text->setColor(t.color);
            text->setText(t.label);
        }
    }
    // Keep thresholds that lie outside the data in view.
    if (m_max > m_min) {
        double lo = m_min, hi = m_max;
        for (const ThresholdLine& t : std::as_const(m_lines))
            if (std::isfinite(t.value)) {
                lo = std::min(lo, t.value);
                hi = std::max(hi, t.value);
            }
        const double pad = (lo < m_min || hi > m_max) ? (hi - lo) * 0.03 : 0.0;
        m_plot->xAxis->setRange(lo - pad, hi + pad);
    }
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

// ---- TrainingCurves ------------------------------------------------------------------------------------

TrainingCurves::TrainingCurves(QWidget* parent) : QWidget(parent) {
    m_plot = makePlot(this);
    m_plot->xAxis->setLabel(tr("step"));
    m_plot->yAxis->setLabel(tr("loss"));
    m_plot->yAxis2->setVisible(true);
    m_plot->yAxis2->setLabel(tr("learning rate"));
    m_plot->yAxis2->setNumberFormat(QStringLiteral("gb"));
    m_loss = makeGraph(m_plot, m_plot->xAxis, m_plot->yAxis, tr("loss"), kLossColor, false);
    m_lr = makeGraph(m_plot, m_plot->xAxis, m_plot->yAxis2, tr("learning rate"), kLrColor, false);
    m_plot->legend->setVisible(true);
    m_plot->legend->setFont(QFont(font().family(), 8));
    clear();
}

int TrainingCurves::pointCount() const {
    return m_loss->data()->size();
}

void TrainingCurves::appendPoint(double step, double loss, double lr) {
    m_loss->addData(step, loss);
    m_lr->addData(step, lr);
    scheduleReplot();
}

void TrainingCurves::clear() {
    m_loss->data()->clear();
    m_lr->data()->clear();
    m_plot->xAxis->setRange(0, 1);
    m_plot->yAxis->setRange(0, 1);
    m_plot->yAxis2->setRange(0, 1);
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void TrainingCurves::setTitle(const QString& title) {
    if (m_plot->plotLayout()->rowCount() < 2) {
        m_plot->plotLayout()->insertRow(0);
        m_plot->plotLayout()->addElement(0, 0, new QCPTextElement(m_plot, title));
    } else if (auto* text = qobject_cast<QCPTextElement*>(m_plot->plotLayout()->element(0, 0))) {
        text->setText(title);
    }
    m_plot->replot(QCustomPlot::rpQueuedReplot);
}

void TrainingCurves::scheduleReplot() {
    // Rescaling and replotting once per event-loop turn keeps a fast trainer from flooding the GUI.
    if (m_replotQueued) return;
    m_replotQueued = true;
    QMetaObject::invokeMethod(
        this,
        [this] {
            m_replotQueued = false;
            m_loss->rescaleAxes(false);
            m_lr->rescaleValueAxis(false, true);
            QCPRange x = m_plot->xAxis->range();
            if (x.size() < 1.0) m_plot->xAxis->setRange(x.lower, x.lower + 1.0);
            QCPRange y = m_plot->yAxis->range();
            m_plot->yAxis->setRange(std::min(0.0, y.lower),
                                    y.upper > y.lower ? y.upper * 1.05 : y.lower + 1.0);
            QCPRange y2 = m_plot->yAxis2->range();
            m_plot->yAxis2->setRange(0.0, y2.upper > 0 ? y2.upper * 1.05 : 1.0);
            m_plot->replot(QCustomPlot::rpQueuedReplot);
        },
        Qt::QueuedConnection);
}
