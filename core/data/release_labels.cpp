#include "core/data/release_labels.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "core/data/labeling.h"
#include "core/io/image.h"
#include "core/io/pickle.h"

namespace sdrpn::data {
namespace fs = std::filesystem;

namespace {

constexpr int kGridSide = 24;
constexpr int kGridCells = kGridSide * kGridSide;
constexpr const char* kGroundingKey = "grounding_attn_o2i";
constexpr const char* kSinkKey = "sink_attn";
constexpr float kMaxHalf = 65504.0f;  // the largest finite fp16 value (maps are stored as fp16)

// ---------------------------------------------------------------------------------------------------------
// Image sizes from file headers

std::uint32_t be16(const std::uint8_t* p) {
    return std::uint32_t(p[0]) << 8 | p[1];
}
std::uint32_t be32(const std::uint8_t* p) {
    return be16(p) << 16 | be16(p + 2);
}
std::uint32_t le16(const std::uint8_t* p) {
    return std::uint32_t(p[1]) << 8 | p[0];
}
std::uint32_t le24(const std::uint8_t* p) {
    return std::uint32_t(p[2]) << 16 | le16(p);
}
std::uint32_t le32(const std::uint8_t* p) {
    return std::uint32_t(p[3]) << 24 | le24(p);
}

// Reads `n` bytes at `offset`; fewer at the end of the file.
std::vector<std::uint8_t> readAt(std::ifstream& in, std::uint64_t offset, std::size_t n) {
    std::vector<std::uint8_t> out(n);
    in.clear();
    in.seekg(std::streamoff(offset));
    in.read(reinterpret_cast<char*>(out.data()), std::streamsize(n));
    out.resize(std::size_t(std::max<std::streamsize>(in.gcount(), 0)));
    return out;
}

// The SOF segment's size of a JPEG: markers are walked from the start, skipping segments by their length.
std::optional<std::pair<int, int>> jpegSize(std::ifstream& in) {
    std::uint64_t pos = 2;  // after SOI
    for (int guard = 0; guard < 100000; ++guard) {
        std::vector<std::uint8_t> b = readAt(in, pos, 2);
        if (b.size() < 2 || b[0] != 0xFF) return std::nullopt;
        const std::uint8_t marker = b[1];
        if (marker == 0xFF) {  // fill byte
            ++pos;
            continue;
        }
        pos += 2;
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) continue;  // no length
        if (marker == 0xD9 || marker == 0xDA) return std::nullopt;           // EOI / SOS before any SOF
        b = readAt(in, pos, 7);
        if (b.size() < 2) return std::nullopt;
        const std::uint32_t length = be16(b.data());
        if (length < 2) return std::nullopt;
        const bool sof =
            marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
        if (sof) {
            if (b.size() < 7) return std::nullopt;
            return std::make_pair(int(be16(b.data() + 5)), int(be16(b.data() + 3)));
        }
        pos += length;
    }
    return std::nullopt;
}

std::optional<std::pair<int, int>> headerSize(std::ifstream& in) {
    const std::vector<std::uint8_t> h = readAt(in, 0, 32);
    const auto starts = [&](const char* magic, std::size_t at = 0) {
        const std::size_t n = std::char_traits<char>::length(magic);
        return h.size() >= at + n && std::equal(magic, magic + n, h.begin() + std::ptrdiff_t(at),
                                                [](char a, std::uint8_t b) { return std::uint8_t(a) == b; });
    };
    if (starts("\x89PNG\r\n\x1a\n") && h.size() >= 24 && starts("IHDR", 12))
        return std::make_pair(int(be32(h.data() + 16)), int(be32(h.data() + 20)));
    if (h.size() >= 3 && h[0] == 0xFF && h[1] == 0xD8 && h[2] == 0xFF) return jpegSize(in);
    if ((starts("GIF87a") || starts("GIF89a")) && h.size() >= 10)
        return std::make_pair(int(le16(h.data() + 6)), int(le16(h.data() + 8)));
    if (starts("BM") && h.size() >= 26) {
        if (le32(h.data() + 14) == 12)
            return std::make_pair(int(le16(h.data() + 18)), int(le16(h.data() + 20)));
        const auto height = std::int32_t(le32(h.data() + 22));
        return std::make_pair(int(std::int32_t(le32(h.data() + 18))),
                              int(height < 0 ? -std::int64_t(height) : height));
    }
    if (starts("RIFF") && starts("WEBP", 8) && h.size() >= 30) {
        if (starts("VP8 ", 12) && h[23] == 0x9D && h[24] == 0x01 && h[25] == 0x2A)
            return std::make_pair(int(le16(h.data() + 26) & 0x3FFF), int(le16(h.data() + 28) & 0x3FFF));
        if (starts("VP8L", 12) && h[20] == 0x2F) {
            const std::uint32_t bits = le32(h.data() + 21);
            return std::make_pair(int((bits & 0x3FFF) + 1), int(((bits >> 14) & 0x3FFF) + 1));
        }
        if (starts("VP8X", 12))
            return std::make_pair(int(le24(h.data() + 24) + 1), int(le24(h.data() + 27) + 1));
    }
    return std::nullopt;
}

// ---------------------------------------------------------------------------------------------------------
// Reading one dict

// A sample that cannot be imported; the message names the question_id and the key.
struct Reject {
    std::string reason;
};

// "a str", "an int".
std::string aKind(const io::PickleValue& v) {
    const std::string name = v.kindName();
    return (name.find_first_of("aeiou") == 0 ? "an " : "a ") + name;
}

std::string keyOf(const io::PickleValue& item, std::int64_t index) {
    const io::PickleValue* id = item.get("question_id");
    const std::string where = "item " + std::to_string(index);
    if (!id) throw Reject{where + ": missing key 'question_id'"};
    if (id->isString()) {
        if (id->str().empty()) throw Reject{where + ": empty question_id"};
        return id->str();
    }
    if (id->kind() == io::PickleValue::Kind::Int) return std::to_string(id->toInt());
    throw Reject{where + ": question_id is " + aKind(*id) + ", expected a str or an int"};
}

const std::string& stringOf(const io::PickleValue& item, const std::string& qid, const char* key) {
    const io::PickleValue* v = item.get(key);
    if (!v) throw Reject{"question_id " + qid + ": missing key '" + key + "'"};
    if (!v->isString())
        throw Reject{"question_id " + qid + ": '" + key + "' is " + aKind(*v) + ", expected a str"};
    return v->str();
}

std::string shapeText(const std::vector<std::int64_t>& shape) {
    std::string s = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
}

bool isGridShape(const std::vector<std::int64_t>& shape) {
    return (shape.size() == 1 && shape[0] == kGridCells) ||
           (shape.size() == 2 && shape[0] == kGridSide && shape[1] == kGridSide);
}

// The map under `key` as 576 floats, row-major. Infinite values are rejected; NaN is kept.
std::vector<float> mapOf(const io::PickleValue& item, const std::string& qid, const char* key,
                         bool checkInf) {
    const io::PickleValue* v = item.get(key);
    const std::string where = "question_id " + qid + ": '" + key + "'";
    if (!v) throw Reject{"question_id " + qid + ": missing key '" + key + "'"};
    if (v->isTensor()) throw Reject{where + " is a torch tensor, expected a numpy array"};
    if (!v->isArray()) throw Reject{where + " is " + aKind(*v) + ", expected a numpy array"};
    const io::NdArray& a = v->array();
    if (!isGridShape(a.shape))
        throw Reject{where + " has shape " + shapeText(a.shape) + ", expected (576,) or (24, 24)"};
    std::vector<float> values;
    try {
        values = a.toFloat32();
    } catch (const Error& e) {
        throw Reject{where + ": " + e.what()};
    }
    if (values.size() != std::size_t(kGridCells))
        throw Reject{where + " holds " + std::to_string(values.size()) + " values, expected 576"};
    for (std::size_t i = 0; checkInf && i < values.size(); ++i) {
        if (std::isinf(values[i]))
            throw Reject{where + " holds an infinite value at index " + std::to_string(i)};
        if (std::fabs(values[i]) > kMaxHalf)
            throw Reject{where + " holds " + std::to_string(values[i]) + " at index " + std::to_string(i) +
                         ", beyond the store's fp16 range"};
    }
    return values;
}

bool anyNan(const std::vector<float>& v) {
    return std::any_of(v.begin(), v.end(), [](float x) { return std::isnan(x); });
}

// ---------------------------------------------------------------------------------------------------------
// Where the maps go

// The (layer, head) pairs of groups; kHeadMean for a group naming no heads.
std::set<std::pair<int, int>> pairsOf(const std::vector<HeadGroup>& groups) {
    std::set<std::pair<int, int>> out;
    for (const auto& g : groups) {
        if (g.heads.empty()) out.insert({g.layer, kHeadMean});
        for (int h : g.heads) out.insert({g.layer, h});
    }
    return out;
}

struct Placement {
    std::set<std::pair<int, int>> grounding, sink;
    int layers = 0, heads = 1;
};

// Checks that the two maps can be stored side by side so that every mean labelsOf takes is exact.
Placement placementFor(const LabelSettings& settings, const std::string& presetName) {
    Placement p;
    p.grounding = pairsOf(settings.grounding);
    p.sink = pairsOf(settings.sink);
    std::set<int> groundingMeanLayers, sinkMeanLayers, groundingLayers, sinkLayers;
    for (const auto& [l, h] : p.grounding) (h == kHeadMean ? groundingMeanLayers : groundingLayers).insert(l);
    for (const auto& [l, h] : p.sink) (h == kHeadMean ? sinkMeanLayers : sinkLayers).insert(l);
    const auto clash = [&](const std::string& what) {
        throw Error("label preset '" + presetName + "' cannot hold released maps: " + what);
    };
    for (const auto& pair : p.grounding)
        if (p.sink.count(pair))
            clash("layer " + std::to_string(pair.first) +
                  (pair.second == kHeadMean ? " head mean" : " head " + std::to_string(pair.second)) +
                  " is in both the grounding and the sink groups");
    for (int l : groundingMeanLayers)
        if (sinkLayers.count(l) || sinkMeanLayers.count(l))
            clash("layer " + std::to_string(l) +
                  " is averaged over all heads for the grounding map and also used by the sink map");
    for (int l : sinkMeanLayers)
        if (groundingLayers.count(l))
            clash("layer " + std::to_string(l) +
                  " is averaged over all heads for the sink map and also used by the grounding map");
    for (const auto* set : {&p.grounding, &p.sink})
        for (const auto& [l, h] : *set) {
            p.layers = std::max(p.layers, l + 1);
            p.heads = std::max(p.heads, h + 1);
        }
    return p;
}

std::string presetFor(const io::PickleValue::Items& items, const std::string& requested) {
    if (!requested.empty()) return requested;
    for (const auto& item : items) {
        const io::PickleValue* g = item.get(kGroundingKey);
        if (g && g->isArray()) return g->array().shape.size() == 2 ? "qwen2.5-vl-7b" : "llava-1.5-7b";
    }
    return "llava-1.5-7b";
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------

models::GridGeometry releaseGeometry(LabelVariant variant, int width, int height) {
    // LLaVA-1.5: expand2square, 336 px, 14 px patches. Qwen (sdrpn.md §2.4): expand2square, then
    // min = max pixels = 576·28·28, so any square becomes 672×672 with 28 px merged cells.
    if (variant == LabelVariant::Qwen)
        return models::makeGridGeometry(width, height, models::ImageFit::Pad, 672, 28);
    return models::makeGridGeometry(width, height, models::ImageFit::Pad, 336, 14);
}

std::pair<int, int> imageFileSize(const std::string& path) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) throw Error(path + ": image not found");
    std::optional<std::pair<int, int>> size;
    {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw Error(path + ": cannot open the image");
        size = headerSize(in);
    }
    if (!size) {
        const io::ImageRgb8 image = io::loadImage(path);  // a format without a header reader here
        size = std::make_pair(image.width, image.height);
    }
    if (size->first <= 0 || size->second <= 0)
        throw Error(path + ": bad image size " + std::to_string(size->first) + "x" +
                    std::to_string(size->second));
    return *size;
}

ReleaseImportReport importReleasedLabels(const std::string& pklPath, const std::string& storePath,
                                         const ReleaseImportOptions& options, JobContext& job) {
    ReleaseImportReport report;
    report.dataset = options.dataset.empty() ? fs::path(pklPath).stem().string() : options.dataset;
    if (report.dataset.empty()) throw Error(pklPath + ": cannot name a dataset after this file (give one)");
    if (options.model.empty()) throw Error("importing " + pklPath + ": empty model id");

    // The whole file is read and checked before the store is touched.
    const io::PickleValue top = io::unpickleFile(pklPath);
    if (top.kind() != io::PickleValue::Kind::List && top.kind() != io::PickleValue::Kind::Tuple)
        throw Error(pklPath + ": expected a list of dicts (SD-RPN's released labels), found " + aKind(top));
    const io::PickleValue::Items& items = top.list();
    for (std::size_t i = 0; i < items.size(); ++i)
        if (!items[i].isDict())
            throw Error(pklPath + ": expected a list of dicts (SD-RPN's released labels), item " +
                        std::to_string(i) + " is " + aKind(items[i]));
    report.read = std::int64_t(items.size());

    report.preset = presetFor(items, options.preset);
    const LabelSettings settings = LabelSettings::fromPreset(report.preset);
    const Placement placement = placementFor(settings, report.preset);
    const std::string settingsJson = settings.toJson().dump();
    const bool useSink = !placement.sink.empty();

    LabelStore store = LabelStore::open(storePath);
    for (const auto& other : store.models())
        if (other != options.model)
            throw Error(store.path() + ": holds labels by model '" + other + "'; these are imported as '" +
                        options.model + "' (import into another store, or give that model id)");
    const std::vector<std::string> stored = store.keys(report.dataset);
    std::unordered_set<std::string> present(stored.begin(), stored.end());
    std::unordered_set<std::string> seen;
    std::unordered_map<std::string, std::pair<int, int>> sizes;  // images shared by several questions

    const auto note = [&](std::string line) {
        if (report.problems.size() < ReleaseImportReport::kMaxProblems)
            report.problems.push_back(std::move(line));
    };
    const auto progress = [&](std::int64_t done) {
        job.report(done, report.read,
                   report.dataset + ": " + std::to_string(done) + "/" + std::to_string(report.read) + " (" +
                       std::to_string(report.added) + " added, " + std::to_string(report.skipped) +
                       " skipped, " + std::to_string(report.rejected) + " rejected)");
    };

    for (std::size_t index = 0; index < items.size(); ++index) {
        job.throwIfCancelled();
        const io::PickleValue& item = items[index];
        try {
            const std::string key = keyOf(item, std::int64_t(index));
            if (!seen.insert(key).second || present.count(key)) {
                ++report.skipped;
                progress(std::int64_t(index) + 1);
                continue;
            }
            StoredSample s;
            s.dataset = report.dataset;
            s.key = key;
            s.question = stringOf(item, key, "prompt");
            s.answer = stringOf(item, key, "text");
            s.image = stringOf(item, key, "image");
            std::vector<float> grounding = mapOf(item, key, kGroundingKey, true);
            std::vector<float> sink = mapOf(item, key, kSinkKey, useSink);
            s.model = options.model;
            s.settings = settingsJson;
            s.gridRows = s.gridCols = kGridSide;
            s.modelLayers = placement.layers;
            s.modelHeads = placement.heads;

            if (options.checkImages) {
                const std::string path = (fs::path(options.imageRoot) / s.image).string();
                auto found = sizes.find(path);
                if (found == sizes.end()) {
                    try {
                        found = sizes.emplace(path, imageFileSize(path)).first;
                    } catch (const Error& e) {
                        throw Reject{"question_id " + key + ": " + e.what()};
                    }
                }
                s.geometry = releaseGeometry(settings.variant, found->second.first, found->second.second);
            } else {
                const int side = settings.variant == LabelVariant::Qwen ? 672 : 336;
                s.geometry = releaseGeometry(settings.variant, side, side);
            }

            const bool noSignal = anyNan(grounding) || (useSink && anyNan(sink));
            if (noSignal) {
                // The store's "no answer rows" case (sdrpn.md §2.3 ⚠): no maps, every label ignored.
                s.answerTokens = 0;
                note("question_id " + key + ": NaN in '" + (anyNan(grounding) ? kGroundingKey : kSinkKey) +
                     "'; kept without maps (no labels)");
            } else {
                s.answerTokens = 1;
                for (const auto& [layer, head] : placement.grounding)
                    s.maps.push_back({layer, head, grounding});
                if (useSink)
                    for (const auto& [layer, head] : placement.sink) s.maps.push_back({layer, head, sink});
                std::sort(s.maps.begin(), s.maps.end(), [](const StoredMap& a, const StoredMap& b) {
                    return std::make_pair(a.layer, a.head) < std::make_pair(b.layer, b.head);
                });
            }
            if (store.put(s))
                ++report.added;
            else
                ++report.skipped;  // written meanwhile by another import into the same store
        } catch (const Reject& r) {
            ++report.rejected;
            note(r.reason);
        }
        progress(std::int64_t(index) + 1);
    }
    if (items.empty()) progress(0);
    return report;
}

SampleLabelDump dumpSampleLabels(const StoredSample& sample, const LabelSettings& settings) {
    const Labels labels = labelsOf(sample, settings);
    SampleLabelDump out;
    out.rows = labels.rows;
    out.cols = labels.cols;
    out.status = labels.status;
    out.labels.assign(labels.values.begin(), labels.values.end());
    const std::size_t cells = std::size_t(out.rows) * std::size_t(out.cols);
    if (sample.maps.empty()) {
        out.grounding.assign(cells, std::numeric_limits<float>::quiet_NaN());
        out.sink.assign(cells, 0.0f);
        return out;
    }
    const models::AttentionMaps maps = sample.toAttentionMaps();
    out.grounding = groundingMap(maps, settings).values;
    out.sink = settings.sink.empty() ? std::vector<float>(cells, 0.0f) : sinkMap(maps, settings).values;
    return out;
}

}  // namespace sdrpn::data
