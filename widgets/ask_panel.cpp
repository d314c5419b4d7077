#include "widgets/ask_panel.h"

#include <QHBoxLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
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
    m_ask->setMinimumWidth(88);
    connect(m_ask, &QPushButton::clicked, this, &AskPanel::requestAsk);
    m_hint = new QLabel;
    m_hint->setWordWrap(true);
    m_hint->setForegroundRole(QPalette::PlaceholderText);
    auto* row = new QHBoxLayout;
    row->addWidget(m_hint, 1);
    row->addWidget(m_ask, 0, Qt::AlignTop);

    m_answer = new QTextBrowser;
    m_answer->setPlaceholderText(tr("The answer appears here."));
    m_answer->setOpenLinks(false);
    m_answer->setMinimumHeight(lineHeight * 4);

    layout->addWidget(m_question);
    layout->addLayout(row);
    layout->addWidget(m_answer, 1);
    setAskAvailable(false, tr("Answering is not available yet."));
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
    m_ask->setEnabled(available);
    m_ask->setToolTip(available ? tr("Ask the model (Ctrl+Enter)") : reason);
    m_hint->setText(available ? tr("Ctrl+Enter to ask") : reason);
}

bool AskPanel::isAskAvailable() const {
    return m_available;
}

void AskPanel::clearAnswer() {
    m_answer->clear();
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

bool AskPanel::eventFilter(QObject* watched, QEvent* event) {
    if (watched == m_question && event->type() == QEvent::KeyPress) {
        auto* key = static_cast<QKeyEvent*>(event);
        if ((key->key() == Qt::Key_Return || key->key() == Qt::Key_Enter) &&
            (key->modifiers() & Qt::ControlModifier)) {
            requestAsk();
            return true;
        }
    }
    return QWidget::eventFilter(watched, event);
}

void AskPanel::requestAsk() {
    if (m_available && !question().trimmed().isEmpty()) emit askRequested(question().trimmed());
}
