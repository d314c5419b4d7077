// Qwen2.5-VL: M-RoPE (mllm_reference.md §9 "M-RoPE"), get_rope_index ("3D position ids"), the context that
// keeps the positions, the model and its loader.
#include "core/models/qwen2_5_vl.h"

#include <algorithm>

#include "core/io/safetensors.h"
#include "core/models/qwen_image_processor.h"
#include "core/models/unfilled_checkpoint.h"

namespace sdrpn::models {

namespace {

bool startsWith(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

bool endsWith(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string gridString(const ImageGrid& g) {
    return std::to_string(g.rows) + " x " + std::to_string(g.cols);
}

void checkSection(const std::vector<int>& section, std::int64_t headDim) {
    std::int64_t sum = 0;
    bool positive = section.size() == 3;
    for (int s : section) {
        positive = positive && s > 0;
        sum += s;
    }
    if (!positive || headDim % 2 != 0 || sum * 2 != headDim) {
        std::string list;
        for (int s : section) list += (list.empty() ? "" : ", ") + std::to_string(s);
        throw Error("M-RoPE: mrope_section [" + list +
                    "] must hold three positive sizes summing to head_dim / 2 (" + std::to_string(headDim) +
                    " / 2)");
    }
}

}  // namespace

// ---- M-RoPE ----------------------------------------------------------------------------------------------

RopeTable mropeTable(const torch::Tensor& positions, std::int64_t headDim, double theta,
                     const std::vector<int>& section, torch::ScalarType dtype, torch::Device device) {
    TORCH_CHECK(positions.defined() && positions.dim() == 2 && positions.size(0) == 3,
                "M-RoPE: positions must be [3, L], got ",
                positions.defined() ? positions.sizes() : torch::IntArrayRef{});
    checkSection(section, headDim);
    // inv_freq exactly as plain RoPE (RotaryEmbedding), fp32.
    auto exponents = torch::arange(0, headDim, 2, torch::kLong).to(torch::kFloat) / double(headDim);
    auto invFreq = (1.0 / torch::pow(torch::scalar_tensor(theta, torch::kFloat), exponents)).to(device);
    auto freqs = positions.to(device, torch::kFloat).unsqueeze(2) * invFreq.view({1, 1, -1});  // [3, L, d/2]
    // Sections [s0, s1, s2, s0, s1, s2] over cat(freqs, freqs): the second half repeats the first half's
    // choice of stream, so pick per stream over d/2 and then duplicate.
    std::vector<torch::Tensor> parts;
    std::int64_t offset = 0;
    for (int s = 0; s < 3; ++s) {
        parts.push_back(freqs[s].narrow(1, offset, section[std::size_t(s)]));
        offset += section[std::size_t(s)];
    }
    auto half = torch::cat(parts, 1);         // [L, d/2]
    auto emb = torch::cat({half, half}, -1);  // [L, d]
    return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor qwenRopeIndex(const std::vector<std::int64_t>& ids, const std::vector<ImageGrid>& grids,
                            std::int64_t startPosition, std::int64_t imageTokenId) {
    const std::size_t len = ids.size();
    auto out = torch::empty({3, std::int64_t(len)}, torch::kLong);
    auto pos = out.accessor<std::int64_t, 2>();
    auto isImage = [&](std::int64_t id) { return id == kImageSlot || id == imageTokenId; };
    std::int64_t next = startPosition;
    std::size_t image = 0;
    std::size_t i = 0;
    while (i < len) {
        if (!isImage(ids[i])) {
            for (int s = 0; s < 3; ++s) pos[s][std::int64_t(i)] = next;
            ++next;
            ++i;
            continue;
        }
        std::size_t runEnd = i;
        while (runEnd < len && isImage(ids[runEnd])) ++runEnd;
        const std::size_t runStart = i;
        while (i < runEnd) {
            if (image >= grids.size())
                throw Error("M-RoPE positions: image rows " + std::to_string(i) + " .. " +
                            std::to_string(runEnd - 1) + " have no merged grid (" +
                            std::to_string(grids.size()) + " grid(s) given" +
                            (i > runStart ? ", the previous image's grid ended inside this run of image rows"
                                          : std::string()) +
                            ")");
            const ImageGrid g = grids[image];
            if (g.rows <= 0 || g.cols <= 0)
                throw Error("M-RoPE positions: image " + std::to_string(image) +
                            " has an empty merged grid " + gridString(g));
            const std::size_t cells = std::size_t(g.cells());
            if (cells > runEnd - i)
                throw Error("M-RoPE positions: image " + std::to_string(image) + " (merged grid " +
                            gridString(g) + " = " + std::to_string(cells) + " cells) starts at row " +
                            std::to_string(i) + " but only " + std::to_string(runEnd - i) +
                            " image rows follow (rows " + std::to_string(i) + " .. " +
                            std::to_string(runEnd - 1) + ")");
            // get_rope_index: cell (r, c) at (st, st + r, st + c); t = 0 for a still image.
            for (std::int64_t r = 0; r < g.rows; ++r)
                for (std::int64_t c = 0; c < g.cols; ++c) {
                    const std::int64_t row = std::int64_t(i) + r * g.cols + c;
                    pos[0][row] = next;
                    pos[1][row] = next + r;
                    pos[2][row] = next + c;
                }
            next += std::max(g.rows, g.cols);  // the largest position so far + 1
            i += cells;
            ++image;
        }
    }
    if (image < grids.size())
        throw Error("M-RoPE positions: " + std::to_string(grids.size()) +
                    " merged grid(s) given but the rows hold " + std::to_string(image) + " image(s)");
    return out;
}

// ---- context ---------------------------------------------------------------------------------------------

std::unique_ptr<Context> QwenContext::clone() const {
    // Context::clone deep-copies the base part (KV cache included); the positions are plain values.
    const std::unique_ptr<Context> base = Context::clone();
    std::unique_ptr<QwenContext> copy(new QwenContext(*base));
    copy->m_positions = m_positions;
    copy->m_next = m_next;
    return copy;
}

void QwenContext::truncate(std::int64_t length) {
    Context::truncate(length);
    cutPositions(length);
}

void QwenContext::cutPositions(std::int64_t length) {
    if (std::size_t(length) >= m_positions[0].size()) return;
    for (auto& p : m_positions) p.resize(std::size_t(length));
    m_next = 0;
    for (const auto& p : m_positions)
        for (std::int64_t v : p) m_next = std::max(m_next, v + 1);
}

void QwenContext::setPositions(std::int64_t start, const torch::Tensor& positions) {
    TORCH_CHECK(positions.dim() == 2 && positions.size(0) == 3, "M-RoPE positions must be [3, n], got ",
                positions.sizes());
    TORCH_CHECK(start >= 0 && std::size_t(start) <= m_positions[0].size(), "M-RoPE positions from row ",
                start, " but the context records ", m_positions[0].size(), " rows");
    cutPositions(start);
    auto p = positions.to(torch::kCPU, torch::kLong).contiguous();
    const std::int64_t n = p.size(1);
    const std::int64_t* data = p.data_ptr<std::int64_t>();
    for (int s = 0; s < 3; ++s) {
        auto& dst = m_positions[std::size_t(s)];
        dst.insert(dst.end(), data + s * n, data + (s + 1) * n);
        for (std::int64_t k = 0; k < n; ++k) m_next = std::max(m_next, data[s * n + k] + 1);
    }
}

torch::Tensor QwenContext::positions(std::int64_t begin, std::int64_t length) const {
    const std::int64_t recorded = std::int64_t(m_positions[0].size());
    TORCH_CHECK(begin >= 0 && length >= 0 && begin + length <= recorded, "M-RoPE positions of rows [", begin,
                ", ", begin + length, ") but the context records ", recorded, " rows");
    auto out = torch::empty({3, length}, torch::kLong);
    for (int s = 0; s < 3; ++s)
        std::copy_n(m_positions[std::size_t(s)].begin() + begin, length, out[s].data_ptr<std::int64_t>());
    return out;
}

std::int64_t QwenContext::sequentialStart(std::int64_t begin, std::int64_t length) const {
    const std::int64_t recorded = std::int64_t(m_positions[0].size());
    if (begin < 0 || length <= 0 || begin + length > recorded) return -1;
    const std::int64_t first = m_positions[0][std::size_t(begin)];
    for (std::int64_t i = 0; i < length; ++i)
        for (const auto& p : m_positions)
            if (p[std::size_t(begin + i)] != first + i) return -1;
    return first;
}

torch::Tensor QwenContext::positions() const {
    return positions(0, std::int64_t(m_positions[0].size()));
}

// ---- model -----------------------------------------------------------------------------------------------

Qwen2_5VlModel::Qwen2_5VlModel(const io::QwenVlConfig& cfg, const WeightMap& weights, torch::Device device,
                               torch::ScalarType dtype, std::string source)
    : m_cfg(cfg) {
    checkSection(cfg.mropeSection, cfg.text.headDim);
    if (cfg.vision.outHiddenSize != cfg.text.hiddenSize)
        throw Error("Qwen2.5-VL: vision out_hidden_size " + std::to_string(cfg.vision.outHiddenSize) +
                    " differs from the text hidden_size " + std::to_string(cfg.text.hiddenSize));
    m_text = LlamaTextModel(weights, "", cfg.text, device);  // Qwen2: q/k/v bias, o_proj none (qkvBiasOnly)
    if (weights.count("visual.patch_embed.proj.weight"))
        m_vision = QwenVisionTower(weights, "visual.", cfg.vision);

    m_info.modelType = "qwen2_5_vl";
    m_info.architecture = "Qwen2_5_VLForConditionalGeneration";
    m_info.source = std::move(source);
    setTextInfo(cfg.text);
    // Qwen adds no BOS; ids outside the vocabulary (tiny test models keep the 7B's) mean "none".
    auto inVocab = [&](std::int64_t id) { return id >= 0 && id < cfg.text.vocabSize ? id : -1; };
    m_info.bosTokenId = inVocab(m_info.bosTokenId);
    m_info.padTokenId = inVocab(m_info.padTokenId);
    m_info.eosTokenId = cfg.text.eosTokenId;  // <|im_end|>
    m_info.imageTokenId = cfg.imageTokenId;
    m_info.imageTokens = 0;  // dynamic: gh·gw / 4 per image
    m_info.grid = ImageGrid{};
    m_info.imageSize = 0;
    m_info.device = device;
    m_info.dtype = dtype;
}

std::unique_ptr<Context> Qwen2_5VlModel::newContext() const {
    return std::make_unique<QwenContext>(m_info.layers, m_info.heads, m_info.device);
}

torch::Tensor Qwen2_5VlModel::encodePatches(const torch::Tensor& patches,
                                            std::array<std::int64_t, 3> gridThw) const {
    torch::NoGradGuard noGrad;
    if (!hasVision()) throw Error("Qwen2.5-VL: this model was built without its vision tower (visual.*)");
    return m_vision->forward(patches, gridThw).to(m_info.dtype);
}

torch::Tensor Qwen2_5VlModel::encodeImage(const torch::Tensor& pixels) const {
    torch::NoGradGuard noGrad;
    TORCH_CHECK(pixels.defined() && (pixels.dim() == 3 || pixels.dim() == 4),
                "Qwen2.5-VL encodeImage: pixels must be [3, H, W] or [B, 3, H, W], got ",
                pixels.defined() ? pixels.sizes() : torch::IntArrayRef{});
    QwenPreprocessConfig pre;
    pre.patchSize = m_cfg.vision.patchSize;
    pre.temporalPatchSize = m_cfg.vision.temporalPatchSize;
    pre.mergeSize = m_cfg.vision.spatialMergeSize;
    const QwenImageProcessor processor(pre);
    const auto batch = pixels.dim() == 3 ? pixels.unsqueeze(0) : pixels;
    std::vector<torch::Tensor> out;
    for (std::int64_t b = 0; b < batch.size(0); ++b) {
        const auto chw = batch[b];
        const auto patches = processor.flattenPatches(chw);  // checks H, W multiples of patch·merge
        out.push_back(encodePatches(patches, {1, chw.size(1) / pre.patchSize, chw.size(2) / pre.patchSize}));
    }
    return out.size() == 1 ? out[0] : torch::cat(out, 0);
}

namespace {

QwenContext& qwenContext(Context& ctx) {
    auto* q = dynamic_cast<QwenContext*>(&ctx);
    if (!q)
        throw Error(
            "Qwen2.5-VL: the context was not made by this model's newContext() (no M-RoPE positions)");
    return *q;
}

const QwenContext& qwenContext(const Context& ctx) {
    const auto* q = dynamic_cast<const QwenContext*>(&ctx);
    if (!q)
        throw Error(
            "Qwen2.5-VL: the context was not made by this model's newContext() (no M-RoPE positions)");
    return *q;
}

}  // namespace

void Qwen2_5VlModel::appendPositions(Context& ctx, const std::vector<std::int64_t>& ids,
                                     const PromptInput& prompt, std::int64_t start) const {
    QwenContext& q = qwenContext(ctx);
    const std::int64_t n = std::int64_t(ids.size());
    if (prompt.positions.defined()) {
        const auto& p = prompt.positions;
        if (p.dim() != 2 || p.size(0) != 3 || p.size(1) != n ||
            !(c10::isIntegralType(p.scalar_type(), false)))
            throw Error("Qwen2.5-VL: PromptInput::positions must be an integer [3, " + std::to_string(n) +
                        "] tensor (t, h, w per prompt row), got " + c10::str(p.sizes()) + " " +
                        std::string(c10::toString(p.scalar_type())));
        q.setPositions(start, p);
        return;
    }
    // The grids of this call's images, in order (the spans prefill has just added).
    std::vector<ImageGrid> grids;
    std::size_t k = 0;
    for (const auto& span : ctx.imageSpans()) {
        if (span.start < start) continue;
        if (span.grid.cells() != span.length)
            throw Error("Qwen2.5-VL: image " + std::to_string(k) + " of the prompt has " +
                        std::to_string(span.length) + " rows but its merged grid is " +
                        gridString(span.grid) + " (" + std::to_string(span.grid.cells()) +
                        " cells); give PromptInput::grids (gh/2 x gw/2) or PromptInput::positions");
        grids.push_back(span.grid);
        ++k;
    }
    q.setPositions(start, qwenRopeIndex(ids, grids, q.nextPosition()));
}

RopeTable Qwen2_5VlModel::ropeRows(const Context& ctx, std::int64_t begin, std::int64_t length,
                                   torch::ScalarType dtype) const {
    // Text rows (equal streams, consecutive): M-RoPE is plain RoPE there, bit for bit, and the plain table is
    // built on the device, so a decode step copies nothing from the host (no synchronisation per token).
    const QwenContext& q = qwenContext(ctx);
    const std::int64_t first = q.sequentialStart(begin, length);
    if (first >= 0) return m_text->rotary().table(first, length, dtype);
    return mropeTable(q.positions(begin, length), m_cfg.text.headDim, m_cfg.text.ropeTheta,
                      m_cfg.mropeSection, dtype, m_info.device);
}

std::int64_t Qwen2_5VlModel::ropeDelta(const Context& ctx) const {
    return qwenContext(ctx).ropeDelta();
}

torch::Tensor Qwen2_5VlModel::positions(const Context& ctx) const {
    return qwenContext(ctx).positions();
}

// ---- loading ---------------------------------------------------------------------------------------------

std::vector<WeightSpec> qwenTextWeightSpecs(const io::QwenVlConfig& cfg) {
    return llamaWeightSpecs(cfg.text, "");  // keys model.* and lm_head.weight
}

std::vector<WeightSpec> qwenVlWeightSpecs(const io::QwenVlConfig& cfg) {
    auto specs = qwenVisionWeightSpecs(cfg.vision, "visual.");
    auto text = qwenTextWeightSpecs(cfg);
    specs.insert(specs.end(), text.begin(), text.end());
    return specs;
}

std::string normaliseQwenVlKey(const std::string& key) {
    if (endsWith(key, ".inv_freq")) return "";  // rotary buffers some checkpoints saved
    // transformers >= 4.52 layout.
    if (startsWith(key, "model.language_model.")) return "model." + key.substr(21);
    if (startsWith(key, "model.visual.")) return key.substr(6);
    // Hub layout: canonical.
    if (startsWith(key, "visual.") || startsWith(key, "model.") || startsWith(key, "lm_head.")) return key;
    return "";
}

std::shared_ptr<const Qwen2_5VlModel> loadQwen2_5Vl(const std::string& modelDir, const LoadOptions& options,
                                                    const JobContext& job) {
    const torch::Device device = parseDevice(options.device);
    const torch::ScalarType dtype = parseComputeDType(options.dtype);
    checkComputeSupport(device, dtype);
    job.report(0, 0, "reading " + modelDir);
    const io::QwenVlConfig cfg = io::readQwenVlConfig(modelDir);
    const std::string what = "Qwen2.5-VL checkpoint " + modelDir;
    const auto specs = qwenVlWeightSpecs(cfg);

    // An unfilled SD-RPN checkpoint takes what it lacks from its base model (LoadOptions::base).
    std::shared_ptr<const io::SafetensorsArchive> baseArchive;
    if (!options.base.empty()) {
        checkBaseConfig(cfg.text, io::readQwenVlConfig(options.base).text, modelDir, options.base);
        baseArchive = io::SafetensorsArchive::open(options.base);
    } else if (isUnfilledSdrpnCheckpoint(modelDir)) {
        throw Error(unfilledCheckpointMessage(modelDir));
    }

    WeightSource source;
    source.addArchive(io::SafetensorsArchive::open(modelDir), normaliseQwenVlKey);
    if (baseArchive)
        source.addMissingFrom(baseArchive, normaliseQwenVlKey, baseMismatchPrefix(modelDir, options.base));
    job.throwIfCancelled();
    checkWeights(source, specs, what);
    WeightMap weights = loadWeights(source, specs, device, dtype, job, what);
    fuseLlamaProjections(weights, cfg.text, "");
    auto model = std::make_shared<const Qwen2_5VlModel>(cfg, weights, device, dtype, modelDir);
    job.report(1, 1, "loaded " + modelDir);
    return model;
}

Result<std::shared_ptr<const Qwen2_5VlModel>> tryLoadQwen2_5Vl(const std::string& modelDir,
                                                               const LoadOptions& options,
                                                               const JobContext& job) {
    return guarded([&] { return loadQwen2_5Vl(modelDir, options, job); });
}

}  // namespace sdrpn::models
