#include "app/threshold_controller.h"

#include <algorithm>
#include <cmath>

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonDocument>
#include <QSaveFile>
#include <QStringList>

#include "app/attention_maps.h"
#include "core/result.h"
#include "widgets/heatmap_overlay.h"
#include "widgets/image_view.h"
#include "widgets/label_overlay.h"
#include "widgets/roi_overlay.h"
#include "widgets/threshold_panel.h"

namespace {

QRectF toQRect(const sdrpn::models::RectF& r) {
    return r.empty() ? QRectF() : QRectF(QPointF(r.x0, r.y0), QPointF(r.x1, r.y1));
}

QString percent(double share) {
    return QStringLiteral("%1%").arg(share * 100.0, 0, 'f', 0);
}

QList<QJsonObject> labelPresetJson(const std::vector<std::string>& names) {
    QList<QJsonObject> out;
    for (const auto& name : names) out << toQJson(sdrpn::LabelSettings::fromPreset(name).toJson());
    return out;
}

QStringList qNames(const std::vector<std::string>& names) {
    QStringList out;
    for (const auto& n : names) out << QString::fromStdString(n);
    return out;
}

bool writeText(const QString& path, const std::string& text, QString* error) {
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate) ||
        file.write(text.data(), qint64(text.size())) != qint64(text.size()) || !file.commit()) {
        if (error) *error = QObject::tr("%1: cannot write the file").arg(path);
        return false;
    }
    return true;
}

// Lower case without "-", "_", " " and with no "v" right before a digit: "llava-v1.5-7b" → "llava1.57b".
QString presetKey(const QString& name) {
    const QString lower = name.toLower();
    QString out;
    for (int i = 0; i < lower.size(); ++i) {
        const QChar c = lower[i];
        if (c == QLatin1Char('-') || c == QLatin1Char('_') || c == QLatin1Char(' ')) continue;
        if (c == QLatin1Char('v') && i + 1 < lower.size() && lower[i + 1].isDigit() &&
            (i == 0 || !lower[i - 1].isLetter()))
            continue;
        out += c;
    }
    return out;
}

bool presetFitsModel(const sdrpn::LabelSettings& preset, const sdrpn::ModelCard& card) {
    for (const auto* groups : {&preset.grounding, &preset.sink}) {
        for (const auto& group : *groups) {
            if (card.llmLayers > 0 && group.layer >= card.llmLayers) return false;
            for (int head : group.heads)
                if (card.llmHeads > 0 && head >= card.llmHeads) return false;
        }
    }
    return true;
}

// Label settings that differ only in the grounding group (and so the preset name): what "Follow view"
// does when the viewed layer or head changes.
bool onlyGroundingDiffers(const sdrpn::LabelSettings& a, sdrpn::LabelSettings b) {
    b.grounding = a.grounding;
    b.preset = a.preset;
    return a == b;
}

}  // namespace

std::string labelPresetForModel(const sdrpn::ModelCard& card) {
    if (card.randomWeights) return "demo";
    // The folder and its parents, nearest first: a snapshot folder of the Hugging Face cache is a hash.
    QStringList names;
    QString path = QDir::cleanPath(QDir::fromNativeSeparators(QString::fromStdString(card.folder)));
    for (int depth = 0; depth < 3 && !path.isEmpty(); ++depth) {
        const QFileInfo info(path);
        if (!info.fileName().isEmpty()) names << info.fileName();
        const QString parent = info.path();
        if (parent == path || parent == QLatin1String(".")) break;
        path = parent;
    }
    for (const QString& name : std::as_const(names)) {
        const QString key = presetKey(name);
        std::string best;
        int bestLength = 0;
        for (const std::string& preset : sdrpn::LabelSettings::presetNames()) {
            if (preset == "demo") continue;  // only the demo model itself, by its marker
            const QString presetName = presetKey(QString::fromStdString(preset));
            if (presetName.size() <= bestLength || !key.contains(presetName)) continue;
            if (!presetFitsModel(sdrpn::LabelSettings::fromPreset(preset), card)) continue;
            best = preset;
            bestLength = int(presetName.size());
        }
        if (!best.empty()) return best;
    }
    return {};
}

ThresholdController::ThresholdController(ThresholdPanel* panel, ImageView* labelView, ImageView* roiView,
                                         QObject* parent)
    : QObject(parent),
      m_panel(panel),
      m_labelView(labelView),
      m_roiView(roiView),
      m_labelOverlay(std::make_shared<LabelOverlay>()),
      m_roiHeatmap(std::make_shared<HeatmapOverlay>()),
      m_roiOverlay(std::make_shared<RoiOverlay>()) {
    const auto labelNames = sdrpn::LabelSettings::presetNames();
    const auto roiNames = sdrpn::RoiSettings::presetNames();
    QList<QJsonObject> roiPresets;
    for (const auto& name : roiNames) roiPresets << toQJson(sdrpn::RoiSettings::fromPreset(name).toJson());
    m_panel->setLabelPresets(qNames(labelNames), labelPresetJson(labelNames));
    m_panel->setRoiPresets(qNames(roiNames), roiPresets);
    m_label = sdrpn::LabelSettings::fromPreset(labelNames.front());
    m_roi = sdrpn::RoiSettings::fromPreset(roiNames.front());

    HeatmapStyle style;
    style.colorMap = ColorMap::Inferno;
    style.opacity = 0.6;
    style.smooth = false;
    m_roiHeatmap->setStyle(style);
    m_labelView->addOverlay(m_labelOverlay);
    m_roiView->addOverlay(m_roiHeatmap);
    m_roiView->addOverlay(m_roiOverlay);
    connect(m_panel, &ThresholdPanel::settingsChanged, this, &ThresholdController::onPanelChanged);
    updateSummary();
}

ThresholdController::~ThresholdController() {
    if (m_labelView) m_labelView->removeOverlay(m_labelOverlay);
    if (m_roiView) {
        m_roiView->removeOverlay(m_roiHeatmap);
        m_roiView->removeOverlay(m_roiOverlay);
    }
}

void ThresholdController::setLabelSettings(const sdrpn::LabelSettings& settings) {
    m_panel->setLabelSettings(toQJson(settings.toJson()));
}

void ThresholdController::setRoiSettings(const sdrpn::RoiSettings& settings) {
    m_panel->setRoiSettings(toQJson(settings.toJson()));
}

bool ThresholdController::selectModelPreset(const std::string& preset) {
    bool selected = false;
    if (!preset.empty() && !m_labelsEdited) {
        const auto names = sdrpn::LabelSettings::presetNames();
        if (std::find(names.begin(), names.end(), preset) != names.end()) {
            m_selectingPreset = true;
            // The preset names its grounding layer: stop following the view (new maps turn it back on
            // when that layer was not captured).
            m_panel->setFollowView(false);
            setLabelSettings(sdrpn::LabelSettings::fromPreset(preset));
            m_selectingPreset = false;
            selected = m_label.preset == preset;
        }
    }
    m_labelsEdited = false;
    return selected;
}

void ThresholdController::onPanelChanged() {
    m_settingsError.clear();
    bool labelsChanged = false, roiChanged = false;
    try {
        sdrpn::LabelSettings label = sdrpn::LabelSettings::fromJson(fromQJson(m_panel->labelSettings()));
        labelsChanged = !(label == m_label);
        if (labelsChanged && !m_selectingPreset &&
            !(m_panel->followView() && onlyGroundingDiffers(m_label, label)))
            m_labelsEdited = true;
        m_label = std::move(label);
    } catch (const std::exception& e) {
        m_settingsError = QString::fromUtf8(e.what());
    }
    try {
        sdrpn::RoiSettings roi = sdrpn::RoiSettings::fromJson(fromQJson(m_panel->roiSettings()));
        roiChanged = !(roi == m_roi);
        m_roi = std::move(roi);
    } catch (const std::exception& e) {
        m_settingsError = QString::fromUtf8(e.what());
    }
    if (labelsChanged) recomputeLabels();
    if (roiChanged) recomputeRoi();
    updateSummary();
}

void ThresholdController::setMaps(std::shared_ptr<const QuestionResult> result) {
    m_result = std::move(result);
    m_cells.clear();
    m_rows = m_cols = 0;
    if (m_result) {
        const TokenGrid grid = imageTokenGrid(m_result->maps, m_result->geometry);
        m_rows = grid.rows;
        m_cols = grid.cols;
        m_cells = cellRectsOnSource(m_result->geometry, m_rows, m_cols);
        // A model smaller than the preset's (the demo, the fixtures): follow the viewed layer instead.
        bool captured = !m_label.grounding.empty();
        for (const auto& group : m_label.grounding) {
            const bool found = std::any_of(m_result->maps.layers.begin(), m_result->maps.layers.end(),
                                           [&](const auto& layer) { return layer.layer == group.layer; });
            captured = captured && found;
        }
        if (!captured && !m_panel->followView()) m_panel->setFollowView(true);
        const auto& layers = m_result->maps.layers;
        m_panel->setModelShape(layers.empty() ? 0 : layers.back().layer + 1, m_result->maps.heads);
    }
    recomputeLabels();
    updateSummary();
}

void ThresholdController::recomputeLabels() {
    m_labels.reset();
    m_sinks.clear();
    m_counts = {};
    m_labelMessage.clear();
    m_labelOverlay->clear();
    if (!m_result || m_rows == 0) {
        m_labelMessage = m_result ? tr("This answer has no attention maps.") : QString();
    } else {
        try {
            const sdrpn::GridMap grounding = sdrpn::groundingMap(m_result->maps, m_label);
            const sdrpn::GridMap sink = sdrpn::sinkMap(m_result->maps, m_label);
            std::vector<std::uint8_t> known;
            if (m_label.maskKnownBackground) known = sdrpn::knownBackgroundMask(m_result->geometry);
            sdrpn::Labels labels = sdrpn::makeLabels(grounding, sink, m_label, known);
            if (labels.rows != m_rows || labels.cols != m_cols)
                throw sdrpn::Error("the label grid does not match the image-token grid");
            // sdrpn.md §2.6: g' = g · [s < τs]; the cells it zeroes are the sinks.
            m_sinks.assign(labels.values.size(), 0);
            if (!sink.empty() && sink.values.size() == m_sinks.size()) {
                for (std::size_t i = 0; i < m_sinks.size(); ++i)
                    m_sinks[i] = sink.values[i] >= m_label.sinkThreshold ? 1 : 0;
            }
            for (std::size_t i = 0; i < labels.values.size(); ++i) {
                if (labels.values[i] == 1) {
                    ++m_counts.foreground;
                } else if (labels.values[i] == 0) {
                    ++m_counts.background;
                } else {
                    ++m_counts.ignore;
                }
                m_counts.sinks += m_sinks[i];
            }
            // Without labels, outline the cells that would be foreground so the reason stays visible.
            std::vector<std::uint8_t> candidates;
            if (!labels.ok() && labels.peak > 0) {
                candidates.assign(labels.values.size(), 0);
                const double cut = m_label.foregroundRatio * labels.peak;
                for (std::size_t i = 0; i < candidates.size(); ++i)
                    candidates[i] = labels.grounding[i] > cut ? 1 : 0;
            }
            const bool drawBox = labels.ok() || labels.status == sdrpn::LabelStatus::BoxTooLarge ||
                                 labels.status == sdrpn::LabelStatus::WeakPeak;
            const QRectF box = drawBox ? toQRect(m_result->geometry.gridBoxToSource(labels.box)) : QRectF();
            m_labelOverlay->setLabels(m_rows, m_cols, labels.values, m_sinks, m_cells, box,
                                      std::move(candidates));
            switch (labels.status) {
                case sdrpn::LabelStatus::Ok:
                    break;
                case sdrpn::LabelStatus::BoxTooLarge: {
                    const auto& b = labels.box;
                    const double share = double(b.x1 - b.x0) * (b.y1 - b.y0) / double(m_rows * m_cols);
                    m_labelMessage = tr("no labels: the box covers %1 of the grid (max box %2)")
                                         .arg(percent(share), percent(m_label.maxBoxRatio));
                    break;
                }
                case sdrpn::LabelStatus::NoSignal:
                    m_labelMessage = tr("no labels: the denoised map has no signal (every cell a sink?)");
                    break;
                case sdrpn::LabelStatus::NonFinite:
                    m_labelMessage = grounding.queries == 0
                                         ? tr("no labels: the answer has no fed-back tokens (ask for more "
                                              "than one token)")
                                         : tr("no labels: the maps hold NaN or infinity");
                    break;
                case sdrpn::LabelStatus::WeakPeak:
                    m_labelMessage = tr("no labels: the peak is below the minimum peak");
                    break;
            }
            m_labels = std::move(labels);
        } catch (const std::exception& e) {
            m_labelMessage = QString::fromUtf8(e.what());
        }
    }
    if (m_labelView) m_labelView->update();
    emit labelsChanged();
}

void ThresholdController::setRoiAnswer(std::shared_ptr<const TwoStageAnswer> answer) {
    m_answer = std::move(answer);
    recomputeRoi();
    updateSummary();
}

void ThresholdController::setShowBlurred(bool blurred) {
    if (m_showBlurred == blurred) return;
    m_showBlurred = blurred;
    recomputeRoi();
}

void ThresholdController::recomputeRoi() {
    m_roiResult.reset();
    m_roiMessage.clear();
    m_roiHeatmap->clear();
    m_roiOverlay->clear();
    if (m_answer && m_answer->rows > 0) {
        try {
            // sdrpn.md §4.2 on the stored logits: no model run.
            sdrpn::RoiResult roi;
            if (m_answer->qwenRoi) {
                roi = sdrpn::postprocessRoiQwen(m_answer->roiLogits, m_answer->rows, m_answer->cols, m_roi,
                                                m_answer->geometry);
                if (roi.zoom() && m_answer->cropGrid.cells() > 0)
                    sdrpn::qwenCropTokenMask(roi, m_answer->cropGrid.rows, m_answer->cropGrid.cols);
            } else {
                roi = sdrpn::postprocessRoi(m_answer->roiLogits, m_answer->rows, m_answer->cols, m_roi,
                                            m_answer->geometry);
            }
            ++m_roiRecomputes;
            const auto& g = m_answer->geometry;
            const std::vector<QRectF> cells = cellRectsOnSource(g, roi.rows, roi.cols);
            m_roiHeatmap->setGrid(roi.rows, roi.cols, m_showBlurred ? roi.blurred : roi.probabilities, cells);
            std::vector<QRectF> above;
            for (std::size_t i = 0; i < roi.above.size() && i < cells.size(); ++i)
                if (roi.above[i] && !cells[i].isEmpty()) above.push_back(cells[i]);
            std::vector<RoiOverlay::Box> boxes;
            for (const auto& c : roi.components) {
                RoiOverlay::Box box;
                box.rect = toQRect(g.gridBoxToSource(c.box));
                box.kind = !c.kept()                               ? RoiOverlay::Component::Skipped
                           : c.fate == sdrpn::ComponentFate::Grown ? RoiOverlay::Component::Grown
                                                                   : RoiOverlay::Component::Kept;
                if (!box.rect.isEmpty()) boxes.push_back(box);
            }
            const auto& s = roi.sourceBox;
            const QRectF crop =
                roi.zoom() && !s.empty() ? QRectF(s.x0, s.y0, s.width(), s.height()) : QRectF();
            m_roiOverlay->setRoi(std::move(above), std::move(boxes), crop);
            m_roiResult = std::move(roi);
        } catch (const std::exception& e) {
            m_roiMessage = QString::fromUtf8(e.what());
        }
    }
    if (m_roiView) m_roiView->update();
    emit roiChanged();
}

QString ThresholdController::labelCaption() const {
    if (!m_labels) return m_labelMessage;
    const auto& b = m_labels->box;
    QString text = tr("fg %1 · bg %2 · ignore %3 · sinks %4")
                       .arg(m_counts.foreground)
                       .arg(m_counts.background)
                       .arg(m_counts.ignore)
                       .arg(m_counts.sinks);
    if (m_labels->ok()) text += tr(" · box %1×%2 cells").arg(b.x1 - b.x0).arg(b.y1 - b.y0);
    if (!m_labelMessage.isEmpty()) text += QStringLiteral(" · ") + m_labelMessage;
    return text;
}

QString ThresholdController::roiCaption() const {
    if (!m_roiResult) return m_roiMessage;
    const auto& r = *m_roiResult;
    int kept = 0;
    for (const auto& c : r.components) kept += c.kept() ? 1 : 0;
    QString text =
        m_answer && m_answer->qwenRoi
            ? tr("threshold %1 · tight box of the cells above it").arg(double(r.threshold), 0, 'g', 3)
            : tr("threshold %1 · %2 of %3 components kept")
                  .arg(double(r.threshold), 0, 'g', 3)
                  .arg(kept)
                  .arg(r.components.size());
    if (r.zoom()) {
        text += tr(" · %1 branch · crop %2×%3 px · %4 tokens")
                    .arg(QString::fromLatin1(sdrpn::roiBranchName(r.branch)))
                    .arg(r.sourceBox.width())
                    .arg(r.sourceBox.height())
                    .arg(r.roiTokens);
    } else {
        text += tr(" · no zoom") +
                (r.reason.empty() ? QString() : QStringLiteral(": ") + QString::fromStdString(r.reason));
    }
    return text;
}

void ThresholdController::updateSummary() {
    QStringList lines;
    if (!m_settingsError.isEmpty()) lines << tr("⚠ %1").arg(m_settingsError);
    if (m_result) lines << tr("Labels: %1").arg(labelCaption());
    if (m_answer) lines << tr("RoI: %1").arg(roiCaption());
    m_panel->setSummary(lines.join(QLatin1Char('\n')));
}

bool ThresholdController::saveLabelSettings(const QString& path, QString* error) const {
    return writeText(path, m_label.toJson().dump(2) + "\n", error);
}

bool ThresholdController::saveRoiSettings(const QString& path, QString* error) const {
    return writeText(path, m_roi.toJson().dump(2) + "\n", error);
}

bool ThresholdController::loadSettings(const QString& path, QString* error) {
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        if (error) *error = tr("%1: cannot read the file").arg(path);
        return false;
    }
    const std::string text = file.readAll().toStdString();
    const std::string source = path.toStdString();
    try {
        const nlohmann::json json = nlohmann::json::parse(text);
        // RoI settings have a threshold and area limits; everything else is read as label settings, so
        // that a mistake is reported against the label keys.
        const bool roi = json.is_object() && (json.contains("threshold") || json.contains("min_area") ||
                                              json.contains("max_area") || json.contains("mask_box_count"));
        if (roi) {
            setRoiSettings(sdrpn::RoiSettings::fromJson(json, source));
        } else {
            setLabelSettings(sdrpn::LabelSettings::fromJson(json, source));
        }
    } catch (const nlohmann::json::exception& e) {
        if (error) *error = tr("%1: not valid JSON (%2)").arg(path, QString::fromUtf8(e.what()));
        return false;
    } catch (const std::exception& e) {
        if (error) *error = QString::fromUtf8(e.what());
        return false;
    }
    return true;
}
