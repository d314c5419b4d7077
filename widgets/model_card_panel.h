// ModelCardPanel: what the loaded model is (architecture, layers, heads, grid, dtype, size, folder), or
// that none is loaded, one is loading, or loading failed. Below the card, the device and compute dtype the
// next load uses (loadOptionsChanged when the user picks another; the loaded model keeps its own). Takes
// display-ready text; app/ converts the core's ModelCard into a ModelCardInfo.
//
// Thread affinity: GUI thread only.
#pragma once

#include <QList>
#include <QPair>
#include <QString>
#include <QWidget>

class QComboBox;
class QFormLayout;
class QLabel;
class QProgressBar;
class QPushButton;
class QStackedWidget;

struct ModelCardInfo {
    QString title;                        // short name, e.g. the folder's base name
    QString subtitle;                     // e.g. the architecture
    QList<QPair<QString, QString>> rows;  // label, value, in display order
    QString warning;                      // shown as a highlighted banner when not empty
    QString folder;                       // full path, shown elided with a tooltip
};

class ModelCardPanel : public QWidget {
    Q_OBJECT
public:
    explicit ModelCardPanel(QWidget* parent = nullptr);

    void showEmpty();
    // fraction < 0: unknown.
    void showLoading(const QString& folder, double fraction, const QString& message);
    void showCard(const ModelCardInfo& card);
    void showError(const QString& folder, const QString& message);

    // For tests and the About box: the text currently shown, one "label: value" per line.
    QString displayedText() const;
    bool isWarningVisible() const;

    // The devices offered (e.g. "cpu", "cuda"); the compute dtypes are fp32 and bf16.
    void setDeviceChoices(const QStringList& devices);
    // Selects a device and dtype without emitting loadOptionsChanged (unknown values are added).
    void setLoadChoice(const QString& device, const QString& dtype);
    QString device() const;
    QString dtype() const;
    QComboBox* deviceBox() const { return m_device; }
    QComboBox* dtypeBox() const { return m_dtype; }

signals:
    void openModelRequested();
    // The user picked another device or dtype, for the next load.
    void loadOptionsChanged(const QString& device, const QString& dtype);

private:
    QWidget* buildEmptyPage();
    QWidget* buildLoadingPage();
    QWidget* buildCardPage();
    QWidget* buildErrorPage();
    void clearRows();

    QStackedWidget* m_stack = nullptr;
    QWidget* m_emptyPage = nullptr;
    QWidget* m_loadingPage = nullptr;
    QWidget* m_cardPage = nullptr;
    QWidget* m_errorPage = nullptr;
    QLabel* m_loadingFolder = nullptr;
    QLabel* m_loadingMessage = nullptr;
    QProgressBar* m_loadingProgress = nullptr;
    QLabel* m_title = nullptr;
    QLabel* m_subtitle = nullptr;
    QLabel* m_warning = nullptr;
    QFormLayout* m_form = nullptr;
    QLabel* m_folder = nullptr;
    QLabel* m_errorFolder = nullptr;
    QLabel* m_errorMessage = nullptr;
    QComboBox* m_device = nullptr;
    QComboBox* m_dtype = nullptr;
    ModelCardInfo m_card;
};
