#include "core/io/pickle.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "core/result.h"

namespace sdrpn::io {

// ---------------------------------------------------------------------------------------------------------
// NdArray and PickleValue

namespace {

float halfToFloat(std::uint16_t h) {
    const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
    std::uint32_t exponent = (h >> 10) & 0x1fu;
    std::uint32_t mantissa = h & 0x3ffu;
    std::uint32_t bits = 0;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            exponent = 127 - 15 + 1;
            while ((mantissa & 0x400u) == 0) {
                mantissa <<= 1;
                --exponent;
            }
            mantissa &= 0x3ffu;
            bits = sign | (exponent << 23) | (mantissa << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

float bf16ToFloat(std::uint16_t v) {
    const std::uint32_t bits = std::uint32_t(v) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

template <class T>
T loadLe(const std::uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));  // the host is little-endian (checked below)
    return v;
}

double elementAsDouble(DType dtype, const std::uint8_t* p) {
    switch (dtype) {
        case DType::F64:
            return loadLe<double>(p);
        case DType::F32:
            return loadLe<float>(p);
        case DType::F16:
            return halfToFloat(loadLe<std::uint16_t>(p));
        case DType::BF16:
            return bf16ToFloat(loadLe<std::uint16_t>(p));
        case DType::I64:
            return double(loadLe<std::int64_t>(p));
        case DType::I32:
            return loadLe<std::int32_t>(p);
        case DType::I16:
            return loadLe<std::int16_t>(p);
        case DType::I8:
            return loadLe<std::int8_t>(p);
        case DType::U8:
            return *p;
        case DType::BOOL:
            return *p ? 1.0 : 0.0;
    }
    return 0.0;
}

[[noreturn]] void kindError(const char* expected, const PickleValue& v) {
    const char* kind = v.kindName();
    const bool vowel = std::strchr("aeiouAEIOU", kind[0]) != nullptr;
    throw Error(std::string("expected ") + expected + ", found " + (vowel ? "an " : "a ") + kind);
}

}  // namespace

static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE floats expected");

std::int64_t NdArray::numel() const {
    std::int64_t n = 1;
    for (std::int64_t d : shape) n *= d;
    return n;
}

std::vector<float> NdArray::toFloat32() const {
    const std::size_t elem = dtypeSize(dtype);
    const std::size_t n = elem ? data.size() / elem : 0;
    std::vector<float> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = float(elementAsDouble(dtype, data.data() + i * elem));
    return out;
}

PickleValue PickleValue::boolean(bool v) {
    PickleValue p;
    p.m_kind = Kind::Bool;
    p.m_bool = v;
    return p;
}

PickleValue PickleValue::integer(std::int64_t v) {
    PickleValue p;
    p.m_kind = Kind::Int;
    p.m_int = v;
    return p;
}

PickleValue PickleValue::real(double v) {
    PickleValue p;
    p.m_kind = Kind::Float;
    p.m_float = v;
    return p;
}

PickleValue PickleValue::string(std::string v) {
    PickleValue p;
    p.m_kind = Kind::String;
    p.m_string = std::move(v);
    return p;
}

PickleValue PickleValue::bytes(std::vector<std::uint8_t> v) {
    PickleValue p;
    p.m_kind = Kind::Bytes;
    p.m_bytes = std::make_shared<std::vector<std::uint8_t>>(std::move(v));
    return p;
}

PickleValue PickleValue::list(Items items) {
    PickleValue p;
    p.m_kind = Kind::List;
    p.m_items = std::make_shared<Items>(std::move(items));
    return p;
}

PickleValue PickleValue::tuple(Items items) {
    PickleValue p;
    p.m_kind = Kind::Tuple;
    p.m_items = std::make_shared<Items>(std::move(items));
    return p;
}

PickleValue PickleValue::dict(DictItems items) {
    PickleValue p;
    p.m_kind = Kind::Dict;
    p.m_dict = std::make_shared<DictItems>(std::move(items));
    return p;
}

PickleValue PickleValue::array(NdArray a) {
    PickleValue p;
    p.m_kind = Kind::Array;
    p.m_array = std::make_shared<NdArray>(std::move(a));
    return p;
}

PickleValue PickleValue::tensor(TorchTensorRef t) {
    PickleValue p;
    p.m_kind = Kind::TorchTensor;
    p.m_tensor = std::make_shared<TorchTensorRef>(std::move(t));
    return p;
}

const char* PickleValue::kindName() const {
    switch (m_kind) {
        case Kind::None:
            return "None";
        case Kind::Bool:
            return "bool";
        case Kind::Int:
            return "int";
        case Kind::Float:
            return "float";
        case Kind::String:
            return "str";
        case Kind::Bytes:
            return "bytes";
        case Kind::List:
            return "list";
        case Kind::Tuple:
            return "tuple";
        case Kind::Dict:
            return "dict";
        case Kind::Array:
            return "numpy array";
        case Kind::TorchTensor:
            return "torch tensor";
    }
    return "?";
}

bool PickleValue::toBool() const {
    if (m_kind == Kind::Bool) return m_bool;
    if (m_kind == Kind::Int) return m_int != 0;
    kindError("a bool", *this);
}

std::int64_t PickleValue::toInt() const {
    if (m_kind == Kind::Int) return m_int;
    if (m_kind == Kind::Bool) return m_bool ? 1 : 0;
    kindError("an int", *this);
}

double PickleValue::toDouble() const {
    if (m_kind == Kind::Float) return m_float;
    if (m_kind == Kind::Int) return double(m_int);
    if (m_kind == Kind::Bool) return m_bool ? 1.0 : 0.0;
    kindError("a float", *this);
}

const std::string& PickleValue::str() const {
    if (m_kind != Kind::String) kindError("a str", *this);
    return m_string;
}

const std::vector<std::uint8_t>& PickleValue::byteString() const {
    if (m_kind != Kind::Bytes) kindError("bytes", *this);
    return *m_bytes;
}

const PickleValue::Items& PickleValue::list() const {
    if (m_kind != Kind::List && m_kind != Kind::Tuple) kindError("a list", *this);
    return *m_items;
}

const PickleValue::DictItems& PickleValue::dict() const {
    if (m_kind != Kind::Dict) kindError("a dict", *this);
    return *m_dict;
}

const NdArray& PickleValue::array() const {
    if (m_kind != Kind::Array) kindError("a numpy array", *this);
    return *m_array;
}

const TorchTensorRef& PickleValue::tensor() const {
    if (m_kind != Kind::TorchTensor) kindError("a torch tensor", *this);
    return *m_tensor;
}

const PickleValue* PickleValue::get(const std::string& key) const {
    for (const auto& [k, v] : dict())
        if (k.m_kind == Kind::String && k.m_string == key) return &v;
    return nullptr;
}

PickleValue::Items& PickleValue::mutableItems() {
    if (m_kind != Kind::List && m_kind != Kind::Tuple) kindError("a list", *this);
    return *m_items;
}

PickleValue::DictItems& PickleValue::mutableDict() {
    if (m_kind != Kind::Dict) kindError("a dict", *this);
    return *m_dict;
}

NdArray& PickleValue::mutableArray() {
    if (m_kind != Kind::Array) kindError("a numpy array", *this);
    return *m_array;
}

// ---------------------------------------------------------------------------------------------------------
// The unpickler

namespace {

const char* const kRefusedHint = "(only numpy arrays, built-in containers and PyTorch tensors are read)";

// What a global names, once it passed the allow-list.
enum class Callable {
    NumpyReconstruct,  // numpy.core.multiarray._reconstruct
    NumpyNdarray,      // numpy.ndarray (the class argument of _reconstruct)
    NumpyDType,        // numpy.dtype
    NumpyFromBuffer,   // numpy.core.numeric._frombuffer
    NumpyScalar,       // numpy.core.multiarray.scalar
    CodecsEncode,      // _codecs.encode
    OrderedDict,       // collections.OrderedDict
    BuiltinSet,        // set / frozenset (read as lists)
    BuiltinByteArray,  // bytearray, bytes (b'' at protocol 2)
    TorchRebuildV2,
    TorchRebuildV3,
    TorchRebuildParameter,
    TorchRebuildParameterWithState,
    TorchStorageType,  // torch.FloatStorage, ... (dtype in Global::dtype); UntypedStorage: untyped
    TorchDType,        // torch.float32, ... (dtype in Global::dtype)
};

struct GlobalRef {
    Callable callable;
    std::string name;  // "module.name", for messages
    DType dtype = DType::U8;
    bool untyped = false;
};

struct NumpyDTypeState {
    char kind = 'f';  // numpy kind character: f, i, u, b, ...
    int itemsize = 4;
    char order = '<';
    std::string descr;  // as pickled, e.g. "f4"
    bool supported = false;
    DType dtype = DType::F32;
};

struct StorageRef {
    std::string key;
    std::string location;
    DType dtype = DType::U8;
    bool untyped = false;
    std::int64_t numel = 0;
};

// A stack or memo entry: a plain value, or one of the internal objects that only live while parsing.
struct Obj {
    enum class K { Value, Mark, Global, RawTuple, NumpyDType, Storage };
    K k = K::Value;
    PickleValue v;
    std::shared_ptr<const GlobalRef> global;
    std::shared_ptr<std::vector<Obj>> tuple;  // RawTuple: a tuple holding internal objects
    std::shared_ptr<NumpyDTypeState> dtype;
    std::shared_ptr<const StorageRef> storage;
    int depth = 0;  // RawTuple nesting

    static Obj value(PickleValue value) {
        Obj o;
        o.v = std::move(value);
        return o;
    }
    const char* what() const {
        switch (k) {
            case K::Value:
                return v.kindName();
            case K::Mark:
                return "MARK";
            case K::Global:
                return "global";
            case K::RawTuple:
                return "tuple";
            case K::NumpyDType:
                return "numpy dtype";
            case K::Storage:
                return "torch storage";
        }
        return "?";
    }
};

std::optional<DType> torchStorageDType(const std::string& name) {
    static const std::pair<const char*, DType> kTable[] = {
        {"FloatStorage", DType::F32},  {"HalfStorage", DType::F16}, {"BFloat16Storage", DType::BF16},
        {"DoubleStorage", DType::F64}, {"LongStorage", DType::I64}, {"IntStorage", DType::I32},
        {"ShortStorage", DType::I16},  {"CharStorage", DType::I8},  {"ByteStorage", DType::U8},
        {"BoolStorage", DType::BOOL},
    };
    for (const auto& [n, d] : kTable)
        if (name == n) return d;
    return std::nullopt;
}

std::optional<DType> torchDType(const std::string& name) {
    static const std::pair<const char*, DType> kTable[] = {
        {"float32", DType::F32},   {"float", DType::F32},   {"float16", DType::F16}, {"half", DType::F16},
        {"bfloat16", DType::BF16}, {"float64", DType::F64}, {"double", DType::F64},  {"int64", DType::I64},
        {"long", DType::I64},      {"int32", DType::I32},   {"int", DType::I32},     {"int16", DType::I16},
        {"short", DType::I16},     {"int8", DType::I8},     {"uint8", DType::U8},    {"bool", DType::BOOL},
    };
    for (const auto& [n, d] : kTable)
        if (name == n) return d;
    return std::nullopt;
}

// The allow-list. nullptr: refused.
std::shared_ptr<const GlobalRef> resolveGlobal(const std::string& module, const std::string& name,
                                               bool allowTorch) {
    auto make = [&](Callable c, DType dtype = DType::U8, bool untyped = false) {
        auto g = std::make_shared<GlobalRef>();
        g->callable = c;
        g->name = module + "." + name;
        g->dtype = dtype;
        g->untyped = untyped;
        return std::shared_ptr<const GlobalRef>(g);
    };
    const bool numpyCore = module == "numpy.core.multiarray" || module == "numpy._core.multiarray";
    const bool numpyNumeric = module == "numpy.core.numeric" || module == "numpy._core.numeric";
    if (numpyCore && name == "_reconstruct") return make(Callable::NumpyReconstruct);
    if (numpyCore && name == "scalar") return make(Callable::NumpyScalar);
    if (numpyNumeric && name == "_frombuffer") return make(Callable::NumpyFromBuffer);
    if (module == "numpy" && name == "ndarray") return make(Callable::NumpyNdarray);
    if (module == "numpy" && name == "dtype") return make(Callable::NumpyDType);
    if (module == "_codecs" && name == "encode") return make(Callable::CodecsEncode);
    if (module == "collections" && name == "OrderedDict") return make(Callable::OrderedDict);
    if (module == "builtins" || module == "__builtin__") {
        if (name == "set" || name == "frozenset") return make(Callable::BuiltinSet);
        if (name == "bytearray" || name == "bytes") return make(Callable::BuiltinByteArray);
        return nullptr;
    }
    if (!allowTorch) return nullptr;
    if (module == "torch._utils") {
        if (name == "_rebuild_tensor_v2") return make(Callable::TorchRebuildV2);
        if (name == "_rebuild_tensor_v3") return make(Callable::TorchRebuildV3);
        if (name == "_rebuild_parameter") return make(Callable::TorchRebuildParameter);
        if (name == "_rebuild_parameter_with_state") return make(Callable::TorchRebuildParameterWithState);
        return nullptr;
    }
    if (module == "torch") {
        if (auto d = torchStorageDType(name)) return make(Callable::TorchStorageType, *d);
        if (name == "UntypedStorage") return make(Callable::TorchStorageType, DType::U8, true);
        if (auto d = torchDType(name)) return make(Callable::TorchDType, *d);
        return nullptr;
    }
    if (module == "torch.storage" && (name == "UntypedStorage" || name == "_UntypedStorage"))
        return make(Callable::TorchStorageType, DType::U8, true);
    return nullptr;
}

// Expanded values (shared sub-objects counted each time they are reachable) allowed in a result.
constexpr std::uint64_t kMaxExpandedValues = std::uint64_t(1) << 26;

class Unpickler {
public:
    Unpickler(const std::uint8_t* data, std::size_t size, const UnpickleOptions& options)
        : m_data(data), m_size(size), m_options(options) {
        m_maxBytes = options.maxTotalBytes ? options.maxTotalBytes
                                           : std::uint64_t(size) * 4 + (std::uint64_t(64) << 20);
    }

    ~Unpickler() {
        // Break every container apart first, so that deep or cyclic structures left on the stack or in the
        // memo are freed without recursion (the result, when any, was validated and moved out already).
        if (m_flatten) flattenAll();
    }

    PickleValue run() {
        PickleValue result;
        try {
            result = parse();
            checkShape();
        } catch (...) {
            m_flatten = true;
            throw;
        }
        return result;
    }

private:
    // ----- errors and input

    [[noreturn]] void fail(const std::string& what, std::size_t at) const {
        throw Error(m_options.source + ": " + what + " at byte " + std::to_string(at));
    }

    [[noreturn]] void truncated(std::size_t need) const {
        fail("truncated pickle: opcode 0x" + hex(m_opcode) + " needs " + std::to_string(need) +
                 " more bytes, " + std::to_string(m_size - m_pos) + " left",
             m_opAt);
    }

    static std::string hex(std::uint8_t b) {
        char buf[3];
        std::snprintf(buf, sizeof buf, "%02x", b);
        return buf;
    }

    const std::uint8_t* take(std::uint64_t n) {
        if (n > m_size - m_pos) truncated(n);
        const std::uint8_t* p = m_data + m_pos;
        m_pos += std::size_t(n);
        return p;
    }

    std::uint64_t readUInt(int bytes) {
        const std::uint8_t* p = take(std::uint64_t(bytes));
        std::uint64_t v = 0;
        for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
        return v;
    }

    std::string readLine() {
        const std::uint8_t* begin = m_data + m_pos;
        const void* nl = std::memchr(begin, '\n', m_size - m_pos);
        if (!nl) fail("truncated pickle: opcode 0x" + hex(m_opcode) + " has no end of line", m_opAt);
        const auto* end = static_cast<const std::uint8_t*>(nl);
        std::string line(reinterpret_cast<const char*>(begin), std::size_t(end - begin));
        m_pos += line.size() + 1;
        return line;
    }

    void account(std::uint64_t bytes) {
        m_totalBytes += bytes;
        if (m_totalBytes > m_maxBytes)
            fail("the values made exceed the limit of " + std::to_string(m_maxBytes) + " bytes", m_opAt);
    }

    // ----- stack

    void push(Obj o) { m_stack.push_back(std::move(o)); }
    void pushValue(PickleValue v) { m_stack.push_back(Obj::value(std::move(v))); }

    Obj pop() {
        if (m_stack.size() <= markBase()) fail("stack underflow (opcode 0x" + hex(m_opcode) + ")", m_opAt);
        Obj o = std::move(m_stack.back());
        m_stack.pop_back();
        return o;
    }

    Obj& top() {
        if (m_stack.size() <= markBase()) fail("stack underflow (opcode 0x" + hex(m_opcode) + ")", m_opAt);
        return m_stack.back();
    }

    std::size_t markBase() const { return m_marks.empty() ? 0 : m_marks.back(); }

    // Pops everything above the topmost MARK, and the MARK.
    std::vector<Obj> popMark() {
        if (m_marks.empty()) fail("MARK missing (opcode 0x" + hex(m_opcode) + ")", m_opAt);
        const std::size_t base = m_marks.back();
        m_marks.pop_back();
        std::vector<Obj> items(std::make_move_iterator(m_stack.begin() + std::ptrdiff_t(base)),
                               std::make_move_iterator(m_stack.end()));
        m_stack.resize(base);
        return items;
    }

    // ----- values

    PickleValue toValue(Obj&& o) {
        if (o.k == Obj::K::Value) return std::move(o.v);
        if (o.k == Obj::K::RawTuple) {
            PickleValue::Items items;
            items.reserve(o.tuple->size());
            for (const Obj& e : *o.tuple) items.push_back(toValue(Obj(e)));
            return makeContainer(PickleValue::tuple(std::move(items)));
        }
        fail(std::string("a ") + o.what() + " cannot be stored as a value", m_opAt);
    }

    PickleValue makeContainer(PickleValue v) {
        m_containers.push_back(v);
        return v;
    }

    Obj makeTuple(std::vector<Obj> items) {
        bool plain = true;
        int depth = 0;
        for (const Obj& o : items) {
            if (o.k != Obj::K::Value) plain = false;
            if (o.k == Obj::K::RawTuple) depth = std::max(depth, o.depth);
        }
        if (plain) {
            PickleValue::Items values;
            values.reserve(items.size());
            for (Obj& o : items) values.push_back(std::move(o.v));
            return Obj::value(makeContainer(PickleValue::tuple(std::move(values))));
        }
        for (const Obj& o : items)
            if (o.k == Obj::K::Mark) fail("a MARK inside a tuple", m_opAt);
        Obj o;
        o.k = Obj::K::RawTuple;
        o.depth = depth + 1;
        if (o.depth > m_options.maxDepth)
            fail("nesting deeper than " + std::to_string(m_options.maxDepth) + " levels", m_opAt);
        o.tuple = std::make_shared<std::vector<Obj>>(std::move(items));
        return o;
    }

    // The elements of a tuple argument (REDUCE args, BUILD states, persistent ids).
    std::vector<Obj> tupleItems(const Obj& o, const char* what) {
        if (o.k == Obj::K::RawTuple) return *o.tuple;
        if (o.k == Obj::K::Value &&
            (o.v.kind() == PickleValue::Kind::Tuple || o.v.kind() == PickleValue::Kind::List)) {
            std::vector<Obj> out;
            for (const PickleValue& v : o.v.list()) out.push_back(Obj::value(v));
            return out;
        }
        fail(std::string(what) + " must be a tuple, found a " + o.what(), m_opAt);
    }

    std::string dictKeyId(const PickleValue& k) const {
        switch (k.kind()) {
            case PickleValue::Kind::String:
                return "s" + k.str();
            case PickleValue::Kind::Int:
                return "i" + std::to_string(k.toInt());
            case PickleValue::Kind::Bool:
                return "i" + std::to_string(k.toInt());
            case PickleValue::Kind::None:
                return "n";
            case PickleValue::Kind::Bytes:
                return "b" + std::string(k.byteString().begin(), k.byteString().end());
            default:
                return {};  // not deduplicated
        }
    }

    void setItem(PickleValue& dict, PickleValue key, PickleValue value) {
        auto& items = dict.mutableDict();
        std::string id = dictKeyId(key);
        if (!id.empty()) {
            auto& index = m_dictIndex[&items];
            auto [it, inserted] = index.emplace(std::move(id), items.size());
            if (!inserted && it->second < items.size()) {
                items[it->second].second = std::move(value);
                return;
            }
            it->second = items.size();
        }
        items.emplace_back(std::move(key), std::move(value));
    }

    PickleValue& dictTarget(Obj& o) {
        if (o.k != Obj::K::Value || o.v.kind() != PickleValue::Kind::Dict)
            fail(std::string("SETITEM on a ") + o.what() + ", not a dict", m_opAt);
        return o.v;
    }

    PickleValue& listTarget(Obj& o) {
        if (o.k != Obj::K::Value || o.v.kind() != PickleValue::Kind::List)
            fail(std::string("APPEND on a ") + o.what() + ", not a list", m_opAt);
        return o.v;
    }

    // ----- memo

    void memoPut(std::uint64_t index) {
        const Obj& o = top();
        if (o.k == Obj::K::Mark) fail("memoising a MARK", m_opAt);
        auto it = m_memo.find(index);
        if (it == m_memo.end()) {
            if (m_memo.size() >= m_options.maxMemo)
                fail("more than " + std::to_string(m_options.maxMemo) + " memo entries", m_opAt);
            m_memo.emplace(index, o);
        } else {
            it->second = o;
        }
    }

    void memoGet(std::uint64_t index) {
        auto it = m_memo.find(index);
        if (it == m_memo.end()) fail("memo index " + std::to_string(index) + " was never stored", m_opAt);
        if (it->second.k == Obj::K::Value && it->second.v.kind() == PickleValue::Kind::String)
            account(it->second.v.str().size());
        push(it->second);
    }

    // ----- text integers

    std::int64_t parseDecimal(const std::string& text, const char* what) {
        std::string t = text;
        if (!t.empty() && t.back() == 'L') t.pop_back();
        if (t.empty()) fail(std::string("empty ") + what, m_opAt);
        errno = 0;
        char* end = nullptr;
        long long v = std::strtoll(t.c_str(), &end, 10);
        if (errno == ERANGE) fail(std::string(what) + " '" + text + "' does not fit in 64 bits", m_opAt);
        if (end != t.c_str() + t.size()) fail(std::string("malformed ") + what + " '" + text + "'", m_opAt);
        return v;
    }

    std::int64_t readLong(std::uint64_t n) {
        const std::uint8_t* p = take(n);
        if (n == 0) return 0;
        const bool negative = (p[n - 1] & 0x80) != 0;
        // Bytes beyond the eighth must be sign extension.
        for (std::uint64_t i = 8; i < n; ++i)
            if (p[i] != (negative ? 0xff : 0x00))
                fail("integer of " + std::to_string(n) + " bytes does not fit in 64 bits", m_opAt);
        std::uint64_t v = negative ? ~std::uint64_t(0) : 0;
        const std::uint64_t used = std::min<std::uint64_t>(n, 8);
        for (std::uint64_t i = 0; i < used; ++i) {
            v &= ~(std::uint64_t(0xff) << (8 * i));
            v |= std::uint64_t(p[i]) << (8 * i);
        }
        if (n > 8 && ((v >> 63) != 0) != negative)
            fail("integer of " + std::to_string(n) + " bytes does not fit in 64 bits", m_opAt);
        std::int64_t out;
        std::memcpy(&out, &v, 8);
        return out;
    }

    // ----- strings

    PickleValue makeString(std::uint64_t n) {
        const std::uint8_t* p = take(n);
        account(n);
        return PickleValue::string(std::string(reinterpret_cast<const char*>(p), std::size_t(n)));
    }

    PickleValue makeBytes(std::uint64_t n) {
        const std::uint8_t* p = take(n);
        account(n);
        return PickleValue::bytes(std::vector<std::uint8_t>(p, p + n));
    }

    // UTF-8 text whose code points are all below 256, as bytes (Python's str.encode('latin1')).
    std::vector<std::uint8_t> latin1(const std::string& text) {
        std::vector<std::uint8_t> out;
        out.reserve(text.size());
        const auto* s = reinterpret_cast<const std::uint8_t*>(text.data());
        const std::size_t n = text.size();
        for (std::size_t i = 0; i < n;) {
            const std::uint8_t c = s[i];
            if (c < 0x80) {
                out.push_back(c);
                ++i;
            } else if ((c & 0xe0) == 0xc0 && i + 1 < n && (s[i + 1] & 0xc0) == 0x80) {
                const unsigned cp = (unsigned(c & 0x1f) << 6) | (s[i + 1] & 0x3f);
                if (cp > 0xff || cp < 0x80)
                    fail("_codecs.encode: a character beyond latin-1 in the bytes text", m_opAt);
                out.push_back(std::uint8_t(cp));
                i += 2;
            } else {
                fail("_codecs.encode: a character beyond latin-1 in the bytes text", m_opAt);
            }
        }
        return out;
    }

    // ----- numpy

    NumpyDTypeState parseNumpyDescr(const std::string& descr) {
        NumpyDTypeState d;
        d.descr = descr;
        std::string s = descr;
        if (!s.empty() && (s[0] == '<' || s[0] == '>' || s[0] == '|' || s[0] == '=')) {
            d.order = s[0];
            s = s.substr(1);
        }
        static const std::pair<const char*, const char*> kNames[] = {
            {"float64", "f8"}, {"float32", "f4"}, {"float16", "f2"}, {"int64", "i8"}, {"int32", "i4"},
            {"int16", "i2"},   {"int8", "i1"},    {"uint8", "u1"},   {"bool", "b1"},
        };
        for (const auto& [name, code] : kNames)
            if (s == name) s = code;
        if (s.size() < 2) return d;
        d.kind = s[0];
        d.itemsize = std::atoi(s.c_str() + 1);
        static const std::pair<const char*, DType> kCodes[] = {
            {"f8", DType::F64}, {"f4", DType::F32}, {"f2", DType::F16},
            {"i8", DType::I64}, {"i4", DType::I32}, {"i2", DType::I16},
            {"i1", DType::I8},  {"u1", DType::U8},  {"b1", DType::BOOL},
        };
        for (const auto& [code, dtype] : kCodes)
            if (s == code) {
                d.supported = true;
                d.dtype = dtype;
            }
        return d;
    }

    const NumpyDTypeState& requireDType(const Obj& o, const char* what) {
        if (o.k != Obj::K::NumpyDType)
            fail(std::string(what) + " must be a numpy dtype, found a " + o.what(), m_opAt);
        const NumpyDTypeState& d = *o.dtype;
        if (!d.supported) {
            if (d.kind == 'O') fail("numpy object arrays are not read (dtype '" + d.descr + "')", m_opAt);
            fail(
                "unsupported numpy dtype '" + d.descr + "' (read: float64/32/16, int64/32/16/8, uint8, bool)",
                m_opAt);
        }
        return d;
    }

    std::vector<std::int64_t> shapeOf(const Obj& o, const char* what) {
        std::vector<std::int64_t> shape;
        for (const Obj& e : tupleItems(o, what)) {
            if (e.k != Obj::K::Value ||
                (e.v.kind() != PickleValue::Kind::Int && e.v.kind() != PickleValue::Kind::Bool))
                fail(std::string(what) + " holds a " + e.what() + ", not an int", m_opAt);
            const std::int64_t d = e.v.toInt();
            if (d < 0) fail(std::string(what) + " holds a negative size " + std::to_string(d), m_opAt);
            shape.push_back(d);
        }
        return shape;
    }

    std::uint64_t byteCount(const std::vector<std::int64_t>& shape, std::size_t elem, const char* what) {
        std::uint64_t total = elem;
        for (std::int64_t d : shape) {
            const auto ud = std::uint64_t(d);
            if (ud != 0 && total > std::numeric_limits<std::uint64_t>::max() / ud)
                fail(std::string(what) + " is too large", m_opAt);
            total *= ud;
        }
        return total;
    }

    // Fills `a` from raw bytes in numpy's layout: byte order as `d`, Fortran order when `fortran`.
    void fillArray(NdArray& a, const NumpyDTypeState& d, std::vector<std::int64_t> shape,
                   const std::uint8_t* raw, std::uint64_t rawSize, bool fortran) {
        const std::size_t elem = dtypeSize(d.dtype);
        const std::uint64_t nbytes = byteCount(shape, elem, "numpy array shape");
        if (rawSize != nbytes)
            fail("numpy array data has " + std::to_string(rawSize) + " bytes, its shape and dtype '" +
                     d.descr + "' need " + std::to_string(nbytes),
                 m_opAt);
        account(nbytes);
        a.dtype = d.dtype;
        a.shape = shape;
        a.data.assign(raw, raw + nbytes);
        if (d.order == '>' && elem > 1)
            for (std::size_t i = 0; i < a.data.size(); i += elem) std::reverse(&a.data[i], &a.data[i] + elem);
        if (fortran && shape.size() > 1 && nbytes > 0) {
            // Element at C index (i0..in) is at Fortran offset sum(ik * prod(shape[<k])).
            std::vector<std::uint8_t> c(a.data.size());
            const std::size_t rank = shape.size();
            std::vector<std::int64_t> fstride(rank), idx(rank, 0);
            std::int64_t s = 1;
            for (std::size_t k = 0; k < rank; ++k) {
                fstride[k] = s;
                s *= shape[k];
            }
            const std::uint64_t n = nbytes / elem;
            std::int64_t src = 0;
            for (std::uint64_t i = 0; i < n; ++i) {
                std::memcpy(&c[i * elem], &a.data[std::size_t(src) * elem], elem);
                for (std::size_t k = rank; k-- > 0;) {  // advance the C-order index
                    ++idx[k];
                    src += fstride[k];
                    if (idx[k] < shape[k]) break;
                    src -= fstride[k] * idx[k];
                    idx[k] = 0;
                }
            }
            a.data.swap(c);
        }
    }

    const std::vector<std::uint8_t>* rawBytes(const Obj& o) {
        if (o.k == Obj::K::Value && o.v.kind() == PickleValue::Kind::Bytes) return &o.v.byteString();
        return nullptr;
    }

    // ----- callables

    Obj call(const GlobalRef& g, const Obj& argsObj, bool newobj) {
        std::vector<Obj> args = tupleItems(argsObj, (g.name + " arguments").c_str());
        auto need = [&](std::size_t lo, std::size_t hi) {
            if (args.size() < lo || args.size() > hi)
                fail(g.name + " called with " + std::to_string(args.size()) + " arguments", m_opAt);
        };
        auto intArg = [&](std::size_t i, const char* what) {
            if (args[i].k != Obj::K::Value ||
                (args[i].v.kind() != PickleValue::Kind::Int && args[i].v.kind() != PickleValue::Kind::Bool))
                fail(g.name + ": " + what + " must be an int, found a " + args[i].what(), m_opAt);
            return args[i].v.toInt();
        };
        auto strArg = [&](std::size_t i, const char* what) -> const std::string& {
            if (args[i].k != Obj::K::Value || args[i].v.kind() != PickleValue::Kind::String)
                fail(g.name + ": " + what + " must be a str, found a " + args[i].what(), m_opAt);
            return args[i].v.str();
        };
        switch (g.callable) {
            case Callable::NumpyReconstruct: {
                need(3, 3);
                if (args[0].k != Obj::K::Global || args[0].global->callable != Callable::NumpyNdarray)
                    fail(g.name + ": only numpy.ndarray is reconstructed", m_opAt);
                NdArray a;
                a.dtype = DType::U8;
                a.shape = {0};
                return Obj::value(PickleValue::array(std::move(a)));
            }
            case Callable::NumpyDType: {
                need(1, 3);
                Obj o;
                o.k = Obj::K::NumpyDType;
                o.dtype = std::make_shared<NumpyDTypeState>(parseNumpyDescr(strArg(0, "the dtype code")));
                return o;
            }
            case Callable::NumpyFromBuffer: {
                need(4, 4);
                const std::vector<std::uint8_t>* buf = rawBytes(args[0]);
                if (!buf)
                    fail(g.name + ": the buffer must be bytes, found a " + std::string(args[0].what()),
                         m_opAt);
                const NumpyDTypeState& d = requireDType(args[1], "the dtype of _frombuffer");
                std::vector<std::int64_t> shape = shapeOf(args[2], "numpy array shape");
                const std::string& order = strArg(3, "the order");
                if (order != "C" && order != "F") fail(g.name + ": unknown order '" + order + "'", m_opAt);
                NdArray a;
                fillArray(a, d, shape, buf->data(), buf->size(), order == "F");
                return Obj::value(PickleValue::array(std::move(a)));
            }
            case Callable::NumpyScalar: {
                need(2, 2);
                const NumpyDTypeState& d = requireDType(args[0], "the dtype of a numpy scalar");
                const std::vector<std::uint8_t>* buf = rawBytes(args[1]);
                if (!buf) fail(g.name + ": the value must be bytes", m_opAt);
                NdArray a;
                fillArray(a, d, {}, buf->data(), buf->size(), false);
                const double v = elementAsDouble(a.dtype, a.data.data());
                switch (a.dtype) {
                    case DType::BOOL:
                        return Obj::value(PickleValue::boolean(v != 0.0));
                    case DType::F64:
                    case DType::F32:
                    case DType::F16:
                    case DType::BF16:
                        return Obj::value(PickleValue::real(v));
                    case DType::I64:
                        return Obj::value(PickleValue::integer(loadLe<std::int64_t>(a.data.data())));
                    default:
                        return Obj::value(PickleValue::integer(std::int64_t(v)));
                }
            }
            case Callable::CodecsEncode: {
                need(2, 2);
                const std::string& text = strArg(0, "the text");
                const std::string& encoding = strArg(1, "the encoding");
                if (encoding != "latin1" && encoding != "latin-1" && encoding != "iso-8859-1")
                    fail(g.name + ": encoding '" + encoding + "' is not read (only latin1)", m_opAt);
                account(text.size());
                return Obj::value(PickleValue::bytes(latin1(text)));
            }
            case Callable::OrderedDict: {
                need(0, 1);
                PickleValue d = makeContainer(PickleValue::dict({}));
                if (!args.empty() && !newobj) {
                    for (const Obj& pair : tupleItems(args[0], "OrderedDict items")) {
                        std::vector<Obj> kv = tupleItems(pair, "an OrderedDict item");
                        if (kv.size() != 2) fail("an OrderedDict item is not a pair", m_opAt);
                        setItem(d, toValue(std::move(kv[0])), toValue(std::move(kv[1])));
                    }
                }
                return Obj::value(std::move(d));
            }
            case Callable::BuiltinSet: {
                need(0, 1);
                PickleValue l = makeContainer(PickleValue::list({}));
                if (!args.empty())
                    for (Obj& e : tupleItems(args[0], "set items"))
                        l.mutableItems().push_back(toValue(std::move(e)));
                return Obj::value(std::move(l));
            }
            case Callable::BuiltinByteArray: {
                need(0, 2);
                if (args.empty()) return Obj::value(PickleValue::bytes({}));
                if (const auto* b = rawBytes(args[0])) return Obj::value(PickleValue::bytes(*b));
                const std::string& text = strArg(0, "the text");
                if (args.size() == 2) {
                    const std::string& encoding = strArg(1, "the encoding");
                    if (encoding != "latin1" && encoding != "latin-1" && encoding != "iso-8859-1")
                        fail(g.name + ": encoding '" + encoding + "' is not read (only latin-1)", m_opAt);
                }
                account(text.size());
                return Obj::value(PickleValue::bytes(latin1(text)));
            }
            case Callable::TorchRebuildV2:
            case Callable::TorchRebuildV3: {
                const bool v3 = g.callable == Callable::TorchRebuildV3;
                need(v3 ? 7 : 6, v3 ? 8 : 7);
                if (args[0].k != Obj::K::Storage)
                    fail(g.name + ": the first argument must be a storage, found a " +
                             std::string(args[0].what()),
                         m_opAt);
                const StorageRef& s = *args[0].storage;
                TorchTensorRef t;
                t.storageKey = s.key;
                t.location = s.location;
                t.dtype = s.dtype;
                t.storageNumel = s.numel;
                if (v3) {
                    if (args[6].k != Obj::K::Global || args[6].global->callable != Callable::TorchDType)
                        fail(g.name + ": the dtype must be a torch dtype, found a " +
                                 std::string(args[6].what()),
                             m_opAt);
                    t.dtype = args[6].global->dtype;
                    if (s.untyped) t.storageNumel = s.numel / std::int64_t(dtypeSize(t.dtype));
                } else if (s.untyped) {
                    fail(g.name + ": an untyped storage needs _rebuild_tensor_v3", m_opAt);
                }
                t.storageOffset = intArg(1, "the storage offset");
                if (t.storageOffset < 0) fail(g.name + ": negative storage offset", m_opAt);
                t.shape = shapeOf(args[2], "tensor size");
                t.stride = shapeOf(args[3], "tensor stride");
                if (t.shape.size() != t.stride.size())
                    fail(g.name + ": size and stride have different lengths", m_opAt);
                return Obj::value(PickleValue::tensor(std::move(t)));
            }
            case Callable::TorchRebuildParameter:
            case Callable::TorchRebuildParameterWithState: {
                need(3, 4);
                if (args[0].k != Obj::K::Value || !args[0].v.isTensor())
                    fail(g.name + ": the data must be a tensor, found a " + std::string(args[0].what()),
                         m_opAt);
                return Obj::value(args[0].v);
            }
            case Callable::NumpyNdarray:
            case Callable::TorchStorageType:
            case Callable::TorchDType:
                break;
        }
        fail("global '" + g.name + "' cannot be called", m_opAt);
    }

    void build(Obj& target, const Obj& state) {
        if (target.k == Obj::K::NumpyDType) {
            std::vector<Obj> s = tupleItems(state, "the state of a numpy dtype");
            if (s.size() < 2 || s[1].k != Obj::K::Value || s[1].v.kind() != PickleValue::Kind::String)
                fail("malformed numpy dtype state", m_opAt);
            const std::string& order = s[1].v.str();
            if (order.size() != 1 || std::string("<>|=").find(order[0]) == std::string::npos)
                fail("numpy dtype byte order '" + order + "' is not one of < > | =", m_opAt);
            for (std::size_t i = 2; i < 5 && i < s.size(); ++i)
                if (!(s[i].k == Obj::K::Value && s[i].v.isNone()))
                    fail("structured or sub-array numpy dtypes are not read ('" + target.dtype->descr + "')",
                         m_opAt);
            target.dtype->order = order[0] == '=' ? '<' : order[0];
            return;
        }
        if (target.k == Obj::K::Value && target.v.isArray()) {
            std::vector<Obj> s = tupleItems(state, "the state of a numpy array");
            if (s.size() != 5)
                fail("malformed numpy array state (" + std::to_string(s.size()) + " items)", m_opAt);
            std::vector<std::int64_t> shape = shapeOf(s[1], "numpy array shape");
            const NumpyDTypeState& d = requireDType(s[2], "the dtype of a numpy array");
            if (s[3].k != Obj::K::Value ||
                (s[3].v.kind() != PickleValue::Kind::Bool && s[3].v.kind() != PickleValue::Kind::Int))
                fail("malformed numpy array state (is_fortran)", m_opAt);
            const bool fortran = s[3].v.toBool();
            const std::vector<std::uint8_t>* raw = rawBytes(s[4]);
            std::vector<std::uint8_t> fromText;
            if (!raw && s[4].k == Obj::K::Value && s[4].v.isString()) {
                fromText = latin1(s[4].v.str());
                raw = &fromText;
            }
            if (!raw) {
                if (s[4].k == Obj::K::Value && s[4].v.kind() == PickleValue::Kind::List)
                    fail("numpy object arrays are not read (dtype '" + s[2].dtype->descr + "')", m_opAt);
                fail(std::string("numpy array data must be bytes, found a ") + s[4].what(), m_opAt);
            }
            fillArray(target.v.mutableArray(), d, shape, raw->data(), raw->size(), fortran);
            return;
        }
        // Other objects: only empty states, and attributes of dicts (e.g. a state dict's _metadata).
        if (state.k == Obj::K::Value && state.v.isNone()) return;
        if (target.k == Obj::K::Value && target.v.isDict()) return;
        if (state.k == Obj::K::Value && state.v.isDict() && state.v.dict().empty()) return;
        fail(std::string("BUILD of a ") + target.what() + " with a " + state.what() + " state is not read",
             m_opAt);
    }

    Obj persistentLoad(const Obj& pid) {
        std::vector<Obj> p = tupleItems(pid, "a persistent id");
        if (p.size() != 5 || p[0].k != Obj::K::Value || !p[0].v.isString() || p[0].v.str() != "storage")
            fail("persistent id is not ('storage', type, key, location, numel)", m_opAt);
        if (p[1].k != Obj::K::Global || p[1].global->callable != Callable::TorchStorageType)
            fail(std::string("persistent id names a ") + p[1].what() + ", not a torch storage type", m_opAt);
        auto s = std::make_shared<StorageRef>();
        s->dtype = p[1].global->dtype;
        s->untyped = p[1].global->untyped;
        if (p[2].k != Obj::K::Value || !p[2].v.isString())
            fail("persistent id: the key must be a str", m_opAt);
        s->key = p[2].v.str();
        if (p[3].k != Obj::K::Value || !p[3].v.isString())
            fail("persistent id: the location must be a str", m_opAt);
        s->location = p[3].v.str();
        if (p[4].k != Obj::K::Value || p[4].v.kind() != PickleValue::Kind::Int || p[4].v.toInt() < 0)
            fail("persistent id: the size must be a non-negative int", m_opAt);
        s->numel = p[4].v.toInt();
        Obj o;
        o.k = Obj::K::Storage;
        o.storage = std::move(s);
        return o;
    }

    void pushGlobal(const std::string& module, const std::string& name) {
        auto g = resolveGlobal(module, name, m_options.allowTorchStorages);
        if (!g) fail("refused global '" + module + "." + name + "'", m_opAt, true);
        Obj o;
        o.k = Obj::K::Global;
        o.global = std::move(g);
        push(std::move(o));
    }

    [[noreturn]] void fail(const std::string& what, std::size_t at, bool refusedGlobal) const {
        if (!refusedGlobal) fail(what, at);
        throw Error(m_options.source + ": " + what + " at byte " + std::to_string(at) + " " + kRefusedHint);
    }

    // ----- the loop

    PickleValue parse() {
        while (true) {
            if (m_pos >= m_size) {
                m_opAt = m_pos;
                fail("truncated pickle: it ends before its STOP opcode", m_pos);
            }
            m_opAt = m_pos;
            m_opcode = m_data[m_pos++];
            switch (m_opcode) {
                case 0x80: {  // PROTO
                    const auto v = readUInt(1);
                    if (v > 5) fail("unsupported pickle protocol " + std::to_string(v), m_opAt);
                    break;
                }
                case 0x95: {  // FRAME
                    const auto n = readUInt(8);
                    if (n > m_size - m_pos) truncated(n);
                    break;
                }
                case '.': {  // STOP
                    Obj o = pop();
                    return toValue(std::move(o));
                }
                case '(':  // MARK
                    m_marks.push_back(m_stack.size());
                    if (m_marks.size() > std::size_t(m_options.maxDepth) * 64 + 1024)
                        fail("too many open MARKs", m_opAt);
                    break;
                case '0':  // POP
                    if (m_stack.size() == markBase() && !m_marks.empty()) {
                        m_marks.pop_back();  // POP of a MARK, as Python does
                    } else {
                        pop();
                    }
                    break;
                case '1':  // POP_MARK
                    popMark();
                    break;
                case '2': {  // DUP
                    Obj copy = top();
                    if (copy.k == Obj::K::Value && copy.v.isString()) account(copy.v.str().size());
                    push(std::move(copy));
                    break;
                }
                case ')':  // EMPTY_TUPLE
                    push(makeTuple({}));
                    break;
                case 't':  // TUPLE
                    push(makeTuple(popMark()));
                    break;
                case 0x85:
                case 0x86:
                case 0x87: {  // TUPLE1..3
                    const std::size_t n = std::size_t(m_opcode - 0x84);
                    if (m_stack.size() < markBase() + n)
                        fail("stack underflow (opcode 0x" + hex(m_opcode) + ")", m_opAt);
                    std::vector<Obj> items(std::make_move_iterator(m_stack.end() - std::ptrdiff_t(n)),
                                           std::make_move_iterator(m_stack.end()));
                    m_stack.resize(m_stack.size() - n);
                    push(makeTuple(std::move(items)));
                    break;
                }
                case ']':   // EMPTY_LIST
                case 0x8f:  // EMPTY_SET (read as a list)
                    pushValue(makeContainer(PickleValue::list({})));
                    break;
                case 'l':     // LIST
                case 0x91: {  // FROZENSET
                    std::vector<Obj> items = popMark();
                    PickleValue::Items values;
                    values.reserve(items.size());
                    for (Obj& o : items) values.push_back(toValue(std::move(o)));
                    pushValue(makeContainer(PickleValue::list(std::move(values))));
                    break;
                }
                case 'a': {  // APPEND
                    Obj item = pop();
                    PickleValue v = toValue(std::move(item));
                    listTarget(top()).mutableItems().push_back(std::move(v));
                    break;
                }
                case 'e':     // APPENDS
                case 0x90: {  // ADDITEMS
                    std::vector<Obj> items = popMark();
                    PickleValue& list = listTarget(top());
                    for (Obj& o : items) {
                        PickleValue v = toValue(std::move(o));
                        list.mutableItems().push_back(std::move(v));
                    }
                    break;
                }
                case '}':  // EMPTY_DICT
                    pushValue(makeContainer(PickleValue::dict({})));
                    break;
                case 'd': {  // DICT
                    std::vector<Obj> items = popMark();
                    if (items.size() % 2) fail("DICT with an odd number of items", m_opAt);
                    PickleValue d = makeContainer(PickleValue::dict({}));
                    for (std::size_t i = 0; i < items.size(); i += 2) {
                        PickleValue k = toValue(std::move(items[i]));
                        setItem(d, std::move(k), toValue(std::move(items[i + 1])));
                    }
                    pushValue(std::move(d));
                    break;
                }
                case 's': {  // SETITEM
                    Obj value = pop();
                    Obj key = pop();
                    PickleValue k = toValue(std::move(key));
                    PickleValue v = toValue(std::move(value));
                    setItem(dictTarget(top()), std::move(k), std::move(v));
                    break;
                }
                case 'u': {  // SETITEMS
                    std::vector<Obj> items = popMark();
                    if (items.size() % 2) fail("SETITEMS with an odd number of items", m_opAt);
                    PickleValue& d = dictTarget(top());
                    for (std::size_t i = 0; i < items.size(); i += 2) {
                        PickleValue k = toValue(std::move(items[i]));
                        setItem(d, std::move(k), toValue(std::move(items[i + 1])));
                    }
                    break;
                }
                case 'N':  // NONE
                    pushValue(PickleValue());
                    break;
                case 0x88:  // NEWTRUE
                    pushValue(PickleValue::boolean(true));
                    break;
                case 0x89:  // NEWFALSE
                    pushValue(PickleValue::boolean(false));
                    break;
                case 'I': {  // INT
                    const std::string line = readLine();
                    if (line == "01")
                        pushValue(PickleValue::boolean(true));
                    else if (line == "00")
                        pushValue(PickleValue::boolean(false));
                    else
                        pushValue(PickleValue::integer(parseDecimal(line, "INT")));
                    break;
                }
                case 'L':  // LONG (text)
                    pushValue(PickleValue::integer(parseDecimal(readLine(), "LONG")));
                    break;
                case 'F': {  // FLOAT (text)
                    const std::string line = readLine();
                    char* end = nullptr;
                    const double v = std::strtod(line.c_str(), &end);
                    if (line.empty() || end != line.c_str() + line.size())
                        fail("malformed FLOAT '" + line + "'", m_opAt);
                    pushValue(PickleValue::real(v));
                    break;
                }
                case 'J': {  // BININT
                    const auto u = std::uint32_t(readUInt(4));
                    std::int32_t v;
                    std::memcpy(&v, &u, 4);
                    pushValue(PickleValue::integer(v));
                    break;
                }
                case 'K':  // BININT1
                    pushValue(PickleValue::integer(std::int64_t(readUInt(1))));
                    break;
                case 'M':  // BININT2
                    pushValue(PickleValue::integer(std::int64_t(readUInt(2))));
                    break;
                case 0x8a:  // LONG1
                    pushValue(PickleValue::integer(readLong(readUInt(1))));
                    break;
                case 0x8b: {  // LONG4
                    const auto u = std::uint32_t(readUInt(4));
                    std::int32_t n;
                    std::memcpy(&n, &u, 4);
                    if (n < 0) fail("LONG4 with a negative length", m_opAt);
                    pushValue(PickleValue::integer(readLong(std::uint64_t(n))));
                    break;
                }
                case 'G': {  // BINFLOAT (big-endian)
                    const std::uint64_t bits = [&] {
                        const std::uint8_t* p = take(8);
                        std::uint64_t v = 0;
                        for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
                        return v;
                    }();
                    double d;
                    std::memcpy(&d, &bits, 8);
                    pushValue(PickleValue::real(d));
                    break;
                }
                case 'X':  // BINUNICODE
                    pushValue(makeString(readUInt(4)));
                    break;
                case 0x8c:  // SHORT_BINUNICODE
                    pushValue(makeString(readUInt(1)));
                    break;
                case 0x8d:  // BINUNICODE8
                    pushValue(makeString(readUInt(8)));
                    break;
                case 'T': {  // BINSTRING
                    const auto u = std::uint32_t(readUInt(4));
                    std::int32_t n;
                    std::memcpy(&n, &u, 4);
                    if (n < 0) fail("BINSTRING with a negative length", m_opAt);
                    pushValue(makeString(std::uint64_t(n)));
                    break;
                }
                case 'U':  // SHORT_BINSTRING
                    pushValue(makeString(readUInt(1)));
                    break;
                case 'B':  // BINBYTES
                    pushValue(makeBytes(readUInt(4)));
                    break;
                case 'C':  // SHORT_BINBYTES
                    pushValue(makeBytes(readUInt(1)));
                    break;
                case 0x8e:  // BINBYTES8
                case 0x96:  // BYTEARRAY8
                    pushValue(makeBytes(readUInt(8)));
                    break;
                case 'c': {  // GLOBAL
                    const std::string module = readLine();
                    const std::string name = readLine();
                    pushGlobal(module, name);
                    break;
                }
                case 0x93: {  // STACK_GLOBAL
                    Obj name = pop();
                    Obj module = pop();
                    if (name.k != Obj::K::Value || !name.v.isString() || module.k != Obj::K::Value ||
                        !module.v.isString())
                        fail("STACK_GLOBAL needs two strings", m_opAt);
                    pushGlobal(module.v.str(), name.v.str());
                    break;
                }
                case 'R':     // REDUCE
                case 0x81: {  // NEWOBJ
                    Obj args = pop();
                    Obj callable = pop();
                    if (callable.k != Obj::K::Global)
                        fail(std::string("REDUCE of a ") + callable.what() + ", not a global", m_opAt);
                    push(call(*callable.global, args, m_opcode == 0x81));
                    break;
                }
                case 'b': {  // BUILD
                    Obj state = pop();
                    build(top(), state);
                    break;
                }
                case 'Q': {  // BINPERSID
                    if (!m_options.allowTorchStorages)
                        fail("persistent id (BINPERSID) is read only in PyTorch zip checkpoints", m_opAt);
                    Obj pid = pop();
                    push(persistentLoad(pid));
                    break;
                }
                case 'q':  // BINPUT
                    memoPut(readUInt(1));
                    break;
                case 'r':  // LONG_BINPUT
                    memoPut(readUInt(4));
                    break;
                case 'p': {  // PUT
                    const std::int64_t i = parseDecimal(readLine(), "PUT index");
                    if (i < 0) fail("negative memo index", m_opAt);
                    memoPut(std::uint64_t(i));
                    break;
                }
                case 0x94:  // MEMOIZE
                    memoPut(m_memo.size());
                    break;
                case 'h':  // BINGET
                    memoGet(readUInt(1));
                    break;
                case 'j':  // LONG_BINGET
                    memoGet(readUInt(4));
                    break;
                case 'g': {  // GET
                    const std::int64_t i = parseDecimal(readLine(), "GET index");
                    if (i < 0) fail("negative memo index", m_opAt);
                    memoGet(std::uint64_t(i));
                    break;
                }
                default:
                    fail("unsupported pickle opcode " + opcodeName(m_opcode), m_opAt);
            }
        }
    }

    static std::string opcodeName(std::uint8_t op) {
        switch (op) {
            case 'i':
                return "INST";
            case 'o':
                return "OBJ";
            case 0x82:
                return "EXT1";
            case 0x83:
                return "EXT2";
            case 0x84:
                return "EXT4";
            case 'P':
                return "PERSID";
            case 'S':
                return "STRING";
            case 'V':
                return "UNICODE";
            case 0x92:
                return "NEWOBJ_EX";
            case 0x97:
                return "NEXT_BUFFER (out-of-band buffers are not read)";
            case 0x98:
                return "READONLY_BUFFER (out-of-band buffers are not read)";
            default:
                return "0x" + hex(op);
        }
    }

    // ----- shape of everything made: depth, cycles, expanded size

    void checkShape() {
        struct Info {
            int state = 0;  // 1: on the path, 2: done
            int depth = 0;
            std::uint64_t expanded = 0;
        };
        std::unordered_map<const void*, Info> info;
        info.reserve(m_containers.size());
        auto idOf = [](const PickleValue& v) -> const void* {
            return v.isDict() ? static_cast<const void*>(&v.dict()) : static_cast<const void*>(&v.list());
        };
        auto isContainer = [](const PickleValue& v) {
            return v.kind() == PickleValue::Kind::List || v.kind() == PickleValue::Kind::Tuple || v.isDict();
        };
        struct Frame {
            const PickleValue* v;
            std::size_t next;
        };
        for (const PickleValue& root : m_containers) {
            if (info[idOf(root)].state == 2) continue;
            std::vector<Frame> stack{{&root, 0}};
            info[idOf(root)].state = 1;
            while (!stack.empty()) {
                Frame& f = stack.back();
                const PickleValue& v = *f.v;
                const std::size_t count = v.isDict() ? v.dict().size() * 2 : v.list().size();
                if (f.next < count) {
                    const std::size_t i = f.next++;
                    const PickleValue& child =
                        v.isDict() ? (i % 2 ? v.dict()[i / 2].second : v.dict()[i / 2].first) : v.list()[i];
                    if (!isContainer(child)) continue;
                    Info& ci = info[idOf(child)];
                    if (ci.state == 1) fail("the pickle makes a container that holds itself", m_size);
                    if (ci.state == 0) {
                        ci.state = 1;
                        stack.push_back({&child, 0});
                    }
                    continue;
                }
                Info& self = info[idOf(v)];
                int depth = 0;
                std::uint64_t expanded = 1;
                for (std::size_t i = 0; i < count; ++i) {
                    const PickleValue& child =
                        v.isDict() ? (i % 2 ? v.dict()[i / 2].second : v.dict()[i / 2].first) : v.list()[i];
                    if (isContainer(child)) {
                        const Info& ci = info[idOf(child)];
                        depth = std::max(depth, ci.depth);
                        expanded += ci.expanded;
                    } else {
                        expanded += 1;
                    }
                    if (expanded > kMaxExpandedValues)
                        fail("the pickle shares sub-objects so often that it expands to more than " +
                                 std::to_string(kMaxExpandedValues) + " values",
                             m_size);
                }
                self.depth = depth + 1;
                self.expanded = expanded;
                self.state = 2;
                if (self.depth > m_options.maxDepth)
                    fail("nesting deeper than " + std::to_string(m_options.maxDepth) + " levels", m_size);
                stack.pop_back();
            }
        }
    }

    void flattenAll() {
        for (PickleValue& c : m_containers) {
            if (c.isDict()) {
                PickleValue::DictItems tmp;
                tmp.swap(c.mutableDict());
            } else {
                PickleValue::Items tmp;
                tmp.swap(c.mutableItems());
            }
        }
    }

    const std::uint8_t* m_data;
    std::size_t m_size;
    const UnpickleOptions& m_options;
    std::uint64_t m_maxBytes = 0;
    std::uint64_t m_totalBytes = 0;
    std::size_t m_pos = 0;
    std::size_t m_opAt = 0;
    std::uint8_t m_opcode = 0;
    bool m_flatten = false;
    // Declared first among the containers so that it is destroyed last (after stack and memo).
    std::vector<PickleValue> m_containers;
    std::unordered_map<const PickleValue::DictItems*, std::unordered_map<std::string, std::size_t>>
        m_dictIndex;
    std::vector<Obj> m_stack;
    std::vector<std::size_t> m_marks;
    std::unordered_map<std::uint64_t, Obj> m_memo;
};

}  // namespace

PickleValue unpickle(const std::uint8_t* data, std::size_t size, const UnpickleOptions& options) {
    if (!data && size > 0) throw Error(options.source + ": no data");
    static const std::uint8_t kEmpty = 0;
    Unpickler unpickler(data ? data : &kEmpty, data ? size : 0, options);
    return unpickler.run();
}

PickleValue unpickleFile(const std::string& path, UnpickleOptions options) {
    options.source = path;
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open: " + std::strerror(errno));
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    if (size < 0) throw Error(path + ": cannot read");
    in.seekg(0);
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
    if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
        throw Error(path + ": cannot read " + std::to_string(size) + " bytes");
    return unpickle(bytes.data(), bytes.size(), options);
}

}  // namespace sdrpn::io
