// StoreBrowser: a read-only view of a label store (core/data/label_store.h) for the studio's "Label store"
// dock. A table lists every sample (key, question, teacher answer, and the label status with the
// foreground / background cell counts under the current label settings, computed when read as
// labelsOf does); selecting a row draws that sample's labels as a LabelOverlay in the preview, over its
// image when the image is found under the image root (otherwise over a grey stand-in of the source size).
//
//   auto* browser = new StoreBrowser;
//   browser->setLabelSettings(thresholds->labelSettings());
//   browser->setImageRoot("/data/images");
//   if (!browser->open("labels.sdrpn", &error)) showError(error);
//   browser->refresh();   // also every second by itself: appends the rows a labeling job wrote since
//
// While a job writes the store the browser polls it every second (refreshIntervalMs) and appends only the
// new rows, keeping the selection; a store that does not exist yet (a labeling job just started) is opened
// as soon as the job creates it (watch()). Reading never blocks the writer (WAL; LabelStore ReadOnly).
// Errors (not a store, unreadable) are returned as text and emitted as errorReported(); nothing throws.
//
// Thread affinity: GUI thread. Reads are small (one page of summaries per refresh, one sample per label
// computation), so they run on the GUI thread.
#pragma once

#include <memory>
#include <optional>

#include <QString>
#include <QWidget>

#include "core/sdrpn/labels.h"

namespace sdrpn::data {
class LabelStore;
}

class ImageView;
class LabelOverlay;
class QLabel;
class QTableWidget;
class QTimer;

class StoreBrowser : public QWidget {
    Q_OBJECT
public:
    enum Column { KeyColumn, QuestionColumn, AnswerColumn, StatusColumn, ForegroundColumn, BackgroundColumn };

    explicit StoreBrowser(QWidget* parent = nullptr);
    ~StoreBrowser() override;

    // Opens `path` read-only and lists its samples. False, with `error` naming the file and what is wrong,
    // when it is not a label store or cannot be read (the previous store stays closed).
    bool open(const QString& path, QString* error = nullptr);
    // Shows `path` once it exists (a labeling job creates it); opens it now when it already does.
    bool watch(const QString& path, QString* error = nullptr);
    void closeStore();
    QString path() const { return m_path; }
    bool isOpen() const { return m_store != nullptr; }

    void setLabelSettings(const sdrpn::LabelSettings& settings);
    const sdrpn::LabelSettings& labelSettings() const { return m_settings; }
    // The folder the samples' image paths are relative to ("" = the store's folder).
    void setImageRoot(const QString& folder);
    QString imageRoot() const { return m_imageRoot; }

    int rowCount() const;
    QTableWidget* table() const { return m_table; }
    ImageView* preview() const { return m_preview; }
    std::shared_ptr<LabelOverlay> labelOverlay() const { return m_overlay; }
    // The selected sample's key ("" when none) and the preview's caption.
    QString selectedKey() const;
    QString previewCaption() const;
    // How often the open store is polled for new rows (0 = never; refresh() still works).
    void setRefreshIntervalMs(int ms);

public slots:
    // Appends the rows written since the last refresh (at most kPageRows per call).
    void refresh();
    void selectRow(int row);
    void chooseImageRoot();

signals:
    void storeOpened(const QString& path);
    void rowsAdded(int total);
    void errorReported(const QString& message);

public:
    static constexpr int kPageRows = 500;

private:
    void fillRowLabels(int row);
    void showSample(int row);

    std::unique_ptr<sdrpn::data::LabelStore> m_store;
    QString m_path;
    QString m_pendingPath;  // watched, not yet created
    QString m_imageRoot;
    sdrpn::LabelSettings m_settings;
    QTableWidget* m_table = nullptr;
    ImageView* m_preview = nullptr;
    QLabel* m_caption = nullptr;
    QLabel* m_title = nullptr;
    std::shared_ptr<LabelOverlay> m_overlay;
    QTimer* m_timer = nullptr;
};
