// From the core's captured attention (models::AttentionMaps, plain data) to what the heat map draws: the
// map of one layer over the image tokens for a head selection (one head, the mean over a set of heads, or the
// mean over every head) and a query selection (the last prompt token, the mean over the question tokens, the
// mean over the answer tokens, or one answer token),
// and where each image-token cell lies on the ORIGINAL image (GridGeometry::cellToSource: cells in the pad
// band are empty and not drawn; with a centre crop only the visible region has cells).
//
// Pure functions on plain data, cheap (a mean over heads × rows × cells): the studio recomputes on every
// layer / head / query change without running the model.
//
//   MapSelection sel;  sel.layerSlot = 14;  sel.heads = {13, 24, 26};  sel.query = QueryChoice::Answer;
//   std::vector<float> grid = attentionGrid(maps, sel, imageTokenGrid(maps, geometry));
//   overlay->setGrid(g.rows, g.cols, grid, cellRectsOnSource(geometry, g.rows, g.cols));
//
// Thread affinity: none.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <QRectF>
#include <QString>
#include <QStringList>

#include "core/models/capture.h"
#include "core/models/geometry.h"

// Which query rows' attention is shown (index order of the studio's query picker).
enum class QueryChoice { LastPrompt = 0, Question = 1, Answer = 2, AnswerToken = 3 };

// "Last prompt token", "Question tokens (mean)", "Answer tokens (mean)", "One answer token".
QStringList queryChoiceNames();
// "last prompt token", "question tokens", "answer tokens", "answer token <answerToken>".
QString queryChoiceShortName(QueryChoice choice, int answerToken = 0);

struct MapSelection {
    int layerSlot = 0;  // index into AttentionMaps::layers (not the decoder layer number)
    // The heads averaged (each counted once, in any order). When empty, `head` says: >= 0 that one head,
    // -1 every head (the mean of heads).
    std::vector<int> heads;
    int head = -1;
    QueryChoice query = QueryChoice::Answer;
    int answerToken = 0;  // QueryChoice::AnswerToken: which answer row, 0-based among the answer rows

    // The heads averaged, sorted and unique; empty means every head.
    std::vector<int> chosenHeads() const;
};

// Rows of `maps` that a query choice averages, in capture order; empty when there are none (e.g. answer
// rows for an answer of one token: the last token is never fed back). For QueryChoice::AnswerToken the one
// answer row `answerToken` (0-based among the answer rows), empty when out of range.
std::vector<std::size_t> queryRows(const sdrpn::models::AttentionMaps& maps, QueryChoice choice,
                                   int answerToken = 0);

// The image-token grid of the (first) image and where its columns start among the image keys; rows = 0
// when the maps do not hold a full grid of that image.
struct TokenGrid {
    int rows = 0;
    int cols = 0;
    std::int64_t firstKey = 0;
    std::size_t cells() const { return std::size_t(rows) * std::size_t(cols); }
};
TokenGrid imageTokenGrid(const sdrpn::models::AttentionMaps& maps,
                         const sdrpn::models::GridGeometry& geometry);

// The selected map, row-major rows × cols: the mean over the chosen heads × the query rows; empty when the
// selection has no rows, the slot or a head is out of range, or the grid is empty.
std::vector<float> attentionGrid(const sdrpn::models::AttentionMaps& maps, const MapSelection& selection,
                                 const TokenGrid& grid);

// Cell (row, col) in source-image pixels, row-major; an empty rectangle for a cell with no source pixels.
std::vector<QRectF> cellRectsOnSource(const sdrpn::models::GridGeometry& geometry, int rows, int cols);
// Which of those cells are drawn (non-empty).
std::vector<bool> drawnCells(const std::vector<QRectF>& cells);
