#include "app/image_io.h"

#include <cstring>

#include <QFileInfo>
#include <QImageReader>

sdrpn::Result<QImage> readImageFile(const QString& path, sdrpn::JobContext& ctx) {
    return sdrpn::guarded([&]() -> QImage {
        ctx.report(0, 0, "reading " + QFileInfo(path).fileName().toStdString());
        const QFileInfo info(path);
        const std::string name = path.toStdString();
        if (!info.exists()) throw sdrpn::Error(name + ": no such file");
        if (info.isDir()) throw sdrpn::Error(name + ": is a folder, not an image");
        if (info.size() == 0) throw sdrpn::Error(name + ": empty file");
        QImageReader reader(path);
        reader.setAutoTransform(true);
        const QSize size = reader.size();
        if (size.isValid() && qint64(size.width()) * size.height() > sdrpn::io::kMaxImagePixels) {
            throw sdrpn::Error(name + ": image too large (" + std::to_string(size.width()) + " x " +
                               std::to_string(size.height()) + " pixels)");
        }
        ctx.throwIfCancelled();
        QImage image = reader.read();
        if (image.isNull()) {
            throw sdrpn::Error(name + ": not a readable image (" + reader.errorString().toStdString() + ")");
        }
        ctx.throwIfCancelled();
        ctx.report(1, 1, "decoded");
        return image;
    });
}

sdrpn::io::ImageRgb8 toImageRgb8(const QImage& image) {
    sdrpn::io::ImageRgb8 out;
    if (image.isNull()) return out;
    const QImage rgb = image.convertToFormat(QImage::Format_RGB888);
    out.width = rgb.width();
    out.height = rgb.height();
    out.pixels.resize(std::size_t(out.width) * out.height * 3);
    for (int y = 0; y < out.height; ++y)
        std::memcpy(out.at(0, y), rgb.constScanLine(y), std::size_t(out.width) * 3);
    return out;
}

QImage toQImage(const sdrpn::io::ImageRgb8& image) {
    if (image.empty()) return {};
    QImage out(image.width, image.height, QImage::Format_RGB888);
    for (int y = 0; y < image.height; ++y)
        std::memcpy(out.scanLine(y), image.at(0, y), std::size_t(image.width) * 3);
    return out;
}
