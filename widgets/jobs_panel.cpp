#include "widgets/jobs_panel.h"

#include <QHBoxLayout>
#include <QHeaderView>
#include <QProgressBar>
#include <QPushButton>
#include <QToolButton>
#include <QTreeWidget>
#include <QVBoxLayout>

namespace {
enum Column { kTitle, kStatus, kProgress, kCancel, kColumnCount };
}

JobsPanel::JobsPanel(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->setSpacing(4);

    m_tree = new QTreeWidget;
    m_tree->setColumnCount(kColumnCount);
    m_tree->setHeaderLabels({tr("Job"), tr("Status"), tr("Progress"), QString()});
    m_tree->setRootIsDecorated(false);
    m_tree->setUniformRowHeights(true);
    m_tree->setSelectionMode(QAbstractItemView::NoSelection);
    m_tree->setFocusPolicy(Qt::NoFocus);
    m_tree->setAlternatingRowColors(true);
    QHeaderView* header = m_tree->header();
    header->setStretchLastSection(false);
    header->setSectionResizeMode(kTitle, QHeaderView::Interactive);
    header->setSectionResizeMode(kStatus, QHeaderView::Stretch);
    header->setSectionResizeMode(kProgress, QHeaderView::Fixed);
    header->setSectionResizeMode(kCancel, QHeaderView::Fixed);
    header->resizeSection(kTitle, 280);
    header->resizeSection(kProgress, 160);
    header->resizeSection(kCancel, 72);

    m_cancelAll = new QPushButton(tr("Cancel All"));
    m_clear = new QPushButton(tr("Clear Finished"));
    connect(m_cancelAll, &QPushButton::clicked, this, &JobsPanel::cancelAllRequested);
    connect(m_clear, &QPushButton::clicked, this, &JobsPanel::clearFinished);
    auto* buttons = new QHBoxLayout;
    buttons->addStretch();
    buttons->addWidget(m_cancelAll);
    buttons->addWidget(m_clear);

    layout->addWidget(m_tree, 1);
    layout->addLayout(buttons);
    updateButtons();
}

void JobsPanel::addJob(quint64 id, const QString& title) {
    Row row;
    row.clock.start();
    row.item = new QTreeWidgetItem(m_tree);
    row.item->setText(kTitle, title);
    row.item->setToolTip(kTitle, title);
    row.item->setText(kStatus, tr("Queued"));
    row.progress = new QProgressBar;
    row.progress->setRange(0, 1000);
    row.progress->setValue(0);
    row.progress->setTextVisible(false);
    row.progress->setMaximumHeight(14);
    auto* progressCell = new QWidget;
    auto* progressLayout = new QHBoxLayout(progressCell);
    progressLayout->setContentsMargins(4, 2, 4, 2);
    progressLayout->addWidget(row.progress);
    m_tree->setItemWidget(row.item, kProgress, progressCell);
    row.cancel = new QToolButton;
    row.cancel->setText(tr("Cancel"));
    row.cancel->setAutoRaise(true);
    row.cancel->setToolTip(tr("Cancel “%1”").arg(title));
    connect(row.cancel, &QToolButton::clicked, this, [this, id] { emit cancelRequested(id); });
    m_tree->setItemWidget(row.item, kCancel, row.cancel);
    m_rows.insert(id, row);
    m_tree->scrollToItem(row.item);
    updateButtons();
}

void JobsPanel::setJobRunning(quint64 id) {
    auto it = m_rows.find(id);
    if (it == m_rows.end() || it->finished) return;
    it->item->setText(kStatus, tr("Running"));
    it->progress->setRange(0, 0);
}

void JobsPanel::setJobProgress(quint64 id, double fraction, const QString& message) {
    auto it = m_rows.find(id);
    if (it == m_rows.end() || it->finished) return;
    if (fraction < 0) {
        it->progress->setRange(0, 0);
    } else {
        it->progress->setRange(0, 1000);
        it->progress->setValue(int(fraction * 1000));
    }
    const QString status = message.isEmpty() ? tr("Running") : message;
    it->item->setText(kStatus, status);
    it->item->setToolTip(kStatus, status);
}

void JobsPanel::setJobFinished(quint64 id, Outcome outcome, const QString& message) {
    auto it = m_rows.find(id);
    if (it == m_rows.end()) return;
    it->finished = true;
    const double seconds = it->clock.elapsed() / 1000.0;
    const QString took = seconds < 10 ? QString::number(seconds, 'f', 2) : QString::number(seconds, 'f', 0);
    QString status;
    switch (outcome) {
        case Outcome::Succeeded:
            status =
                message.isEmpty() ? tr("Done in %1 s").arg(took) : tr("Done in %1 s: %2").arg(took, message);
            it->progress->setRange(0, 1000);
            it->progress->setValue(1000);
            break;
        case Outcome::Failed:
            status = tr("Failed: %1").arg(message);
            it->item->setForeground(kStatus, QColor(0xa4, 0x26, 0x2c));
            it->progress->setRange(0, 1000);
            it->progress->setValue(0);
            break;
        case Outcome::Cancelled:
            status = tr("Cancelled after %1 s").arg(took);
            it->progress->setRange(0, 1000);
            it->progress->setValue(0);
            break;
    }
    it->item->setText(kStatus, status);
    it->item->setToolTip(kStatus, status);
    it->cancel->setEnabled(false);
    it->cancel->setText(QString());
    updateButtons();
}

int JobsPanel::jobCount() const {
    return m_rows.size();
}

int JobsPanel::activeCount() const {
    int n = 0;
    for (const Row& row : m_rows)
        if (!row.finished) ++n;
    return n;
}

QString JobsPanel::statusText(quint64 id) const {
    auto it = m_rows.find(id);
    return it == m_rows.end() ? QString() : it->item->text(kStatus);
}

void JobsPanel::clearFinished() {
    for (auto it = m_rows.begin(); it != m_rows.end();) {
        if (it->finished) {
            delete it->item;  // also deletes its item widgets
            it = m_rows.erase(it);
        } else {
            ++it;
        }
    }
    updateButtons();
}

void JobsPanel::updateButtons() {
    const int active = activeCount();
    m_cancelAll->setEnabled(active > 0);
    m_clear->setEnabled(m_rows.size() > active);
}
