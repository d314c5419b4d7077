// PyTorch zip checkpoints (torch.save since 1.6) read into SafetensorsFile: a small zip reader (stored
// entries only, ZIP64 aware), the restricted unpickler for `<archive>/data.pkl`, and the checks that keep
// every tensor inside its storage entry. See core/io/safetensors.h.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/io/pickle.h"
#include "core/io/safetensors.h"
#include "core/result.h"

namespace sdrpn::io {

namespace {

[[noreturn]] void fail(const std::string& message) {
    throw Error(message);
}

std::uint64_t le(const std::uint8_t* p, int bytes) {
    std::uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

struct ZipEntry {
    std::uint64_t dataOffset = 0;  // in the file
    std::uint64_t size = 0;
};

// The entries of a zip held in [data, data + size), by name. Only stored (uncompressed) entries.
std::map<std::string, ZipEntry> readZip(const std::string& path, const std::uint8_t* data,
                                        std::uint64_t size) {
    constexpr std::uint64_t kEocdSize = 22;
    if (size < kEocdSize) fail(path + ": not a zip file (too short for its end-of-central-directory record)");
    // The end-of-central-directory record: within the last 64 KiB + 22 bytes (its comment is at most 64 KiB).
    std::uint64_t eocd = std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t lowest = size > kEocdSize + 0xffff ? size - kEocdSize - 0xffff : 0;
    for (std::uint64_t pos = size - kEocdSize + 1; pos-- > lowest;) {
        if (le(data + pos, 4) == 0x06054b50 && pos + kEocdSize + le(data + pos + 20, 2) <= size) {
            eocd = pos;
            break;
        }
    }
    if (eocd == std::numeric_limits<std::uint64_t>::max())
        fail(path + ": truncated or not a zip file (no end-of-central-directory record)");
    std::uint64_t entries = le(data + eocd + 10, 2);
    std::uint64_t cdSize = le(data + eocd + 12, 4);
    std::uint64_t cdOffset = le(data + eocd + 16, 4);
    if (le(data + eocd + 4, 2) != 0 || le(data + eocd + 6, 2) != 0)
        fail(path + ": multi-disk zip files are not read");
    if (entries == 0xffff || cdSize == 0xffffffff || cdOffset == 0xffffffff) {
        // ZIP64: the locator sits just before the record and points at the ZIP64 record.
        if (eocd < 20 || le(data + eocd - 20, 4) != 0x07064b50)
            fail(path + ": a ZIP64 zip without its ZIP64 end-of-central-directory locator");
        const std::uint64_t z64 = le(data + eocd - 20 + 8, 8);
        if (z64 > size || size - z64 < 56 || le(data + z64, 4) != 0x06064b50)
            fail(path + ": the ZIP64 end-of-central-directory record is missing or outside the file");
        entries = le(data + z64 + 32, 8);
        cdSize = le(data + z64 + 40, 8);
        cdOffset = le(data + z64 + 48, 8);
    }
    if (cdOffset > size || cdSize > size - cdOffset)
        fail(path + ": the zip's central directory lies outside the file (truncated?)");
    if (entries > cdSize / 46) fail(path + ": the zip's central directory is too small for its entries");

    std::map<std::string, ZipEntry> out;
    std::uint64_t pos = cdOffset;
    const std::uint64_t cdEnd = cdOffset + cdSize;
    for (std::uint64_t i = 0; i < entries; ++i) {
        if (cdEnd - pos < 46 || le(data + pos, 4) != 0x02014b50)
            fail(path + ": corrupt zip central directory (entry " + std::to_string(i) + ")");
        const std::uint8_t* h = data + pos;
        const std::uint64_t flags = le(h + 8, 2);
        const std::uint64_t method = le(h + 10, 2);
        std::uint64_t compressed = le(h + 20, 4);
        std::uint64_t uncompressed = le(h + 24, 4);
        const std::uint64_t nameLen = le(h + 28, 2), extraLen = le(h + 30, 2), commentLen = le(h + 32, 2);
        std::uint64_t local = le(h + 42, 4);
        if (cdEnd - pos - 46 < nameLen + extraLen + commentLen)
            fail(path + ": corrupt zip central directory (entry " + std::to_string(i) + " runs past it)");
        const std::string name(reinterpret_cast<const char*>(h + 46), std::size_t(nameLen));
        // ZIP64 extended information: the 64-bit values of the fields saturated above, in this order.
        const std::uint8_t* extra = h + 46 + nameLen;
        for (std::uint64_t e = 0; e + 4 <= extraLen;) {
            const std::uint64_t id = le(extra + e, 2), len = le(extra + e + 2, 2);
            if (e + 4 + len > extraLen) fail(path + ": corrupt zip extra field in entry '" + name + "'");
            if (id == 0x0001) {
                std::uint64_t f = e + 4;
                auto next = [&](std::uint64_t& field) {
                    if (f + 8 > e + 4 + len)
                        fail(path + ": truncated ZIP64 extra field in entry '" + name + "'");
                    field = le(extra + f, 8);
                    f += 8;
                };
                if (uncompressed == 0xffffffff) next(uncompressed);
                if (compressed == 0xffffffff) next(compressed);
                if (local == 0xffffffff) next(local);
            }
            e += 4 + len;
        }
        pos += 46 + nameLen + extraLen + commentLen;

        if (flags & 1) fail(path + ": zip entry '" + name + "' is encrypted");
        if (method != 0)
            fail(path + ": zip entry '" + name + "' is compressed (method " + std::to_string(method) +
                 "); only uncompressed (stored) checkpoints as torch.save writes them are read");
        if (compressed != uncompressed)
            fail(path + ": zip entry '" + name +
                 "' is stored with different compressed and uncompressed sizes");
        if (local > size || size - local < 30 || le(data + local, 4) != 0x04034b50)
            fail(path + ": the local header of zip entry '" + name + "' is missing or outside the file");
        const std::uint64_t begin = local + 30 + le(data + local + 26, 2) + le(data + local + 28, 2);
        if (begin > size || uncompressed > size - begin)
            fail(path + ": zip entry '" + name + "' (" + std::to_string(uncompressed) +
                 " bytes) runs past the end of the file (truncated?)");
        out[name] = ZipEntry{begin, uncompressed};
    }
    return out;
}

bool mulOverflow(std::uint64_t a, std::uint64_t b, std::uint64_t* out) {
    return __builtin_mul_overflow(a, b, out);
}

bool addOverflow(std::uint64_t a, std::uint64_t b, std::uint64_t* out) {
    return __builtin_add_overflow(a, b, out);
}

std::string shapeText(const std::vector<std::int64_t>& v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
    return s + "]";
}

// The state dict inside what data.pkl holds: the dict itself, or one under "state_dict" / "model" when the
// top level holds no tensors.
const PickleValue& stateDictOf(const PickleValue& root, const std::string& where) {
    if (!root.isDict())
        fail(where + " holds a " + std::string(root.kindName()) + ", not a dict of tensors (a state dict)");
    for (const auto& [k, v] : root.dict())
        if (v.isTensor()) return root;
    for (const char* key : {"state_dict", "model"}) {
        const PickleValue* inner = root.get(key);
        if (inner && inner->isDict()) return stateDictOf(*inner, where);
    }
    return root;
}

}  // namespace

std::shared_ptr<const SafetensorsFile> SafetensorsFile::openAny(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open weights file " + path + ": " + std::strerror(errno));
    std::uint8_t magic[9] = {};
    const ssize_t n = ::read(fd, magic, sizeof magic);
    ::close(fd);
    if (n >= 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4)
        return openTorchZip(path);
    // A legacy torch.save file starts with a pickle's 0x80; so does a safetensors file whose header is
    // 128 bytes long (or 384, ...), which its '{' at byte 8 tells apart.
    const bool safetensorsHeader = n == ssize_t(sizeof magic) && magic[8] == '{';
    if (n >= 1 && magic[0] == 0x80 && !safetensorsHeader)
        fail(path +
             ": a legacy (pre-1.6) torch.save file; re-save it with torch ≥1.6 or convert it with "
             "transformers");
    return open(path);
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::openTorchZip(const std::string& path) {
    std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
    file->m_path = path;
    file->m_metadata["format"] = "pt";

    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot open PyTorch checkpoint " + path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        fail("PyTorch checkpoint " + path + " is not a regular file");
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size < 4) {
        ::close(fd);
        fail(path + ": not a PyTorch checkpoint (" + std::to_string(size) + " bytes)");
    }
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int mapErr = errno;
    ::close(fd);
    if (map == MAP_FAILED)
        fail("cannot memory-map PyTorch checkpoint " + path + ": " + std::strerror(mapErr));
    file->m_map = static_cast<const std::uint8_t*>(map);
    file->m_mapSize = size;
    file->m_dataStart = 0;
    const std::uint8_t* data = file->m_map;

    // From here on the destructor unmaps if validation throws.
    if (!(data[0] == 'P' && data[1] == 'K' && data[2] == 3 && data[3] == 4)) {
        if (data[0] == 0x80)
            fail(path +
                 ": a legacy (pre-1.6) torch.save file; re-save it with torch ≥1.6 or convert it with "
                 "transformers");
        fail(path + ": not a PyTorch zip checkpoint (it does not start with a zip header)");
    }
    const std::map<std::string, ZipEntry> entries = readZip(path, data, size);

    // The archive's folder: the one holding data.pkl at the top level.
    std::string prefix;
    bool found = false;
    for (const auto& [name, entry] : entries) {
        const auto slash = name.find('/');
        if (slash != std::string::npos && name.compare(slash, std::string::npos, "/data.pkl") == 0) {
            prefix = name.substr(0, slash);
            found = true;
            break;
        }
    }
    if (!found) fail(path + ": a zip without '<archive>/data.pkl': not a PyTorch checkpoint");

    auto byteorder = entries.find(prefix + "/byteorder");
    if (byteorder != entries.end()) {
        const std::string order(reinterpret_cast<const char*>(data + byteorder->second.dataOffset),
                                std::size_t(std::min<std::uint64_t>(byteorder->second.size, 64)));
        if (order != "little")
            fail(path + ": byte order '" + order + "' (" + prefix +
                 "/byteorder); only little-endian checkpoints are read");
    }

    const ZipEntry& pkl = entries.at(prefix + "/data.pkl");
    UnpickleOptions options;
    options.source = prefix + "/data.pkl in " + path;
    options.allowTorchStorages = true;
    const PickleValue root = unpickle(data + pkl.dataOffset, std::size_t(pkl.size), options);
    const PickleValue& state = stateDictOf(root, options.source);

    std::map<std::string, TensorInfo> byName;
    for (const auto& [key, value] : state.dict()) {
        if (!value.isTensor() || !key.isString()) continue;
        const std::string& name = key.str();
        const TorchTensorRef& t = value.tensor();
        const std::string where = "tensor '" + name + "' in " + path;
        const std::size_t elem = dtypeSize(t.dtype);

        auto storage = entries.find(prefix + "/data/" + t.storageKey);
        if (storage == entries.end())
            fail(where + ": its storage entry '" + prefix + "/data/" + t.storageKey + "' is missing");
        std::uint64_t storageBytes = 0;
        if (t.storageNumel < 0 || mulOverflow(std::uint64_t(t.storageNumel), elem, &storageBytes) ||
            storage->second.size < storageBytes)
            fail(where + ": storage '" + t.storageKey + "' holds " + std::to_string(storage->second.size) +
                 " bytes, fewer than its " + std::to_string(t.storageNumel) + " elements of " +
                 std::to_string(elem) + " bytes");

        // Elements and the last element reached, checked against the storage.
        std::uint64_t numel = 1, last = std::uint64_t(t.storageOffset);
        bool overflow = false;
        for (std::size_t d = 0; d < t.shape.size(); ++d) {
            const auto dim = std::uint64_t(t.shape[d]);
            overflow |= mulOverflow(numel, dim, &numel);
            std::uint64_t reach = 0;
            if (dim > 0) {
                overflow |= mulOverflow(dim - 1, std::uint64_t(t.stride[d]), &reach);
                overflow |= addOverflow(last, reach, &last);
            }
        }
        std::uint64_t nbytes = 0;
        overflow |= mulOverflow(numel, elem, &nbytes);
        if (overflow)
            fail(where + ": shape " + shapeText(t.shape) + " and stride " + shapeText(t.stride) +
                 " overflow");
        if (numel > 0 && last >= std::uint64_t(t.storageNumel))
            fail(where + ": shape " + shapeText(t.shape) + ", stride " + shapeText(t.stride) +
                 " and offset " + std::to_string(t.storageOffset) + " reach element " + std::to_string(last) +
                 " of storage '" + t.storageKey + "', which holds " + std::to_string(t.storageNumel));

        bool contiguous = true;
        std::uint64_t expected = 1;
        for (std::size_t d = t.shape.size(); d-- > 0;) {
            if (t.shape[d] != 1 && std::uint64_t(t.stride[d]) != expected) contiguous = false;
            expected *= std::uint64_t(t.shape[d]);
        }

        TensorInfo info;
        info.name = name;
        info.dtype = t.dtype;
        info.shape = t.shape;
        const std::uint8_t* base = data + storage->second.dataOffset;
        if (numel == 0) {
            info.begin = info.end = storage->second.dataOffset;
        } else if (contiguous) {
            info.begin = storage->second.dataOffset + std::uint64_t(t.storageOffset) * elem;
            info.end = info.begin + nbytes;
        } else {
            // Copy into row-major order: walk the indices, keeping the source element offset.
            std::vector<std::uint8_t> owned(static_cast<std::size_t>(nbytes));
            const std::size_t rank = t.shape.size();
            std::vector<std::int64_t> idx(rank, 0);
            std::uint64_t src = std::uint64_t(t.storageOffset);
            for (std::uint64_t i = 0; i < numel; ++i) {
                std::memcpy(owned.data() + i * elem, base + src * elem, elem);
                for (std::size_t d = rank; d-- > 0;) {
                    ++idx[d];
                    src += std::uint64_t(t.stride[d]);
                    if (idx[d] < t.shape[d]) break;
                    src -= std::uint64_t(t.stride[d]) * std::uint64_t(idx[d]);
                    idx[d] = 0;
                }
            }
            file->m_owned[name] = std::move(owned);
            info.begin = 0;
            info.end = nbytes;
        }
        byName[name] = std::move(info);
    }
    if (byName.empty()) fail(options.source + " holds no tensors");

    for (auto& [name, info] : byName) file->m_tensors.push_back(std::move(info));
    std::sort(file->m_tensors.begin(), file->m_tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.name < b.name;
    });
    for (std::size_t i = 0; i < file->m_tensors.size(); ++i) file->m_index[file->m_tensors[i].name] = i;
    return file;
}

}  // namespace sdrpn::io
