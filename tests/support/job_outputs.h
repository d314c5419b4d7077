// Comparing what two runs of a job wrote: label stores sample by sample, trained weights to float
// rounding. For tests that interrupt, kill or split a job and check that the rerun ends where an
// uninterrupted run does.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <torch/torch.h>

namespace sdrpn::test {

// Every tensor of a .safetensors file, copied out of the mapping.
std::map<std::string, torch::Tensor> readWeights(const std::string& file);

// The same training to float rounding. Sums in another order differ in the last bits, and AdamW's first
// steps move each weight by about lr · g / (|g| + eps): an element whose gradient is near zero can move by
// up to ~lr / 50 from such bits. So: at most 0.1% of the elements beyond 1e-6, none beyond 1e-4.
void expectSameWeights(const std::string& a, const std::string& b);

// Merging store `b` into a copy of `a` (written to `copy`): every one of `samples` a duplicate (same
// answer, same maps), none added, no conflict.
void expectSameStore(const std::string& a, const std::string& b, std::int64_t samples,
                     const std::string& copy);

}  // namespace sdrpn::test
