#include "core/models/geometry.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/result.h"

namespace sdrpn::models {

const char* imageFitName(ImageFit fit) {
    return fit == ImageFit::Pad ? "pad" : "crop";
}

std::optional<ImageFit> parseImageFit(const std::string& name) {
    if (name == "pad") return ImageFit::Pad;
    if (name == "crop") return ImageFit::Crop;
    return std::nullopt;
}

std::pair<int, int> shortestEdgeResize(int width, int height, int shortestEdge) {
    // transformers get_resize_output_image_size(default_to_square=False): int() truncation.
    if (width <= height) {
        return {shortestEdge, static_cast<int>(static_cast<std::int64_t>(shortestEdge) * height / width)};
    }
    return {static_cast<int>(static_cast<std::int64_t>(shortestEdge) * width / height), shortestEdge};
}

GridGeometry makeGridGeometry(int sourceWidth, int sourceHeight, ImageFit fit, int processedSize,
                              int patchSize, CenterCrop centerCrop) {
    if (sourceWidth <= 0 || sourceHeight <= 0) {
        throw Error("image size " + std::to_string(sourceWidth) + "x" + std::to_string(sourceHeight) +
                    " has no pixels");
    }
    if (processedSize <= 0 || patchSize <= 0 || processedSize % patchSize != 0) {
        throw Error("processed size " + std::to_string(processedSize) +
                    " is not a multiple of the patch size " + std::to_string(patchSize));
    }
    GridGeometry g;
    g.fit = fit;
    g.sourceWidth = sourceWidth;
    g.sourceHeight = sourceHeight;
    g.processedWidth = g.processedHeight = processedSize;
    g.gridRows = g.gridCols = processedSize / patchSize;
    if (fit == ImageFit::Pad) {
        // expand2square: W > H pastes at (0, (W-H)//2), H > W at ((H-W)//2, 0); then S -> processedSize.
        const int side = std::max(sourceWidth, sourceHeight);
        g.resizedWidth = g.resizedHeight = side;
        g.padLeft = (side - sourceWidth) / 2;
        g.padTop = (side - sourceHeight) / 2;
        g.scaleX = g.scaleY = double(side) / processedSize;
        g.offsetX = -g.padLeft;
        g.offsetY = -g.padTop;
    } else {
        const auto [rw, rh] = shortestEdgeResize(sourceWidth, sourceHeight, processedSize);
        g.resizedWidth = rw;
        g.resizedHeight = rh;
        const auto offset = [centerCrop](int excess) {
            if (centerCrop == CenterCrop::Floor || excess % 2 == 0) return excess / 2;
            const int down = excess / 2;  // excess / 2 = down + 0.5: round to the even neighbour
            return down % 2 == 0 ? down : down + 1;
        };
        g.cropLeft = offset(rw - processedSize);
        g.cropTop = offset(rh - processedSize);
        g.scaleX = double(sourceWidth) / rw;
        g.scaleY = double(sourceHeight) / rh;
        g.offsetX = g.cropLeft * g.scaleX;
        g.offsetY = g.cropTop * g.scaleY;
    }
    return g;
}

RectF GridGeometry::processedToSource(const RectF& r) const {
    return {r.x0 * scaleX + offsetX, r.y0 * scaleY + offsetY, r.x1 * scaleX + offsetX,
            r.y1 * scaleY + offsetY};
}

RectF GridGeometry::sourceToProcessed(const RectF& r) const {
    return {(r.x0 - offsetX) / scaleX, (r.y0 - offsetY) / scaleY, (r.x1 - offsetX) / scaleX,
            (r.y1 - offsetY) / scaleY};
}

namespace {
RectF clip(const RectF& r, const RectF& to) {
    RectF c{std::max(r.x0, to.x0), std::max(r.y0, to.y0), std::min(r.x1, to.x1), std::min(r.y1, to.y1)};
    if (c.empty()) c = {c.x0, c.y0, c.x0, c.y0};
    return c;
}
}  // namespace

RectF GridGeometry::visibleSourceRect() const {
    const RectF image{0, 0, double(sourceWidth), double(sourceHeight)};
    return clip(processedToSource({0, 0, double(processedWidth), double(processedHeight)}), image);
}

RectF GridGeometry::contentProcessedRect() const {
    const RectF all{0, 0, double(processedWidth), double(processedHeight)};
    return clip(sourceToProcessed({0, 0, double(sourceWidth), double(sourceHeight)}), all);
}

RectF GridGeometry::cellToSource(int row, int col) const {
    return gridBoxToSource({col, row, col + 1, row + 1});
}

std::optional<std::pair<int, int>> GridGeometry::sourceToCell(double x, double y) const {
    const RectF visible = visibleSourceRect();
    if (!(x >= visible.x0 && x < visible.x1 && y >= visible.y0 && y < visible.y1)) return std::nullopt;
    const double px = (x - offsetX) / scaleX, py = (y - offsetY) / scaleY;
    const int col = std::clamp(static_cast<int>(std::floor(px / cellWidth())), 0, gridCols - 1);
    const int row = std::clamp(static_cast<int>(std::floor(py / cellHeight())), 0, gridRows - 1);
    return std::make_pair(row, col);
}

RectF GridGeometry::gridBoxToSource(const GridBox& box) const {
    const RectF processed{box.x0 * cellWidth(), box.y0 * cellHeight(), box.x1 * cellWidth(),
                          box.y1 * cellHeight()};
    return clip(processedToSource(processed), {0, 0, double(sourceWidth), double(sourceHeight)});
}

PixelBox GridGeometry::gridBoxToSourcePixels(const GridBox& box) const {
    double x0, y0, x1, y1;
    const double cw = cellWidth(), ch = cellHeight();
    if (fit == ImageFit::Pad) {
        // sdrpn.md §4.2 get_bbox4src, in the reference's order of operations.
        const double r =
            std::min(double(processedWidth) / sourceWidth, double(processedHeight) / sourceHeight);
        const auto rw = static_cast<std::int64_t>(sourceWidth * r);
        const auto rh = static_cast<std::int64_t>(sourceHeight * r);
        const double padX = (processedWidth - rw) / 2.0, padY = (processedHeight - rh) / 2.0;
        x0 = (box.x0 * cw - padX) / r;
        y0 = (box.y0 * ch - padY) / r;
        x1 = (box.x1 * cw - padX) / r;
        y1 = (box.y1 * ch - padY) / r;
    } else {
        x0 = box.x0 * cw * scaleX + offsetX;
        y0 = box.y0 * ch * scaleY + offsetY;
        x1 = box.x1 * cw * scaleX + offsetX;
        y1 = box.y1 * ch * scaleY + offsetY;
    }
    const auto cx = [&](double v) { return static_cast<int>(std::clamp(v, 0.0, double(sourceWidth))); };
    const auto cy = [&](double v) { return static_cast<int>(std::clamp(v, 0.0, double(sourceHeight))); };
    return {cx(x0), cy(y0), cx(x1), cy(y1)};
}

}  // namespace sdrpn::models
