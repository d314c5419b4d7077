// ThresholdController: the glue between the ThresholdPanel (plain JSON), the core's settings
// (sdrpn::LabelSettings, sdrpn::RoiSettings) and the two views they change: the denoised view (the current
// answer's grounding and sink maps turned into pseudo-labels by sdrpn::groundingMap / sinkMap / makeLabels,
// drawn as a LabelOverlay) and the RoI view (the RPN's logits of the last SD-RPN answer post-processed by
// sdrpn::postprocessRoi: blurred probabilities, components, crop box).
//
// Every threshold edit recomputes from the kept data at once (well under a millisecond for a 24 × 24 grid);
// nothing here runs the model or starts a job. Bad settings (a layer that was not captured, a head out of
// range) are reported in the panel's summary and the view's caption, never thrown.
//
//   auto* thresholds = new ThresholdController(panel, labelView, roiView, this);
//   thresholds->setMaps(askSession->result());        // after an answer; nullptr clears
//   thresholds->setRoiAnswer(rpnSession->result());   // after an SD-RPN answer
//   LabelCounts n = thresholds->labelCounts();
//
// Thread affinity: GUI thread.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include <QJsonObject>
#include <QObject>
#include <QPointer>
#include <QRectF>
#include <QString>

#include "app/ask_session.h"
#include "app/qt_json.h"
#include "app/rpn_session.h"
#include "core/pipeline/model_card.h"
#include "core/sdrpn/labels.h"
#include "core/sdrpn/roi.h"

class HeatmapOverlay;
class ImageView;
class LabelOverlay;
class RoiOverlay;
class ThresholdPanel;

struct LabelCounts {
    int foreground = 0;  // cells labelled 1
    int background = 0;  // cells labelled 0
    int ignore = 0;      // cells labelled −100 (every cell when the sample gives no labels)
    int sinks = 0;       // sink cells (sink map ≥ τs)
    bool operator==(const LabelCounts& o) const {
        return foreground == o.foreground && background == o.background && ignore == o.ignore &&
               sinks == o.sinks;
    }
};

// The label preset that suits a loaded model: "demo" for the bundled demo model (its card's random-weights
// marker); otherwise the paper preset whose name the model folder's name contains, ignoring case, "-", "_"
// and a "v" before the version ("llava-v1.5-13b", "Qwen2.5-VL-7B-Instruct"; the Hugging Face cache's
// "models--llava-hf--llava-1.5-7b-hf" folder above a snapshot counts too), provided the model has the
// preset's layers and heads. Empty when none fits.
std::string labelPresetForModel(const sdrpn::ModelCard& card);

class ThresholdController : public QObject {
    Q_OBJECT
public:
    ThresholdController(ThresholdPanel* panel, ImageView* labelView, ImageView* roiView,
                        QObject* parent = nullptr);
    ~ThresholdController() override;

    const sdrpn::LabelSettings& labelSettings() const { return m_label; }
    const sdrpn::RoiSettings& roiSettings() const { return m_roi; }
    // Sets the panel (and so the views) to these settings.
    void setLabelSettings(const sdrpn::LabelSettings& settings);
    void setRoiSettings(const sdrpn::RoiSettings& settings);

    // Whether the label settings were changed (panel, file, session) since the last model preset choice.
    // The grounding following the viewed layer ("Follow view") is not an edit.
    bool labelSettingsEdited() const { return m_labelsEdited; }
    // A model has loaded: selects the label preset `preset` (labelPresetForModel) unless it is empty or the
    // label settings were edited since the previous model loaded, then counts edits afresh. True when it
    // selected the preset. An unknown name is ignored (false).
    bool selectModelPreset(const std::string& preset);

    // The answer whose maps are labelled (nullptr clears). When the grounding layers of the settings were
    // not captured (a small model), the grounding follows the viewed layer.
    void setMaps(std::shared_ptr<const QuestionResult> result);
    // The SD-RPN answer whose RoI logits are post-processed (nullptr clears).
    void setRoiAnswer(std::shared_ptr<const TwoStageAnswer> answer);
    std::shared_ptr<const TwoStageAnswer> roiAnswer() const { return m_answer; }

    bool hasLabels() const { return m_labels.has_value(); }
    const sdrpn::Labels* labels() const { return m_labels ? &*m_labels : nullptr; }
    // The sink cells of the current maps (1 = sink), row-major; empty without labels.
    const std::vector<std::uint8_t>& sinkMask() const { return m_sinks; }
    LabelCounts labelCounts() const { return m_counts; }
    // Why there are no labels, or the labels' status ("box too large: …"); empty when they are fine.
    QString labelMessage() const { return m_labelMessage; }
    // One line for the denoised view's caption: counts, box, status.
    QString labelCaption() const;

    const sdrpn::RoiResult* roi() const { return m_roiResult ? &*m_roiResult : nullptr; }
    QString roiCaption() const;
    // How many times the RoI was post-processed (tests: a threshold change redraws without a job).
    int roiRecomputeCount() const { return m_roiRecomputes; }

    std::shared_ptr<LabelOverlay> labelOverlay() const { return m_labelOverlay; }
    std::shared_ptr<HeatmapOverlay> roiHeatmap() const { return m_roiHeatmap; }
    std::shared_ptr<RoiOverlay> roiOverlay() const { return m_roiOverlay; }
    // Blurred probabilities (default) or the raw sigmoid in the RoI view.
    void setShowBlurred(bool blurred);

    // The JSON files the CLI reads (`sdrpn label --settings`, `sdrpn roi --roi-settings`). load accepts
    // either kind (told apart by their keys). False with `error` naming the file and key.
    bool saveLabelSettings(const QString& path, QString* error = nullptr) const;
    bool saveRoiSettings(const QString& path, QString* error = nullptr) const;
    bool loadSettings(const QString& path, QString* error = nullptr);

signals:
    void labelsChanged();
    void roiChanged();

private:
    void onPanelChanged();
    void recomputeLabels();
    void recomputeRoi();
    void updateSummary();

    ThresholdPanel* m_panel;
    QPointer<ImageView> m_labelView;  // the views may go before this controller (siblings in the window)
    QPointer<ImageView> m_roiView;
    std::shared_ptr<LabelOverlay> m_labelOverlay;
    std::shared_ptr<HeatmapOverlay> m_roiHeatmap;
    std::shared_ptr<RoiOverlay> m_roiOverlay;
    sdrpn::LabelSettings m_label;
    sdrpn::RoiSettings m_roi;
    QString m_settingsError;

    std::shared_ptr<const QuestionResult> m_result;
    std::vector<QRectF> m_cells;
    int m_rows = 0, m_cols = 0;
    std::optional<sdrpn::Labels> m_labels;
    std::vector<std::uint8_t> m_sinks;
    LabelCounts m_counts;
    QString m_labelMessage;

    std::shared_ptr<const TwoStageAnswer> m_answer;
    std::optional<sdrpn::RoiResult> m_roiResult;
    QString m_roiMessage;
    bool m_showBlurred = true;
    int m_roiRecomputes = 0;
    bool m_labelsEdited = false;
    bool m_selectingPreset = false;
};
