// Run-time loader of the sdrpn_spm SentencePiece plugin (core/text/spm_plugin/sdrpn_spm_api.h says why
// SentencePiece is not linked directly). Internal to core/text: use SentencePieceTokenizer instead.
//
// Where the plugin is looked for, first hit wins:
//   1. $SDRPN_SPM_PLUGIN, when set (then nothing else is tried);
//   2. the build tree's copy (compile definition SDRPN_SPM_PLUGIN_BUILD_PATH);
//   3. <dir of the executable>/../lib/sdrpn/libsdrpn_spm.so (the installed layout);
//   4. <dir of the executable>/libsdrpn_spm.so.
// It is opened with RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND (without DEEPBIND under AddressSanitizer, which
// does not support it) and stays loaded for the life of the process.
#pragma once

#include <string>
#include <vector>

#include "core/text/spm_plugin/sdrpn_spm_api.h"

namespace sdrpn::text::detail {

struct SpmApi {
    std::string path;      // the file that was loaded
    bool deepBind = true;  // false in AddressSanitizer builds: then LibTorch's protobuf may interfere
    decltype(&sdrpn_spm_last_error) lastError = nullptr;
    decltype(&sdrpn_spm_load) load = nullptr;
    decltype(&sdrpn_spm_load_bytes) loadBytes = nullptr;
    decltype(&sdrpn_spm_free) free = nullptr;
    decltype(&sdrpn_spm_encode) encode = nullptr;
    decltype(&sdrpn_spm_decode) decode = nullptr;
    decltype(&sdrpn_spm_id_to_piece) idToPiece = nullptr;
    decltype(&sdrpn_spm_piece_to_id) pieceToId = nullptr;
    decltype(&sdrpn_spm_vocab_size) vocabSize = nullptr;
    decltype(&sdrpn_spm_bos_id) bosId = nullptr;
    decltype(&sdrpn_spm_eos_id) eosId = nullptr;
    decltype(&sdrpn_spm_unk_id) unkId = nullptr;
    decltype(&sdrpn_spm_pad_id) padId = nullptr;
    decltype(&sdrpn_spm_piece_kind) pieceKind = nullptr;
    decltype(&sdrpn_spm_train) train = nullptr;
};

// The loaded plugin (loaded on first use; thread-safe). Throws sdrpn::Error naming every path tried and
// why each failed, and how to point SDRPN_SPM_PLUGIN at the file.
const SpmApi& spmApi();

// The candidate paths, in the order they are tried.
std::vector<std::string> spmPluginCandidates();

}  // namespace sdrpn::text::detail
