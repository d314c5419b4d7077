// AskPanel: the question box, the Ask and Stop buttons, the answer length limit, the answer area and a
// line under it for what the answer cost (or why there is none). It only edits text and emits
// askRequested() / stopRequested(); app/ decides whether asking is possible (setAskAvailable), says when an
// answer is under way (setBusy) and fills in the answer, streamed piece by piece (appendAnswer).
//
// With the SD-RPN box checked the answer area splits in two, side by side: the baseline answer (the
// original prompt) and the RoI answer (the crop the RPN picked, re-encoded and added to the prompt).
//
// A drop-down next to the question box keeps the last kMaxHistory questions asked (newest first, no
// duplicates); picking one puts it back in the box without asking. app/ adds to it and may persist it.
//
// Thread affinity: GUI thread only.
#pragma once

#include <QString>
#include <QStringList>
#include <QWidget>

class QCheckBox;
class QComboBox;
class QLabel;
class QPlainTextEdit;
class QPushButton;
class QSpinBox;
class QTextBrowser;

class AskPanel : public QWidget {
    Q_OBJECT
public:
    explicit AskPanel(QWidget* parent = nullptr);

    QString question() const;
    void setQuestion(const QString& question);

    static constexpr int kMaxHistory = 20;
    // The questions asked, newest first. addToHistory moves a repeated question to the front.
    QStringList history() const { return m_history; }
    void setHistory(const QStringList& questions);
    void addToHistory(const QString& question);
    QComboBox* historyBox() const { return m_historyBox; }

    // When not available the Ask button is disabled and `reason` is its tooltip (the question stays).
    void setAskAvailable(bool available, const QString& reason = {});
    bool isAskAvailable() const;
    QString askUnavailableReason() const { return m_reason; }

    // While busy, Ask is disabled and Stop enabled.
    void setBusy(bool busy);
    bool isBusy() const { return m_busy; }

    // The longest answer, in tokens (default 128).
    int maxNewTokens() const;
    void setMaxNewTokens(int tokens);

    // The line under the answer: timings, or a message (`problem`: shown as one).
    void setInfo(const QString& text, bool problem = false);
    QString info() const;

    // Clears both answers.
    void clearAnswer();
    void setAnswer(const QString& text);
    void appendAnswer(const QString& text);  // streaming: one piece at a time
    QString answer() const;

    // The SD-RPN box: ask with the two-stage answer (baseline and RoI answers side by side).
    bool sdrpnEnabled() const;
    void setSdrpnEnabled(bool enabled);
    // A short word on the RPN next to the box ("untrained twig K3 T3", "none loaded").
    void setRpnStatus(const QString& text, const QString& tooltip = {});
    QString rpnStatus() const;
    void setRoiAnswer(const QString& text);
    void appendRoiAnswer(const QString& text);
    QString roiAnswer() const;

signals:
    void askRequested(const QString& question);
    void sdrpnToggled(bool enabled);
    void stopRequested();
    void questionChanged(const QString& question);
    void historyChanged(const QStringList& history);

protected:
    bool eventFilter(QObject* watched, QEvent* event) override;

private:
    void requestAsk();
    void rebuildHistoryBox();

    QPlainTextEdit* m_question = nullptr;
    QPushButton* m_ask = nullptr;
    QPushButton* m_stop = nullptr;
    QSpinBox* m_maxTokens = nullptr;
    QLabel* m_hint = nullptr;
    QTextBrowser* m_answer = nullptr;
    QTextBrowser* m_roiAnswer = nullptr;
    QLabel* m_answerTitle = nullptr;
    QWidget* m_roiColumn = nullptr;
    QCheckBox* m_sdrpn = nullptr;
    QLabel* m_rpnStatus = nullptr;
    QLabel* m_info = nullptr;
    QComboBox* m_historyBox = nullptr;
    QStringList m_history;
    QString m_reason;
    bool m_available = false;
    bool m_busy = false;
};
