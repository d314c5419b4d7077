// Exports: the PNG figure (colour bar, caption, larger than the image), NPY bytes exactly as numpy writes
// them, safetensors read back through the core reader, COCO JSON fields, and clear errors for paths that
// cannot be written.
#include <cstring>
#include <filesystem>
#include <fstream>

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>

#include <gtest/gtest.h>

#include "app/export.h"
#include "core/io/safetensors.h"
#include "tests/gui/gui_test_support.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;

namespace {

QByteArray readAll(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) return {};
    return f.readAll();
}

ExportMap gridMap(const QString& name, int rows, int cols, float offset) {
    ExportMap m{name, rows, cols, {}};
    for (int i = 0; i < rows * cols; ++i) m.values.push_back(offset + 0.25f * float(i));
    return m;
}

QString scratch(const std::string& file) {
    return QString::fromStdString(sdrpn::test::scratchDir("export") + "/" + file);
}

}  // namespace

TEST(ExportNpy, HeaderBytesAreExactlyNumpys) {
    // numpy.save(path, np.zeros((2, 3), '<f4')) writes exactly these 128 bytes before the data: the dict
    // (59 characters) after the 10-byte preamble, then 58 spaces and a newline up to the next multiple of 64.
    const QByteArray h = npyHeader({2, 3});
    const QByteArray dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    ASSERT_EQ(dict.size(), 59);
    QByteArray expected("\x93NUMPY\x01\x00", 8);
    expected += char(118);  // header length 118, little-endian uint16
    expected += char(0);
    expected += dict + QByteArray(58, ' ') + '\n';
    ASSERT_EQ(expected.size(), 128);
    EXPECT_EQ(h, expected);

    // A 1-D shape is a Python one-tuple; a longer dict rounds up to the next multiple of 64.
    EXPECT_TRUE(npyHeader({5}).contains("'shape': (5,), }"));
    const QByteArray big = npyHeader({100000, 100000, 100000, 100000});
    EXPECT_EQ(big.size() % 64, 0);
    EXPECT_EQ(big.back(), '\n');
}

TEST(ExportNpy, DataRoundTrip) {
    const QString path = scratch("maps.npy");
    const std::vector<ExportMap> maps = {gridMap("a", 2, 3, 0.f), gridMap("b", 2, 3, 10.f)};
    ASSERT_TRUE(exportMapsNpy(path, maps).ok());
    const QByteArray bytes = readAll(path);
    const QByteArray header = npyHeader({2, 2, 3});
    ASSERT_EQ(bytes.left(header.size()), header);
    ASSERT_EQ(bytes.size(), header.size() + 12 * 4);
    std::vector<float> back(12);
    std::memcpy(back.data(), bytes.constData() + header.size(), 12 * sizeof(float));
    for (int i = 0; i < 6; ++i) {
        EXPECT_EQ(back[std::size_t(i)], maps[0].values[std::size_t(i)]);
        EXPECT_EQ(back[std::size_t(6 + i)], maps[1].values[std::size_t(i)]);
    }
    // One map: a plain 2-D array.
    ASSERT_TRUE(exportMapsNpy(path, {maps[0]}).ok());
    EXPECT_TRUE(readAll(path).startsWith(npyHeader({2, 3})));
    // Maps on different grids and a wrong value count are refused, naming the path.
    const sdrpn::Status mixed = exportMapsNpy(path, {maps[0], gridMap("c", 3, 3, 0.f)});
    EXPECT_FALSE(mixed.ok());
    EXPECT_NE(mixed.message.find("maps.npy"), std::string::npos);
    EXPECT_FALSE(writeNpy(path, {2, 2}, {1.f, 2.f, 3.f}).ok());
}

TEST(ExportSafetensors, RoundTripThroughTheCoreReader) {
    const QString path = scratch("maps.safetensors");
    const std::vector<ExportMap> maps = {gridMap("layer_14.head_mean", 24, 24, 0.f),
                                         gridMap("layer_2.head_mean", 24, 24, 1.f)};
    ASSERT_TRUE(exportMapsSafetensors(path, maps, {{"model", "tiny"}}).ok());
    auto file = sdrpn::io::SafetensorsFile::open(path.toStdString());
    EXPECT_EQ(file->metadata().at("model"), "tiny");
    for (const ExportMap& m : maps) {
        const sdrpn::io::RawTensor raw = file->raw(m.name.toStdString());
        EXPECT_EQ(raw.info->dtype, sdrpn::io::DType::F32);
        EXPECT_EQ(raw.info->shape, (std::vector<std::int64_t>{24, 24}));
        std::vector<float> back(576);
        std::memcpy(back.data(), raw.data, 576 * sizeof(float));
        EXPECT_EQ(back, m.values);
    }
    EXPECT_FALSE(exportMapsSafetensors(path, {maps[0], maps[0]}).ok());  // duplicate name
}

TEST(ExportCoco, Fields) {
    std::vector<CocoImage> images = {
        {QStringLiteral("photo.jpg"),
         640,
         480,
         {{QStringLiteral("roi"), QRectF(10, 20, 100, 50), 0.9},
          {QStringLiteral("foreground"), QRectF(0, 0, 8, 8)}}},
        {QStringLiteral("b.png"), 336, 336, {{QStringLiteral("roi"), QRectF(30, 40, 12.5, 7.5)}}}};
    const QString path = scratch("boxes.json");
    ASSERT_TRUE(exportCocoJson(path, images).ok());
    const QJsonObject o = QJsonDocument::fromJson(readAll(path)).object();
    const QJsonArray imgs = o.value("images").toArray();
    ASSERT_EQ(imgs.size(), 2);
    EXPECT_EQ(imgs[0].toObject().value("file_name").toString(), "photo.jpg");
    EXPECT_EQ(imgs[0].toObject().value("width").toInt(), 640);
    EXPECT_EQ(imgs[0].toObject().value("height").toInt(), 480);
    EXPECT_EQ(imgs[1].toObject().value("id").toInt(), 2);

    const QJsonArray cats = o.value("categories").toArray();
    ASSERT_EQ(cats.size(), 2);
    EXPECT_EQ(cats[0].toObject().value("name").toString(), "roi");
    EXPECT_EQ(cats[0].toObject().value("id").toInt(), 1);
    EXPECT_EQ(cats[1].toObject().value("name").toString(), "foreground");

    const QJsonArray anns = o.value("annotations").toArray();
    ASSERT_EQ(anns.size(), 3);
    const QJsonObject a0 = anns[0].toObject();
    EXPECT_EQ(a0.value("image_id").toInt(), 1);
    EXPECT_EQ(a0.value("category_id").toInt(), 1);
    EXPECT_EQ(a0.value("bbox").toArray(), (QJsonArray{10, 20, 100, 50}));
    EXPECT_DOUBLE_EQ(a0.value("area").toDouble(), 5000.0);
    EXPECT_EQ(a0.value("iscrowd").toInt(), 0);
    EXPECT_DOUBLE_EQ(a0.value("score").toDouble(), 0.9);
    EXPECT_FALSE(anns[1].toObject().contains("score"));
    const QJsonObject a2 = anns[2].toObject();
    EXPECT_EQ(a2.value("image_id").toInt(), 2);
    EXPECT_EQ(a2.value("category_id").toInt(), 1);  // "roi" again
    EXPECT_EQ(a2.value("bbox").toArray(), (QJsonArray{30, 40, 12.5, 7.5}));
    EXPECT_EQ(a2.value("id").toInt(), 3);
}

TEST(ExportFigure, ColourBarAndCaptionMakeItLargerThanTheImage) {
    FigureSpec spec;
    spec.image = QImage(200, 150, QImage::Format_RGB32);
    spec.image.fill(QColor(128, 128, 128));
    spec.overlay = QImage(24, 24, QImage::Format_ARGB32);
    spec.overlay.fill(QColor(255, 0, 0, 255));
    spec.colorMap = ColorMap::Viridis;
    spec.minValue = 0.0;
    spec.maxValue = 0.02;
    spec.valueLabel = QStringLiteral("attention");
    spec.caption = viewCaption({"tiny-llava-hf", "layer 3", "", "heads 1, 2", "τs 0.001"});
    EXPECT_EQ(spec.caption, QStringLiteral("tiny-llava-hf · layer 3 · heads 1, 2 · τs 0.001"));

    FigureLayout layout;
    const QImage fig = renderFigure(spec, &layout);
    ASSERT_FALSE(fig.isNull());
    EXPECT_GT(fig.width(), spec.image.width());
    EXPECT_GT(fig.height(), spec.image.height());
    ASSERT_FALSE(layout.colorBar.isEmpty());
    ASSERT_FALSE(layout.caption.isEmpty());
    EXPECT_GE(layout.colorBar.left(), layout.image.right());
    EXPECT_GE(layout.caption.top(), layout.image.bottom());
    // The overlay (opaque red here) covers the image; the bar shows the colour map, max at the top.
    EXPECT_EQ(QColor(fig.pixel(layout.image.center())), QColor(255, 0, 0));
    const QPoint top(layout.colorBar.center().x(), layout.colorBar.top() + 2);
    const QPoint bottom(layout.colorBar.center().x(), layout.colorBar.bottom() - 2);
    EXPECT_EQ(fig.pixel(top), colorMapColor(ColorMap::Viridis, 1.0 - 2.0 / (layout.colorBar.height() - 1)));
    EXPECT_NE(fig.pixel(top), fig.pixel(bottom));

    const QString path = scratch("figure.png");
    ASSERT_TRUE(exportFigurePng(path, spec).ok());
    QImage back(path);
    ASSERT_FALSE(back.isNull());
    EXPECT_EQ(back.size(), fig.size());

    spec.colorBar = false;
    spec.caption.clear();
    const QImage plain = renderFigure(spec, &layout);
    EXPECT_EQ(plain.width(), spec.image.width() + 2 * layout.image.left());
    EXPECT_EQ(plain.height(), spec.image.height() + 2 * layout.image.top());
    EXPECT_TRUE(layout.colorBar.isEmpty());
}

TEST(Export, UnwritablePathsGiveClearErrors) {
    const std::string dir = sdrpn::test::scratchDir("ro");
    const QString missing = QString::fromStdString(dir + "/no/such/folder/out.npy");
    const sdrpn::Status s = exportMapsNpy(missing, {gridMap("a", 2, 2, 0.f)});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message.find("out.npy"), std::string::npos) << s.message;
    EXPECT_NE(s.message.find("does not exist"), std::string::npos) << s.message;
    EXPECT_FALSE(QFile::exists(missing));

    const QString folder = QString::fromStdString(dir);
    EXPECT_FALSE(exportCocoJson(folder, {}).ok());  // a folder, not a file

    const sdrpn::Status st =
        exportMapsSafetensors(QString::fromStdString(dir + "/none/x.safetensors"), {gridMap("a", 2, 2, 0.f)});
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message.find("x.safetensors"), std::string::npos) << st.message;

    FigureSpec spec;  // no image
    EXPECT_FALSE(exportFigurePng(QString::fromStdString(dir + "/f.png"), spec).ok());

    // A read-only folder (not for root, who may write anywhere).
    fs::create_directories(dir + "/locked");
    fs::permissions(dir + "/locked", fs::perms::owner_read | fs::perms::owner_exec);
    std::ofstream probe(dir + "/locked/probe");
    const bool rootLike = bool(probe);
    probe.close();
    if (!rootLike) {
        const sdrpn::Status locked = exportCocoJson(QString::fromStdString(dir + "/locked/b.json"), {});
        EXPECT_FALSE(locked.ok());
        EXPECT_NE(locked.message.find("b.json"), std::string::npos) << locked.message;
    }
    fs::permissions(dir + "/locked", fs::perms::owner_all);
}
