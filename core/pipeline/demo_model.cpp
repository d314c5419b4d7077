#include "core/pipeline/demo_model.h"

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/io/tensor_io.h"
#include "core/text/tokenizer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sdrpn::pipeline {
namespace {

// A small English corpus of questions and answers about pictures, built from word lists so that the
// tokenizer sees the words the studio's users type.
std::string demoCorpus(std::uint64_t seed) {
    const std::vector<std::string> objects = {
        "sign",   "car",    "street", "house",  "tree",   "person", "dog",   "cat",   "bus",      "bicycle",
        "window", "door",   "road",   "sky",    "cloud",  "sun",    "table", "chair", "cup",      "bottle",
        "book",   "phone",  "screen", "clock",  "light",  "bridge", "river", "boat",  "train",    "truck",
        "shirt",  "hat",    "shoe",   "bag",    "flower", "grass",  "wall",  "roof",  "fence",    "pole",
        "label",  "poster", "menu",   "number", "letter", "word",   "logo",  "plate", "building", "tower"};
    const std::vector<std::string> attributes = {
        "red",  "green", "blue",   "yellow", "white", "black",  "small",  "large", "old",  "new",
        "tall", "short", "bright", "dark",   "round", "square", "wooden", "metal", "open", "closed"};
    const std::vector<std::string> questions = {
        "What is written on the {o}?", "What color is the {o}?",    "How many {o}s are there?",
        "Where is the {a} {o}?",       "Is the {o} {a}?",           "What is next to the {o}?",
        "What number is on the {o}?",  "Which side is the {o} on?", "What is the {a} object?",
        "Describe the {o} in detail."};
    const std::vector<std::string> answers = {"The {o} is {a}.",
                                              "There is a {a} {o} on the left.",
                                              "It says the name of the street.",
                                              "There are two {o}s.",
                                              "The {o} is next to the {a} {o}.",
                                              "Yes, the {o} is {a}.",
                                              "No, it is not {a}.",
                                              "The number is 42.",
                                              "It is on the right side of the picture.",
                                              "A {a} {o} stands near the road."};
    std::mt19937_64 rng(seed);
    auto pick = [&](const std::vector<std::string>& v) -> const std::string& { return v[rng() % v.size()]; };
    auto fill = [&](std::string s) {
        for (std::size_t p; (p = s.find("{o}")) != std::string::npos;) s.replace(p, 3, pick(objects));
        for (std::size_t p; (p = s.find("{a}")) != std::string::npos;) s.replace(p, 3, pick(attributes));
        return s;
    };
    std::ostringstream os;
    os << "A chat between a curious human and an artificial intelligence assistant. The assistant gives "
          "helpful, detailed, and polite answers to the human's questions.\n"
          "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
          "helpful, detailed, and polite answers to the user's questions.\n";
    for (int i = 0; i < 4000; ++i) {
        os << "USER: " << fill(pick(questions)) << " ASSISTANT: " << fill(pick(answers)) << "\n";
        if (i % 10 == 0) os << "Answer the question using a single word or phrase. 0123456789\n";
    }
    return os.str();
}

void writeText(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw Error("cannot write " + path.string());
}

}  // namespace

Result<void> makeDemoModel(const std::string& folder, const DemoModelOptions& o, JobContext& ctx) {
    return guarded([&] {
        const fs::path dir(folder);
        if (fs::exists(dir / "model.safetensors") && !o.overwrite)
            throw Error(folder + " already holds a model (model.safetensors); use --overwrite to replace it");
        fs::create_directories(dir);
        const int steps = 4;

        // 1. Tokenizer.
        ctx.report(0, steps, "training the tokenizer");
        const fs::path corpus = dir / "tokenizer-corpus.txt.tmp";
        writeText(corpus, demoCorpus(o.seed));
        text::SentencePieceTrainOptions trainOptions;
        trainOptions.extra["hard_vocab_limit"] = "false";  // a small corpus may give fewer pieces
        text::trainSentencePiece(corpus.string(), (dir / "tokenizer").string(), o.tokenizerVocab,
                                 trainOptions);
        fs::remove(corpus);
        if (fs::exists(dir / "tokenizer.vocab")) fs::remove(dir / "tokenizer.vocab");
        const text::SentencePieceTokenizer tokenizer((dir / "tokenizer.model").string());
        const std::int64_t pieces = tokenizer.spmVocabSize();
        const std::int64_t imageToken = pieces, padToken = pieces + 1;
        const std::int64_t vocab = ((pieces + 2 + 63) / 64) * 64;
        writeText(dir / "added_tokens.json",
                  json{{"<image>", imageToken}, {"<pad>", padToken}}.dump(2) + "\n");
        ctx.throwIfCancelled();

        // 2. Configs, in the llava-hf form.
        ctx.report(1, steps, "writing the configuration");
        json text = {{"model_type", "llama"},
                     {"vocab_size", vocab},
                     {"hidden_size", o.textHidden},
                     {"intermediate_size", o.textIntermediate},
                     {"num_hidden_layers", o.textLayers},
                     {"num_attention_heads", o.textHeads},
                     {"num_key_value_heads", o.textHeads},
                     {"max_position_embeddings", 4096},
                     {"rms_norm_eps", 1e-5},
                     {"rope_theta", 10000.0},
                     {"bos_token_id", 1},
                     {"eos_token_id", 2},
                     {"pad_token_id", padToken}};
        json vision = {{"model_type", "clip_vision_model"},
                       {"hidden_size", o.visionHidden},
                       {"intermediate_size", o.visionHidden * 4},
                       {"num_hidden_layers", o.visionLayers},
                       {"num_attention_heads", o.visionHeads},
                       {"image_size", 336},
                       {"patch_size", 14},
                       {"projection_dim", o.visionHidden},
                       {"hidden_act", "quick_gelu"},
                       {"layer_norm_eps", 1e-5}};
        json config = {{"architectures", {"LlavaForConditionalGeneration"}},
                       {"model_type", "llava"},
                       {"image_token_index", imageToken},
                       {"pad_token_id", padToken},
                       {"projector_hidden_act", "gelu"},
                       {"vision_feature_layer", -2},
                       {"vision_feature_select_strategy", "default"},
                       {"image_seq_length", 576},
                       {"tie_word_embeddings", false},
                       {"torch_dtype", "float16"},
                       {"text_config", text},
                       {"vision_config", vision},
                       {"sdrpn_demo", "random weights: this model shows the machinery, not meaning"}};
        writeText(dir / "config.json", config.dump(2) + "\n");
        json pre = {{"crop_size", {{"height", 336}, {"width", 336}}},
                    {"do_center_crop", true},
                    {"do_normalize", true},
                    {"do_resize", true},
                    {"do_rescale", true},
                    {"rescale_factor", 1.0 / 255.0},
                    {"image_mean", {0.48145466, 0.4578275, 0.40821073}},
                    {"image_std", {0.26862954, 0.26130258, 0.27577711}},
                    {"resample", 3},
                    {"size", {{"shortest_edge", 336}}},
                    {"image_processor_type", "CLIPImageProcessor"}};
        writeText(dir / "preprocessor_config.json", pre.dump(2) + "\n");
        ctx.throwIfCancelled();

        // 3. Weights: HF's initialisation (normal, std 0.02; norms 1; biases 0) except the language model's
        // q/k projections (attentionStd), fixed seed, stored fp16.
        ctx.report(2, steps, "making random weights");
        torch::NoGradGuard noGrad;
        auto gen = at::detail::createCPUGenerator(o.seed);
        std::vector<std::pair<std::string, torch::Tensor>> t;
        auto normal = [&](std::vector<std::int64_t> shape, double std = 0.02) {
            return at::normal(0.0, std, shape, gen).to(torch::kHalf);
        };
        auto ones = [](std::int64_t n) { return torch::ones({n}, torch::kHalf); };
        auto zeros = [](std::int64_t n) { return torch::zeros({n}, torch::kHalf); };
        const std::int64_t vh = o.visionHidden, vi = o.visionHidden * 4, th = o.textHidden,
                           ti = o.textIntermediate;
        const std::string v = "vision_tower.vision_model.";
        t.emplace_back(v + "embeddings.patch_embedding.weight", normal({vh, 3, 14, 14}));
        t.emplace_back(v + "embeddings.class_embedding", normal({vh}));
        t.emplace_back(v + "embeddings.position_embedding.weight", normal({577, vh}));
        t.emplace_back(v + "pre_layrnorm.weight", ones(vh));
        t.emplace_back(v + "pre_layrnorm.bias", zeros(vh));
        for (int i = 0; i < o.visionLayers; ++i) {
            const std::string p = v + "encoder.layers." + std::to_string(i) + ".";
            for (const char* n : {"layer_norm1", "layer_norm2"}) {
                t.emplace_back(p + n + ".weight", ones(vh));
                t.emplace_back(p + n + ".bias", zeros(vh));
            }
            for (const char* n : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
                t.emplace_back(p + "self_attn." + n + ".weight", normal({vh, vh}));
                t.emplace_back(p + "self_attn." + n + ".bias", zeros(vh));
            }
            t.emplace_back(p + "mlp.fc1.weight", normal({vi, vh}));
            t.emplace_back(p + "mlp.fc1.bias", zeros(vi));
            t.emplace_back(p + "mlp.fc2.weight", normal({vh, vi}));
            t.emplace_back(p + "mlp.fc2.bias", zeros(vh));
        }
        t.emplace_back(v + "post_layernorm.weight", ones(vh));
        t.emplace_back(v + "post_layernorm.bias", zeros(vh));
        t.emplace_back("multi_modal_projector.linear_1.weight", normal({th, vh}));
        t.emplace_back("multi_modal_projector.linear_1.bias", zeros(th));
        t.emplace_back("multi_modal_projector.linear_2.weight", normal({th, th}));
        t.emplace_back("multi_modal_projector.linear_2.bias", zeros(th));
        const std::string l = "language_model.model.";
        t.emplace_back(l + "embed_tokens.weight", normal({vocab, th}));
        for (int i = 0; i < o.textLayers; ++i) {
            ctx.throwIfCancelled();
            const std::string p = l + "layers." + std::to_string(i) + ".";
            t.emplace_back(p + "input_layernorm.weight", ones(th));
            t.emplace_back(p + "post_attention_layernorm.weight", ones(th));
            // Wider q/k than HF's 0.02: with 0.02 the scaled q·k of a model this narrow is ~0.1 and every
            // head attends almost uniformly, which leaves nothing to see and no pseudo-label to learn.
            for (const char* n : {"q_proj", "k_proj"})
                t.emplace_back(p + "self_attn." + n + ".weight", normal({th, th}, o.attentionStd));
            for (const char* n : {"v_proj", "o_proj"})
                t.emplace_back(p + "self_attn." + n + ".weight", normal({th, th}));
            t.emplace_back(p + "mlp.gate_proj.weight", normal({ti, th}));
            t.emplace_back(p + "mlp.up_proj.weight", normal({ti, th}));
            t.emplace_back(p + "mlp.down_proj.weight", normal({th, ti}));
        }
        t.emplace_back(l + "norm.weight", ones(th));
        t.emplace_back("language_model.lm_head.weight", normal({vocab, th}));

        ctx.report(3, steps, "writing model.safetensors");
        io::saveTensors((dir / "model.safetensors").string(), t,
                        {{"format", "pt"},
                         {kDemoMetadataKey, kDemoMetadataValue},
                         {"sdrpn.seed", std::to_string(o.seed)},
                         {"sdrpn.demo_version", std::to_string(kDemoModelVersion)}});
        writeText(
            dir / "README.txt",
            "SD-RPN Studio demo model (demo model version " + std::to_string(kDemoModelVersion) +
                ")\n\n"
                "A LLaVA-1.5 (llava-hf layout) with the real image geometry (336 px, patch 14, 24x24 image "
                "tokens)\n"
                "but tiny widths and RANDOM weights, made by `sdrpn make-demo-model` from seed " +
                std::to_string(o.seed) +
                ".\nIt shows the machinery (attention maps, labels, boxes, jobs), not meaning: its "
                "answers are "
                "nonsense.\n");
        ctx.report(steps, steps, "done");
    });
}

}  // namespace sdrpn::pipeline
