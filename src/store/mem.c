/* mem.c - the in-memory store: append-only chunks, lock-free reads of published entries,
 * eviction of whole oldest chunks beyond the memory budget.
 *
 * A chunk holds up to CHUNK_RECS records and their text. The text of an entry is its source,
 * then its message, then '\n' (so a keyword can never match across two messages when a query
 * searches a whole chunk's text at once). Writers append under one mutex and publish a chunk's
 * new records with a release store of its count; readers load the count with acquire and read
 * only records below it, so they never wait for writers. The chunk list itself changes (a new
 * chunk, an evicted one) under a write lock that readers hold for reading during one scan call.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/log.h"
#include "query/qry.h"
#include "store/store.h"

#define CHUNK_RECS 8192
#define CHUNK_TEXT (1u << 20)
#define SKIP_COST  256 /* Budget units charged for ruling out a whole chunk. */

struct rec {
    int64_t ts_ms;
    int64_t recv_ms;
    uint32_t off; /* Message start in text. */
    uint32_t msg_len;
    uint8_t src_len; /* Source bytes just before the message. */
    uint8_t level;
    uint8_t flags;
};

struct chunk {
    uint64_t first_id;
    _Atomic uint32_t count; /* Published records. */
    _Atomic int64_t min_ts, max_ts;
    _Atomic uint32_t level_mask;
    uint32_t level_counts[LC_LEVEL_COUNT];
    size_t text_cap, text_used; /* text_used: writer only. */
    size_t bytes;               /* Memory charged to the budget. */
    struct rec *recs;
    char *text;
};

struct pin {
    uint64_t id;
    unsigned refs;
};

struct store {
    pthread_mutex_t append_mu;  /* Serialises writers, stats and pins. */
    pthread_rwlock_t list_lock; /* Guards chunks[]/nchunks. */
    struct chunk **chunks;
    size_t nchunks, capchunks;
    uint64_t next_id;
    size_t memory_limit;
    struct store_stats st; /* Under append_mu. */
    struct chunk *spare;   /* One evicted chunk kept for reuse. */
    struct pin *pins;
    size_t npins, cappins;
};

struct store *store_open(const struct store_config *cfg)
{
    struct store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    pthread_mutex_init(&s->append_mu, NULL);
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* Writers (new chunk, eviction) must not starve behind a stream of query slices. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->list_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    s->next_id = 1;
    s->memory_limit = cfg->memory_limit;
    return s;
}

/* Chunks are mapped directly rather than malloc'ed, so evicting one gives its memory back to
 * the system at once and the process size follows --memory-limit. */
static void *map(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void chunk_free(struct chunk *c)
{
    if (!c)
        return;
    if (c->recs)
        munmap(c->recs, CHUNK_RECS * sizeof(struct rec));
    if (c->text)
        munmap(c->text, c->text_cap);
    free(c);
}

void store_close(struct store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nchunks; i++)
        chunk_free(s->chunks[i]);
    free(s->chunks);
    chunk_free(s->spare);
    free(s->pins);
    pthread_mutex_destroy(&s->append_mu);
    pthread_rwlock_destroy(&s->list_lock);
    free(s);
}

/* A new chunk, reusing the last evicted standard-size one when there is one: its pages are
 * already faulted in, which saves the writer a page fault per 4 KiB. */
static struct chunk *chunk_new(struct store *s, uint64_t first_id, size_t min_text)
{
    struct chunk *c;
    if (s->spare && min_text <= CHUNK_TEXT) {
        c = s->spare;
        s->spare = NULL;
        struct rec *recs = c->recs;
        char *text = c->text;
        memset(c, 0, sizeof(*c));
        c->recs = recs;
        c->text = text;
        c->text_cap = CHUNK_TEXT;
    } else {
        if (!(c = calloc(1, sizeof(*c))))
            return NULL;
        c->text_cap = min_text > CHUNK_TEXT ? min_text : CHUNK_TEXT;
        c->recs = map(CHUNK_RECS * sizeof(struct rec));
        c->text = map(c->text_cap);
        if (!c->recs || !c->text) {
            chunk_free(c);
            return NULL;
        }
    }
    c->first_id = first_id;
    atomic_init(&c->min_ts, INT64_MAX);
    atomic_init(&c->max_ts, INT64_MIN);
    c->bytes = c->text_cap + CHUNK_RECS * sizeof(struct rec) + sizeof(*c);
    return c;
}

static int push_chunk(struct store *s, struct chunk *c)
{
    int rc = 0;
    pthread_rwlock_wrlock(&s->list_lock);
    if (s->nchunks == s->capchunks) {
        size_t cap = s->capchunks ? s->capchunks * 2 : 64;
        struct chunk **n = realloc(s->chunks, cap * sizeof(*n));
        if (!n) {
            rc = -ENOMEM;
            goto out;
        }
        s->chunks = n;
        s->capchunks = cap;
    }
    s->chunks[s->nchunks++] = c;
    s->st.bytes += c->bytes;
out:
    pthread_rwlock_unlock(&s->list_lock);
    return rc;
}

static uint64_t min_pinned(const struct store *s)
{
    uint64_t m = UINT64_MAX;
    for (size_t i = 0; i < s->npins; i++)
        if (s->pins[i].id < m)
            m = s->pins[i].id;
    return m;
}

/* Drop whole oldest chunks while over budget, never the one being written, never a pinned
 * one. Called with append_mu held. */
static void evict(struct store *s)
{
    while (s->st.bytes > s->memory_limit && s->nchunks > 1) {
        struct chunk *c = s->chunks[0];
        uint32_t n = atomic_load_explicit(&c->count, memory_order_relaxed);
        /* A pinned chunk stays while memory is within a quarter over budget; past that a
         * stalled reader must not make memory grow without bound. */
        if (c->first_id + n > min_pinned(s) && s->st.bytes <= s->memory_limit + s->memory_limit / 4)
            break;
        pthread_rwlock_wrlock(&s->list_lock);
        memmove(s->chunks, s->chunks + 1, (s->nchunks - 1) * sizeof(*s->chunks));
        s->nchunks--;
        pthread_rwlock_unlock(&s->list_lock);
        s->st.bytes -= c->bytes;
        s->st.entries -= n;
        s->st.evicted += n;
        for (int l = 0; l < LC_LEVEL_COUNT; l++)
            s->st.per_level[l] -= c->level_counts[l];
        if (!s->spare && c->text_cap == CHUNK_TEXT)
            s->spare = c;
        else
            chunk_free(c);
    }
}

int store_append(struct store *s, struct lc_entry *e, size_t n)
{
    int rc = 0;
    pthread_mutex_lock(&s->append_mu);
    struct chunk *c = s->nchunks ? s->chunks[s->nchunks - 1] : NULL;
    uint32_t cnt = c ? atomic_load_explicit(&c->count, memory_order_relaxed) : 0;
    int64_t mn = c ? atomic_load_explicit(&c->min_ts, memory_order_relaxed) : 0;
    int64_t mx = c ? atomic_load_explicit(&c->max_ts, memory_order_relaxed) : 0;
    uint32_t mask = c ? atomic_load_explicit(&c->level_mask, memory_order_relaxed) : 0;
    for (size_t i = 0; i < n; i++) {
        size_t src_len = e[i].source_len > 255 ? 255 : e[i].source_len;
        size_t need = src_len + e[i].msg_len + 1;
        if (!c || cnt == CHUNK_RECS || c->text_used + need > c->text_cap) {
            if (c) { /* Publish what went into the full chunk before leaving it. */
                atomic_store_explicit(&c->min_ts, mn, memory_order_relaxed);
                atomic_store_explicit(&c->max_ts, mx, memory_order_relaxed);
                atomic_store_explicit(&c->level_mask, mask, memory_order_relaxed);
                atomic_store_explicit(&c->count, cnt, memory_order_release);
            }
            struct chunk *nc = chunk_new(s, s->next_id, need);
            if (!nc || push_chunk(s, nc) < 0) {
                chunk_free(nc);
                log_error("store: out of memory appending %zu entries", n - i);
                rc = -ENOMEM;
                c = NULL;
                break;
            }
            c = nc;
            cnt = 0;
            mn = INT64_MAX;
            mx = INT64_MIN;
            mask = 0;
        }
        struct rec *r = &c->recs[cnt];
        char *t = c->text + c->text_used;
        memcpy(t, e[i].source, src_len);
        memcpy(t + src_len, e[i].msg, e[i].msg_len);
        t[src_len + e[i].msg_len] = '\n';
        r->ts_ms = e[i].ts_ms;
        r->recv_ms = e[i].recv_ms;
        r->off = (uint32_t)(c->text_used + src_len);
        r->msg_len = (uint32_t)e[i].msg_len;
        r->src_len = (uint8_t)src_len;
        r->level = e[i].level < LC_LEVEL_COUNT ? e[i].level : LC_INFO;
        r->flags = e[i].flags;
        c->text_used += need;
        if (r->ts_ms < mn)
            mn = r->ts_ms;
        if (r->ts_ms > mx)
            mx = r->ts_ms;
        mask |= 1u << r->level;
        c->level_counts[r->level]++;
        s->st.per_level[r->level]++;
        e[i].id = s->next_id++;
        s->st.entries++;
        s->st.appended++;
        cnt++;
    }
    if (c) {
        atomic_store_explicit(&c->min_ts, mn, memory_order_relaxed);
        atomic_store_explicit(&c->max_ts, mx, memory_order_relaxed);
        atomic_store_explicit(&c->level_mask, mask, memory_order_relaxed);
        atomic_store_explicit(&c->count, cnt, memory_order_release);
    }
    evict(s);
    pthread_mutex_unlock(&s->append_mu);
    return rc;
}

/* Index of the chunk holding id, or of the first chunk after it; nchunks if none. */
static size_t find_chunk(const struct store *s, uint64_t id)
{
    size_t lo = 0, hi = s->nchunks;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct chunk *c = s->chunks[mid];
        uint64_t end = c->first_id + atomic_load_explicit(&c->count, memory_order_acquire);
        if (end <= id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void fill_entry(const struct chunk *c, uint32_t i, struct lc_entry *e)
{
    const struct rec *r = &c->recs[i];
    e->id = c->first_id + i;
    e->ts_ms = r->ts_ms;
    e->recv_ms = r->recv_ms;
    e->level = r->level;
    e->flags = r->flags;
    e->msg = c->text + r->off;
    e->msg_len = r->msg_len;
    e->source = e->msg - r->src_len;
    e->source_len = r->src_len;
}

static void block_info(const struct chunk *c, uint32_t count, struct lc_block_info *b)
{
    const struct rec *last = &c->recs[count - 1];
    *b = (struct lc_block_info){0};
    b->first_id = c->first_id;
    b->last_id = c->first_id + count - 1;
    b->min_ts_ms = atomic_load_explicit(&c->min_ts, memory_order_relaxed);
    b->max_ts_ms = atomic_load_explicit(&c->max_ts, memory_order_relaxed);
    b->level_mask = atomic_load_explicit(&c->level_mask, memory_order_relaxed);
    b->text = c->text;
    b->text_len = last->off + last->msg_len;
}

int store_scan(struct store *s, const struct qry *q, uint64_t from_id, uint64_t to_id, bool forward,
               size_t budget, store_visit_fn visit, void *arg, uint64_t *resume)
{
    int done = 1;
    if (from_id > to_id)
        return 1;
    pthread_rwlock_rdlock(&s->list_lock);
    size_t spent = 0;
    size_t ci = find_chunk(s, forward ? from_id : to_id);
    if (!forward && ci == s->nchunks && ci > 0)
        ci--;
    while (ci < s->nchunks) {
        const struct chunk *c = s->chunks[ci];
        uint32_t count = atomic_load_explicit(&c->count, memory_order_acquire);
        uint64_t lo = from_id > c->first_id ? from_id : c->first_id;
        uint64_t hi = count ? c->first_id + count - 1 : 0;
        if (to_id < hi)
            hi = to_id;
        if (count == 0 || lo > hi) {
            /* Empty, or wholly outside the range: past the end of it in scan order? */
            if (forward ? c->first_id > to_id : (count && c->first_id + count - 1 < from_id))
                break;
            goto next;
        }
        if (spent >= budget) {
            *resume = forward ? lo : hi;
            done = 0;
            goto out;
        }
        if (q) {
            struct lc_block_info b;
            block_info(c, count, &b);
            if (!qry_block_may_match(q, &b)) {
                spent += SKIP_COST;
                goto next;
            }
        }
        for (uint64_t k = 0; k <= hi - lo; k++) {
            uint64_t id = forward ? lo + k : hi - k;
            if (spent >= budget) {
                *resume = id;
                done = 0;
                goto out;
            }
            spent++;
            struct lc_entry e;
            fill_entry(c, (uint32_t)(id - c->first_id), &e);
            if (q && !qry_match(q, &e))
                continue;
            if (!visit(arg, &e))
                goto out;
        }
    next:
        if (forward)
            ci++;
        else if (ci-- == 0)
            break;
    }
out:
    pthread_rwlock_unlock(&s->list_lock);
    return done;
}

static bool count_visit(void *arg, const struct lc_entry *e)
{
    (void)e;
    (*(uint64_t *)arg)++;
    return true;
}

int store_count(struct store *s, const struct qry *q, uint64_t from_id, uint64_t to_id,
                size_t budget, uint64_t *count, uint64_t *resume)
{
    if (!q || qry_matches_all(q)) { /* Everything held in the range: no entry to look at. */
        pthread_mutex_lock(&s->append_mu);
        uint64_t first = s->nchunks ? s->chunks[0]->first_id : s->next_id;
        uint64_t last = s->next_id - 1;
        pthread_mutex_unlock(&s->append_mu);
        if (from_id < first)
            from_id = first;
        if (to_id > last)
            to_id = last;
        if (from_id <= to_id)
            *count += to_id - from_id + 1;
        return 1;
    }
    return store_scan(s, q, from_id, to_id, true, budget, count_visit, count, resume);
}

void store_pin(struct store *s, uint64_t id)
{
    pthread_mutex_lock(&s->append_mu);
    for (size_t i = 0; i < s->npins; i++) {
        if (s->pins[i].id == id) {
            s->pins[i].refs++;
            goto out;
        }
    }
    if (s->npins == s->cappins) {
        size_t cap = s->cappins ? s->cappins * 2 : 16;
        struct pin *p = realloc(s->pins, cap * sizeof(*p));
        if (!p)
            goto out; /* Unpinned: at worst a stream loses entries evicted under it. */
        s->pins = p;
        s->cappins = cap;
    }
    s->pins[s->npins++] = (struct pin){id, 1};
out:
    pthread_mutex_unlock(&s->append_mu);
}

void store_unpin(struct store *s, uint64_t id)
{
    pthread_mutex_lock(&s->append_mu);
    for (size_t i = 0; i < s->npins; i++) {
        if (s->pins[i].id == id) {
            if (--s->pins[i].refs == 0)
                s->pins[i] = s->pins[--s->npins];
            break;
        }
    }
    evict(s);
    pthread_mutex_unlock(&s->append_mu);
}

void store_get_stats(struct store *s, struct store_stats *st)
{
    pthread_mutex_lock(&s->append_mu);
    *st = s->st;
    st->first_id = s->nchunks ? s->chunks[0]->first_id : 0;
    st->last_id = s->next_id - 1;
    if (st->entries == 0)
        st->first_id = st->last_id = 0;
    st->oldest_ts_ms = st->newest_ts_ms = 0;
    if (s->nchunks && st->entries) {
        /* Chunk ranges bound the event times (entries may arrive out of time order). */
        int64_t mn = INT64_MAX, mx = INT64_MIN;
        for (size_t i = 0; i < s->nchunks; i++) {
            int64_t a = atomic_load_explicit(&s->chunks[i]->min_ts, memory_order_relaxed);
            int64_t b = atomic_load_explicit(&s->chunks[i]->max_ts, memory_order_relaxed);
            if (a < mn)
                mn = a;
            if (b > mx)
                mx = b;
        }
        st->oldest_ts_ms = mn;
        st->newest_ts_ms = mx;
    }
    pthread_mutex_unlock(&s->append_mu);
}

/* The in-memory store makes an entry "durable" the moment it is appended. */
enum store_id_state store_id_state(struct store *s, uint64_t id)
{
    (void)s;
    (void)id;
    return STORE_DURABLE;
}

bool store_backlogged(struct store *s)
{
    (void)s;
    return false;
}

int store_add_waker(struct store *s, int eventfd)
{
    (void)s;
    (void)eventfd;
    return 0;
}
