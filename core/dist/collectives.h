// Tensor collectives over a Group (group.h): what data-parallel training needs.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "core/dist/group.h"

namespace sdrpn::dist {

// Sums every parameter's gradient over the ranks, in place, packed into flat buckets of at most
// `bucketBytes` (one all-reduce per bucket instead of one per tensor). A parameter without a gradient
// takes part with zeros (a rank whose share of the batch was empty), so every rank ends with the same sum.
void allReduceGradients(Group& group, const std::vector<torch::Tensor>& parameters,
                        std::int64_t bucketBytes = 25 << 20);

// Copies rank `root`'s parameter values to every rank (in place, bucketed).
void broadcastParameters(Group& group, const std::vector<torch::Tensor>& parameters, int root = 0,
                         std::int64_t bucketBytes = 25 << 20);

}  // namespace sdrpn::dist
