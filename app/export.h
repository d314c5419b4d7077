// Exporting what the studio shows: a PNG figure (image + heat-map overlay, colour bar, caption), attention
// maps as safetensors or NPY, and boxes as COCO JSON.
//
//   FigureSpec fig;
//   fig.image = view->image();  fig.overlay = overlayPicture;          // overlay scaled onto the image
//   fig.colorMap = ColorMap::Viridis;  fig.minValue = lo;  fig.maxValue = hi;
//   fig.caption = viewCaption({"llava-1.5-7b", "layer 14", "heads 24, 13, 26", "τs 0.001"});
//   sdrpn::Status s = exportFigurePng("/tmp/fig.png", fig);
//   if (!s.ok()) showError(s.message);                                  // names the path and the reason
//
//   exportMapsNpy("/tmp/maps.npy", {{"layer_14", 24, 24, values}});     // float32 [24, 24]
//   exportMapsSafetensors("/tmp/maps.safetensors", maps);               // one tensor per map
//   exportCocoJson("/tmp/boxes.json", {{"photo.jpg", 640, 480, {{"roi", QRectF(10, 20, 100, 50)}}}});
//
// Every file is written atomically (a temporary file in the target folder, then renamed over the target),
// so a failed export never leaves a half-written file. Errors are values: nothing here throws.
// Thread affinity: none (QImage painting is fine off the GUI thread).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <QByteArray>
#include <QImage>
#include <QJsonObject>
#include <QRect>
#include <QRectF>
#include <QString>
#include <QStringList>

#include "core/result.h"
#include "widgets/heatmap_overlay.h"

// ---- PNG figure ----------------------------------------------------------------------------------------

struct FigureSpec {
    QImage image;    // the source image
    QImage overlay;  // drawn over the image, scaled to its size, with its own alpha; null: none
    ColorMap colorMap = ColorMap::Viridis;
    double minValue = 0.0;  // the values at the bottom and the top of the colour bar
    double maxValue = 1.0;
    bool colorBar = true;
    QString valueLabel;  // title of the colour bar ("attention")
    QString caption;     // text under the picture (word-wrapped); empty: no caption band
};

// Where renderFigure placed each part, in figure pixels.
struct FigureLayout {
    QRect image;     // the source image, at its own size
    QRect colorBar;  // the gradient itself (empty without a colour bar)
    QRect caption;   // the caption band (empty without a caption)
};

// The figure: the image with the overlay, the colour bar (with min / max ticks) to its right, the caption
// below, on white. A null image gives a null QImage.
QImage renderFigure(const FigureSpec& spec, FigureLayout* layout = nullptr);
// "model · layer 14 · heads 24, 13, 26 · τs 0.001": the non-empty parts joined.
QString viewCaption(const QStringList& parts);
sdrpn::Status exportFigurePng(const QString& path, const FigureSpec& spec);

// ---- maps ----------------------------------------------------------------------------------------------

struct ExportMap {
    QString name;  // tensor name in safetensors ("layer_14.head_mean")
    int rows = 0;
    int cols = 0;
    std::vector<float> values;  // rows * cols, row-major
};

// One F32 tensor [rows, cols] per map, through the core's safetensors writer. Names must be unique and
// non-empty; every map must hold rows * cols values.
sdrpn::Status exportMapsSafetensors(const QString& path, const std::vector<ExportMap>& maps,
                                    const std::map<std::string, std::string>& metadata = {});

// The NPY 1.0 header for a little-endian float32 C-order array of `shape`: magic, version, header length,
// the dict, padded with spaces and a newline so that data starts at a multiple of 64 bytes.
QByteArray npyHeader(const std::vector<std::int64_t>& shape);
// A float32 array of `shape` (values.size() must equal the product) as an .npy file.
sdrpn::Status writeNpy(const QString& path, const std::vector<std::int64_t>& shape,
                       const std::vector<float>& values);
// One map: [rows, cols]; several maps on the same grid: [maps, rows, cols] in the given order.
sdrpn::Status exportMapsNpy(const QString& path, const std::vector<ExportMap>& maps);

// ---- boxes ---------------------------------------------------------------------------------------------

struct CocoBox {
    QString category;     // e.g. "roi", "foreground"
    QRectF box;           // source-image pixels
    double score = -1.0;  // written when >= 0
};

struct CocoImage {
    QString fileName;
    int width = 0;
    int height = 0;
    std::vector<CocoBox> boxes;
};

// COCO detection JSON: "images" (id, file_name, width, height), "annotations" (id, image_id, category_id,
// bbox [x, y, w, h] in source pixels, area, iscrowd 0, score when given) and "categories" (id from 1, in
// order of first use, name, supercategory "sdrpn").
QJsonObject cocoJson(const std::vector<CocoImage>& images);
sdrpn::Status exportCocoJson(const QString& path, const std::vector<CocoImage>& images);

// Writes `bytes` atomically to `path`; the message names the path and why it failed.
sdrpn::Status writeFileAtomically(const QString& path, const QByteArray& bytes);
