/* read.c - readers: block cursors over the index, opened blocks, statistics.
 *
 * A cursor takes a batch of consecutive blocks of one segment under list_lock at a time and
 * pins that segment (blocks are freed only with their segment: segment.c), so stepping costs
 * neither a lock nor an atomic per block. An opened block holds a reference on its decoded
 * entries (cache.c). No lock is held while a reader looks at a summary or an entry. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "store/frame.h"
#include "store/store_internal.h"

/* The block whose summary a cursor handed out. */
static struct block *info_block(const struct lc_block_info *info)
{
    return (struct block *)((char *)info - offsetof(struct block, info));
}

/* Index of the first block whose last id is >= id (nblocks if none). list_lock held. */
size_t block_find(const struct store *s, uint64_t id)
{
    size_t lo = 0, hi = s->nblocks;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct block *b = s->blocks[mid];
        if (b->first_id + b->count - 1 < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void store_cursor_init(struct store_cursor *c, uint64_t from_id, uint64_t to_id, bool forward)
{
    /* Field by field: the batch arrays are written before they are read. */
    c->info = NULL;
    c->bad = false;
    c->from_id = from_id;
    c->to_id = to_id;
    c->forward = forward;
    c->done = from_id > to_id; /* An empty range. */
    c->seg = NULL;
    c->n = c->i = 0;
    c->pos = 0;
}

/* The position of the block that follows `last` in c's order, or of c's first block when last
 * is NULL; SIZE_MAX when there is none. list_lock held; last, if any, pinned. */
static size_t cursor_step(const struct store *s, const struct store_cursor *c,
                          const struct block *last)
{
    uint64_t id;
    if (last && c->pos < s->nblocks && s->blocks[c->pos] == last) { /* Nothing moved it. */
        if (c->forward)
            return c->pos + 1;
        return c->pos ? c->pos - 1 : SIZE_MAX;
    }
    if (!last) {
        id = c->forward ? c->from_id : c->to_id;
    } else if (c->forward) {
        id = last->first_id + last->count; /* Its successor, wherever the list now has it. */
    } else {
        if (last->first_id == 0)
            return SIZE_MAX;
        id = last->first_id - 1;
    }
    size_t bi = block_find(s, id);
    if (!c->forward && (bi == s->nblocks || s->blocks[bi]->first_id > id))
        return bi ? bi - 1 : SIZE_MAX; /* The last block that starts at or before id. */
    return bi;
}

/* Refill the batch with the blocks that follow the last one in c's order (its first blocks at
 * the start): up to STORE_CURSOR_BATCH of them, all of one segment, which is pinned; then let
 * go of the previous segment. One lock and one pin serve the whole batch. */
static void cursor_fill(struct store *s, struct store_cursor *c)
{
    struct segment *prev = c->seg;
    const struct block *last = c->n ? info_block(c->infos[c->n - 1]) : NULL;
    c->n = c->i = 0;
    c->seg = NULL;
    pthread_rwlock_rdlock(&s->list_lock);
    size_t bi = cursor_step(s, c, last);
    /* Locals, so the stores into the batch do not make the compiler reload fields. */
    struct block *const *blocks = s->blocks;
    const size_t nblocks = s->nblocks;
    const uint64_t from = c->from_id, to = c->to_id;
    const bool forward = c->forward;
    const struct segment *seg = bi < nblocks ? blocks[bi]->seg : NULL;
    const struct lc_block_info **infos = c->infos;
    bool *bads = c->bads;
    size_t pos = c->pos;
    unsigned n = 0;
    while (bi < nblocks && n < STORE_CURSOR_BATCH) {
        const struct block *b = blocks[bi];
        if (b->info.first_id > to || b->info.last_id < from || b->seg != seg)
            break; /* Past the range in the cursor's order, or into the next segment. */
        infos[n] = &b->info;
        bads[n++] = __atomic_load_n(&b->bad, __ATOMIC_RELAXED);
        pos = bi;
        if (forward)
            bi++;
        else if (bi-- == 0)
            break;
    }
    c->pos = pos;
    c->n = n;
    if (n) {
        c->seg = info_block(c->infos[0])->seg;
        seg_ref(c->seg);
    }
    pthread_rwlock_unlock(&s->list_lock);
    if (prev)
        seg_unref(prev);
}

bool store_cursor_fill(struct store *s, struct store_cursor *c)
{
    if (!c->done)
        cursor_fill(s, c);
    if (!c->n) {
        c->done = true;
        c->info = NULL;
        return false;
    }
    return true;
}

void store_cursor_end(struct store *s, struct store_cursor *c)
{
    if (c->seg)
        seg_unref(c->seg);
    c->seg = NULL;
    c->info = NULL;
    c->n = c->i = 0;
    c->done = true;
}

int store_block_open(struct store *s, const struct store_cursor *c, struct store_block *blk)
{
    lc_assert(c->info != NULL);
    struct block *b = info_block(c->info);
    struct cblock *cb;
    int rc = cache_get(s, b, &cb);
    *blk = (struct store_block){.first_id = b->first_id,
                                .last_id = b->first_id + b->count - 1,
                                .raw = cb ? cb->raw : NULL,
                                .offs = cb ? cb->offs : NULL,
                                .cb = cb};
    return rc;
}

/* ---- Scan buffers: one per thread, for blocks read past the cache ---- */

#define SCANBUF_KEEP (4u << 20) /* Larger buffers (a block of huge lines) are freed after use. */

struct scanbuf {
    char *frame, *cols, *rows;
    uint32_t *offs;
    size_t frame_cap, cols_cap, rows_cap, offs_cap; /* In bytes. */
    bool busy;                                      /* A block opened with it is not closed yet. */
};

static pthread_key_t scanbuf_key;
static pthread_once_t scanbuf_once = PTHREAD_ONCE_INIT;
static __thread struct scanbuf *scanbuf; /* This thread's, or NULL. */

static void scanbuf_free(void *p)
{
    struct scanbuf *sb = p;
    if (!sb)
        return;
    free(sb->frame);
    free(sb->cols);
    free(sb->rows);
    free(sb->offs);
    free(sb);
}

static void scanbuf_key_init(void)
{
    if (pthread_key_create(&scanbuf_key, scanbuf_free) != 0)
        abort(); /* Only when the process has run out of keys. */
}

/* Grow *p to at least n bytes (contents not kept). */
static bool grow(void *pp, size_t *cap, size_t n)
{
    void **p = pp;
    if (*cap >= n)
        return true;
    free(*p);
    *p = malloc(n);
    *cap = *p ? n : 0;
    return *p != NULL;
}

/* This thread's scan buffer, sized for b; NULL when busy or out of memory. */
static struct scanbuf *scanbuf_for(const struct block *b)
{
    if (!scanbuf) {
        pthread_once(&scanbuf_once, scanbuf_key_init);
        scanbuf = calloc(1, sizeof(*scanbuf));
        if (!scanbuf)
            return NULL;
        pthread_setspecific(scanbuf_key, scanbuf);
    }
    struct scanbuf *sb = scanbuf;
    if (sb->busy || !grow(&sb->frame, &sb->frame_cap, b->frame_len) ||
        !grow(&sb->cols, &sb->cols_cap, b->raw_len) ||
        !grow(&sb->rows, &sb->rows_cap, b->raw_len) ||
        !grow(&sb->offs, &sb->offs_cap, ((size_t)b->count + 1) * sizeof(uint32_t)))
        return NULL;
    return sb;
}

/* Let go of the scan buffer, shrinking it after a huge block. */
static void scanbuf_release(void)
{
    struct scanbuf *sb = scanbuf;
    sb->busy = false;
    if (sb->rows_cap > SCANBUF_KEEP || sb->frame_cap > SCANBUF_KEEP) {
        pthread_setspecific(scanbuf_key, NULL);
        scanbuf_free(sb);
        scanbuf = NULL;
    }
}

/* store_block_scan, and with lines_ok store_block_scan_lines. */
static int block_scan(struct store *s, const struct store_cursor *c, struct store_block *blk,
                      bool lines_ok)
{
    lc_assert(c->info != NULL);
    struct block *b = info_block(c->info);
    struct cblock *cb = cache_lookup(s, b);
    struct scanbuf *sb = NULL;
    if (cb) {
        *blk = (struct store_block){.first_id = b->first_id,
                                    .last_id = b->first_id + b->count - 1,
                                    .raw = cb->raw,
                                    .offs = cb->offs,
                                    .cb = cb};
        return 0;
    }
    /* A count over whole blocks (lines_ok) reads what it misses through its thread's buffer
     * even while the cache has room, and the token filter thread caches those blocks in idle
     * time (tokb_warm): filling the cache costs a page fault per 4 KiB of fresh memory, and in
     * this VM 3.2 GB of them took the first count over 20 M lines from 0.7 to 2.5 s. (Caching
     * every fourth block on the way, so that counts back to back fill it too, made that first
     * count 1.4 s.) Rows are cached on the way while there is room: a SEARCH fetches the rows
     * of its matches again afterwards, and would decompress their blocks twice. */
    bool room = cache_has_room(s, b);
    if ((room && !(lines_ok && tokb_warm(s, b))) || !(sb = scanbuf_for(b)))
        return store_block_open(s, c, blk); /* Cached after all. */
    struct frame_loc loc;
    int rc = block_locate(s, b, &loc);
    if (rc < 0) {
        scanbuf_release();
        *blk = (struct store_block){.raw = NULL};
        return rc == -ENOENT ? rc : -EIO;
    }
    struct frame_hdr h;
    size_t off = 0;
    bool loaded =
        frame_load(loc.fd, loc.offset, loc.len, b->count, b->raw_len, sb->frame, sb->cols, &h);
    close(loc.fd);
    bool lines = loaded && lines_ok &&
                 columns_lines(sb->cols, b->raw_len, b->count, (int)h.layout, &off) == 0;
    if (!loaded || (!lines && columns_to_rows_index(sb->cols, b->raw_len, b->count, (int)h.layout,
                                                    sb->rows, sb->offs) < 0)) {
        block_mark_bad(b);
        scanbuf_release();
        *blk = (struct store_block){.raw = NULL};
        return -EIO;
    }
    sb->busy = true;
    *blk = (struct store_block){.first_id = b->first_id,
                                .last_id = b->first_id + b->count - 1,
                                .raw = lines ? NULL : sb->rows,
                                .offs = lines ? NULL : sb->offs,
                                .lines = lines ? sb->cols + off : NULL,
                                .lines_len = lines ? b->raw_len - off : 0,
                                .scratch = true};
    return 0;
}

int store_block_scan(struct store *s, const struct store_cursor *c, struct store_block *blk)
{
    return block_scan(s, c, blk, false);
}

int store_block_scan_lines(struct store *s, const struct store_cursor *c, struct store_block *blk)
{
    return block_scan(s, c, blk, true);
}

void store_block_close(struct store *s, struct store_block *blk)
{
    if (blk->cb)
        cache_release(s, blk->cb);
    else if (blk->scratch)
        scanbuf_release();
    blk->cb = NULL;
    blk->scratch = false;
}

bool store_block_cached(struct store *s, const struct store_cursor *c)
{
    struct block *b = info_block(c->info);
    pthread_mutex_lock(&s->cache_mu);
    bool in = b->cache != NULL;
    pthread_mutex_unlock(&s->cache_mu);
    return in;
}

/* The first and last id held, 0 and 0 for none; list_lock held. */
static void id_range_locked(const struct store *s, uint64_t *first, uint64_t *last)
{
    *first = *last = 0;
    if (s->nblocks) {
        const struct block *b = s->blocks[s->nblocks - 1];
        *first = s->blocks[0]->first_id;
        *last = b->first_id + b->count - 1;
    }
}

void store_id_range(struct store *s, uint64_t *first, uint64_t *last)
{
    *first = *last = 0;
    if (!s)
        return;
    pthread_rwlock_rdlock(&s->list_lock);
    id_range_locked(s, first, last);
    pthread_rwlock_unlock(&s->list_lock);
}

void store_get_stats(struct store *s, struct store_stats *st)
{
    if (!s) { /* A cluster member has no store of its own. */
        memset(st, 0, sizeof(*st));
        st->last_fsync_us = -1;
        st->fsync_policy = "cluster";
        return;
    }
    memset(st, 0, sizeof(*st));
    pthread_rwlock_rdlock(&s->list_lock);
    st->blocks = s->nblocks;
    st->segments = s->nsegs;
    st->oldest_ts_ms = INT64_MAX;
    st->newest_ts_ms = INT64_MIN;
    for (size_t i = 0; i < s->nblocks; i++) {
        const struct block *b = s->blocks[i];
        st->entries += b->count;
        for (int l = 0; l < LC_LEVEL_COUNT; l++)
            st->per_level[l] += b->level_counts[l];
        st->raw_bytes += b->raw_len;
        st->tokens_pending += block_tokens_pending(b);
        if (b->min_ts < st->oldest_ts_ms)
            st->oldest_ts_ms = b->min_ts;
        if (b->max_ts > st->newest_ts_ms)
            st->newest_ts_ms = b->max_ts;
    }
    for (size_t i = 0; i < s->nsegs; i++) {
        st->disk_bytes += s->segs[i]->size;
        st->segments_archived += s->segs[i]->archived;
    }
    id_range_locked(s, &st->first_id, &st->last_id);
    if (!s->nblocks)
        st->oldest_ts_ms = st->newest_ts_ms = 0;
    pthread_rwlock_unlock(&s->list_lock);
    pthread_mutex_lock(&s->cache_mu);
    st->bytes = s->cache_bytes;
    pthread_mutex_unlock(&s->cache_mu);
    st->appended = atomic_load(&s->appended);
    st->evicted = atomic_load(&s->entries_deleted);
    st->segments_deleted = atomic_load(&s->segments_deleted);
    st->write_errors = atomic_load(&s->write_errors);
    st->failed_entries = atomic_load(&s->failed_entries);
    st->damaged_bytes = atomic_load(&s->damaged_bytes);
    st->last_fsync_us = atomic_load(&s->last_fsync_us);
    st->fsyncs = atomic_load(&s->fsyncs);
    st->pending_bytes = atomic_load(&s->pending_bytes);
    st->fsync_policy = s->cfg.fsync == FSYNC_ALWAYS  ? "always"
                       : s->cfg.fsync == FSYNC_BATCH ? "batch"
                                                     : "never";
    static __thread char err[sizeof(s->error)];
    pthread_mutex_lock(&s->err_mu);
    snprintf(err, sizeof(err), "%s", s->error);
    pthread_mutex_unlock(&s->err_mu);
    st->error = err[0] ? err : NULL;
}
