/* test_store.c - the store's read interface against a real store in a temporary directory:
 * cursors over block summaries both ways, a cursor that holds blocks retention deletes, an
 * opened block the cache evicts, qry_scan / qry_count sliced by budgets, and token filters
 * built after blocks are published (exact counts before, filters after, across restarts), and
 * the cache filled by the builder, not by scans. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/log.h"
#include "query/qry.h"
#include "store/store.h"

#define BATCH 200 /* Entries per append: one block each (the writer is idle between them). */
#define MSG   40  /* Message bytes of every entry. */
#define SRC   "10.0.0.1:5000"

static char dir[64];

static void wipe(void)
{
    check_rm_dir(dir);
}

/* Open the store in dir as it is; with tokens_held, its token filter builder starts held;
 * warm_ids: blocks a count is remembered by one by one (0: the default). */
static struct store *reopen_store_warm(size_t cache_size, size_t segment_size, uint64_t retention,
                                       bool tokens_held, size_t warm_ids)
{
    struct store_config cfg = {.data_dir = dir,
                               .cache_size = cache_size,
                               .fsync = FSYNC_NEVER,
                               .segment_size = segment_size,
                               .compression_level = 0,
                               .retention_size = retention,
                               .tokens_held = tokens_held,
                               .warm_ids = warm_ids};
    return store_open(&cfg);
}

static struct store *reopen_store(size_t cache_size, size_t segment_size, uint64_t retention,
                                  bool tokens_held)
{
    return reopen_store_warm(cache_size, segment_size, retention, tokens_held, 0);
}

static struct store *open_store(size_t cache_size, size_t segment_size, uint64_t retention)
{
    snprintf(dir, sizeof(dir), "/tmp/lc-test-store-XXXXXX");
    if (!mkdtemp(dir))
        return NULL;
    return reopen_store(cache_size, segment_size, retention, false);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Append one batch (messages "b<batch>-<i> ...", every seventh entry ERROR) and wait until the
 * writer has decided it. Returns its first id, 0 on failure. */
static uint64_t append_batch(struct store *s, int batch)
{
    static char msgs[BATCH][MSG + 1];
    struct lc_entry e[BATCH];
    for (int i = 0; i < BATCH; i++) {
        char head[32];
        int hl = snprintf(head, sizeof(head), "b%03d-%05d ", batch % 1000, i);
        memset(msgs[i], 'x', MSG);
        memcpy(msgs[i], head, (size_t)hl);
        msgs[i][MSG] = 0;
        e[i] = (struct lc_entry){.ts_ms = 1700000000000LL + i,
                                 .recv_ms = 1700000000000LL + i,
                                 .level = i % 7 == 0 ? LC_ERROR : LC_INFO,
                                 .source = SRC,
                                 .source_len = strlen(SRC),
                                 .msg = msgs[i],
                                 .msg_len = MSG};
    }
    if (store_append(s, e, BATCH) < 0)
        return 0;
    for (int t = 0; t < 500 && store_done_id(s) < e[BATCH - 1].id; t++)
        sleep_ms(10);
    return store_done_id(s) >= e[BATCH - 1].id ? e[0].id : 0;
}

/* The id range a cursor walk sees, checking that blocks come in order and are whole. */
static int walk(struct store *s, uint64_t from, uint64_t to, bool forward, uint64_t *first,
                uint64_t *last)
{
    struct store_cursor c;
    store_cursor_init(&c, from, to, forward);
    int n = 0;
    uint64_t prev_lo = 0, prev_hi = 0;
    while (store_cursor_next(s, &c)) {
        const struct lc_block_info *b = c.info;
        CHECK(b->first_id <= to && b->last_id >= from);
        if (n)
            CHECK(forward ? b->first_id == prev_hi + 1 : b->last_id + 1 == prev_lo);
        else
            *first = forward ? b->first_id : b->last_id;
        *last = forward ? b->last_id : b->first_id;
        prev_lo = b->first_id;
        prev_hi = b->last_id;
        n++;
    }
    CHECK(!store_cursor_next(s, &c)); /* Stays at its end. */
    store_cursor_end(s, &c);
    return n;
}

TEST(cursor_walks_blocks_both_ways)
{
    struct store *s = open_store(64u << 20, 64u << 20, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    uint64_t ids[5];
    for (int i = 0; i < 5; i++)
        CHECK((ids[i] = append_batch(s, i)) != 0);
    uint64_t top = ids[4] + BATCH - 1, first = 0, last = 0;
    CHECK_EQ_INT(walk(s, 1, top, true, &first, &last), 5);
    CHECK_EQ_INT(first, ids[0]);
    CHECK_EQ_INT(last, top);
    CHECK_EQ_INT(walk(s, 1, top, false, &first, &last), 5);
    CHECK_EQ_INT(first, top);
    CHECK_EQ_INT(last, ids[0]);
    /* A range inside blocks 1..3 sees exactly them. */
    CHECK_EQ_INT(walk(s, ids[1] + 5, ids[3] + 5, true, &first, &last), 3);
    CHECK_EQ_INT(walk(s, ids[1] + 5, ids[3] + 5, false, &first, &last), 3);
    CHECK_EQ_INT(walk(s, top + 1, top + 10, true, &first, &last), 0);
    CHECK_EQ_INT(walk(s, 5, 4, false, &first, &last), 0);

    /* The summary tells the levels; the entries read back as written, in either order. */
    struct store_cursor c;
    store_cursor_init(&c, ids[2], ids[2], false);
    CHECK(store_cursor_next(s, &c));
    CHECK(c.info->level_counts && c.info->level_counts[LC_ERROR] == (BATCH + 6) / 7);
    CHECK(c.info->level_mask == ((1u << LC_ERROR) | (1u << LC_INFO)));
    CHECK(!c.bad);
    struct store_block blk;
    CHECK_EQ_INT(store_block_open(s, &c, &blk), 0);
    struct lc_entry e[3];
    for (int k = 0; k < 3; k++)
        store_block_entry(&blk, ids[2] + 9 - (uint64_t)k, &e[k]);
    for (int k = 0; k < 3; k++) {
        char want[32];
        snprintf(want, sizeof(want), "b002-%05d", 9 - k);
        CHECK_EQ_INT(e[k].id, ids[2] + 9 - (uint64_t)k);
        CHECK(e[k].msg_len == MSG && memcmp(e[k].msg, want, 10) == 0);
        CHECK(e[k].source_len == strlen(SRC) && memcmp(e[k].source, SRC, e[k].source_len) == 0);
        CHECK_EQ_INT(e[k].level, (9 - k) % 7 == 0 ? LC_ERROR : LC_INFO);
    }
    store_block_close(s, &blk);
    store_block_close(s, &blk); /* Twice is harmless. */
    store_cursor_end(s, &c);
    store_cursor_end(s, &c);
    store_close(s);
    wipe();
}

/* A cursor's blocks outlive their deletion by retention: their summaries stay readable,
 * opening them says -ENOENT, and the walk goes on with what the index still holds. */
TEST(cursor_holds_blocks_retention_deletes)
{
    /* Every block is a segment of its own (one byte past the 16-byte header seals it); the
     * limit keeps three of them: a segment is its header and one uncompressed frame. */
    uint64_t seg_bytes = 16 + 40 + (uint64_t)BATCH * (23 + strlen(SRC) + MSG);
    struct store *s = open_store(64u << 20, 17, 3 * seg_bytes + seg_bytes / 2);
    CHECK(s != NULL);
    if (!s)
        return;
    uint64_t ids[6];
    for (int i = 0; i < 3; i++)
        CHECK((ids[i] = append_batch(s, i)) != 0);
    struct store_stats st;
    store_get_stats(s, &st);
    CHECK_EQ_INT(st.segments_deleted, 0);

    struct store_cursor c;
    store_cursor_init(&c, 1, UINT64_MAX, true);
    CHECK(store_cursor_next(s, &c));
    CHECK_EQ_INT(c.info->first_id, ids[0]);
    for (int i = 3; i < 6; i++)
        CHECK((ids[i] = append_batch(s, i)) != 0);
    for (int t = 0; t < 300; t++) {
        store_get_stats(s, &st);
        if (st.first_id > ids[1])
            break;
        sleep_ms(10);
    }
    CHECK(st.first_id > ids[1]); /* Blocks 0 and 1 are gone from the index. */
    CHECK(st.segments_deleted >= 2);

    /* The summary the cursor holds is intact (ASan would object otherwise). */
    CHECK_EQ_INT(c.info->first_id, ids[0]);
    CHECK_EQ_INT(c.info->last_id, ids[0] + BATCH - 1);
    CHECK(c.info->level_counts[LC_ERROR] == (BATCH + 6) / 7);
    struct store_block blk;
    CHECK_EQ_INT(store_block_open(s, &c, &blk), -ENOENT);
    int seen = 0;
    uint64_t next_first = 0;
    while (store_cursor_next(s, &c)) {
        if (!seen)
            next_first = c.info->first_id;
        CHECK_EQ_INT(store_block_open(s, &c, &blk), 0);
        struct lc_entry e;
        store_block_entry(&blk, c.info->first_id, &e);
        CHECK(e.msg_len == MSG && e.msg[0] == 'b');
        store_block_close(s, &blk);
        seen++;
    }
    CHECK_EQ_INT(next_first, st.first_id);
    CHECK_EQ_INT(seen, 3); /* Blocks 3, 4 and 5: the limit keeps three. */
    store_cursor_end(s, &c);

    uint64_t n = 0, resume = 0;
    CHECK_EQ_INT(qry_count(s, NULL, 1, ids[5] + BATCH - 1, SIZE_MAX, &n, &resume), 1);
    CHECK_EQ_INT(n, st.entries);
    store_close(s);
    wipe();
}

/* An opened block keeps its entries while the cache (here: no room at all) evicts it. */
TEST(opened_block_outlives_eviction)
{
    struct store *s = open_store(1, 64u << 20, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    uint64_t a = append_batch(s, 0), b = append_batch(s, 1);
    CHECK(a && b);
    struct store_cursor c1, c2;
    struct store_block k1, k2;
    store_cursor_init(&c1, a, a, true);
    store_cursor_init(&c2, b, b, true);
    CHECK(store_cursor_next(s, &c1) && store_cursor_next(s, &c2));
    CHECK_EQ_INT(store_block_open(s, &c1, &k1), 0); /* Read from its file: not cached. */
    CHECK_EQ_INT(store_block_open(s, &c2, &k2), 0); /* Evicts block a from the cache. */
    struct lc_entry e[BATCH];
    for (int i = 0; i < BATCH; i++)
        store_block_entry(&k1, a + (uint64_t)i, &e[i]);
    for (int i = 0; i < BATCH; i++) {
        char want[32];
        snprintf(want, sizeof(want), "b000-%05d", i);
        CHECK(e[i].id == a + (uint64_t)i && memcmp(e[i].msg, want, 10) == 0);
    }
    store_block_close(s, &k1);
    store_block_close(s, &k2);
    store_cursor_end(s, &c1);
    store_cursor_end(s, &c2);
    store_close(s);
    wipe();
}

struct ids {
    uint64_t v[4 * BATCH];
    size_t n;
};

static bool collect(void *arg, const struct lc_entry *e)
{
    struct ids *x = arg;
    if (x->n < sizeof(x->v) / sizeof(x->v[0]))
        x->v[x->n++] = e->id;
    return true;
}

/* Scan [from, to] in slices of `budget`, resuming where each stopped. */
static void scan_sliced(struct store *s, const struct qry *q, uint64_t from, uint64_t to,
                        bool forward, size_t budget, struct ids *out)
{
    out->n = 0;
    for (int guard = 0; guard < 100000; guard++) {
        uint64_t resume = 0;
        if (qry_scan(s, q, from, to, forward, budget, collect, out, &resume))
            return;
        if (forward)
            from = resume;
        else
            to = resume;
    }
    CHECK(!"the scan never finished");
}

TEST(scan_and_count_sliced_by_budget)
{
    struct store *s = open_store(64u << 20, 64u << 20, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    uint64_t ids[4];
    for (int i = 0; i < 4; i++)
        CHECK((ids[i] = append_batch(s, i)) != 0);
    uint64_t lo = ids[0] + 3, hi = ids[3] + BATCH - 4;
    char err[QRY_ERR_MAX];
    struct qry *q = NULL, *kw = NULL;
    CHECK_EQ_INT(qry_compile("level:ERROR", 11, 0, &q, err), 0);
    CHECK_EQ_INT(qry_compile("b002-", 5, 0, &kw, err), 0);
    const struct qry *qs[] = {NULL, q, kw};
    for (size_t k = 0; k < 3; k++) {
        for (int dir_ = 0; dir_ < 2; dir_++) {
            static struct ids whole, sliced;
            scan_sliced(s, qs[k], lo, hi, dir_ == 0, SIZE_MAX, &whole);
            for (size_t budget = 1; budget <= 300; budget += 37) {
                scan_sliced(s, qs[k], lo, hi, dir_ == 0, budget, &sliced);
                CHECK(sliced.n == whole.n &&
                      memcmp(sliced.v, whole.v, whole.n * sizeof(whole.v[0])) == 0);
            }
            for (size_t i = 1; i < whole.n; i++)
                CHECK(dir_ == 0 ? whole.v[i] > whole.v[i - 1] : whole.v[i] < whole.v[i - 1]);
            if (k == 2) /* Only batch 2 holds "b002-". */
                CHECK(whole.n == BATCH);
            uint64_t total = 0;
            for (size_t budget = 1; budget <= 1000; budget = budget * 3 + 1) {
                uint64_t n = 0, from = lo, resume = 0;
                while (!qry_count(s, qs[k], from, hi, budget, &n, &resume))
                    from = resume;
                CHECK_EQ_INT(n, whole.n);
                total = n;
            }
            CHECK_EQ_INT(total, whole.n);
        }
    }
    qry_free(q);
    qry_free(kw);
    store_close(s);
    wipe();
}

/* Entry i of batch b is "rid=<hex> user=<hex> ..." with ids scattered by a multiplicative
 * hash: a whole id is in one block, and in no other's token filter (but for a false positive,
 * which two ids of one entry make unlikely; the data is fixed, so it is the same every run). */
static uint32_t rid_of(int batch, int i, int salt)
{
    return (uint32_t)(batch * BATCH + i + 1) * (salt ? 2246822519u : 2654435761u);
}

static uint64_t append_rids(struct store *s, int batch)
{
    static char msgs[BATCH][64];
    struct lc_entry e[BATCH];
    for (int i = 0; i < BATCH; i++) {
        int n = snprintf(msgs[i], sizeof(msgs[i]), "rid=%08x user=%08x done", rid_of(batch, i, 0),
                         rid_of(batch, i, 1));
        e[i] = (struct lc_entry){.ts_ms = 1700000000000LL + i,
                                 .recv_ms = 1700000000000LL + i,
                                 .level = LC_INFO,
                                 .source = SRC,
                                 .source_len = strlen(SRC),
                                 .msg = msgs[i],
                                 .msg_len = (size_t)n};
    }
    if (store_append(s, e, BATCH) < 0)
        return 0;
    for (int t = 0; t < 500 && store_done_id(s) < e[BATCH - 1].id; t++)
        sleep_ms(10);
    return store_done_id(s) >= e[BATCH - 1].id ? e[0].id : 0;
}

static struct qry *rid_query(int batch, int i)
{
    char text[64], err[QRY_ERR_MAX];
    struct qry *q = NULL;
    int n = snprintf(text, sizeof(text), "\"rid=%08x user=%08x \"", rid_of(batch, i, 0),
                     rid_of(batch, i, 1));
    CHECK_EQ_INT(qry_compile(text, (size_t)n, 0, &q, err), 0);
    return q;
}

/* Counts over every batch: one entry of `batch`, and none of a batch never written. */
static void check_rid_counts(struct store *s, int batch)
{
    struct qry *one = rid_query(batch, 17), *none = rid_query(99, 17);
    uint64_t n = 0, resume = 0;
    CHECK_EQ_INT(qry_count(s, one, 1, UINT64_MAX, SIZE_MAX, &n, &resume), 1);
    CHECK_EQ_INT(n, 1);
    n = 0;
    CHECK_EQ_INT(qry_count(s, none, 1, UINT64_MAX, SIZE_MAX, &n, &resume), 1);
    CHECK_EQ_INT(n, 0);
    qry_free(one);
    qry_free(none);
}

/* How many blocks have a token filter, of how many; and, for those that have one, whether it
 * (alone: no trigram filter) rules out every block but the one holding entry 17 of `batch`. */
static void count_filters(struct store *s, int batch, uint64_t batch_first, int *with, int *all)
{
    struct qry *q = rid_query(batch, 17);
    struct store_cursor c;
    store_cursor_init(&c, 1, UINT64_MAX, true);
    *with = *all = 0;
    while (store_cursor_next(s, &c)) {
        (*all)++;
        if (!lc_block_tokens(c.info))
            continue;
        (*with)++;
        struct lc_block_info tokens_only = *c.info;
        tokens_only.filter = NULL;
        bool holds = c.info->first_id <= batch_first + 17 && c.info->last_id >= batch_first + 17;
        CHECK(qry_block_may_match(q, &tokens_only) == holds);
    }
    qry_free(q);
}

static uint64_t tokens_pending(struct store *s)
{
    struct store_stats st;
    store_get_stats(s, &st);
    return st.tokens_pending;
}

/* Blocks are published without a token filter; counts are exact before the builder makes them,
 * and after; a restart keeps them (the index is written again once they are all there), and
 * blocks whose filters were still missing at a stop get them after the next start. */
TEST(token_filters_built_after_publishing)
{
    struct store *s = open_store(64u << 20, 64u << 20, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    store_tokens_hold(s, true); /* Before any block: the first pass finds none. */
    uint64_t first[8];
    for (int b = 0; b < 4; b++)
        CHECK((first[b] = append_rids(s, b)) != 0);
    int with, all;
    count_filters(s, 2, first[2], &with, &all);
    CHECK_EQ_INT(with, 0);
    CHECK_EQ_INT(all, 4);
    CHECK_EQ_INT(tokens_pending(s), 4);
    check_rid_counts(s, 2);

    store_tokens_hold(s, false);
    for (int t = 0; t < 500 && tokens_pending(s); t++)
        sleep_ms(10);
    CHECK_EQ_INT(tokens_pending(s), 0);
    count_filters(s, 2, first[2], &with, &all);
    CHECK_EQ_INT(with, 4);
    check_rid_counts(s, 2);
    store_close(s);

    /* The index written at the stop has every filter: none is missing after a restart. */
    s = reopen_store(64u << 20, 64u << 20, 0, true);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK_EQ_INT(tokens_pending(s), 0);
    count_filters(s, 3, first[3], &with, &all);
    CHECK_EQ_INT(with, 4);
    /* Blocks still without a filter at a stop are indexed without one... */
    for (int b = 4; b < 8; b++)
        CHECK((first[b] = append_rids(s, b)) != 0);
    CHECK_EQ_INT(tokens_pending(s), 4);
    check_rid_counts(s, 6);
    store_close(s);
    s = reopen_store(64u << 20, 64u << 20, 0, true);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK_EQ_INT(tokens_pending(s), 4);
    count_filters(s, 6, first[6], &with, &all);
    CHECK_EQ_INT(with, 4);
    CHECK_EQ_INT(all, 8);
    check_rid_counts(s, 6);
    check_rid_counts(s, 1);
    /* ...built after the next start, and the index is written again with them. */
    store_tokens_hold(s, false);
    for (int t = 0; t < 500 && tokens_pending(s); t++)
        sleep_ms(10);
    CHECK_EQ_INT(tokens_pending(s), 0);
    count_filters(s, 6, first[6], &with, &all);
    CHECK_EQ_INT(with, 8);
    check_rid_counts(s, 6);
    store_close(s);
    s = reopen_store(64u << 20, 64u << 20, 0, true);
    CHECK(s != NULL);
    if (!s)
        return;
    CHECK_EQ_INT(tokens_pending(s), 0);
    store_close(s);
    wipe();
}

static uint64_t cache_bytes(struct store *s)
{
    struct store_stats st;
    store_get_stats(s, &st);
    return st.bytes;
}

/* Count-scan blocks from..to (store_block_scan_lines), newest first; cached[i] tells whether the
 * i-th block of the store, newest first, came from the cache (blocks outside the range are
 * only looked up). */
static int scan_lines(struct store *s, uint64_t from, uint64_t to, bool *cached, int max)
{
    struct store_cursor c;
    store_cursor_init(&c, 0, UINT64_MAX, false);
    int n = 0;
    while (store_cursor_next(s, &c)) {
        struct store_block blk;
        bool in = c.info->first_id >= from && c.info->last_id <= to;
        CHECK_EQ_INT(in ? store_block_scan_lines(s, &c, &blk) : 0, 0);
        if (n < max)
            cached[n] = in ? blk.cb != NULL : store_block_cached(s, &c);
        if (in) {
            CHECK(blk.lines != NULL || (blk.raw != NULL && blk.offs != NULL));
            store_block_close(s, &blk);
        }
        n++;
    }
    store_cursor_end(s, &c);
    return n;
}

static int count_true(const bool *v, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += v[i];
    return k;
}

/* Wait (5 s at most) until the blocks of want, newest first, are the cached ones. */
static bool wait_cached(struct store *s, const bool *want, int nb)
{
    bool got[16];
    for (int t = 0; t < 500; t++) {
        scan_lines(s, 1, 0, got, nb); /* An empty range: looks only. */
        if (memcmp(got, want, (size_t)nb * sizeof(bool)) == 0)
            return true;
        sleep_ms(10);
    }
    for (int i = 0; i < nb; i++)
        fprintf(stderr, "  block %d (newest first): cached %d, want %d\n", i, got[i], want[i]);
    return false;
}

/* Rows of blocks first[from..to] opened (cached on the way, at the hot end). */
static void open_rows(struct store *s, uint64_t from, uint64_t to)
{
    struct store_cursor c;
    store_cursor_init(&c, from, to, true);
    while (store_cursor_next(s, &c)) {
        struct store_block blk;
        CHECK_EQ_INT(store_block_open(s, &c, &blk), 0);
        CHECK(blk.cb != NULL);
        store_block_close(s, &blk);
    }
    store_cursor_end(s, &c);
}

/* A count reads the blocks the cache misses through its thread's buffer and caches none of
 * them, even while the cache has room (the page faults of filling it are not the query's to
 * pay); the token filter builder then caches the ones it read, in its idle time, newest first,
 * without evicting anything. A block read again before the builder got to it is cached on the
 * way. */
TEST(counts_leave_filling_the_cache_to_the_builder)
{
    enum { NB = 10 };
    struct store *s = open_store(64u << 20, 64u << 20, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    uint64_t first[NB];
    for (int b = 0; b < NB; b++)
        CHECK((first[b] = append_batch(s, b)) != 0);
    store_close(s);

    s = reopen_store(64u << 20, 64u << 20, 0, true); /* The builder held. */
    CHECK(s != NULL);
    if (!s)
        return;
    bool cached[NB], want[NB];
    uint64_t before = cache_bytes(s);
    CHECK_EQ_INT(scan_lines(s, 1, UINT64_MAX, cached, NB), NB);
    CHECK_EQ_INT(count_true(cached, NB), 0);
    CHECK_EQ_INT(cache_bytes(s), before); /* Read past the cache, not into it. */
    /* Read again before the builder got to them: cached on the way this time. */
    CHECK_EQ_INT(scan_lines(s, 1, UINT64_MAX, cached, NB), NB);
    CHECK_EQ_INT(count_true(cached, NB), NB);
    CHECK(cache_bytes(s) > before);
    /* Only what the counts read is cached: here blocks 2..4, the 6th to 8th newest. */
    store_close(s);
    s = reopen_store(64u << 20, 64u << 20, 0, false);
    CHECK(s != NULL);
    if (!s)
        return;
    scan_lines(s, first[2], first[5] - 1, cached, NB);
    CHECK_EQ_INT(count_true(cached, NB), 0);
    for (int i = 0; i < NB; i++)
        want[i] = i >= 5 && i <= 7;
    CHECK(wait_cached(s, want, NB));
    uint64_t per_block = (cache_bytes(s) - before) / 3;
    CHECK(per_block > BATCH * MSG);
    store_close(s);

    /* Room for four and a half blocks, two of them taken by rows read (the newest two): of the
     * six oldest that a count reads, the builder caches the newest two, and evicts nothing. */
    s = reopen_store(before + per_block * 9 / 2, 64u << 20, 0, true);
    CHECK(s != NULL);
    if (!s)
        return;
    open_rows(s, first[8], UINT64_MAX);
    scan_lines(s, first[0], first[6] - 1, cached, NB);
    CHECK_EQ_INT(count_true(cached, NB), 2);
    store_tokens_hold(s, false);
    for (int i = 0; i < NB; i++)
        want[i] = i < 2 || i == 4 || i == 5;
    CHECK(wait_cached(s, want, NB));
    sleep_ms(200); /* Time to go further, were it to. */
    CHECK(wait_cached(s, want, NB));
    store_close(s);
    wipe();
}

/* Past the blocks remembered one by one (two here), a count is remembered as the range it
 * read: the builder caches that range and nothing beyond it. Warmed blocks go to the cold end
 * of the LRU order, the oldest coldest, so rows read afterwards evict the oldest warmed block,
 * not the rows read before them. */
TEST(a_long_count_is_warmed_as_its_range_at_the_cold_end)
{
    enum { NB = 10 };
    struct store *s = open_store(64u << 20, 64u << 20, 0);
    CHECK(s != NULL);
    if (!s)
        return;
    uint64_t first[NB + 1];
    for (int b = 0; b < NB; b++)
        CHECK((first[b] = append_batch(s, b)) != 0);
    first[NB] = UINT64_MAX;
    store_close(s);
    /* One block's bytes in the cache. */
    s = reopen_store(64u << 20, 64u << 20, 0, true);
    CHECK(s != NULL);
    if (!s)
        return;
    uint64_t before = cache_bytes(s);
    open_rows(s, first[0], first[1] - 1);
    uint64_t per_block = cache_bytes(s) - before;
    CHECK(per_block > BATCH * MSG);
    store_close(s);

    /* Room for seven and a half blocks. A count reads blocks 1..6. */
    s = reopen_store_warm(before + per_block * 15 / 2, 64u << 20, 0, true, 2);
    CHECK(s != NULL);
    if (!s)
        return;
    bool cached[NB], want[NB];
    CHECK_EQ_INT(scan_lines(s, first[1], first[7] - 1, cached, NB), NB);
    CHECK_EQ_INT(count_true(cached, NB), 0);
    store_tokens_hold(s, false);
    for (int i = 0; i < NB; i++) /* Newest first: block b is at NB - 1 - b. */
        want[i] = i >= NB - 7 && i <= NB - 2;
    CHECK(wait_cached(s, want, NB));
    sleep_ms(200); /* Time to go further, were it to. */
    CHECK(wait_cached(s, want, NB));
    /* Rows of blocks 8 and 9: the second finds the cache full and evicts block 1. */
    open_rows(s, first[8], UINT64_MAX);
    for (int i = 0; i < NB; i++)
        want[i] = i != NB - 2 && i != NB - 8 && i != NB - 1;
    CHECK(wait_cached(s, want, NB));
    store_close(s);
    wipe();
}

int main(void)
{
    log_verbosity = LOGV_WARN; /* The store's info lines (segments deleted) are expected here. */
    RUN(cursor_walks_blocks_both_ways);
    RUN(cursor_holds_blocks_retention_deletes);
    RUN(opened_block_outlives_eviction);
    RUN(scan_and_count_sliced_by_budget);
    RUN(token_filters_built_after_publishing);
    RUN(counts_leave_filling_the_cache_to_the_builder);
    RUN(a_long_count_is_warmed_as_its_range_at_the_cold_end);
    return check_summary("test_store");
}
