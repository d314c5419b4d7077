#include "widgets/ask_panel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QSignalBlocker>
#include <QHBoxLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QTextBrowser>
#include <QTextCursor>
#include <QVBoxLayout>

AskPanel::AskPanel(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    layout->setSpacing(6);

    m_question = new QPlainTextEdit;
    m_question->setPlaceholderText(tr("Ask about the image, e.g. “What does the small sign say?”"));
    m_question->setTabChangesFocus(true);
    const int lineHeight = m_question->fontMetrics().lineSpacing();
    m_question->setFixedHeight(lineHeight * 3 + 16);
    m_question->installEventFilter(this);
    connect(m_question, &QPlainTextEdit::textChanged, this, [this] { emit questionChanged(question()); });

    m_ask = new QPushButton(tr("Ask"));
    m_ask->setDefault(true);
    m_ask->setMinimumWidth(72);
    connect(m_ask, &QPushButton::clicked, this, &AskPanel::requestAsk);
    m_stop = new QPushButton(tr("Stop"));
    m_stop->setMinimumWidth(64);
    m_stop->setEnabled(false);
    m_stop->setToolTip(tr("Stop the answer (Esc)"));
    connect(m_stop, &QPushButton::clicked, this, &AskPanel::stopRequested);
    m_maxTokens = new QSpinBox;
    m_maxTokens->setRange(1, 4096);
    m_maxTokens->setValue(128);
    m_maxTokens->setSuffix(tr(" tokens"));
    m_maxTokens->setToolTip(tr("The longest answer, in tokens"));
    m_hint = new QLabel;
    m_hint->setWordWrap(true);
    m_hint->setForegroundRole(QPalette::PlaceholderText);
    auto* row = new QHBoxLayout;
    row->addWidget(m_hint, 1);
    row->addWidget(m_maxTokens, 0, Qt::AlignTop);
    row->addWidget(m_stop, 0, Qt::AlignTop);
    row->addWidget(m_ask, 0, Qt::AlignTop);

    m_sdrpn = new QCheckBox(tr("SD-RPN"));
    m_sdrpn->setToolTip(
        tr("Answer twice: from the original prompt (baseline) and with the RoI crop the RPN picks"));
    m_rpnStatus = new QLabel;
    m_rpnStatus->setForegroundRole(QPalette::PlaceholderText);
    auto* sdrpnRow = new QHBoxLayout;
    sdrpnRow->addWidget(m_sdrpn);
    sdrpnRow->addWidget(m_rpnStatus, 1);

    auto makeColumn = [lineHeight](const QString& title, QLabel** titleLabel, QTextBrowser** browser) {
        auto* column = new QWidget;
        auto* v = new QVBoxLayout(column);
        v->setContentsMargins(0, 0, 0, 0);
        v->setSpacing(2);
        auto* label = new QLabel(title);
        QFont bold = label->font();
        bold.setBold(true);
        label->setFont(bold);
        *titleLabel = label;
        *browser = new QTextBrowser;
        (*browser)->setOpenLinks(false);
        (*browser)->setMinimumHeight(lineHeight * 4);
        v->addWidget(label);
        v->addWidget(*browser, 1);
        return column;
    };
    QLabel* roiTitle = nullptr;
    auto* baseColumn = makeColumn(tr("Baseline"), &m_answerTitle, &m_answer);
    m_roiColumn = makeColumn(tr("SD-RPN (RoI crop)"), &roiTitle, &m_roiAnswer);
    m_answer->setPlaceholderText(tr("The answer appears here."));
    m_roiAnswer->setPlaceholderText(tr("The answer with the RoI tokens appears here."));
    m_answerTitle->hide();
    m_roiColumn->hide();
    auto* answers = new QHBoxLayout;
    answers->setSpacing(6);
    answers->addWidget(baseColumn, 1);
    answers->addWidget(m_roiColumn, 1);
    connect(m_sdrpn, &QCheckBox::toggled, this, [this](bool on) {
        m_roiColumn->setVisible(on);
        m_answerTitle->setVisible(on);
        emit sdrpnToggled(on);
    });

    m_info = new QLabel;
    m_info->setWordWrap(true);
    m_info->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_info->hide();

    m_historyBox = new QComboBox;
    m_historyBox->setObjectName(QStringLiteral("questionHistory"));
    m_historyBox->setToolTip(tr("Recent questions: pick one to ask it again"));
    m_historyBox->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    m_historyBox->setMinimumContentsLength(8);
    m_historyBox->setMaximumWidth(160);
    connect(m_historyBox, &QComboBox::activated, this, [this](int index) {
        // Item 0 is the "Recent" placeholder.
        if (index > 0 && index - 1 < m_history.size()) setQuestion(m_history.at(index - 1));
        const QSignalBlocker block(m_historyBox);
        m_historyBox->setCurrentIndex(0);
        m_question->setFocus();
    });
    rebuildHistoryBox();
    auto* questionRow = new QHBoxLayout;
    questionRow->addWidget(m_question, 1);
    questionRow->addWidget(m_historyBox, 0, Qt::AlignTop);

    layout->addLayout(questionRow);
    layout->addLayout(row);
    layout->addLayout(sdrpnRow);
    layout->addLayout(answers, 1);
    layout->addWidget(m_info);
    setAskAvailable(false, tr("Answering is not available yet."));
}

void AskPanel::setHistory(const QStringList& questions) {
    QStringList cleaned;
    for (const QString& q : questions) {
        const QString t = q.trimmed();
        if (!t.isEmpty() && !cleaned.contains(t)) cleaned << t;
        if (cleaned.size() == kMaxHistory) break;
    }
    if (cleaned == m_history) return;
    m_history = cleaned;
    rebuildHistoryBox();
    emit historyChanged(m_history);
}

void AskPanel::addToHistory(const QString& question) {
    QStringList next = m_history;
    next.removeAll(question.trimmed());
    next.prepend(question.trimmed());
    setHistory(next);
}

void AskPanel::rebuildHistoryBox() {
    const QSignalBlocker block(m_historyBox);
    m_historyBox->clear();
    m_historyBox->addItem(m_history.isEmpty() ? tr("No recent questions") : tr("Recent…"));
    for (const QString& q : m_history) {
        // One line per question in the list; the whole text in the tooltip.
        QString line = q;
        line.replace(QLatin1Char('\n'), QLatin1Char(' '));
        m_historyBox->addItem(line);
        m_historyBox->setItemData(m_historyBox->count() - 1, q, Qt::ToolTipRole);
    }
    m_historyBox->setEnabled(!m_history.isEmpty());
    m_historyBox->setCurrentIndex(0);
}

QString AskPanel::question() const {
    return m_question->toPlainText();
}

void AskPanel::setQuestion(const QString& question) {
    if (question != m_question->toPlainText()) m_question->setPlainText(question);
}

void AskPanel::setAskAvailable(bool available, const QString& reason) {
    m_available = available;
    m_reason = available ? QString() : reason;
    m_ask->setEnabled(available && !m_busy);
    m_ask->setToolTip(available ? tr("Ask the model (Ctrl+Enter)") : reason);
    if (!m_busy) m_hint->setText(available ? tr("Ctrl+Enter to ask") : reason);
}

void AskPanel::setBusy(bool busy) {
    m_busy = busy;
    m_stop->setEnabled(busy);
    m_ask->setEnabled(m_available && !busy);
    m_hint->setText(busy ? tr("Answering…") : (m_available ? tr("Ctrl+Enter to ask") : m_reason));
}

int AskPanel::maxNewTokens() const {
    return m_maxTokens->value();
}

void AskPanel::setMaxNewTokens(int tokens) {
    m_maxTokens->setValue(tokens);
}

void AskPanel::setInfo(const QString& text, bool problem) {
    m_info->setText(text);
    m_info->setStyleSheet(problem ? QStringLiteral("QLabel { color: #a4262c; }") : QString());
    if (problem) {
        m_info->setForegroundRole(QPalette::WindowText);
    } else {
        m_info->setForegroundRole(QPalette::PlaceholderText);
    }
    m_info->setVisible(!text.isEmpty());
}

QString AskPanel::info() const {
    return m_info->text();
}

bool AskPanel::isAskAvailable() const {
    return m_available;
}

void AskPanel::clearAnswer() {
    m_answer->clear();
    m_roiAnswer->clear();
}

void AskPanel::setAnswer(const QString& text) {
    m_answer->setPlainText(text);
}

void AskPanel::appendAnswer(const QString& text) {
    QTextCursor cursor(m_answer->document());
    cursor.movePosition(QTextCursor::End);
    cursor.insertText(text);
}

QString AskPanel::answer() const {
    return m_answer->toPlainText();
}

bool AskPanel::sdrpnEnabled() const {
    return m_sdrpn->isChecked();
}

void AskPanel::setSdrpnEnabled(bool enabled) {
    m_sdrpn->setChecked(enabled);
}

void AskPanel::setRpnStatus(const QString& text, const QString& tooltip) {
    m_rpnStatus->setText(text);
    m_rpnStatus->setToolTip(tooltip);
}

QString AskPanel::rpnStatus() const {
    return m_rpnStatus->text();
}

void AskPanel::setRoiAnswer(const QString& text) {
    m_roiAnswer->setPlainText(text);
}

void AskPanel::appendRoiAnswer(const QString& text) {
    QTextCursor cursor(m_roiAnswer->document());
    cursor.movePosition(QTextCursor::End);
    cursor.insertText(text);
}

QString AskPanel::roiAnswer() const {
    return m_roiAnswer->toPlainText();
}

bool AskPanel::eventFilter(QObject* watched, QEvent* event) {
    if (watched == m_question && event->type() == QEvent::KeyPress) {
        auto* key = static_cast<QKeyEvent*>(event);
        if ((key->key() == Qt::Key_Return || key->key() == Qt::Key_Enter) &&
            (key->modifiers() & Qt::ControlModifier)) {
            requestAsk();
            return true;
        }
        if (key->key() == Qt::Key_Escape && m_busy) {
            emit stopRequested();
            return true;
        }
    }
    return QWidget::eventFilter(watched, event);
}

void AskPanel::requestAsk() {
    if (m_available && !m_busy && !question().trimmed().isEmpty()) emit askRequested(question().trimmed());
}
