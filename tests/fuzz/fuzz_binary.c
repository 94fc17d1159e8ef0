/* fuzz_binary.c - arbitrary bytes as a binary-protocol stream and as length-prefixed frames
 * (binary.h), walked with the functions the log port walks them with (bin_frame_next,
 * bin_length_frame), each answer checked against an independent reading of the bytes.
 *
 * Binary: header, length, payload, frame after frame; an untrusted header (bin_request_known
 * false) ends the stream as the server closes there, and a partial frame ends it as the server
 * waits there. Every LOG and LOG_MS payload goes through bin_log_parse, whose answer is checked
 * against an independent reading of the spec: the message lies inside the payload and ends
 * with it, msg_length agrees for LOG, the level is 0..5, and the time is INT64_MIN (receive
 * time) or the decoded value. Headers are re-encoded with bin_header_write and must give the
 * same bytes. The walk is repeated with the input arriving in two pieces, as the server sees
 * it when a read ends mid-frame, and must find the same frames.
 *
 * Length-prefixed: u32 length and payload, lengths over BIN_FRAME_MAX end the stream, a
 * partial frame ends it, zero lengths are skipped; every frame must lie inside the input.
 *
 * Each payload is copied into a heap buffer of exactly its length, so ASan catches a parser
 * reading one byte past it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/binary.h"
#include "proto/ingest_parse.h"

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FRAMES_MAX 4096 /* Frames remembered for the split-delivery comparison. */

/* What the spec says about a LOG or LOG_MS payload, computed without bin_log_parse. */
static void check_log(uint8_t cmd, const unsigned char *src, size_t len)
{
    unsigned char *p = malloc(len ? len : 1);
    if (len)
        memcpy(p, src, len);
    struct bin_log bl;
    memset(&bl, 0xA5, sizeof(bl));
    const char *why = bin_log_parse(cmd, p, len, &bl);

    bool ok;
    size_t head = cmd == BIN_LOG ? 7 : 9;
    int64_t want_ts = 0;
    if (cmd == BIN_LOG) {
        ok = len >= 7 && ((size_t)p[5] << 8 | p[6]) == len - 7 && p[0] <= 5;
        if (ok) {
            uint32_t ts = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
            want_ts = ts ? (int64_t)ts * 1000 : INT64_MIN;
        }
    } else if (cmd == BIN_LOG_MS) {
        uint64_t ts = 0;
        for (int i = 1; i <= 8 && (size_t)i < len; i++)
            ts = ts << 8 | p[i];
        ok = len >= 9 && ts <= 9999999999999ull /* year 2286, as the text forms */ && p[0] <= 5;
        want_ts = ts ? (int64_t)ts : INT64_MIN;
    } else {
        ok = false;
    }

    if (ok) {
        FUZZ_ASSERT(why == NULL);
        FUZZ_ASSERT(bl.level >= 0 && bl.level <= 5 && bl.level == p[0]);
        FUZZ_ASSERT((const unsigned char *)bl.msg == p + head);
        FUZZ_ASSERT(bl.msg_len == len - head);
        FUZZ_ASSERT((const unsigned char *)bl.msg + bl.msg_len == p + len);
        FUZZ_ASSERT(bl.ts_ms == want_ts);
        FUZZ_ASSERT(bl.ts_ms == INT64_MIN || bl.ts_ms >= 0);
    } else {
        FUZZ_ASSERT(why != NULL && why[0] != '\0');
    }
    free(p);
}

struct frame {
    size_t off; /* The header's offset in the input. */
    struct bin_header h;
};

/* Walk data[0..n) from *at as the server does, appending to fr; returns false once the stream
 * ends (an untrusted header). Stops at a partial frame with *at on its header. */
static bool walk_binary(const uint8_t *data, size_t n, size_t *at, struct frame *fr, size_t *nfr,
                        bool check)
{
    for (;;) {
        const unsigned char *s = data + *at;
        struct bin_header h;
        int got = bin_frame_next(s, n - *at, &h);
        if (n - *at < BIN_HEADER) {
            FUZZ_ASSERT(got == 0);
            return true;
        }
        FUZZ_ASSERT(h.version == s[0] && h.command == s[1]);
        FUZZ_ASSERT(h.length == (s[2] << 8 | s[3]));
        FUZZ_ASSERT(h.seq == bin_get32(s + 4));
        bool known = bin_request_known(&h);
        FUZZ_ASSERT(known == (h.version == 1 && h.command >= 1 && h.command <= 6));
        if (check) {
            unsigned char w[BIN_HEADER];
            bin_header_write(w, h.command, h.length, h.seq);
            FUZZ_ASSERT(w[0] == BIN_VERSION && memcmp(w + 1, s + 1, BIN_HEADER - 1) == 0);
        }
        FUZZ_ASSERT(got == (!known ? -1 : n - *at - BIN_HEADER < h.length ? 0 : 1));
        if (!known)
            return false; /* The server answers and closes. */
        if (got == 0)
            return true; /* Partial: the server waits for the rest. */
        if (*nfr < FRAMES_MAX)
            fr[*nfr] = (struct frame){*at, h};
        ++*nfr;
        if (check && (h.command == BIN_LOG || h.command == BIN_LOG_MS))
            check_log(h.command, s + BIN_HEADER, h.length);
        if (check && h.command == BIN_QUERY) /* Not a log payload: always refused. */
            check_log(h.command, s + BIN_HEADER, h.length);
        *at += BIN_HEADER + h.length;
        FUZZ_ASSERT(*at <= n);
    }
}

static void fuzz_binary_frames(const uint8_t *data, size_t size)
{
    static struct frame one[FRAMES_MAX], two[FRAMES_MAX];
    size_t at = 0, n1 = 0;
    walk_binary(data, size, &at, one, &n1, true);
    FUZZ_ASSERT(at <= size);

    /* The same bytes in two reads, split where the first byte says: same frames. */
    size_t cut = size ? data[0] * size / 256 : 0;
    size_t at2 = 0, n2 = 0;
    if (walk_binary(data, cut, &at2, two, &n2, false))
        walk_binary(data, size, &at2, two, &n2, false);
    FUZZ_ASSERT(n1 == n2 && at == at2);
    for (size_t i = 0; i < n1 && i < FRAMES_MAX; i++) {
        FUZZ_ASSERT(one[i].off == two[i].off);
        FUZZ_ASSERT(memcmp(&one[i].h, &two[i].h, sizeof(one[i].h)) == 0);
    }
}

/* Length-prefixed frames: [u32 BE length][payload]. */
static void fuzz_length_frames(const uint8_t *data, size_t size)
{
    size_t at = 0, frames = 0, bytes = 0;
    size_t max = size ? 1 + data[size - 1] * 4 : 1; /* --max-line, sometimes under a frame */
    for (;;) {
        size_t len = 0;
        long fl = bin_length_frame(data + at, size - at, max, &len);
        if (size - at < 4) {
            FUZZ_ASSERT(fl == 0);
            break;
        }
        FUZZ_ASSERT(len == bin_get32(data + at));
        if (len > BIN_FRAME_MAX) {
            FUZZ_ASSERT(fl == -1);
            break; /* "frame too large" and the connection closes. */
        }
        size_t kept = len < max ? len : max;
        FUZZ_ASSERT(fl == (size - at - 4 < kept ? 0 : (long)(4 + kept)));
        if (size - at - 4 < len)
            break; /* Partial (or cut at max: the rest is skipped as it arrives). */
        at += 4;
        if (len) {
            char *p = malloc(len);
            memcpy(p, data + at, len);
            struct ingest_line il;
            ingest_parse(p, len, &il);
            if (!il.error) {
                FUZZ_ASSERT(il.msg >= p && il.msg + il.msg_len <= p + len);
                FUZZ_ASSERT(il.level >= -1 && il.level <= 5);
            }
            free(p);
            frames++;
        }
        at += len;
        bytes += 4 + len;
        FUZZ_ASSERT(at <= size && bytes == at);
    }
    FUZZ_ASSERT(at <= size && frames <= size / 5 + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_binary_frames(data, size);
    fuzz_length_frames(data, size);
    return 0;
}
