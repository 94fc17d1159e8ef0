/* disk.c - the durable store: a writer thread appending checksummed, compressed frames to
 * segment files, group commit, an in-memory block index with a cache of decompressed blocks,
 * recovery, retention.
 *
 * Data flow: reactors serialize entries into the pending queue (ids assigned in order, no
 * disk I/O); the writer thread takes the queue, writes one frame per pending chunk, fsyncs per
 * policy, publishes each frame as a block (queryable at once from the cache), then advances
 * done_id and tells its commit listener (the ingest pipeline) which ranges the run decided;
 * the pipeline pushes them to the reactors, which release the acknowledgements they cover.
 *
 * An archiver thread (--archive-level) rewrites sealed segments at a higher zstd level, frame
 * for frame, and swaps each new file in for the old one (see archive_segment).
 *
 * Readers walk the block index with a cursor and open the blocks they need (store.h); they
 * hold no lock between those calls, only references: a pinned block keeps its summary, an
 * opened one its decoded entries, whatever retention or the cache do meanwhile.
 *
 * Locks: q_mu guards the pending queue; list_lock (rw) guards the block and segment arrays,
 * held for reading while a cursor steps or a block is read from its file, and for writing only
 * to publish, delete or swap in an archived file; cache_mu guards the LRU, block->cache
 * pointers and cached blocks' reference counts; err_mu guards the current error message;
 * arch_mu guards the archiver threads' claims on segments (taken before list_lock). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/log.h"
#include "store/block.h"
#include "store/filter.h"
#include "store/frame.h"
#include "store/index.h"
#include "store/store.h"

/* A frame holds about this many raw bytes. Smaller frames compress a little worse (1.6% more
 * disk at zstd level 1) but a query that needs one line of a block decompresses less: the
 * cold rare-keyword query over 20M entries went from 96 ms to 25 ms going from 1 MiB to 256 KiB. */
#define PCHUNK_TARGET (1u << 18)
#define BACKLOG_MAX   (32u << 20) /* Pending bytes beyond which ingest pauses. */
#define FREE_CHECK_MS 250

struct segment {
    uint64_t first_id;
    bool removed;        /* Its file vanished under us: readable through fd, never written again. */
    bool archived;       /* Rewritten at --archive-level (the archiver's; see archive_segment). */
    bool archive_failed; /* The archiver could not read it whole: left as it is. */
    bool archiving;      /* An archiver thread is on it. */
    int64_t archive_after; /* Put off until then (mono ms) after a transient failure. */
    int fd;
    uint64_t size;      /* Valid bytes (header + whole frames). */
    uint64_t indexed;   /* Bytes covered by its index file; 0 = none. */
    uint64_t raw_bytes; /* Serialized records in it. */
    int64_t max_ts;
    uint64_t entries;
    char path[4096];
};

struct cblock {
    struct block *owner;
    char *raw;
    size_t raw_cap; /* What raw was allocated for (bigbuf_put). */
    uint32_t *offs; /* count + 1 record offsets. */
    size_t bytes;
    int refs; /* Under cache_mu; the cache itself holds one. */
    bool cached;
    struct cblock *prev, *next; /* LRU, most recent at head. */
};

/* A pending chunk goes OPEN (reactors append) -> SEALED (full, or taken by the idle writer)
 * -> ENCODING (a thread builds its frame) -> ENCODED (the writer may write it, in order). */
enum { PC_OPEN, PC_SEALED, PC_ENCODING, PC_ENCODED };

struct pchunk {
    char *buf; /* Rows. */
    size_t len, cap;
    uint64_t first_id;
    uint32_t count;
    int state;
    struct block *b; /* ENCODED: summary, filter; NULL if encoding failed. */
    uint32_t *offs;  /* ENCODED: the rows' offsets, for the cache. */
    char *frame;     /* ENCODED: the frame to write (a bigbuf of fcap bytes). */
    size_t flen, fcap;
    struct pchunk *next;
};

struct store {
    struct store_config cfg;
    char dir[2048];

    /* Pending queue. */
    pthread_mutex_t q_mu;
    pthread_cond_t q_cond;
    struct pchunk *q_head, *q_tail;
    _Atomic uint64_t pending_bytes;
    uint64_t next_id;
    bool stopping;
    pthread_t writer;
    bool writer_started;
    pthread_t encoders[8]; /* Extra threads building frames alongside the writer. */
    int nencoders;

    /* The archiver. */
    pthread_mutex_t arch_mu;
    pthread_cond_t arch_cond;
    pthread_t archivers[4]; /* One per core: they take only idle CPU (nice 19). */
    int narchivers;
    _Atomic bool arch_stop;

    /* Progress seen by reactors. */
    _Atomic uint64_t done_id;
    store_commit_fn on_commit; /* Told each write run's decided ranges (writer thread). */
    void *on_commit_arg;
    struct store_range *run; /* The ranges of the current write run. */
    size_t nrun, caprun;

    /* Blocks and segments. */
    pthread_rwlock_t list_lock;
    struct block **blocks;
    size_t nblocks, capblocks;
    struct segment **segs;
    size_t nsegs, capsegs;

    /* Cache. */
    pthread_mutex_t cache_mu;
    struct cblock *lru_head, *lru_tail;
    size_t cache_bytes;

    /* Writer-only state. */
    bool dirty; /* Written since the last fsync. */
    int64_t last_sync_ms;
    int64_t last_free_check;
    bool disk_low;
    pthread_mutex_t err_mu;
    char error[160]; /* Current write problem; under err_mu. */

    /* Statistics (atomics: read by STATS from any thread). */
    _Atomic uint64_t appended, segments_deleted, entries_deleted, write_errors, failed_entries,
        damaged_bytes, fsyncs;
    _Atomic int64_t last_fsync_us;
};

/* ------------------------------------------------------------------------------------------ */
/* Megabyte buffers (pending chunks, column scratch, cached blocks) are recycled: freshly mapped
 * memory costs a page fault per 4 KiB on first touch, and heap-allocated ones fragment. */

#define BIGBUF    (PCHUNK_TARGET + 256 * 1024)
#define POOL_KEEP 24

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static void *pool[POOL_KEEP];
static size_t npool;

/* A buffer of at least n bytes; pooled when n <= BIGBUF (give it back with bigbuf_put(p, n)). */
static void *bigbuf_get(size_t n)
{
    if (n > BIGBUF)
        return malloc(n);
    pthread_mutex_lock(&pool_mu);
    void *p = npool ? pool[--npool] : NULL;
    pthread_mutex_unlock(&pool_mu);
    return p ? p : malloc(BIGBUF);
}

static void bigbuf_put(void *p, size_t n)
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

static void bigbuf_drain(void)
{
    pthread_mutex_lock(&pool_mu);
    while (npool)
        free(pool[--npool]);
    pthread_mutex_unlock(&pool_mu);
}

static size_t find_block(const struct store *s, uint64_t id);

/* ------------------------------------------------------------------------------------------ */
/* Small helpers. */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void set_error(struct store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct store *s, const char *fmt, ...)
{
    char msg[sizeof(s->error)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s->err_mu);
    bool changed = strcmp(msg, s->error) != 0;
    snprintf(s->error, sizeof(s->error), "%s", msg);
    pthread_mutex_unlock(&s->err_mu);
    if (changed) /* Log a problem once, not once per batch. */
        log_error("store: %s", msg);
}

static void clear_error(struct store *s)
{
    pthread_mutex_lock(&s->err_mu);
    bool had = s->error[0] != 0;
    s->error[0] = 0;
    pthread_mutex_unlock(&s->err_mu);
    if (had)
        log_info("store: writing again");
}

/* Write all of p[0..n) at off. Returns 0 or -errno (-EIO when the write made no progress). */
static int write_all(int fd, const char *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Make renames and new names in the data directory durable. */
static void fsync_dir(const struct store *s)
{
    int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

static void seg_path(const struct store *s, uint64_t first_id, const char *ext, char *out, size_t n)
{
    snprintf(out, n, "%s/%020" PRIu64 ".%s", s->dir, first_id, ext);
}

void store_on_commit(struct store *s, store_commit_fn fn, void *arg)
{
    s->on_commit = fn;
    s->on_commit_arg = arg;
}

/* Note that [lo, hi] was decided in this write run, merging it into the run's last range when
 * it continues it with the same fate. Out of memory, it merges anyway, and a failure wins: an
 * error may then be reported for lines that were stored, never success for lost ones. */
static void run_note(struct store *s, uint64_t lo, uint64_t hi, bool failed)
{
    struct store_range *last = s->nrun ? &s->run[s->nrun - 1] : NULL;
    if (last && last->hi + 1 == lo && last->failed == failed) {
        last->hi = hi;
        return;
    }
    if (s->nrun == s->caprun) {
        size_t cap = s->caprun ? 2 * s->caprun : 16;
        struct store_range *grown = realloc(s->run, cap * sizeof(*grown));
        if (!grown && last) {
            last->hi = hi;
            last->failed |= failed;
            return;
        }
        if (!grown)
            abort(); /* Not even 16 ranges: nothing can be acknowledged. */
        s->run = grown;
        s->caprun = cap;
    }
    s->run[s->nrun++] = (struct store_range){lo, hi, failed};
}

/* ------------------------------------------------------------------------------------------ */
/* Block summaries and the cache. */

/* Fill a block's summary (time range, levels, trigram filter) from its columns. Returns 0,
 * -EINVAL if they are malformed, or -ENOMEM. */
static int summarize(struct block *b, const char *cols, int layout)
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
    return 0;
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

static void cache_release(struct store *s, struct cblock *c)
{
    pthread_mutex_lock(&s->cache_mu);
    if (--c->refs == 0)
        cblock_free(c);
    pthread_mutex_unlock(&s->cache_mu);
}

/* offs: the rows' offsets if already known (taken over), or NULL to compute them. */
static struct cblock *cblock_new(struct block *b, char *raw, size_t raw_cap, uint32_t *offs)
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
    c->bytes = b->raw_len + ((size_t)b->count + 1) * sizeof(uint32_t) + sizeof(*c);
    return c;
}

/* Read the frame of len bytes at off into frame and decompress its columns into cols,
 * checking it is whole and the one expected (count entries, raw_len bytes). */
static bool load_frame(int fd, uint64_t off, uint32_t len, uint32_t count, uint32_t raw_len,
                       char *frame, char *cols, struct frame_hdr *h)
{
    return pread(fd, frame, len, (off_t)off) == (ssize_t)len && frame_parse_header(frame, h) == 0 &&
           FRAME_HDR_LEN + (size_t)h->payload_len == len && frame_verify(h, frame) &&
           h->raw_len == raw_len && h->count == count && frame_decode(h, frame, cols) == 0;
}

/* Read and decompress a block's frame. Returns the raw payload (malloc'ed) or NULL. */
static char *read_block(struct store *s, struct block *b)
{
    char *frame = malloc(b->frame_len);
    char *cols = bigbuf_get(b->raw_len);
    char *raw = bigbuf_get(b->raw_len);
    struct frame_hdr h;
    bool ok =
        frame && raw && cols &&
        load_frame(b->seg->fd, b->offset, b->frame_len, b->count, b->raw_len, frame, cols, &h) &&
        columns_to_rows(cols, b->raw_len, b->count, (int)h.layout, raw) == 0;
    bigbuf_put(cols, b->raw_len);
    if (!ok) {
        __atomic_store_n(&b->bad, true, __ATOMIC_RELAXED);
        log_error("store: block %" PRIu64 "..%" PRIu64 " in %s is unreadable or corrupt; "
                  "skipping it",
                  b->first_id, b->first_id + b->count - 1, b->seg->path);
        free(frame);
        bigbuf_put(raw, b->raw_len);
        return NULL;
    }
    (void)s;
    free(frame);
    return raw;
}

/* A referenced decompressed block (release with cache_release), or NULL if unreadable. */
static struct cblock *block_get(struct store *s, struct block *b)
{
    pthread_mutex_lock(&s->cache_mu);
    struct cblock *c = b->cache;
    if (c) {
        c->refs++;
        lru_unlink(s, c);
        lru_push(s, c);
        pthread_mutex_unlock(&s->cache_mu);
        return c;
    }
    pthread_mutex_unlock(&s->cache_mu);
    char *raw = read_block(s, b);
    if (!raw)
        return NULL;
    struct cblock *nc = cblock_new(b, raw, b->raw_len, NULL);
    if (!nc) {
        bigbuf_put(raw, b->raw_len);
        return NULL;
    }
    pthread_mutex_lock(&s->cache_mu);
    if (b->cache) { /* Another reader got there first. */
        c = b->cache;
        c->refs++;
        pthread_mutex_unlock(&s->cache_mu);
        cblock_free(nc);
        return c;
    }
    nc->refs = 1;
    cache_insert(s, nc);
    pthread_mutex_unlock(&s->cache_mu);
    return nc;
}

/* ------------------------------------------------------------------------------------------ */
/* Publishing and deleting (list_lock held for writing by the caller where noted). */

static int push_ptr(void ***arr, size_t *n, size_t *cap, void *p)
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

static int publish_block(struct store *s, struct block *b)
{
    pthread_rwlock_wrlock(&s->list_lock);
    int rc = push_ptr((void ***)&s->blocks, &s->nblocks, &s->capblocks, b);
    pthread_rwlock_unlock(&s->list_lock);
    return rc;
}

/* Let go of a reference to a published block; the last one frees it. */
static void block_unref(struct block *b)
{
    if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        free(b->filter);
        free(b);
    }
}

/* A block taken off the index: its cached entries go now (readers that opened them keep
 * theirs), its summary when the last cursor on it moves on. */
static void block_free(struct store *s, struct block *b)
{
    pthread_mutex_lock(&s->cache_mu);
    if (b->cache)
        cache_drop(s, b->cache);
    pthread_mutex_unlock(&s->cache_mu);
    block_unref(b);
}

/* Delete the oldest segment with its blocks and files. Never the active (last) one. */
static void delete_oldest_segment(struct store *s, const char *why)
{
    pthread_rwlock_wrlock(&s->list_lock);
    if (s->nsegs < 2) {
        pthread_rwlock_unlock(&s->list_lock);
        return;
    }
    struct segment *seg = s->segs[0];
    size_t nb = 0;
    while (nb < s->nblocks && s->blocks[nb]->seg == seg)
        nb++;
    struct block **gone = malloc((nb ? nb : 1) * sizeof(*gone));
    if (!gone) {
        pthread_rwlock_unlock(&s->list_lock);
        return;
    }
    memcpy(gone, s->blocks, nb * sizeof(*gone));
    for (size_t i = 0; i < nb; i++)
        gone[i]->deleted = true; /* Its file goes below: a cursor holding it must not read. */
    memmove(s->blocks, s->blocks + nb, (s->nblocks - nb) * sizeof(*s->blocks));
    s->nblocks -= nb;
    memmove(s->segs, s->segs + 1, (s->nsegs - 1) * sizeof(*s->segs));
    s->nsegs--;
    pthread_rwlock_unlock(&s->list_lock);
    for (size_t i = 0; i < nb; i++)
        block_free(s, gone[i]);
    free(gone);
    close(seg->fd);
    char idx[4200];
    seg_path(s, seg->first_id, "idx", idx, sizeof(idx));
    if (unlink(seg->path) < 0 && errno != ENOENT)
        log_warn("store: removing %s: %s", seg->path, strerror(errno));
    unlink(idx);
    log_info("store: deleted segment %s (%s): %" PRIu64 " entries, %" PRIu64 " bytes", seg->path,
             why, seg->entries, seg->size);
    atomic_fetch_add(&s->segments_deleted, 1);
    atomic_fetch_add(&s->entries_deleted, seg->entries);
    free(seg);
}

/* ------------------------------------------------------------------------------------------ */
/* Segments. */

static struct segment *segment_create(struct store *s, uint64_t first_id)
{
    struct segment *seg = calloc(1, sizeof(*seg));
    if (!seg)
        return NULL;
    seg->first_id = first_id;
    seg->max_ts = INT64_MIN;
    seg_path(s, first_id, "seg", seg->path, sizeof(seg->path));
    if (mkdir(s->dir, 0750) < 0 && errno != EEXIST) {
        set_error(s, "cannot create %s: %s", s->dir, strerror(errno));
        free(seg);
        return NULL;
    }
    seg->fd = open(seg->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (seg->fd < 0) {
        set_error(s, "cannot create %s: %s", seg->path, strerror(errno));
        free(seg);
        return NULL;
    }
    if (pwrite(seg->fd, seg_magic, SEG_HDR_LEN, 0) != SEG_HDR_LEN) {
        set_error(s, "cannot write %s: %s", seg->path, strerror(errno));
        close(seg->fd);
        unlink(seg->path);
        free(seg);
        return NULL;
    }
    seg->size = SEG_HDR_LEN;
    fsync_dir(s); /* The new file's name too, so fsync'ed frames in it can be found. */
    return seg;
}

static struct segment *active_segment(struct store *s)
{
    return s->nsegs ? s->segs[s->nsegs - 1] : NULL;
}

static int add_segment(struct store *s, struct segment *seg)
{
    pthread_rwlock_wrlock(&s->list_lock);
    int rc = push_ptr((void ***)&s->segs, &s->nsegs, &s->capsegs, seg);
    pthread_rwlock_unlock(&s->list_lock);
    return rc;
}

static int do_fsync(struct store *s, struct segment *seg)
{
    int64_t t0 = mono_us();
    int rc = 0;
    if (fdatasync(seg->fd) < 0) {
        rc = -errno;
        set_error(s, "fsync %s: %s", seg->path, strerror(errno));
    }
    atomic_store(&s->last_fsync_us, mono_us() - t0);
    atomic_fetch_add(&s->fsyncs, 1);
    s->dirty = false;
    s->last_sync_ms = mono_ms();
    return rc;
}

/* Write the index of a segment's blocks (all of them, up to seg->size). */
static void write_index(struct store *s, struct segment *seg)
{
    if (seg->removed)
        return;
    pthread_rwlock_rdlock(&s->list_lock);
    struct block **mine = malloc((s->nblocks ? s->nblocks : 1) * sizeof(*mine));
    size_t n = 0;
    for (size_t i = 0; mine && i < s->nblocks; i++)
        if (s->blocks[i]->seg == seg)
            mine[n++] = s->blocks[i];
    char path[4200];
    seg_path(s, seg->first_id, "idx", path, sizeof(path));
    int rc = mine ? index_write(path, seg->size, mine, n) : -ENOMEM;
    pthread_rwlock_unlock(&s->list_lock);
    free(mine);
    if (rc < 0)
        log_warn("store: cannot write index %s: %s (it will be rebuilt at start-up)", path,
                 strerror(-rc));
    else
        seg->indexed = seg->size;
}

static void retention(struct store *s);

/* Seal the active segment once it is full: fsync it, index it, start the next. */
/* next_first: the first id of the next chunk the caller will write, or 0 to take it from the
 * queue. A segment is named after the first id it will hold. */
static void maybe_roll(struct store *s, uint64_t next_first)
{
    struct segment *seg = active_segment(s);
    if (seg && seg->size < s->cfg.segment_size && !seg->removed)
        return;
    if (seg && !seg->removed) {
        do_fsync(s, seg);
        write_index(s, seg);
    }
    uint64_t next = next_first;
    if (!next) {
        pthread_mutex_lock(&s->q_mu);
        next = s->q_head ? s->q_head->first_id : s->next_id;
        pthread_mutex_unlock(&s->q_mu);
    }
    struct segment *ns = segment_create(s, next);
    if (ns && add_segment(s, ns) < 0) {
        close(ns->fd);
        free(ns);
    }
    if (seg)
        pthread_cond_signal(&s->arch_cond); /* One more sealed segment to archive. */
    if (seg)
        retention(s); /* Sizes only grow a segment at a time: check each time one is sealed. */
}

/* ------------------------------------------------------------------------------------------ */
/* Retention and disk space. */

static uint64_t disk_total(struct store *s)
{
    uint64_t t = 0;
    pthread_rwlock_rdlock(&s->list_lock);
    for (size_t i = 0; i < s->nsegs; i++)
        t += s->segs[i]->size;
    pthread_rwlock_unlock(&s->list_lock);
    return t;
}

static uint64_t disk_free(struct store *s)
{
    struct statvfs v;
    if (statvfs(s->dir, &v) < 0)
        return UINT64_MAX;
    return (uint64_t)v.f_bavail * v.f_frsize;
}

static void retention(struct store *s)
{
    const struct store_config *c = &s->cfg;
    while (c->retention_size && s->nsegs > 1 && disk_total(s) > c->retention_size)
        delete_oldest_segment(s, "retention-size");
    if (c->retention_age_ms) {
        int64_t cutoff = now_ms() - c->retention_age_ms;
        while (s->nsegs > 1 && s->segs[0]->max_ts < cutoff)
            delete_oldest_segment(s, "retention-age");
    }
    if (c->retention_min_free) {
        while (s->nsegs > 1 && disk_free(s) < c->retention_min_free)
            delete_oldest_segment(s, "retention-min-free");
        s->disk_low = disk_free(s) < c->retention_min_free;
        if (s->disk_low)
            set_error(s,
                      "less than --retention-min-free (%" PRIu64 " bytes) free in %s; "
                      "refusing writes until space returns",
                      c->retention_min_free, s->dir);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The writer. */

/* Count a failed batch for the statistics; its ids reach the commit listener through the
 * write run (run_note). */
static void mark_failed(struct store *s, uint64_t lo, uint64_t hi)
{
    atomic_fetch_add(&s->write_errors, 1);
    atomic_fetch_add(&s->failed_entries, hi - lo + 1);
}

/* Build a sealed chunk's block summary and frame (any thread, no lock held). */
static void encode_chunk(struct store *s, struct pchunk *p)
{
    struct block *b = calloc(1, sizeof(*b));
    char *cols = bigbuf_get(p->len);
    int rc = b && cols ? 0 : -ENOMEM;
    if (rc == 0) {
        b->refs = 1; /* The index's, once published. */
        b->first_id = p->first_id;
        b->count = p->count;
        b->raw_len = (uint32_t)p->len;
        p->offs = malloc(((size_t)p->count + 1) * sizeof(uint32_t));
        rc = p->offs ? rows_to_columns(p->buf, p->len, p->count, cols, p->offs) : -ENOMEM;
    }
    int layout = rc;
    if (rc >= 0)
        rc = summarize(b, cols, layout);
    if (rc == 0) {
        p->fcap = frame_bound(p->len);
        p->frame = bigbuf_get(p->fcap);
        rc = p->frame ? frame_encode(cols, p->len, p->first_id, p->count, s->cfg.compression_level,
                                     layout, p->frame, p->fcap, &p->flen)
                      : -ENOMEM;
    }
    bigbuf_put(cols, p->len);
    if (rc < 0) {
        log_error("store: cannot encode entries %" PRIu64 "..%" PRIu64 ": %s", p->first_id,
                  p->first_id + p->count - 1, strerror(-rc));
        if (b)
            free(b->filter);
        free(b);
        b = NULL;
    }
    p->b = b;
}

/* Write an encoded chunk's frame to the active segment and publish its block (writer thread
 * only). Returns 0, or -1 if it could not be stored (its ids are then marked failed). */
static int write_chunk(struct store *s, struct pchunk *p)
{
    struct segment *seg = active_segment(s);
    struct block *b = p->b;
    if (!b)
        goto fail;
    if (!seg || seg->removed || s->disk_low) {
        if (!seg || seg->removed)
            set_error(s, "no segment to write to in %s", s->dir);
        goto fail;
    }
    int wrc = write_all(seg->fd, p->frame, p->flen, seg->size);
    if (wrc < 0) {
        set_error(s, "cannot write %s: %s", seg->path, strerror(-wrc));
        /* Leave no partial frame behind: the file ends with whole frames only. */
        if (ftruncate(seg->fd, (off_t)seg->size) < 0)
            log_warn("store: ftruncate %s: %s", seg->path, strerror(errno));
        goto fail;
    }
    /* A segment deleted under us would take acknowledged data with it: check before acking. */
    struct stat st;
    if (fstat(seg->fd, &st) == 0 && st.st_nlink == 0) {
        set_error(s, "%s was removed while in use; starting a new segment", seg->path);
        seg->removed = true; /* Its blocks stay readable through the open file. */
        if (ftruncate(seg->fd, (off_t)seg->size) < 0)
            log_warn("store: ftruncate %s: %s", seg->path, strerror(errno));
        goto fail;
    }
    struct cblock *c = cblock_new(b, p->buf, p->cap, p->offs);
    if (c)
        p->offs = NULL; /* Taken over with the rows. */
    if (!c) {
        if (ftruncate(seg->fd, (off_t)seg->size) < 0)
            log_warn("store: ftruncate %s: %s", seg->path, strerror(errno));
        goto fail;
    }
    p->buf = NULL; /* Now owned by the cache. */
    p->b = NULL;
    b->seg = seg;
    b->offset = seg->size;
    b->frame_len = (uint32_t)p->flen;
    seg->size += p->flen;
    seg->raw_bytes += b->raw_len;
    seg->entries += b->count;
    if (b->max_ts > seg->max_ts)
        seg->max_ts = b->max_ts;
    s->dirty = true;
    pthread_mutex_lock(&s->cache_mu);
    c->refs = 0;
    cache_insert(s, c);
    pthread_mutex_unlock(&s->cache_mu);
    if (publish_block(s, b) < 0)
        log_error("store: out of memory publishing a block");
    return 0;
fail:
    mark_failed(s, p->first_id, p->first_id + p->count - 1);
    return -1;
}

static void pchunk_free(struct store *s, struct pchunk *p)
{
    atomic_fetch_sub(&s->pending_bytes, p->len + sizeof(*p));
    if (p->b)
        free(p->b->filter);
    free(p->b);
    bigbuf_put(p->frame, p->fcap);
    free(p->offs);
    bigbuf_put(p->buf, p->cap);
    free(p);
}

/* The first sealed chunk, now marked ENCODING; with seal_open, the open tail is sealed and
 * taken when nothing else waits (an idle writer does not wait for a chunk to fill). q_mu
 * held. */
static struct pchunk *take_for_encoding(struct store *s, bool seal_open)
{
    for (struct pchunk *p = s->q_head; p; p = p->next) {
        if (p->state == PC_SEALED || (seal_open && p->state == PC_OPEN && !p->next)) {
            p->state = PC_ENCODING;
            return p;
        }
    }
    return NULL;
}

static void *encoder_main(void *arg)
{
    struct store *s = arg;
    pthread_mutex_lock(&s->q_mu);
    while (!s->stopping) {
        struct pchunk *p = take_for_encoding(s, false);
        if (!p) {
            pthread_cond_wait(&s->q_cond, &s->q_mu);
            continue;
        }
        pthread_mutex_unlock(&s->q_mu);
        encode_chunk(s, p);
        pthread_mutex_lock(&s->q_mu);
        p->state = PC_ENCODED;
        pthread_cond_broadcast(&s->q_cond);
    }
    pthread_mutex_unlock(&s->q_mu);
    return NULL;
}

/* Periodic duties: retention and disk space, a due batch fsync. Writer thread, no lock. */
/* Write the index of a sealed segment that lacks one (the archiver swapped its file), or of
 * every such segment. Writer thread: the only one that deletes segments, so a segment stays
 * while it is indexed. */
static void index_sealed(struct store *s, bool all)
{
    for (;;) {
        struct segment *todo = NULL;
        pthread_rwlock_rdlock(&s->list_lock);
        for (size_t i = 0; i + 1 < s->nsegs && !todo; i++)
            if (s->segs[i]->indexed != s->segs[i]->size && s->segs[i]->entries &&
                !s->segs[i]->removed)
                todo = s->segs[i];
        pthread_rwlock_unlock(&s->list_lock);
        if (!todo)
            return;
        write_index(s, todo);
        if (!all || todo->indexed != todo->size) /* One a round; or it failed (logged). */
            return;
    }
}

static void writer_duties(struct store *s)
{
    if (mono_ms() - s->last_free_check >= FREE_CHECK_MS) {
        s->last_free_check = mono_ms();
        retention(s);
        index_sealed(s, false);
    }
    maybe_roll(s, 0);
    struct segment *seg = active_segment(s);
    if (seg && s->dirty && s->cfg.fsync == FSYNC_BATCH &&
        mono_ms() - s->last_sync_ms >= s->cfg.fsync_interval_ms)
        do_fsync(s, seg);
}

/* Write a run of encoded chunks in order, fsync per policy, then acknowledge them. */
static void write_run(struct store *s, struct pchunk *list)
{
    bool any_ok = false, any_failed = false;
    uint64_t first_id = list->first_id, last_id = 0;
    s->nrun = 0;
    for (struct pchunk *p = list, *next; p; p = next) {
        next = p->next;
        bool ok = write_chunk(s, p) == 0;
        if (ok)
            any_ok = true;
        else
            any_failed = true;
        last_id = p->first_id + p->count - 1;
        run_note(s, p->first_id, last_id, !ok);
        pchunk_free(s, p);
        maybe_roll(s, next ? next->first_id : last_id + 1);
    }
    struct segment *seg = active_segment(s);
    /* Under "always" an acknowledgement promises the fsync: if it failed, so did the lines. */
    if (seg && s->dirty && s->cfg.fsync == FSYNC_ALWAYS && do_fsync(s, seg) < 0 && any_ok) {
        mark_failed(s, first_id, last_id);
        s->nrun = 0;
        run_note(s, first_id, last_id, true);
    }
    if (any_ok && !any_failed && !s->disk_low)
        clear_error(s);
    atomic_store(&s->done_id, last_id);
    if (s->on_commit)
        s->on_commit(s->on_commit_arg, s->run, s->nrun);
}

static void *writer_main(void *arg)
{
    struct store *s = arg;
    pthread_mutex_lock(&s->q_mu);
    for (;;) {
        /* 1. Write what is encoded, in id order. */
        if (s->q_head && s->q_head->state == PC_ENCODED) {
            struct pchunk *list = s->q_head, *last = list;
            while (last->next && last->next->state == PC_ENCODED)
                last = last->next;
            s->q_head = last->next;
            if (!s->q_head)
                s->q_tail = NULL;
            last->next = NULL;
            pthread_mutex_unlock(&s->q_mu);
            write_run(s, list);
            writer_duties(s);
            pthread_mutex_lock(&s->q_mu);
            continue;
        }
        /* 2. Encode, sealing the open tail if nothing else is waiting for this thread. */
        struct pchunk *p = take_for_encoding(s, true);
        if (p) {
            pthread_mutex_unlock(&s->q_mu);
            encode_chunk(s, p);
            pthread_mutex_lock(&s->q_mu);
            p->state = PC_ENCODED;
            pthread_cond_broadcast(&s->q_cond);
            continue;
        }
        if (s->stopping && !s->q_head)
            break;
        /* 3. Wait for work, an encoder, or the next periodic duty. */
        int64_t wait_ms = FREE_CHECK_MS;
        if (s->dirty && s->cfg.fsync == FSYNC_BATCH) {
            int64_t due = s->last_sync_ms + s->cfg.fsync_interval_ms - mono_ms();
            if (due < wait_ms)
                wait_ms = due;
        }
        if (wait_ms > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += wait_ms / 1000;
            ts.tv_nsec += (wait_ms % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&s->q_cond, &s->q_mu, &ts);
        }
        pthread_mutex_unlock(&s->q_mu);
        writer_duties(s);
        pthread_mutex_lock(&s->q_mu);
    }
    pthread_mutex_unlock(&s->q_mu);
    struct segment *seg = active_segment(s);
    if (seg) {
        do_fsync(s, seg);
        write_index(s, seg); /* A clean stop leaves nothing to rebuild at the next start. */
    }
    index_sealed(s, true); /* The archivers have stopped (store_close). */
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* The archiver: sealed segments rewritten at --archive-level.
 *
 * Frames are written at a fast level so ingest keeps up; once a segment is sealed, low
 * priority threads re-compress each of its frames at the archive level into NAME.arch (same
 * ids, same blocks, only smaller; frames of the older COL_LENGTHS layout become COL_LINES where
 * they can), fsync it, and rename it over the segment. The swap is atomic for every reader: a
 * crash leaves either the old file or the new one, both whole, and the index is removed before
 * the rename, so a stale one is never read. The writer thread writes the new index (it is the
 * only thread that deletes segments, so the segment cannot go from under it).
 *
 * The archive-only segment fields (archiving, archive_failed, archive_after) are read and
 * written under arch_mu with list_lock held; the segment's file fields under list_lock. */

#define ARCHIVE_RETRY_MS    30000       /* After a transient failure (space, memory, files). */
#define ARCHIVE_SPACE_SLACK (16u << 20) /* Free space kept beyond the copy and min-free. */
#define ARCHIVE_CHECK_EVERY 32          /* Frames between checks that the segment is still held. */
#define ARCHIVE_BUSY_BYTES  (4u << 20)  /* Pending ingest beyond which no segment is started. */

struct arch_frame {
    uint64_t first_id;
    uint32_t count, raw_len;
    uint64_t offset, new_offset;
    uint32_t frame_len, new_len;
};

/* The segment whose first id is first_id, if it is held and sealed; list_lock held. */
static struct segment *sealed_segment(struct store *s, uint64_t first_id)
{
    for (size_t i = 0; i + 1 < s->nsegs; i++)
        if (s->segs[i]->first_id == first_id)
            return s->segs[i];
    return NULL;
}

/* Whether the segment is still held (retention may delete it meanwhile). */
static bool segment_held(struct store *s, uint64_t first_id)
{
    pthread_rwlock_rdlock(&s->list_lock);
    bool held = sealed_segment(s, first_id) != NULL;
    pthread_rwlock_unlock(&s->list_lock);
    return held;
}

/* Take one sealed segment to archive (arch_mu and list_lock held): its frames, and a file
 * descriptor of its own. NULL when it cannot be taken now; it may be marked failed or put off. */
static struct arch_frame *archive_take(struct store *s, struct segment *seg, uint64_t free_bytes,
                                       size_t *n, int *fd)
{
    int64_t now = mono_ms();
    /* Its copy must fit beside --retention-min-free: archiving must never make retention delete
     * data, nor take the space ingest needs. */
    if (free_bytes < s->cfg.retention_min_free + seg->size + ARCHIVE_SPACE_SLACK) {
        seg->archive_after = now + ARCHIVE_RETRY_MS;
        return NULL;
    }
    size_t bi = find_block(s, seg->first_id), k = 0;
    uint64_t entries = 0;
    while (bi + k < s->nblocks && s->blocks[bi + k]->seg == seg)
        entries += s->blocks[bi + k++]->count;
    if (k == 0 || entries != seg->entries) {
        /* A frame on disk has no block (never published): rewriting would drop it. */
        log_warn("store: %s holds frames the index lacks; not archiving it", seg->path);
        seg->archive_failed = true;
        return NULL;
    }
    struct arch_frame *f = calloc(k, sizeof(*f));
    *fd = f ? dup(seg->fd) : -1;
    if (*fd < 0) {
        free(f);
        seg->archive_after = now + ARCHIVE_RETRY_MS;
        return NULL;
    }
    for (size_t j = 0; j < k; j++) {
        const struct block *b = s->blocks[bi + j];
        f[j] = (struct arch_frame){.first_id = b->first_id,
                                   .count = b->count,
                                   .raw_len = b->raw_len,
                                   .offset = b->offset,
                                   .frame_len = b->frame_len};
    }
    seg->archiving = true;
    *n = k;
    return f;
}

/* The oldest sealed segment that is to be archived and that no other archiver thread has. */
static struct arch_frame *archive_pick(struct store *s, uint64_t *first_id, size_t *n, int *fd)
{
    /* A writer with a backlog has the machine's attention: archiving starts when it has caught
     * up (a moment between batches is enough), and meanwhile takes no memory either. */
    if (atomic_load(&s->pending_bytes) > ARCHIVE_BUSY_BYTES)
        return NULL;
    uint64_t free_bytes = disk_free(s);
    int64_t now = mono_ms();
    struct arch_frame *f = NULL;
    pthread_mutex_lock(&s->arch_mu);
    pthread_rwlock_rdlock(&s->list_lock);
    for (size_t i = 0; i + 1 < s->nsegs && !f; i++) {
        struct segment *c = s->segs[i];
        if (c->archived || c->archive_failed || c->removed || c->archiving || !c->entries ||
            c->archive_after > now)
            continue;
        f = archive_take(s, c, free_bytes, n, fd);
        if (f)
            *first_id = c->first_id;
    }
    pthread_rwlock_unlock(&s->list_lock);
    pthread_mutex_unlock(&s->arch_mu);
    return f;
}

/* After an archive that did not swap: the segment (if still held) is free for another try,
 * now (rc 0: it changed meanwhile), later (transient errors) or never (it is unreadable). */
static void archive_release(struct store *s, uint64_t first_id, int rc)
{
    pthread_mutex_lock(&s->arch_mu);
    pthread_rwlock_rdlock(&s->list_lock);
    struct segment *seg = sealed_segment(s, first_id);
    if (seg) {
        seg->archiving = false;
        if (rc == -EIO || rc == -EBADMSG)
            seg->archive_failed = true;
        else if (rc < 0 && rc != -ECANCELED)
            seg->archive_after = mono_ms() + ARCHIVE_RETRY_MS;
    }
    pthread_rwlock_unlock(&s->list_lock);
    pthread_mutex_unlock(&s->arch_mu);
}

/* Read, check and re-encode one frame at the archive level into out (bigbuf of *cap bytes).
 * Returns 0, -EBADMSG when the frame is unreadable or damaged, or -ENOMEM. */
static int archive_frame(struct store *s, int fd, const struct arch_frame *a, char **out,
                         size_t *cap, size_t *len)
{
    char *frame = malloc(a->frame_len);
    char *cols = bigbuf_get(a->raw_len);
    struct frame_hdr h;
    int rc = frame && cols ? -EBADMSG : -ENOMEM;
    if (rc == -EBADMSG &&
        load_frame(fd, a->offset, a->frame_len, a->count, a->raw_len, frame, cols, &h) &&
        h.first_id == a->first_id) {
        int layout = (int)h.layout;
        if (layout == COL_LENGTHS) { /* Written before COL_LINES existed: re-lay it out. */
            char *rows = bigbuf_get(a->raw_len);
            layout = rows && columns_to_rows(cols, a->raw_len, a->count, layout, rows) == 0
                         ? rows_to_columns(rows, a->raw_len, a->count, cols, NULL)
                         : -1;
            bigbuf_put(rows, a->raw_len);
        }
        size_t need = frame_bound(a->raw_len);
        if (need > *cap) {
            bigbuf_put(*out, *cap);
            *out = bigbuf_get(need);
            *cap = *out ? need : 0;
        }
        rc = layout < 0 ? -EBADMSG
             : *out ? frame_encode(cols, a->raw_len, a->first_id, a->count, s->cfg.archive_level,
                                   layout, *out, *cap, len)
                    : -ENOMEM;
        /* Some data (random hex, say) comes out larger at higher levels: keep the smaller. */
        if (rc == 0 && *len >= a->frame_len && a->frame_len <= *cap) {
            memcpy(*out, frame, a->frame_len);
            *len = a->frame_len;
        }
    }
    free(frame);
    bigbuf_put(cols, a->raw_len);
    return rc;
}

/* The block list's write lock, without queueing ahead of readers for long: a nice-19 thread
 * waiting for it would hold up every query behind it (the lock prefers writers). */
static void archive_wrlock(struct store *s)
{
    for (int i = 0; i < 2000; i++) {
        if (pthread_rwlock_trywrlock(&s->list_lock) == 0)
            return;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    pthread_rwlock_wrlock(&s->list_lock);
}

/* Swap the archived file in for the segment. Returns 0; 1 when the segment went (deleted by
 * retention) or changed meanwhile; -errno when the files could not be swapped. */
static int archive_swap(struct store *s, uint64_t first_id, struct arch_frame *f, size_t n,
                        const char *tmp, int tfd, uint64_t size, uint64_t *old_size)
{
    pthread_mutex_lock(&s->arch_mu);
    archive_wrlock(s);
    struct segment *seg = sealed_segment(s, first_id);
    size_t bi = seg ? find_block(s, first_id) : 0;
    bool same = seg != NULL && bi + n <= s->nblocks;
    for (size_t j = 0; same && j < n; j++) {
        const struct block *b = s->blocks[bi + j];
        same = b->seg == seg && b->first_id == f[j].first_id && b->offset == f[j].offset;
    }
    same = same && (bi + n == s->nblocks || s->blocks[bi + n]->seg != seg);
    int rc = same ? 0 : 1;
    char idx[4200];
    seg_path(s, first_id, "idx", idx, sizeof(idx));
    if (rc == 0 && unlink(idx) < 0 && errno != ENOENT)
        rc = -errno;
    if (rc == 0 && rename(tmp, seg->path) < 0) {
        rc = -errno;
        seg->indexed = 0; /* Its index is gone: the writer writes it again. */
    }
    if (seg) {
        seg->archiving = false;
        if (rc < 0)
            seg->archive_failed = true; /* The file system refuses: not again and again. */
    }
    if (rc == 0) {
        for (size_t j = 0; j < n; j++) {
            struct block *b = s->blocks[bi + j];
            b->offset = f[j].new_offset;
            b->frame_len = f[j].new_len;
        }
        int old = seg->fd;
        seg->fd = tfd;
        *old_size = seg->size;
        seg->size = size;
        seg->indexed = 0; /* The writer writes the new index (index_sealed). */
        seg->archived = true;
        close(old);
    }
    pthread_rwlock_unlock(&s->list_lock);
    pthread_mutex_unlock(&s->arch_mu);
    return rc;
}

/* Rewrite the oldest sealed segment not yet archived. Returns false when there is none. */
static bool archive_segment(struct store *s)
{
    uint64_t first_id = 0;
    size_t n = 0;
    int fd = -1;
    struct arch_frame *f = archive_pick(s, &first_id, &n, &fd);
    if (!f)
        return false;
    char tmp[4200];
    seg_path(s, first_id, "arch", tmp, sizeof(tmp));
    int tfd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    char *out = NULL;
    size_t cap = 0, len = 0;
    uint64_t off = SEG_HDR_LEN;
    int rc = tfd < 0 ? -errno : write_all(tfd, seg_magic_archived, SEG_HDR_LEN, 0);
    for (size_t j = 0; rc == 0 && j < n; j++) {
        if (atomic_load(&s->arch_stop) ||
            (j % ARCHIVE_CHECK_EVERY == 0 && j && !segment_held(s, first_id))) {
            rc = -ECANCELED; /* Stopping, or deleted by retention: its copy goes at once. */
            break;
        }
        rc = archive_frame(s, fd, &f[j], &out, &cap, &len);
        if (rc == 0)
            rc = write_all(tfd, out, len, off);
        f[j].new_offset = off;
        f[j].new_len = (uint32_t)len;
        off += len;
    }
    bigbuf_put(out, cap);
    close(fd);
    if (rc == 0 && fdatasync(tfd) < 0)
        rc = -errno;
    uint64_t old_size = 0;
    int swapped = rc == 0 ? archive_swap(s, first_id, f, n, tmp, tfd, off, &old_size) : rc;
    free(f);
    if (swapped == 0) {
        fsync_dir(s); /* The rename, durable. */
        log_info("store: archived %020" PRIu64 ".seg at zstd level %d: %" PRIu64 " -> %" PRIu64
                 " bytes",
                 first_id, s->cfg.archive_level, old_size, off);
        return true;
    }
    if (swapped < 0 && swapped != -ECANCELED)
        log_warn("store: cannot archive %020" PRIu64 ".seg: %s%s", first_id, strerror(-swapped),
                 swapped == -EBADMSG ? " (left as it is)" : "");
    if (rc < 0) /* archive_swap released the segment itself. */
        archive_release(s, first_id, rc);
    if (tfd >= 0) {
        close(tfd);
        unlink(tmp);
    }
    return swapped == 1 || (swapped == -ECANCELED && !atomic_load(&s->arch_stop));
}

static void *archiver_main(void *arg)
{
    struct store *s = arg;
    /* Ingest and queries first: archiving uses what CPU is left. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) < 0)
        log_warn("store: archiver priority: %s", strerror(errno));
    while (!atomic_load(&s->arch_stop)) {
        if (archive_segment(s))
            continue;
        pthread_mutex_lock(&s->arch_mu);
        if (!atomic_load(&s->arch_stop)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&s->arch_cond, &s->arch_mu, &ts);
        }
        pthread_mutex_unlock(&s->arch_mu);
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Appending (reactor threads). */

int store_append(struct store *s, struct lc_entry *e, size_t n)
{
    pthread_mutex_lock(&s->q_mu);
    for (size_t i = 0; i < n; i++) {
        size_t need = rec_size(&e[i]);
        struct pchunk *p = s->q_tail;
        if (!p || p->state != PC_OPEN || p->len >= PCHUNK_TARGET || p->len + need > p->cap) {
            size_t cap = PCHUNK_TARGET + 256 * 1024;
            if (need > cap)
                cap = need;
            {
                if (p && p->state == PC_OPEN)
                    p->state = PC_SEALED; /* Full: an encoder may take it now. */
                p = calloc(1, sizeof(*p));
                if (p)
                    p->buf = bigbuf_get(cap);
                if (!p || !p->buf) {
                    free(p);
                    pthread_mutex_unlock(&s->q_mu);
                    log_error("store: out of memory queueing entries");
                    return -ENOMEM;
                }
                p->cap = cap;
                p->first_id = s->next_id;
                if (s->q_tail)
                    s->q_tail->next = p;
                else
                    s->q_head = p;
                s->q_tail = p;
                atomic_fetch_add(&s->pending_bytes, sizeof(*p));
            }
        }
        rec_put(p->buf + p->len, &e[i]);
        p->len += need;
        p->count++;
        e[i].id = s->next_id++;
        atomic_fetch_add(&s->pending_bytes, need);
    }
    pthread_cond_broadcast(&s->q_cond);
    pthread_mutex_unlock(&s->q_mu);
    atomic_fetch_add(&s->appended, n);
    return 0;
}

uint64_t store_done_id(struct store *s)
{
    return atomic_load_explicit(&s->done_id, memory_order_acquire);
}

bool store_backlogged(struct store *s)
{
    return atomic_load_explicit(&s->pending_bytes, memory_order_relaxed) > BACKLOG_MAX;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading. */

/* Index of the first block whose last id is >= id (nblocks if none). list_lock held. */
static size_t find_block(const struct store *s, uint64_t id)
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
    size_t bi = find_block(s, id);
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
    struct cblock *cb = b->deleted ? NULL : block_get(s, b);
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

/* ------------------------------------------------------------------------------------------ */
/* Opening and recovery. */

/* Scan frames of seg from offset `from`, adding a block per valid frame. A bad frame is
 * skipped by searching for the next valid one; a bad tail of the last segment is cut off. */
static int recover_frames(struct store *s, struct segment *seg, uint64_t from, bool last_seg)
{
    struct stat st;
    if (fstat(seg->fd, &st) < 0)
        return -errno;
    uint64_t end = (uint64_t)st.st_size, off = from;
    char hdr[FRAME_HDR_LEN];
    uint64_t bad_start = 0;
    bool in_bad = false;
    while (off + FRAME_HDR_LEN <= end) {
        struct frame_hdr h;
        bool ok = pread(seg->fd, hdr, FRAME_HDR_LEN, (off_t)off) == FRAME_HDR_LEN &&
                  frame_parse_header(hdr, &h) == 0 && off + FRAME_HDR_LEN + h.payload_len <= end;
        char *frame = NULL, *raw = NULL;
        if (ok) {
            size_t flen = FRAME_HDR_LEN + h.payload_len;
            frame = malloc(flen);
            raw = malloc(h.raw_len ? h.raw_len : 1);
            ok = frame && raw && pread(seg->fd, frame, flen, (off_t)off) == (ssize_t)flen &&
                 frame_verify(&h, frame) && frame_decode(&h, frame, raw) == 0;
        }
        struct block *b = NULL;
        if (ok) {
            b = calloc(1, sizeof(*b));
            ok = b != NULL;
            if (ok) {
                b->refs = 1; /* The index's. */
                b->first_id = h.first_id;
                b->count = h.count;
                b->raw_len = h.raw_len;
                /* Also checks the columns add up. */
                ok = summarize(b, raw, (int)h.layout) == 0;
            }
        }
        if (!ok) {
            free(frame);
            free(raw);
            if (b)
                free(b->filter);
            free(b);
            if (!in_bad) {
                in_bad = true;
                bad_start = off;
            }
            off++; /* Search for the next frame header. */
            continue;
        }
        if (in_bad) {
            log_error("store: %s: damaged bytes %" PRIu64 "..%" PRIu64
                      " skipped (before ids %" PRIu64 ")",
                      seg->path, bad_start, off - 1, h.first_id);
            atomic_fetch_add(&s->damaged_bytes, off - bad_start);
            in_bad = false;
        }
        b->seg = seg;
        b->offset = off;
        b->frame_len = FRAME_HDR_LEN + h.payload_len;
        if (push_ptr((void ***)&s->blocks, &s->nblocks, &s->capblocks, b) < 0) {
            free(frame);
            free(raw);
            free(b->filter);
            free(b);
            return -ENOMEM;
        }
        seg->raw_bytes += b->raw_len;
        seg->entries += b->count;
        if (b->max_ts > seg->max_ts)
            seg->max_ts = b->max_ts;
        off += b->frame_len;
        seg->size = off;
        free(frame);
        free(raw);
    }
    if (!in_bad && off < end)
        bad_start = off, in_bad = true;
    if (in_bad) {
        if (last_seg) {
            log_warn("store: %s: torn tail of %" PRIu64 " bytes at offset %" PRIu64
                     " truncated (an interrupted write)",
                     seg->path, end - bad_start, bad_start);
            if (ftruncate(seg->fd, (off_t)bad_start) < 0)
                log_error("store: truncating %s: %s", seg->path, strerror(errno));
            seg->size = bad_start;
        } else {
            log_error("store: %s: damaged bytes %" PRIu64 "..%" PRIu64 " at its end skipped",
                      seg->path, bad_start, end - 1);
            atomic_fetch_add(&s->damaged_bytes, end - bad_start);
        }
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int recover(struct store *s)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return -errno;
    uint64_t *ids = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        uint64_t id = strtoull(de->d_name, &end, 10);
        if (end == de->d_name + 20 && strcmp(end, ".arch") == 0) {
            /* An archiver's file that was never swapped in (a crash or a stop meanwhile). */
            char tmp[4200];
            seg_path(s, id, "arch", tmp, sizeof(tmp));
            unlink(tmp);
            continue;
        }
        if (end != de->d_name + 20 || strcmp(end, ".seg") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            uint64_t *ni = realloc(ids, cap * sizeof(*ids));
            if (!ni) {
                closedir(d);
                free(ids);
                return -ENOMEM;
            }
            ids = ni;
        }
        ids[n++] = id;
    }
    closedir(d);
    if (n)
        qsort(ids, n, sizeof(*ids), cmp_u64);
    int64_t t0 = mono_ms();
    uint64_t rebuilt = 0;
    for (size_t i = 0; i < n; i++) {
        struct segment *seg = calloc(1, sizeof(*seg));
        if (!seg)
            goto nomem;
        seg->first_id = ids[i];
        seg->max_ts = INT64_MIN;
        seg_path(s, ids[i], "seg", seg->path, sizeof(seg->path));
        seg->fd = open(seg->path, O_RDWR | O_CLOEXEC);
        char magic[SEG_HDR_LEN];
        bool ok_hdr = seg->fd >= 0 && pread(seg->fd, magic, SEG_HDR_LEN, 0) == SEG_HDR_LEN;
        seg->archived = ok_hdr && memcmp(magic, seg_magic_archived, SEG_HDR_LEN) == 0;
        if (!ok_hdr || (!seg->archived && memcmp(magic, seg_magic, SEG_HDR_LEN) != 0 &&
                        memcmp(magic, seg_magic_v1, SEG_HDR_LEN) != 0)) {
            log_error("store: %s is not a LogCaster segment (or unreadable: %s); skipping it",
                      seg->path, seg->fd < 0 ? strerror(errno) : "bad header");
            if (seg->fd >= 0)
                close(seg->fd);
            free(seg);
            continue;
        }
        seg->size = SEG_HDR_LEN;
        char idx[4200];
        seg_path(s, ids[i], "idx", idx, sizeof(idx));
        size_t before = s->nblocks;
        uint64_t covered = 0;
        struct stat sst;
        uint64_t fsize = fstat(seg->fd, &sst) == 0 ? (uint64_t)sst.st_size : 0;
        int rc = index_read(idx, seg, fsize, &s->blocks, &s->nblocks, &s->capblocks, &covered);
        if (rc < 0) {
            covered = SEG_HDR_LEN;
            s->nblocks = before;
        } else {
            for (size_t k = before; k < s->nblocks; k++) {
                struct block *b = s->blocks[k];
                seg->raw_bytes += b->raw_len;
                seg->entries += b->count;
                if (b->max_ts > seg->max_ts)
                    seg->max_ts = b->max_ts;
            }
            seg->indexed = covered;
            seg->size = covered;
        }
        if (recover_frames(s, seg, covered, i + 1 == n) < 0)
            goto nomem;
        rebuilt += seg->size - covered;
        if (push_ptr((void ***)&s->segs, &s->nsegs, &s->capsegs, seg) < 0)
            goto nomem;
    }
    free(ids);
    if (s->nblocks) {
        const struct block *b = s->blocks[s->nblocks - 1];
        s->next_id = b->first_id + b->count;
    }
    /* Ids never go back, even past a failed or deleted tail. */
    if (s->nsegs && s->segs[s->nsegs - 1]->first_id > s->next_id)
        s->next_id = s->segs[s->nsegs - 1]->first_id;
    atomic_store(&s->done_id, s->next_id - 1);
    /* Missing or stale indexes are rebuilt now, so the next start reads no data again. */
    for (size_t i = 0; i < s->nsegs; i++)
        if (s->segs[i]->indexed != s->segs[i]->size && s->segs[i]->entries)
            write_index(s, s->segs[i]);
    if (n)
        log_info("store: recovered %zu segments, %zu blocks, ids up to %" PRIu64
                 " in %lld ms (%" PRIu64 " unindexed bytes read)",
                 s->nsegs, s->nblocks, s->next_id - 1, (long long)(mono_ms() - t0), rebuilt);
    return 0;
nomem:
    free(ids);
    return -ENOMEM;
}

struct store *store_open(const struct store_config *cfg)
{
    struct store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = *cfg;
    snprintf(s->dir, sizeof(s->dir), "%s", cfg->data_dir);
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_cond_init(&s->q_cond, NULL);
    pthread_mutex_init(&s->err_mu, NULL);
    pthread_mutex_init(&s->cache_mu, NULL);
    pthread_mutex_init(&s->arch_mu, NULL);
    pthread_cond_init(&s->arch_cond, NULL);
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->list_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    s->next_id = 1;
    atomic_store(&s->last_fsync_us, -1);
    s->last_sync_ms = mono_ms();
    int rc = recover(s);
    if (rc < 0) {
        fprintf(stderr, "logcasterd: cannot read data directory %s: %s\n", s->dir, strerror(-rc));
        store_close(s);
        return NULL;
    }
    /* A recovered segment that holds nothing (a crash right after a start) is dropped: the new
     * one would take its name. */
    if (s->nsegs && s->segs[s->nsegs - 1]->entries == 0) {
        struct segment *empty = s->segs[--s->nsegs];
        close(empty->fd);
        unlink(empty->path);
        char idx[4200];
        seg_path(s, empty->first_id, "idx", idx, sizeof(idx));
        unlink(idx);
        free(empty);
    }
    /* Writing always goes to a fresh segment named after its first id; never one's name that
     * exists (ids may skip a few, they never repeat). */
    if (s->nsegs && s->segs[s->nsegs - 1]->first_id >= s->next_id)
        s->next_id = s->segs[s->nsegs - 1]->first_id + 1;
    struct segment *seg = segment_create(s, s->next_id);
    if (!seg || add_segment(s, seg) < 0) {
        fprintf(stderr, "logcasterd: cannot create a segment in %s: %s\n", s->dir, s->error);
        if (seg) {
            close(seg->fd);
            free(seg);
        }
        store_close(s);
        return NULL;
    }
    /* Space and age limits hold from the first write on, not from the writer's first round. */
    retention(s);
    s->last_free_check = mono_ms();
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        fprintf(stderr, "logcasterd: cannot start the store writer\n");
        store_close(s);
        return NULL;
    }
    s->writer_started = true;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int want = cpus > 1 ? (int)cpus - 1 : 0;
    if (want > 8)
        want = 8;
    for (int i = 0; i < want; i++)
        if (pthread_create(&s->encoders[s->nencoders], NULL, encoder_main, s) == 0)
            s->nencoders++;
    /* Not at a level no higher than the frames' own: that would copy them for nothing. */
    int narch = s->cfg.archive_level > s->cfg.compression_level ? (int)(cpus > 4   ? 4
                                                                        : cpus < 1 ? 1
                                                                                   : cpus)
                                                                : 0;
    for (int i = 0; i < narch; i++)
        if (pthread_create(&s->archivers[s->narchivers], NULL, archiver_main, s) == 0)
            s->narchivers++;
    if (narch && !s->narchivers)
        log_warn("store: cannot start the archiver; segments stay at level %d",
                 s->cfg.compression_level);
    return s;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    if (s->narchivers) { /* First: they may be in the middle of a segment; they give up. */
        pthread_mutex_lock(&s->arch_mu);
        atomic_store(&s->arch_stop, true);
        pthread_cond_broadcast(&s->arch_cond);
        pthread_mutex_unlock(&s->arch_mu);
        for (int i = 0; i < s->narchivers; i++)
            pthread_join(s->archivers[i], NULL);
    }
    if (s->writer_started) {
        pthread_mutex_lock(&s->q_mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->q_cond);
        pthread_mutex_unlock(&s->q_mu);
        pthread_join(s->writer, NULL);
        for (int i = 0; i < s->nencoders; i++)
            pthread_join(s->encoders[i], NULL);
    }
    for (struct pchunk *p = s->q_head, *next; p; p = next) {
        next = p->next;
        pchunk_free(s, p);
    }
    for (size_t i = 0; i < s->nblocks; i++)
        block_free(s, s->blocks[i]);
    free(s->blocks);
    for (size_t i = 0; i < s->nsegs; i++) {
        /* An empty segment (nothing written since start) is not worth keeping. */
        if (s->segs[i]->size == SEG_HDR_LEN && s->segs[i]->entries == 0) {
            unlink(s->segs[i]->path);
            char idx[4200];
            seg_path(s, s->segs[i]->first_id, "idx", idx, sizeof(idx));
            unlink(idx);
        }
        close(s->segs[i]->fd);
        free(s->segs[i]);
    }
    free(s->segs);
    pthread_mutex_destroy(&s->q_mu);
    pthread_cond_destroy(&s->q_cond);
    pthread_mutex_destroy(&s->err_mu);
    free(s->run);
    pthread_mutex_destroy(&s->cache_mu);
    pthread_mutex_destroy(&s->arch_mu);
    pthread_cond_destroy(&s->arch_cond);
    pthread_rwlock_destroy(&s->list_lock);
    free(s);
    bigbuf_drain();
}
