/* cache.c - blocks in memory: their summaries and lifetimes, recycled big buffers, and the
 * cache of decoded blocks.
 *
 * A block (block.h) is created by the writer or by recovery, published into the index, and
 * freed with its segment, when retention has deleted that and the last cursor on it has moved
 * on (segment.c). Its decoded entries (a cblock) live in an LRU cache bounded by
 * --memory-limit; a reader that opened them holds a reference, so eviction only unlinks them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "store/filter.h"
#include "store/frame.h"
#include "store/store_internal.h"
#include "store/tokfilter.h"
#include "store/valsum.h"

/* ------------------------------------------------------------------------------------------ */
/* Megabyte buffers (pending chunks, column scratch, cached blocks) are recycled: freshly mapped
 * memory costs a page fault per 4 KiB on first touch, and heap-allocated ones fragment. */

#define BIGBUF    (PCHUNK_TARGET + 256 * 1024)
#define POOL_KEEP 24

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static void *pool[POOL_KEEP];
static size_t npool;

/* A buffer of at least n bytes; pooled when n <= BIGBUF (give it back with bigbuf_put(p, n)). */
void *bigbuf_get(size_t n)
{
    if (n > BIGBUF)
        return malloc(n);
    pthread_mutex_lock(&pool_mu);
    void *p = npool ? pool[--npool] : NULL;
    pthread_mutex_unlock(&pool_mu);
    return p ? p : malloc(BIGBUF);
}

void bigbuf_put(void *p, size_t n)
{
    if (!p)
        return;
    if (n <= BIGBUF) {
        pthread_mutex_lock(&pool_mu);
        if (npool < POOL_KEEP) {
            pool[npool++] = p;
            p = NULL;
        }
        pthread_mutex_unlock(&pool_mu);
    }
    free(p);
}

void bigbuf_drain(void)
{
    pthread_mutex_lock(&pool_mu);
    while (npool)
        free(pool[--npool]);
    pthread_mutex_unlock(&pool_mu);
}

/* ------------------------------------------------------------------------------------------ */
/* The cache of decoded blocks. */

static void cblock_free(struct cblock *c)
{
    bigbuf_put(c->raw, c->raw_cap);
    free(c->offs);
    free(c);
}

static void lru_unlink(struct store *s, struct cblock *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->lru_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        s->lru_tail = c->prev;
    c->prev = c->next = NULL;
}

static void lru_push(struct store *s, struct cblock *c)
{
    c->next = s->lru_head;
    c->prev = NULL;
    if (s->lru_head)
        s->lru_head->prev = c;
    s->lru_head = c;
    if (!s->lru_tail)
        s->lru_tail = c;
}

static void lru_append(struct store *s, struct cblock *c)
{
    c->prev = s->lru_tail;
    c->next = NULL;
    if (s->lru_tail)
        s->lru_tail->next = c;
    else
        s->lru_head = c;
    s->lru_tail = c;
}

/* Drop a cached block from the cache (its memory goes when the last reader lets go). Called
 * with cache_mu held. */
static void cache_drop(struct store *s, struct cblock *c)
{
    lru_unlink(s, c);
    c->cached = false;
    c->owner->cache = NULL;
    s->cache_bytes -= c->bytes;
    if (--c->refs == 0)
        cblock_free(c);
}

/* Insert c for its block (cache_mu held), evicting least recently used blocks past the
 * budget. The newest block always stays. */
static void cache_insert(struct store *s, struct cblock *c)
{
    c->refs++;
    c->cached = true;
    c->owner->cache = c;
    lru_push(s, c);
    s->cache_bytes += c->bytes;
    while (s->cache_bytes > s->cfg.cache_size && s->lru_tail && s->lru_tail != c)
        cache_drop(s, s->lru_tail);
}

/* Cache the entries of a block the writer has just written (cache_mu not held). */
void cache_add_written(struct store *s, struct cblock *c)
{
    pthread_mutex_lock(&s->cache_mu);
    c->refs = 0;
    cache_insert(s, c);
    pthread_mutex_unlock(&s->cache_mu);
}

size_t cache_need(const struct block *b)
{
    return b->raw_len + ((size_t)b->count + 1) * sizeof(uint32_t) + sizeof(struct cblock);
}

static bool fits(struct store *s, const struct block *b) /* cache_mu held */
{
    return s->cache_bytes + cache_need(b) <= s->cfg.cache_size;
}

bool cache_has_room(struct store *s, const struct block *b)
{
    pthread_mutex_lock(&s->cache_mu);
    bool room = fits(s, b);
    pthread_mutex_unlock(&s->cache_mu);
    return room;
}

void cache_release(struct store *s, struct cblock *c)
{
    pthread_mutex_lock(&s->cache_mu);
    if (--c->refs == 0)
        cblock_free(c);
    pthread_mutex_unlock(&s->cache_mu);
}

/* offs: the rows' offsets if already known (taken over), or NULL to compute them. */
struct cblock *cblock_new(struct block *b, char *raw, size_t raw_cap, uint32_t *offs)
{
    struct cblock *c = calloc(1, sizeof(*c));
    bool known = offs != NULL;
    if (!known)
        offs = malloc(((size_t)b->count + 1) * sizeof(uint32_t));
    if (!c || !offs || (!known && payload_index(raw, b->raw_len, b->count, offs) < 0)) {
        free(c);
        if (!known) /* Offsets handed in stay the caller's until success. */
            free(offs);
        return NULL;
    }
    c->owner = b;
    c->raw = raw;
    c->raw_cap = raw_cap;
    c->offs = offs;
    c->bytes = cache_need(b);
    return c;
}

int block_locate(struct store *s, struct block *b, struct frame_loc *loc)
{
    pthread_rwlock_rdlock(&s->list_lock);
    bool deleted = b->deleted;
    *loc = (struct frame_loc){.fd = deleted ? -1 : fcntl(b->seg->fd, F_DUPFD_CLOEXEC, 0),
                              .offset = b->offset,
                              .len = b->frame_len};
    pthread_rwlock_unlock(&s->list_lock);
    if (deleted)
        return -ENOENT;
    return loc->fd < 0 ? -errno : 0;
}

void block_mark_bad(struct block *b)
{
    __atomic_store_n(&b->bad, true, __ATOMIC_RELAXED);
    log_error("store: block %" PRIu64 "..%" PRIu64 " in %s is unreadable or corrupt; "
              "skipping it",
              b->first_id, b->first_id + b->count - 1, b->seg->path);
}

bool block_decode(struct block *b, const struct frame_loc *loc, char *frame, char *cols, char *raw,
                  uint32_t *offs)
{
    struct frame_hdr h;
    if (frame_load(loc->fd, loc->offset, loc->len, b->count, b->raw_len, frame, cols, &h) &&
        columns_to_rows_index(cols, b->raw_len, b->count, (int)h.layout, raw, offs) == 0)
        return true;
    block_mark_bad(b);
    return false;
}

/* Read and decompress a block's frame into a new cached block (not yet inserted), or NULL
 * when unreadable (the block is then marked bad) or out of memory. */
static struct cblock *read_block(struct block *b, const struct frame_loc *loc)
{
    char *frame = malloc(loc->len);
    char *cols = bigbuf_get(b->raw_len);
    char *raw = bigbuf_get(b->raw_len);
    uint32_t *offs = malloc(((size_t)b->count + 1) * sizeof(uint32_t));
    struct cblock *c = NULL;
    if (frame && cols && raw && offs && block_decode(b, loc, frame, cols, raw, offs))
        c = cblock_new(b, raw, b->raw_len, offs);
    free(frame);
    bigbuf_put(cols, b->raw_len);
    if (!c) {
        bigbuf_put(raw, b->raw_len);
        free(offs);
    }
    return c;
}

struct cblock *cache_lookup(struct store *s, struct block *b)
{
    pthread_mutex_lock(&s->cache_mu);
    struct cblock *c = b->cache;
    if (c) {
        c->refs++;
        lru_unlink(s, c);
        lru_push(s, c);
    }
    pthread_mutex_unlock(&s->cache_mu);
    return c;
}

int cache_get(struct store *s, struct block *b, struct cblock **out)
{
    *out = cache_lookup(s, b);
    if (*out)
        return 0;
    struct frame_loc loc;
    int rc = block_locate(s, b, &loc);
    if (rc < 0)
        return rc == -ENOENT ? rc : -EIO;
    struct cblock *nc = read_block(b, &loc); /* No lock held: the file cannot go meanwhile. */
    close(loc.fd);
    if (!nc)
        return -EIO;
    pthread_mutex_lock(&s->cache_mu);
    struct cblock *c = b->cache;
    if (c) { /* Another reader got there first. */
        c->refs++;
        pthread_mutex_unlock(&s->cache_mu);
        cblock_free(nc);
        *out = c;
        return 0;
    }
    nc->refs = 1;
    /* Retention marks a block deleted before it uncaches it (under cache_mu): a block it has
     * taken off the index is never cached again, and this reader's copy goes with its release. */
    if (!__atomic_load_n(&b->deleted, __ATOMIC_ACQUIRE))
        cache_insert(s, nc);
    pthread_mutex_unlock(&s->cache_mu);
    *out = nc;
    return 0;
}

int cache_warm(struct store *s, struct block *b)
{
    pthread_mutex_lock(&s->cache_mu);
    bool skip = b->cache != NULL, room = fits(s, b);
    pthread_mutex_unlock(&s->cache_mu);
    if (skip || !room)
        return skip ? 0 : -ENOSPC;
    struct frame_loc loc;
    int rc = block_locate(s, b, &loc);
    if (rc < 0)
        return rc == -ENOENT ? rc : -EIO;
    struct cblock *nc = read_block(b, &loc);
    close(loc.fd);
    if (!nc)
        return -EIO;
    pthread_mutex_lock(&s->cache_mu);
    /* Checked again: a reader may have cached it, the writer filled the room, or retention
     * deleted it meanwhile. */
    rc = b->cache                                         ? 0
         : !fits(s, b)                                    ? -ENOSPC
         : __atomic_load_n(&b->deleted, __ATOMIC_ACQUIRE) ? -ENOENT
                                                          : 1;
    if (rc == 1) { /* At the tail: what queries opened and the writer wrote stay ahead of it. */
        nc->refs = 1;
        nc->cached = true;
        b->cache = nc;
        lru_append(s, nc);
        s->cache_bytes += nc->bytes;
        nc = NULL;
        rc = 0;
    }
    pthread_mutex_unlock(&s->cache_mu);
    if (nc)
        cblock_free(nc);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Blocks: summaries, the index, lifetimes. */

/* Fill a block's summary (time range, levels, trigram filter, token filter when asked) from its
 * columns. Returns 0, -EINVAL if they are malformed, or -ENOMEM. */
int block_summarize(struct block *b, const char *cols, int layout, bool tokens)
{
    struct col_summary cs;
    if (columns_summary(cols, b->raw_len, b->count, layout, &cs) < 0)
        return -EINVAL;
    b->min_ts = cs.min_ts;
    b->max_ts = cs.max_ts;
    b->level_mask = 0;
    for (int l = 0; l < LC_LEVEL_COUNT; l++) {
        b->level_counts[l] = cs.level_counts[l];
        if (cs.level_counts[l])
            b->level_mask |= 1u << l;
    }
    b->filter_log2 = filter_log2_for(b->raw_len);
    b->filter = calloc(1, ((size_t)1 << b->filter_log2) / 8);
    if (!b->filter)
        return -ENOMEM;
    /* Messages are contiguous in the columns: one pass (a trigram spanning two messages only
     * adds a harmless extra bit). */
    filter_add(b->filter, b->filter_log2, cs.msgs, cs.msgs_len);
    if (!tokens)
        return 0;
    struct valsum_input in;
    struct block_filters f;
    col_summary_input(&cs, b->count, &in);
    int rc = filters_build(&in, &f);
    if (rc == 0) {
        b->tokens = f.tokens;
        b->tokens_nbits = f.nbits;
        b->stripe_nbits = f.stripe_nbits;
        b->values = f.values;
        b->values_len = f.values_len;
    }
    return rc;
}

int ptrs_push(void ***arr, size_t *n, size_t *cap, void *p)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        void **a = realloc(*arr, nc * sizeof(void *));
        if (!a)
            return -ENOMEM;
        *arr = a;
        *cap = nc;
    }
    (*arr)[(*n)++] = p;
    return 0;
}

void block_set_info(struct block *b)
{
    b->info = (struct lc_block_info){
        .first_id = b->first_id,
        .last_id = b->first_id + b->count - 1,
        .min_ts_ms = b->min_ts,
        .max_ts_ms = b->max_ts,
        .level_mask = b->level_mask,
        .filter = b->filter,
        .filter_log2 = b->filter_log2,
        .tokens = b->tokens,
        .tokens_nbits = b->tokens_nbits,
        .stripe_nbits = b->stripe_nbits,
        .values = b->values,
        .values_len = b->values_len,
        .level_counts = b->level_counts,
    };
}

int block_publish(struct store *s, struct block *b)
{
    block_set_info(b);
    pthread_rwlock_wrlock(&s->list_lock);
    int rc = ptrs_push((void ***)&s->blocks, &s->nblocks, &s->capblocks, b);
    pthread_rwlock_unlock(&s->list_lock);
    return rc;
}

void block_uncache(struct store *s, struct block *b)
{
    pthread_mutex_lock(&s->cache_mu);
    if (b->cache)
        cache_drop(s, b->cache);
    pthread_mutex_unlock(&s->cache_mu);
}

void block_destroy(struct block *b)
{
    if (!b)
        return;
    free(b->filter);
    free(b->tokens);
    free(b->values);
    free(b);
}
