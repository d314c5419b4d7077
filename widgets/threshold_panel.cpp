#include "widgets/threshold_panel.h"

#include <algorithm>
#include <cmath>

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QGridLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QRegularExpression>
#include <QSignalBlocker>
#include <QSlider>
#include <QSpinBox>
#include <QVBoxLayout>

namespace {

constexpr int kSliderSteps = 1000;
const QString kCustom = QStringLiteral("custom");

QJsonObject group(int layer, const QJsonArray& heads) {
    QJsonObject g;
    g[QStringLiteral("layer")] = layer;
    g[QStringLiteral("heads")] = heads;
    return g;
}

}  // namespace

struct ThresholdPanel::SliderField {
    Field field;
    QSlider* slider = nullptr;
    QDoubleSpinBox* spin = nullptr;
    double low = 0, high = 1;  // the slider's range (the spin box may allow more)
    bool logarithmic = false;
    QString label;

    int toSlider(double v) const {
        double t = 0;
        if (logarithmic) {
            t = v <= low ? 0.0 : (std::log10(v) - std::log10(low)) / (std::log10(high) - std::log10(low));
        } else {
            t = (v - low) / (high - low);
        }
        return int(std::lround(std::clamp(t, 0.0, 1.0) * kSliderSteps));
    }
    double fromSlider(int i) const {
        const double t = double(i) / kSliderSteps;
        if (logarithmic) return std::pow(10.0, std::log10(low) + t * (std::log10(high) - std::log10(low)));
        return low + t * (high - low);
    }
};

ThresholdPanel::ThresholdPanel(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(6, 4, 6, 4);
    layout->setSpacing(6);

    // ---- labels
    auto* labels = new QGroupBox(tr("Denoising (pseudo-labels)"));
    auto* lg = new QGridLayout(labels);
    lg->setHorizontalSpacing(8);
    lg->setVerticalSpacing(3);
    m_labelPreset = new QComboBox;
    m_labelPreset->setToolTip(tr("The paper's layers, heads and thresholds per model"));
    lg->addWidget(new QLabel(tr("Preset")), 0, 0);
    lg->addWidget(m_labelPreset, 0, 1, 1, 2);

    m_groundingLayer = new QSpinBox;
    m_groundingLayer->setRange(0, 999);
    m_groundingLayer->setToolTip(tr("Decoder layer of the grounding map (answer → image attention)"));
    m_groundingHeads = new QLineEdit;
    m_groundingHeads->setPlaceholderText(tr("all heads"));
    m_groundingHeads->setToolTip(tr("Heads averaged into the grounding map, e.g. “24, 13, 26”; empty: all"));
    m_groundingMore = new QLabel;
    m_groundingMore->setForegroundRole(QPalette::PlaceholderText);
    m_follow = new QCheckBox(tr("Follow view"));
    m_follow->setToolTip(tr("Take the grounding layer and head from the Attention panel (←/→, ↑/↓)"));
    auto* grounding = new QHBoxLayout;
    grounding->setSpacing(4);
    grounding->addWidget(m_groundingLayer);
    grounding->addWidget(m_groundingHeads, 1);
    grounding->addWidget(m_follow);
    lg->addWidget(new QLabel(tr("Grounding")), 1, 0);
    lg->addLayout(grounding, 1, 1, 1, 2);
    lg->addWidget(m_groundingMore, 2, 1, 1, 2);

    m_sinkOn = new QCheckBox;
    m_sinkOn->setToolTip(tr("Detect sink tokens with a shallow layer's attention"));
    m_sinkLayer = new QSpinBox;
    m_sinkLayer->setRange(0, 999);
    m_sinkLayer->setToolTip(tr("Decoder layer of the sink map"));
    m_sinkHeads = new QLineEdit;
    m_sinkHeads->setPlaceholderText(tr("all heads"));
    m_sinkHeads->setToolTip(tr("Heads averaged into the sink map; empty: all"));
    auto* sink = new QHBoxLayout;
    sink->setSpacing(4);
    sink->addWidget(m_sinkOn);
    sink->addWidget(m_sinkLayer);
    sink->addWidget(m_sinkHeads, 1);
    lg->addWidget(new QLabel(tr("Sink map")), 3, 0);
    lg->addLayout(sink, 3, 1, 1, 2);
    layout->addWidget(labels);

    // ---- RoI
    auto* roi = new QGroupBox(tr("RoI (RPN post-processing)"));
    auto* rg = new QGridLayout(roi);
    rg->setHorizontalSpacing(8);
    rg->setVerticalSpacing(3);
    m_roiPreset = new QComboBox;
    m_roiPreset->setToolTip(tr("Per-benchmark RoI thresholds of the paper"));
    rg->addWidget(new QLabel(tr("Preset")), 0, 0);
    rg->addWidget(m_roiPreset, 0, 1, 1, 2);
    m_minArea = new QSpinBox;
    m_minArea->setRange(1, 100000);
    m_minArea->setToolTip(tr("Components of 2 .. min−1 cells are grown to at least 3 × 3 cells"));
    m_maxArea = new QSpinBox;
    m_maxArea->setRange(1, 100000);
    m_maxArea->setToolTip(tr("Components of more cells are skipped"));
    auto* areas = new QHBoxLayout;
    areas->setSpacing(4);
    areas->addWidget(new QLabel(tr("min")));
    areas->addWidget(m_minArea, 1);
    areas->addWidget(new QLabel(tr("max")));
    areas->addWidget(m_maxArea, 1);
    rg->addWidget(new QLabel(tr("Area (cells)")), 2, 0);
    rg->addLayout(areas, 2, 1, 1, 2);
    layout->addWidget(roi);

    buildSlider(Field::SinkThreshold, tr("Sink τs"),
                tr("Tokens whose sink-map value is at least τs are sinks and leave the grounding map"), 1e-6,
                1e-1, 6, 1e-4, true);
    buildSlider(Field::ForegroundRatio, tr("Foreground α"), tr("Foreground: g′ > α · max g′"), 0, 1, 3, 0.01,
                false);
    buildSlider(Field::BackgroundRatio, tr("Background β"),
                tr("Background: g′ < β · max g′ outside the foreground box"), 0, 1, 3, 0.01, false);
    buildSlider(Field::MaxBoxRatio, tr("Max box"),
                tr("Labels only when the foreground box covers less than this share of the grid"), 0, 1, 3,
                0.01, false);
    buildSlider(Field::RoiThreshold, tr("RoI threshold"),
                tr("Cells whose blurred RoI probability exceeds this are RoI cells (negative: relative "
                   "to the peak)"),
                0, 1, 3, 0.01, false);
    int row = 4;
    for (SliderField* f : m_fields) {
        auto* label = new QLabel;
        label->setToolTip(f->slider->toolTip());
        if (f->field == Field::RoiThreshold) {
            label->setText(tr("Threshold"));
            rg->addWidget(label, 1, 0);
            rg->addWidget(f->slider, 1, 1);
            rg->addWidget(f->spin, 1, 2);
            continue;
        }
        label->setText(f->label);
        lg->addWidget(label, row, 0);
        lg->addWidget(f->slider, row, 1);
        lg->addWidget(f->spin, row, 2);
        ++row;
    }
    lg->setColumnStretch(1, 1);
    rg->setColumnStretch(1, 1);

    // ---- buttons and summary
    m_reset = new QPushButton(tr("Reset"));
    m_reset->setToolTip(tr("Back to the default presets"));
    m_load = new QPushButton(tr("Load…"));
    m_load->setToolTip(tr("Load label or RoI settings from a JSON file (as the CLI reads them)"));
    m_save = new QPushButton(tr("Save…"));
    m_save->setToolTip(tr("Save the label and RoI settings as JSON files for the CLI"));
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(m_reset);
    buttons->addStretch();
    buttons->addWidget(m_load);
    buttons->addWidget(m_save);
    layout->addLayout(buttons);
    m_summary = new QLabel;
    m_summary->setWordWrap(true);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(m_summary);
    layout->addStretch(1);

    connect(m_reset, &QPushButton::clicked, this, &ThresholdPanel::reset);
    connect(m_load, &QPushButton::clicked, this, &ThresholdPanel::loadRequested);
    connect(m_save, &QPushButton::clicked, this, &ThresholdPanel::saveRequested);
    connect(m_labelPreset, &QComboBox::activated, this, [this](int index) {
        if (index < 0 || index >= m_labelPresets.size()) return;
        m_label = m_labelPresets[index];
        applyFollow();
        syncControls();
        changed();
    });
    connect(m_roiPreset, &QComboBox::activated, this, [this](int index) {
        if (index < 0 || index >= m_roiPresets.size()) return;
        m_roi = m_roiPresets[index];
        syncControls();
        changed();
    });
    auto areaEdited = [this] {
        if (m_syncing) return;
        m_roi[QStringLiteral("min_area")] = m_minArea->value();
        m_roi[QStringLiteral("max_area")] = m_maxArea->value();
        markCustom(m_roi);
        syncControls();
        changed();
    };
    connect(m_minArea, &QSpinBox::valueChanged, this, areaEdited);
    connect(m_maxArea, &QSpinBox::valueChanged, this, areaEdited);
    connect(m_groundingLayer, &QSpinBox::valueChanged, this, &ThresholdPanel::groupsEdited);
    connect(m_sinkLayer, &QSpinBox::valueChanged, this, &ThresholdPanel::groupsEdited);
    connect(m_groundingHeads, &QLineEdit::editingFinished, this, &ThresholdPanel::groupsEdited);
    connect(m_sinkHeads, &QLineEdit::editingFinished, this, &ThresholdPanel::groupsEdited);
    connect(m_sinkOn, &QCheckBox::toggled, this, &ThresholdPanel::groupsEdited);
    connect(m_follow, &QCheckBox::toggled, this, [this] {
        if (m_syncing) return;
        const QJsonObject before = m_label;
        applyFollow();
        syncControls();
        if (m_label != before) changed();
    });
    syncControls();
}

ThresholdPanel::~ThresholdPanel() {
    qDeleteAll(m_fields);
}

void ThresholdPanel::buildSlider(Field field, const QString& label, const QString& tip, double low,
                                 double high, int decimals, double step, bool logarithmic) {
    auto* f = new SliderField;
    f->field = field;
    f->low = low;
    f->high = high;
    f->logarithmic = logarithmic;
    f->slider = new QSlider(Qt::Horizontal, this);
    f->slider->setRange(0, kSliderSteps);
    f->label = label;
    f->slider->setToolTip(tip);
    f->slider->setMinimumWidth(90);
    f->spin = new QDoubleSpinBox(this);
    f->spin->setDecimals(decimals);
    f->spin->setRange(field == Field::RoiThreshold ? -1.0 : 0.0, 1.0);
    f->spin->setSingleStep(step);
    f->spin->setToolTip(tip);
    f->spin->setKeyboardTracking(false);
    f->spin->setMinimumWidth(84);
    m_fields << f;
    connect(f->slider, &QSlider::valueChanged, this, [this, f](int i) {
        if (m_syncing) return;
        const double v = f->fromSlider(i);
        {
            const QSignalBlocker block(f->spin);
            f->spin->setValue(v);
        }
        fieldEdited(f->field, f->spin->value());
    });
    connect(f->spin, &QDoubleSpinBox::valueChanged, this, [this, f](double v) {
        if (m_syncing) return;
        {
            const QSignalBlocker block(f->slider);
            f->slider->setValue(f->toSlider(v));
        }
        fieldEdited(f->field, v);
    });
}

QString ThresholdPanel::keyOf(Field field) {
    switch (field) {
        case Field::SinkThreshold:
            return QStringLiteral("sink_threshold");
        case Field::ForegroundRatio:
            return QStringLiteral("foreground_ratio");
        case Field::BackgroundRatio:
            return QStringLiteral("background_ratio");
        case Field::MaxBoxRatio:
            return QStringLiteral("max_box_ratio");
        case Field::RoiThreshold:
            return QStringLiteral("threshold");
    }
    return {};
}

QJsonObject& ThresholdPanel::settingsOf(Field field) {
    return field == Field::RoiThreshold ? m_roi : m_label;
}

void ThresholdPanel::fieldEdited(Field field, double value) {
    QJsonObject& settings = settingsOf(field);
    settings[keyOf(field)] = value;
    markCustom(settings);
    syncControls();
    changed();
}

void ThresholdPanel::markCustom(QJsonObject& settings) {
    settings[QStringLiteral("preset")] = kCustom;
}

void ThresholdPanel::changed() {
    emit settingsChanged();
}

void ThresholdPanel::setLabelPresets(const QStringList& names, const QList<QJsonObject>& settings) {
    m_labelPresetNames = names;
    m_labelPresets = settings;
    if (m_label.isEmpty() && !settings.isEmpty()) m_label = settings.first();
    applyFollow();
    syncControls();
}

void ThresholdPanel::setRoiPresets(const QStringList& names, const QList<QJsonObject>& settings) {
    m_roiPresetNames = names;
    m_roiPresets = settings;
    if (m_roi.isEmpty() && !settings.isEmpty()) m_roi = settings.first();
    syncControls();
}

void ThresholdPanel::setLabelSettings(const QJsonObject& settings) {
    const QJsonObject before = m_label;
    m_label = settings;
    applyFollow();
    syncControls();
    if (m_label != before) changed();
}

void ThresholdPanel::setRoiSettings(const QJsonObject& settings) {
    if (settings == m_roi) return;
    m_roi = settings;
    syncControls();
    changed();
}

void ThresholdPanel::reset() {
    if (!m_labelPresets.isEmpty()) m_label = m_labelPresets.first();
    if (!m_roiPresets.isEmpty()) m_roi = m_roiPresets.first();
    applyFollow();
    syncControls();
    changed();
}

double ThresholdPanel::value(Field field) const {
    const QJsonObject& settings = field == Field::RoiThreshold ? m_roi : m_label;
    return settings.value(keyOf(field)).toDouble();
}

void ThresholdPanel::setValue(Field field, double value) {
    for (SliderField* f : m_fields)
        if (f->field == field) f->spin->setValue(value);  // the spin box's signal does the rest
}

QSlider* ThresholdPanel::slider(Field field) const {
    for (SliderField* f : m_fields)
        if (f->field == field) return f->slider;
    return nullptr;
}

QDoubleSpinBox* ThresholdPanel::spinBox(Field field) const {
    for (SliderField* f : m_fields)
        if (f->field == field) return f->spin;
    return nullptr;
}

void ThresholdPanel::setModelShape(int layers, int heads) {
    m_heads = heads;
    const QSignalBlocker a(m_groundingLayer);
    const QSignalBlocker b(m_sinkLayer);
    const int top = layers > 0 ? layers - 1 : 999;
    m_groundingLayer->setMaximum(top);
    m_sinkLayer->setMaximum(top);
    syncControls();
}

bool ThresholdPanel::followView() const {
    return m_follow->isChecked();
}

void ThresholdPanel::setFollowView(bool follow) {
    m_follow->setChecked(follow);
}

void ThresholdPanel::setViewSelection(int layer, const QList<int>& heads) {
    m_viewLayer = layer;
    m_viewHeads = heads;
    if (!followView()) return;
    const QJsonObject before = m_label;
    applyFollow();
    syncControls();
    if (m_label != before) changed();
}

void ThresholdPanel::applyFollow() {
    if (!m_follow || !m_follow->isChecked() || m_viewLayer < 0) return;
    QJsonArray heads;
    for (int h : m_viewHeads) heads.append(h);
    const QJsonArray grounding{group(m_viewLayer, heads)};
    if (m_label.value(QStringLiteral("grounding")).toArray() == grounding) return;
    m_label[QStringLiteral("grounding")] = grounding;
    markCustom(m_label);
}

void ThresholdPanel::groupsEdited() {
    if (m_syncing) return;
    const QJsonObject before = m_label;
    QJsonArray heads;
    const bool groundingOk = parseHeads(m_groundingHeads->text(), &heads);
    m_groundingHeads->setStyleSheet(groundingOk ? QString() : QStringLiteral("color: #a4262c"));
    if (groundingOk && !followView()) {
        QJsonArray groups = m_label.value(QStringLiteral("grounding")).toArray();
        const QJsonObject first = group(m_groundingLayer->value(), heads);
        if (groups.isEmpty()) {
            groups.append(first);
        } else {
            groups[0] = first;
        }
        m_label[QStringLiteral("grounding")] = groups;
    }
    QJsonArray sinkHeads;
    const bool sinkOk = parseHeads(m_sinkHeads->text(), &sinkHeads);
    m_sinkHeads->setStyleSheet(sinkOk ? QString() : QStringLiteral("color: #a4262c"));
    if (sinkOk) {
        QJsonArray groups = m_label.value(QStringLiteral("sink")).toArray();
        if (!m_sinkOn->isChecked()) {
            groups = QJsonArray();
        } else if (groups.isEmpty()) {
            groups.append(group(m_sinkLayer->value(), sinkHeads));
        } else {
            groups[0] = group(m_sinkLayer->value(), sinkHeads);
        }
        m_label[QStringLiteral("sink")] = groups;
    }
    if (m_label == before) return;
    markCustom(m_label);
    syncControls();
    changed();
}

void ThresholdPanel::syncControls() {
    m_syncing = true;
    // Presets: the named ones, plus "custom" when the settings are edited by hand.
    auto fillPresets = [](QComboBox* combo, const QStringList& names, const QJsonObject& settings) {
        const QString current = settings.value(QStringLiteral("preset")).toString();
        QStringList items = names;
        if (!current.isEmpty() && !items.contains(current)) items << current;
        QStringList existing;
        for (int i = 0; i < combo->count(); ++i) existing << combo->itemText(i);
        if (existing != items) {
            combo->clear();
            combo->addItems(items);
        }
        combo->setCurrentIndex(std::max(0, int(items.indexOf(current))));
    };
    fillPresets(m_labelPreset, m_labelPresetNames, m_label);
    fillPresets(m_roiPreset, m_roiPresetNames, m_roi);

    for (SliderField* f : m_fields) {
        const double v = value(f->field);
        f->spin->setValue(v);
        f->slider->setValue(f->toSlider(v));
    }
    const QJsonArray grounding = m_label.value(QStringLiteral("grounding")).toArray();
    const QJsonObject g0 = grounding.isEmpty() ? QJsonObject() : grounding.first().toObject();
    m_groundingLayer->setValue(g0.value(QStringLiteral("layer")).toInt());
    if (!m_groundingHeads->hasFocus() || followView())
        m_groundingHeads->setText(headsText(g0.value(QStringLiteral("heads")).toArray()));
    m_groundingLayer->setEnabled(!followView());
    m_groundingHeads->setEnabled(!followView());
    QStringList more;
    for (int i = 1; i < grounding.size(); ++i) {
        const QJsonObject g = grounding[i].toObject();
        const QString heads = headsText(g.value(QStringLiteral("heads")).toArray());
        more << tr("%1: %2")
                    .arg(g.value(QStringLiteral("layer")).toInt())
                    .arg(heads.isEmpty() ? tr("all") : heads);
    }
    m_groundingMore->setText(more.isEmpty() ? QString()
                                            : tr("also layers %1").arg(more.join(QStringLiteral("; "))));
    m_groundingMore->setVisible(!more.isEmpty());

    const QJsonArray sink = m_label.value(QStringLiteral("sink")).toArray();
    const QJsonObject s0 = sink.isEmpty() ? QJsonObject() : sink.first().toObject();
    m_sinkOn->setChecked(!sink.isEmpty());
    m_sinkLayer->setEnabled(!sink.isEmpty());
    m_sinkHeads->setEnabled(!sink.isEmpty());
    if (!sink.isEmpty()) {
        m_sinkLayer->setValue(s0.value(QStringLiteral("layer")).toInt());
        if (!m_sinkHeads->hasFocus())
            m_sinkHeads->setText(headsText(s0.value(QStringLiteral("heads")).toArray()));
    }
    spinBox(Field::SinkThreshold)->setEnabled(!sink.isEmpty());
    slider(Field::SinkThreshold)->setEnabled(!sink.isEmpty());

    m_minArea->setValue(m_roi.value(QStringLiteral("min_area")).toInt());
    m_maxArea->setValue(m_roi.value(QStringLiteral("max_area")).toInt());
    m_syncing = false;
}

void ThresholdPanel::setSummary(const QString& text) {
    m_summary->setText(text);
}

QString ThresholdPanel::summary() const {
    return m_summary->text();
}

QString ThresholdPanel::headsText(const QJsonArray& heads) {
    QStringList parts;
    for (const auto& h : heads) parts << QString::number(h.toInt());
    return parts.join(QStringLiteral(", "));
}

bool ThresholdPanel::parseHeads(const QString& text, QJsonArray* heads) {
    QJsonArray out;
    const QStringList parts = text.split(QRegularExpression(QStringLiteral("[,;\\s]+")), Qt::SkipEmptyParts);
    for (const QString& part : parts) {
        bool ok = false;
        const int h = part.toInt(&ok);
        if (!ok || h < 0) return false;
        out.append(h);
    }
    *heads = out;
    return true;
}
