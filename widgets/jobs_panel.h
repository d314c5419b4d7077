// JobsPanel: the list of background jobs with their progress, state and a Cancel button. It shows what
// app/'s JobManager reports (by job id) and emits cancelRequested(); it owns no jobs itself.
//
// Thread affinity: GUI thread only.
#pragma once

#include <QElapsedTimer>
#include <QHash>
#include <QString>
#include <QWidget>

class QProgressBar;
class QPushButton;
class QToolButton;
class QTreeWidget;
class QTreeWidgetItem;

class JobsPanel : public QWidget {
    Q_OBJECT
public:
    enum class Outcome { Succeeded, Failed, Cancelled };
    Q_ENUM(Outcome)

    explicit JobsPanel(QWidget* parent = nullptr);

    void addJob(quint64 id, const QString& title);
    void setJobRunning(quint64 id);
    // fraction < 0: unknown (busy indicator).
    void setJobProgress(quint64 id, double fraction, const QString& message);
    void setJobFinished(quint64 id, Outcome outcome, const QString& message);

    int jobCount() const;
    int activeCount() const;
    QString statusText(quint64 id) const;

public slots:
    void clearFinished();

signals:
    void cancelRequested(quint64 id);
    void cancelAllRequested();

private:
    struct Row {
        QTreeWidgetItem* item = nullptr;
        QProgressBar* progress = nullptr;
        QToolButton* cancel = nullptr;
        bool finished = false;
        QElapsedTimer clock;  // since the job was added
    };
    void updateButtons();

    QTreeWidget* m_tree = nullptr;
    QPushButton* m_clear = nullptr;
    QPushButton* m_cancelAll = nullptr;
    QHash<quint64, Row> m_rows;
};
