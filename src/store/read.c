/* read.c - readers: block cursors over the index, opened blocks, statistics.
 *
 * A cursor holds one block at a time, pinned (block->refs), and steps under list_lock for a
 * moment only; an opened block holds a reference on its decoded entries (cache.c). So no lock
 * is held while a reader looks at a summary or an entry. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "store/frame.h"
#include "store/store_internal.h"

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

static void block_info(const struct block *b, struct lc_block_info *bi)
{
    *bi = (struct lc_block_info){
        .first_id = b->first_id,
        .last_id = b->first_id + b->count - 1,
        .min_ts_ms = b->min_ts,
        .max_ts_ms = b->max_ts,
        .level_mask = b->level_mask,
        .filter = b->filter,
        .filter_log2 = b->filter_log2,
        .level_counts = b->level_counts,
    };
}

void store_cursor_init(struct store_cursor *c, uint64_t from_id, uint64_t to_id, bool forward)
{
    *c = (struct store_cursor){.from_id = from_id, .to_id = to_id, .forward = forward};
}

/* The position of the block that follows c's current one in its order, or of its first block;
 * SIZE_MAX when there is none. list_lock held. */
static size_t cursor_step(const struct store *s, const struct store_cursor *c)
{
    const struct block *cur = c->b;
    uint64_t id;
    if (cur && c->pos < s->nblocks && s->blocks[c->pos] == cur) { /* Nothing moved it. */
        if (c->forward)
            return c->pos + 1;
        return c->pos ? c->pos - 1 : SIZE_MAX;
    }
    if (!cur) {
        id = c->forward ? c->from_id : c->to_id;
    } else if (c->forward) {
        id = cur->first_id + cur->count; /* Its successor, wherever the list now has it. */
    } else {
        if (cur->first_id == 0)
            return SIZE_MAX;
        id = cur->first_id - 1;
    }
    size_t bi = block_find(s, id);
    if (!c->forward && (bi == s->nblocks || s->blocks[bi]->first_id > id))
        return bi ? bi - 1 : SIZE_MAX; /* The last block that starts at or before id. */
    return bi;
}

bool store_cursor_next(struct store *s, struct store_cursor *c)
{
    struct block *prev = c->b, *b = NULL;
    if (c->from_id <= c->to_id) {
        pthread_rwlock_rdlock(&s->list_lock);
        size_t bi = cursor_step(s, c);
        if (bi < s->nblocks) {
            b = s->blocks[bi];
            if (b->first_id > c->to_id || b->first_id + b->count - 1 < c->from_id)
                b = NULL; /* Past the range in the cursor's order. */
        }
        if (b) {
            __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
            c->pos = bi;
            block_info(b, &c->info);
            c->bad = __atomic_load_n(&b->bad, __ATOMIC_RELAXED);
        }
        pthread_rwlock_unlock(&s->list_lock);
    }
    c->b = b;
    if (prev)
        block_unref(prev);
    return b != NULL;
}

void store_cursor_end(struct store *s, struct store_cursor *c)
{
    if (c->b)
        block_unref(c->b);
    c->b = NULL;
}

int store_block_open(struct store *s, const struct store_cursor *c, struct store_block *blk)
{
    struct block *b = c->b;
    lc_assert(b != NULL);
    /* Under list_lock: retention cannot delete the block's file, nor the archiver swap it,
     * while it is read; and a block read is cached only while the index holds it. */
    pthread_rwlock_rdlock(&s->list_lock);
    struct cblock *cb = b->deleted ? NULL : cache_get(s, b);
    int rc = cb ? 0 : b->deleted ? -ENOENT : -EIO;
    pthread_rwlock_unlock(&s->list_lock);
    *blk = (struct store_block){
        .first_id = b->first_id, .last_id = b->first_id + b->count - 1, .cb = cb};
    return rc;
}

void store_block_entry(const struct store_block *blk, uint64_t id, struct lc_entry *e)
{
    lc_assert(id >= blk->first_id && id <= blk->last_id);
    const struct cblock *c = blk->cb;
    uint32_t i = (uint32_t)(id - blk->first_id);
    rec_get(c->raw + c->offs[i], c->offs[i + 1] - c->offs[i], e);
    e->id = id;
}

void store_block_close(struct store *s, struct store_block *blk)
{
    if (blk->cb)
        cache_release(s, blk->cb);
    blk->cb = NULL;
}

void store_get_stats(struct store *s, struct store_stats *st)
{
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
        if (b->min_ts < st->oldest_ts_ms)
            st->oldest_ts_ms = b->min_ts;
        if (b->max_ts > st->newest_ts_ms)
            st->newest_ts_ms = b->max_ts;
    }
    for (size_t i = 0; i < s->nsegs; i++) {
        st->disk_bytes += s->segs[i]->size;
        st->segments_archived += s->segs[i]->archived;
    }
    if (s->nblocks) {
        st->first_id = s->blocks[0]->first_id;
        st->last_id = s->blocks[s->nblocks - 1]->first_id + s->blocks[s->nblocks - 1]->count - 1;
    } else {
        st->oldest_ts_ms = st->newest_ts_ms = 0;
    }
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
