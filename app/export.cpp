#include "app/export.h"

#include <cstring>
#include <exception>
#include <set>

#include <QBuffer>
#include <QFileInfo>
#include <QFontMetrics>
#include <QJsonArray>
#include <QJsonDocument>
#include <QPainter>
#include <QSaveFile>

#include "core/io/safetensors.h"

namespace {

sdrpn::Status fail(const QString& path, const QString& why) {
    return sdrpn::Status::failed((path + QStringLiteral(": ") + why).toStdString());
}

// The reason a file cannot be created at `path`, or empty when it looks writable.
QString unwritableReason(const QString& path) {
    if (path.isEmpty()) return QObject::tr("no file name given");
    const QFileInfo info(path);
    if (info.isDir()) return QObject::tr("is a folder");
    const QFileInfo dir(info.absolutePath());
    if (!dir.exists()) return QObject::tr("the folder %1 does not exist").arg(dir.absoluteFilePath());
    if (!dir.isDir()) return QObject::tr("%1 is not a folder").arg(dir.absoluteFilePath());
    if (!dir.isWritable()) return QObject::tr("the folder %1 is not writable").arg(dir.absoluteFilePath());
    return {};
}

QString formatValue(double v) {
    return QString::number(v, 'g', 3);
}

}  // namespace

sdrpn::Status writeFileAtomically(const QString& path, const QByteArray& bytes) {
    const QString why = unwritableReason(path);
    if (!why.isEmpty()) return fail(path, QObject::tr("cannot write: %1").arg(why));
    QSaveFile file(path);  // a temporary file beside the target, renamed on commit()
    if (!file.open(QIODevice::WriteOnly))
        return fail(path, QObject::tr("cannot write: %1").arg(file.errorString()));
    if (file.write(bytes) != bytes.size()) {
        const QString error = file.errorString();
        file.cancelWriting();
        return fail(path, QObject::tr("write failed: %1").arg(error));
    }
    if (!file.commit()) return fail(path, QObject::tr("write failed: %1").arg(file.errorString()));
    return sdrpn::Status::success();
}

// ---- PNG figure ----------------------------------------------------------------------------------------

QString viewCaption(const QStringList& parts) {
    QStringList kept;
    for (const QString& p : parts)
        if (!p.trimmed().isEmpty()) kept << p.trimmed();
    return kept.join(QStringLiteral(" · "));
}

QImage renderFigure(const FigureSpec& spec, FigureLayout* layout) {
    if (spec.image.isNull()) return {};
    const QSize imageSize = spec.image.size();
    // Sizes follow the image so that a figure of a large photo stays legible.
    const int unit = std::max(8, std::min(imageSize.width(), imageSize.height()) / 40);
    const int margin = unit;
    QFont font;
    font.setPixelSize(std::max(11, unit + 4));
    const QFontMetrics metrics(font);

    FigureLayout l;
    l.image = QRect(QPoint(margin, margin), imageSize);
    int width = l.image.right() + 1 + margin;
    QRect labels;
    if (spec.colorBar) {
        const int barWidth = std::max(12, unit * 2);
        l.colorBar = QRect(l.image.right() + 1 + margin, l.image.top(), barWidth, imageSize.height());
        const int textWidth = std::max({metrics.horizontalAdvance(formatValue(spec.maxValue)),
                                        metrics.horizontalAdvance(formatValue(spec.minValue)),
                                        metrics.horizontalAdvance(spec.valueLabel)});
        labels =
            QRect(l.colorBar.right() + 1 + unit / 2, l.image.top(), textWidth + unit, imageSize.height());
        width = labels.right() + 1 + margin;
    }
    int height = l.image.bottom() + 1 + margin;
    if (!spec.caption.isEmpty()) {
        const QRect textRect = metrics.boundingRect(QRect(0, 0, width - 2 * margin, 100000),
                                                    Qt::TextWordWrap | Qt::AlignLeft, spec.caption);
        l.caption = QRect(margin, height, width - 2 * margin, textRect.height());
        height = l.caption.bottom() + 1 + margin;
    }

    QImage figure(width, height, QImage::Format_RGB32);
    figure.fill(Qt::white);
    QPainter p(&figure);
    p.setRenderHint(QPainter::SmoothPixmapTransform, true);
    p.drawImage(l.image, spec.image);
    if (!spec.overlay.isNull()) p.drawImage(l.image, spec.overlay);
    p.setFont(font);
    p.setPen(QColor(30, 30, 30));
    if (spec.colorBar) {
        // Top is the maximum, as in matplotlib's vertical colour bars.
        const int h = l.colorBar.height();
        for (int y = 0; y < h; ++y) {
            const double t = h > 1 ? 1.0 - double(y) / double(h - 1) : 1.0;
            p.setPen(QColor(colorMapColor(spec.colorMap, t)));
            p.drawLine(l.colorBar.left(), l.colorBar.top() + y, l.colorBar.right(), l.colorBar.top() + y);
        }
        p.setPen(QColor(30, 30, 30));
        p.setBrush(Qt::NoBrush);
        p.drawRect(l.colorBar.adjusted(0, 0, -1, -1));
        p.drawText(labels, Qt::AlignLeft | Qt::AlignTop, formatValue(spec.maxValue));
        p.drawText(labels, Qt::AlignLeft | Qt::AlignBottom, formatValue(spec.minValue));
        if (!spec.valueLabel.isEmpty()) p.drawText(labels, Qt::AlignLeft | Qt::AlignVCenter, spec.valueLabel);
    }
    if (!l.caption.isEmpty()) p.drawText(l.caption, Qt::TextWordWrap | Qt::AlignLeft, spec.caption);
    p.end();
    if (layout) *layout = l;
    return figure;
}

sdrpn::Status exportFigurePng(const QString& path, const FigureSpec& spec) {
    const QImage figure = renderFigure(spec);
    if (figure.isNull()) return fail(path, QObject::tr("there is no image to export"));
    QByteArray bytes;
    QBuffer buffer(&bytes);
    buffer.open(QIODevice::WriteOnly);
    if (!figure.save(&buffer, "PNG")) return fail(path, QObject::tr("PNG encoding failed"));
    return writeFileAtomically(path, bytes);
}

// ---- maps ----------------------------------------------------------------------------------------------

namespace {

QString checkMaps(const std::vector<ExportMap>& maps) {
    if (maps.empty()) return QObject::tr("there are no maps to export");
    std::set<QString> names;
    for (const ExportMap& m : maps) {
        if (m.rows <= 0 || m.cols <= 0 || m.values.size() != std::size_t(m.rows) * std::size_t(m.cols))
            return QObject::tr("map '%1' holds %2 values, not %3 × %4")
                .arg(m.name)
                .arg(m.values.size())
                .arg(m.rows)
                .arg(m.cols);
        if (m.name.isEmpty()) return QObject::tr("a map has no name");
        if (!names.insert(m.name).second) return QObject::tr("two maps are named '%1'").arg(m.name);
    }
    return {};
}

}  // namespace

sdrpn::Status exportMapsSafetensors(const QString& path, const std::vector<ExportMap>& maps,
                                    const std::map<std::string, std::string>& metadata) {
    const QString bad = checkMaps(maps);
    if (!bad.isEmpty()) return fail(path, bad);
    const QString why = unwritableReason(path);
    if (!why.isEmpty()) return fail(path, QObject::tr("cannot write: %1").arg(why));
    std::vector<sdrpn::io::TensorRecord> records;
    records.reserve(maps.size());
    for (const ExportMap& m : maps) {
        sdrpn::io::TensorRecord r;
        r.name = m.name.toStdString();
        r.dtype = sdrpn::io::DType::F32;
        r.shape = {m.rows, m.cols};
        r.data = m.values.data();
        records.push_back(std::move(r));
    }
    try {
        sdrpn::io::writeSafetensors(path.toStdString(), records, metadata);  // atomic; names the path
    } catch (...) {
        return sdrpn::statusFromCurrentException();
    }
    return sdrpn::Status::success();
}

QByteArray npyHeader(const std::vector<std::int64_t>& shape) {
    // NPY format 1.0: "\x93NUMPY", version 1.0, little-endian uint16 header length, then the dict as a
    // Python literal, padded with spaces and ended with '\n' so that the data starts 64-byte aligned.
    QByteArray dims;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i) dims += ", ";
        dims += QByteArray::number(qlonglong(shape[i]));
    }
    if (shape.size() == 1) dims += ",";
    QByteArray dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
    const int preamble = 10;  // magic (6) + version (2) + length (2)
    int total = preamble + dict.size() + 1;
    const int padded = (total + 63) / 64 * 64;
    dict += QByteArray(padded - total, ' ');
    dict += '\n';
    QByteArray out("\x93NUMPY\x01\x00", 8);
    const auto length = quint16(dict.size());
    out += char(length & 0xff);
    out += char(length >> 8);
    out += dict;
    return out;
}

sdrpn::Status writeNpy(const QString& path, const std::vector<std::int64_t>& shape,
                       const std::vector<float>& values) {
    std::int64_t count = 1;
    for (std::int64_t d : shape) {
        if (d < 0) return fail(path, QObject::tr("negative dimension in the array shape"));
        count *= d;
    }
    if (std::size_t(count) != values.size())
        return fail(
            path,
            QObject::tr("%1 values do not fill the array shape (%2 expected)").arg(values.size()).arg(count));
    QByteArray bytes = npyHeader(shape);
    const int header = bytes.size();
    bytes.resize(header + qsizetype(values.size() * sizeof(float)));
    // '<f4': little-endian IEEE float, which is the host layout on every platform the studio builds for.
    static_assert(sizeof(float) == 4, "float32 expected");
    if (!values.empty()) std::memcpy(bytes.data() + header, values.data(), values.size() * sizeof(float));
    return writeFileAtomically(path, bytes);
}

sdrpn::Status exportMapsNpy(const QString& path, const std::vector<ExportMap>& maps) {
    const QString bad = checkMaps(maps);
    if (!bad.isEmpty()) return fail(path, bad);
    if (maps.size() == 1) return writeNpy(path, {maps[0].rows, maps[0].cols}, maps[0].values);
    std::vector<float> stacked;
    stacked.reserve(maps.size() * maps[0].values.size());
    for (const ExportMap& m : maps) {
        if (m.rows != maps[0].rows || m.cols != maps[0].cols)
            return fail(path, QObject::tr("maps on different grids (%1 × %2, %3 × %4) cannot share one array")
                                  .arg(maps[0].rows)
                                  .arg(maps[0].cols)
                                  .arg(m.rows)
                                  .arg(m.cols));
        stacked.insert(stacked.end(), m.values.begin(), m.values.end());
    }
    return writeNpy(path, {std::int64_t(maps.size()), maps[0].rows, maps[0].cols}, stacked);
}

// ---- boxes ---------------------------------------------------------------------------------------------

QJsonObject cocoJson(const std::vector<CocoImage>& images) {
    QJsonArray imageArray, annotations, categories;
    QStringList categoryNames;
    int annotationId = 1;
    for (std::size_t i = 0; i < images.size(); ++i) {
        const CocoImage& img = images[i];
        const int imageId = int(i) + 1;
        imageArray.append(QJsonObject{{QStringLiteral("id"), imageId},
                                      {QStringLiteral("file_name"), img.fileName},
                                      {QStringLiteral("width"), img.width},
                                      {QStringLiteral("height"), img.height}});
        for (const CocoBox& b : img.boxes) {
            int category = int(categoryNames.indexOf(b.category)) + 1;
            if (category == 0) {
                categoryNames << b.category;
                category = int(categoryNames.size());
                categories.append(QJsonObject{{QStringLiteral("id"), category},
                                              {QStringLiteral("name"), b.category},
                                              {QStringLiteral("supercategory"), QStringLiteral("sdrpn")}});
            }
            const QRectF r = b.box.normalized();
            QJsonObject a{{QStringLiteral("id"), annotationId++},
                          {QStringLiteral("image_id"), imageId},
                          {QStringLiteral("category_id"), category},
                          {QStringLiteral("bbox"), QJsonArray{r.x(), r.y(), r.width(), r.height()}},
                          {QStringLiteral("area"), r.width() * r.height()},
                          {QStringLiteral("iscrowd"), 0}};
            if (b.score >= 0) a.insert(QStringLiteral("score"), b.score);
            annotations.append(a);
        }
    }
    return QJsonObject{{QStringLiteral("info"),
                        QJsonObject{{QStringLiteral("description"), QStringLiteral("SD-RPN Studio")}}},
                       {QStringLiteral("images"), imageArray},
                       {QStringLiteral("annotations"), annotations},
                       {QStringLiteral("categories"), categories}};
}

sdrpn::Status exportCocoJson(const QString& path, const std::vector<CocoImage>& images) {
    return writeFileAtomically(path, QJsonDocument(cocoJson(images)).toJson(QJsonDocument::Indented));
}
