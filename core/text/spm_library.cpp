#include "core/text/spm_library.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>

#include "core/result.h"

namespace sdrpn::text::detail {
namespace {

constexpr const char* kPluginFile = "libsdrpn_spm.so";

std::string executableDir() {
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return {};
    return exe.parent_path().string();
}

template <class F>
void bind(void* handle, const char* name, F& slot, std::string& missing) {
    slot = reinterpret_cast<F>(dlsym(handle, name));
    if (!slot) missing += std::string(missing.empty() ? "" : ", ") + name;
}

// Whether a sanitizer runtime (ASan, TSan) runs this process: they refuse RTLD_DEEPBIND.
bool underSanitizer() {
    return dlsym(RTLD_DEFAULT, "__asan_init") != nullptr || dlsym(RTLD_DEFAULT, "__tsan_init") != nullptr;
}

// Opens one candidate; on failure returns null and says why in `why`.
std::unique_ptr<SpmApi> open(const std::string& path, std::string& why) {
    // The plugin's references must bind to its own sentencepiece (and that library's protobuf copy), not
    // to LibTorch's protobuf. RTLD_DEEPBIND does that; under a sanitizer, which refuses it, the plugin gets
    // a link namespace of its own (dlmopen): its C interface passes only plain values and caller buffers.
    const bool isolated = underSanitizer();
    void* handle = isolated ? dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL)
                            : dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    const int flags = isolated ? 0 : RTLD_DEEPBIND;
    if (!handle) {
        const char* err = dlerror();
        why = err ? err : "dlopen failed";
        return nullptr;
    }
    using VersionFn = int (*)();
    auto version = reinterpret_cast<VersionFn>(dlsym(handle, "sdrpn_spm_abi_version"));
    if (!version || version() != SDRPN_SPM_ABI_VERSION) {
        why = version ? "plugin ABI version " + std::to_string(version()) + ", expected " +
                            std::to_string(SDRPN_SPM_ABI_VERSION)
                      : "not an sdrpn_spm plugin (no sdrpn_spm_abi_version)";
        dlclose(handle);
        return nullptr;
    }
    auto api = std::make_unique<SpmApi>();
    api->path = path;
    api->deepBind = (flags & RTLD_DEEPBIND) != 0;
    std::string missing;
    bind(handle, "sdrpn_spm_last_error", api->lastError, missing);
    bind(handle, "sdrpn_spm_load", api->load, missing);
    bind(handle, "sdrpn_spm_load_bytes", api->loadBytes, missing);
    bind(handle, "sdrpn_spm_free", api->free, missing);
    bind(handle, "sdrpn_spm_encode", api->encode, missing);
    bind(handle, "sdrpn_spm_decode", api->decode, missing);
    bind(handle, "sdrpn_spm_id_to_piece", api->idToPiece, missing);
    bind(handle, "sdrpn_spm_piece_to_id", api->pieceToId, missing);
    bind(handle, "sdrpn_spm_vocab_size", api->vocabSize, missing);
    bind(handle, "sdrpn_spm_bos_id", api->bosId, missing);
    bind(handle, "sdrpn_spm_eos_id", api->eosId, missing);
    bind(handle, "sdrpn_spm_unk_id", api->unkId, missing);
    bind(handle, "sdrpn_spm_pad_id", api->padId, missing);
    bind(handle, "sdrpn_spm_piece_kind", api->pieceKind, missing);
    bind(handle, "sdrpn_spm_train", api->train, missing);
    if (!missing.empty()) {
        why = "missing symbols: " + missing;
        dlclose(handle);
        return nullptr;
    }
    // The handle is never closed: tokenizers may live until exit.
    return api;
}

}  // namespace

std::vector<std::string> spmPluginCandidates() {
    if (const char* env = std::getenv("SDRPN_SPM_PLUGIN"); env && *env) return {env};
    std::vector<std::string> out;
#ifdef SDRPN_SPM_PLUGIN_BUILD_PATH
    out.emplace_back(SDRPN_SPM_PLUGIN_BUILD_PATH);
#endif
    const std::string dir = executableDir();
    if (!dir.empty()) {
        out.push_back((std::filesystem::path(dir) / ".." / "lib" / "sdrpn" / kPluginFile).lexically_normal());
        out.push_back((std::filesystem::path(dir) / kPluginFile).string());
    }
    return out;
}

const SpmApi& spmApi() {
    static std::mutex mutex;
    static std::unique_ptr<SpmApi> loaded;
    std::lock_guard<std::mutex> lock(mutex);
    if (loaded) return *loaded;

    std::string report;
    for (const auto& path : spmPluginCandidates()) {
        std::string why;
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) {
            why = "no such file";
        } else if (auto api = open(path, why)) {
            loaded = std::move(api);
            return *loaded;
        }
        report += "\n  " + path + ": " + why;
    }
    throw Error("cannot load the SentencePiece plugin " + std::string(kPluginFile) + "; tried:" + report +
                "\nSet SDRPN_SPM_PLUGIN to the plugin's path (it is built with the sdrpn_spm target and "
                "installed to lib/sdrpn/).");
}

}  // namespace sdrpn::text::detail
