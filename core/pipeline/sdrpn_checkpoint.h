// Whether a model folder is an SD-RPN checkpoint: its config.json names a twig (`twig_K`), as the released
// "-filled" checkpoints do (the whole model plus model.twig_layers.*). Such a folder is both the model and
// its RPN: the CLI and the studio load the RPN from the same folder. An "unfilled" one (the trained
// checkpoints as released: layers [0, K+T), the twig and the vision weights, no final norm or lm_head)
// loads only with its base model (LoadOptions::base) or after `sdrpn merge-checkpoint`. Plain data, no
// LibTorch.
//
//   if (sdrpn::pipeline::isSdrpnCheckpoint(folder)) rpn = sdrpn::loadRpn(folder, *backbone);
//   if (sdrpn::pipeline::isUnfilledSdrpnCheckpoint(folder)) options.base = askForTheBaseModel();
//
// Errors: none; a missing, unreadable or malformed config.json is simply not a checkpoint.
#pragma once

#include <string>

#include "core/models/unfilled_checkpoint.h"

namespace sdrpn::pipeline {

// True when `folder`/config.json is a JSON object with a `twig_K` key.
bool isSdrpnCheckpoint(const std::string& folder);

// True for an SD-RPN checkpoint whose weights lack the final norm, lm_head (unless tied) or the last
// backbone layer (models::isUnfilledSdrpnCheckpoint; the loaders use the same test).
using models::isUnfilledSdrpnCheckpoint;

}  // namespace sdrpn::pipeline
