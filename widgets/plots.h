// Plots drawn with QCustomPlot: per-layer statistics of the attention, the histogram of the current map with
// its thresholds, and live training curves. Plain Qt data in (QVector<double>); the numbers themselves are
// computed elsewhere (core/sdrpn/map_stats.h, the trainer), these widgets only draw them.
//
//   auto* stats = new LayerStatsPlot;
//   stats->setStats(layers, imageMass, entropy, sinkMass);   // one entry per layer, NaN leaves a gap
//   stats->setCurrentLayer(14);
//   connect(stats, &LayerStatsPlot::layerClicked, this, [](int layer) { select(layer); });
//
//   auto* hist = new MapHistogram;
//   hist->setHistogram(0.0, 0.02, counts);                   // equal-width bins over [min, max]
//   hist->setThresholds({{0.001, "τs"}, {0.004, "α·max"}});
//
//   auto* curves = new TrainingCurves;
//   curves->appendPoint(step, loss, lr);                     // redraws once per event-loop turn
//
// Thread affinity: GUI thread only.
#pragma once

#include <QColor>
#include <QString>
#include <QVector>
#include <QWidget>

class QCustomPlot;
class QCPGraph;
class QCPBars;
class QCPItemStraightLine;
class QMouseEvent;

// The three statistics of the attention across layers: mass on the image and sink mass (left axis, share of
// the row's attention) and entropy of the normalised image attention (right axis, nats). The current layer
// is marked by a vertical line; a click selects the nearest layer.
class LayerStatsPlot : public QWidget {
    Q_OBJECT
public:
    explicit LayerStatsPlot(QWidget* parent = nullptr);

    // `layers` are decoder layer numbers (x); the other vectors have one value per layer (NaN: a gap). On a
    // size mismatch the plot is cleared.
    void setStats(const QVector<double>& layers, const QVector<double>& imageMass,
                  const QVector<double>& entropy, const QVector<double>& sinkMass);
    void clear();
    // Marks `layer` (a decoder layer number; -1: no mark).
    void setCurrentLayer(int layer);
    int currentLayer() const { return m_current; }
    int layerCount() const { return m_layers.size(); }
    const QVector<double>& layers() const { return m_layers; }

    // The layer nearest to the widget x coordinate `x` of the plot (-1 when there are none).
    int layerAtPixel(double x) const;
    // The widget x coordinate where `layer` is drawn.
    double pixelOfLayer(int layer) const;

    QCustomPlot* customPlot() const { return m_plot; }
    QCPGraph* massGraph() const { return m_mass; }
    QCPGraph* entropyGraph() const { return m_entropy; }
    QCPGraph* sinkGraph() const { return m_sink; }

signals:
    void layerClicked(int layer);

private:
    void onMousePress(QMouseEvent* event);

    QCustomPlot* m_plot = nullptr;
    QCPGraph* m_mass = nullptr;
    QCPGraph* m_entropy = nullptr;
    QCPGraph* m_sink = nullptr;
    QCPItemStraightLine* m_marker = nullptr;
    QVector<double> m_layers;
    int m_current = -1;
};

// One threshold drawn over a histogram: a vertical line at `value` with a label at its top.
struct ThresholdLine {
    double value = 0.0;
    QString label;
    QColor color = QColor(220, 60, 60);
};

// The histogram of the current map (bars) with threshold lines.
class MapHistogram : public QWidget {
    Q_OBJECT
public:
    explicit MapHistogram(QWidget* parent = nullptr);

    // Equal-width bins over [min, max]; counts.size() bins. Empty counts or max <= min clear it.
    void setHistogram(double min, double max, const QVector<double>& counts);
    void setThresholds(const QVector<ThresholdLine>& lines);
    void setValueLabel(const QString& label);  // the x axis title ("attention")
    void clear();

    int binCount() const;
    int thresholdCount() const { return m_lines.size(); }
    const QVector<ThresholdLine>& thresholds() const { return m_lines; }
    QCustomPlot* customPlot() const { return m_plot; }
    QCPBars* bars() const { return m_bars; }

private:
    void rebuildLines();

    QCustomPlot* m_plot = nullptr;
    QCPBars* m_bars = nullptr;
    QVector<ThresholdLine> m_lines;
    double m_min = 0.0, m_max = 0.0;
};

// Loss (left axis) and learning rate (right axis) against the optimizer step, fed live.
class TrainingCurves : public QWidget {
    Q_OBJECT
public:
    explicit TrainingCurves(QWidget* parent = nullptr);

    int pointCount() const;
    QCustomPlot* customPlot() const { return m_plot; }
    QCPGraph* lossGraph() const { return m_loss; }
    QCPGraph* lrGraph() const { return m_lr; }

public slots:
    void appendPoint(double step, double loss, double lr);
    void clear();
    void setTitle(const QString& title);

private:
    void scheduleReplot();

    QCustomPlot* m_plot = nullptr;
    QCPGraph* m_loss = nullptr;
    QCPGraph* m_lr = nullptr;
    bool m_replotQueued = false;
};
