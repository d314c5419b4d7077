#include "widgets/attention_panel.h"

#include <algorithm>
#include <cmath>

#include <QCheckBox>
#include <QComboBox>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QLinearGradient>
#include <QPainter>
#include <QRegularExpression>
#include <QScrollArea>
#include <QScrollBar>
#include <QSignalBlocker>
#include <QSlider>
#include <QSpinBox>
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

// The head picker's fixed entries, then one per head.
constexpr int kMeanEntry = 0;
constexpr int kGroundingEntry = 1;
constexpr int kSetEntry = 2;
constexpr int kFirstHeadEntry = 3;

QList<int> sortedUnique(QList<int> heads) {
    std::sort(heads.begin(), heads.end());
    heads.erase(std::unique(heads.begin(), heads.end()), heads.end());
    return heads;
}

QList<int> allHeads(int count) {
    QList<int> heads;
    for (int h = 0; h < count; ++h) heads << h;
    return heads;
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
    m_head->setToolTip(tr(
        "Show one attention head, the mean over a set of heads, the grounding heads of the label settings, "
        "or the mean over all heads"));
    m_headSetEdit = new QLineEdit;
    m_headSetEdit->setObjectName(QStringLiteral("headSetEdit"));
    m_headSetEdit->setPlaceholderText(tr("e.g. 0,3,5-7"));
    m_headSetEdit->setToolTip(tr("The heads to average: numbers and ranges separated by commas"));
    m_headSetEdit->setClearButtonEnabled(true);
    m_headSetMessage = new QLabel;
    m_headSetMessage->setObjectName(QStringLiteral("headSetMessage"));
    m_headSetMessage->setWordWrap(true);
    m_headSetMessage->setStyleSheet(QStringLiteral("color: #a4262c"));
    m_headSetMessage->hide();
    m_query = new QComboBox;
    m_query->setToolTip(tr("Whose attention to the image is shown: which query tokens (rows)"));
    m_token = new QSpinBox;
    m_token->setObjectName(QStringLiteral("answerTokenSpin"));
    m_token->setRange(0, 0);
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
    // Shown only for the query choice that picks one answer token.
    m_tokenRow = new QWidget;
    auto* tokenLayout = new QHBoxLayout(m_tokenRow);
    tokenLayout->setContentsMargins(0, 0, 0, 0);
    auto* tokenLabel = new QLabel(tr("Answer token"));
    tokenLabel->setForegroundRole(QPalette::PlaceholderText);
    tokenLayout->addWidget(tokenLabel);
    tokenLayout->addWidget(m_token);
    tokenLayout->addStretch();
    m_tokenRow->hide();
    controls->addWidget(m_tokenRow, 1, 0, 1, 4);
    addLabel(tr("Head"), 2, 0);
    controls->addWidget(m_head, 2, 1);
    addLabel(tr("Colours"), 2, 2);
    controls->addWidget(m_colorMap, 2, 3);
    // Shown only for "Set of heads…".
    m_headSetRow = new QWidget;
    auto* setLayout = new QVBoxLayout(m_headSetRow);
    setLayout->setContentsMargins(0, 0, 0, 0);
    setLayout->setSpacing(2);
    auto* setLine = new QHBoxLayout;
    auto* setLabel = new QLabel(tr("Heads"));
    setLabel->setForegroundRole(QPalette::PlaceholderText);
    setLine->addWidget(setLabel);
    setLine->addWidget(m_headSetEdit, 1);
    setLayout->addLayout(setLine);
    setLayout->addWidget(m_headSetMessage);
    m_headSetRow->hide();
    controls->addWidget(m_headSetRow, 3, 0, 1, 4);
    addLabel(tr("Opacity"), 4, 0);
    controls->addWidget(m_opacity, 4, 1, 1, 3);
    auto* checks = new QHBoxLayout;
    checks->setSpacing(10);
    checks->addWidget(m_show);
    checks->addWidget(m_smooth);
    checks->addWidget(m_grid);
    checks->addStretch();
    controls->addLayout(checks, 5, 0, 1, 4);
    controls->addWidget(m_colorBar, 6, 0, 1, 4);
    controls->setRowStretch(7, 1);
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
    connect(m_head, &QComboBox::currentIndexChanged, this, &AttentionPanel::headEntryChosen);
    connect(m_headSetEdit, &QLineEdit::textChanged, this, &AttentionPanel::headSetEdited);
    connect(m_query, &QComboBox::currentIndexChanged, this, [this] {
        updateTokenPicker();
        if (!m_updating) emit selectionChanged();
    });
    connect(m_token, &QSpinBox::valueChanged, this, [this] {
        if (!m_updating && m_tokenChoice >= 0 && queryIndex() == m_tokenChoice) emit selectionChanged();
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
    count = std::max(0, count);
    const HeadChoice choice = headChoice();
    const int head = headIndex();
    const QList<int> set = headSet();
    m_headCount = count;
    int entry = kMeanEntry;
    if (choice == HeadChoice::One && head < count) entry = kFirstHeadEntry + head;
    if (choice == HeadChoice::Grounding) entry = kGroundingEntry;
    // A typed set that no longer fits is dropped (and so is the text, which would no longer parse).
    if (!m_headSet.isEmpty() && m_headSet.back() >= count) {
        m_headSet.clear();
        const QSignalBlocker block(m_headSetEdit);
        m_headSetEdit->clear();
        m_headSetMessage->hide();
    }
    if (choice == HeadChoice::Set && !m_headSet.isEmpty()) entry = kSetEntry;
    {
        const QSignalBlocker block(m_head);
        m_head->clear();
        m_head->addItem(tr("Mean of heads"));
        m_head->addItem(tr("Grounding heads (preset)"));
        m_head->addItem(tr("Set of heads…"));
        for (int h = 0; h < count; ++h) m_head->addItem(tr("Head %1").arg(h));
        m_head->setCurrentIndex(entry);
        m_head->setEnabled(count > 0);
    }
    m_headEntry = entry;
    updateGroundingEntry();
    m_headSetRow->setVisible(entry == kSetEntry);
    if (headChoice() != choice || headIndex() != head || headSet() != set) emit selectionChanged();
}

int AttentionPanel::headCount() const {
    return m_headCount;
}

AttentionPanel::HeadChoice AttentionPanel::headChoice() const {
    switch (m_head->currentIndex()) {
        case kGroundingEntry:
            return HeadChoice::Grounding;
        case kSetEntry:
            return HeadChoice::Set;
        default:
            return m_head->currentIndex() >= kFirstHeadEntry ? HeadChoice::One : HeadChoice::Mean;
    }
}

int AttentionPanel::headIndex() const {
    return m_head->currentIndex() >= kFirstHeadEntry ? m_head->currentIndex() - kFirstHeadEntry : -1;
}

void AttentionPanel::setHeadIndex(int head) {
    if (head < 0) {
        m_head->setCurrentIndex(kMeanEntry);
    } else if (head < m_headCount) {
        m_head->setCurrentIndex(kFirstHeadEntry + head);
    }
}

QList<int> AttentionPanel::headSet() const {
    return headChoice() == HeadChoice::Set ? m_headSet : QList<int>{};
}

bool AttentionPanel::setHeadSet(const QList<int>& heads) {
    const QList<int> set = sortedUnique(heads);
    if (set.isEmpty() || set.front() < 0 || set.back() >= m_headCount) return false;
    const bool changed = set != m_headSet;
    m_headSet = set;
    {
        const QSignalBlocker block(m_headSetEdit);
        m_headSetEdit->setText(formatHeadList(set));
    }
    m_headSetMessage->hide();
    if (m_head->currentIndex() != kSetEntry) {
        m_head->setCurrentIndex(kSetEntry);
    } else if (changed && !m_updating) {
        emit selectionChanged();
    }
    return true;
}

void AttentionPanel::selectGroundingHeads() {
    if (m_head->count() > kGroundingEntry) m_head->setCurrentIndex(kGroundingEntry);
}

void AttentionPanel::setGroundingHeads(const QList<int>& heads) {
    m_hasGrounding = true;
    m_groundingHeads = sortedUnique(heads);
    updateGroundingEntry();
}

void AttentionPanel::clearGroundingHeads() {
    m_hasGrounding = false;
    m_groundingHeads.clear();
    updateGroundingEntry();
}

void AttentionPanel::updateGroundingEntry() {
    auto* model = qobject_cast<QStandardItemModel*>(m_head->model());
    QStandardItem* item = model ? model->item(kGroundingEntry) : nullptr;
    if (!item) return;
    item->setEnabled(m_hasGrounding);
    QString tip;
    if (!m_hasGrounding) {
        tip = tr("The label settings name no grounding heads for this layer");
    } else if (m_groundingHeads.isEmpty()) {
        tip = tr("The label settings' grounding heads of this layer: every head");
    } else {
        tip =
            tr("The label settings' grounding heads of this layer: %1").arg(formatHeadList(m_groundingHeads));
    }
    item->setToolTip(tip);
}

QString AttentionPanel::headDescription() const {
    switch (headChoice()) {
        case HeadChoice::Mean:
            break;
        case HeadChoice::Grounding:
            if (!m_hasGrounding) return tr("mean of heads (no grounding heads for this layer)");
            if (m_groundingHeads.isEmpty()) return tr("grounding heads (every head)");
            return tr("grounding heads %1").arg(formatHeadList(m_groundingHeads));
        case HeadChoice::Set:
            if (m_headSet.isEmpty()) break;
            if (m_headSet.size() == 1) return tr("head %1").arg(m_headSet.front());
            return tr("heads %1").arg(formatHeadList(m_headSet));
        case HeadChoice::One:
            return tr("head %1").arg(headIndex());
    }
    return tr("mean of heads");
}

std::optional<QList<int>> AttentionPanel::parseHeadList(const QString& text, int count, QString* error) {
    static const QRegularExpression item(QStringLiteral("^(\\d{1,9})\\s*(?:-\\s*(\\d{1,9}))?$"));
    auto fail = [error](const QString& message) {
        if (error) *error = message;
        return std::nullopt;
    };
    QList<int> heads;
    for (const QString& raw : text.split(QLatin1Char(','))) {
        const QString part = raw.trimmed();
        if (part.isEmpty()) continue;
        const QRegularExpressionMatch m = item.match(part);
        if (!m.hasMatch())
            return fail(tr("“%1” is not a head or a range of heads; type e.g. 0,3,5-7").arg(part));
        const int first = m.captured(1).toInt();
        const int last = m.captured(2).isEmpty() ? first : m.captured(2).toInt();
        if (last < first)
            return fail(
                tr("The range “%1” runs backwards; write it as %2-%3").arg(part).arg(last).arg(first));
        if (count <= 0) return fail(tr("There are no heads to choose from"));
        if (last >= count)
            return fail(tr("Head %1 is out of range: the heads are 0 to %2").arg(last).arg(count - 1));
        for (int h = first; h <= last; ++h) heads << h;
    }
    if (heads.isEmpty()) return fail(tr("Type the heads to average, e.g. 0,3,5-7"));
    return sortedUnique(heads);
}

QString AttentionPanel::formatHeadList(const QList<int>& heads) {
    const QList<int> sorted = sortedUnique(heads);
    QStringList parts;
    for (int i = 0; i < sorted.size();) {
        int j = i;
        while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
        if (j - i >= 2) {
            parts << QStringLiteral("%1-%2").arg(sorted[i]).arg(sorted[j]);
        } else {
            for (int k = i; k <= j; ++k) parts << QString::number(sorted[k]);
        }
        i = j + 1;
    }
    return parts.join(QLatin1Char(','));
}

QList<int> AttentionPanel::headsOfEntry(int entry) const {
    if (entry == kGroundingEntry && m_hasGrounding && !m_groundingHeads.isEmpty()) return m_groundingHeads;
    if (entry == kSetEntry) return m_headSet;
    if (entry >= kFirstHeadEntry) return {entry - kFirstHeadEntry};
    return allHeads(m_headCount);
}

void AttentionPanel::headEntryChosen() {
    const int previous = m_headEntry;
    m_headEntry = m_head->currentIndex();
    if (m_headEntry == kSetEntry && m_headSet.isEmpty()) {
        // Start from the heads shown so far, ready to edit.
        m_headSet = headsOfEntry(previous);
        const QSignalBlocker block(m_headSetEdit);
        m_headSetEdit->setText(formatHeadList(m_headSet));
        m_headSetMessage->hide();
    }
    m_headSetRow->setVisible(m_headEntry == kSetEntry);
    if (!m_updating) emit selectionChanged();
}

void AttentionPanel::headSetEdited(const QString& text) {
    QString error;
    const std::optional<QList<int>> heads = parseHeadList(text, m_headCount, &error);
    m_headSetEdit->setStyleSheet(heads ? QString() : QStringLiteral("color: #a4262c"));
    m_headSetMessage->setText(heads ? QString() : error);
    m_headSetMessage->setVisible(!heads);
    // A bad text keeps the last good set on show.
    if (!heads || *heads == m_headSet) return;
    m_headSet = *heads;
    if (!m_updating && headChoice() == HeadChoice::Set) emit selectionChanged();
}

void AttentionPanel::selectPreviousLayer() {
    if (m_strip->currentIndex() > 0) m_strip->selectPrevious();
}

void AttentionPanel::selectNextLayer() {
    if (m_strip->currentIndex() + 1 < m_strip->count()) m_strip->selectNext();
}

void AttentionPanel::selectPreviousHead() {
    selectHeadEntry(-1);
}

void AttentionPanel::selectNextHead() {
    selectHeadEntry(+1);
}

void AttentionPanel::selectHeadEntry(int step) {
    if (!m_head->isEnabled()) return;
    const auto* model = qobject_cast<QStandardItemModel*>(m_head->model());
    for (int i = m_head->currentIndex() + step; i >= 0 && i < m_head->count(); i += step) {
        const QStandardItem* item = model ? model->item(i) : nullptr;
        if (item && !item->isEnabled()) continue;
        m_head->setCurrentIndex(i);
        return;
    }
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
    updateTokenPicker();
    m_updating = false;
    if (queryIndex() != before) emit selectionChanged();
}

int AttentionPanel::queryIndex() const {
    return m_query->currentIndex();
}

void AttentionPanel::setQueryIndex(int index) {
    m_query->setCurrentIndex(index);
}

void AttentionPanel::setAnswerTokenChoice(int queryIndex, int tokenCount) {
    const int before = answerTokenIndex();
    const bool wasUpdating = m_updating;
    m_updating = true;
    m_tokenChoice = queryIndex;
    m_token->setRange(0, std::max(0, tokenCount - 1));
    m_token->setEnabled(tokenCount > 0);
    m_token->setToolTip(tokenCount > 0 ? tr("Which answer token's attention is shown: 0 (the first answer "
                                            "token fed back) to %1")
                                             .arg(tokenCount - 1)
                                       : tr("This answer has no answer tokens fed back"));
    updateTokenPicker();
    m_updating = wasUpdating;
    if (!m_updating && this->queryIndex() == m_tokenChoice && answerTokenIndex() != before)
        emit selectionChanged();
}

int AttentionPanel::answerTokenIndex() const {
    return m_token->value();
}

void AttentionPanel::setAnswerTokenIndex(int index) {
    m_token->setValue(index);
}

void AttentionPanel::updateTokenPicker() {
    m_tokenRow->setVisible(m_tokenChoice >= 0 && queryIndex() == m_tokenChoice);
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
