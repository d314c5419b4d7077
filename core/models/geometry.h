// Where the image-token grid sits on the source image (mllm_reference.md §6, §10 "Spatial mapping";
// sdrpn.md §4.2). Plain data, no LibTorch: the studio draws heatmaps and boxes with it.
//
//   GridGeometry g = makeGridGeometry(640, 480, ImageFit::Pad);   // LLaVA-1.5: expand2square, 336, 24x24
//   RectF cell = g.cellToSource(row, col);                         // source pixels (empty in the pad band)
//   PixelBox crop = g.gridBoxToSourcePixels({x0, y0, x1, y1});     // the RoI crop SD-RPN takes
//
// Coordinates are continuous: pixel (x, y) covers [x, x+1) × [y, y+1); rectangles and boxes have exclusive
// right/bottom edges. Image token j of a LLaVA prompt is cell (j / gridCols, j % gridCols).
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace sdrpn::models {

// How a source image becomes the square the vision tower sees.
enum class ImageFit {
    Pad,   // original LLaVA-1.5: expand2square with the mean colour, then resize (the whole image is seen)
    Crop,  // llava-hf CLIPImageProcessor: shortest edge to `size`, centre crop (the sides are cut off)
};

// How the crop fit centres its crop: transformers' CLIPImageProcessor (h - size) // 2, or torchvision's
// center_crop int(round((h - size) / 2)) with Python's half-to-even rounding.
enum class CenterCrop { Floor, RoundHalfEven };

const char* imageFitName(ImageFit fit);  // "pad", "crop"
std::optional<ImageFit> parseImageFit(const std::string& name);

struct RectF {
    double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    double width() const { return x1 - x0; }
    double height() const { return y1 - y0; }
    bool empty() const { return !(x1 > x0 && y1 > y0); }
};

struct PixelBox {
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    int width() const { return x1 - x0; }
    int height() const { return y1 - y0; }
    bool empty() const { return x1 <= x0 || y1 <= y0; }
    bool operator==(const PixelBox& o) const { return x0 == o.x0 && y0 == o.y0 && x1 == o.x1 && y1 == o.y1; }
};

// A box of grid cells: columns [x0, x1), rows [y0, y1) (sdrpn.md's [x0, y0, x1, y1] with exclusive ends).
struct GridBox {
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

struct GridGeometry {
    ImageFit fit = ImageFit::Pad;
    int sourceWidth = 0;
    int sourceHeight = 0;
    int processedWidth = 336;  // the tensor the vision tower sees
    int processedHeight = 336;
    int gridRows = 24;
    int gridCols = 24;
    // source = processed * scale + offset (continuous coordinates), for both fits.
    double scaleX = 1.0, scaleY = 1.0;
    double offsetX = 0.0, offsetY = 0.0;
    // The intermediate image: pad: the S×S square (S = max(W, H)); crop: the resized image before the crop.
    int resizedWidth = 0, resizedHeight = 0;
    // pad: where the source sits in the square; crop: the crop's top-left corner in the resized image.
    int padLeft = 0, padTop = 0;
    int cropLeft = 0, cropTop = 0;

    int numCells() const { return gridRows * gridCols; }
    double cellWidth() const { return double(processedWidth) / gridCols; }  // 14 for LLaVA-1.5
    double cellHeight() const { return double(processedHeight) / gridRows; }

    RectF processedToSource(const RectF& r) const;  // affine, not clipped
    RectF sourceToProcessed(const RectF& r) const;
    // The source region the grid shows: pad: the whole image; crop: the centred region.
    RectF visibleSourceRect() const;
    // Where source pixels land in the processed image: pad: the square minus the pad band; crop: all of it.
    RectF contentProcessedRect() const;

    // Cell (row, col) in source pixels, clipped to the image: empty for a cell wholly in the pad band.
    RectF cellToSource(int row, int col) const;
    bool cellHasContent(int row, int col) const { return !cellToSource(row, col).empty(); }
    // The cell that shows source point (x, y), or nothing when the point is outside the visible region.
    std::optional<std::pair<int, int>> sourceToCell(double x, double y) const;  // (row, col)

    // A box of cells in source pixels, clipped to the image (exact geometry).
    RectF gridBoxToSource(const GridBox& box) const;
    // The integer crop box SD-RPN cuts from the source (sdrpn.md §4.2 get_bbox4src): pad: the reference's
    // formula (scale r = min(S'/W, S'/H), pad (S' - int(W·r)) / 2 as floats); crop: the affine map. Both
    // clamp to the image, then truncate. May be empty for a box inside the pad band.
    PixelBox gridBoxToSourcePixels(const GridBox& box) const;
};

// Geometry of a W×H source processed to `processedSize`² with `patchSize` cells (336 / 14 → 24×24).
// Throws sdrpn::Error for a non-positive size or a processed size not divisible by the patch size.
GridGeometry makeGridGeometry(int sourceWidth, int sourceHeight, ImageFit fit, int processedSize = 336,
                              int patchSize = 14, CenterCrop centerCrop = CenterCrop::Floor);

// llava-hf's shortest-edge resize (mllm_reference.md §6): short side → `shortestEdge`, long side
// int(shortestEdge · long / short). Returns (width, height).
std::pair<int, int> shortestEdgeResize(int width, int height, int shortestEdge);

}  // namespace sdrpn::models
