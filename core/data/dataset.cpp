#include "core/data/dataset.h"

#include <filesystem>
#include <fstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using nlohmann::json;

namespace sdrpn::data {
namespace {

// nlohmann's messages start with "[json.exception.parse_error.101] "; keep the readable part, which already
// says "at line L, column C".
std::string jsonMessage(const std::exception& e) {
    std::string msg = e.what();
    if (!msg.empty() && msg[0] == '[')
        if (auto pos = msg.find("] "); pos != std::string::npos) msg.erase(0, pos + 2);
    return msg;
}

bool endsWith(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void replaceAll(std::string& s, const std::string& from, const std::string& to) {
    for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
        s.replace(pos, from.size(), to);
}

// Collects the samples of one shard, checks images and applies the limit.
class Collector {
public:
    Collector(Dataset& out, const DatasetOptions& options) : m_out(out), m_options(options) {}

    bool full() const {
        return m_options.limit >= 0 && std::int64_t(m_out.samples.size()) >= m_options.limit;
    }
    bool wants(std::size_t entry) const { return m_options.shard.contains(entry) && !full(); }

    std::string resolve(const std::string& image) const {
        if (m_options.imageRoot.empty() || fs::path(image).is_absolute()) return image;
        return (fs::path(m_options.imageRoot) / image).string();
    }

    void skip(const std::string& key, const std::string& image, const std::string& reason) {
        m_out.skipped.push_back({key, image, reason});
    }

    void add(Sample sample) {
        if (m_options.checkImages) {
            std::error_code ec;
            if (!fs::is_regular_file(sample.imagePath, ec)) {
                skip(sample.key, sample.imagePath, "image not found");
                return;
            }
        }
        m_out.samples.push_back(std::move(sample));
    }

private:
    Dataset& m_out;
    const DatasetOptions& m_options;
};

// One LLaVA conversation entry; `where` names it in errors ("file: entry 12 (id 000000033471)").
void readLlavaEntry(const json& entry, std::size_t index, const std::string& file, Collector& collect) {
    std::string where = file + ": entry " + std::to_string(index);
    if (!entry.is_object()) throw Error(where + ": expected an object with image and conversations");
    if (auto id = entry.find("id"); id != entry.end() && (id->is_string() || id->is_number()))
        where += " (id " + (id->is_string() ? id->get<std::string>() : id->dump()) + ")";
    const std::string key = std::to_string(index);

    auto image = entry.find("image");
    if (image == entry.end() || image->is_null()) {
        collect.skip(key, "", "no image");
        return;
    }
    if (!image->is_string()) throw Error(where + ": image must be a string");
    auto conversations = entry.find("conversations");
    if (conversations == entry.end() || !conversations->is_array())
        throw Error(where + ": conversations must be a list of {from, value}");

    Sample sample;
    sample.key = key;
    sample.entry = index;
    sample.image = image->get<std::string>();
    sample.imagePath = collect.resolve(sample.image);
    bool haveQuestion = false;
    for (std::size_t t = 0; t < conversations->size(); ++t) {
        const json& turn = (*conversations)[t];
        auto from = turn.find("from");
        auto value = turn.find("value");
        if (!turn.is_object() || from == turn.end() || value == turn.end() || !from->is_string() ||
            !value->is_string())
            throw Error(where + ": conversations[" + std::to_string(t) + "] must be {from, value} strings");
        if (!haveQuestion) {
            if (*from == "human") {
                sample.question = stripImagePlaceholder(value->get<std::string>());
                haveQuestion = true;
            }
        } else {
            if (*from == "gpt") {
                sample.answer = value->get<std::string>();
                sample.answers.push_back(*sample.answer);
            }
            break;
        }
    }
    if (!haveQuestion) throw Error(where + ": no human turn in conversations");
    collect.add(std::move(sample));
}

void readLlavaJson(const std::string& path, Dataset& out, Collector& collect) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open the dataset file");
    std::size_t index = 0, current = 0;
    bool topChecked = false;
    // Entry by entry: each finished top-level element is handled and then discarded (return false), so a
    // mix665k-sized file never lives in memory as one document.
    json::parser_callback_t onEvent = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
        if (!topChecked) {
            if (depth == 0 && event == json::parse_event_t::object_start)
                throw Error(path + ": expected a list of conversation entries, found an object");
            if (depth == 0 && event == json::parse_event_t::array_start) topChecked = true;
            if (depth == 0 && event == json::parse_event_t::value)
                throw Error(path + ": expected a list of conversation entries");
            return true;
        }
        if (depth != 1) return true;
        switch (event) {
            case json::parse_event_t::object_start:
            case json::parse_event_t::array_start:
                current = index++;
                return collect.wants(current);  // false: parsed, but neither kept nor seen again
            case json::parse_event_t::object_end:
            case json::parse_event_t::array_end:
                readLlavaEntry(parsed, current, path, collect);
                return false;
            case json::parse_event_t::value:
                current = index++;
                if (collect.wants(current)) readLlavaEntry(parsed, current, path, collect);
                return false;
            default:
                return true;
        }
    };
    try {
        const json rest = json::parse(in, onEvent, true, false);  // the emptied top-level list
        (void)rest;
    } catch (const json::exception& e) {  // parse errors, and numbers that overflow (406)
        throw Error(path + ": not valid JSON: " + jsonMessage(e));
    }
    out.entries = index;
}

std::string keyOf(const json& value) {
    return value.is_string() ? value.get<std::string>() : value.dump();
}

void readJsonl(const std::string& path, Dataset& out, Collector& collect) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open the dataset file");
    std::unordered_map<std::string, std::size_t> firstLine;
    std::size_t index = 0, lineNo = 0;
    for (std::string line; std::getline(in, line);) {
        ++lineNo;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        const std::string where = path + ":" + std::to_string(lineNo);
        const std::size_t entry = index++;
        json obj;
        try {
            obj = json::parse(line);
        } catch (const json::exception& e) {  // parse errors, and numbers that overflow (406)
            // One line per document: "at line 1, column C" would only confuse.
            std::string msg = jsonMessage(e);
            if (auto pos = msg.find("at line 1, column"); pos != std::string::npos) msg.erase(pos + 3, 8);
            throw Error(where + ": not valid JSON: " + msg);
        }
        if (!obj.is_object()) throw Error(where + ": expected an object with image and question");
        std::string key = std::to_string(entry);
        for (const char* name : {"question_id", "id"}) {
            if (auto it = obj.find(name); it != obj.end() && !it->is_null()) {
                if (!it->is_string() && !it->is_number_integer())
                    throw Error(where + ": " + name + " must be a string or an integer");
                key = keyOf(*it);
                break;
            }
        }
        if (auto [it, inserted] = firstLine.emplace(key, lineNo); !inserted)
            throw Error(where + ": duplicate key '" + key + "' (first at line " + std::to_string(it->second) +
                        ")");
        if (!collect.wants(entry)) continue;

        auto image = obj.find("image");
        if (image == obj.end() || image->is_null()) {
            collect.skip(key, "", "no image");
            continue;
        }
        if (!image->is_string()) throw Error(where + ": image must be a string");
        Sample sample;
        sample.key = key;
        sample.entry = entry;
        sample.image = image->get<std::string>();
        sample.imagePath = collect.resolve(sample.image);
        auto question = obj.find("question");
        if (question == obj.end() || question->is_null()) question = obj.find("text");
        if (question == obj.end() || !question->is_string())
            throw Error(where + ": question must be a string (or text, as the reference's jsonl writes)");
        sample.question = stripImagePlaceholder(question->get<std::string>());
        if (auto answer = obj.find("answer"); answer != obj.end() && !answer->is_null()) {
            if (!answer->is_string()) throw Error(where + ": answer must be a string");
            sample.answer = answer->get<std::string>();
        }
        if (auto answers = obj.find("answers"); answers != obj.end() && !answers->is_null()) {
            if (!answers->is_array()) throw Error(where + ": answers must be a list of strings");
            for (const auto& a : *answers) {
                if (!a.is_string()) throw Error(where + ": answers must be a list of strings");
                sample.answers.push_back(a.get<std::string>());
            }
            if (!sample.answer && !sample.answers.empty()) sample.answer = sample.answers.front();
        } else if (sample.answer) {
            sample.answers.push_back(*sample.answer);
        }
        if (auto bbox = obj.find("bbox"); bbox != obj.end() && !bbox->is_null()) {
            if (!bbox->is_array() || bbox->size() != 4)
                throw Error(where + ": bbox must be a list of four numbers [x0, y0, x1, y1]");
            std::array<double, 4> box{};
            for (std::size_t i = 0; i < 4; ++i) {
                if (!(*bbox)[i].is_number())
                    throw Error(where + ": bbox must be a list of four numbers [x0, y0, x1, y1]");
                box[i] = (*bbox)[i].get<double>();
            }
            if (!(box[2] >= box[0] && box[3] >= box[1]))
                throw Error(where + ": bbox [x0, y0, x1, y1] needs x1 >= x0 and y1 >= y0");
            sample.bbox = box;
        }
        collect.add(std::move(sample));
    }
    if (in.bad()) throw Error(path + ": read error");
    out.entries = index;
}

}  // namespace

Shard Shard::parse(const std::string& text) {
    const auto slash = text.find('/');
    auto number = [&](const std::string& s) {
        if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 9)
            throw Error("shard '" + text + "': expected i/n with 0 <= i < n, e.g. 0/4");
        return std::stoi(s);
    };
    if (slash == std::string::npos)
        throw Error("shard '" + text + "': expected i/n with 0 <= i < n, e.g. 0/4");
    Shard shard;
    shard.index = number(text.substr(0, slash));
    shard.count = number(text.substr(slash + 1));
    if (shard.count < 1 || shard.index >= shard.count)
        throw Error("shard '" + text + "': expected i/n with 0 <= i < n, e.g. 0/4");
    return shard;
}

const char* datasetFormatName(DatasetFormat format) {
    return format == DatasetFormat::Jsonl ? "jsonl" : "llava-json";
}

std::string stripImagePlaceholder(const std::string& text) {
    // sdrpn.md §2.1: the reference removes "<image>\n" and "\n<image>"; a placeholder elsewhere (mid-line)
    // is removed too, then the newlines it leaves at either end.
    std::string s = text;
    replaceAll(s, "<image>\n", "");
    replaceAll(s, "\n<image>", "");
    replaceAll(s, "<image>", "");
    const auto first = s.find_first_not_of("\r\n");
    if (first == std::string::npos) return {};
    const auto last = s.find_last_not_of("\r\n");
    return s.substr(first, last - first + 1);
}

Dataset readDataset(const std::string& path, const DatasetOptions& options) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error(path + ": dataset file not found");
    if (fs::is_directory(path, ec)) throw Error(path + ": is a folder, expected a .json or .jsonl file");
    Dataset out;
    out.path = path;
    out.id = fs::path(path).stem().string();
    out.format =
        options.format.value_or(endsWith(path, ".jsonl") ? DatasetFormat::Jsonl : DatasetFormat::LlavaJson);
    if (options.shard.count < 1 || options.shard.index < 0 || options.shard.index >= options.shard.count)
        throw Error("shard " + options.shard.toString() + ": expected i/n with 0 <= i < n");
    Collector collect(out, options);
    if (out.format == DatasetFormat::Jsonl)
        readJsonl(path, out, collect);
    else
        readLlavaJson(path, out, collect);
    return out;
}

Result<Dataset> openDataset(const std::string& path, const DatasetOptions& options) {
    return guarded([&] { return readDataset(path, options); });
}

}  // namespace sdrpn::data
