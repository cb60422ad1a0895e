#include "cicu.h"
#include <unicode/ucnv.h>
#include <unicode/ucsdet.h>
#include <unicode/uversion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cicu_version(void) {
    static char buffer[U_MAX_VERSION_STRING_LENGTH];
    UVersionInfo info;
    u_getVersion(info);
    u_versionToString(info, buffer);
    return buffer;
}

int32_t cicu_detect(const uint8_t *bytes, int64_t length, char *name, int32_t name_capacity) {
    UErrorCode status = U_ZERO_ERROR;
    UCharsetDetector *detector = ucsdet_open(&status);
    if (U_FAILURE(status)) return -1;
    int32_t n = length > (1 << 16) ? (1 << 16) : (int32_t)length;  /* the first 64 KiB is plenty */
    ucsdet_setText(detector, (const char *)bytes, n, &status);
    const UCharsetMatch *match = U_SUCCESS(status) ? ucsdet_detect(detector, &status) : NULL;
    int32_t confidence = -1;
    if (U_SUCCESS(status) && match != NULL) {
        const char *detected = ucsdet_getName(match, &status);
        int32_t c = ucsdet_getConfidence(match, &status);
        if (U_SUCCESS(status) && detected != NULL) {
            snprintf(name, (size_t)name_capacity, "%s", detected);
            confidence = c;
        }
    }
    ucsdet_close(detector);
    return confidence;
}

int32_t cicu_canonical_name(const char *charset, char *out, int32_t capacity) {
    UErrorCode status = U_ZERO_ERROR;
    UConverter *converter = ucnv_open(charset, &status);
    if (U_FAILURE(status) || converter == NULL) return 0;
    const char *name = ucnv_getName(converter, &status);
    int32_t ok = U_SUCCESS(status) && name != NULL;
    if (ok) snprintf(out, (size_t)capacity, "%s", name);
    ucnv_close(converter);
    return ok;
}

/* A growable buffer. */
typedef struct { void *data; int64_t count, capacity, element; } growable;

static int grow(growable *g, int64_t extra) {
    if (g->count + extra <= g->capacity) return 1;
    int64_t capacity = g->capacity ? g->capacity : 1024;
    while (capacity < g->count + extra) capacity *= 2;
    void *data = realloc(g->data, (size_t)(capacity * g->element));
    if (data == NULL) return 0;
    g->data = data;
    g->capacity = capacity;
    return 1;
}

static int add_checkpoint(growable *g, int64_t utf8, int64_t orig) {
    if (g->count > 0) {
        cicu_checkpoint *last = (cicu_checkpoint *)g->data + g->count - 1;
        if (last->utf8 == utf8) { last->orig = orig; return 1; }
    }
    if (!grow(g, 1)) return 0;
    ((cicu_checkpoint *)g->data)[g->count++] = (cicu_checkpoint){utf8, orig};
    return 1;
}

/* Appends code point `c` as UTF-8; the caller made room for 4 bytes. */
static inline int64_t put_utf8(uint8_t *p, uint32_t c) {
    if (c < 0x80) { p[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { p[0] = (uint8_t)(0xC0 | (c >> 6)); p[1] = (uint8_t)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        p[0] = (uint8_t)(0xE0 | (c >> 12)); p[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        p[2] = (uint8_t)(0x80 | (c & 0x3F)); return 3;
    }
    p[0] = (uint8_t)(0xF0 | (c >> 18)); p[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    p[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F)); p[3] = (uint8_t)(0x80 | (c & 0x3F)); return 4;
}

#define UNITS 65536

/* The end of the piece starting at `start`: just after the last line feed within `max_chunk`
   bytes, else just after the first one beyond, else the end. */
static const char *next_piece_end(const char *start, const char *end, int64_t max_chunk) {
    if (end - start <= max_chunk) return end;
    for (const char *p = start + max_chunk; p > start; p--) {
        if (p[-1] == '\n') return p;
    }
    const char *lf = memchr(start + max_chunk, '\n', (size_t)(end - start - max_chunk));
    return lf ? lf + 1 : end;
}

int32_t cicu_decode(const char *charset, const uint8_t *bytes, int64_t length, int64_t checkpoint_every,
                    int64_t max_chunk, int32_t split_at_lf, cicu_decoded *out) {
    memset(out, 0, sizeof *out);
    UErrorCode status = U_ZERO_ERROR;
    UConverter *converter = ucnv_open(charset, &status);
    if (U_FAILURE(status)) {
        snprintf(out->error, sizeof out->error, "ICU has no converter for %s (%s)", charset, u_errorName(status));
        return -1;
    }
    ucnv_setToUCallBack(converter, UCNV_TO_U_CALLBACK_STOP, NULL, NULL, NULL, &status);
    growable text = {0, 0, 0, 1}, checkpoints = {0, 0, 0, sizeof(cicu_checkpoint)}, invalid = {0, 0, 0, sizeof(cicu_invalid)};
    UChar *units = malloc(UNITS * sizeof(UChar));
    int32_t *offsets = malloc(UNITS * sizeof(int32_t));
    int failed = units == NULL || offsets == NULL || !grow(&text, length + length / 2 + 16) || !add_checkpoint(&checkpoints, 0, 0);
    const char *source = (const char *)bytes, *end = (const char *)bytes + length;
    int64_t next_checkpoint = checkpoint_every;
    int pending_line = 0;
    uint32_t pending_high = 0;
    int64_t pending_orig = -1;
    /* ICU takes at most 2^31 - 1 source bytes a call (it refuses more with
       U_ILLEGAL_ARGUMENT_ERROR). With `split_at_lf` (encodings where the byte 0x0A is always a
       line feed, never part of another character: GB18030, Big5, Shift_JIS, EUC, single-byte
       ones), the input is decoded in pieces of about `max_chunk` bytes that end just after a
       line feed, each with a fresh converter state, exactly as if each were a file of its own. */
    const char *piece_end = end;
    if (split_at_lf) {
        piece_end = next_piece_end(source, end, max_chunk);
    } else if (length > INT32_MAX) {
        snprintf(out->error, sizeof out->error,
                 "the file is %lld bytes; ICU decodes at most 2 GiB of %s at once: convert it to UTF-8 (iconv) or split it",
                 (long long)length, charset);
        failed = 1;
    }
    if (!failed && piece_end - source > INT32_MAX) {
        snprintf(out->error, sizeof out->error, "a line longer than 2 GiB at byte %lld; split the file", (long long)(source - (const char *)bytes));
        failed = 1;
    }
    while (!failed) {
        const char *chunk_start = source;
        UChar *target = units;
        status = U_ZERO_ERROR;
        ucnv_toUnicode(converter, &target, units + UNITS, &source, piece_end, offsets, 1, &status);
        int32_t produced = (int32_t)(target - units);
        if (!grow(&text, (int64_t)produced * 3 + 8)) { failed = 1; break; }
        uint8_t *p = (uint8_t *)text.data;
        int64_t base = chunk_start - (const char *)bytes;
        for (int32_t i = 0; i < produced; i++) {
            uint32_t c = units[i];
            int64_t char_orig = offsets[i] >= 0 ? base + offsets[i] : -1;
            if (pending_high) {  /* a surrogate pair split across two chunks */
                if (c >= 0xDC00 && c <= 0xDFFF) {
                    c = 0x10000 + ((pending_high - 0xD800) << 10) + (c - 0xDC00);
                    char_orig = pending_orig;
                } else {
                    text.count += put_utf8(p + text.count, 0xFFFD);
                }
                pending_high = 0;
            } else if (c >= 0xD800 && c <= 0xDBFF) {
                if (i + 1 == produced) {
                    pending_high = c;
                    pending_orig = char_orig;
                    continue;
                }
                if (units[i + 1] >= 0xDC00 && units[i + 1] <= 0xDFFF) {
                    c = 0x10000 + ((c - 0xD800) << 10) + (units[i + 1] - 0xDC00);
                    i++;
                }
            }
            /* Checkpoints sit at character starts: after every line feed (so every line start
               maps back exactly) and at least every `checkpoint_every` output bytes. */
            if ((pending_line || text.count >= next_checkpoint) && char_orig >= 0) {
                if (!add_checkpoint(&checkpoints, text.count, char_orig)) { failed = 1; break; }
                next_checkpoint = text.count + checkpoint_every;
                pending_line = 0;
            }
            text.count += put_utf8(p + text.count, c);
            if (c == 0x0A) pending_line = 1;
        }
        if (failed) break;
        if (status == U_BUFFER_OVERFLOW_ERROR) continue;
        if (status == U_ILLEGAL_CHAR_FOUND || status == U_INVALID_CHAR_FOUND || status == U_TRUNCATED_CHAR_FOUND) {
            char bad[32];
            int8_t bad_length = sizeof bad;
            UErrorCode s2 = U_ZERO_ERROR;
            ucnv_getInvalidChars(converter, bad, &bad_length, &s2);
            if (U_FAILURE(s2)) bad_length = 1;
            int64_t orig = (source - (const char *)bytes) - bad_length;
            if (!grow(&invalid, 1) || !grow(&text, 3)) { failed = 1; break; }
            cicu_invalid *entry = (cicu_invalid *)invalid.data + invalid.count++;
            memset(entry, 0, sizeof *entry);
            entry->utf8 = text.count;
            entry->orig = orig;
            entry->length = bad_length;
            memcpy(entry->bytes, bad, (size_t)(bad_length < 8 ? bad_length : 8));
            if (!add_checkpoint(&checkpoints, text.count, orig)) { failed = 1; break; }
            p = (uint8_t *)text.data;
            p[text.count++] = 0xEF; p[text.count++] = 0xBF; p[text.count++] = 0xBD;
            if (!add_checkpoint(&checkpoints, text.count, source - (const char *)bytes)) { failed = 1; break; }
            ucnv_resetToUnicode(converter);
            continue;
        }
        if (U_FAILURE(status)) {
            snprintf(out->error, sizeof out->error, "ICU conversion from %s failed at byte %lld (%s)", charset,
                     (long long)(source - (const char *)bytes), u_errorName(status));
            failed = 1;
            break;
        }
        if (source >= end) break;
        if (source >= piece_end) {
            ucnv_resetToUnicode(converter);
            piece_end = next_piece_end(source, end, max_chunk);
            if (piece_end - source > INT32_MAX) {
                snprintf(out->error, sizeof out->error, "a line longer than 2 GiB at byte %lld; split the file", (long long)(source - (const char *)bytes));
                failed = 1;
            }
        }
    }
    free(units);
    free(offsets);
    ucnv_close(converter);
    if (failed) {
        if (out->error[0] == 0) snprintf(out->error, sizeof out->error, "out of memory while decoding %s", charset);
        free(text.data); free(checkpoints.data); free(invalid.data);
        return -1;
    }
    add_checkpoint(&checkpoints, text.count, length);
    out->utf8 = text.data;
    out->utf8_length = text.count;
    out->checkpoints = checkpoints.data;
    out->checkpoint_count = checkpoints.count;
    out->invalid = invalid.data;
    out->invalid_count = invalid.count;
    return 0;
}

void cicu_decoded_free(cicu_decoded *decoded) {
    free(decoded->utf8);
    free(decoded->checkpoints);
    free(decoded->invalid);
    memset(decoded, 0, sizeof *decoded);
}

void cicu_decoded_shrink_utf8(cicu_decoded *decoded, int64_t keep) {
    if (keep <= 0) {
        free(decoded->utf8);
        decoded->utf8 = NULL;
        return;
    }
    uint8_t *p = realloc(decoded->utf8, (size_t)keep);
    if (p != NULL) decoded->utf8 = p;
}

int64_t cicu_refine(const char *charset, const uint8_t *bytes, int64_t length, int64_t orig, int64_t utf8,
                    int64_t utf8_target) {
    UErrorCode status = U_ZERO_ERROR;
    UConverter *converter = ucnv_open(charset, &status);
    if (U_FAILURE(status)) return -1;
    ucnv_setToUCallBack(converter, UCNV_TO_U_CALLBACK_STOP, NULL, NULL, NULL, &status);
    const char *source = (const char *)bytes + orig, *end = (const char *)bytes + length;
    while (utf8 < utf8_target && source < end) {
        status = U_ZERO_ERROR;
        UChar32 c = ucnv_getNextUChar(converter, &source, end, &status);
        if (U_FAILURE(status)) { ucnv_close(converter); return -1; }
        utf8 += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    }
    ucnv_close(converter);
    return source - (const char *)bytes;
}
