// AskPanel: the question box, the Ask button and the answer area. It only edits text and emits
// askRequested(); app/ decides whether asking is possible (setAskAvailable) and fills in the answer.
//
// Thread affinity: GUI thread only.
#pragma once

#include <QString>
#include <QWidget>

class QLabel;
class QPlainTextEdit;
class QPushButton;
class QTextBrowser;

class AskPanel : public QWidget {
    Q_OBJECT
public:
    explicit AskPanel(QWidget* parent = nullptr);

    QString question() const;
    void setQuestion(const QString& question);

    // When not available the Ask button is disabled and `reason` is its tooltip (the question stays).
    void setAskAvailable(bool available, const QString& reason = {});
    bool isAskAvailable() const;
    QString askUnavailableReason() const { return m_reason; }

    void clearAnswer();
    void setAnswer(const QString& text);
    void appendAnswer(const QString& text);  // streaming: one piece at a time
    QString answer() const;

signals:
    void askRequested(const QString& question);
    void questionChanged(const QString& question);

protected:
    bool eventFilter(QObject* watched, QEvent* event) override;

private:
    void requestAsk();

    QPlainTextEdit* m_question = nullptr;
    QPushButton* m_ask = nullptr;
    QLabel* m_hint = nullptr;
    QTextBrowser* m_answer = nullptr;
    QString m_reason;
    bool m_available = false;
};
