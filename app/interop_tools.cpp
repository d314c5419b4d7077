#include "app/interop_tools.h"

#include <QAction>
#include <QFileInfo>
#include <QWidget>

#include "core/data/release_labels.h"
#include "core/io/weight_convert.h"
#include "core/sdrpn/labels.h"

namespace {

struct ImportOutcome {
    QString summary;
    bool anyRead = false;
};

QString describe(const QString& file, const sdrpn::data::ReleaseImportReport& r) {
    QString line = QObject::tr("%1: %2 read, %3 added, %4 skipped, %5 rejected (dataset %6, preset %7)")
                       .arg(QFileInfo(file).fileName())
                       .arg(r.read)
                       .arg(r.added)
                       .arg(r.skipped)
                       .arg(r.rejected)
                       .arg(QString::fromStdString(r.dataset), QString::fromStdString(r.preset));
    const std::size_t shown = std::min<std::size_t>(r.problems.size(), 5);
    for (std::size_t i = 0; i < shown; ++i)
        line += QStringLiteral("\n  ") + QString::fromStdString(r.problems[i]);
    if (r.problems.size() > shown)
        line += QObject::tr("\n  … and %1 more").arg(qulonglong(r.problems.size() - shown));
    return line;
}

}  // namespace

InteropTools::InteropTools(QWidget* window, JobManager* jobs, QObject* parent)
    : QObject(parent), m_window(window), m_jobs(jobs) {
    m_importAction = new QAction(tr("&Import Released Labels…"), this);
    m_importAction->setStatusTip(
        tr("Read SD-RPN's published pseudo-label .pkl files into a label store, to train without a teacher"));
    connect(m_importAction, &QAction::triggered, this, &InteropTools::importLabelsDialog);
    m_convertAction = new QAction(tr("Con&vert PyTorch Weights…"), this);
    m_convertAction->setStatusTip(tr("Write a model folder's pytorch_model*.bin weights as safetensors"));
    connect(m_convertAction, &QAction::triggered, this, &InteropTools::convertDialog);
}

void InteropTools::importLabelsDialog() {
    QStringList presets;
    for (const std::string& name : sdrpn::LabelSettings::presetNames())
        presets << QString::fromStdString(name);
    ImportLabelsDialog dialog(presets, m_window);
    dialog.setValues(m_lastImport);
    if (dialog.exec() != QDialog::Accepted) return;
    m_lastImport = dialog.values();
    startImport(m_lastImport);
}

void InteropTools::convertDialog() {
    ConvertWeightsDialog dialog(m_window);
    dialog.setValues(m_lastConvert);
    if (dialog.exec() != QDialog::Accepted) return;
    m_lastConvert = dialog.values();
    startConvert(m_lastConvert);
}

JobId InteropTools::startImport(const ImportLabelsDialogValues& values) {
    if (m_importJob) {
        emit errorReported(tr("An import is already running; wait for it or cancel it in the Jobs panel."));
        return 0;
    }
    const QString store = values.store;
    const QString imageRoot = values.imageRoot;
    std::vector<std::string> files;
    for (const QString& f : values.pklFiles) files.push_back(f.toStdString());
    sdrpn::data::ReleaseImportOptions options;
    options.dataset = values.dataset.toStdString();
    options.preset = values.preset.toStdString();
    options.imageRoot = values.imageRoot.toStdString();
    options.checkImages = values.checkImages;
    const std::string storePath = store.toStdString();
    emit logLine(tr("Importing %n released label file(s) into %1", nullptr, int(files.size())).arg(store));
    m_importJob = m_jobs->run(
        tr("Import labels into %1").arg(QFileInfo(store).fileName()), this,
        [files, options, storePath](sdrpn::JobContext& ctx) {
            return sdrpn::guarded([&] {
                ImportOutcome out;
                std::string failures;
                for (std::size_t i = 0; i < files.size(); ++i) {
                    ctx.throwIfCancelled();
                    try {
                        // Progress restarts with each file; the cancel flag is the job's.
                        const sdrpn::data::ReleaseImportReport r =
                            sdrpn::data::importReleasedLabels(files[i], storePath, options, ctx);
                        out.anyRead = out.anyRead || r.read > 0;
                        out.summary += (out.summary.isEmpty() ? QString() : QStringLiteral("\n")) +
                                       describe(QString::fromStdString(files[i]), r);
                    } catch (const sdrpn::Error& e) {
                        // One bad file does not lose the others: say which, go on.
                        failures += std::string(failures.empty() ? "" : "\n") + e.what();
                    }
                }
                if (!failures.empty() && !out.anyRead) throw sdrpn::Error(failures);
                if (!failures.empty()) out.summary += QStringLiteral("\n") + QString::fromStdString(failures);
                return out;
            });
        },
        [this, store, imageRoot](sdrpn::Result<ImportOutcome> result) {
            m_importJob = 0;
            if (result.status().cancelled()) {
                emit logLine(tr("Import into %1 cancelled; the samples written so far are kept.").arg(store));
                if (QFileInfo::exists(store)) emit importFinished(store, imageRoot, tr("cancelled"));
                return;
            }
            if (!result) {
                emit logLine(tr("Import failed: %1").arg(QString::fromStdString(result.message())));
                emit errorReported(
                    tr("Cannot import the labels:\n%1").arg(QString::fromStdString(result.message())));
                return;
            }
            emit logLine(result.value().summary);
            emit importFinished(store, imageRoot, result.value().summary);
        });
    return m_importJob;
}

JobId InteropTools::startConvert(const ConvertDialogValues& values) {
    if (m_convertJob) {
        emit errorReported(
            tr("A conversion is already running; wait for it or cancel it in the Jobs panel."));
        return 0;
    }
    const QString output = values.output;
    const std::string in = values.input.toStdString();
    const std::string out = output.toStdString();
    emit logLine(tr("Converting %1 to safetensors in %2").arg(values.input, output));
    m_convertJob = m_jobs->run(
        tr("Convert %1").arg(QFileInfo(values.input).fileName()), this,
        [in, out](sdrpn::JobContext& ctx) {
            return sdrpn::guarded([&] { return sdrpn::io::convertToSafetensors(in, out, ctx); });
        },
        [this, output](sdrpn::Result<sdrpn::io::ConvertReport> result) {
            m_convertJob = 0;
            if (result.status().cancelled()) {
                emit logLine(tr("Conversion to %1 cancelled; no shard was left half-written.").arg(output));
                return;
            }
            if (!result) {
                emit logLine(tr("Conversion failed: %1").arg(QString::fromStdString(result.message())));
                emit errorReported(
                    tr("Cannot convert the weights:\n%1").arg(QString::fromStdString(result.message())));
                return;
            }
            const sdrpn::io::ConvertReport& r = result.value();
            const QString summary = tr("%1: %2 tensors, %3 MB in %4 safetensors file(s)")
                                        .arg(output)
                                        .arg(r.tensors)
                                        .arg(double(r.bytes) / 1e6, 0, 'f', 1)
                                        .arg(r.shards);
            emit logLine(summary);
            emit convertFinished(output, summary);
        });
    return m_convertJob;
}
