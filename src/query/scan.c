/* scan.c - a compiled query run over the store's blocks: skip by summary, match, count.
 *
 * The store hands out blocks (store.h): a cursor over their summaries, and the entries of the
 * blocks opened. Everything that knows the language is here: which blocks a query rules out
 * (qry_block_may_match), which it can count from the summary alone (qry_block_count), and
 * which entries match. A scan is bounded by a budget of entries examined, so a caller on an
 * event loop can slice a long scan; ruling a block out costs SKIP_COST, not its length. No
 * store lock is held while visit runs. */
#define _GNU_SOURCE /* memrchr */
#include <stddef.h>
#include <string.h>

#include "query/pool.h"
#include "query/qry_internal.h"
#include "store/store.h"
#include "store/tokfilter.h"

#define SKIP_COST  64   /* Budget units charged for ruling out a block (or failing to read it). */
#define STOP_EVERY 64   /* Entries between checks whether the query pool wants the step back. */
#define CAND_MAX   8192 /* Most entries of a block the prefilter marks; longer blocks go without. */

/* Mark in cand (bit k - base for entry k of the block) the entries among k0..k1 whose row holds
 * needle n: one search over their rows, back to back, instead of one per message. A hit in a
 * row's header or source, or across two rows, only marks an extra candidate; a row whose
 * message holds n is always marked, since every search starts at or before its row and the
 * first hit at or after that start lies in it or marks an earlier row, after which the search
 * resumes at the next row. */
static void prefilter(const struct ci_needle *n, const struct store_block *blk, uint32_t k0,
                      uint32_t k1, uint32_t base, uint64_t *cand)
{
    const char *rows = blk->raw;
    const uint32_t *offs = blk->offs;
    uint32_t pos = offs[k0], end = offs[k1 + 1], k = k0;
    while (pos < end) {
        const char *hit = ci_needle_find(n, rows + pos, end - pos);
        if (!hit)
            break;
        uint32_t at = (uint32_t)(hit - rows);
        /* The row holding the hit: a short walk from k when hits are dense, a binary search
         * when they are far apart. */
        if (at - pos > 2048) {
            uint32_t lo = k, hi = k1;
            while (lo < hi) {
                uint32_t mid = lo + (hi - lo + 1) / 2;
                if (offs[mid] <= at)
                    lo = mid;
                else
                    hi = mid - 1;
            }
            k = lo;
        } else {
            while (offs[k + 1] <= at)
                k++;
        }
        cand[(k - base) / 64] |= 1ull << ((k - base) % 64);
        if (k == k1)
            break;
        pos = offs[++k];
    }
}

/* Mark in cand (bit k - k0) the entries among k0..k1 of a block of count entries that may
 * match: those in the stripes set in stripes (qry_block_stripes), and of those, when need is
 * not NULL, the ones whose row holds it. Returns false, marking nothing, when every entry is
 * to be examined, or there are too many for cand. */
static bool candidates(const struct ci_needle *need, uint32_t stripes,
                       const struct store_block *blk, uint32_t count, uint32_t k0, uint32_t k1,
                       uint64_t *cand)
{
    if ((!need && stripes == QRY_ALL_STRIPES) || k1 - k0 >= CAND_MAX)
        return false;
    memset(cand, 0, ((size_t)(k1 - k0) / 64 + 1) * sizeof(uint64_t));
    for (unsigned s = 0; s < TOKF_STRIPES;) {
        if (!(stripes >> s & 1)) {
            s++;
            continue;
        }
        unsigned e = s + 1; /* A run of stripes s..e-1, read as one. */
        while (e < TOKF_STRIPES && stripes >> e & 1)
            e++;
        uint32_t a = tokf_stripe_first(s, count), b = tokf_stripe_first(e, count);
        a = a > k0 ? a : k0;
        b = b - 1 < k1 ? b - 1 : k1; /* The first entry of stripe e >= 1 is >= 1. */
        if (a <= b) {
            if (need)
                prefilter(need, blk, a, b, k0, cand);
            else
                for (uint32_t k = a; k <= b; k++)
                    cand[(k - k0) / 64] |= 1ull << ((k - k0) % 64);
        }
        s = e;
    }
    return true;
}

enum block_end {
    BLOCK_DONE,   /* Every entry of the block's part of the range was examined. */
    BLOCK_STOP,   /* visit returned false. */
    BLOCK_BUDGET, /* The budget ran out; *resume is the next id to examine. */
};

/* Whether a walk over from..to reads past block b: then its blocks are opened for one pass
 * (store_block_scan), so a long scan leaves the cache to the blocks read again and again. A
 * read within one block (a row fetched by id) caches it for the reads of its neighbours. */
static bool passing(const struct lc_block_info *b, uint64_t from_id, uint64_t to_id)
{
    return from_id < b->first_id || to_id > b->last_id;
}

/* Examine ids lo..hi of opened block blk (the cursor's, in its order) against q, calling visit
 * for each match, while *spent < budget. */
static enum block_end scan_rows(const struct qry *q, const struct store_cursor *c,
                                const struct store_block *blk, uint64_t lo, uint64_t hi,
                                size_t budget, size_t *spent, qry_visit_fn visit, void *arg,
                                uint64_t *resume)
{
    /* A needle every match holds: search the rows for it once, examine only those holding it;
     * and only in the stripes whose filters may hold a match. */
    const struct ci_needle *need = q ? qnode_required(q->root) : NULL;
    uint32_t stripes = q ? qry_block_stripes(q, c->info) : QRY_ALL_STRIPES;
    uint64_t cand[CAND_MAX / 64];
    uint32_t count = (uint32_t)(c->info->last_id - c->info->first_id + 1);
    bool some = candidates(need, stripes, blk, count, (uint32_t)(lo - blk->first_id),
                           (uint32_t)(hi - blk->first_id), cand);
    for (uint64_t k = 0; k <= hi - lo; k++) {
        uint64_t id = c->forward ? lo + k : hi - k;
        if (*spent >= budget || (k % STOP_EVERY == STOP_EVERY - 1 && qpool_should_stop())) {
            *resume = id; /* Cancelled or out of time: like a spent budget, the rest waits. */
            return BLOCK_BUDGET;
        }
        (*spent)++;
        if (some && !(cand[(id - lo) / 64] >> ((id - lo) % 64) & 1))
            continue;
        struct lc_entry e;
        store_block_entry(blk, id, &e);
        if (q && !qry_match(q, &e))
            continue;
        if (!visit(arg, &e))
            return BLOCK_STOP;
    }
    return BLOCK_DONE;
}

/* Whether a block's summary rules it out for q (or it is known to be unreadable). */
static bool ruled_out(const struct qry *q, const struct store_cursor *c)
{
    return c->bad || (q && !qry_block_may_match(q, c->info));
}

/* Examine ids lo..hi of the cursor's block (in its order) against q, calling visit for each
 * match, while *spent < budget. pass: see passing(). */
static enum block_end scan_block(struct store *s, const struct qry *q, const struct store_cursor *c,
                                 bool pass, uint64_t lo, uint64_t hi, size_t budget, size_t *spent,
                                 qry_visit_fn visit, void *arg, uint64_t *resume)
{
    struct store_block blk;
    if (ruled_out(q, c) ||
        (pass ? store_block_scan(s, c, &blk) : store_block_open(s, c, &blk)) < 0) {
        *spent += SKIP_COST;
        return BLOCK_DONE;
    }
    enum block_end end = scan_rows(q, c, &blk, lo, hi, budget, spent, visit, arg, resume);
    store_block_close(s, &blk);
    return end;
}

/* How many of the messages in p[0..len) (each followed by '\n') q matches; q reads messages
 * only. Like rg over a file: one search for the needle every match holds through the whole
 * run, and only the lines it hits are matched in full. */
static uint64_t count_lines(const struct qry *q, const char *p, size_t len)
{
    const struct ci_needle *need = qnode_required(q->root);
    const char *end = p + len;
    struct lc_entry e = {.level = LC_INFO};
    uint64_t n = 0;
    while (p < end) {
        const char *at = p;
        if (need) {
            if (!(at = ci_needle_find(need, p, (size_t)(end - p))))
                break;
            const char *nl = memrchr(p, '\n', (size_t)(at - p));
            if (nl)
                p = nl + 1; /* The start of the line the hit begins in. */
        }
        const char *eol = memchr(at, '\n', (size_t)(end - at));
        if (!eol)
            eol = end;
        e.msg = p;
        e.msg_len = (size_t)(eol - p);
        n += qry_match(q, &e);
        p = eol + 1;
    }
    return n;
}

int qry_scan(struct store *s, const struct qry *q, uint64_t from_id, uint64_t to_id, bool forward,
             size_t budget, qry_visit_fn visit, void *arg, uint64_t *resume)
{
    if (from_id > to_id)
        return 1;
    struct store_cursor c;
    store_cursor_init(&c, from_id, to_id, forward);
    size_t spent = 0;
    int done = 1;
    while (store_cursor_next(s, &c)) {
        uint64_t lo = from_id > c.info->first_id ? from_id : c.info->first_id;
        uint64_t hi = to_id < c.info->last_id ? to_id : c.info->last_id;
        if (spent >= budget) {
            *resume = forward ? lo : hi;
            done = 0;
            break;
        }
        enum block_end end = scan_block(s, q, &c, passing(c.info, from_id, to_id), lo, hi, budget,
                                        &spent, visit, arg, resume);
        if (end != BLOCK_DONE) {
            done = end == BLOCK_STOP;
            break;
        }
    }
    store_cursor_end(s, &c);
    return done;
}

static bool count_visit(void *arg, const struct lc_entry *e)
{
    (void)e;
    (*(uint64_t *)arg)++;
    return true;
}

int qry_count(struct store *s, const struct qry *q, uint64_t from_id, uint64_t to_id, size_t budget,
              uint64_t *count, uint64_t *resume)
{
    if (from_id > to_id)
        return 1;
    struct store_cursor c;
    store_cursor_init(&c, from_id, to_id, true);
    size_t spent = 0;
    const bool lines = q && qnode_message_only(q->root);
    while (store_cursor_next(s, &c)) {
        const struct lc_block_info *b = c.info;
        if (spent >= budget) {
            *resume = from_id > b->first_id ? from_id : b->first_id;
            store_cursor_end(s, &c);
            return 0;
        }
        /* Whole blocks whose summary answers the question are counted from the index alone. */
        bool whole = from_id <= b->first_id && to_id >= b->last_id;
        int64_t n = whole ? qry_block_count(q, b) : -1;
        if (c.bad)
            n = 0;
        if (n >= 0) {
            *count += (uint64_t)n;
            spent += 1;
            continue;
        }
        /* Read this block's entries: all of its part of the range, whatever the budget left. */
        uint64_t lo = from_id > b->first_id ? from_id : b->first_id;
        uint64_t hi = to_id < b->last_id ? to_id : b->last_id;
        spent += hi - lo + 1;
        if (lines && whole && passing(b, from_id, to_id) && !ruled_out(q, &c)) {
            /* A whole block read for its messages only: counted over them as they are stored,
             * when the block is not in the cache (rows otherwise). */
            if (qpool_should_stop()) {
                *resume = lo;
                store_cursor_end(s, &c);
                return 0;
            }
            struct store_block blk;
            if (store_block_scan_lines(s, &c, &blk) < 0)
                continue; /* Unreadable now, or deleted: as scan_block. */
            enum block_end end = BLOCK_DONE;
            size_t block_spent = 0;
            uint64_t r = 0;
            if (blk.lines)
                *count += count_lines(q, blk.lines, blk.lines_len);
            else
                end =
                    scan_rows(q, &c, &blk, lo, hi, SIZE_MAX, &block_spent, count_visit, count, &r);
            store_block_close(s, &blk);
            if (end == BLOCK_BUDGET) {
                *resume = r;
                store_cursor_end(s, &c);
                return 0;
            }
            continue;
        }
        size_t block_spent = 0;
        uint64_t r;
        if (scan_block(s, q, &c, passing(b, from_id, to_id), lo, hi, SIZE_MAX, &block_spent,
                       count_visit, count, &r) == BLOCK_BUDGET) {
            *resume = r; /* Interrupted (qpool_should_stop): the count is partial. */
            store_cursor_end(s, &c);
            return 0;
        }
    }
    return 1;
}

int qry_fold(struct store *s, const struct qry *q, uint64_t from_id, uint64_t to_id,
             qry_block_fn take_block, qry_visit_fn visit, void *arg)
{
    if (from_id > to_id)
        return 1;
    struct store_cursor c;
    store_cursor_init(&c, from_id, to_id, true);
    while (store_cursor_next(s, &c)) {
        const struct lc_block_info *b = c.info;
        if (c.bad)
            continue;
        bool whole = from_id <= b->first_id && to_id >= b->last_id;
        if (whole && take_block && take_block(arg, b))
            continue; /* Its summary answered: no entry read. */
        uint64_t lo = from_id > b->first_id ? from_id : b->first_id;
        uint64_t hi = to_id < b->last_id ? to_id : b->last_id;
        size_t spent = 0;
        uint64_t r;
        if (scan_block(s, q, &c, passing(b, from_id, to_id), lo, hi, SIZE_MAX, &spent, visit, arg,
                       &r) != BLOCK_DONE) {
            store_cursor_end(s, &c);
            return 0;
        }
    }
    return 1;
}
