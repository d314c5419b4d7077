#include "widgets/model_card_panel.h"

#include <QComboBox>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QSignalBlocker>
#include <QFormLayout>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QStackedWidget>
#include <QVBoxLayout>

namespace {

QLabel* makeWrappingLabel(const QString& text = {}) {
    auto* label = new QLabel(text);
    label->setWordWrap(true);
    label->setTextInteractionFlags(Qt::TextSelectableByMouse);
    return label;
}

QString baseName(const QString& folder) {
    const QString name = QFileInfo(folder).fileName();
    return name.isEmpty() ? folder : name;
}

}  // namespace

ModelCardPanel::ModelCardPanel(QWidget* parent) : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    m_stack = new QStackedWidget(this);
    m_emptyPage = buildEmptyPage();
    m_loadingPage = buildLoadingPage();
    m_cardPage = buildCardPage();
    m_errorPage = buildErrorPage();
    for (QWidget* page : {m_emptyPage, m_loadingPage, m_cardPage, m_errorPage}) m_stack->addWidget(page);
    layout->addWidget(m_stack);

    m_device = new QComboBox(this);
    m_device->setObjectName(QStringLiteral("loadDevice"));
    m_device->addItem(QStringLiteral("cpu"));
    m_device->setToolTip(tr("Where the next model loads"));
    m_dtype = new QComboBox(this);
    m_dtype->setObjectName(QStringLiteral("loadDtype"));
    m_dtype->addItems({QStringLiteral("fp32"), QStringLiteral("bf16")});
    m_dtype->setToolTip(tr("The compute dtype of the next load (weights are converted)"));
    auto* options = new QHBoxLayout;
    options->setContentsMargins(6, 0, 6, 6);
    options->addWidget(new QLabel(tr("Next load:"), this));
    options->addWidget(m_device);
    options->addWidget(m_dtype);
    options->addStretch();
    layout->addLayout(options);
    auto changed = [this] { emit loadOptionsChanged(device(), dtype()); };
    connect(m_device, &QComboBox::currentTextChanged, this, changed);
    connect(m_dtype, &QComboBox::currentTextChanged, this, changed);
    showEmpty();
}

void ModelCardPanel::setDeviceChoices(const QStringList& devices) {
    const QSignalBlocker block(m_device);
    const QString current = m_device->currentText();
    m_device->clear();
    m_device->addItems(devices);
    const int index = m_device->findText(current);
    if (index >= 0) m_device->setCurrentIndex(index);
}

void ModelCardPanel::setLoadChoice(const QString& device, const QString& dtype) {
    const QSignalBlocker blockDevice(m_device);
    const QSignalBlocker blockDtype(m_dtype);
    for (auto [box, value] : {std::pair{m_device, device}, std::pair{m_dtype, dtype}}) {
        if (box->findText(value) < 0) box->addItem(value);
        box->setCurrentIndex(box->findText(value));
    }
}

QString ModelCardPanel::device() const {
    return m_device->currentText();
}

QString ModelCardPanel::dtype() const {
    return m_dtype->currentText();
}

QWidget* ModelCardPanel::buildEmptyPage() {
    auto* page = new QWidget;
    auto* layout = new QVBoxLayout(page);
    auto* text =
        makeWrappingLabel(tr("No model loaded. Open a model folder (a Hugging Face folder with "
                             "config.json and safetensors weights)."));
    text->setForegroundRole(QPalette::PlaceholderText);
    auto* open = new QPushButton(tr("Open Model…"));
    connect(open, &QPushButton::clicked, this, &ModelCardPanel::openModelRequested);
    layout->addWidget(text);
    layout->addWidget(open, 0, Qt::AlignLeft);
    layout->addStretch();
    return page;
}

QWidget* ModelCardPanel::buildLoadingPage() {
    auto* page = new QWidget;
    auto* layout = new QVBoxLayout(page);
    m_loadingFolder = makeWrappingLabel();
    QFont bold = m_loadingFolder->font();
    bold.setBold(true);
    m_loadingFolder->setFont(bold);
    m_loadingMessage = makeWrappingLabel();
    m_loadingProgress = new QProgressBar;
    m_loadingProgress->setTextVisible(false);
    m_loadingProgress->setMaximumHeight(8);
    layout->addWidget(m_loadingFolder);
    layout->addWidget(m_loadingProgress);
    layout->addWidget(m_loadingMessage);
    layout->addStretch();
    return page;
}

QWidget* ModelCardPanel::buildCardPage() {
    auto* page = new QWidget;
    auto* layout = new QVBoxLayout(page);
    layout->setSpacing(6);
    m_title = makeWrappingLabel();
    QFont titleFont = m_title->font();
    titleFont.setBold(true);
    titleFont.setPointSizeF(titleFont.pointSizeF() * 1.2);
    m_title->setFont(titleFont);
    m_subtitle = makeWrappingLabel();
    m_subtitle->setForegroundRole(QPalette::PlaceholderText);
    m_warning = makeWrappingLabel();
    m_warning->setStyleSheet(
        "QLabel { background: #fff4ce; color: #5c4400; border: 1px solid #e0c060; border-radius: 4px;"
        " padding: 6px; font-weight: bold; }");
    m_warning->hide();
    m_form = new QFormLayout;
    m_form->setLabelAlignment(Qt::AlignLeft);
    m_form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
    m_form->setHorizontalSpacing(16);
    m_form->setVerticalSpacing(3);
    m_folder = new QLabel;
    m_folder->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_folder->setForegroundRole(QPalette::PlaceholderText);
    m_folder->setMinimumWidth(10);
    layout->addWidget(m_title);
    layout->addWidget(m_subtitle);
    layout->addWidget(m_warning);
    layout->addLayout(m_form);
    layout->addWidget(m_folder);
    layout->addStretch();
    return page;
}

QWidget* ModelCardPanel::buildErrorPage() {
    auto* page = new QWidget;
    auto* layout = new QVBoxLayout(page);
    m_errorFolder = makeWrappingLabel();
    QFont bold = m_errorFolder->font();
    bold.setBold(true);
    m_errorFolder->setFont(bold);
    m_errorMessage = makeWrappingLabel();
    m_errorMessage->setStyleSheet("QLabel { color: #a4262c; }");
    auto* open = new QPushButton(tr("Open Another Model…"));
    connect(open, &QPushButton::clicked, this, &ModelCardPanel::openModelRequested);
    layout->addWidget(m_errorFolder);
    layout->addWidget(m_errorMessage);
    layout->addWidget(open, 0, Qt::AlignLeft);
    layout->addStretch();
    return page;
}

void ModelCardPanel::showEmpty() {
    m_card = ModelCardInfo{};
    m_stack->setCurrentWidget(m_emptyPage);
}

void ModelCardPanel::showLoading(const QString& folder, double fraction, const QString& message) {
    m_loadingFolder->setText(tr("Loading %1").arg(baseName(folder)));
    m_loadingFolder->setToolTip(folder);
    m_loadingMessage->setText(message);
    if (fraction < 0) {
        m_loadingProgress->setRange(0, 0);
    } else {
        m_loadingProgress->setRange(0, 1000);
        m_loadingProgress->setValue(int(fraction * 1000));
    }
    m_stack->setCurrentWidget(m_loadingPage);
}

void ModelCardPanel::clearRows() {
    while (m_form->rowCount() > 0) m_form->removeRow(0);
}

void ModelCardPanel::showCard(const ModelCardInfo& card) {
    m_card = card;
    m_title->setText(card.title);
    m_subtitle->setText(card.subtitle);
    m_subtitle->setVisible(!card.subtitle.isEmpty());
    m_warning->setText(QStringLiteral("⚠ ") + card.warning);
    m_warning->setVisible(!card.warning.isEmpty());
    clearRows();
    for (const auto& [label, value] : card.rows) {
        auto* name = new QLabel(label);
        name->setForegroundRole(QPalette::PlaceholderText);
        auto* field = new QLabel(value);
        field->setTextInteractionFlags(Qt::TextSelectableByMouse);
        m_form->addRow(name, field);
    }
    m_folder->setText(card.folder);
    m_folder->setToolTip(card.folder);
    m_folder->setWordWrap(true);
    m_stack->setCurrentWidget(m_cardPage);
}

void ModelCardPanel::showError(const QString& folder, const QString& message) {
    m_card = ModelCardInfo{};
    m_errorFolder->setText(tr("Could not load %1").arg(baseName(folder)));
    m_errorFolder->setToolTip(folder);
    m_errorMessage->setText(message);
    m_stack->setCurrentWidget(m_errorPage);
}

QString ModelCardPanel::displayedText() const {
    QWidget* page = m_stack->currentWidget();
    QStringList lines;
    if (page == m_cardPage) {
        lines << m_card.title << m_card.subtitle;
        if (!m_card.warning.isEmpty()) lines << m_card.warning;
        for (const auto& [label, value] : m_card.rows) lines << label + ": " + value;
        lines << m_card.folder;
    } else if (page == m_loadingPage) {
        lines << m_loadingFolder->text() << m_loadingMessage->text();
    } else if (page == m_errorPage) {
        lines << m_errorFolder->text() << m_errorMessage->text();
    } else {
        lines << tr("No model loaded");
    }
    return lines.join('\n');
}

bool ModelCardPanel::isWarningVisible() const {
    return m_stack->currentWidget() == m_cardPage && !m_card.warning.isEmpty();
}
