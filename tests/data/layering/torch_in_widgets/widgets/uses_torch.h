// Deliberate violation for the layering check test.
#include <torch/torch.h>
