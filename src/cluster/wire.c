/* wire.c - batches, requests and answers as bytes (see wire.h). */
#include "cluster/wire.h"

#include <errno.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "base/bytes.h"
#include "store/frame.h"
#include "store/record.h"

#define BATCH_MAGIC "LCB1"
#define LZ4_MAGIC   "LCZ4" /* Then u32 size: an LZ4 block states no size of its own. */
#define BATCH_HEAD  12     /* magic, nruns, nentries */
#define RUN_SIZE    12
#define REQ_HEAD    44
#define REQ_HEAD_V1 36 /* Version 1: no min_seq. */
#define REQ_ORDER   40 /* WK_ORDER and WK_KEY: flags, then the two bounds. */
#define ANS_HEAD    8

/* ---- Memory kept from batch to batch ---- */

void wire_scratch_free(struct wire_scratch *s)
{
    free(s->p);
    s->p = NULL;
    s->cap = 0;
}

/* Room for size bytes: in the scratch when it may keep them, else fresh (*owned). */
static char *raw_room(struct wire_scratch *s, size_t size, bool *owned)
{
    *owned = !s || size > WIRE_SCRATCH_KEEP;
    if (*owned)
        return malloc(size);
    if (s->cap < size) {
        size_t cap = s->cap ? s->cap : 256u << 10;
        while (cap < size)
            cap *= 2;
        char *p = malloc(cap); /* Not realloc: the old bytes are not wanted. */
        if (!p)
            return NULL;
        free(s->p);
        s->p = p;
        s->cap = cap;
    }
    return s->p;
}

/* ---- Batches out ---- */

int wire_batch_add(struct wire_batch_out *b, const struct lc_entry *e, size_t n, uint64_t first_id)
{
    if (n == 0)
        return 0;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += rec_size(&e[i]);
    size_t runs_end = b->runs.end, rec_end = b->records.end;
    if (buf_reserve(&b->records, bytes) < 0)
        return -ENOMEM;
    bool extend = b->nruns > 0 && first_id == b->last_id + 1;
    if (!extend) {
        char run[RUN_SIZE];
        put64(run, first_id);
        put32(run + 8, 0);
        if (buf_append(&b->runs, run, sizeof(run)) < 0) {
            b->runs.end = runs_end;
            b->records.end = rec_end;
            return -ENOMEM;
        }
        b->nruns++;
    }
    char *cnt = b->runs.data + b->runs.end - 4;
    put32(cnt, get32(cnt) + (uint32_t)n);
    char *p = b->records.data + b->records.end;
    for (size_t i = 0; i < n; i++)
        p = rec_put(p, &e[i]);
    b->records.end += bytes;
    b->nentries += (uint32_t)n;
    b->last_id = first_id + n - 1;
    return 0;
}

/* The batch in one piece, LZ4-compressed (LZ4's block API wants its input whole). */
static int seal_lz4(const struct wire_batch_out *b, size_t raw, struct wire_scratch *scratch,
                    char **out, size_t *out_len)
{
    bool owned;
    char *flat = raw_room(scratch, raw, &owned);
    size_t cap = 8 + (size_t)LZ4_compressBound((int)raw);
    char *z = flat ? malloc(cap) : NULL;
    if (!z) {
        if (owned)
            free(flat);
        return -ENOMEM;
    }
    memcpy(flat, BATCH_MAGIC, 4);
    put32(flat + 4, b->nruns);
    put32(flat + 8, b->nentries);
    if (buf_len(&b->runs))
        memcpy(flat + BATCH_HEAD, buf_head(&b->runs), buf_len(&b->runs));
    if (buf_len(&b->records))
        memcpy(flat + BATCH_HEAD + buf_len(&b->runs), buf_head(&b->records), buf_len(&b->records));
    int n = LZ4_compress_default(flat, z + 8, (int)raw, (int)(cap - 8));
    if (owned)
        free(flat);
    if (n <= 0) {
        free(z);
        return -EIO;
    }
    memcpy(z, LZ4_MAGIC, 4);
    put32(z + 4, (uint32_t)raw);
    *out = z;
    *out_len = 8 + (size_t)n;
    return 0;
}

int wire_batch_seal(const struct wire_batch_out *b, int codec, int level, char **out,
                    size_t *out_len)
{
    return wire_batch_seal_in(b, codec, level, NULL, out, out_len);
}

int wire_batch_seal_in(const struct wire_batch_out *b, int codec, int level,
                       struct wire_scratch *scratch, char **out, size_t *out_len)
{
    if (b->nentries > WIRE_BATCH_MAX_ENTRIES)
        return -E2BIG;
    size_t raw = BATCH_HEAD + buf_len(&b->runs) + buf_len(&b->records);
    if (raw > WIRE_BATCH_MAX_RAW)
        return -E2BIG;
    if (codec == FRAME_LZ4)
        return seal_lz4(b, raw, scratch, out, out_len);
    ZSTD_CCtx *cc = zstd_thread_cctx(); /* Reused: a fresh context costs page faults. */
    size_t cap = ZSTD_compressBound(raw);
    char *z = cc ? malloc(cap) : NULL;
    if (!z)
        return -ENOMEM;
    char head[BATCH_HEAD];
    memcpy(head, BATCH_MAGIC, 4);
    put32(head + 4, b->nruns);
    put32(head + 8, b->nentries);
    /* Streamed from the three pieces, with the size pledged so the frame states it (the
     * receiver checks it before allocating). */
    ZSTD_outBuffer o = {z, cap, 0};
    const struct {
        const void *p;
        size_t n;
    } piece[3] = {{head, sizeof(head)}, /* An empty buf has no data: no pointer sums on NULL. */
                  {b->runs.data ? buf_head(&b->runs) : "", buf_len(&b->runs)},
                  {b->records.data ? buf_head(&b->records) : "", buf_len(&b->records)}};
    size_t rc = ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
    if (!ZSTD_isError(rc))
        rc = ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level);
    if (!ZSTD_isError(rc))
        rc = ZSTD_CCtx_setPledgedSrcSize(cc, raw);
    for (int i = 0; i < 3 && !ZSTD_isError(rc); i++) {
        ZSTD_inBuffer in = {piece[i].p, piece[i].n, 0};
        ZSTD_EndDirective end = i == 2 ? ZSTD_e_end : ZSTD_e_continue;
        do
            rc = ZSTD_compressStream2(cc, &o, &in, end);
        while (!ZSTD_isError(rc) && (end == ZSTD_e_end ? rc != 0 : in.pos < in.size));
    }
    if (ZSTD_isError(rc)) {
        free(z);
        return -EIO;
    }
    *out = z;
    *out_len = o.pos;
    return 0;
}

void wire_batch_reset(struct wire_batch_out *b)
{
    b->runs.start = b->runs.end = 0;
    b->records.start = b->records.end = 0;
    b->nruns = b->nentries = 0;
    b->last_id = 0;
}

void wire_batch_free(struct wire_batch_out *b)
{
    buf_free(&b->runs);
    buf_free(&b->records);
    wire_batch_reset(b);
}

/* ---- Batches in ---- */

static int bad(char *err, const char *why)
{
    snprintf(err, 128, "%s", why);
    return -EINVAL;
}

int wire_batch_open(const void *data, size_t len, struct wire_batch_in *b, char *err)
{
    return wire_batch_open_in(data, len, b, NULL, err);
}

int wire_batch_open_in(const void *data, size_t len, struct wire_batch_in *b,
                       struct wire_scratch *scratch, char *err)
{
    memset(b, 0, sizeof(*b));
    bool lz4 = len >= 8 && memcmp(data, LZ4_MAGIC, 4) == 0;
    unsigned long long size =
        lz4 ? get32((const char *)data + 4) : ZSTD_getFrameContentSize(data, len);
    if (!lz4 && (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN))
        return bad(err, "batch is neither LZ4 nor a zstd frame with its size");
    if (size < BATCH_HEAD || size > WIRE_BATCH_MAX_RAW)
        return bad(err, "batch size out of range");
    b->raw = raw_room(scratch, size, &b->owned);
    if (!b->raw)
        return -ENOMEM;
    bool whole;
    if (lz4) {
        whole = len - 8 <= INT32_MAX && LZ4_decompress_safe((const char *)data + 8, b->raw,
                                                            (int)(len - 8), (int)size) == (int)size;
    } else {
        ZSTD_DCtx *dc = zstd_thread_dctx();
        size_t got = dc ? ZSTD_decompressDCtx(dc, b->raw, size, data, len)
                        : ZSTD_decompress(b->raw, size, data, len);
        whole = !ZSTD_isError(got) && got == size;
    }
    if (!whole) {
        wire_batch_close(b);
        return bad(err, "batch does not decompress");
    }
    b->raw_len = size;
    if (memcmp(b->raw, BATCH_MAGIC, 4) != 0) {
        wire_batch_close(b);
        return bad(err, "batch has no LCB1 magic");
    }
    b->nruns = get32(b->raw + 4);
    b->nentries = get32(b->raw + 8);
    if (b->nentries > WIRE_BATCH_MAX_ENTRIES || b->nruns > b->nentries ||
        (size_t)b->nruns * RUN_SIZE > size - BATCH_HEAD) {
        wire_batch_close(b);
        return bad(err, "batch counts out of range");
    }
    b->runs = b->raw + BATCH_HEAD;
    /* Runs ascend without overlapping, so a batch's ids are unique and in order (id 0 is
     * nobody's); a run may end at UINT64_MAX itself. */
    uint64_t sum = 0, last = 0;
    for (uint32_t i = 0; i < b->nruns; i++) {
        uint32_t c = get32(b->runs + i * RUN_SIZE + 8);
        uint64_t first = get64(b->runs + i * RUN_SIZE);
        if (c == 0 || first <= last || c - 1 > UINT64_MAX - first) {
            wire_batch_close(b);
            return bad(err, "batch has an empty, overflowing or out-of-order run");
        }
        last = first + (c - 1);
        sum += c;
    }
    if (sum != b->nentries) {
        wire_batch_close(b);
        return bad(err, "batch runs do not add up to its entries");
    }
    b->rec = b->runs + (size_t)b->nruns * RUN_SIZE;
    b->rec_end = b->raw + size;
    const char *p = b->rec;
    for (uint32_t i = 0; i < b->nentries; i++) {
        struct lc_entry e;
        size_t n = rec_get(p, (size_t)(b->rec_end - p), &e);
        if (!n) {
            wire_batch_close(b);
            return bad(err, "batch has a malformed record");
        }
        p += n;
    }
    if (p != b->rec_end) {
        wire_batch_close(b);
        return bad(err, "batch has bytes after its records");
    }
    b->at = b->rec;
    return 0;
}

bool wire_batch_next(struct wire_batch_in *b, struct lc_entry *e)
{
    while (b->run < b->nruns && b->in_run == get32(b->runs + b->run * RUN_SIZE + 8)) {
        b->run++;
        b->in_run = 0;
    }
    if (b->run >= b->nruns)
        return false;
    size_t n = rec_get(b->at, (size_t)(b->rec_end - b->at), e);
    if (!n)
        return false; /* Checked by open: not reached. */
    e->id = get64(b->runs + b->run * RUN_SIZE) + b->in_run++;
    b->at += n;
    return true;
}

void wire_batch_close(struct wire_batch_in *b)
{
    if (b->owned)
        free(b->raw);
    memset(b, 0, sizeof(*b));
}

/* ---- Requests ---- */

static size_t request_head(uint8_t version)
{
    return version == 1 ? REQ_HEAD_V1 : REQ_HEAD;
}

int wire_request_encode(struct buf *out, const struct wire_request *r)
{
    uint8_t version = r->version ? r->version : WIRE_VERSION;
    if (version > WIRE_VERSION)
        return -EINVAL;
    char h[REQ_HEAD];
    h[0] = (char)version;
    h[1] = (char)r->kind;
    h[2] = (char)r->partition;
    h[3] = (char)r->attempt;
    put64(h + 4, (uint64_t)r->now_ms);
    put64(h + 12, r->limit);
    put64(h + 20, (uint64_t)r->win_from_ms);
    put64(h + 28, (uint64_t)r->win_to_ms);
    put64(h + 36, r->min_seq);
    out->start = out->end = 0;
    if (buf_append(out, h, request_head(version)) < 0)
        return -ENOMEM;
    if (r->kind == WK_ORDER || r->kind == WK_KEY) {
        char o[REQ_ORDER] = {
            (char)((r->forward ? 1 : 0) | (r->lo_set ? 2 : 0) | (r->hi_set ? 4 : 0))};
        put64(o + 8, (uint64_t)r->lo.recv_ms);
        put64(o + 16, r->lo.id);
        put64(o + 24, (uint64_t)r->hi.recv_ms);
        put64(o + 32, r->hi.id);
        if (buf_append(out, o, sizeof(o)) < 0)
            return -ENOMEM;
    }
    if (buf_append(out, r->text, r->text_len) < 0)
        return -ENOMEM;
    return 0;
}

int wire_request_decode(const void *data, size_t len, struct wire_request *r, char *err)
{
    const char *p = data;
    if (len < 1 || p[0] < 1 || p[0] > WIRE_VERSION || len < request_head((uint8_t)p[0]))
        return bad(err, "request too short or of an unknown version");
    r->version = (uint8_t)p[0];
    r->kind = (uint8_t)p[1];
    r->partition = (uint8_t)p[2];
    r->attempt = (uint8_t)p[3];
    if (r->kind > WK_KEY)
        return bad(err, "request of an unknown kind");
    r->now_ms = (int64_t)get64(p + 4);
    r->limit = get64(p + 12);
    r->win_from_ms = (int64_t)get64(p + 20);
    r->win_to_ms = (int64_t)get64(p + 28);
    if (r->win_from_ms > r->win_to_ms)
        return bad(err, "request with an empty time window");
    r->min_seq = r->version >= 2 ? get64(p + 36) : 0;
    size_t head = request_head(r->version);
    r->forward = r->lo_set = r->hi_set = false;
    r->lo = r->hi = (struct wire_key){0, 0};
    if (r->kind == WK_ORDER || r->kind == WK_KEY) {
        if (len < head + REQ_ORDER)
            return bad(err, "request too short for its bounds");
        const char *o = p + head;
        static const char zero[7];
        if ((uint8_t)o[0] > 7 || memcmp(o + 1, zero, 7) != 0)
            return bad(err, "request with unknown flags");
        r->forward = o[0] & 1;
        r->lo_set = o[0] & 2;
        r->hi_set = o[0] & 4;
        r->lo = (struct wire_key){(int64_t)get64(o + 8), get64(o + 16)};
        r->hi = (struct wire_key){(int64_t)get64(o + 24), get64(o + 32)};
        head += REQ_ORDER;
    }
    r->text = p + head;
    r->text_len = len - head;
    return 0;
}

void wire_request_address(struct buf *req, uint8_t partition, uint8_t attempt, uint64_t min_seq)
{
    char *h = buf_head(req);
    h[2] = (char)partition;
    h[3] = (char)attempt;
    if (h[0] >= 2)
        put64(h + 36, min_seq);
}

int wire_request_as_version(const struct buf *req, uint8_t version, struct buf *out)
{
    const char *h = buf_head(req);
    size_t len = buf_len(req);
    if (len < 1 || h[0] < 1 || h[0] > WIRE_VERSION || len < request_head((uint8_t)h[0]) ||
        version < 1 || version > WIRE_VERSION)
        return -EINVAL;
    size_t from = request_head((uint8_t)h[0]), to = request_head(version);
    char head[REQ_HEAD] = {0}; /* A min_seq that version 1 lacked is 0: no wait. */
    memcpy(head, h, from < to ? from : to);
    head[0] = (char)version;
    out->start = out->end = 0;
    if (buf_append(out, head, to) < 0 || buf_append(out, h + from, len - from) < 0)
        return -ENOMEM;
    return 0;
}

/* ---- Answers ---- */

void wire_answer_begin(struct buf *out, uint8_t partition, uint8_t attempt, uint8_t type,
                       uint32_t seq)
{
    out->start = out->end = 0;
    char h[ANS_HEAD] = {(char)partition, (char)type, (char)attempt, 0};
    put32(h + 4, seq);
    buf_append(out, h, sizeof(h)); /* Out of memory: the asker sees a short answer. */
}

int wire_answer_row(struct buf *out, const struct lc_entry *e)
{
    size_t n = 8 + rec_size(e);
    if (buf_reserve(out, n) < 0)
        return -ENOMEM;
    char *p = out->data + out->end;
    put64(p, e->id);
    rec_put(p + 8, e);
    out->end += n;
    return 0;
}

int wire_answer_decode(const void *data, size_t len, struct wire_answer *a, char *err)
{
    const char *p = data;
    if (len < ANS_HEAD)
        return bad(err, "answer too short");
    a->partition = (uint8_t)p[0];
    a->type = (uint8_t)p[1];
    a->attempt = (uint8_t)p[2];
    a->seq = get32(p + 4);
    a->body = p + ANS_HEAD;
    a->body_len = len - ANS_HEAD;
    switch (a->type) {
    case WT_COUNT:
        return a->body_len == 8 ? 0 : bad(err, "count answer of the wrong size");
    case WT_END:
        return a->body_len == 4 ? 0 : bad(err, "end answer of the wrong size");
    case WT_ROWS:
    case WT_PART:
    case WT_ERROR:
    case WT_NOT_HELD:
    case WT_ALIVE:
    case WT_EXPORT_ROWS:
        return 0;
    case WT_EXPORT_INFO:
        return a->body_len == 16 || a->body_len == 24 ? 0
                                                      : bad(err, "export info of the wrong size");
    }
    return bad(err, "answer of an unknown type");
}

/* The next row at *at: head bytes (its id first), then a record into e; *row is where it
 * starts. 1, 0 at the end, -1 when malformed. */
static int next_row(const char **at, const char *end, size_t head, struct lc_entry *e,
                    const char **row)
{
    if (*at == end)
        return 0;
    if ((size_t)(end - *at) < head)
        return -1;
    size_t n = rec_get(*at + head, (size_t)(end - *at) - head, e);
    if (!n)
        return -1;
    *row = *at;
    e->id = get64(*at);
    *at += head + n;
    return 1;
}

int wire_answer_next_row(const char **at, const char *end, struct lc_entry *e)
{
    const char *row;
    return next_row(at, end, 8, e, &row);
}

int wire_export_row(struct buf *out, const struct lc_entry *e, uint64_t seq, uint64_t local)
{
    size_t n = 24 + rec_size(e);
    if (buf_reserve(out, n) < 0)
        return -ENOMEM;
    char *p = out->data + out->end;
    put64(p, e->id);
    put64(p + 8, seq);
    put64(p + 16, local);
    rec_put(p + 24, e);
    out->end += n;
    return 0;
}

int wire_export_next_row(const char **at, const char *end, struct lc_entry *e, uint64_t *seq,
                         uint64_t *local)
{
    const char *row;
    int r = next_row(at, end, 24, e, &row);
    if (r == 1) {
        *seq = get64(row + 8);
        *local = get64(row + 16);
    }
    return r;
}
