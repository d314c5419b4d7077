#include "core/io/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace fs = std::filesystem;

namespace sdrpn::io {

namespace {

// mllm_reference.md §1: the reference parser rejects larger headers (MAX_HEADER_SIZE).
constexpr std::uint64_t kMaxHeaderSize = 100'000'000;

constexpr const char* kMetadataKey = "__metadata__";

[[noreturn]] void fail(const std::string& message) {
    throw Error(message);
}

std::string inQuotes(const std::string& s) {
    return "'" + s + "'";
}

std::string errnoText(int err) {
    return std::strerror(err);
}

bool endsWith(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::uint64_t readLe64(const std::uint8_t* p) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

// numel × elemsize with overflow checks; nullopt when it does not fit in 64 bits.
std::optional<std::uint64_t> byteSize(const std::vector<std::int64_t>& shape, std::size_t elemSize) {
    std::uint64_t total = elemSize;
    for (std::int64_t d : shape) {
        if (d < 0) return std::nullopt;
        auto ud = static_cast<std::uint64_t>(d);
        if (ud != 0 && total > std::numeric_limits<std::uint64_t>::max() / ud) return std::nullopt;
        total *= ud;
    }
    return total;
}

std::string shapeText(const std::vector<std::int64_t>& shape) {
    std::ostringstream os;
    os << "[";
    for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
    os << "]";
    return os.str();
}

// A parsed header entry, checked against the buffer.
TensorInfo parseEntry(const std::string& file, const std::string& name, const nlohmann::json& entry,
                      std::uint64_t bufferSize) {
    const std::string where = "tensor " + inQuotes(name) + " in " + file;
    if (!entry.is_object()) fail("header entry for " + where + " is not a JSON object");

    TensorInfo info;
    info.name = name;

    auto dtypeIt = entry.find("dtype");
    if (dtypeIt == entry.end() || !dtypeIt->is_string()) fail("missing or non-string 'dtype' for " + where);
    const std::string dtypeStr = dtypeIt->get<std::string>();
    auto dtype = parseDType(dtypeStr);
    if (!dtype) fail("unsupported dtype " + inQuotes(dtypeStr) + " for " + where);
    info.dtype = *dtype;

    auto shapeIt = entry.find("shape");
    if (shapeIt == entry.end() || !shapeIt->is_array())
        fail("missing 'shape' (a list of non-negative integers) for " + where);
    for (const auto& d : *shapeIt) {
        if (d.is_number_unsigned()) {
            auto v = d.get<std::uint64_t>();
            if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                fail("shape dimension " + std::to_string(v) + " is too large for " + where);
            info.shape.push_back(static_cast<std::int64_t>(v));
        } else {
            fail("shape " + shapeIt->dump() + " of " + where + " must be a list of non-negative integers");
        }
    }

    auto offIt = entry.find("data_offsets");
    if (offIt == entry.end() || !offIt->is_array() || offIt->size() != 2 ||
        !(*offIt)[0].is_number_unsigned() || !(*offIt)[1].is_number_unsigned())
        fail("'data_offsets' of " + where + " must be [begin, end] with non-negative integers");
    info.begin = (*offIt)[0].get<std::uint64_t>();
    info.end = (*offIt)[1].get<std::uint64_t>();
    if (info.begin > info.end)
        fail("data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) + "] of " +
             where + " have begin > end");
    if (info.end > bufferSize)
        fail("data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) + "] of " +
             where + " point past the end of the data buffer (" + std::to_string(bufferSize) + " bytes)");

    auto expected = byteSize(info.shape, dtypeSize(info.dtype));
    if (!expected) fail("shape " + shapeText(info.shape) + " of " + where + " is too large");
    if (*expected != info.nbytes())
        fail("shape " + shapeText(info.shape) + " and dtype " + dtypeStr + " of " + where + " need " +
             std::to_string(*expected) + " bytes, but data_offsets span " + std::to_string(info.nbytes()));
    return info;
}

nlohmann::json parseJsonFile(const std::string& path, const std::string& what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot read " + what + " " + path + ": " + errnoText(errno));
    std::stringstream ss;
    ss << in.rdbuf();
    try {
        return nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::exception& e) {
        fail(what + " " + path + " is not valid JSON: " + e.what());
    }
}

// Writes all of [data, data+size) or returns errno.
int writeAll(int fd, const void* data, std::size_t size) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    while (size > 0) {
        ssize_t n = ::write(fd, p, std::min<std::size_t>(size, std::size_t(1) << 30));
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (n == 0) return EIO;
        p += n;
        size -= static_cast<std::size_t>(n);
    }
    return 0;
}

}  // namespace

const char* dtypeName(DType dtype) {
    switch (dtype) {
        case DType::F64:
            return "F64";
        case DType::F32:
            return "F32";
        case DType::F16:
            return "F16";
        case DType::BF16:
            return "BF16";
        case DType::I64:
            return "I64";
        case DType::I32:
            return "I32";
        case DType::I16:
            return "I16";
        case DType::I8:
            return "I8";
        case DType::U8:
            return "U8";
        case DType::BOOL:
            return "BOOL";
    }
    return "?";
}

std::size_t dtypeSize(DType dtype) {
    switch (dtype) {
        case DType::F64:
        case DType::I64:
            return 8;
        case DType::F32:
        case DType::I32:
            return 4;
        case DType::F16:
        case DType::BF16:
        case DType::I16:
            return 2;
        case DType::I8:
        case DType::U8:
        case DType::BOOL:
            return 1;
    }
    return 1;
}

std::optional<DType> parseDType(const std::string& name) {
    static const std::pair<const char*, DType> kTable[] = {
        {"F64", DType::F64}, {"F32", DType::F32},   {"F16", DType::F16}, {"BF16", DType::BF16},
        {"I64", DType::I64}, {"I32", DType::I32},   {"I16", DType::I16}, {"I8", DType::I8},
        {"U8", DType::U8},   {"BOOL", DType::BOOL},
    };
    for (const auto& [text, dtype] : kTable)
        if (name == text) return dtype;
    return std::nullopt;
}

std::int64_t TensorInfo::numel() const {
    std::int64_t n = 1;
    for (std::int64_t d : shape) n *= d;
    return n;
}

// ---------------------------------------------------------------------------------------------------------
// SafetensorsFile

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::string& path) {
    std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
    file->m_path = path;

    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open safetensors file " + path + ": " + errnoText(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        int err = errno;
        ::close(fd);
        fail("cannot stat safetensors file " + path + ": " + errnoText(err));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        fail("safetensors path " + path + " is not a regular file");
    }
    const auto fileSize = static_cast<std::uint64_t>(st.st_size);
    if (fileSize < 8) {
        ::close(fd);
        fail("safetensors file " + path + " is truncated: " + std::to_string(fileSize) +
             " bytes, fewer than the 8-byte header length");
    }
    void* map = ::mmap(nullptr, fileSize, PROT_READ, MAP_PRIVATE, fd, 0);
    int mapErr = errno;
    ::close(fd);
    if (map == MAP_FAILED) fail("cannot memory-map safetensors file " + path + ": " + errnoText(mapErr));
    file->m_map = static_cast<const std::uint8_t*>(map);
    file->m_mapSize = fileSize;

    // From here on the destructor unmaps if validation throws.
    const std::uint64_t headerLen = readLe64(file->m_map);
    if (headerLen > kMaxHeaderSize)
        fail("safetensors file " + path + " declares a header of " + std::to_string(headerLen) +
             " bytes, more than the limit of " + std::to_string(kMaxHeaderSize) +
             " (corrupt or not safetensors)");
    if (8 + headerLen > fileSize)
        fail("safetensors file " + path + " is truncated: header length " + std::to_string(headerLen) +
             " runs past the end of the file (" + std::to_string(fileSize) + " bytes)");
    file->m_dataStart = 8 + headerLen;
    const std::uint64_t bufferSize = fileSize - file->m_dataStart;

    const char* headerBegin = reinterpret_cast<const char*>(file->m_map + 8);
    if (headerLen == 0 || headerBegin[0] != '{')
        fail("safetensors file " + path + " has a header that is not a JSON object (it must start with '{')");

    // Collect top-level keys to reject duplicates (nlohmann would silently keep the last one).
    std::set<std::string> seen;
    std::string duplicate;
    auto onEvent = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        if (depth == 1 && event == nlohmann::json::parse_event_t::key && parsed.is_string()) {
            const auto& key = parsed.get_ref<const std::string&>();
            if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
        }
        return true;
    };
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(headerBegin, headerBegin + headerLen, onEvent);
    } catch (const nlohmann::json::exception& e) {
        fail("safetensors file " + path + " has a header that is not valid JSON: " + e.what());
    }
    if (!header.is_object()) fail("safetensors file " + path + " has a header that is not a JSON object");
    if (!duplicate.empty())
        fail("safetensors file " + path + " lists tensor " + inQuotes(duplicate) + " twice");

    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == kMetadataKey) {
            if (!it->is_object())
                fail("'__metadata__' in safetensors file " + path + " must be a map of strings to strings");
            for (auto m = it->begin(); m != it->end(); ++m) {
                if (!m->is_string())
                    fail("'__metadata__' entry " + inQuotes(m.key()) + " in safetensors file " + path +
                         " must be a string");
                file->m_metadata[m.key()] = m->get<std::string>();
            }
            continue;
        }
        file->m_tensors.push_back(parseEntry(path, it.key(), *it, bufferSize));
    }

    std::sort(file->m_tensors.begin(), file->m_tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    // Non-empty tensors must not share bytes (empty ones occupy nothing).
    const TensorInfo* previous = nullptr;
    for (const TensorInfo& t : file->m_tensors) {
        if (t.nbytes() == 0) continue;
        if (previous && t.begin < previous->end)
            fail("tensors " + inQuotes(previous->name) + " [" + std::to_string(previous->begin) + ", " +
                 std::to_string(previous->end) + ") and " + inQuotes(t.name) + " [" +
                 std::to_string(t.begin) + ", " + std::to_string(t.end) + ") overlap in safetensors file " +
                 path);
        if (!previous || t.end > previous->end) previous = &t;
    }
    for (std::size_t i = 0; i < file->m_tensors.size(); ++i) file->m_index[file->m_tensors[i].name] = i;
    return file;
}

SafetensorsFile::~SafetensorsFile() {
    if (m_map) ::munmap(const_cast<std::uint8_t*>(m_map), m_mapSize);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
    auto it = m_index.find(name);
    return it == m_index.end() ? nullptr : &m_tensors[it->second];
}

RawTensor SafetensorsFile::raw(const std::string& name) const {
    const TensorInfo* info = find(name);
    if (!info) fail("tensor " + inQuotes(name) + " not found in " + m_path);
    RawTensor raw;
    raw.info = info;
    auto owned = m_owned.find(name);
    raw.data =
        owned != m_owned.end() ? owned->second.data() + info->begin : m_map + m_dataStart + info->begin;
    raw.file = shared_from_this();
    return raw;
}

// ---------------------------------------------------------------------------------------------------------
// SafetensorsArchive

namespace {

struct ArchiveBuilder {
    std::string source;
    std::vector<std::shared_ptr<const SafetensorsFile>> files;
    std::map<std::string, std::size_t> owner;

    void add(std::shared_ptr<const SafetensorsFile> file) {
        const std::size_t index = files.size();
        for (const TensorInfo& t : file->tensors()) {
            auto [it, inserted] = owner.emplace(t.name, index);
            if (!inserted)
                fail("tensor " + inQuotes(t.name) + " appears in both " + files[it->second]->path() +
                     " and " + file->path() + " (from " + source + ")");
        }
        files.push_back(std::move(file));
    }
};

void loadIndex(ArchiveBuilder& builder, const std::string& indexPath) {
    const std::string what = endsWith(indexPath, ".bin.index.json") ? "PyTorch index" : "safetensors index";
    nlohmann::json index = parseJsonFile(indexPath, what);
    if (!index.is_object()) fail(what + " " + indexPath + " is not a JSON object");
    auto mapIt = index.find("weight_map");
    if (mapIt == index.end() || !mapIt->is_object())
        fail(what + " " + indexPath + " has no 'weight_map' object");
    if (mapIt->empty()) fail(what + " " + indexPath + " has an empty 'weight_map'");

    const fs::path folder = fs::path(indexPath).parent_path();
    std::vector<std::string> shardOrder;
    std::map<std::string, std::size_t> shardSlot;  // shard name -> index in builder.files
    for (auto it = mapIt->begin(); it != mapIt->end(); ++it) {
        if (!it->is_string())
            fail(what + " " + indexPath + " maps tensor " + inQuotes(it.key()) +
                 " to a value that is not a file name");
        const std::string shard = it->get<std::string>();
        if (shardSlot.emplace(shard, 0).second) shardOrder.push_back(shard);
    }
    std::sort(shardOrder.begin(), shardOrder.end());
    for (const std::string& shard : shardOrder) {
        const std::string shardPath = (folder / shard).string();
        std::error_code ec;
        if (!fs::exists(shardPath, ec))
            fail("shard " + inQuotes(shard) + " listed in " + what + " " + indexPath + " is missing (" +
                 shardPath + ")");
        shardSlot[shard] = builder.files.size();
        builder.add(SafetensorsFile::openAny(shardPath));
    }
    for (auto it = mapIt->begin(); it != mapIt->end(); ++it) {
        const std::string shard = it->get<std::string>();
        auto owner = builder.owner.find(it.key());
        if (owner == builder.owner.end() || owner->second != shardSlot[shard])
            fail(what + " " + indexPath + " maps tensor " + inQuotes(it.key()) + " to shard " +
                 inQuotes(shard) + ", which does not hold it");
    }
}

std::vector<std::string> folderEntries(const fs::path& folder) {
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code typeEc;
        if (it->is_regular_file(typeEc)) names.push_back(it->path().filename().string());
    }
    if (ec) fail("cannot list folder " + folder.string() + ": " + ec.message());
    std::sort(names.begin(), names.end());
    return names;
}

void loadFolder(ArchiveBuilder& builder, const fs::path& folder) {
    std::error_code ec;
    if (fs::is_regular_file(folder / "model.safetensors", ec)) {
        builder.add(SafetensorsFile::open((folder / "model.safetensors").string()));
        return;
    }
    if (fs::is_regular_file(folder / "model.safetensors.index.json", ec)) {
        loadIndex(builder, (folder / "model.safetensors.index.json").string());
        return;
    }
    if (fs::is_regular_file(folder / "pytorch_model.bin", ec)) {
        builder.add(SafetensorsFile::openAny((folder / "pytorch_model.bin").string()));
        return;
    }
    if (fs::is_regular_file(folder / "pytorch_model.bin.index.json", ec)) {
        loadIndex(builder, (folder / "pytorch_model.bin.index.json").string());
        return;
    }
    const std::vector<std::string> entries = folderEntries(folder);
    std::vector<std::string> indexes, shards;
    bool hasBin = false;
    for (const std::string& name : entries) {
        if (endsWith(name, ".bin") || endsWith(name, ".pt") || endsWith(name, ".pth"))
            hasBin = true;
        else if (endsWith(name, ".index.json"))
            indexes.push_back(name);
        else if (endsWith(name, ".safetensors"))
            shards.push_back(name);
    }
    if (indexes.size() == 1) {
        loadIndex(builder, (folder / indexes.front()).string());
        return;
    }
    if (indexes.size() > 1) {
        std::string list;
        for (const auto& n : indexes) list += (list.empty() ? "" : ", ") + n;
        fail("folder " + folder.string() + " holds several index files (" + list + "): open one of them");
    }
    if (!shards.empty()) {
        for (const std::string& name : shards) builder.add(SafetensorsFile::open((folder / name).string()));
        return;
    }
    if (hasBin)
        fail("folder " + folder.string() +
             " holds PyTorch files but neither pytorch_model.bin nor an index: open the weights file itself");
    fail("folder " + folder.string() + " holds no .safetensors files");
}

}  // namespace

std::shared_ptr<const SafetensorsArchive> SafetensorsArchive::open(const std::string& path) {
    ArchiveBuilder builder;
    builder.source = path;
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    if (ec || !fs::exists(status)) fail("no such safetensors file or folder: " + path);
    if (fs::is_directory(status)) {
        loadFolder(builder, path);
    } else if (endsWith(path, ".json")) {
        loadIndex(builder, path);
    } else {
        builder.add(SafetensorsFile::openAny(path));
    }
    auto archive = std::make_shared<SafetensorsArchive>();
    archive->m_source = path;
    archive->m_files = std::move(builder.files);
    archive->m_owner = std::move(builder.owner);
    return archive;
}

std::vector<std::string> SafetensorsArchive::names() const {
    std::vector<std::string> out;
    out.reserve(m_owner.size());
    for (const auto& [name, index] : m_owner) out.push_back(name);
    return out;
}

bool SafetensorsArchive::contains(const std::string& name) const {
    return m_owner.count(name) != 0;
}

const TensorInfo& SafetensorsArchive::info(const std::string& name) const {
    auto it = m_owner.find(name);
    if (it == m_owner.end()) fail("tensor " + inQuotes(name) + " not found in " + m_source);
    return *m_files[it->second]->find(name);
}

RawTensor SafetensorsArchive::raw(const std::string& name) const {
    auto it = m_owner.find(name);
    if (it == m_owner.end()) fail("tensor " + inQuotes(name) + " not found in " + m_source);
    return m_files[it->second]->raw(name);
}

// ---------------------------------------------------------------------------------------------------------
// Writer

void writeSafetensors(const std::string& path, const std::vector<TensorRecord>& tensors,
                      const std::map<std::string, std::string>& metadata,
                      const std::function<void(const TensorRecord&)>& beforeEach) {
    struct Planned {
        const TensorRecord* record;
        std::uint64_t nbytes;
        std::uint64_t begin = 0;
    };
    std::vector<Planned> plan;
    std::set<std::string> names;
    for (const TensorRecord& t : tensors) {
        if (t.name.empty()) fail("cannot write " + path + ": a tensor has an empty name");
        if (t.name == kMetadataKey)
            fail("cannot write " + path + ": '__metadata__' is not a valid tensor name");
        if (!names.insert(t.name).second)
            fail("cannot write " + path + ": tensor " + inQuotes(t.name) + " is listed twice");
        auto nbytes = byteSize(t.shape, dtypeSize(t.dtype));
        if (!nbytes)
            fail("cannot write " + path + ": tensor " + inQuotes(t.name) + " has a bad shape " +
                 shapeText(t.shape));
        if (*nbytes > 0 && !t.data)
            fail("cannot write " + path + ": tensor " + inQuotes(t.name) + " has no data");
        plan.push_back({&t, *nbytes});
    }
    // As the reference writer: descending alignment, then name, so every block is aligned to its element
    // size.
    std::sort(plan.begin(), plan.end(), [](const Planned& a, const Planned& b) {
        std::size_t sa = dtypeSize(a.record->dtype), sb = dtypeSize(b.record->dtype);
        return sa != sb ? sa > sb : a.record->name < b.record->name;
    });
    std::uint64_t offset = 0;
    for (Planned& p : plan) {
        const std::uint64_t align = dtypeSize(p.record->dtype);
        offset = (offset + align - 1) / align * align;
        p.begin = offset;
        offset += p.nbytes;
    }

    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) {
        nlohmann::ordered_json meta = nlohmann::ordered_json::object();
        for (const auto& [k, v] : metadata) meta[k] = v;
        header[kMetadataKey] = std::move(meta);
    }
    for (const Planned& p : plan) {
        header[p.record->name] = {{"dtype", dtypeName(p.record->dtype)},
                                  {"shape", p.record->shape},
                                  {"data_offsets", {p.begin, p.begin + p.nbytes}}};
    }
    std::string headerText;
    try {
        headerText = header.dump();
    } catch (const nlohmann::json::exception& e) {
        fail("cannot write " + path + ": a tensor name or metadata value is not valid UTF-8 (" + e.what() +
             ")");
    }
    headerText.append((8 - headerText.size() % 8) % 8, ' ');
    std::uint8_t lenBytes[8];
    for (int i = 0; i < 8; ++i)
        lenBytes[i] = static_cast<std::uint8_t>(std::uint64_t(headerText.size()) >> (8 * i));

    std::string tmp = path + ".tmp-XXXXXX";
    int fd = ::mkstemp(tmp.data());
    if (fd < 0) fail("cannot write " + path + ": " + errnoText(errno));
    auto failWrite = [&](int err) {
        ::close(fd);
        ::unlink(tmp.c_str());
        fail("cannot write " + path + ": " + errnoText(err));
    };
    ::fchmod(fd, 0644);
    if (int err = writeAll(fd, lenBytes, 8)) failWrite(err);
    if (int err = writeAll(fd, headerText.data(), headerText.size())) failWrite(err);
    std::uint64_t written = 0;
    static const std::uint8_t kZeros[8] = {};
    for (const Planned& p : plan) {
        if (beforeEach) {
            try {
                beforeEach(*p.record);
            } catch (...) {
                ::close(fd);
                ::unlink(tmp.c_str());
                throw;
            }
        }
        if (p.begin > written)
            if (int err = writeAll(fd, kZeros, p.begin - written)) failWrite(err);
        if (p.nbytes > 0)
            if (int err = writeAll(fd, p.record->data, p.nbytes)) failWrite(err);
        written = p.begin + p.nbytes;
    }
    if (::fsync(fd) != 0) failWrite(errno);
    if (::close(fd) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        fail("cannot write " + path + ": " + errnoText(err));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        fail("cannot write " + path + ": " + errnoText(err));
    }
    // Make the rename itself durable.
    std::string dir = fs::path(path).parent_path().string();
    if (dir.empty()) dir = ".";
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

}  // namespace sdrpn::io
