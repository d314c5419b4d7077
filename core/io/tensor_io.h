// The bridge between safetensors (core/io/safetensors.h) and LibTorch: the only torch-facing part of io.
//
//   auto archive = SafetensorsArchive::open("/models/llava-1.5-7b-hf");
//   torch::Tensor w = loadTensor(*archive, "language_model.model.norm.weight");   // owned, CPU, stored dtype
//   saveTensors("/tmp/rpn.safetensors", {{"rpn.conv.weight", conv->weight}}, {{"format", "pt"}});
//
// Tensors returned here own their memory (copied out of the mapping), so they outlive the archive and are
// correctly aligned whatever the file's layout. Errors throw sdrpn::Error naming the tensor and the file.
// Thread safety: all functions may be called from any thread; the archive is read-only.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "core/io/safetensors.h"

namespace sdrpn::io {

// DType <-> torch::ScalarType. fromTorchDType throws sdrpn::Error for types safetensors (as supported
// here) cannot hold, e.g. complex or quantized types.
torch::ScalarType toTorchDType(DType dtype);
DType fromTorchDType(torch::ScalarType type);

// An owned, contiguous CPU tensor of the stored dtype and shape (memcpy out of the mapping).
torch::Tensor toTensor(const RawTensor& raw);

// archive.raw(name) as a tensor; throws naming the tensor and the archive when it is absent.
torch::Tensor loadTensor(const SafetensorsArchive& archive, const std::string& name);

// Every tensor of the archive whose name starts with `prefix` (all when empty), by name.
std::map<std::string, torch::Tensor> loadTensors(const SafetensorsArchive& archive,
                                                 const std::string& prefix = "");

// Writes tensors (any device, any layout; copied to CPU, contiguous) atomically as .safetensors.
// Throws sdrpn::Error naming the path (write failure) or the tensor (undefined, unsupported dtype).
void saveTensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                 const std::map<std::string, std::string>& metadata = {});

}  // namespace sdrpn::io
