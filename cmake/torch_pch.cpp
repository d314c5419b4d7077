// Carrier for the shared precompiled <torch/torch.h> (see TorchPch.cmake).
