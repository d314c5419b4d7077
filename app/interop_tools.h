// InteropTools: what the studio does with files from the SD-RPN and LLaVA releases, as background jobs:
//   - Jobs > Import Released Labels…: SD-RPN's pseudo-label .pkl files into a label store
//     (core/data/release_labels.h, the same as `sdrpn import-labels`);
//   - File > Convert PyTorch Weights…: a model folder's pytorch_model*.bin written as safetensors
//     (core/io/weight_convert.h, the same as `sdrpn convert`).
// Opening a .bin model folder needs neither: the core reads it as it is. Unfilled SD-RPN checkpoints are
// the model session's business (ModelSession::setBaseModel).
//
//   auto* interop = new InteropTools(window, jobs, window);
//   jobsMenu->addAction(interop->importLabelsAction());
//   connect(interop, &InteropTools::importFinished, tools, [&](QString store, QString root, QString) {
//       tools->openLabelStore(store, root); });
//
// The dialogs are modal; startImport / startConvert run without them (tests, batch use). Results and
// errors come back on the GUI thread as signals. Thread affinity: GUI thread.
#pragma once

#include <QObject>
#include <QPointer>
#include <QString>

#include "app/job_manager.h"
#include "widgets/job_dialogs.h"

class QAction;
class QWidget;

class InteropTools : public QObject {
    Q_OBJECT
public:
    InteropTools(QWidget* window, JobManager* jobs, QObject* parent = nullptr);

    QAction* importLabelsAction() const { return m_importAction; }
    QAction* convertAction() const { return m_convertAction; }
    // The job under way (0: none).
    JobId importJob() const { return m_importJob; }
    JobId convertJob() const { return m_convertJob; }

public slots:
    void importLabelsDialog();
    void convertDialog();
    // Start the job; 0 (with errorReported) when one of its kind is already running.
    JobId startImport(const ImportLabelsDialogValues& values);
    JobId startConvert(const ConvertDialogValues& values);

signals:
    // `summary`: one line per file ("labels.pkl: 1200 read, 1180 added, 15 skipped, 5 rejected") and the
    // first problems. Emitted also when some files failed, as long as the store exists.
    void importFinished(const QString& store, const QString& imageRoot, const QString& summary);
    void convertFinished(const QString& folder, const QString& summary);
    void logLine(const QString& line);
    void errorReported(const QString& message);

private:
    QPointer<QWidget> m_window;
    JobManager* m_jobs;
    QAction* m_importAction = nullptr;
    QAction* m_convertAction = nullptr;
    JobId m_importJob = 0;
    JobId m_convertJob = 0;
    ImportLabelsDialogValues m_lastImport;
    ConvertDialogValues m_lastConvert;
};
