#include "app/store_browser.h"

#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QImage>
#include <QImageReader>
#include <QLabel>
#include <QSplitter>
#include <QTableWidget>
#include <QTimer>
#include <QToolButton>
#include <QVBoxLayout>

#include "app/attention_maps.h"
#include "core/data/label_store.h"
#include "core/data/labeling.h"
#include "core/sdrpn/map_stats.h"
#include "widgets/image_view.h"
#include "widgets/label_overlay.h"

namespace {

constexpr int kDatasetRole = Qt::UserRole;
constexpr int kImageRole = Qt::UserRole + 1;

QTableWidgetItem* cell(const QString& text) {
    auto* item = new QTableWidgetItem(text);
    item->setFlags(Qt::ItemIsSelectable | Qt::ItemIsEnabled);
    item->setToolTip(text);
    return item;
}

QRectF toQRect(const sdrpn::models::RectF& r) {
    return r.empty() ? QRectF() : QRectF(QPointF(r.x0, r.y0), QPointF(r.x1, r.y1));
}

}  // namespace

StoreBrowser::StoreBrowser(QWidget* parent) : QWidget(parent) {
    m_title = new QLabel(tr("No label store open (File › Open Label Store…)"), this);
    m_title->setWordWrap(true);
    auto* rootButton = new QToolButton(this);
    rootButton->setText(tr("Image root…"));
    rootButton->setToolTip(tr("The folder the samples' image paths start from"));
    connect(rootButton, &QToolButton::clicked, this, &StoreBrowser::chooseImageRoot);
    auto* header = new QHBoxLayout;
    header->addWidget(m_title, 1);
    header->addWidget(rootButton);

    m_table = new QTableWidget(0, 6, this);
    m_table->setObjectName(QStringLiteral("storeTable"));
    m_table->setHorizontalHeaderLabels(
        {tr("Key"), tr("Question"), tr("Teacher answer"), tr("Labels"), tr("Fg"), tr("Bg")});
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setSelectionMode(QAbstractItemView::SingleSelection);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->verticalHeader()->setVisible(false);
    m_table->horizontalHeader()->setStretchLastSection(false);
    m_table->horizontalHeader()->setSectionResizeMode(QuestionColumn, QHeaderView::Stretch);
    m_table->horizontalHeader()->setSectionResizeMode(AnswerColumn, QHeaderView::Stretch);
    connect(m_table, &QTableWidget::currentCellChanged, this, [this](int row, int, int previous, int) {
        if (row != previous) showSample(row);
    });

    m_overlay = std::make_shared<LabelOverlay>();
    m_preview = new ImageView(this);
    m_preview->setPlaceholderText(tr("Select a sample to see its labels"));
    m_preview->addOverlay(m_overlay);
    m_preview->setMinimumHeight(160);
    m_caption = new QLabel(this);
    m_caption->setWordWrap(true);
    auto* previewPane = new QWidget(this);
    auto* previewLayout = new QVBoxLayout(previewPane);
    previewLayout->setContentsMargins(0, 0, 0, 0);
    previewLayout->addWidget(m_preview, 1);
    previewLayout->addWidget(m_caption);

    auto* split = new QSplitter(Qt::Vertical, this);
    split->addWidget(m_table);
    split->addWidget(previewPane);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addLayout(header);
    layout->addWidget(split, 1);

    m_timer = new QTimer(this);
    m_timer->setInterval(1000);
    connect(m_timer, &QTimer::timeout, this, &StoreBrowser::refresh);
}

StoreBrowser::~StoreBrowser() = default;

bool StoreBrowser::open(const QString& path, QString* error) {
    closeStore();
    auto store = sdrpn::guarded([&] {
        sdrpn::data::LabelStore::Options options;
        options.access = sdrpn::data::LabelStore::Access::ReadOnly;
        options.create = false;
        auto s = sdrpn::data::LabelStore::open(path.toStdString(), options);
        s.count();  // a file that opens but holds no store fails here, not later
        return std::make_shared<sdrpn::data::LabelStore>(std::move(s));
    });
    if (!store) {
        const QString message = QString::fromStdString(store.message());
        m_title->setText(message);
        if (error) *error = message;
        emit errorReported(message);
        return false;
    }
    m_store = std::make_unique<sdrpn::data::LabelStore>(std::move(*store.value()));
    m_path = path;
    m_title->setText(QFileInfo(path).fileName());
    m_title->setToolTip(path);
    refresh();
    if (m_timer->interval() > 0) m_timer->start();
    emit storeOpened(path);
    return true;
}

bool StoreBrowser::watch(const QString& path, QString* error) {
    if (QFileInfo::exists(path)) return open(path, error);
    closeStore();
    m_pendingPath = path;
    m_title->setText(tr("%1 (waiting for the labeling job to create it)").arg(QFileInfo(path).fileName()));
    if (m_timer->interval() > 0) m_timer->start();
    return true;
}

void StoreBrowser::closeStore() {
    m_timer->stop();
    m_store.reset();
    m_path.clear();
    m_pendingPath.clear();
    m_table->setRowCount(0);
    m_overlay->clear();
    m_preview->clear();
    m_caption->clear();
    m_title->setText(tr("No label store open (File › Open Label Store…)"));
}

void StoreBrowser::setRefreshIntervalMs(int ms) {
    m_timer->setInterval(std::max(0, ms));
    if (ms <= 0) {
        m_timer->stop();
    } else if (m_store || !m_pendingPath.isEmpty()) {
        m_timer->start();
    }
}

int StoreBrowser::rowCount() const {
    return m_table->rowCount();
}

QString StoreBrowser::selectedKey() const {
    const int row = m_table->currentRow();
    const QTableWidgetItem* item = row >= 0 ? m_table->item(row, KeyColumn) : nullptr;
    return item ? item->text() : QString();
}

QString StoreBrowser::previewCaption() const {
    return m_caption->text();
}

void StoreBrowser::setImageRoot(const QString& folder) {
    m_imageRoot = folder;
    showSample(m_table->currentRow());
}

void StoreBrowser::chooseImageRoot() {
    const QString start = m_imageRoot.isEmpty() ? QFileInfo(m_path).absolutePath() : m_imageRoot;
    const QString folder = QFileDialog::getExistingDirectory(this, tr("Image root"), start);
    if (!folder.isEmpty()) setImageRoot(folder);
}

void StoreBrowser::setLabelSettings(const sdrpn::LabelSettings& settings) {
    m_settings = settings;
    for (int row = 0; row < m_table->rowCount(); ++row) fillRowLabels(row);
    showSample(m_table->currentRow());
}

void StoreBrowser::refresh() {
    if (!m_store && !m_pendingPath.isEmpty()) {
        if (!QFileInfo::exists(m_pendingPath)) return;
        const QString pending = m_pendingPath;
        // A file the job has only just created may not hold the schema yet: try again next tick.
        QString error;
        if (!open(pending, &error)) {
            m_pendingPath = pending;
            if (m_timer->interval() > 0) m_timer->start();
        }
        return;
    }
    if (!m_store) return;
    auto page = sdrpn::guarded([&] { return m_store->list(m_table->rowCount(), kPageRows); });
    if (!page) {
        emit errorReported(QString::fromStdString(page.message()));
        return;
    }
    if (page.value().empty()) return;
    // Appending rows leaves the current row and the selection where they are.
    for (const sdrpn::data::SampleSummary& s : page.value()) {
        const int row = m_table->rowCount();
        m_table->insertRow(row);
        QTableWidgetItem* key = cell(QString::fromStdString(s.key));
        key->setData(kDatasetRole, QString::fromStdString(s.dataset));
        key->setData(kImageRole, QString::fromStdString(s.image));
        m_table->setItem(row, KeyColumn, key);
        m_table->setItem(row, QuestionColumn, cell(QString::fromStdString(s.question)));
        m_table->setItem(row, AnswerColumn, cell(QString::fromStdString(s.answer)));
        fillRowLabels(row);
    }
    emit rowsAdded(m_table->rowCount());
}

void StoreBrowser::fillRowLabels(int row) {
    const QTableWidgetItem* key = m_table->item(row, KeyColumn);
    if (!key || !m_store) return;
    const std::string dataset = key->data(kDatasetRole).toString().toStdString();
    auto labels = sdrpn::guarded([&] {
        const std::optional<sdrpn::data::StoredSample> sample =
            m_store->get(dataset, key->text().toStdString());
        if (!sample) throw sdrpn::Error("the sample is no longer in the store");
        return sdrpn::data::labelsOf(*sample, m_settings);
    });
    if (!labels) {
        m_table->setItem(row, StatusColumn, cell(QString::fromStdString(labels.message())));
        m_table->setItem(row, ForegroundColumn, cell(QString()));
        m_table->setItem(row, BackgroundColumn, cell(QString()));
        return;
    }
    const sdrpn::Labels& l = labels.value();
    m_table->setItem(row, StatusColumn, cell(QString::fromLatin1(sdrpn::labelStatusName(l.status))));
    m_table->setItem(row, ForegroundColumn, cell(QString::number(l.ok() ? l.foreground : 0)));
    m_table->setItem(row, BackgroundColumn, cell(QString::number(l.background)));
}

void StoreBrowser::selectRow(int row) {
    if (row < 0 || row >= m_table->rowCount()) return;
    m_table->setCurrentCell(row, KeyColumn);
    m_table->selectRow(row);
}

void StoreBrowser::showSample(int row) {
    m_overlay->clear();
    const QTableWidgetItem* key = row >= 0 ? m_table->item(row, KeyColumn) : nullptr;
    if (!key || !m_store) {
        m_preview->clear();
        m_caption->clear();
        return;
    }
    const std::string dataset = key->data(kDatasetRole).toString().toStdString();
    auto sample = sdrpn::guarded([&] { return m_store->get(dataset, key->text().toStdString()); });
    if (!sample || !sample.value()) {
        m_preview->clear();
        m_caption->setText(sample ? tr("The sample is no longer in the store.")
                                  : QString::fromStdString(sample.message()));
        return;
    }
    const sdrpn::data::StoredSample& s = *sample.value();
    const sdrpn::models::GridGeometry& g = s.geometry;

    // The image under the root (the store's folder by default); a grey stand-in of the source size else.
    const QString imageName = QString::fromStdString(s.image);
    const QString root = m_imageRoot.isEmpty() ? QFileInfo(m_path).absolutePath() : m_imageRoot;
    const QString imagePath = QFileInfo(imageName).isAbsolute() ? imageName : QDir(root).filePath(imageName);
    QImageReader reader(imagePath);
    reader.setAutoTransform(true);
    QImage image = QFileInfo::exists(imagePath) ? reader.read() : QImage();
    const bool found = !image.isNull();
    if (found && (image.width() != g.sourceWidth || image.height() != g.sourceHeight) && g.sourceWidth > 0)
        image = image.scaled(g.sourceWidth, g.sourceHeight);
    if (!found) {
        image = QImage(std::max(1, g.sourceWidth), std::max(1, g.sourceHeight), QImage::Format_RGB32);
        image.fill(QColor(70, 70, 70));
    }
    m_preview->setImage(image);

    QStringList caption;
    caption << tr("%1 · %2").arg(QString::fromStdString(s.dataset), key->text());
    if (!found) caption << tr("image not found: %1").arg(imagePath);
    auto labels = sdrpn::guarded([&] { return sdrpn::data::labelsOf(s, m_settings); });
    if (!labels) {
        caption << QString::fromStdString(labels.message());
    } else {
        const sdrpn::Labels& l = labels.value();
        std::vector<std::uint8_t> sinks;
        try {
            sinks = sdrpn::sinkCells(sdrpn::sinkMap(s.toAttentionMaps(), m_settings),
                                     m_settings.sinkThreshold, l.rows * l.cols);
        } catch (const std::exception&) {
            // No sink map stored for these settings: no sink marks.
        }
        std::vector<std::uint8_t> candidates;
        if (!l.ok() && l.peak > 0 && l.grounding.size() == l.values.size()) {
            candidates.assign(l.values.size(), 0);
            const double cut = m_settings.foregroundRatio * l.peak;
            for (std::size_t i = 0; i < candidates.size(); ++i) candidates[i] = l.grounding[i] > cut ? 1 : 0;
        }
        const bool drawBox =
            l.ok() || l.status == sdrpn::LabelStatus::BoxTooLarge || l.status == sdrpn::LabelStatus::WeakPeak;
        m_overlay->setLabels(l.rows, l.cols, l.values, std::move(sinks), cellRectsOnSource(g, l.rows, l.cols),
                             drawBox ? toQRect(g.gridBoxToSource(l.box)) : QRectF(), std::move(candidates));
        caption << tr("%1: %2 foreground, %3 background cells")
                       .arg(QString::fromLatin1(sdrpn::labelStatusName(l.status)))
                       .arg(m_overlay->count(LabelOverlay::kForeground))
                       .arg(m_overlay->count(LabelOverlay::kBackground));
    }
    m_caption->setText(caption.join(QStringLiteral(" — ")));
    m_preview->update();
}
