// Whether a model folder is an SD-RPN checkpoint: its config.json names a twig (`twig_K`), as the released
// "-filled" checkpoints do (the whole model plus model.twig_layers.*). Such a folder is both the model and
// its RPN: the CLI and the studio load the RPN from the same folder. Plain data, no LibTorch.
//
//   if (sdrpn::pipeline::isSdrpnCheckpoint(folder)) rpn = sdrpn::loadRpn(folder, *backbone);
//
// Errors: none; a missing, unreadable or malformed config.json is simply not a checkpoint.
#pragma once

#include <string>

namespace sdrpn::pipeline {

// True when `folder`/config.json is a JSON object with a `twig_K` key.
bool isSdrpnCheckpoint(const std::string& folder);

}  // namespace sdrpn::pipeline
