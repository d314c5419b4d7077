#include "app/attention_maps.h"

#include <algorithm>

#include <QObject>

using sdrpn::models::AttentionMaps;
using sdrpn::models::GridGeometry;
using sdrpn::models::QueryKind;

QStringList queryChoiceNames() {
    return {QObject::tr("Last prompt token"), QObject::tr("Question tokens (mean)"),
            QObject::tr("Answer tokens (mean)"), QObject::tr("One answer token")};
}

QString queryChoiceShortName(QueryChoice choice, int answerToken) {
    switch (choice) {
        case QueryChoice::LastPrompt:
            return QObject::tr("last prompt token");
        case QueryChoice::Question:
            return QObject::tr("question tokens");
        case QueryChoice::Answer:
            return QObject::tr("answer tokens");
        case QueryChoice::AnswerToken:
            return QObject::tr("answer token %1").arg(answerToken);
    }
    return {};
}

std::vector<int> MapSelection::chosenHeads() const {
    if (heads.empty()) return head >= 0 ? std::vector<int>{head} : std::vector<int>{};
    std::vector<int> out = heads;
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

std::vector<std::size_t> queryRows(const AttentionMaps& maps, QueryChoice choice, int answerToken) {
    switch (choice) {
        case QueryChoice::LastPrompt: {
            // The last token of the first prefill: the query SD-RPN's predictor reads.
            const std::vector<std::size_t> rows = maps.rowsOfKind(QueryKind::LastPrompt);
            if (rows.empty()) return {};
            return {rows.front()};
        }
        case QueryChoice::Question:
            return maps.rowsOfKind(QueryKind::Question);
        case QueryChoice::Answer:
            return maps.rowsOfKind(QueryKind::Answer);
        case QueryChoice::AnswerToken: {
            const std::vector<std::size_t> rows = maps.rowsOfKind(QueryKind::Answer);
            if (answerToken < 0 || std::size_t(answerToken) >= rows.size()) return {};
            return {rows[std::size_t(answerToken)]};
        }
    }
    return {};
}

TokenGrid imageTokenGrid(const AttentionMaps& maps, const GridGeometry& geometry) {
    TokenGrid grid;
    std::int64_t firstKey = 0;
    std::int64_t length = maps.imageKeys;
    int rows = geometry.gridRows;
    int cols = geometry.gridCols;
    if (!maps.imageSpans.empty()) {
        const auto& span = maps.imageSpans.front();
        length = span.length;
        // The cells are placed with the geometry's grid: a span laid out otherwise cannot be drawn.
        if (span.grid.rows > 0 && (span.grid.rows != rows || span.grid.cols != cols)) return grid;
    }
    if (rows <= 0 || cols <= 0 || std::int64_t(rows) * cols > length ||
        firstKey + std::int64_t(rows) * cols > maps.imageKeys)
        return grid;
    grid.rows = rows;
    grid.cols = cols;
    grid.firstKey = firstKey;
    return grid;
}

std::vector<float> attentionGrid(const AttentionMaps& maps, const MapSelection& selection,
                                 const TokenGrid& grid) {
    if (grid.cells() == 0 || selection.layerSlot < 0 || selection.layerSlot >= int(maps.layers.size()))
        return {};
    if (maps.heads <= 0) return {};
    std::vector<int> heads = selection.chosenHeads();
    if (heads.empty()) {
        heads.resize(std::size_t(maps.heads));
        for (int h = 0; h < maps.heads; ++h) heads[std::size_t(h)] = h;
    }
    if (heads.front() < 0 || heads.back() >= maps.heads) return {};
    const std::vector<std::size_t> rows = queryRows(maps, selection.query, selection.answerToken);
    if (rows.empty()) return {};
    const auto& values = maps.layers[std::size_t(selection.layerSlot)].values;
    const std::size_t nRows = maps.rows.size();
    const std::size_t keys = std::size_t(maps.imageKeys);
    if (values.size() < std::size_t(maps.heads) * nRows * keys) return {};

    // Sum in double: a mean over 32 heads × ~100 rows of probabilities around 1e-3.
    std::vector<double> sum(grid.cells(), 0.0);
    for (int h : heads) {
        for (std::size_t row : rows) {
            const float* src =
                values.data() + (std::size_t(h) * nRows + row) * keys + std::size_t(grid.firstKey);
            for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += src[i];
        }
    }
    const double n = double(heads.size()) * double(rows.size());
    std::vector<float> out(sum.size());
    for (std::size_t i = 0; i < sum.size(); ++i) out[i] = float(sum[i] / n);
    return out;
}

std::vector<QRectF> cellRectsOnSource(const GridGeometry& geometry, int rows, int cols) {
    std::vector<QRectF> cells;
    if (rows <= 0 || cols <= 0) return cells;
    cells.reserve(std::size_t(rows) * cols);
    for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) {
            const sdrpn::models::RectF rect = geometry.cellToSource(r, c);
            cells.push_back(rect.empty() ? QRectF()
                                         : QRectF(QPointF(rect.x0, rect.y0), QPointF(rect.x1, rect.y1)));
        }
    }
    return cells;
}

std::vector<bool> drawnCells(const std::vector<QRectF>& cells) {
    std::vector<bool> drawn(cells.size());
    for (std::size_t i = 0; i < cells.size(); ++i) drawn[i] = !cells[i].isEmpty();
    return drawn;
}
