#include "core/io/tensor_io.h"

#include <cstring>

#include "core/result.h"

namespace sdrpn::io {

namespace {
bool hostIsLittleEndian() {
    const std::uint16_t probe = 1;
    std::uint8_t first = 0;
    std::memcpy(&first, &probe, 1);
    return first == 1;
}
}  // namespace

torch::ScalarType toTorchDType(DType dtype) {
    switch (dtype) {
        case DType::F64:
            return torch::kFloat64;
        case DType::F32:
            return torch::kFloat32;
        case DType::F16:
            return torch::kFloat16;
        case DType::BF16:
            return torch::kBFloat16;
        case DType::I64:
            return torch::kInt64;
        case DType::I32:
            return torch::kInt32;
        case DType::I16:
            return torch::kInt16;
        case DType::I8:
            return torch::kInt8;
        case DType::U8:
            return torch::kUInt8;
        case DType::BOOL:
            return torch::kBool;
    }
    throw Error("unknown safetensors dtype");
}

DType fromTorchDType(torch::ScalarType type) {
    switch (type) {
        case torch::kFloat64:
            return DType::F64;
        case torch::kFloat32:
            return DType::F32;
        case torch::kFloat16:
            return DType::F16;
        case torch::kBFloat16:
            return DType::BF16;
        case torch::kInt64:
            return DType::I64;
        case torch::kInt32:
            return DType::I32;
        case torch::kInt16:
            return DType::I16;
        case torch::kInt8:
            return DType::I8;
        case torch::kUInt8:
            return DType::U8;
        case torch::kBool:
            return DType::BOOL;
        default:
            break;
    }
    throw Error(std::string("torch dtype ") + c10::toString(type) + " cannot be stored in safetensors");
}

torch::Tensor toTensor(const RawTensor& raw) {
    if (!raw.info || (!raw.data && raw.info->nbytes() > 0))
        throw Error("toTensor: empty RawTensor" + (raw.info ? " for tensor '" + raw.info->name + "'" : ""));
    // safetensors data is little-endian (mllm_reference.md §1); the byte copy below assumes the same host.
    static const bool littleEndian = hostIsLittleEndian();
    if (!littleEndian) throw Error("safetensors loading needs a little-endian host");

    const TensorInfo& info = *raw.info;
    torch::Tensor out = torch::empty(info.shape, torch::TensorOptions().dtype(toTorchDType(info.dtype)));
    const std::size_t nbytes = info.nbytes();
    if (static_cast<std::size_t>(out.nbytes()) != nbytes)
        throw Error("tensor '" + info.name + "'" + (raw.file ? " in " + raw.file->path() : std::string()) +
                    ": byte size does not match its shape");
    if (nbytes == 0) return out;
    std::memcpy(out.data_ptr(), raw.data, nbytes);
    if (info.dtype == DType::BOOL) {
        // A byte other than 0/1 is not a valid bool for LibTorch; normalise instead of trusting the file.
        auto* p = static_cast<std::uint8_t*>(out.data_ptr());
        for (std::size_t i = 0; i < nbytes; ++i) p[i] = p[i] != 0;
    }
    return out;
}

torch::Tensor loadTensor(const SafetensorsArchive& archive, const std::string& name) {
    return toTensor(archive.raw(name));
}

std::map<std::string, torch::Tensor> loadTensors(const SafetensorsArchive& archive,
                                                 const std::string& prefix) {
    std::map<std::string, torch::Tensor> out;
    for (const std::string& name : archive.names())
        if (name.compare(0, prefix.size(), prefix) == 0) out.emplace(name, loadTensor(archive, name));
    return out;
}

void saveTensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                 const std::map<std::string, std::string>& metadata) {
    std::vector<torch::Tensor> keep;
    std::vector<TensorRecord> records;
    keep.reserve(tensors.size());
    records.reserve(tensors.size());
    for (const auto& [name, tensor] : tensors) {
        if (!tensor.defined()) throw Error("cannot write " + path + ": tensor '" + name + "' is undefined");
        DType dtype;
        try {
            dtype = fromTorchDType(tensor.scalar_type());
        } catch (const Error& e) {
            throw Error("cannot write " + path + ": tensor '" + name + "': " + e.what());
        }
        torch::Tensor cpu = tensor.detach().to(torch::kCPU).contiguous();
        TensorRecord record;
        record.name = name;
        record.dtype = dtype;
        record.shape.assign(cpu.sizes().begin(), cpu.sizes().end());
        record.data = cpu.numel() > 0 ? cpu.data_ptr() : nullptr;
        keep.push_back(std::move(cpu));
        records.push_back(std::move(record));
    }
    writeSafetensors(path, records, metadata);
}

}  // namespace sdrpn::io
