/* fuzz_clwire.c - libFuzzer target for the bytes the cluster sends (cluster/wire.h). The first
 * byte picks a decoder for the rest:
 *   0  a batch: the rest opened as a zstd frame, and the rest compressed first and opened, so
 *      mutations reach the payload (counts, runs, records) and not only the frame;
 *   1  a request;
 *   2  an answer, and its rows when it has them.
 * A refusal must leave one sentence and nothing allocated. A batch opened must iterate exactly
 * its entries, numbered as its runs say (ascending), with strings inside its bytes; added to a
 * batch again, sealed and opened, it must give the same entries. A request or an answer must
 * encode back into the bytes it came from (an answer's reserved byte aside). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "cluster/wire.h"
#include "core/buf.h"
#include "store/frame.h"

static void check_err(const char *err)
{
    size_t n = strnlen(err, 128);
    if (n == 0 || n == 128 || memchr(err, '\n', n))
        __builtin_trap();
}

static bool same(const struct lc_entry *a, const struct lc_entry *b)
{
    return a->id == b->id && a->ts_ms == b->ts_ms && a->recv_ms == b->recv_ms &&
           a->level == b->level && a->flags == b->flags && a->source_len == b->source_len &&
           memcmp(a->source, b->source, a->source_len) == 0 && a->msg_len == b->msg_len &&
           memcmp(a->msg, b->msg, a->msg_len) == 0;
}

static bool inside(const struct wire_batch_in *b, const char *p, size_t n)
{
    return p >= b->rec && p <= b->rec_end && n <= (size_t)(b->rec_end - p);
}

/* Kept from input to input, as a copy keeps its own from batch to batch. */
static struct wire_scratch raw_scratch, flat_scratch;

static void batch(const uint8_t *data, size_t size)
{
    struct wire_batch_in b;
    char err[128];
    memset(err, 0, sizeof(err));
    if (wire_batch_open_in(data, size, &b, &raw_scratch, err) != 0) {
        check_err(err);
        if (b.raw || b.nentries)
            __builtin_trap();
        return;
    }
    if (b.nentries > WIRE_BATCH_MAX_ENTRIES || b.raw_len > WIRE_BATCH_MAX_RAW)
        __builtin_trap();
    struct lc_entry *e = malloc((b.nentries + 1) * sizeof(*e));
    struct wire_batch_out o = {0};
    uint32_t n = 0, run = 0, in_run = 0;
    while (n <= b.nentries && wire_batch_next(&b, &e[n])) {
        /* The id the runs say: run by run, each counted from its first id. */
        uint32_t count;
        uint64_t first;
        while (memcpy(&count, b.runs + run * 12 + 8, 4), in_run == count)
            run++, in_run = 0;
        memcpy(&first, b.runs + run * 12, 8);
        if (e[n].id != first + in_run++ || (n > 0 && e[n].id <= e[n - 1].id) ||
            !inside(&b, e[n].source, e[n].source_len) || !inside(&b, e[n].msg, e[n].msg_len) ||
            e[n].level >= LC_LEVEL_COUNT)
            __builtin_trap();
        if (wire_batch_add(&o, &e[n], 1, e[n].id) != 0)
            __builtin_trap();
        n++;
    }
    if (n != b.nentries || wire_batch_next(&b, &e[n]) || o.nruns > b.nruns)
        __builtin_trap();
    /* Again through the encoder: the same entries. */
    char *z = NULL;
    size_t zl = 0;
    if (wire_batch_seal_in(&o, size & 1 ? FRAME_LZ4 : FRAME_ZSTD, 1, &flat_scratch, &z, &zl) != 0)
        __builtin_trap();
    struct wire_batch_in again;
    if (wire_batch_open(z, zl, &again, err) != 0 || again.nentries != n)
        __builtin_trap();
    struct lc_entry g;
    for (uint32_t i = 0; i < n; i++)
        if (!wire_batch_next(&again, &g) || !same(&g, &e[i]))
            __builtin_trap();
    if (wire_batch_next(&again, &g))
        __builtin_trap();
    wire_batch_close(&again);
    free(z);
    wire_batch_free(&o);
    free(e);
    wire_batch_close(&b);
    if (b.raw)
        __builtin_trap();
}

static void request(const uint8_t *data, size_t size)
{
    struct wire_request r;
    char err[128];
    memset(err, 0, sizeof(err));
    if (wire_request_decode(data, size, &r, err) != 0) {
        check_err(err);
        return;
    }
    size_t head = (r.version == 1 ? 36 : 44) + (r.kind == WK_ORDER || r.kind == WK_KEY ? 40 : 0);
    if (r.version < 1 || r.version > 2 || (r.version == 1 && r.min_seq) || r.kind > WK_KEY ||
        r.win_from_ms > r.win_to_ms || r.text != (const char *)data + head ||
        r.text_len != size - head)
        __builtin_trap();
    struct buf out = {0}, other = {0}, back = {0};
    if (wire_request_encode(&out, &r) != 0 || buf_len(&out) != size ||
        memcmp(buf_head(&out), data, size) != 0)
        __builtin_trap();
    /* To the other version and back: the same bytes, once min_seq (which version 1 lacks)
     * is 0. */
    if (r.version == 2)
        wire_request_address(&out, r.partition, r.attempt, 0);
    if (wire_request_as_version(&out, (uint8_t)(3 - r.version), &other) != 0 ||
        wire_request_as_version(&other, r.version, &back) != 0 || buf_len(&back) != size ||
        memcmp(buf_head(&back), buf_head(&out), size) != 0)
        __builtin_trap();
    buf_free(&out);
    buf_free(&other);
    buf_free(&back);
}

static void answer(const uint8_t *data, size_t size)
{
    struct wire_answer a;
    char err[128];
    memset(err, 0, sizeof(err));
    if (wire_answer_decode(data, size, &a, err) != 0) {
        check_err(err);
        return;
    }
    if (a.body != (const char *)data + 8 || a.body_len != size - 8)
        __builtin_trap();
    struct buf out = {0};
    wire_answer_begin(&out, a.partition, a.attempt, a.type, a.seq);
    if (buf_len(&out) != 8 || memcmp(buf_head(&out), data, 3) != 0 ||
        memcmp(buf_head(&out) + 4, data + 4, 4) != 0)
        __builtin_trap();
    if (a.type == WT_ROWS) {
        /* Rows until the end or a bad one; the good ones encode into rows that read the same. */
        const char *at = a.body, *end = a.body + a.body_len;
        struct lc_entry e, g;
        int r;
        size_t rows = 0;
        while ((r = wire_answer_next_row(&at, end, &e)) == 1) {
            if (at > end || e.source < a.body || e.msg + e.msg_len > end)
                __builtin_trap();
            size_t off = buf_len(&out);
            if (wire_answer_row(&out, &e) != 0)
                __builtin_trap();
            const char *p = buf_head(&out) + off;
            if (wire_answer_next_row(&p, buf_head(&out) + buf_len(&out), &g) != 1 || !same(&e, &g))
                __builtin_trap();
            rows++;
        }
        if ((r == 0) != (at == end) || rows > a.body_len / 31)
            __builtin_trap();
    }
    if (a.type == WT_EXPORT_ROWS) {
        /* The same for an export's rows, which carry a sequence and a local id besides. */
        const char *at = a.body, *end = a.body + a.body_len;
        struct lc_entry e, g;
        uint64_t seq, local, gseq, glocal;
        int r;
        while ((r = wire_export_next_row(&at, end, &e, &seq, &local)) == 1) {
            if (at > end || e.source < a.body || e.msg + e.msg_len > end)
                __builtin_trap();
            size_t off = buf_len(&out);
            if (wire_export_row(&out, &e, seq, local) != 0)
                __builtin_trap();
            const char *p = buf_head(&out) + off;
            if (wire_export_next_row(&p, buf_head(&out) + buf_len(&out), &g, &gseq, &glocal) != 1 ||
                !same(&e, &g) || gseq != seq || glocal != local)
                __builtin_trap();
        }
        if ((r == 0) != (at == end))
            __builtin_trap();
    }
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ZSTD_CCtx *cctx;
    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0: {
        batch(data + 1, size - 1);
        if (!cctx)
            cctx = ZSTD_createCCtx();
        size_t cap = ZSTD_compressBound(size - 1);
        char *z = malloc(cap);
        size_t zl = ZSTD_compressCCtx(cctx, z, cap, data + 1, size - 1, 1);
        if (ZSTD_isError(zl))
            __builtin_trap();
        batch((const uint8_t *)z, zl);
        free(z);
        break;
    }
    case 1:
        request(data + 1, size - 1);
        break;
    default:
        answer(data + 1, size - 1);
    }
    return 0;
}
