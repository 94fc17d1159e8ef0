/* frame.c - record serialization and the checksummed, compressed frame. */
#include "store/frame.h"

#include <errno.h>
#include <lz4.h>
#include <lz4hc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "base/bytes.h"

const char seg_magic_v1[SEG_HDR_LEN] = {'L', 'C', 'S', 'E', 'G', 0, 0, 1};
const char seg_magic_v2[SEG_HDR_LEN] = {'L', 'C', 'S', 'E', 'G', 0, 0, 2};
const char seg_magic[SEG_HDR_LEN] = {'L', 'C', 'S', 'E', 'G', 0, 0, 3};
const char seg_magic_archived_v2[SEG_HDR_LEN] = {'L', 'C', 'S', 'E', 'G', 0, 0, 2, 'A'};
const char seg_magic_archived[SEG_HDR_LEN] = {'L', 'C', 'S', 'E', 'G', 0, 0, 3, 'A'};

char *rec_put(char *p, const struct lc_entry *e)
{
    size_t src = e->source_len > 255 ? 255 : e->source_len;
    put64(p, (uint64_t)e->ts_ms);
    put64(p + 8, (uint64_t)e->recv_ms);
    put32(p + 16, (uint32_t)e->msg_len);
    p[20] = (char)e->level;
    p[21] = (char)e->flags;
    p[22] = (char)src;
    memcpy(p + REC_HDR_LEN, e->source, src);
    memcpy(p + REC_HDR_LEN + src, e->msg, e->msg_len);
    return p + REC_HDR_LEN + src + e->msg_len;
}

int payload_index(const char *raw, size_t raw_len, uint32_t count, uint32_t *offs)
{
    size_t off = 0;
    for (uint32_t i = 0; i < count; i++) {
        struct lc_entry e;
        size_t n = rec_get(raw + off, raw_len - off, &e);
        if (!n)
            return -1;
        offs[i] = (uint32_t)off;
        off += n;
    }
    offs[count] = (uint32_t)off;
    return off == raw_len ? 0 : -1;
}

/* Column offsets of a block of count records whose sources take src_total bytes. */
struct cols {
    size_t ts, recv, len, level, flags, srclen, pad, src, msg;
};

static struct cols col_layout(uint32_t count, size_t src_total, int layout)
{
    size_t n = count;
    struct cols c;
    c.ts = 0;
    c.recv = c.ts + 8 * n;
    c.len = c.recv + 8 * n;
    c.level = c.len + (layout == COL_LENGTHS ? 4 * n : 0);
    c.flags = c.level + n;
    c.srclen = c.flags + n;
    c.pad = c.srclen + n;
    c.src = c.pad + (layout == COL_LINES ? 3 * n : 0);
    c.msg = c.src + src_total;
    return c;
}

int rows_to_columns(const char *rows, size_t len, uint32_t count, char *cols, uint32_t *offs)
{
    /* First pass: sizes, to place the variable-length columns, and whether any message holds
     * a newline (then the lengths must be stored). */
    size_t off = 0, src_total = 0;
    int layout = COL_LINES;
    for (uint32_t i = 0; i < count; i++) {
        struct lc_entry e;
        size_t n = rec_get(rows + off, len - off, &e);
        if (!n)
            return -1;
        if (offs)
            offs[i] = (uint32_t)off;
        src_total += e.source_len;
        if (layout == COL_LINES && memchr(e.msg, '\n', e.msg_len))
            layout = COL_LENGTHS;
        off += n;
    }
    if (off != len)
        return -1;
    if (offs)
        offs[count] = (uint32_t)len;
    struct cols c = col_layout(count, src_total, layout);
    size_t src = c.src, msg = c.msg;
    int64_t prev_ts = 0;
    if (layout == COL_LINES)
        memset(cols + c.pad, 0, 3 * (size_t)count);
    off = 0;
    for (uint32_t i = 0; i < count; i++) {
        struct lc_entry e;
        size_t n = rec_get(rows + off, len - off, &e);
        if (!n)
            return -1; /* The first pass has checked every record: this never happens. */
        off += n;
        put64(cols + c.ts + 8 * (size_t)i, (uint64_t)e.ts_ms - (uint64_t)prev_ts);
        /* Receive time relative to the event time: zero for plain lines. */
        put64(cols + c.recv + 8 * (size_t)i, (uint64_t)e.recv_ms - (uint64_t)e.ts_ms);
        prev_ts = e.ts_ms;
        if (layout == COL_LENGTHS)
            put32(cols + c.len + 4 * (size_t)i, (uint32_t)e.msg_len);
        cols[c.level + i] = (char)e.level;
        cols[c.flags + i] = (char)e.flags;
        cols[c.srclen + i] = (char)e.source_len;
        memcpy(cols + src, e.source, e.source_len);
        src += e.source_len;
        memcpy(cols + msg, e.msg, e.msg_len);
        msg += e.msg_len;
        if (layout == COL_LINES)
            cols[msg++] = '\n';
    }
    return layout;
}

/* Check a column block's lengths add up; returns the layout through *c. lines: also check
 * the messages of COL_LINES are exactly count lines (a caller walking them anyway passes
 * false and checks as it goes). */
static int col_check(const char *cols, size_t len, uint32_t count, int layout, bool lines,
                     struct cols *c)
{
    if ((uint64_t)count * REC_HDR_LEN > len || (layout != COL_LENGTHS && layout != COL_LINES))
        return -1;
    size_t src_total = 0, msg_total = 0;
    struct cols l = col_layout(count, 0, layout);
    for (uint32_t i = 0; i < count; i++) {
        src_total += (unsigned char)cols[l.srclen + i];
        if (layout == COL_LENGTHS)
            msg_total += get32(cols + l.len + 4 * (size_t)i);
    }
    *c = col_layout(count, src_total, layout);
    if (layout == COL_LENGTHS)
        return c->msg + msg_total == len ? 0 : -1;
    /* Lines: zero padding, then exactly count newline-terminated messages. */
    if (c->msg > len)
        return -1;
    for (size_t i = 0; i < 3 * (size_t)count; i++)
        if (cols[c->pad + i])
            return -1;
    if (!lines)
        return 0;
    const char *p = cols + c->msg, *end = cols + len;
    for (uint32_t i = 0; i < count; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return -1;
        p = nl + 1;
    }
    return p == end ? 0 : -1;
}

int columns_lines(const char *cols, size_t len, uint32_t count, int layout, size_t *off)
{
    struct cols c;
    if (layout != COL_LINES || col_check(cols, len, count, layout, false, &c) < 0)
        return -1;
    *off = c.msg;
    return 0;
}

int columns_to_rows(const char *cols, size_t len, uint32_t count, int layout, char *rows)
{
    return columns_to_rows_index(cols, len, count, layout, rows, NULL);
}

int columns_to_rows_index(const char *cols, size_t len, uint32_t count, int layout, char *rows,
                          uint32_t *offs)
{
    struct cols c;
    if (col_check(cols, len, count, layout, false, &c) < 0)
        return -1;
    size_t src = c.src, msg = c.msg;
    /* Unsigned (wrapping) arithmetic: damaged deltas must not be undefined behaviour. */
    uint64_t ts = 0;
    char *p = rows;
    for (uint32_t i = 0; i < count; i++) {
        ts += get64(cols + c.ts + 8 * (size_t)i);
        uint64_t recv = ts + get64(cols + c.recv + 8 * (size_t)i);
        size_t msg_len;
        if (layout == COL_LENGTHS) {
            msg_len = get32(cols + c.len + 4 * (size_t)i);
        } else {
            /* Lines are checked here, in the one pass that finds them: each line lies within
             * the column, so the rows written never pass len bytes. */
            const char *nl = memchr(cols + msg, '\n', len - msg);
            if (!nl)
                return -1;
            msg_len = (size_t)(nl - (cols + msg));
        }
        struct lc_entry e = {
            .ts_ms = (int64_t)ts,
            .recv_ms = (int64_t)recv,
            .level = (uint8_t)cols[c.level + i],
            .flags = (uint8_t)cols[c.flags + i],
            .source = cols + src,
            .source_len = (unsigned char)cols[c.srclen + i],
            .msg = cols + msg,
            .msg_len = msg_len,
        };
        src += e.source_len;
        msg += e.msg_len + (layout == COL_LINES);
        if (offs)
            offs[i] = (uint32_t)(p - rows);
        p = rec_put(p, &e);
    }
    if (offs)
        offs[count] = (uint32_t)(p - rows);
    return layout == COL_LINES && msg != len ? -1 : 0;
}

int columns_summary(const char *cols, size_t len, uint32_t count, int layout,
                    struct col_summary *out)
{
    struct cols c;
    if (col_check(cols, len, count, layout, true, &c) < 0)
        return -1;
    memset(out, 0, sizeof(*out));
    out->min_ts = INT64_MAX;
    out->max_ts = INT64_MIN;
    uint64_t uts = 0;
    for (uint32_t i = 0; i < count; i++) {
        uts += get64(cols + c.ts + 8 * (size_t)i);
        int64_t ts = (int64_t)uts;
        if (ts < out->min_ts)
            out->min_ts = ts;
        if (ts > out->max_ts)
            out->max_ts = ts;
        uint8_t l = (uint8_t)cols[c.level + i];
        out->level_counts[l < LC_LEVEL_COUNT ? l : LC_INFO]++;
    }
    out->msgs = cols + c.msg;
    out->msgs_len = len - c.msg;
    out->msg_lens = layout == COL_LENGTHS ? cols + c.len : NULL;
    out->levels = (const uint8_t *)cols + c.level;
    out->src_lens = (const uint8_t *)cols + c.srclen;
    out->srcs = cols + c.src;
    return 0;
}

/* One compression and one decompression context per thread, made on first use and freed
 * when the thread ends: creating them per frame costs allocations and page faults. */
static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
struct zctx {
    ZSTD_CCtx *c;
    ZSTD_DCtx *d;
};

static void zctx_free(void *p)
{
    struct zctx *z = p;
    ZSTD_freeCCtx(z->c);
    ZSTD_freeDCtx(z->d);
    free(z);
}

static void zctx_key_init(void)
{
    if (pthread_key_create(&ctx_key, zctx_free) != 0)
        abort(); /* Only when the process has run out of keys: nothing sensible to do. */
}

static struct zctx *zctx_get(void)
{
    pthread_once(&ctx_once, zctx_key_init);
    struct zctx *z = pthread_getspecific(ctx_key);
    if (!z) {
        z = calloc(1, sizeof(*z));
        if (!z)
            return NULL;
        z->c = ZSTD_createCCtx();
        z->d = ZSTD_createDCtx();
        if (!z->c || !z->d) {
            zctx_free(z);
            return NULL;
        }
        pthread_setspecific(ctx_key, z);
    }
    return z;
}

void *zstd_thread_cctx(void)
{
    struct zctx *z = zctx_get();
    return z ? z->c : NULL;
}

void *zstd_thread_dctx(void)
{
    struct zctx *z = zctx_get();
    return z ? z->d : NULL;
}

static uint64_t frame_sum(const char *frame, size_t payload_len)
{
    /* Everything after the checksum field: the rest of the header and the payload. */
    return XXH3_64bits(frame + 16, FRAME_HDR_LEN - 16 + payload_len);
}

size_t frame_bound(size_t raw_len)
{
    size_t z = ZSTD_compressBound(raw_len);
    size_t l = raw_len <= LZ4_MAX_INPUT_SIZE ? (size_t)LZ4_compressBound((int)raw_len) : 0;
    return FRAME_HDR_LEN + (z > l ? z : l);
}

/* Compress raw into out[0..cap) with codec at level: the payload's length, or 0 when it
 * cannot be compressed (an error, or no room). */
static size_t compress_payload(const char *raw, size_t raw_len, int codec, int level, char *out,
                               size_t cap)
{
    if (codec == FRAME_LZ4) {
        if (raw_len > LZ4_MAX_INPUT_SIZE)
            return 0;
        int dst = cap > INT32_MAX ? INT32_MAX : (int)cap;
        int n = level < 3 ? LZ4_compress_default(raw, out, (int)raw_len, dst)
                          : LZ4_compress_HC(raw, out, (int)raw_len, dst,
                                            level > LZ4HC_CLEVEL_MAX ? LZ4HC_CLEVEL_MAX : level);
        return n > 0 ? (size_t)n : 0;
    }
    struct zctx *zc = zctx_get();
    size_t z = zc ? ZSTD_compressCCtx(zc->c, out, cap, raw, raw_len, level)
                  : ZSTD_compress(out, cap, raw, raw_len, level);
    return ZSTD_isError(z) ? 0 : z;
}

int frame_encode(const char *raw, size_t raw_len, uint64_t first_id, uint32_t count, int codec,
                 int level, int layout, char *f, size_t cap, size_t *out_len)
{
    if (cap < frame_bound(raw_len))
        return -ENOBUFS;
    if (codec != FRAME_ZSTD && codec != FRAME_LZ4)
        return -EINVAL;
    size_t plen = raw_len;
    if (level) {
        size_t z =
            compress_payload(raw, raw_len, codec, level, f + FRAME_HDR_LEN, cap - FRAME_HDR_LEN);
        if (z && z < raw_len)
            plen = z;
        else
            codec = FRAME_RAW;
    } else {
        codec = FRAME_RAW;
    }
    if (codec == FRAME_RAW)
        memcpy(f + FRAME_HDR_LEN, raw, raw_len);
    put32(f, FRAME_MAGIC);
    put32(f + 4, (uint32_t)plen);
    put64(f + 16, first_id);
    put32(f + 24, count);
    put32(f + 28, (uint32_t)raw_len);
    put32(f + 32, (uint32_t)codec);
    put32(f + 36, (uint32_t)layout);
    put64(f + 8, frame_sum(f, plen));
    *out_len = FRAME_HDR_LEN + plen;
    return 0;
}

int frame_parse_header(const char *hdr, struct frame_hdr *h)
{
    if (get32(hdr) != FRAME_MAGIC)
        return -1;
    h->payload_len = get32(hdr + 4);
    h->checksum = get64(hdr + 8);
    h->first_id = get64(hdr + 16);
    h->count = get32(hdr + 24);
    h->raw_len = get32(hdr + 28);
    h->codec = get32(hdr + 32);
    h->layout = get32(hdr + 36);
    if (h->codec > FRAME_LZ4 || h->layout > COL_LINES || h->raw_len > FRAME_MAX_RAW ||
        h->count == 0 || h->first_id == 0 || h->payload_len > FRAME_MAX_RAW ||
        (h->codec == FRAME_RAW && h->payload_len != h->raw_len) ||
        (uint64_t)h->count * REC_HDR_LEN > h->raw_len)
        return -1;
    return 0;
}

bool frame_verify(const struct frame_hdr *h, const char *frame)
{
    return frame_sum(frame, h->payload_len) == h->checksum;
}

int frame_decode(const struct frame_hdr *h, const char *frame, char *raw)
{
    if (h->codec == FRAME_RAW) {
        memcpy(raw, frame + FRAME_HDR_LEN, h->raw_len);
        return 0;
    }
    if (h->codec == FRAME_LZ4) {
        int n = h->payload_len <= INT32_MAX && h->raw_len <= INT32_MAX
                    ? LZ4_decompress_safe(frame + FRAME_HDR_LEN, raw, (int)h->payload_len,
                                          (int)h->raw_len)
                    : -1;
        return n == (int)h->raw_len ? 0 : -1;
    }
    struct zctx *zc = zctx_get();
    size_t n =
        zc ? ZSTD_decompressDCtx(zc->d, raw, h->raw_len, frame + FRAME_HDR_LEN, h->payload_len)
           : ZSTD_decompress(raw, h->raw_len, frame + FRAME_HDR_LEN, h->payload_len);
    return ZSTD_isError(n) || n != h->raw_len ? -1 : 0;
}

/* Read the frame of len bytes at off into frame and decompress its columns into cols,
 * checking it is whole and the one expected (count entries, raw_len bytes). */
bool frame_load(int fd, uint64_t off, uint32_t len, uint32_t count, uint32_t raw_len, char *frame,
                char *cols, struct frame_hdr *h)
{
    return pread(fd, frame, len, (off_t)off) == (ssize_t)len && frame_parse_header(frame, h) == 0 &&
           FRAME_HDR_LEN + (size_t)h->payload_len == len && frame_verify(h, frame) &&
           h->raw_len == raw_len && h->count == count && frame_decode(h, frame, cols) == 0;
}
