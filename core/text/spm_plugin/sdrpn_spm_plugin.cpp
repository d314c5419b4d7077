// sdrpn_spm: the SentencePiece plugin (see sdrpn_spm_api.h for why it exists). Links only sentencepiece;
// no exception leaves a C entry point.
#define SDRPN_SPM_BUILDING_PLUGIN 1
#include "core/text/spm_plugin/sdrpn_spm_api.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

struct sdrpn_spm {
    sentencepiece::SentencePieceProcessor processor;
};

namespace {

thread_local std::string t_lastError;

void setError(std::string message) {
    t_lastError = std::move(message);
}

template <class F, class R>
R guard(R failure, F&& f) {
    try {
        t_lastError.clear();
        return f();
    } catch (const std::exception& e) {
        setError(e.what());
    } catch (...) {
        setError("unknown error in the sentencepiece plugin");
    }
    return failure;
}

bool validId(const sdrpn_spm* spm, int32_t id) {
    return spm && id >= 0 && id < spm->processor.GetPieceSize();
}

int64_t copyOut(const std::string& s, char* out, size_t capacity) {
    if (out && s.size() <= capacity) std::memcpy(out, s.data(), s.size());
    return static_cast<int64_t>(s.size());
}

}  // namespace

extern "C" {

int sdrpn_spm_abi_version(void) {
    return SDRPN_SPM_ABI_VERSION;
}

const char* sdrpn_spm_last_error(void) {
    return t_lastError.c_str();
}

sdrpn_spm* sdrpn_spm_load(const char* path) {
    return guard<>(static_cast<sdrpn_spm*>(nullptr), [&]() -> sdrpn_spm* {
        if (!path) {
            setError("no path given");
            return nullptr;
        }
        auto spm = std::make_unique<sdrpn_spm>();
        const auto status = spm->processor.Load(path);
        if (!status.ok()) {
            setError(status.ToString());
            return nullptr;
        }
        return spm.release();
    });
}

sdrpn_spm* sdrpn_spm_load_bytes(const char* data, size_t size) {
    return guard<>(static_cast<sdrpn_spm*>(nullptr), [&]() -> sdrpn_spm* {
        auto spm = std::make_unique<sdrpn_spm>();
        const auto status = spm->processor.LoadFromSerializedProto(absl::string_view(data, size));
        if (!status.ok()) {
            setError(status.ToString());
            return nullptr;
        }
        return spm.release();
    });
}

void sdrpn_spm_free(sdrpn_spm* spm) {
    delete spm;
}

int64_t sdrpn_spm_encode(const sdrpn_spm* spm, const char* text, size_t size, int32_t* ids, size_t capacity) {
    return guard<>(int64_t(-1), [&]() -> int64_t {
        std::vector<int> out;
        const auto status = spm->processor.Encode(absl::string_view(text, size), &out);
        if (!status.ok()) {
            setError(status.ToString());
            return -1;
        }
        if (ids && out.size() <= capacity) {
            for (size_t i = 0; i < out.size(); ++i) ids[i] = out[i];
        }
        return static_cast<int64_t>(out.size());
    });
}

int64_t sdrpn_spm_decode(const sdrpn_spm* spm, const int32_t* ids, size_t count, char* text,
                         size_t capacity) {
    return guard<>(int64_t(-1), [&]() -> int64_t {
        std::vector<int> in(ids, ids + count);
        for (int id : in) {
            if (!validId(spm, id)) {
                setError("token id " + std::to_string(id) + " is outside the vocabulary of " +
                         std::to_string(spm->processor.GetPieceSize()));
                return -1;
            }
        }
        std::string out;
        const auto status = spm->processor.Decode(in, &out);
        if (!status.ok()) {
            setError(status.ToString());
            return -1;
        }
        return copyOut(out, text, capacity);
    });
}

int64_t sdrpn_spm_id_to_piece(const sdrpn_spm* spm, int32_t id, char* piece, size_t capacity) {
    return guard<>(int64_t(-1), [&]() -> int64_t {
        if (!validId(spm, id)) {
            setError("token id " + std::to_string(id) + " is outside the vocabulary");
            return -1;
        }
        return copyOut(spm->processor.IdToPiece(id), piece, capacity);
    });
}

int32_t sdrpn_spm_piece_to_id(const sdrpn_spm* spm, const char* piece, size_t size) {
    return guard<>(int32_t(-1),
                   [&]() -> int32_t { return spm->processor.PieceToId(absl::string_view(piece, size)); });
}

int32_t sdrpn_spm_vocab_size(const sdrpn_spm* spm) {
    return spm->processor.GetPieceSize();
}
int32_t sdrpn_spm_bos_id(const sdrpn_spm* spm) {
    return spm->processor.bos_id();
}
int32_t sdrpn_spm_eos_id(const sdrpn_spm* spm) {
    return spm->processor.eos_id();
}
int32_t sdrpn_spm_unk_id(const sdrpn_spm* spm) {
    return spm->processor.unk_id();
}
int32_t sdrpn_spm_pad_id(const sdrpn_spm* spm) {
    return spm->processor.pad_id();
}

int32_t sdrpn_spm_piece_kind(const sdrpn_spm* spm, int32_t id) {
    if (!validId(spm, id)) return -1;
    const auto& p = spm->processor;
    int32_t kind = SDRPN_SPM_NORMAL;
    if (p.IsUnknown(id)) kind |= SDRPN_SPM_UNKNOWN;
    if (p.IsControl(id)) kind |= SDRPN_SPM_CONTROL;
    if (p.IsByte(id)) kind |= SDRPN_SPM_BYTE;
    if (p.IsUnused(id)) kind |= SDRPN_SPM_UNUSED;
    return kind;
}

int sdrpn_spm_train(const char* const* keys, const char* const* values, size_t count) {
    return guard<>(-1, [&]() -> int {
        std::unordered_map<std::string, std::string> kwargs;
        for (size_t i = 0; i < count; ++i) kwargs[keys[i]] = values[i];
        const auto status = sentencepiece::SentencePieceTrainer::Train(kwargs);
        if (!status.ok()) {
            setError(status.ToString());
            return -1;
        }
        return 0;
    });
}

}  // extern "C"
