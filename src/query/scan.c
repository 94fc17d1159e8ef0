/* scan.c - a compiled query run over the store's blocks: skip by summary, match, count.
 *
 * The store hands out blocks (store.h): a cursor over their summaries, and the entries of the
 * blocks opened. Everything that knows the language is here: which blocks a query rules out
 * (qry_block_may_match), which it can count from the summary alone (qry_block_count), and
 * which entries match. A scan is bounded by a budget of entries examined, so a caller on an
 * event loop can slice a long scan; ruling a block out costs SKIP_COST, not its length. No
 * store lock is held while visit runs. */
#include <stddef.h>

#include "query/pool.h"
#include "query/qry.h"
#include "store/store.h"

#define SKIP_COST  64 /* Budget units charged for ruling out a block (or failing to read it). */
#define STOP_EVERY 16 /* Entries between checks whether the query pool wants the step back. */

enum block_end {
    BLOCK_DONE,   /* Every entry of the block's part of the range was examined. */
    BLOCK_STOP,   /* visit returned false. */
    BLOCK_BUDGET, /* The budget ran out; *resume is the next id to examine. */
};

/* Examine ids lo..hi of the cursor's block (in its order) against q, calling visit for each
 * match, while *spent < budget. */
static enum block_end scan_block(struct store *s, const struct qry *q, const struct store_cursor *c,
                                 uint64_t lo, uint64_t hi, size_t budget, size_t *spent,
                                 qry_visit_fn visit, void *arg, uint64_t *resume)
{
    if (c->bad || (q && !qry_block_may_match(q, c->info))) {
        *spent += SKIP_COST;
        return BLOCK_DONE;
    }
    struct store_block blk;
    if (store_block_open(s, c, &blk) < 0) {
        *spent += SKIP_COST;
        return BLOCK_DONE;
    }
    enum block_end end = BLOCK_DONE;
    for (uint64_t k = 0; k <= hi - lo; k++) {
        uint64_t id = c->forward ? lo + k : hi - k;
        if (*spent >= budget || (k % STOP_EVERY == STOP_EVERY - 1 && qpool_should_stop())) {
            *resume = id; /* Cancelled or out of time: like a spent budget, the rest waits. */
            end = BLOCK_BUDGET;
            break;
        }
        (*spent)++;
        struct lc_entry e;
        store_block_entry(&blk, id, &e);
        if (q && !qry_match(q, &e))
            continue;
        if (!visit(arg, &e)) {
            end = BLOCK_STOP;
            break;
        }
    }
    store_block_close(s, &blk);
    return end;
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
        enum block_end end = scan_block(s, q, &c, lo, hi, budget, &spent, visit, arg, resume);
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
    while (store_cursor_next(s, &c)) {
        const struct lc_block_info *b = c.info;
        if (spent >= budget) {
            *resume = from_id > b->first_id ? from_id : b->first_id;
            store_cursor_end(s, &c);
            return 0;
        }
        /* Whole blocks whose summary answers the question are counted from the index alone. */
        int64_t n = (from_id <= b->first_id && to_id >= b->last_id) ? qry_block_count(q, b) : -1;
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
        size_t block_spent = 0;
        uint64_t r;
        if (scan_block(s, q, &c, lo, hi, SIZE_MAX, &block_spent, count_visit, count, &r) ==
            BLOCK_BUDGET) {
            *resume = r; /* Interrupted (qpool_should_stop): the count is partial. */
            store_cursor_end(s, &c);
            return 0;
        }
        spent += hi - lo + 1;
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
        if (scan_block(s, q, &c, lo, hi, SIZE_MAX, &spent, visit, arg, &r) != BLOCK_DONE) {
            store_cursor_end(s, &c);
            return 0;
        }
    }
    return 1;
}
