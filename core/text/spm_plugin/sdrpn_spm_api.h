// The C interface of the sdrpn_spm plugin: SentencePiece behind plain C calls.
//
// Why a plugin: Debian's libsentencepiece carries (and exports) its own copy of protobuf-lite 3.14, while
// LibTorch pulls in the system libprotobuf 3.21. Linked into one executable the two copies interpose each
// other and the process dies before main(). The plugin links only sentencepiece and is dlopen()ed with
// RTLD_LOCAL | RTLD_DEEPBIND, so sentencepiece binds to its own copy and nothing else sees it
// (core/text/spm_library.h loads it).
//
// Conventions: every call that can fail returns a negative value (or NULL) and leaves a message for
// sdrpn_spm_last_error() (per thread). Output buffers are caller-owned: calls return the length they need;
// when that exceeds `capacity` nothing useful was written and the caller retries with a larger buffer.
// A handle may be used from several threads at once for the const calls (encode, decode, lookups).
#ifndef SDRPN_SPM_API_H
#define SDRPN_SPM_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SDRPN_SPM_ABI_VERSION 1

#if defined(SDRPN_SPM_BUILDING_PLUGIN)
#define SDRPN_SPM_EXPORT __attribute__((visibility("default")))
#else
#define SDRPN_SPM_EXPORT
#endif

typedef struct sdrpn_spm sdrpn_spm;

// SDRPN_SPM_ABI_VERSION of the plugin; the loader refuses a mismatch.
SDRPN_SPM_EXPORT int sdrpn_spm_abi_version(void);
// Message of the last failed call on this thread ("" when none). Valid until the next call.
SDRPN_SPM_EXPORT const char* sdrpn_spm_last_error(void);

// Loads a `tokenizer.model` file, or a serialized ModelProto held in memory. NULL on failure.
SDRPN_SPM_EXPORT sdrpn_spm* sdrpn_spm_load(const char* path);
SDRPN_SPM_EXPORT sdrpn_spm* sdrpn_spm_load_bytes(const char* data, size_t size);
SDRPN_SPM_EXPORT void sdrpn_spm_free(sdrpn_spm* spm);

// Ids of `text` (UTF-8, `size` bytes), no BOS/EOS. Returns the number of ids, or -1.
SDRPN_SPM_EXPORT int64_t sdrpn_spm_encode(const sdrpn_spm* spm, const char* text, size_t size, int32_t* ids,
                                          size_t capacity);
// UTF-8 text of `ids` (control tokens vanish, byte pieces join). Returns the byte length, or -1.
SDRPN_SPM_EXPORT int64_t sdrpn_spm_decode(const sdrpn_spm* spm, const int32_t* ids, size_t count, char* text,
                                          size_t capacity);
// The piece of `id` ("▁the", "<0x0A>", "<s>"). Returns its byte length, or -1 when `id` is out of range.
SDRPN_SPM_EXPORT int64_t sdrpn_spm_id_to_piece(const sdrpn_spm* spm, int32_t id, char* piece,
                                               size_t capacity);
// Id of a piece, or the unk id when the vocabulary has no such piece.
SDRPN_SPM_EXPORT int32_t sdrpn_spm_piece_to_id(const sdrpn_spm* spm, const char* piece, size_t size);

SDRPN_SPM_EXPORT int32_t sdrpn_spm_vocab_size(const sdrpn_spm* spm);
SDRPN_SPM_EXPORT int32_t sdrpn_spm_bos_id(const sdrpn_spm* spm);  // -1 when the model has none
SDRPN_SPM_EXPORT int32_t sdrpn_spm_eos_id(const sdrpn_spm* spm);
SDRPN_SPM_EXPORT int32_t sdrpn_spm_unk_id(const sdrpn_spm* spm);
SDRPN_SPM_EXPORT int32_t sdrpn_spm_pad_id(const sdrpn_spm* spm);

// Piece kinds, as bit flags.
#define SDRPN_SPM_NORMAL 0
#define SDRPN_SPM_UNKNOWN 1
#define SDRPN_SPM_CONTROL 2
#define SDRPN_SPM_BYTE 4
#define SDRPN_SPM_UNUSED 8
// Flags of `id`, or -1 when out of range.
SDRPN_SPM_EXPORT int32_t sdrpn_spm_piece_kind(const sdrpn_spm* spm, int32_t id);

// Trains a model. `keys`/`values` are SentencePiece trainer flags without dashes ("input", "model_prefix",
// "vocab_size", "model_type", ...). Writes <model_prefix>.model and .vocab. Returns 0, or -1.
SDRPN_SPM_EXPORT int sdrpn_spm_train(const char* const* keys, const char* const* values, size_t count);

#ifdef __cplusplus
}
#endif

#endif  // SDRPN_SPM_API_H
