#include "core/sdrpn/rpn.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/decoder_backbone.h"

namespace fs = std::filesystem;

namespace sdrpn {

namespace {

std::string twigPrefix(int t) {
    return "twig_layers." + std::to_string(t);
}

void checkConfig(const RpnConfig& c, const std::string& where) {
    if (c.K < 1) throw Error(where + ": twig_K must be at least 1, got " + std::to_string(c.K));
    if (c.T < 1) throw Error(where + ": twig_T must be at least 1, got " + std::to_string(c.T));
}

}  // namespace

// ---- modules
// -----------------------------------------------------------------------------------------------

TwigQkProjImpl::TwigQkProjImpl(const models::WeightMap& w, const std::string& prefix) {
    m_q = register_module("q_proj", models::Dense(w, prefix + ".q_proj"));
    m_k = register_module("k_proj", models::Dense(w, prefix + ".k_proj"));
}

TwigScoreLayerImpl::TwigScoreLayerImpl(const models::WeightMap& w, const std::string& prefix,
                                       const io::LlamaConfig& cfg) {
    m_norm =
        register_module("input_layernorm", models::RmsNorm(w, prefix + ".input_layernorm", cfg.rmsNormEps));
    m_attn = register_module("self_attn", TwigQkProj(w, prefix + ".self_attn"));
}

std::pair<torch::Tensor, torch::Tensor> TwigScoreLayerImpl::project(const torch::Tensor& query,
                                                                    const torch::Tensor& keys) const {
    return {m_attn->q()->forward(m_norm->forward(query)), m_attn->k()->forward(m_norm->forward(keys))};
}

RpnImpl::RpnImpl(const RpnConfig& config, const io::LlamaConfig& text, const models::WeightMap& weights)
    : m_config(config), m_text(text) {
    checkConfig(config, "SD-RPN");
    m_twigLayers = register_module("twig_layers", torch::nn::ModuleList());
    for (int t = 0; t + 1 < config.T; ++t) {
        auto layer = models::LlamaDecoderLayer(weights, twigPrefix(t), text);
        m_twigLayers->push_back(layer);
        m_layers.push_back(layer);
    }
    m_score = TwigScoreLayer(weights, twigPrefix(config.T - 1), text);
    m_twigLayers->push_back(m_score);
    if (config.twigNorm)
        m_twigNorm = register_module("twig_norm", models::RmsNorm(weights, "twig_norm", text.rmsNormEps));
    const torch::Tensor& any = models::weight(weights, twigPrefix(config.T - 1) + ".input_layernorm.weight");
    m_rope = models::RotaryEmbedding(text.headDim, text.ropeTheta, any.device());
}

torch::Tensor RpnImpl::forward(const torch::Tensor& hidden, std::int64_t queryRow, std::int64_t imageStart,
                               std::int64_t imageCount, const models::RopeTable* rope) const {
    TORCH_CHECK(hidden.defined() && (hidden.dim() == 2 || (hidden.dim() == 3 && hidden.size(0) == 1)),
                "SD-RPN: hidden states must be [L, hidden] or [1, L, hidden], got ",
                hidden.defined() ? hidden.sizes() : torch::IntArrayRef{});
    torch::Tensor h = hidden.dim() == 2 ? hidden.unsqueeze(0) : hidden;
    const std::int64_t len = h.size(1);
    TORCH_CHECK(h.size(2) == m_text.hiddenSize, "SD-RPN: hidden size ", h.size(2), " but the twig expects ",
                m_text.hiddenSize);
    TORCH_CHECK(queryRow >= 0 && queryRow < len, "SD-RPN: query row ", queryRow, " outside the ", len,
                " rows");
    TORCH_CHECK(imageCount > 0 && imageStart >= 0 && imageStart + imageCount <= len, "SD-RPN: image rows [",
                imageStart, ", ", imageStart + imageCount, ") outside the ", len, " rows");
    // The query attends to everything before it, so the twig layers run over rows 0 .. queryRow only.
    const std::int64_t used = std::max(queryRow, imageStart + imageCount - 1) + 1;
    h = h.narrow(1, 0, used);
    models::RopeTable table;
    if (rope) {
        TORCH_CHECK(rope->cos.defined() && rope->cos.size(0) >= used, "SD-RPN: the rotary table covers ",
                    rope->cos.defined() ? rope->cos.size(0) : 0, " rows, the twig needs ", used);
        table = {rope->cos.narrow(0, 0, used).to(h.scalar_type()),
                 rope->sin.narrow(0, 0, used).to(h.scalar_type())};
    } else {
        table = m_rope.table(0, used, h.scalar_type());
    }
    for (const auto& layer : m_layers) h = layer->forward(h, table, 0);
    // LLaVA: twig_norm before the score layer (§3.1); Qwen2.5-VL: none (§3.6).
    h = m_config.twigNorm ? m_twigNorm->forward(h[0]) : h[0];

    auto [q, k] = m_score->project(h.narrow(0, queryRow, 1), h.narrow(0, imageStart, imageCount));
    q = q.to(torch::kFloat)[0];  // [heads · d]
    k = k.to(torch::kFloat);     // [n, kvHeads · d]
    const int heads = m_text.numAttentionHeads, kvHeads = m_text.numKeyValueHeads, d = m_text.headDim;
    if (!m_config.multiHead) {
        TORCH_CHECK(q.size(0) == k.size(1), "SD-RPN: q and k widths differ (", q.size(0), " vs ", k.size(1),
                    "); roi_multi_head = false needs equal widths");
        return torch::mv(k, q);
    }
    // §3.2: logit_v = (1/H) Σ_h q_h·k_{v,h} / √d_h; query head h reads kv head h / (H / H_kv).
    auto qh = q.view({heads, d});
    auto kh = k.view({imageCount, kvHeads, d});
    if (kvHeads != heads) kh = kh.repeat_interleave(heads / kvHeads, 1);
    return (kh * qh.unsqueeze(0)).sum(-1).mean(-1) / std::sqrt(double(d));
}

std::vector<std::pair<std::string, torch::Tensor>> RpnImpl::checkpointTensors() const {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& p : named_parameters(/*recurse=*/true)) out.emplace_back("model." + p.key(), p.value());
    return out;
}

void RpnImpl::setTrainable(bool trainable) {
    for (auto& p : parameters(/*recurse=*/true)) p.set_requires_grad(trainable);
}

// ---- names and specs
// ---------------------------------------------------------------------------------------

std::vector<models::WeightSpec> rpnWeightSpecs(const RpnConfig& config, const io::LlamaConfig& cfg) {
    const std::int64_t h = cfg.hiddenSize, inter = cfg.intermediateSize;
    const std::int64_t qDim = std::int64_t(cfg.numAttentionHeads) * cfg.headDim;
    const std::int64_t kvDim = std::int64_t(cfg.numKeyValueHeads) * cfg.headDim;
    std::vector<models::WeightSpec> specs;
    for (int t = 0; t < config.T; ++t) {
        const std::string p = twigPrefix(t);
        const bool last = t + 1 == config.T;
        specs.push_back({p + ".input_layernorm.weight", {h}});
        specs.push_back({p + ".self_attn.q_proj.weight", {qDim, h}});
        specs.push_back({p + ".self_attn.k_proj.weight", {kvDim, h}});
        if (cfg.attentionBias) {
            specs.push_back({p + ".self_attn.q_proj.bias", {qDim}});
            specs.push_back({p + ".self_attn.k_proj.bias", {kvDim}});
        }
        if (last) continue;  // §3.4: the rest of the last twig layer is unused
        specs.push_back({p + ".self_attn.v_proj.weight", {kvDim, h}});
        specs.push_back({p + ".self_attn.o_proj.weight", {h, qDim}});
        if (cfg.attentionBias) {
            specs.push_back({p + ".self_attn.v_proj.bias", {kvDim}});
            if (!cfg.qkvBiasOnly) specs.push_back({p + ".self_attn.o_proj.bias", {h}});
        }
        specs.push_back({p + ".post_attention_layernorm.weight", {h}});
        specs.push_back({p + ".mlp.gate_proj.weight", {inter, h}});
        specs.push_back({p + ".mlp.up_proj.weight", {inter, h}});
        specs.push_back({p + ".mlp.down_proj.weight", {h, inter}});
        if (cfg.mlpBias) {
            specs.push_back({p + ".mlp.gate_proj.bias", {inter}});
            specs.push_back({p + ".mlp.up_proj.bias", {inter}});
            specs.push_back({p + ".mlp.down_proj.bias", {h}});
        }
    }
    if (config.twigNorm) specs.push_back({"twig_norm.weight", {h}});
    return specs;
}

std::string normaliseRpnKey(const std::string& key, const RpnConfig& config) {
    // "model.twig_layers.0.x", "language_model.model.twig_layers.0.x", "twig_layers.0.x" → "twig_layers.0.x"
    for (const char* root : {"twig_layers.", "twig_norm."}) {
        if (!config.twigNorm && std::string(root) == "twig_norm.") continue;
        const auto at = key.find(root);
        if (at == std::string::npos || (at > 0 && key[at - 1] != '.')) continue;
        const std::string name = key.substr(at);
        if (name.rfind("twig_layers.", 0) == 0) {
            const std::string rest = name.substr(std::string("twig_layers.").size());
            const auto dot = rest.find('.');
            if (dot == std::string::npos) return "";
            int t = -1;
            try {
                t = std::stoi(rest.substr(0, dot));
            } catch (const std::exception&) {
                return "";
            }
            if (t < 0 || t >= config.T) return "";
            if (t + 1 == config.T) {
                const std::string sub = rest.substr(dot + 1);
                if (sub.rfind("input_layernorm.", 0) != 0 && sub.rfind("self_attn.q_proj.", 0) != 0 &&
                    sub.rfind("self_attn.k_proj.", 0) != 0)
                    return "";
            }
        }
        return name;
    }
    return "";
}

const io::LlamaConfig& rpnTextConfig(const models::Backbone& backbone) {
    if (const auto* decoder = dynamic_cast<const models::DecoderBackbone*>(&backbone))
        return decoder->text()->config();
    throw Error("SD-RPN: the twig is built from LLaMA decoder layers; backbone '" +
                backbone.info().modelType + "' has none");
}

bool rpnUsesTwigNorm(const models::Backbone& backbone) {
    return backbone.info().modelType != "qwen2_5_vl";
}

// ---- construction
// ------------------------------------------------------------------------------------------

Rpn initRpnFromBackbone(const models::Backbone& backbone, const RpnConfig& requested, bool shareWeights) {
    RpnConfig config = requested;
    config.twigNorm = rpnUsesTwigNorm(backbone);
    checkConfig(config, "SD-RPN twiginit");
    const io::LlamaConfig& text = rpnTextConfig(backbone);
    const int layers = backbone.layerCount();
    if (config.K + config.T > layers)
        throw Error("SD-RPN twiginit: K + T = " + std::to_string(config.K) + " + " +
                    std::to_string(config.T) + " exceeds the backbone's " + std::to_string(layers) +
                    " layers");
    torch::NoGradGuard noGrad;
    auto take = [&](const torch::Tensor& t) { return shareWeights ? t : t.detach().clone(); };
    models::WeightMap w;
    for (int t = 0; t < config.T; ++t)
        for (const auto& [name, tensor] : backbone.decoderLayerWeights(config.K + t))
            w[twigPrefix(t) + "." + name] = take(tensor);
    if (config.twigNorm) w["twig_norm.weight"] = take(backbone.finalNormWeight());
    return Rpn(config, text, w);
}

namespace {

nlohmann::json readJsonFile(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Error(path + ": cannot open");
    try {
        return nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        throw Error(path + ": not valid JSON (" + e.what() + ")");
    }
}

int intKey(const nlohmann::json& j, const char* key, const std::string& file) {
    const auto& v = j.at(key);
    if (v.is_number_integer()) return v.get<int>();
    if (v.is_string()) {  // safetensors metadata holds strings
        try {
            std::size_t used = 0;
            const int i = std::stoi(v.get<std::string>(), &used);
            if (used == v.get<std::string>().size()) return i;
        } catch (const std::exception&) {
        }
    }
    throw Error(file + ": '" + key + "' must be an integer, got " + v.dump());
}

bool boolKey(const nlohmann::json& j, const char* key, const std::string& file) {
    const auto& v = j.at(key);
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_string() && (v == "true" || v == "True" || v == "1")) return true;
    if (v.is_string() && (v == "false" || v == "False" || v == "0")) return false;
    throw Error(file + ": '" + key + "' must be true or false, got " + v.dump());
}

RpnConfig configFromJson(const nlohmann::json& j, const std::string& file) {
    if (!j.is_object()) throw Error(file + ": expected a JSON object");
    for (const char* key : {"twig_K", "twig_T"})
        if (!j.contains(key)) throw Error(file + ": no '" + key + "' (not an SD-RPN checkpoint?)");
    RpnConfig c;
    c.K = intKey(j, "twig_K", file);
    c.T = intKey(j, "twig_T", file);
    c.multiHead = j.contains("roi_multi_head") && !j["roi_multi_head"].is_null()
                      ? boolKey(j, "roi_multi_head", file)
                      : true;
    checkConfig(c, file);
    return c;
}

}  // namespace

RpnConfig readRpnConfig(const std::string& path) {
    if (fs::is_directory(path)) {
        const std::string cfg = (fs::path(path) / "config.json").string();
        if (!fs::exists(cfg)) throw Error(path + ": no config.json (an SD-RPN checkpoint folder has one)");
        return configFromJson(readJsonFile(cfg), cfg);
    }
    if (!fs::exists(path)) throw Error(path + ": no such file or folder");
    if (fs::path(path).extension() == ".json") return configFromJson(readJsonFile(path), path);
    // A .safetensors file: config.json beside it, else its metadata.
    const fs::path beside = fs::path(path).parent_path() / "config.json";
    if (fs::exists(beside)) {
        const auto j = readJsonFile(beside.string());
        if (j.is_object() && j.contains("twig_K")) return configFromJson(j, beside.string());
    }
    const auto file = io::SafetensorsFile::open(path);
    nlohmann::json meta = nlohmann::json::object();
    for (const auto& [k, v] : file->metadata()) meta[k] = v;
    return configFromJson(meta, path + " (metadata)");
}

Rpn loadRpn(const std::string& path, const models::Backbone& backbone, const JobContext& job) {
    RpnConfig config = readRpnConfig(path);
    config.twigNorm = rpnUsesTwigNorm(backbone);
    const io::LlamaConfig& text = rpnTextConfig(backbone);
    if (config.K > backbone.layerCount())
        throw Error(path + ": twig_K = " + std::to_string(config.K) + " but the backbone has " +
                    std::to_string(backbone.layerCount()) + " layers");
    std::shared_ptr<const io::SafetensorsArchive> archive;
    try {
        archive = io::SafetensorsArchive::open(path);
    } catch (const Error& e) {
        throw Error(std::string(e.what()) + " (SD-RPN checkpoints are read from .safetensors files)");
    }
    models::WeightSource source;
    source.addArchive(archive, [&](const std::string& key) { return normaliseRpnKey(key, config); });
    const auto specs = rpnWeightSpecs(config, text);
    const std::string what =
        "SD-RPN twig (K=" + std::to_string(config.K) + ", T=" + std::to_string(config.T) + ") in " + path;
    models::checkWeights(source, specs, what);
    const auto& info = backbone.info();
    models::WeightMap w = models::loadWeights(source, specs, info.device, info.dtype, job, what);
    return Rpn(config, text, w);
}

Result<Rpn> tryLoadRpn(const std::string& path, const models::Backbone& backbone, const JobContext& job) {
    return guarded([&] { return loadRpn(path, backbone, job); });
}

void saveRpn(const Rpn& rpn, const std::string& folder) {
    TORCH_CHECK(!rpn.is_empty(), "saveRpn: empty module");
    std::error_code ec;
    fs::create_directories(folder, ec);
    if (ec) throw Error("cannot create " + folder + ": " + ec.message());
    const RpnConfig& c = rpn->config();
    io::saveTensors((fs::path(folder) / "model.safetensors").string(), rpn->checkpointTensors(),
                    {{"format", "pt"},
                     {"twig_K", std::to_string(c.K)},
                     {"twig_T", std::to_string(c.T)},
                     {"roi_multi_head", c.multiHead ? "true" : "false"}});
    const std::string cfgPath = (fs::path(folder) / "config.json").string();
    const std::string tmp = cfgPath + ".tmp";
    {
        std::ofstream out(tmp);
        out << nlohmann::json{{"twig_K", c.K}, {"twig_T", c.T}, {"roi_multi_head", c.multiHead}}.dump(2)
            << "\n";
        if (!out) throw Error("cannot write " + tmp);
    }
    fs::rename(tmp, cfgPath, ec);
    if (ec) throw Error("cannot write " + cfgPath + ": " + ec.message());
}

}  // namespace sdrpn
