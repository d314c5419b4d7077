// ThresholdPanel: the controls of SD-RPN's denoising and RoI post-processing (sdrpn.md §2.4–2.7, §4.2):
// sliders with spin boxes for the sink threshold τs, the foreground ratio α, the background ratio β, the
// largest box share and the RoI threshold; spin boxes for the RoI component area limits; the grounding and
// sink layer / heads; preset pickers, Reset, Load and Save.
//
// It edits two JSON objects with the keys of the core's settings (the same JSON the CLI reads): the label
// settings ("preset", "grounding", "sink", "sink_threshold", "foreground_ratio", ...) and the RoI settings
// ("preset", "threshold", "min_area", "max_area", ...). The panel knows no core type: the owner (app/)
// gives it the presets as JSON, converts what it emits with the core, and does the file dialogs
// (loadRequested / saveRequested). Keys the panel has no control for are kept as they are.
//
//   auto* panel = new ThresholdPanel;
//   panel->setLabelPresets({"llava-1.5-7b", ...}, {json7b, ...});   // the first one is what Reset picks
//   panel->setRoiPresets({"default", "textvqa_val", ...}, {...});
//   connect(panel, &ThresholdPanel::settingsChanged, this, [&] { recompute(panel->labelSettings()); });
//
// Every user edit (a slider step, a spin box, a preset, Reset) emits settingsChanged() exactly once; the
// setters emit it once when they change something. An edit of a preset's value turns its name into
// "custom". "Follow view" makes the grounding group the layer and head shown in the Attention panel
// (setViewSelection).
//
// Thread affinity: GUI thread only.
#pragma once

#include <QJsonArray>
#include <QJsonObject>
#include <QList>
#include <QString>
#include <QStringList>
#include <QWidget>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSlider;
class QSpinBox;

class ThresholdPanel : public QWidget {
    Q_OBJECT
public:
    // The thresholds that have a slider.
    enum class Field { SinkThreshold, ForegroundRatio, BackgroundRatio, MaxBoxRatio, RoiThreshold };

    explicit ThresholdPanel(QWidget* parent = nullptr);
    ~ThresholdPanel() override;

    // Presets by name and their full JSON; the first is the default (Reset). Sets the current settings to
    // the first preset when none were set yet (without a signal).
    void setLabelPresets(const QStringList& names, const QList<QJsonObject>& settings);
    void setRoiPresets(const QStringList& names, const QList<QJsonObject>& settings);

    QJsonObject labelSettings() const { return m_label; }
    QJsonObject roiSettings() const { return m_roi; }
    // Replace the settings (e.g. loaded from a file); one settingsChanged() when they differ.
    void setLabelSettings(const QJsonObject& settings);
    void setRoiSettings(const QJsonObject& settings);

    double value(Field field) const;
    // As a user edit: the spin box and slider move, the preset becomes "custom", one settingsChanged().
    void setValue(Field field, double value);
    QSlider* slider(Field field) const;
    QDoubleSpinBox* spinBox(Field field) const;

    // Limits of the layer and head pickers (the loaded model's decoder); 0 leaves them open.
    void setModelShape(int layers, int heads);

    // When on, the grounding group follows setViewSelection() and its pickers are read-only.
    bool followView() const;
    void setFollowView(bool follow);
    // The layer and heads the Attention panel shows (empty: every head). With followView() on, the
    // grounding becomes that one group (one settingsChanged() when it changes).
    void setViewSelection(int layer, const QList<int>& heads);

    // One line under the controls: label counts, status, RoI branch.
    void setSummary(const QString& text);
    QString summary() const;

    // "24, 13, 26" for heads, "" for every head; parses back (false on anything but integers ≥ 0).
    static QString headsText(const QJsonArray& heads);
    static bool parseHeads(const QString& text, QJsonArray* heads);

public slots:
    // Back to the first label and RoI presets; one settingsChanged().
    void reset();

signals:
    void settingsChanged();
    void loadRequested();
    void saveRequested();

private:
    struct SliderField;
    void buildSlider(Field field, const QString& label, const QString& tip, double low, double high,
                     int decimals, double step, bool logarithmic);
    void syncControls();  // m_label / m_roi → controls, without signals
    void fieldEdited(Field field, double value);
    void groupsEdited();
    void applyFollow();
    void markCustom(QJsonObject& settings);
    void changed();
    QJsonObject& settingsOf(Field field);
    static QString keyOf(Field field);

    QList<SliderField*> m_fields;
    QComboBox* m_labelPreset = nullptr;
    QComboBox* m_roiPreset = nullptr;
    QSpinBox* m_groundingLayer = nullptr;
    QLineEdit* m_groundingHeads = nullptr;
    QLabel* m_groundingMore = nullptr;
    QCheckBox* m_follow = nullptr;
    QCheckBox* m_sinkOn = nullptr;
    QSpinBox* m_sinkLayer = nullptr;
    QLineEdit* m_sinkHeads = nullptr;
    QSpinBox* m_minArea = nullptr;
    QSpinBox* m_maxArea = nullptr;
    QPushButton* m_reset = nullptr;
    QPushButton* m_load = nullptr;
    QPushButton* m_save = nullptr;
    QLabel* m_summary = nullptr;

    QStringList m_labelPresetNames, m_roiPresetNames;
    QList<QJsonObject> m_labelPresets, m_roiPresets;
    QJsonObject m_label, m_roi;
    int m_viewLayer = -1;
    QList<int> m_viewHeads;  // empty: every head
    int m_heads = 0;
    bool m_syncing = false;
};
