#ifndef CORPUS_CICU_H
#define CORPUS_CICU_H
// Our own declarations only: system ICU headers are included by the .c files, never by Swift
// (Foundation on Linux bundles its own ICU and the two clash; see DESIGN.md, Pitfalls).
#include <stdint.h>

/// ICU's version string, e.g. "72.1".
const char *cicu_version(void);

/// Detects the charset of `bytes` with ICU's ucsdet. Writes the name (NUL-terminated) into
/// `name` and returns the confidence 0..100, or -1 when ICU has no answer.
int32_t cicu_detect(const uint8_t *bytes, int64_t length, char *name, int32_t name_capacity);

/// Writes ICU's canonical name of `charset` into `out`; returns 1 when ICU knows the charset, 0 if not.
int32_t cicu_canonical_name(const char *charset, char *out, int32_t capacity);

/// A point where the decoded text and the original bytes are known to line up.
typedef struct {
    int64_t utf8;  // offset in the decoded UTF-8
    int64_t orig;  // offset in the original bytes
} cicu_checkpoint;

/// A byte sequence that is invalid in the charset; U+FFFD stands in its place in the output.
typedef struct {
    int64_t utf8;      // offset of the replacement in the decoded UTF-8
    int64_t orig;      // offset of the sequence in the original bytes
    int32_t length;    // bytes in the sequence (at most 8 are copied)
    uint8_t bytes[8];
} cicu_invalid;

/// The result of `cicu_decode`; free with `cicu_decoded_free`.
typedef struct {
    uint8_t *utf8;
    int64_t utf8_length;
    cicu_checkpoint *checkpoints;   // sorted; one after every line feed, every invalid sequence,
    int64_t checkpoint_count;       // and at least every `checkpoint_every` output bytes
    cicu_invalid *invalid;
    int64_t invalid_count;
    char error[256];
} cicu_decoded;

/// Decodes `length` bytes in `charset` to UTF-8, replacing each invalid or truncated sequence with
/// U+FFFD and recording it. Returns 0 on success, -1 on failure (message in `out->error`).
int32_t cicu_decode(const char *charset, const uint8_t *bytes, int64_t length, int64_t checkpoint_every,
                    int64_t max_chunk, int32_t split_at_lf, cicu_decoded *out);

/// Frees what `cicu_decode` allocated.
void cicu_decoded_free(cicu_decoded *decoded);

/// Keeps only the first `keep` bytes of the decoded text (`utf8` may move; 0 frees it), so that
/// the text can be copied out from its end without holding two whole copies at once.
/// `utf8_length` is left as it was.
void cicu_decoded_shrink_utf8(cicu_decoded *decoded, int64_t keep);

/// Walks the original bytes from a checkpoint (`orig`, `utf8`) one character at a time until the
/// decoded position reaches `utf8_target`; returns the original offset there, or -1 on error.
int64_t cicu_refine(const char *charset, const uint8_t *bytes, int64_t length, int64_t orig, int64_t utf8,
                    int64_t utf8_target);

#endif
