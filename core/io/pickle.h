// A restricted unpickler: reads Python pickles (protocols 2 to 5) into plain values without running any
// code. Only the opcodes and the globals that the files we read need are understood:
//   - built-in values: None, bool, int (64-bit), float, str, bytes/bytearray, list, tuple, dict;
//   - numpy arrays (`numpy.core.multiarray._reconstruct` + `numpy.dtype` + BUILD, the protocol-5
//     `numpy.core.numeric._frombuffer`, and the same under `numpy._core`), numpy scalars
//     (`numpy.core.multiarray.scalar`), bytes pickled at protocol 2 (`_codecs.encode(str, 'latin1')`);
//   - `collections.OrderedDict` (read as a dict), sets and frozensets (read as lists), `bytearray` and
//     `bytes` (as protocol 2 pickles them);
//   - PyTorch's zip checkpoints: persistent ids ('storage', torch.<Type>Storage, key, location, numel),
//     `torch._utils._rebuild_tensor_v2`, `_rebuild_tensor_v3`, `_rebuild_parameter`, torch dtypes.
// Any other global (os.system, builtins.eval, ...) or opcode (INST, OBJ, EXT*, out-of-band buffers) is
// refused with an sdrpn::Error naming it and the byte offset; nothing is ever looked up or called.
//
//   PickleValue v = unpickle(bytes.data(), bytes.size(), {"labels.pkl"});
//   for (const PickleValue& item : v.list()) {
//       const PickleValue* map = item.get("sink_attn");        // dict lookup by string key
//       if (map && map->isArray()) use(map->array().toFloat32());
//   }
//
// Limits (UnpickleOptions): nesting depth, memo size, container sizes and the total bytes of values made
// are capped, so a hostile file cannot make it allocate beyond a bound set by its own size.
// Errors: sdrpn::Error starting with `options.source`, then what is wrong and where ("at byte N").
// Thread safety: pure functions over immutable inputs. No LibTorch here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/io/safetensors.h"  // DType

namespace sdrpn::io {

// A numpy array, always converted to C order and little-endian on read.
struct NdArray {
    DType dtype = DType::F32;  // F64, F32, F16, I64, I32, I16, I8, U8, BOOL
    std::vector<std::int64_t> shape;
    std::vector<std::uint8_t> data;  // numel × dtypeSize(dtype) bytes

    std::int64_t numel() const;
    // The values as float (any numeric dtype; bool gives 0/1).
    std::vector<float> toFloat32() const;
};

// A tensor of a PyTorch zip checkpoint: where its bytes are (storage `key` is the entry
// "<archive>/data/<key>" of the zip), not the bytes themselves.
struct TorchTensorRef {
    std::string storageKey;
    DType dtype = DType::F32;  // the storage's element type
    std::string location;      // "cpu", "cuda:0", ...
    std::int64_t storageNumel = 0;
    std::int64_t storageOffset = 0;  // in elements
    std::vector<std::int64_t> shape;
    std::vector<std::int64_t> stride;  // in elements
};

class PickleValue {
public:
    enum class Kind { None, Bool, Int, Float, String, Bytes, List, Tuple, Dict, Array, TorchTensor };
    using Items = std::vector<PickleValue>;
    using DictItems = std::vector<std::pair<PickleValue, PickleValue>>;  // in insertion order

    PickleValue() = default;  // None
    static PickleValue boolean(bool v);
    static PickleValue integer(std::int64_t v);
    static PickleValue real(double v);
    static PickleValue string(std::string v);
    static PickleValue bytes(std::vector<std::uint8_t> v);
    static PickleValue list(Items items);
    static PickleValue tuple(Items items);
    static PickleValue dict(DictItems items);
    static PickleValue array(NdArray a);
    static PickleValue tensor(TorchTensorRef t);

    Kind kind() const { return m_kind; }
    const char* kindName() const;  // "None", "bool", "int", "float", "str", "bytes", "list", ...

    bool isNone() const { return m_kind == Kind::None; }
    bool isArray() const { return m_kind == Kind::Array; }
    bool isTensor() const { return m_kind == Kind::TorchTensor; }
    bool isDict() const { return m_kind == Kind::Dict; }
    bool isString() const { return m_kind == Kind::String; }

    // Accessors throw sdrpn::Error ("expected a list, found a dict") on the wrong kind.
    bool toBool() const;
    std::int64_t toInt() const;  // Int or Bool
    double toDouble() const;     // Float or Int
    const std::string& str() const;
    const std::vector<std::uint8_t>& byteString() const;
    const Items& list() const;  // List or Tuple
    const DictItems& dict() const;
    const NdArray& array() const;
    const TorchTensorRef& tensor() const;

    // Dict lookup by string key; nullptr when absent (throws when this is not a dict).
    const PickleValue* get(const std::string& key) const;

    // Mutable access for the unpickler (lists and dicts are filled after creation).
    Items& mutableItems();
    DictItems& mutableDict();
    NdArray& mutableArray();

private:
    Kind m_kind = Kind::None;
    bool m_bool = false;
    std::int64_t m_int = 0;
    double m_float = 0.0;
    std::string m_string;
    std::shared_ptr<std::vector<std::uint8_t>> m_bytes;
    std::shared_ptr<Items> m_items;
    std::shared_ptr<DictItems> m_dict;
    std::shared_ptr<NdArray> m_array;
    std::shared_ptr<TorchTensorRef> m_tensor;
};

struct UnpickleOptions {
    std::string source = "pickle";    // names the input in messages (a file, "archive/data.pkl in X")
    bool allowTorchStorages = false;  // persistent ids and torch rebuild globals (zip checkpoints only)
    int maxDepth = 256;               // nesting of containers
    std::size_t maxMemo = 1u << 24;   // memo entries
    std::uint64_t maxTotalBytes = 0;  // bytes of arrays/strings made; 0: 4 × input size + 64 MiB
};

// Parses one pickle (up to its STOP opcode). Throws sdrpn::Error as described above.
PickleValue unpickle(const std::uint8_t* data, std::size_t size, const UnpickleOptions& options);
PickleValue unpickleFile(const std::string& path, UnpickleOptions options = {});  // source = path

}  // namespace sdrpn::io
