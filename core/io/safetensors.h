// Model weights: safetensors (single file or sharded, memory-mapped, lazy per tensor; read and write) and,
// read-only, PyTorch zip checkpoints (`torch.save` since 1.6: `pytorch_model.bin`, sharded with
// `pytorch_model.bin.index.json`), which are opened behind the same interface.
//
// safetensors (mllm_reference.md §1): 8-byte little-endian header length N, N bytes of JSON, then the data
// buffer. Every header is validated on open: length inside the file, JSON object, known dtype, shape ×
// element size = byte span, offsets inside the buffer, no overlaps.
// PyTorch zip: the zip's central directory (ZIP64 too; only stored, uncompressed entries) is read,
// `<archive>/data.pkl` is read by the restricted unpickler (core/io/pickle.h: no code runs, only tensors of
// a state dict are taken), and every tensor is checked to lie inside its storage entry. Tensors point into
// the mapping; a non-contiguous one (a saved transpose) is copied into row-major bytes owned by the file.
// The format is told by its first bytes ("PK\x03\x04"), not by the file name.
// Errors throw sdrpn::Error naming the file and the tensor at fault. No LibTorch here; core/io/tensor_io.h
// converts to torch::Tensor.
//
//   auto archive = SafetensorsArchive::open("/models/llava-1.5-7b-hf");   // folder, file or index.json
//   const TensorInfo& info = archive->info("language_model.model.norm.weight");
//   RawTensor raw = archive->raw("language_model.model.norm.weight");     // bytes stay mapped
//
// Thread safety: after open, all const methods may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sdrpn::io {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* dtypeName(DType dtype);  // "F32", ...
std::size_t dtypeSize(DType dtype);  // bytes per element
std::optional<DType> parseDType(const std::string& name);

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<std::int64_t> shape;
    // Offsets relative to the start of the data buffer (safetensors), or of the file (PyTorch zip; tensors
    // there may share bytes). For a tensor copied into row-major order, the span in its owned buffer.
    std::uint64_t begin = 0;
    std::uint64_t end = 0;
    std::int64_t numel() const;
    std::uint64_t nbytes() const { return end - begin; }
};

class SafetensorsFile;

// Bytes of one tensor, still inside its file's mapping (which `file` keeps alive). `data` may be unaligned.
struct RawTensor {
    const TensorInfo* info = nullptr;
    const std::uint8_t* data = nullptr;
    std::shared_ptr<const SafetensorsFile> file;
};

// One memory-mapped .safetensors file, or one PyTorch zip checkpoint.
class SafetensorsFile : public std::enable_shared_from_this<SafetensorsFile> {
public:
    // Throws sdrpn::Error naming `path` and what is wrong with it.
    static std::shared_ptr<const SafetensorsFile> open(const std::string& path);
    // A PyTorch zip checkpoint (`torch.save` since 1.6; ZIP64 for large shards): a dict (or OrderedDict) of
    // name -> tensor, or one under "state_dict" / "model"; values that are not tensors are skipped. Dtypes
    // as DType; only little-endian files and uncompressed ("stored") entries. Throws sdrpn::Error naming
    // `path` and the entry or tensor at fault; a pre-1.6 (legacy pickle) file is refused with a hint to
    // re-save it. metadata() is {"format": "pt"}.
    static std::shared_ptr<const SafetensorsFile> openTorchZip(const std::string& path);
    // open() or openTorchZip(), by the file's first bytes.
    static std::shared_ptr<const SafetensorsFile> openAny(const std::string& path);
    ~SafetensorsFile();
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    const std::string& path() const { return m_path; }
    const std::vector<TensorInfo>& tensors() const { return m_tensors; }  // in data-offset order
    const TensorInfo* find(const std::string& name) const;
    const std::map<std::string, std::string>& metadata() const { return m_metadata; }
    RawTensor raw(const std::string& name) const;  // throws naming the tensor and the file

private:
    SafetensorsFile() = default;
    std::string m_path;
    std::vector<TensorInfo> m_tensors;
    std::map<std::string, std::size_t> m_index;
    std::map<std::string, std::string> m_metadata;
    const std::uint8_t* m_map = nullptr;
    std::size_t m_mapSize = 0;
    std::uint64_t m_dataStart = 0;
    // Row-major copies of non-contiguous tensors (PyTorch zip), by tensor name.
    std::map<std::string, std::vector<std::uint8_t>> m_owned;
};

// All tensors of a model: one file, or shards listed by a `*.safetensors.index.json` or
// `*.bin.index.json`.
class SafetensorsArchive {
public:
    // `path` may be a weights file (.safetensors, or a PyTorch zip .bin/.pt/.pth), an index .json, or a
    // folder holding, in this order of preference, `model.safetensors`, `model.safetensors.index.json`,
    // `pytorch_model.bin`, `pytorch_model.bin.index.json` (or exactly one other index, or `*.safetensors`
    // files). Files are told apart by their first bytes, so index shards may be either format.
    // Throws sdrpn::Error naming the file (a missing shard names the shard and the index).
    static std::shared_ptr<const SafetensorsArchive> open(const std::string& path);

    std::vector<std::string> names() const;  // sorted
    bool contains(const std::string& name) const;
    const TensorInfo& info(const std::string& name) const;  // throws naming the tensor
    RawTensor raw(const std::string& name) const;           // throws naming the tensor
    const std::vector<std::shared_ptr<const SafetensorsFile>>& files() const { return m_files; }
    const std::string& source() const { return m_source; }

private:
    std::string m_source;
    std::vector<std::shared_ptr<const SafetensorsFile>> m_files;
    std::map<std::string, std::size_t> m_owner;  // tensor name -> index in m_files
};

// A tensor to write: `data` points to numel × dtypeSize bytes, row-major, little-endian.
struct TensorRecord {
    std::string name;
    DType dtype = DType::F32;
    std::vector<std::int64_t> shape;
    const void* data = nullptr;
};

// Writes a .safetensors file atomically (temporary file in the same folder, then rename); tensors are laid
// out aligned, the header padded to a multiple of 8. Throws sdrpn::Error naming the path (disk full, folder
// missing, duplicate or empty name, null data). `beforeEach`, when set, is called before each tensor's bytes
// are written (progress, cancel): whatever it throws removes the temporary file and propagates.
void writeSafetensors(const std::string& path, const std::vector<TensorRecord>& tensors,
                      const std::map<std::string, std::string>& metadata = {},
                      const std::function<void(const TensorRecord&)>& beforeEach = {});

}  // namespace sdrpn::io
