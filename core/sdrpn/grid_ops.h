// Small operations on row-major grids of plain floats (the 24×24 token grids of SD-RPN), shared by the
// pseudo-label maths (labels.h) and the RoI post-processing (roi.h). No LibTorch: each one reproduces the
// arithmetic of the PyTorch / torchvision / scikit-image call the reference makes.
//
//   std::vector<float> blurred = gaussianBlur(prob, 24, 24);            // torchvision gaussian_blur(k=3,
//   σ=1) auto parts = connectedComponents(blurred > thr mask, 24, 24);        // skimage
//   label(connectivity=2) std::vector<float> up = resizeBilinear(mask, h, w, 24, 24);          //
//   F.interpolate(align_corners=False)
//
// All functions are pure and thread-safe. Sizes that do not match the data throw sdrpn::Error.
#pragma once

#include <cstdint>
#include <vector>

namespace sdrpn {

// torchvision's _get_gaussian_kernel1d in float32: x = linspace(-(k-1)/2, (k-1)/2, k),
// pdf = exp(-0.5 (x/σ)²), kernel = pdf / sum(pdf). k = 3, σ = 1 gives [0.27406862, 0.45186276, 0.27406862].
// Throws for an even or non-positive size or σ <= 0.
std::vector<float> gaussianKernel1d(int kernelSize, double sigma);

// torchvision.transforms.functional.gaussian_blur on a [rows, cols] float map: the 2-D kernel
// outer(k, k) in float32, reflect padding (edge not repeated, as torch's "reflect"). Where a side is too
// short to reflect (a 1-cell side) the edge cell is repeated instead (torch would raise).
std::vector<float> gaussianBlur(const std::vector<float>& values, int rows, int cols, int kernelSize = 3,
                                double sigma = 1.0);

// One 8-connected component of a mask.
struct GridComponent {
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // tight box: columns [x0, x1), rows [y0, y1)
    int area = 0;                        // number of cells
    std::vector<int> cells;              // row-major cell indices, ascending
};

// 8-connected labelling of the non-zero cells (skimage.measure.label(connectivity=2)), components in the
// order of their first cell in row-major scan (the order of skimage's labels and regionprops).
std::vector<GridComponent> connectedComponents(const std::vector<std::uint8_t>& mask, int rows, int cols);

// torch.nn.functional.interpolate(mode="bilinear", align_corners=False, size=(outRows, outCols)) of a
// [rows, cols] map, in float32 with PyTorch's CPU index and weight arithmetic (no antialiasing).
std::vector<float> resizeBilinear(const std::vector<float>& values, int rows, int cols, int outRows,
                                  int outCols);

// Throws sdrpn::Error naming `what` unless values.size() == rows * cols and both are positive.
void checkGrid(std::size_t size, int rows, int cols, const char* what);

}  // namespace sdrpn
