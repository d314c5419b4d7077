// Allowed: core may use LibTorch.
#include <torch/torch.h>
