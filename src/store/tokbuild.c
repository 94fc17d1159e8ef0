/* tokbuild.c - the token filter builder: one thread that builds the token filters
 * (tokfilter.h) and value summaries (valsum.h) of published blocks, off the ingest path, and
 * then fills the block cache with what scans read past it while it had room (warm_pass).
 *
 * Building a block's token filter costs about a quarter of ingest's CPU. On the encoder threads
 * that cost came straight off ingest throughput, so blocks are published without one and this
 * thread builds them at the lowest priority (nice 19): under a load that fills every core it
 * waits, and it catches up when ingest pauses. A block without a filter is simply never
 * ruled out by one (src/query/skip.c), so queries stay exact meanwhile; the trigram filter,
 * built on the encoders as before (it is cheap), still skips blocks.
 *
 * It walks the index oldest first with a cursor, which pins the segment of the blocks it hands
 * out: a block stays valid while it is built even if retention deletes its segment (its filter
 * is then freed with it). The entries come from the block cache when they are there (a
 * reference keeps them from eviction), else from the segment file: its descriptor is
 * duplicated under list_lock, so the frame is read and decompressed with no lock held (a thread
 * at idle priority holding list_lock could stall the writer behind it) and still from the
 * right file, whatever the archiver or retention do meanwhile. The filter is published with a
 * release store (block.h); the writer writes the segment's index again once all its blocks have
 * one (segment.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/thread.h"
#include "core/log.h"
#include "store/frame.h"
#include "store/store_internal.h"
#include "store/tokfilter.h"
#include "store/valsum.h"

/* Buffers reused from block to block. */
struct tokb_scratch {
    char *msgs; /* Messages gathered from cached rows, back to back, */
    size_t msgs_cap;
    uint32_t *lens; /* and their lengths; */
    size_t lens_cap;
    char *srcs; /* their sources, back to back, */
    size_t srcs_cap;
    uint8_t *src_lens; /* their lengths, */
    size_t src_lens_cap;
    uint8_t *levels; /* and their levels. */
    size_t levels_cap;
    char *frame; /* A frame read from its file. */
    size_t frame_cap;
};

static int grow(void **p, size_t *cap, size_t need)
{
    if (*cap >= need)
        return 0;
    void *n = realloc(*p, need);
    if (!n)
        return -ENOMEM;
    *p = n;
    *cap = need;
    return 0;
}

static struct block *block_of(const struct lc_block_info *info)
{
    return (struct block *)((char *)info - offsetof(struct block, info));
}

void col_summary_input(const struct col_summary *cs, uint32_t count, struct valsum_input *in)
{
    *in = (struct valsum_input){.count = count,
                                .levels = cs->levels,
                                .src_lens = cs->src_lens,
                                .srcs = cs->srcs,
                                .msgs = cs->msgs,
                                .msgs_len = cs->msgs_len,
                                .msg_lens = cs->msg_lens};
}

int filters_build(const struct valsum_input *in, struct block_filters *out)
{
    memset(out, 0, sizeof(*out));
    int rc = tokf_build(in->msgs, in->msgs_len, in->msg_lens, in->count, &out->tokens, &out->nbits,
                        &out->stripe_nbits);
    if (rc == 0 && (rc = valsum_build(in, &out->values, &out->values_len)) < 0) {
        free(out->tokens);
        out->tokens = NULL;
    }
    return rc;
}

/* The filters from the cached rows of b. */
static int build_cached(struct store *s, struct cblock *cb, struct tokb_scratch *sc,
                        struct block_filters *out)
{
    const struct block *b = cb->owner;
    size_t n = b->count ? b->count : 1;
    int rc = grow((void **)&sc->msgs, &sc->msgs_cap, b->raw_len ? b->raw_len : 1) |
             grow((void **)&sc->lens, &sc->lens_cap, n * sizeof(uint32_t)) |
             grow((void **)&sc->srcs, &sc->srcs_cap, b->raw_len ? b->raw_len : 1) |
             grow((void **)&sc->src_lens, &sc->src_lens_cap, n) |
             grow((void **)&sc->levels, &sc->levels_cap, n);
    size_t len = 0, slen = 0;
    for (uint32_t i = 0; rc == 0 && i < b->count; i++) {
        struct lc_entry e;
        size_t got = rec_get(cb->raw + cb->offs[i], cb->offs[i + 1] - cb->offs[i], &e);
        lc_assert(got != 0); /* Cached rows were checked when they were indexed. */
        memcpy(sc->msgs + len, e.msg, e.msg_len);
        len += e.msg_len;
        sc->lens[i] = (uint32_t)e.msg_len;
        if (e.source_len)
            memcpy(sc->srcs + slen, e.source, e.source_len);
        slen += e.source_len;
        sc->src_lens[i] = (uint8_t)e.source_len;
        sc->levels[i] = e.level;
    }
    cache_release(s, cb);
    if (rc)
        return -ENOMEM;
    struct valsum_input in = {.count = b->count,
                              .levels = sc->levels,
                              .src_lens = sc->src_lens,
                              .srcs = sc->srcs,
                              .msgs = sc->msgs,
                              .msgs_len = len,
                              .msg_lens = (const char *)sc->lens};
    return filters_build(&in, out);
}

/* The filters from b's frame in its file. Returns 0, 1 when there is none to build (b was
 * deleted, or its frame is unreadable: b is then marked bad), or -ENOMEM. */
static int build_from_file(struct store *s, struct block *b, struct tokb_scratch *sc,
                           struct block_filters *out)
{
    struct frame_loc loc;
    int rc = block_locate(s, b, &loc);
    if (rc == -ENOENT)
        return 1;
    if (rc < 0)
        return -ENOMEM; /* Out of descriptors: try again later. */
    char *cols = bigbuf_get(b->raw_len);
    rc = cols ? grow((void **)&sc->frame, &sc->frame_cap, loc.len) : -ENOMEM;
    struct frame_hdr h;
    struct col_summary cs;
    if (rc == 0 &&
        (!frame_load(loc.fd, loc.offset, loc.len, b->count, b->raw_len, sc->frame, cols, &h) ||
         columns_summary(cols, b->raw_len, b->count, (int)h.layout, &cs) < 0)) {
        __atomic_store_n(&b->bad, true, __ATOMIC_RELAXED);
        log_error("store: block %" PRIu64 "..%" PRIu64 " in %s is unreadable or corrupt; "
                  "skipping it",
                  b->first_id, b->first_id + b->count - 1, b->seg->path);
        rc = 1;
    }
    close(loc.fd);
    if (rc == 0) {
        struct valsum_input in;
        col_summary_input(&cs, b->count, &in);
        rc = filters_build(&in, out);
    }
    bigbuf_put(cols, b->raw_len);
    return rc;
}

/* Build and publish b's token filter and value summary. Returns 0 (done, or nothing to build)
 * or -ENOMEM. */
static int build_block(struct store *s, struct block *b, struct tokb_scratch *sc)
{
    struct block_filters f;
    struct cblock *cb = cache_lookup(s, b);
    int rc = cb ? build_cached(s, cb, sc, &f) : build_from_file(s, b, sc, &f);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    /* Published once: no reader looks at the sizes or the summary before it sees the
     * pointer. */
    b->tokens_nbits = b->info.tokens_nbits = f.nbits;
    b->stripe_nbits = b->info.stripe_nbits = f.stripe_nbits;
    b->values = f.values;
    b->info.values = f.values;
    b->values_len = b->info.values_len = f.values_len;
    __atomic_store_n(&b->info.tokens, f.tokens, __ATOMIC_RELEASE);
    __atomic_store_n(&b->tokens, f.tokens, __ATOMIC_RELEASE);
    return 0;
}

/* Ingest that is behind (this much accepted and not yet written) has the machine: even at
 * nice 19 a builder that runs in the gaps took several percent of a saturating load's
 * throughput (cache and wake-ups). It waits in steps of BUSY_STEP_MS, but for BUSY_MAX_MS at
 * most a block, so filters still come, slowly, under a load that never lets up. */
#define BUSY_BYTES   (1u << 20)
#define BUSY_STEP_MS 5
#define BUSY_MAX_MS  100

static void wait_while_busy(struct store *s)
{
    for (int waited = 0; waited < BUSY_MAX_MS; waited += BUSY_STEP_MS) {
        if (atomic_load_explicit(&s->pending_bytes, memory_order_relaxed) <= BUSY_BYTES ||
            atomic_load_explicit(&s->tok_stop, memory_order_relaxed))
            return;
        struct timespec ts = {0, BUSY_STEP_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* One pass over the blocks from *from on, oldest first, building the missing filters; *from
 * moves past the blocks that need nothing more. False when one could not be built for lack of
 * memory (the caller tries again later). */
static bool build_pass(struct store *s, uint64_t *from, struct tokb_scratch *sc)
{
    struct store_cursor c;
    store_cursor_init(&c, *from, UINT64_MAX, true);
    bool all_done = true;
    while (store_cursor_next(s, &c)) {
        if (atomic_load_explicit(&s->tok_stop, memory_order_relaxed)) {
            store_cursor_end(s, &c);
            return true;
        }
        struct block *b = block_of(c.info);
        if (!c.bad && !block_tokens(b)) {
            wait_while_busy(s);
            if (build_block(s, b, sc) < 0)
                all_done = false;
        }
        if (all_done)
            *from = c.info->last_id + 1;
    }
    return all_done;
}

/* Blocks remembered one by one, as few as a rare needle reads; the rest of a longer scan is
 * remembered as a range. */
#define WARM_IDS 512

static int newest_first(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Cache the blocks that counts read past the cache while it had room (read.c), so that they do
 * not pay the page faults of filling it: newest first, at the cold end of the LRU order
 * (cache_warm), until the cache is full (with room false, only their warm_pending flags are
 * cleared). False when the cache is full. */
static bool warm_range(struct store *s, uint64_t lo, uint64_t hi, bool room)
{
    struct store_cursor c;
    store_cursor_init(&c, lo, hi, false);
    while (store_cursor_next(s, &c) && !atomic_load_explicit(&s->tok_stop, memory_order_relaxed) &&
           (room || lo == hi)) { /* Full: only a listed block's flag is still to clear. */
        struct block *b = block_of(c.info);
        if (room && !c.bad) {
            wait_while_busy(s);
            room = cache_warm(s, b) != -ENOSPC;
        }
        pthread_mutex_lock(&s->warm_mu);
        b->warm_pending = false;
        pthread_mutex_unlock(&s->warm_mu);
    }
    store_cursor_end(s, &c);
    return room;
}

static void warm_pass(struct store *s)
{
    pthread_mutex_lock(&s->warm_mu);
    uint64_t *ids = s->warm_ids, lo = s->warm_lo, hi = s->warm_hi;
    size_t n = s->nwarm;
    s->warm_ids = NULL;
    s->nwarm = 0;
    s->warm_lo = UINT64_MAX;
    s->warm_hi = 0;
    pthread_mutex_unlock(&s->warm_mu);
    if (lo <= hi) { /* A long scan: the whole range it read, listed blocks included. */
        for (size_t i = 0; i < n; i++) {
            lo = ids[i] < lo ? ids[i] : lo;
            hi = ids[i] > hi ? ids[i] : hi;
        }
        warm_range(s, lo, hi, true);
    } else if (n) { /* A few blocks, each on its own. */
        qsort(ids, n, sizeof(*ids), newest_first);
        bool room = true;
        for (size_t i = 0; i < n; i++)
            if (i == 0 || ids[i] != ids[i - 1])
                room = warm_range(s, ids[i], ids[i], room);
    }
    free(ids);
}

static void *tokb_main(void *arg)
{
    struct store *s = arg;
    thread_name("tokens");
    /* Ingest and queries first: at nice 19 it gets about 1.5 % of a core that a normal thread
     * wants, and shares what is left with the archivers, also at 19. (SCHED_IDLE would yield
     * even to them, so the filters of a load would wait for its archiving; and a thread that
     * rarely runs is more often preempted while it holds a lock a writer waits for.) */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) < 0)
        log_warn("store: token filter builder priority: %s", strerror(errno));
    struct tokb_scratch sc = {0};
    uint64_t from = 0;
    bool retry = false;
    pthread_mutex_lock(&s->tok_mu);
    while (!atomic_load(&s->tok_stop)) {
        if (s->tok_held || !s->tok_work) {
            if (retry && !s->tok_held) { /* Out of memory last time: look again in a second. */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&s->tok_cond, &s->tok_mu, &ts);
                s->tok_work = true;
            } else {
                pthread_cond_wait(&s->tok_cond, &s->tok_mu);
            }
            continue;
        }
        s->tok_work = false;
        pthread_mutex_unlock(&s->tok_mu);
        warm_pass(s); /* First: a few seconds at most, where filters can take minutes. */
        retry = !build_pass(s, &from, &sc);
        pthread_mutex_lock(&s->tok_mu);
    }
    pthread_mutex_unlock(&s->tok_mu);
    free(sc.msgs);
    free(sc.lens);
    free(sc.srcs);
    free(sc.src_lens);
    free(sc.levels);
    free(sc.frame);
    return NULL;
}

void tokb_start(struct store *s)
{
    pthread_mutex_init(&s->warm_mu, NULL);
    s->warm_lo = UINT64_MAX; /* Nothing to cache yet. */
    s->warm_hi = 0;
    s->tok_held = s->cfg.tokens_held;
    s->tok_work = true; /* Recovered blocks may lack filters (older or partial index files). */
    if (pthread_create(&s->tok_thread, NULL, tokb_main, s) == 0)
        s->tok_started = true;
    else
        log_warn("store: cannot start the token filter builder; new blocks get no token filter");
}

void tokb_wake(struct store *s)
{
    pthread_mutex_lock(&s->tok_mu);
    s->tok_work = true;
    pthread_cond_signal(&s->tok_cond);
    pthread_mutex_unlock(&s->tok_mu);
}

bool tokb_warm(struct store *s, struct block *b)
{
    if (!s->tok_started)
        return false;
    pthread_mutex_lock(&s->warm_mu);
    if (b->warm_pending) { /* Read again before the builder got to it: worth caching now. */
        pthread_mutex_unlock(&s->warm_mu);
        return false;
    }
    bool first = s->nwarm == 0 && s->warm_lo > s->warm_hi;
    if (!s->warm_ids && s->nwarm == 0)
        s->warm_ids = malloc(WARM_IDS * sizeof(*s->warm_ids));
    size_t cap = s->cfg.warm_ids && s->cfg.warm_ids < WARM_IDS ? s->cfg.warm_ids : WARM_IDS;
    if (s->warm_ids && s->nwarm < cap) {
        s->warm_ids[s->nwarm++] = b->first_id;
        b->warm_pending = true;
    } else { /* Many (or no memory for the list): the range they span. */
        if (b->first_id < s->warm_lo)
            s->warm_lo = b->first_id;
        if (b->first_id > s->warm_hi)
            s->warm_hi = b->first_id;
    }
    pthread_mutex_unlock(&s->warm_mu);
    if (first) /* Else the builder has been told, and takes this one with the others. */
        tokb_wake(s);
    return true;
}

void store_tokens_hold(struct store *s, bool hold)
{
    pthread_mutex_lock(&s->tok_mu);
    s->tok_held = hold;
    pthread_cond_signal(&s->tok_cond);
    pthread_mutex_unlock(&s->tok_mu);
}

void tokb_stop(struct store *s)
{
    if (!s->tok_started)
        return;
    pthread_mutex_lock(&s->tok_mu);
    atomic_store(&s->tok_stop, true);
    pthread_cond_signal(&s->tok_cond);
    pthread_mutex_unlock(&s->tok_mu);
    pthread_join(s->tok_thread, NULL);
    s->tok_started = false;
    free(s->warm_ids);
    s->warm_ids = NULL;
    pthread_mutex_destroy(&s->warm_mu);
}
