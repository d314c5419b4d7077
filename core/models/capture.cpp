#include "core/models/capture.h"

#include <algorithm>

namespace sdrpn::models {

bool CaptureRequest::wantsLayer(int layer) const {
    return layers.empty() || std::find(layers.begin(), layers.end(), layer) != layers.end();
}

CaptureRequest CaptureRequest::none() {
    CaptureRequest r;
    r.lastPromptToken = false;
    r.questionTokens = false;
    r.answerTokens = false;
    return r;
}

int AttentionMaps::slotOf(int layer) const {
    for (std::size_t i = 0; i < layers.size(); ++i)
        if (layers[i].layer == layer) return int(i);
    return -1;
}

std::vector<std::size_t> AttentionMaps::rowsOfKind(QueryKind kind) const {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < rows.size(); ++i)
        if (rows[i].kind == kind) out.push_back(i);
    return out;
}

}  // namespace sdrpn::models
