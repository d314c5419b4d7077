// Attention capture: which query rows to keep (CaptureRequest) and what comes back (AttentionMaps).
//
// Plain data, no LibTorch: the studio's widgets, the label maths and the exporters read AttentionMaps
// directly. Values are attention probabilities softmax(q·Kᵀ/√d + causal mask) recomputed in fp32 from the
// layer's post-RoPE Q and K, normalised over ALL keys of the sequence, of which only the image-key
// columns are kept (mllm_reference.md §10). They are not renormalised over the image keys.
//
//   CaptureRequest request;                 // all layers; last prompt token + question + answer rows
//   request.questionTokens = true;
//   request.answerTokens = true;
//   ... prefill / generate with the request ...
//   AttentionMaps maps = context.attentionMaps();
//   float p = maps.at(maps.slotOf(14), /*head*/ 24, /*row*/ 0, /*image key*/ 300);
//
// Thread safety: plain values; copy freely between threads.
#pragma once

#include <cstdint>
#include <vector>

namespace sdrpn::models {

// Token grid of one image, row-major: image key j of the image is (row, col) = (j / cols, j % cols).
struct ImageGrid {
    int rows = 0;
    int cols = 0;
    std::int64_t cells() const { return std::int64_t(rows) * cols; }
    bool operator==(const ImageGrid& other) const { return rows == other.rows && cols == other.cols; }
};

// Where an image's rows sit in the token sequence.
struct ImageSpan {
    std::int64_t start = 0;   // absolute position of the first image row
    std::int64_t length = 0;  // number of image rows (LLaVA-1.5: 576; an RoI insert may have fewer)
    ImageGrid grid;           // {0,0} when the rows do not form a full grid (masked RoI tokens)
};

struct CaptureRequest {
    std::vector<int> layers;              // decoder layer indices; empty = every layer
    bool lastPromptToken = true;          // the last token of each prefill (the RPN query token)
    bool questionTokens = false;          // the text tokens after the last image of each prefill
    bool answerTokens = false;            // every generated token fed back during decoding
    std::vector<std::int64_t> positions;  // further absolute positions to capture during prefill
    bool measure = false;  // synchronise the device around the capture so CaptureStats::seconds is exact

    bool any() const { return lastPromptToken || questionTokens || answerTokens || !positions.empty(); }
    bool wantsLayer(int layer) const;
    static CaptureRequest none();
};

enum class QueryKind {
    Prompt,      // a position asked for explicitly
    Question,    // a text token after the last image
    LastPrompt,  // the last token of a prefill
    Answer,      // a generated token fed back while decoding
};

struct QueryRow {
    std::int64_t position = 0;  // absolute token position of the query
    std::int64_t token = 0;     // its token id (-1 for an image row)
    QueryKind kind = QueryKind::Prompt;
};

// One decoder layer's captured rows: values[(head * rows + row) * imageKeys + key].
struct LayerAttention {
    int layer = 0;
    std::vector<float> values;
};

// What the capture cost since the context was made or clearAttention() was called: wall time (exact on a
// GPU only with CaptureRequest::measure) and memory.
struct CaptureStats {
    double seconds = 0.0;               // time spent recomputing rows, summed over layers and calls
    std::int64_t rows = 0;              // query rows captured (per layer)
    std::int64_t keptBytes = 0;         // bytes of captured probabilities kept (all layers)
    std::int64_t peakScratchBytes = 0;  // largest temporary [heads, rows, keys] fp32 block
};

struct AttentionMaps {
    int heads = 0;
    std::int64_t imageKeys = 0;                   // columns per row
    std::vector<std::int64_t> imageKeyPositions;  // absolute position of each column
    std::vector<ImageSpan> imageSpans;            // the images those columns belong to, in order
    std::vector<QueryRow> rows;
    std::vector<LayerAttention> layers;  // in increasing layer order
    CaptureStats stats;

    bool empty() const { return layers.empty() || rows.empty(); }
    // Index into `layers` of decoder layer `layer`, or -1.
    int slotOf(int layer) const;
    float at(std::size_t slot, int head, std::size_t row, std::int64_t key) const {
        return layers[slot]
            .values[(std::size_t(head) * rows.size() + row) * std::size_t(imageKeys) + std::size_t(key)];
    }
    // Rows of the given kinds, in capture order.
    std::vector<std::size_t> rowsOfKind(QueryKind kind) const;
};

}  // namespace sdrpn::models
