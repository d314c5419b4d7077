// The dialogs that start the studio's background jobs: "Label a dataset…", "Train RPN…", "Evaluate…",
// "Import released labels…" and "Convert PyTorch weights…". They
// edit plain values (no model, no core types) and refuse OK while a field is invalid, saying why under the
// form.
//
//   LabelDatasetDialog dialog(presetNames, this);
//   dialog.setValues(lastValues);
//   if (dialog.exec() == QDialog::Accepted) start(dialog.values());
//
// Thread affinity: GUI thread only.
#pragma once

#include <QDialog>
#include <QString>
#include <QStringList>

class QCheckBox;
class QComboBox;
class QDialogButtonBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QSpinBox;

struct LabelDialogValues {
    QString dataset;    // LLaVA JSON or JSONL file
    QString imageRoot;  // folder the dataset's image paths are relative to
    QString store;      // label store file (created when missing; an existing one is resumed)
    QString preset = QStringLiteral("llava-1.5-7b");
    QString settingsFile;  // optional label settings JSON (overrides the preset)
    int limit = 0;         // 0: every sample
    int maxNewTokens = 128;
};

struct TrainDialogValues {
    QString store;
    QString imageRoot;
    QString outDir;
    int epochs = 1;
    int maxSteps = 0;  // 0: the epochs decide
    int batch = 8;
    int accum = 1;
    double lr = 5e-5;
    bool resume = false;
};

struct EvalDialogValues {
    QString dataset;    // JSONL (question, image, answer / answers, optional bbox) or LLaVA JSON
    QString imageRoot;  // folder the dataset's image paths are relative to
    int limit = 0;      // 0: every sample
    // Appended to every question; the default is lmms-eval's short-answer post-prompt.
    QString postPrompt = QStringLiteral("\nAnswer the question using a single word or phrase.");
    int maxNewTokens = 128;
    bool saveReport = false;  // write <dataset>.eval.json next to the dataset
};

// SD-RPN's released pseudo-label .pkl files into a label store (sdrpn import-labels).
struct ImportLabelsDialogValues {
    QStringList pklFiles;  // one or more .pkl files
    QString imageRoot;     // the folder the pkl's image paths start from
    QString store;         // label store file (created when missing; samples already there are skipped)
    QString dataset;       // "" = each file's name
    QString preset;        // "" = by the maps' shape (576: llava-1.5-7b, 24×24: qwen2.5-vl-7b)
    bool checkImages = true;
};

// A model folder's PyTorch .bin weights written as safetensors (sdrpn convert).
struct ConvertDialogValues {
    QString input;   // model folder with pytorch_model.bin or pytorch_model.bin.index.json
    QString output;  // new or empty folder
};

class LabelDatasetDialog : public QDialog {
    Q_OBJECT
public:
    explicit LabelDatasetDialog(const QStringList& presets, QWidget* parent = nullptr);

    void setValues(const LabelDialogValues& values);
    LabelDialogValues values() const;
    // Why OK is refused, or empty when every field is valid.
    QString validationMessage() const;

public slots:
    void accept() override;

private:
    void revalidate();

    QLineEdit* m_dataset = nullptr;
    QLineEdit* m_imageRoot = nullptr;
    QLineEdit* m_store = nullptr;
    QComboBox* m_preset = nullptr;
    QLineEdit* m_settings = nullptr;
    QSpinBox* m_limit = nullptr;
    QSpinBox* m_maxTokens = nullptr;
    QLabel* m_message = nullptr;
    QDialogButtonBox* m_buttons = nullptr;
};

class TrainRpnDialog : public QDialog {
    Q_OBJECT
public:
    explicit TrainRpnDialog(QWidget* parent = nullptr);

    void setValues(const TrainDialogValues& values);
    TrainDialogValues values() const;
    QString validationMessage() const;

public slots:
    void accept() override;

private:
    void revalidate();

    QLineEdit* m_store = nullptr;
    QLineEdit* m_imageRoot = nullptr;
    QLineEdit* m_outDir = nullptr;
    QSpinBox* m_epochs = nullptr;
    QSpinBox* m_maxSteps = nullptr;
    QSpinBox* m_batch = nullptr;
    QSpinBox* m_accum = nullptr;
    QDoubleSpinBox* m_lr = nullptr;
    QCheckBox* m_resume = nullptr;
    QLabel* m_message = nullptr;
    QDialogButtonBox* m_buttons = nullptr;
};

class EvaluateDialog : public QDialog {
    Q_OBJECT
public:
    explicit EvaluateDialog(QWidget* parent = nullptr);

    void setValues(const EvalDialogValues& values);
    EvalDialogValues values() const;
    QString validationMessage() const;

public slots:
    void accept() override;

private:
    void revalidate();

    QLineEdit* m_dataset = nullptr;
    QLineEdit* m_imageRoot = nullptr;
    QSpinBox* m_limit = nullptr;
    QLineEdit* m_postPrompt = nullptr;
    QSpinBox* m_maxTokens = nullptr;
    QCheckBox* m_save = nullptr;
    QLabel* m_message = nullptr;
    QDialogButtonBox* m_buttons = nullptr;
};

class ImportLabelsDialog : public QDialog {
    Q_OBJECT
public:
    // `presets`: the label presets offered; the first entry is "by the maps' shape" (preset "").
    explicit ImportLabelsDialog(const QStringList& presets, QWidget* parent = nullptr);

    void setValues(const ImportLabelsDialogValues& values);
    ImportLabelsDialogValues values() const;
    QString validationMessage() const;

public slots:
    void accept() override;

private:
    void revalidate();

    QLineEdit* m_pkl = nullptr;  // files separated by ';'
    QLineEdit* m_imageRoot = nullptr;
    QLineEdit* m_store = nullptr;
    QLineEdit* m_dataset = nullptr;
    QComboBox* m_preset = nullptr;
    QCheckBox* m_checkImages = nullptr;
    QLabel* m_message = nullptr;
    QDialogButtonBox* m_buttons = nullptr;
};

class ConvertWeightsDialog : public QDialog {
    Q_OBJECT
public:
    explicit ConvertWeightsDialog(QWidget* parent = nullptr);

    void setValues(const ConvertDialogValues& values);
    ConvertDialogValues values() const;
    QString validationMessage() const;

public slots:
    void accept() override;

private:
    void revalidate();

    QLineEdit* m_input = nullptr;
    QLineEdit* m_output = nullptr;
    QLabel* m_message = nullptr;
    QDialogButtonBox* m_buttons = nullptr;
};
