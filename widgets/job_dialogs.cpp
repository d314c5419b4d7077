#include "widgets/job_dialogs.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QToolButton>
#include <QVBoxLayout>

namespace {

enum class Browse { OpenFile, OpenFiles, SaveFile, Folder };

// A line edit with a "…" button that opens a file dialog.
QWidget* pathField(QLineEdit* edit, Browse mode, const QString& filter, QWidget* parent) {
    auto* row = new QWidget(parent);
    auto* layout = new QHBoxLayout(row);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(edit, 1);
    auto* button = new QToolButton(row);
    button->setText(QStringLiteral("…"));
    layout->addWidget(button);
    QObject::connect(button, &QToolButton::clicked, row, [edit, mode, filter, row] {
        const QString start = edit->text().isEmpty() ? QDir::homePath() : edit->text();
        QString chosen;
        switch (mode) {
            case Browse::OpenFile:
                chosen = QFileDialog::getOpenFileName(row, QString(), start, filter);
                break;
            case Browse::OpenFiles:
                chosen = QFileDialog::getOpenFileNames(row, QString(), start, filter).join(QLatin1Char(';'));
                break;
            case Browse::SaveFile:
                chosen = QFileDialog::getSaveFileName(row, QString(), start, filter, nullptr,
                                                      QFileDialog::DontConfirmOverwrite);
                break;
            case Browse::Folder:
                chosen = QFileDialog::getExistingDirectory(row, QString(), start);
                break;
        }
        if (!chosen.isEmpty()) edit->setText(chosen);
    });
    return row;
}

QLabel* messageLabel(QWidget* parent) {
    auto* label = new QLabel(parent);
    label->setWordWrap(true);
    label->setStyleSheet(QStringLiteral("color: #b03030"));
    return label;
}

bool folderOfFileExists(const QString& path) {
    return QFileInfo(QFileInfo(path).absolutePath()).isDir();
}

}  // namespace

// ---- LabelDatasetDialog --------------------------------------------------------------------------------

LabelDatasetDialog::LabelDatasetDialog(const QStringList& presets, QWidget* parent) : QDialog(parent) {
    setWindowTitle(tr("Label a dataset"));
    m_dataset = new QLineEdit(this);
    m_dataset->setPlaceholderText(tr("llava_v1_5_mix665k.json or questions.jsonl"));
    m_imageRoot = new QLineEdit(this);
    m_imageRoot->setPlaceholderText(tr("the folder the dataset's image paths start from"));
    m_store = new QLineEdit(this);
    m_store->setPlaceholderText(tr("labels.sdrpn (an existing store is resumed)"));
    m_preset = new QComboBox(this);
    m_preset->addItems(presets);
    m_settings = new QLineEdit(this);
    m_settings->setPlaceholderText(tr("optional: label settings JSON, instead of the preset"));
    m_limit = new QSpinBox(this);
    m_limit->setRange(0, 100000000);
    m_limit->setSpecialValueText(tr("all samples"));
    m_maxTokens = new QSpinBox(this);
    m_maxTokens->setRange(1, 4096);
    m_maxTokens->setValue(128);

    auto* form = new QFormLayout;
    const QString json = tr("Datasets (*.json *.jsonl);;All files (*)");
    form->addRow(tr("Dataset file"), pathField(m_dataset, Browse::OpenFile, json, this));
    form->addRow(tr("Image root"), pathField(m_imageRoot, Browse::Folder, {}, this));
    form->addRow(tr("Label store"),
                 pathField(m_store, Browse::SaveFile, tr("Label stores (*.sdrpn);;All files (*)"), this));
    form->addRow(tr("Preset"), m_preset);
    form->addRow(tr("Settings file"),
                 pathField(m_settings, Browse::OpenFile, tr("JSON (*.json);;All files (*)"), this));
    form->addRow(tr("Limit"), m_limit);
    form->addRow(tr("Max new tokens"), m_maxTokens);

    m_message = messageLabel(this);
    m_buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    m_buttons->button(QDialogButtonBox::Ok)->setText(tr("Start labeling"));
    connect(m_buttons, &QDialogButtonBox::accepted, this, &LabelDatasetDialog::accept);
    connect(m_buttons, &QDialogButtonBox::rejected, this, &LabelDatasetDialog::reject);

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(form);
    layout->addWidget(m_message);
    layout->addWidget(m_buttons);
    for (QLineEdit* e : {m_dataset, m_imageRoot, m_store, m_settings})
        connect(e, &QLineEdit::textChanged, this, &LabelDatasetDialog::revalidate);
    setMinimumWidth(520);
    revalidate();
}

void LabelDatasetDialog::setValues(const LabelDialogValues& v) {
    m_dataset->setText(v.dataset);
    m_imageRoot->setText(v.imageRoot);
    m_store->setText(v.store);
    const int preset = m_preset->findText(v.preset);
    if (preset >= 0) m_preset->setCurrentIndex(preset);
    m_settings->setText(v.settingsFile);
    m_limit->setValue(v.limit);
    m_maxTokens->setValue(v.maxNewTokens);
    revalidate();
}

LabelDialogValues LabelDatasetDialog::values() const {
    LabelDialogValues v;
    v.dataset = m_dataset->text().trimmed();
    v.imageRoot = m_imageRoot->text().trimmed();
    v.store = m_store->text().trimmed();
    v.preset = m_preset->currentText();
    v.settingsFile = m_settings->text().trimmed();
    v.limit = m_limit->value();
    v.maxNewTokens = m_maxTokens->value();
    return v;
}

QString LabelDatasetDialog::validationMessage() const {
    const LabelDialogValues v = values();
    if (v.dataset.isEmpty()) return tr("Choose the dataset file.");
    if (!QFileInfo(v.dataset).isFile()) return tr("The dataset file %1 does not exist.").arg(v.dataset);
    if (v.imageRoot.isEmpty()) return tr("Choose the image root folder.");
    if (!QFileInfo(v.imageRoot).isDir()) return tr("The image root %1 is not a folder.").arg(v.imageRoot);
    if (v.store.isEmpty()) return tr("Choose where the label store goes.");
    if (QFileInfo(v.store).isDir()) return tr("The label store %1 is a folder; name a file.").arg(v.store);
    if (!folderOfFileExists(v.store))
        return tr("The folder of the label store, %1, does not exist.")
            .arg(QFileInfo(v.store).absolutePath());
    if (!v.settingsFile.isEmpty() && !QFileInfo(v.settingsFile).isFile())
        return tr("The settings file %1 does not exist.").arg(v.settingsFile);
    if (v.settingsFile.isEmpty() && v.preset.isEmpty()) return tr("Choose a preset or a settings file.");
    return {};
}

void LabelDatasetDialog::revalidate() {
    const QString why = validationMessage();
    m_message->setText(why);
    m_buttons->button(QDialogButtonBox::Ok)->setEnabled(why.isEmpty());
    m_preset->setEnabled(m_settings->text().trimmed().isEmpty());
}

void LabelDatasetDialog::accept() {
    revalidate();
    if (!validationMessage().isEmpty()) return;
    QDialog::accept();
}

// ---- TrainRpnDialog ------------------------------------------------------------------------------------

TrainRpnDialog::TrainRpnDialog(QWidget* parent) : QDialog(parent) {
    setWindowTitle(tr("Train RPN"));
    m_store = new QLineEdit(this);
    m_store->setPlaceholderText(tr("labels.sdrpn"));
    m_imageRoot = new QLineEdit(this);
    m_imageRoot->setPlaceholderText(tr("the folder the stored image paths start from"));
    m_outDir = new QLineEdit(this);
    m_outDir->setPlaceholderText(tr("runs/rpn (created when missing)"));
    m_epochs = new QSpinBox(this);
    m_epochs->setRange(1, 1000);
    m_maxSteps = new QSpinBox(this);
    m_maxSteps->setRange(0, 100000000);
    m_maxSteps->setSpecialValueText(tr("no limit"));
    m_batch = new QSpinBox(this);
    m_batch->setRange(1, 1024);
    m_accum = new QSpinBox(this);
    m_accum->setRange(1, 1024);
    m_lr = new QDoubleSpinBox(this);
    m_lr->setDecimals(8);
    m_lr->setRange(1e-8, 1.0);
    m_lr->setSingleStep(1e-5);
    m_resume = new QCheckBox(tr("Continue from the newest checkpoint in the output folder"), this);

    auto* form = new QFormLayout;
    form->addRow(tr("Label store"),
                 pathField(m_store, Browse::OpenFile, tr("Label stores (*.sdrpn);;All files (*)"), this));
    form->addRow(tr("Image root"), pathField(m_imageRoot, Browse::Folder, {}, this));
    form->addRow(tr("Output folder"), pathField(m_outDir, Browse::Folder, {}, this));
    form->addRow(tr("Epochs"), m_epochs);
    form->addRow(tr("Max steps"), m_maxSteps);
    form->addRow(tr("Batch"), m_batch);
    form->addRow(tr("Accumulation"), m_accum);
    form->addRow(tr("Learning rate"), m_lr);
    form->addRow(tr("Resume"), m_resume);

    m_message = messageLabel(this);
    m_buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    m_buttons->button(QDialogButtonBox::Ok)->setText(tr("Start training"));
    connect(m_buttons, &QDialogButtonBox::accepted, this, &TrainRpnDialog::accept);
    connect(m_buttons, &QDialogButtonBox::rejected, this, &TrainRpnDialog::reject);

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(form);
    layout->addWidget(m_message);
    layout->addWidget(m_buttons);
    for (QLineEdit* e : {m_store, m_imageRoot, m_outDir})
        connect(e, &QLineEdit::textChanged, this, &TrainRpnDialog::revalidate);
    connect(m_resume, &QCheckBox::toggled, this, &TrainRpnDialog::revalidate);
    setMinimumWidth(520);
    setValues(TrainDialogValues{});
}

void TrainRpnDialog::setValues(const TrainDialogValues& v) {
    m_store->setText(v.store);
    m_imageRoot->setText(v.imageRoot);
    m_outDir->setText(v.outDir);
    m_epochs->setValue(v.epochs);
    m_maxSteps->setValue(v.maxSteps);
    m_batch->setValue(v.batch);
    m_accum->setValue(v.accum);
    m_lr->setValue(v.lr);
    m_resume->setChecked(v.resume);
    revalidate();
}

TrainDialogValues TrainRpnDialog::values() const {
    TrainDialogValues v;
    v.store = m_store->text().trimmed();
    v.imageRoot = m_imageRoot->text().trimmed();
    v.outDir = m_outDir->text().trimmed();
    v.epochs = m_epochs->value();
    v.maxSteps = m_maxSteps->value();
    v.batch = m_batch->value();
    v.accum = m_accum->value();
    v.lr = m_lr->value();
    v.resume = m_resume->isChecked();
    return v;
}

QString TrainRpnDialog::validationMessage() const {
    const TrainDialogValues v = values();
    if (v.store.isEmpty()) return tr("Choose the label store to learn from.");
    if (!QFileInfo(v.store).isFile()) return tr("The label store %1 does not exist.").arg(v.store);
    if (!v.imageRoot.isEmpty() && !QFileInfo(v.imageRoot).isDir())
        return tr("The image root %1 is not a folder.").arg(v.imageRoot);
    if (v.outDir.isEmpty()) return tr("Choose the output folder.");
    const QFileInfo out(v.outDir);
    if (out.exists() && !out.isDir()) return tr("The output %1 is a file, not a folder.").arg(v.outDir);
    if (!out.exists() && !QFileInfo(out.absolutePath()).isDir())
        return tr("The folder above the output, %1, does not exist.").arg(out.absolutePath());
    const bool hasCheckpoint =
        out.isDir() && !QDir(v.outDir)
                            .entryList({QStringLiteral("checkpoint-*")}, QDir::Dirs | QDir::NoDotAndDotDot)
                            .isEmpty();
    if (v.resume && !hasCheckpoint)
        return tr("Nothing to resume: %1 holds no checkpoint. Untick Resume to start a new run.")
            .arg(v.outDir);
    if (!(v.lr > 0)) return tr("The learning rate must be positive.");
    return {};
}

void TrainRpnDialog::revalidate() {
    const QString why = validationMessage();
    m_message->setText(why);
    m_buttons->button(QDialogButtonBox::Ok)->setEnabled(why.isEmpty());
}

void TrainRpnDialog::accept() {
    revalidate();
    if (!validationMessage().isEmpty()) return;
    QDialog::accept();
}

// ---- EvaluateDialog ------------------------------------------------------------------------------------

EvaluateDialog::EvaluateDialog(QWidget* parent) : QDialog(parent) {
    setWindowTitle(tr("Evaluate"));
    m_dataset = new QLineEdit(this);
    m_dataset->setPlaceholderText(tr("textvqa_val.jsonl (question, image, answers)"));
    m_imageRoot = new QLineEdit(this);
    m_imageRoot->setPlaceholderText(tr("the folder the dataset's image paths start from"));
    m_limit = new QSpinBox(this);
    m_limit->setRange(0, 100000000);
    m_limit->setSpecialValueText(tr("all samples"));
    m_postPrompt = new QLineEdit(this);
    m_postPrompt->setToolTip(tr("Appended to every question; \\n is a line break"));
    m_maxTokens = new QSpinBox(this);
    m_maxTokens->setRange(1, 4096);
    m_maxTokens->setValue(128);
    m_save = new QCheckBox(tr("Save the report (JSON) next to the dataset"), this);

    auto* form = new QFormLayout;
    form->addRow(tr("Dataset file"), pathField(m_dataset, Browse::OpenFile,
                                               tr("Datasets (*.jsonl *.json);;All files (*)"), this));
    form->addRow(tr("Image root"), pathField(m_imageRoot, Browse::Folder, {}, this));
    form->addRow(tr("Limit"), m_limit);
    form->addRow(tr("Post-prompt"), m_postPrompt);
    form->addRow(tr("Max new tokens"), m_maxTokens);
    form->addRow(QString(), m_save);

    m_message = messageLabel(this);
    m_buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    m_buttons->button(QDialogButtonBox::Ok)->setText(tr("Start evaluation"));
    connect(m_buttons, &QDialogButtonBox::accepted, this, &EvaluateDialog::accept);
    connect(m_buttons, &QDialogButtonBox::rejected, this, &EvaluateDialog::reject);

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(form);
    layout->addWidget(m_message);
    layout->addWidget(m_buttons);
    for (QLineEdit* e : {m_dataset, m_imageRoot})
        connect(e, &QLineEdit::textChanged, this, &EvaluateDialog::revalidate);
    setMinimumWidth(520);
    setValues(EvalDialogValues{});
}

void EvaluateDialog::setValues(const EvalDialogValues& v) {
    m_dataset->setText(v.dataset);
    m_imageRoot->setText(v.imageRoot);
    m_limit->setValue(v.limit);
    // The line edit shows a line break as \n.
    m_postPrompt->setText(QString(v.postPrompt).replace(QLatin1Char('\n'), QStringLiteral("\\n")));
    m_maxTokens->setValue(v.maxNewTokens);
    m_save->setChecked(v.saveReport);
    revalidate();
}

EvalDialogValues EvaluateDialog::values() const {
    EvalDialogValues v;
    v.dataset = m_dataset->text().trimmed();
    v.imageRoot = m_imageRoot->text().trimmed();
    v.limit = m_limit->value();
    v.postPrompt = m_postPrompt->text().replace(QStringLiteral("\\n"), QStringLiteral("\n"));
    v.maxNewTokens = m_maxTokens->value();
    v.saveReport = m_save->isChecked();
    return v;
}

QString EvaluateDialog::validationMessage() const {
    const EvalDialogValues v = values();
    if (v.dataset.isEmpty()) return tr("Choose the dataset file.");
    if (!QFileInfo(v.dataset).isFile()) return tr("The dataset file %1 does not exist.").arg(v.dataset);
    if (v.imageRoot.isEmpty()) return tr("Choose the image root folder.");
    if (!QFileInfo(v.imageRoot).isDir()) return tr("The image root %1 is not a folder.").arg(v.imageRoot);
    return {};
}

void EvaluateDialog::revalidate() {
    const QString why = validationMessage();
    m_message->setText(why);
    m_buttons->button(QDialogButtonBox::Ok)->setEnabled(why.isEmpty());
}

void EvaluateDialog::accept() {
    revalidate();
    if (!validationMessage().isEmpty()) return;
    QDialog::accept();
}

// ---- ImportLabelsDialog --------------------------------------------------------------------------------

ImportLabelsDialog::ImportLabelsDialog(const QStringList& presets, QWidget* parent) : QDialog(parent) {
    setWindowTitle(tr("Import released labels"));
    m_pkl = new QLineEdit(this);
    m_pkl->setPlaceholderText(tr("llava_v1_5_7b_pseudo_labels.pkl (several: separate with ;)"));
    m_imageRoot = new QLineEdit(this);
    m_imageRoot->setPlaceholderText(tr("the folder the pkl's image paths start from"));
    m_store = new QLineEdit(this);
    m_store->setPlaceholderText(tr("labels.sdrpn (samples already there are skipped)"));
    m_dataset = new QLineEdit(this);
    m_dataset->setPlaceholderText(tr("optional: dataset name (default: each file's name)"));
    m_preset = new QComboBox(this);
    m_preset->addItem(tr("by the maps' shape"), QString());
    for (const QString& p : presets) m_preset->addItem(p, p);
    m_checkImages = new QCheckBox(tr("Read each image's size (needed for padded-image labels)"), this);
    m_checkImages->setChecked(true);

    auto* form = new QFormLayout;
    form->addRow(tr("Pickle files"),
                 pathField(m_pkl, Browse::OpenFiles, tr("Pickles (*.pkl);;All files (*)"), this));
    form->addRow(tr("Image root"), pathField(m_imageRoot, Browse::Folder, {}, this));
    form->addRow(tr("Label store"),
                 pathField(m_store, Browse::SaveFile, tr("Label stores (*.sdrpn);;All files (*)"), this));
    form->addRow(tr("Dataset"), m_dataset);
    form->addRow(tr("Preset"), m_preset);
    form->addRow(QString(), m_checkImages);

    m_message = messageLabel(this);
    m_buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    m_buttons->button(QDialogButtonBox::Ok)->setText(tr("Import"));
    connect(m_buttons, &QDialogButtonBox::accepted, this, &ImportLabelsDialog::accept);
    connect(m_buttons, &QDialogButtonBox::rejected, this, &ImportLabelsDialog::reject);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(form);
    layout->addWidget(m_message);
    layout->addWidget(m_buttons);
    for (QLineEdit* e : {m_pkl, m_imageRoot, m_store})
        connect(e, &QLineEdit::textChanged, this, &ImportLabelsDialog::revalidate);
    connect(m_checkImages, &QCheckBox::toggled, this, &ImportLabelsDialog::revalidate);
    setMinimumWidth(560);
    revalidate();
}

void ImportLabelsDialog::setValues(const ImportLabelsDialogValues& v) {
    m_pkl->setText(v.pklFiles.join(QLatin1Char(';')));
    m_imageRoot->setText(v.imageRoot);
    m_store->setText(v.store);
    m_dataset->setText(v.dataset);
    const int preset = m_preset->findData(v.preset);
    m_preset->setCurrentIndex(preset >= 0 ? preset : 0);
    m_checkImages->setChecked(v.checkImages);
    revalidate();
}

ImportLabelsDialogValues ImportLabelsDialog::values() const {
    ImportLabelsDialogValues v;
    for (const QString& f : m_pkl->text().split(QLatin1Char(';'), Qt::SkipEmptyParts))
        if (!f.trimmed().isEmpty()) v.pklFiles << f.trimmed();
    v.imageRoot = m_imageRoot->text().trimmed();
    v.store = m_store->text().trimmed();
    v.dataset = m_dataset->text().trimmed();
    v.preset = m_preset->currentData().toString();
    v.checkImages = m_checkImages->isChecked();
    return v;
}

QString ImportLabelsDialog::validationMessage() const {
    const ImportLabelsDialogValues v = values();
    if (v.pklFiles.isEmpty()) return tr("Choose the .pkl file(s).");
    for (const QString& f : v.pklFiles)
        if (!QFileInfo(f).isFile()) return tr("The pickle file %1 does not exist.").arg(f);
    if (v.checkImages && v.imageRoot.isEmpty()) return tr("Choose the image root folder.");
    if (!v.imageRoot.isEmpty() && !QFileInfo(v.imageRoot).isDir())
        return tr("The image root %1 is not a folder.").arg(v.imageRoot);
    if (v.store.isEmpty()) return tr("Choose where the label store goes.");
    if (QFileInfo(v.store).isDir()) return tr("The label store %1 is a folder; name a file.").arg(v.store);
    if (!folderOfFileExists(v.store))
        return tr("The folder of the label store, %1, does not exist.")
            .arg(QFileInfo(v.store).absolutePath());
    return {};
}

void ImportLabelsDialog::revalidate() {
    const QString why = validationMessage();
    m_message->setText(why);
    m_buttons->button(QDialogButtonBox::Ok)->setEnabled(why.isEmpty());
}

void ImportLabelsDialog::accept() {
    revalidate();
    if (!validationMessage().isEmpty()) return;
    QDialog::accept();
}

// ---- ConvertWeightsDialog ------------------------------------------------------------------------------

ConvertWeightsDialog::ConvertWeightsDialog(QWidget* parent) : QDialog(parent) {
    setWindowTitle(tr("Convert PyTorch weights"));
    m_input = new QLineEdit(this);
    m_input->setPlaceholderText(tr("a model folder with pytorch_model*.bin"));
    m_output = new QLineEdit(this);
    m_output->setPlaceholderText(tr("a new or empty folder"));
    auto* form = new QFormLayout;
    form->addRow(tr("Model folder"), pathField(m_input, Browse::Folder, {}, this));
    form->addRow(tr("Write to"), pathField(m_output, Browse::Folder, {}, this));
    m_message = messageLabel(this);
    m_buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    m_buttons->button(QDialogButtonBox::Ok)->setText(tr("Convert"));
    connect(m_buttons, &QDialogButtonBox::accepted, this, &ConvertWeightsDialog::accept);
    connect(m_buttons, &QDialogButtonBox::rejected, this, &ConvertWeightsDialog::reject);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(form);
    layout->addWidget(m_message);
    layout->addWidget(m_buttons);
    for (QLineEdit* e : {m_input, m_output})
        connect(e, &QLineEdit::textChanged, this, &ConvertWeightsDialog::revalidate);
    setMinimumWidth(520);
    revalidate();
}

void ConvertWeightsDialog::setValues(const ConvertDialogValues& v) {
    m_input->setText(v.input);
    m_output->setText(v.output);
    revalidate();
}

ConvertDialogValues ConvertWeightsDialog::values() const {
    return {m_input->text().trimmed(), m_output->text().trimmed()};
}

QString ConvertWeightsDialog::validationMessage() const {
    const ConvertDialogValues v = values();
    if (v.input.isEmpty()) return tr("Choose the model folder.");
    if (!QFileInfo(v.input).isDir()) return tr("The model folder %1 does not exist.").arg(v.input);
    if (v.output.isEmpty()) return tr("Choose where the converted model goes.");
    if (QDir::cleanPath(QFileInfo(v.output).absoluteFilePath()) ==
        QDir::cleanPath(QFileInfo(v.input).absoluteFilePath()))
        return tr("Write the converted model to another folder.");
    if (QFileInfo(v.output).isDir() && !QDir(v.output).isEmpty())
        return tr("The folder %1 is not empty.").arg(v.output);
    if (!QFileInfo(v.output).exists() && !folderOfFileExists(v.output))
        return tr("The folder above %1 does not exist.").arg(v.output);
    return {};
}

void ConvertWeightsDialog::revalidate() {
    const QString why = validationMessage();
    m_message->setText(why);
    m_buttons->button(QDialogButtonBox::Ok)->setEnabled(why.isEmpty());
}

void ConvertWeightsDialog::accept() {
    revalidate();
    if (!validationMessage().isEmpty()) return;
    QDialog::accept();
}
