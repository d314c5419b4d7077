#include "fuzz/harness.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "core/data/dataset.h"
#include "core/data/label_store.h"
#include "core/io/config.h"
#include "core/io/image.h"
#include "core/io/pickle.h"
#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/models/clip_image_processor.h"
#include "core/models/qwen_image_processor.h"
#include "core/result.h"
#include "core/sdrpn/labels.h"
#include "core/text/bpe_tokenizer.h"
#include "core/text/tokenizer.h"

#include <torch/torch.h>

namespace fs = std::filesystem;

namespace sdrpn::fuzz {
namespace {

// A private scratch folder for the parsers that read files (one per process).
const fs::path& scratch() {
    static const fs::path dir = [] {
        const char* tmp = std::getenv("TMPDIR");
        fs::path d = fs::path(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") /
                     ("sdrpn-fuzz-" + std::to_string(::getpid()));
        fs::create_directories(d);
        return d;
    }();
    return dir;
}

std::string writeInput(const std::string& name, const std::uint8_t* data, std::size_t size) {
    const fs::path path = scratch() / name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
    out.close();
    return path.string();
}

std::string textOf(const std::uint8_t* data, std::size_t size) {
    return std::string(reinterpret_cast<const char*>(data), size);
}

thread_local std::string g_refusal;

// Runs `body`; sdrpn::Error is the expected way out, every other exception is a finding.
template <class F>
int guard(const char* target, F&& body) {
    g_refusal.clear();
    try {
        body();
    } catch (const Error& e) {
        g_refusal = e.what();  // a clear refusal: fine
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz %s: an exception other than sdrpn::Error escaped: %s\n", target, e.what());
        std::abort();
    } catch (...) {
        std::fprintf(stderr, "fuzz %s: a non-std exception escaped\n", target);
        std::abort();
    }
    return 0;
}

// Reads every tensor's data, the way loading a model does.
void touchTensors(const io::SafetensorsArchive& archive) {
    for (const auto& [key, tensor] : io::loadTensors(archive)) {
        if (tensor.numel() > 0) (void)tensor.reshape(-1)[0].item<double>();
    }
}

int safetensors(const std::uint8_t* data, std::size_t size) {
    return guard("safetensors", [&] {
        const std::string path = writeInput("model.safetensors", data, size);
        touchTensors(*io::SafetensorsArchive::open(path));
    });
}

// A sharded model's index: the input is model.safetensors.index.json beside one small valid shard.
int safetensorsIndex(const std::uint8_t* data, std::size_t size) {
    return guard("safetensors_index", [&] {
        const fs::path dir = scratch() / "sharded";
        if (!fs::exists(dir / "model-00001-of-00001.safetensors")) {
            fs::create_directories(dir);
            io::saveTensors((dir / "model-00001-of-00001.safetensors").string(),
                            {{"a", torch::arange(6, torch::kFloat).reshape({2, 3})},
                             {"b", torch::ones({4}, torch::kInt64)}});
        }
        std::ofstream(dir / "model.safetensors.index.json", std::ios::binary | std::ios::trunc)
            .write(reinterpret_cast<const char*>(data), std::streamsize(size));
        touchTensors(*io::SafetensorsArchive::open(dir.string()));
    });
}

int torchBin(const std::uint8_t* data, std::size_t size) {
    return guard("torch_bin", [&] {
        const std::string path = writeInput("pytorch_model.bin", data, size);
        touchTensors(*io::SafetensorsArchive::open(path));
    });
}

int pickle(const std::uint8_t* data, std::size_t size) {
    return guard("pickle", [&] {
        io::UnpickleOptions options;
        options.source = "fuzz.pkl";
        (void)io::unpickle(data, size, options);
    });
}

// config.json: its model_type, then the reader of that family, as loading a model folder does; the
// readers of the other families must refuse it cleanly too.
int config(const std::uint8_t* data, std::size_t size) {
    const std::string text = textOf(data, size);
    std::string type;
    guard("config/model_type",
          [&] { type = io::readModelType(writeInput("config.json", data, size)).modelType; });
    const std::string typeRefusal = g_refusal;
    std::string refusal;
    auto family = [&](const char* name, bool mine, auto&& parse) {
        guard(name, parse);
        if (mine) refusal = g_refusal;
    };
    family("config/llava", type == "llava", [&] { (void)io::parseLlavaConfig(text, "config.json"); });
    family("config/qwen", type == "qwen2_5_vl", [&] { (void)io::parseQwenVlConfig(text, "config.json"); });
    family("config/deepseek", type == "deepseek_vl" || type == "multi_modality",
           [&] { (void)io::parseDeepseekVlConfig(text, "config.json"); });
    g_refusal = !typeRefusal.empty() ? typeRefusal : refusal;
    return 0;
}

void useTokenizer(const text::Tokenizer& tok) {
    const std::vector<std::int64_t> ids = tok.encode("Hello, world! What is in the image? 12 ½ 日本");
    (void)tok.decode(ids);
    for (std::int64_t id : ids) (void)tok.idToPiece(id);
    (void)tok.encodeWithOffsets("a b  c\n<image>\n");
}

int tokenizerJson(const std::uint8_t* data, std::size_t size) {
    return guard("tokenizer_json", [&] {
        const std::string path = writeInput("tokenizer.json", data, size);
        text::BpeTokenizer tok(path);
        useTokenizer(tok);
    });
}

int sentencepiece(const std::uint8_t* data, std::size_t size) {
    return guard("sentencepiece", [&] {
        const std::string path = writeInput("tokenizer.model", data, size);
        text::SentencePieceTokenizer tok(path);
        useTokenizer(tok);
    });
}

int datasetFile(const char* target, const char* name, const std::uint8_t* data, std::size_t size) {
    return guard(target, [&] {
        const std::string path = writeInput(name, data, size);
        data::DatasetOptions options;
        options.checkImages = false;
        const data::Dataset d = data::readDataset(path, options);
        for (const auto& s : d.samples) (void)data::stripImagePlaceholder(s.question);
    });
}

int datasetJson(const std::uint8_t* data, std::size_t size) {
    return datasetFile("dataset_json", "questions.json", data, size);
}
int datasetJsonl(const std::uint8_t* data, std::size_t size) {
    return datasetFile("dataset_jsonl", "questions.jsonl", data, size);
}

int labelSettings(const std::uint8_t* data, std::size_t size) {
    return guard("label_settings", [&] {
        const LabelSettings s = LabelSettings::fromJsonText(textOf(data, size), "settings.json");
        (void)s.toJson().dump();
    });
}

int image(const std::uint8_t* data, std::size_t size) {
    return guard("image", [&] {
        const io::ImageRgb8 img = io::decodeImage(std::vector<std::uint8_t>(data, data + size), "fuzz image");
        if (!img.empty()) (void)*img.at(img.width - 1, img.height - 1);
    });
}

// preprocessor_config.json through both readers, the CLIP one (LLaVA, DeepSeek-VL) and the Qwen2-VL one, as
// loading a model folder does; a small image then goes through what each accepted, when that stays cheap
// (a square side up to 512, a minimum up to 1 M pixels: larger ones are valid but slow the fuzzer down).
// Accepted when either reader accepts.
int preprocessorConfig(const std::uint8_t* data, std::size_t size) {
    const std::string path = writeInput("preprocessor_config.json", data, size);
    io::ImageRgb8 image;
    image.width = 61;
    image.height = 37;
    image.pixels.resize(std::size_t(image.width) * image.height * 3);
    for (std::size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = std::uint8_t(i * 7);
    guard("preprocessor_config/clip", [&] {
        const models::ClipPreprocessConfig c = models::readClipPreprocessConfig(path);
        if (c.size <= 512) (void)models::ClipImageProcessor(c).process(image);
    });
    const std::string clipRefusal = g_refusal;
    guard("preprocessor_config/qwen", [&] {
        const models::QwenPreprocessConfig q = models::readQwenPreprocessConfig(path);
        if (q.minPixels <= 1000000) (void)models::QwenImageProcessor(q).process(image);
    });
    if (g_refusal.empty() || clipRefusal.empty()) g_refusal.clear();
    return 0;
}

// A label store (SQLite) opened read-only, as `sdrpn labels` and the studio's label browser do: every sample
// read with its maps and turned into attention maps.
int labelStore(const std::uint8_t* data, std::size_t size) {
    return guard("label_store", [&] {
        const std::string path = writeInput("labels.sdrpn", data, size);
        std::error_code ec;  // what SQLite left beside the previous input must not replay into this one
        fs::remove(path + "-wal", ec);
        fs::remove(path + "-shm", ec);
        data::LabelStore::Options options;
        options.access = data::LabelStore::Access::ReadOnly;
        const data::LabelStore store = data::LabelStore::open(path, options);
        (void)store.count();
        for (const auto& d : store.datasets()) (void)store.keys(d);
        store.forEach([](const data::StoredSample& s) {
            (void)s.toAttentionMaps();
            for (const auto& m : s.maps) (void)s.meanMap(m.layer, {});
            return true;
        });
    });
}

}  // namespace

const std::vector<Target>& targets() {
    static const std::vector<Target> all = {
        {"safetensors", "a .safetensors file: header JSON, dtypes, shapes, offsets, data", safetensors},
        {"safetensors_index", "model.safetensors.index.json of a sharded model", safetensorsIndex},
        {"torch_bin", "a PyTorch .bin zip checkpoint (zip, data.pkl, storages)", torchBin},
        {"pickle", "the restricted unpickler (released pseudo-label .pkl files)", pickle},
        {"config", "config.json: LLaVA, Qwen2.5-VL, DeepSeek-VL, CLIP variants and model_type", config},
        {"tokenizer_json", "tokenizer.json (byte-level BPE) then encode / decode", tokenizerJson},
        {"sentencepiece", "tokenizer.model (sentencepiece protobuf) then encode / decode", sentencepiece},
        {"dataset_json", "LLaVA conversation JSON (mix665k style)", datasetJson},
        {"dataset_jsonl", "question JSONL (image, question, answer(s), bbox)", datasetJsonl},
        {"label_settings", "label settings JSON (as the studio saves them)", labelSettings},
        {"image", "an image file's bytes (PNG, JPEG, ... through OpenCV)", image},
        {"preprocessor_config", "preprocessor_config.json (CLIP and Qwen2-VL image processors)",
         preprocessorConfig},
        {"label_store", "a label store file (SQLite) read back sample by sample", labelStore},
    };
    return all;
}

const std::string& lastRefusal() {
    return g_refusal;
}

const Target* findTarget(const std::string& name) {
    for (const auto& t : targets())
        if (name == t.name) return &t;
    return nullptr;
}

}  // namespace sdrpn::fuzz
