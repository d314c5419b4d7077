#include "core/sdrpn/grid_ops.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/result.h"

namespace sdrpn {

void checkGrid(std::size_t size, int rows, int cols, const char* what) {
    if (rows <= 0 || cols <= 0)
        throw Error(std::string(what) + ": grid " + std::to_string(rows) + "x" + std::to_string(cols) +
                    " is empty");
    if (size != std::size_t(rows) * std::size_t(cols))
        throw Error(std::string(what) + ": " + std::to_string(size) + " values do not fill a " +
                    std::to_string(rows) + "x" + std::to_string(cols) + " grid");
}

std::vector<float> gaussianKernel1d(int kernelSize, double sigma) {
    if (kernelSize <= 0 || kernelSize % 2 == 0)
        throw Error("gaussian blur: kernel size " + std::to_string(kernelSize) + " must be odd and positive");
    if (!(sigma > 0)) throw Error("gaussian blur: sigma " + std::to_string(sigma) + " must be positive");
    // torch.linspace(-h, h, k) in float32, then the pdf and its normalisation in float32.
    const float half = float(kernelSize - 1) * 0.5f;
    std::vector<float> k(static_cast<std::size_t>(kernelSize));
    float sum = 0.0f;
    for (int i = 0; i < kernelSize; ++i) {
        const float step = kernelSize > 1 ? (2.0f * half) / float(kernelSize - 1) : 0.0f;
        // linspace fills the first half from the start and the second half from the end (as torch does).
        const float x =
            i < kernelSize / 2 ? -half + step * float(i) : half - step * float(kernelSize - 1 - i);
        const float z = x / float(sigma);
        k[std::size_t(i)] = std::exp(-0.5f * z * z);
        sum += k[std::size_t(i)];
    }
    for (float& v : k) v /= sum;
    return k;
}

namespace {

// torch "reflect" padding index (edge not repeated); a 1-cell side repeats its only cell.
int reflectIndex(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * (n - 1) - i;
    }
    return i;
}

}  // namespace

std::vector<float> gaussianBlur(const std::vector<float>& values, int rows, int cols, int kernelSize,
                                double sigma) {
    checkGrid(values.size(), rows, cols, "gaussian blur");
    const std::vector<float> k = gaussianKernel1d(kernelSize, sigma);
    const int half = kernelSize / 2;
    std::vector<float> kernel2d(std::size_t(kernelSize) * std::size_t(kernelSize));
    for (int a = 0; a < kernelSize; ++a)
        for (int b = 0; b < kernelSize; ++b)
            kernel2d[std::size_t(a * kernelSize + b)] = k[std::size_t(a)] * k[std::size_t(b)];
    std::vector<float> out(values.size());
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c) {
            float acc = 0.0f;
            for (int a = 0; a < kernelSize; ++a) {
                const int rr = reflectIndex(r + a - half, rows);
                for (int b = 0; b < kernelSize; ++b) {
                    const int cc = reflectIndex(c + b - half, cols);
                    acc += kernel2d[std::size_t(a * kernelSize + b)] * values[std::size_t(rr * cols + cc)];
                }
            }
            out[std::size_t(r * cols + c)] = acc;
        }
    return out;
}

std::vector<GridComponent> connectedComponents(const std::vector<std::uint8_t>& mask, int rows, int cols) {
    checkGrid(mask.size(), rows, cols, "connected components");
    std::vector<int> label(mask.size(), -1);
    std::vector<GridComponent> out;
    std::vector<int> stack;
    for (int start = 0; start < rows * cols; ++start) {
        if (!mask[std::size_t(start)] || label[std::size_t(start)] >= 0) continue;
        const int id = int(out.size());
        GridComponent comp;
        comp.x0 = cols;
        comp.y0 = rows;
        label[std::size_t(start)] = id;
        stack.assign(1, start);
        while (!stack.empty()) {
            const int cell = stack.back();
            stack.pop_back();
            comp.cells.push_back(cell);
            const int r = cell / cols, c = cell % cols;
            for (int dr = -1; dr <= 1; ++dr)
                for (int dc = -1; dc <= 1; ++dc) {
                    const int rr = r + dr, cc = c + dc;
                    if ((dr == 0 && dc == 0) || rr < 0 || rr >= rows || cc < 0 || cc >= cols) continue;
                    const int n = rr * cols + cc;
                    if (mask[std::size_t(n)] && label[std::size_t(n)] < 0) {
                        label[std::size_t(n)] = id;
                        stack.push_back(n);
                    }
                }
        }
        std::sort(comp.cells.begin(), comp.cells.end());
        comp.area = int(comp.cells.size());
        for (int cell : comp.cells) {
            const int r = cell / cols, c = cell % cols;
            comp.x0 = std::min(comp.x0, c);
            comp.y0 = std::min(comp.y0, r);
            comp.x1 = std::max(comp.x1, c + 1);
            comp.y1 = std::max(comp.y1, r + 1);
        }
        out.push_back(std::move(comp));
    }
    return out;
}

namespace {

// PyTorch's compute_indices_weights_linear for align_corners = False: the source index
// max(scale·(dst + 0.5) − 0.5, 0) with scale = in / out in float32, its floor, the next index (clamped)
// and the two weights.
struct LinearTap {
    int i0 = 0, i1 = 0;
    float w0 = 1.0f, w1 = 0.0f;
};

std::vector<LinearTap> linearTaps(int in, int out) {
    const float scale = float(in) / float(out);
    std::vector<LinearTap> taps(static_cast<std::size_t>(out));
    for (int d = 0; d < out; ++d) {
        float src = scale * (float(d) + 0.5f) - 0.5f;
        if (src < 0.0f) src = 0.0f;
        LinearTap t;
        t.i0 = int(src);
        t.i1 = t.i0 + (t.i0 < in - 1 ? 1 : 0);
        t.w1 = src - float(t.i0);
        t.w0 = 1.0f - t.w1;
        taps[std::size_t(d)] = t;
    }
    return taps;
}

}  // namespace

std::vector<float> resizeBilinear(const std::vector<float>& values, int rows, int cols, int outRows,
                                  int outCols) {
    checkGrid(values.size(), rows, cols, "bilinear resize");
    if (outRows <= 0 || outCols <= 0)
        throw Error("bilinear resize: output size " + std::to_string(outRows) + "x" +
                    std::to_string(outCols) + " is empty");
    const auto ty = linearTaps(rows, outRows), tx = linearTaps(cols, outCols);
    std::vector<float> out(std::size_t(outRows) * std::size_t(outCols));
    auto at = [&](int r, int c) { return values[std::size_t(r * cols + c)]; };
    for (int r = 0; r < outRows; ++r) {
        const LinearTap& y = ty[std::size_t(r)];
        for (int c = 0; c < outCols; ++c) {
            const LinearTap& x = tx[std::size_t(c)];
            // The order of PyTorch's CPU kernel: inner (width) sums first, then the height weights.
            float top = at(y.i0, x.i0) * x.w0;
            top += at(y.i0, x.i1) * x.w1;
            float bottom = at(y.i1, x.i0) * x.w0;
            bottom += at(y.i1, x.i1) * x.w1;
            float v = top * y.w0;
            v += bottom * y.w1;
            out[std::size_t(r * outCols + c)] = v;
        }
    }
    return out;
}

}  // namespace sdrpn
