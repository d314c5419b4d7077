#include "widgets/attention_panel.h"

#include <algorithm>
#include <cmath>

#include <QCheckBox>
#include <QComboBox>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QLinearGradient>
#include <QPainter>
#include <QScrollArea>
#include <QScrollBar>
#include <QSlider>
#include <QStandardItemModel>
#include <QVBoxLayout>

#include "widgets/layer_strip.h"

namespace {

// Attention probabilities span many decades: three significant digits, fixed or scientific.
QString formatValue(double v) {
    if (v == 0.0) return QStringLiteral("0");
    const double a = std::abs(v);
    if (a >= 1e-3 && a < 1e4) return QString::number(v, 'g', 3);
    return QString::number(v, 'e', 2);
}

}  // namespace

// ---------------------------------------------------------------------------------------------- ColorBar

ColorBar::ColorBar(QWidget* parent) : QWidget(parent) {
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
    setMinimumWidth(120);
}

void ColorBar::setColorMap(ColorMap map) {
    m_map = map;
    update();
}

void ColorBar::setRange(double low, double high) {
    m_hasRange = true;
    m_low = low;
    m_high = high;
    update();
}

void ColorBar::clearRange() {
    m_hasRange = false;
    update();
}

void ColorBar::paintEvent(QPaintEvent*) {
    QPainter painter(this);
    const int textHeight = fontMetrics().height();
    const QRect bar(1, 1, width() - 2, std::max(8, height() - textHeight - 4));
    QLinearGradient gradient(bar.topLeft(), bar.topRight());
    for (int i = 0; i <= 16; ++i) gradient.setColorAt(i / 16.0, QColor(colorMapColor(m_map, i / 16.0)));
    painter.fillRect(bar, gradient);
    painter.setPen(palette().color(QPalette::Mid));
    painter.drawRect(bar.adjusted(0, 0, -1, -1));
    if (!m_hasRange) return;
    painter.setPen(palette().color(QPalette::WindowText));
    const QRect text(bar.left(), bar.bottom() + 2, bar.width(), textHeight);
    painter.drawText(text, Qt::AlignLeft | Qt::AlignVCenter, formatValue(m_low));
    painter.drawText(text, Qt::AlignRight | Qt::AlignVCenter, formatValue(m_high));
}

// ------------------------------------------------------------------------------------------ AttentionPanel

AttentionPanel::AttentionPanel(QWidget* parent) : QWidget(parent) {
    auto* layout = new QHBoxLayout(this);
    layout->setContentsMargins(6, 4, 6, 4);
    layout->setSpacing(12);

    auto* controls = new QGridLayout;
    controls->setHorizontalSpacing(8);
    controls->setVerticalSpacing(4);
    m_head = new QComboBox;
    m_head->setToolTip(tr("Show one attention head, or the mean over all heads"));
    m_query = new QComboBox;
    m_query->setToolTip(tr("Whose attention to the image is shown: which query tokens (rows)"));
    m_colorMap = new QComboBox;
    m_colorMap->addItems(colorMapNames());
    m_opacity = new QSlider(Qt::Horizontal);
    m_opacity->setRange(0, 100);
    m_opacity->setToolTip(tr("Heat map opacity"));
    m_smooth = new QCheckBox(tr("Smooth"));
    m_smooth->setToolTip(tr("Interpolate between cell centres instead of one flat colour per cell"));
    m_grid = new QCheckBox(tr("Grid"));
    m_grid->setToolTip(tr("Draw the image-token cells"));
    m_show = new QCheckBox(tr("Overlay"));
    m_show->setToolTip(tr("Show the heat map over the image"));
    m_show->setChecked(true);
    m_colorBar = new ColorBar;

    auto addLabel = [controls](const QString& text, int row, int col) {
        auto* label = new QLabel(text);
        label->setForegroundRole(QPalette::PlaceholderText);
        controls->addWidget(label, row, col);
    };
    addLabel(tr("Query"), 0, 0);
    controls->addWidget(m_query, 0, 1, 1, 3);
    addLabel(tr("Head"), 1, 0);
    controls->addWidget(m_head, 1, 1);
    addLabel(tr("Colours"), 1, 2);
    controls->addWidget(m_colorMap, 1, 3);
    addLabel(tr("Opacity"), 2, 0);
    controls->addWidget(m_opacity, 2, 1, 1, 3);
    auto* checks = new QHBoxLayout;
    checks->setSpacing(10);
    checks->addWidget(m_show);
    checks->addWidget(m_smooth);
    checks->addWidget(m_grid);
    checks->addStretch();
    controls->addLayout(checks, 3, 0, 1, 4);
    controls->addWidget(m_colorBar, 4, 0, 1, 4);
    controls->setRowStretch(5, 1);
    controls->setColumnStretch(1, 1);
    controls->setColumnStretch(3, 1);
    auto* controlsBox = new QWidget;
    controlsBox->setLayout(controls);
    controlsBox->setFixedWidth(340);
    controls->setContentsMargins(0, 0, 0, 0);

    auto* right = new QVBoxLayout;
    right->setSpacing(2);
    m_summary = new QLabel;
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_strip = new LayerStrip;
    m_strip->installEventFilter(this);
    m_stripScroll = new QScrollArea;
    m_stripScroll->setWidget(m_strip);
    m_stripScroll->setWidgetResizable(false);
    m_stripScroll->setFrameShape(QFrame::NoFrame);
    m_stripScroll->setVerticalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    m_stripScroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAsNeeded);
    m_stripScroll->setMinimumHeight(m_strip->cellRect(0).height() + 12 +
                                    m_stripScroll->horizontalScrollBar()->sizeHint().height());
    right->addWidget(m_summary);
    right->addWidget(m_stripScroll, 1);

    layout->addWidget(controlsBox);
    layout->addLayout(right, 1);

    setHeadCount(0);
    setQueryOptions({}, {});
    {
        HeatmapStyle initial;
        m_updating = true;
        setStyle(initial);
        m_updating = false;
    }
    clearMaps(tr("Ask a question to see where each layer looks."));

    connect(m_strip, &LayerStrip::currentIndexChanged, this, [this](int index) {
        if (index >= 0) {
            const QRect cell = m_strip->cellRect(index);
            m_stripScroll->ensureVisible(cell.center().x(), cell.center().y(), cell.width(), 0);
        }
        if (!m_updating) emit selectionChanged();
    });
    connect(m_head, &QComboBox::currentIndexChanged, this, [this] {
        if (!m_updating) emit selectionChanged();
    });
    connect(m_query, &QComboBox::currentIndexChanged, this, [this] {
        if (!m_updating) emit selectionChanged();
    });
    connect(m_colorMap, &QComboBox::currentIndexChanged, this, [this](int index) {
        m_style.colorMap = ColorMap(index);
        m_colorBar->setColorMap(m_style.colorMap);
        emitStyle();
    });
    connect(m_opacity, &QSlider::valueChanged, this, [this](int value) {
        m_style.opacity = value / 100.0;
        emitStyle();
    });
    connect(m_smooth, &QCheckBox::toggled, this, [this](bool on) {
        m_style.smooth = on;
        emitStyle();
    });
    connect(m_grid, &QCheckBox::toggled, this, [this](bool on) {
        m_style.gridLines = on;
        emitStyle();
    });
    connect(m_show, &QCheckBox::toggled, this, [this](bool on) {
        if (!m_updating) emit overlayVisibilityChanged(on);
    });
}

void AttentionPanel::resizeEvent(QResizeEvent* event) {
    QWidget::resizeEvent(event);
    fitThumbnails();
}

void AttentionPanel::fitThumbnails() {
    // Thumbnails as tall as the strip's room allows (the strip scrolls sideways when they do not all fit).
    const QSize room(m_stripScroll->width(),
                     m_stripScroll->height() - m_stripScroll->horizontalScrollBar()->sizeHint().height());
    const int side = m_strip->thumbnailSizeFor(room);
    if (side == m_strip->thumbnailSize()) return;
    m_strip->setThumbnailSize(side);
    m_strip->adjustSize();
}

void AttentionPanel::emitStyle() {
    if (!m_updating) emit styleChanged(m_style);
}

void AttentionPanel::setLayerThumbnails(const QList<QImage>& thumbnails, const QStringList& labels) {
    const int before = m_strip->currentIndex();
    m_updating = true;
    m_strip->setThumbnails(thumbnails, labels);
    m_updating = false;
    m_strip->adjustSize();
    fitThumbnails();
    if (m_strip->currentIndex() != before) emit selectionChanged();
}

void AttentionPanel::clearMaps(const QString& message) {
    m_updating = true;
    m_strip->setPlaceholderText(message);
    m_strip->clear();
    m_updating = false;
    m_strip->adjustSize();
    m_colorBar->clearRange();
    m_summary->clear();
}

int AttentionPanel::layerIndex() const {
    return m_strip->currentIndex();
}

void AttentionPanel::setLayerIndex(int index) {
    m_strip->setCurrentIndex(index);
}

void AttentionPanel::setHeadCount(int count) {
    const int head = headIndex();
    m_updating = true;
    m_head->clear();
    m_head->addItem(tr("mean of heads"), -1);
    for (int h = 0; h < count; ++h) m_head->addItem(tr("head %1").arg(h), h);
    m_head->setCurrentIndex(head >= 0 && head < count ? head + 1 : 0);
    m_head->setEnabled(count > 0);
    m_updating = false;
    if (headIndex() != head) emit selectionChanged();
}

int AttentionPanel::headIndex() const {
    return m_head->currentIndex() <= 0 ? -1 : m_head->currentData().toInt();
}

void AttentionPanel::setHeadIndex(int head) {
    const int index = m_head->findData(head);
    if (index >= 0) m_head->setCurrentIndex(index);
}

int AttentionPanel::headCount() const {
    return m_head->count() - 1;
}

void AttentionPanel::selectPreviousLayer() {
    if (m_strip->currentIndex() > 0) m_strip->selectPrevious();
}

void AttentionPanel::selectNextLayer() {
    if (m_strip->currentIndex() + 1 < m_strip->count()) m_strip->selectNext();
}

void AttentionPanel::selectPreviousHead() {
    if (m_head->isEnabled() && m_head->currentIndex() > 0)
        m_head->setCurrentIndex(m_head->currentIndex() - 1);
}

void AttentionPanel::selectNextHead() {
    if (m_head->isEnabled() && m_head->currentIndex() + 1 < m_head->count())
        m_head->setCurrentIndex(m_head->currentIndex() + 1);
}

bool AttentionPanel::eventFilter(QObject* watched, QEvent* event) {
    if (watched == m_strip && event->type() == QEvent::KeyPress) {
        const auto* key = static_cast<QKeyEvent*>(event);
        if (key->key() == Qt::Key_Up && key->modifiers() == Qt::NoModifier) {
            selectPreviousHead();
            return true;
        }
        if (key->key() == Qt::Key_Down && key->modifiers() == Qt::NoModifier) {
            selectNextHead();
            return true;
        }
    }
    return QWidget::eventFilter(watched, event);
}

void AttentionPanel::setQueryOptions(const QStringList& names, const QList<bool>& enabled, int preferred) {
    const int before = queryIndex();
    m_updating = true;
    m_query->clear();
    m_query->addItems(names);
    auto* model = qobject_cast<QStandardItemModel*>(m_query->model());
    for (int i = 0; i < names.size(); ++i) {
        const bool on = enabled.value(i, true);
        if (model && model->item(i)) model->item(i)->setEnabled(on);
    }
    int choice = before >= 0 && before < names.size() && enabled.value(before, true) ? before : preferred;
    if (choice >= names.size() || !enabled.value(choice, true)) {
        choice = -1;
        for (int i = 0; i < names.size() && choice < 0; ++i)
            if (enabled.value(i, true)) choice = i;
    }
    m_query->setCurrentIndex(choice);
    m_query->setEnabled(!names.isEmpty());
    m_updating = false;
    if (queryIndex() != before) emit selectionChanged();
}

int AttentionPanel::queryIndex() const {
    return m_query->currentIndex();
}

void AttentionPanel::setQueryIndex(int index) {
    m_query->setCurrentIndex(index);
}

void AttentionPanel::setStyle(const HeatmapStyle& style) {
    const bool wasUpdating = m_updating;
    m_updating = true;
    m_style = style;
    m_colorMap->setCurrentIndex(int(style.colorMap));
    m_colorBar->setColorMap(style.colorMap);
    m_opacity->setValue(int(std::lround(style.opacity * 100)));
    m_smooth->setChecked(style.smooth);
    m_grid->setChecked(style.gridLines);
    m_updating = wasUpdating;
    m_style = style;
    emitStyle();
}

bool AttentionPanel::overlayVisible() const {
    return m_show->isChecked();
}

void AttentionPanel::setOverlayVisible(bool visible) {
    m_show->setChecked(visible);
}

void AttentionPanel::setValueRange(double low, double high) {
    m_colorBar->setRange(low, high);
}

void AttentionPanel::setSummary(const QString& text) {
    m_summary->setText(text);
}

QString AttentionPanel::summary() const {
    return m_summary->text();
}
