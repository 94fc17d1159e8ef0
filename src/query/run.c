/* run.c - query runs on the pool, their output queue, and its hand-over to the reactor.
 *
 * Kinds of run:
 *   rows   SEARCH and the older forms: the two-phase executor (exec.h), one step at a time;
 *   count  COUNT: the store cut into shares of whole blocks, counted in parallel;
 *   fold   a query with pipes (pipe.h), or a front end's own fold (the histogram): shares
 *          folded into parts in parallel, parts merged;
 *   limit  a query whose pipes only keep the newest N: one part scanning newest first until
 *          the limit is reached;
 *   list   the matching entries of a range in order, up to a number (HTTP pages, backfill).
 * Output is a byte queue of events (count, row, table, error, end) that the pool thread
 * appends to and the reactor takes whole, under the run's lock. */
#include "query/run.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ev.h"
#include "query/pool.h"
#include "query/qry.h"
#include "store/store.h"

#define OUT_CAP      (256u * 1024) /* Output bytes waiting before the run pauses. */
#define STEP_BUDGET  (1u << 18)    /* Entries examined per step of a sequential run. */
#define SHARE_BLOCKS 32            /* Blocks per share of a parallel run. */

enum ev_kind { E_COUNT = 1, E_ROW, E_TABLE, E_RESULT, E_ERROR, E_END, E_PARTIAL };
enum run_kind { RUN_ROWS, RUN_COUNT, RUN_FOLD, RUN_LIMIT, RUN_LIST, RUN_REMOTE };

struct bytes {
    char *p;
    size_t len, cap, off;
};

struct qrun {
    struct qtask task;
    pthread_mutex_t mu;
    int refs;
    /* The owner (on home's thread), NULL once closed. */
    struct ev_loop *home;
    void (*ready)(void *owner);
    void *owner;
    bool posted;  /* A ready call is on its way to home. */
    bool blocked; /* The pool parked the run on a full output. */
    /* What runs. */
    enum run_kind kind;
    struct store *store;
    struct qry *q;
    uint64_t lo, hi;
    struct qexec *x;              /* RUN_ROWS */
    uint64_t *bounds;             /* Parallel: share i is ids bounds[i]..bounds[i+1]-1. */
    size_t nshares, next;         /* Shares, and the next one to take (under mu). */
    bool planned;                 /* bounds computed (under mu). */
    uint64_t count;               /* RUN_COUNT (under mu); RUN_LIST: rows sent. */
    const struct qfold_ops *fops; /* RUN_FOLD, */
    void *fctx;                   /* its context, */
    void *merged;                 /* and the merged part (under mu). */
    bool piped;                   /* RUN_FOLD/RUN_LIMIT of pipes: the answer is a table. */
    struct qagg *agg;             /* RUN_LIMIT: the one part. */
    uint64_t cursor;              /* RUN_LIMIT, RUN_LIST: next id to examine. */
    bool forward;                 /* RUN_LIST: oldest first. */
    uint64_t max_rows;            /* RUN_LIST: 0 = all. */
    struct qrun_bound blo, bhi;   /* A cluster's list: between these entries. */
    bool paused;                  /* RUN_LIST: the last visit stopped on a full output. */
    char err[QRY_ERR_MAX];        /* Why it failed (under mu), or "". */
    /* Output: the pool appends to out (under mu); the owner takes it into in. */
    struct bytes out, in;
    struct qtable *table; /* Delivered table, and the next row to hand out. */
    size_t table_next;
    bool table_started;
    bool want_part;    /* qrun_start_part: answer with the unfinished part, */
    struct qagg *part; /* which is the run's until delivered. */
    void *remote;      /* RUN_REMOTE: the hook's handle, until */
    bool ended;        /* qrun_put_end. */
};

static const struct qrun_remote *remote_ops;
static struct qrun *remote_prepare(struct ev_loop *home, struct qry *q, void (*ready)(void *owner),
                                   void *owner);
static void remote_go(struct qrun *r, enum qrun_want want);
static struct qrun *remote_start(struct ev_loop *home, struct qry *q, enum qrun_want want,
                                 void (*ready)(void *owner), void *owner);
static struct qrun *refused(struct ev_loop *home, struct qry *q, const char *why,
                            void (*ready)(void *owner), void *owner);

static size_t mem_limit = 256u << 20;

void qrun_set_memory_limit(size_t bytes)
{
    mem_limit = bytes;
}

/* ------------------------------------------------------------------------------------------ */
/* Lifetime and the hand-over to the owner's loop. */

static void run_free(struct qrun *r)
{
    qexec_free(r->x);
    qagg_free(r->agg);
    qagg_free(r->part);
    if (r->merged)
        r->fops->part_free(r->merged);
    qtable_free(r->table);
    qry_free(r->q);
    free(r->bounds);
    free(r->out.p);
    free(r->in.p);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static void unref(struct qrun *r)
{
    pthread_mutex_lock(&r->mu);
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last)
        run_free(r);
}

static void ready_cb(struct ev_loop *loop, void *arg)
{
    (void)loop;
    struct qrun *r = arg;
    pthread_mutex_lock(&r->mu);
    r->posted = false;
    void *owner = r->owner;
    pthread_mutex_unlock(&r->mu);
    if (owner)
        r->ready(owner);
    unref(r);
}

/* Tell the owner output is waiting (mu held). */
static void notify(struct qrun *r)
{
    if (r->posted || !r->owner)
        return;
    r->posted = true;
    r->refs++;
    if (ev_post(r->home, ready_cb, r) < 0) {
        r->posted = false;
        r->refs--;
    }
}

/* Append one event (mu held). Out of memory loses the event; the end is small and kept in
 * reserve by the caller's check. */
static void emit(struct qrun *r, enum ev_kind k, const void *a, size_t alen, const void *b,
                 size_t blen)
{
    size_t need = 5 + alen + blen;
    if (r->out.len + need > r->out.cap) {
        size_t cap = r->out.cap ? r->out.cap : 4096;
        while (cap < r->out.len + need)
            cap *= 2;
        char *p = realloc(r->out.p, cap);
        if (!p)
            return;
        r->out.p = p;
        r->out.cap = cap;
    }
    char *w = r->out.p + r->out.len;
    uint32_t len = (uint32_t)(alen + blen);
    w[0] = (char)k;
    memcpy(w + 1, &len, 4);
    if (alen)
        memcpy(w + 5, a, alen);
    if (blen)
        memcpy(w + 5 + alen, b, blen);
    r->out.len += need;
    notify(r);
}

/* ------------------------------------------------------------------------------------------ */
/* The executor's sink, on a pool thread. */

struct row_head {
    uint64_t id;
    int64_t ts_ms, recv_ms;
    uint32_t msg_len;
    uint16_t src_len;
    uint8_t level, flags;
};

static void prod_count(void *arg, uint64_t n)
{
    struct qrun *r = arg;
    pthread_mutex_lock(&r->mu);
    emit(r, E_COUNT, &n, sizeof(n), NULL, 0);
    pthread_mutex_unlock(&r->mu);
}

static bool prod_row(void *arg, const struct lc_entry *e)
{
    struct qrun *r = arg;
    size_t src = e->source_len > 65535 ? 65535 : e->source_len;
    struct row_head h = {e->id,         e->ts_ms, e->recv_ms, (uint32_t)e->msg_len,
                         (uint16_t)src, e->level, e->flags};
    /* The head and both strings in one event: the source then the message. */
    size_t alen = sizeof(h) + src;
    char head[sizeof(h) + 65535];
    memcpy(head, &h, sizeof(h));
    memcpy(head + sizeof(h), e->source, src);
    pthread_mutex_lock(&r->mu);
    emit(r, E_ROW, head, alen, e->msg, e->msg_len);
    bool room = r->out.len < OUT_CAP;
    if (!room)
        r->blocked = true;
    pthread_mutex_unlock(&r->mu);
    return room;
}

static const struct qexec_sink prod_sink = {prod_count, prod_row};

/* ------------------------------------------------------------------------------------------ */
/* Steps. */

/* Cut [lo, hi] into shares of whole blocks (once, by the first step; mu held). */
static int plan(struct qrun *r)
{
    if (r->planned)
        return 0;
    r->planned = true;
    size_t cap = 16;
    r->bounds = malloc(cap * sizeof(*r->bounds));
    if (!r->bounds)
        return -ENOMEM;
    r->nshares = 0;
    if (r->hi < r->lo) {
        r->bounds[0] = r->lo;
        return 0;
    }
    struct store_cursor c;
    store_cursor_init(&c, r->lo, r->hi, true);
    size_t k = 0;
    r->bounds[0] = r->lo;
    while (store_cursor_next(r->store, &c)) {
        if (k++ % SHARE_BLOCKS || k == 1)
            continue;
        if (r->nshares + 2 >= cap) {
            uint64_t *b = realloc(r->bounds, cap * 2 * sizeof(*b));
            if (!b) {
                store_cursor_end(r->store, &c);
                return -ENOMEM;
            }
            r->bounds = b;
            cap *= 2;
        }
        uint64_t first = c.info->first_id > r->lo ? c.info->first_id : r->lo;
        if (first > r->bounds[r->nshares])
            r->bounds[++r->nshares] = first;
    }
    r->bounds[++r->nshares] = r->hi + 1;
    return 0;
}

/* Take the next share; false when none is left or the run failed. */
static bool take_share(struct qrun *r, uint64_t *lo, uint64_t *hi)
{
    pthread_mutex_lock(&r->mu);
    bool ok = plan(r) == 0 && !r->err[0] && r->next < r->nshares;
    if (ok) {
        *lo = r->bounds[r->next];
        *hi = r->bounds[r->next + 1] - 1;
        r->next++;
    } else if (!r->err[0] && !r->bounds) {
        snprintf(r->err, sizeof(r->err), "out of memory");
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

static bool agg_visit(void *arg, const struct lc_entry *e)
{
    return qagg_add(arg, e);
}

/* RUN_LIST: send e; stop at max_rows or a full output (the next step starts after e). */
static bool list_visit(void *arg, const struct lc_entry *e)
{
    struct qrun *r = arg;
    r->cursor = r->forward ? e->id + 1 : e->id - 1;
    r->count++;
    if (!prod_row(r, e))
        r->paused = true;
    return !r->paused && !(r->max_rows && r->count >= r->max_rows);
}

/* The pipes as a fold: a part is a qagg, and the query, to tell which blocks its summary
 * answers. */
struct tpart {
    struct qagg *a;
    const struct qry *q;
};

static void *table_part_new(void *ctx)
{
    struct qrun *r = ctx;
    struct tpart *t = malloc(sizeof(*t));
    if (t && !(t->a = qagg_new(qry_pipes(r->q), mem_limit))) {
        free(t);
        t = NULL;
    }
    if (t)
        t->q = r->q;
    return t;
}

static bool table_add(void *part, const struct lc_entry *e)
{
    return qagg_add(((struct tpart *)part)->a, e);
}

/* A block whose matches per level its summary tells (every entry matches, or none of a level
 * does: level filters, ruled-out keywords) goes to the part as counts, when the pipes can
 * take counts (stats by level, time buckets or a field its value summary lists, count()).
 * Each level is asked separately, as a block of that level alone. */
static bool table_take_block(void *part, const struct lc_block_info *b)
{
    struct tpart *t = part;
    if (!b->level_counts)
        return false;
    struct qagg_block blk = {
        .level_counts = b->level_counts, .min_ts = b->min_ts_ms, .max_ts = b->max_ts_ms};
    blk.values = lc_block_values(b, &blk.values_len);
    for (int l = 0; l < LC_LEVEL_COUNT; l++) {
        if (!b->level_counts[l])
            continue;
        uint32_t one[LC_LEVEL_COUNT] = {0};
        one[l] = b->level_counts[l];
        struct lc_block_info only = *b;
        only.level_mask = 1u << l;
        only.level_counts = one;
        only.last_id = only.first_id + one[l] - 1;
        int64_t n = qry_block_count(t->q, &only);
        if (n < 0)
            return false;
        blk.counts[l] = (uint64_t)n;
    }
    return qagg_add_summary(t->a, &blk);
}

static int table_merge(void *into, void *part)
{
    struct tpart *t = part;
    int rc = qagg_merge(((struct tpart *)into)->a, t->a);
    free(t);
    return rc;
}

static const char *table_error(void *part)
{
    return qagg_error(((struct tpart *)part)->a);
}

static void table_free(void *part)
{
    struct tpart *t = part;
    qagg_free(t->a);
    free(t);
}

static const struct qfold_ops table_fold = {.part_new = table_part_new,
                                            .take_block = table_take_block,
                                            .add = table_add,
                                            .merge = table_merge,
                                            .error = table_error,
                                            .part_free = table_free};

static enum qstep step(struct qtask *t)
{
    struct qrun *r = (struct qrun *)t;
    uint64_t lo, hi, resume = 0;
    switch (r->kind) {
    case RUN_ROWS:
        switch (qexec_step(r->x, STEP_BUDGET, &prod_sink, r)) {
        case QX_MORE:
            return QS_MORE;
        case QX_PAUSED:
            return QS_PAUSED;
        case QX_DONE:
            return QS_DONE;
        }
        return QS_DONE;
    case RUN_COUNT: {
        if (!take_share(r, &lo, &hi))
            return QS_DONE;
        uint64_t n = 0;
        qry_count(r->store, r->q, lo, hi, SIZE_MAX, &n, &resume);
        pthread_mutex_lock(&r->mu);
        r->count += n;
        pthread_mutex_unlock(&r->mu);
        return QS_MORE;
    }
    case RUN_FOLD: {
        if (!take_share(r, &lo, &hi))
            return QS_DONE;
        void *part = r->fops->part_new(r->fctx);
        if (!part) {
            pthread_mutex_lock(&r->mu);
            snprintf(r->err, sizeof(r->err), "out of memory");
            pthread_mutex_unlock(&r->mu);
            return QS_DONE;
        }
        qry_fold(r->store, r->q, lo, hi, r->fops->take_block, r->fops->add, part);
        const char *why = r->fops->error ? r->fops->error(part) : NULL;
        pthread_mutex_lock(&r->mu);
        if (why) {
            if (!r->err[0])
                snprintf(r->err, sizeof(r->err), "%s", why);
            r->fops->part_free(part);
        } else if (!r->merged) {
            r->merged = part;
        } else if (r->fops->merge(r->merged, part) < 0 && !r->err[0]) {
            why = r->fops->error ? r->fops->error(r->merged) : NULL;
            snprintf(r->err, sizeof(r->err), "%s", why ? why : "out of memory");
        }
        bool failed = r->err[0] != 0;
        pthread_mutex_unlock(&r->mu);
        return failed ? QS_DONE : QS_MORE;
    }
    case RUN_LIMIT: {
        if (r->cursor < r->lo || r->cursor == 0)
            return QS_DONE;
        int done = qry_scan(r->store, r->q, r->lo, r->cursor, false, STEP_BUDGET, agg_visit, r->agg,
                            &resume);
        const char *why = qagg_error(r->agg);
        if (why) {
            pthread_mutex_lock(&r->mu);
            snprintf(r->err, sizeof(r->err), "%s", why);
            pthread_mutex_unlock(&r->mu);
            return QS_DONE;
        }
        if (done)
            return QS_DONE;
        r->cursor = resume;
        return QS_MORE;
    }
    case RUN_LIST: {
        if (r->cursor < r->lo || r->cursor > r->hi || r->cursor == 0)
            return QS_DONE;
        r->paused = false;
        int done = r->forward ? qry_scan(r->store, r->q, r->cursor, r->hi, true, STEP_BUDGET,
                                         list_visit, r, &resume)
                              : qry_scan(r->store, r->q, r->lo, r->cursor, false, STEP_BUDGET,
                                         list_visit, r, &resume);
        if (r->paused)
            return QS_PAUSED; /* cursor is past the last row sent. */
        if (done || (r->max_rows && r->count >= r->max_rows))
            return QS_DONE;
        r->cursor = resume;
        return QS_MORE;
    }
    case RUN_REMOTE: /* Never on the pool. */
        return QS_DONE;
    }
    return QS_DONE;
}

static void finish(struct qtask *t, enum qend end)
{
    struct qrun *r = (struct qrun *)t;
    char why[QRY_ERR_MAX + 64] = "";
    int64_t limit = qpool_timeout_ms();
    if (end == QE_TIMEOUT && limit % 1000)
        snprintf(why, sizeof(why), "query timed out after %" PRId64 " ms (--query-timeout)", limit);
    else if (end == QE_TIMEOUT)
        snprintf(why, sizeof(why), "query timed out after %" PRId64 " s (--query-timeout)",
                 limit / 1000);
    else if (end == QE_CANCELLED)
        snprintf(why, sizeof(why), "query cancelled");
    struct qtable *table = NULL;
    if (!why[0]) {
        pthread_mutex_lock(&r->mu);
        if (r->err[0])
            snprintf(why, sizeof(why), "%s", r->err);
        pthread_mutex_unlock(&r->mu);
    }
    if (!why[0] && r->piped) {
        struct qagg *a = r->agg;
        if (r->kind == RUN_FOLD && r->merged) {
            a = ((struct tpart *)r->merged)->a;
            free(r->merged);
        }
        r->agg = NULL;
        r->merged = NULL;
        if (!a)
            a = qagg_new(qry_pipes(r->q), mem_limit);
        char err[QRY_ERR_MAX] = "out of memory";
        if (r->want_part) {
            r->part = a;
            if (!a)
                snprintf(why, sizeof(why), "%s", err);
        } else {
            table = a ? qagg_finish(a, err) : NULL;
            if (!table)
                snprintf(why, sizeof(why), "%s", err);
        }
    }
    pthread_mutex_lock(&r->mu);
    if (why[0])
        emit(r, E_ERROR, why, strlen(why), NULL, 0);
    else if (r->kind == RUN_COUNT)
        emit(r, E_COUNT, &r->count, sizeof(r->count), NULL, 0);
    else if (table)
        emit(r, E_TABLE, &table, sizeof(table), NULL, 0);
    else if (r->want_part)
        emit(r, E_RESULT, NULL, 0, NULL, 0);
    else if (r->kind == RUN_FOLD) {
        if (!r->merged)
            r->merged = r->fops->part_new(r->fctx);
        if (r->merged)
            emit(r, E_RESULT, &r->merged, sizeof(r->merged), NULL, 0);
        else
            emit(r, E_ERROR, "out of memory", 13, NULL, 0);
    }
    emit(r, E_END, NULL, 0, NULL, 0);
    pthread_mutex_unlock(&r->mu);
    unref(r); /* The pool's reference. */
}

static const struct qtask_ops run_ops = {step, finish};

/* ------------------------------------------------------------------------------------------ */
/* The owner's side. */

/* A run of q for the owner, with two references: the owner's and its producer's (the pool, or
 * the remote hook). NULL when out of memory (q is freed). */
static struct qrun *run_alloc(struct ev_loop *home, struct qry *q, void (*ready)(void *owner),
                              void *owner)
{
    struct qrun *r = calloc(1, sizeof(*r));
    if (!r) {
        qry_free(q);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    r->refs = 2;
    r->home = home;
    r->ready = ready;
    r->owner = owner;
    r->q = q;
    return r;
}

static struct qrun *run_new(struct ev_loop *home, struct store *s, struct qry *q, uint64_t lo,
                            uint64_t hi, void (*ready)(void *owner), void *owner)
{
    struct qrun *r = run_alloc(home, q, ready, owner);
    if (!r)
        return NULL;
    r->store = s;
    if (lo == 0 && hi == 0)
        store_id_range(s, &lo, &hi);
    r->lo = lo ? lo : 1;
    r->hi = hi;
    return r;
}

static struct qrun *run_submit(struct qrun *r, enum run_kind kind)
{
    r->kind = kind;
    r->task.ops = &run_ops;
    r->task.parallel = kind == RUN_COUNT || kind == RUN_FOLD;
    qpool_submit(&r->task);
    return r;
}

struct qrun *qrun_start(struct ev_loop *home, struct store *s, struct qry *q, bool count_only,
                        uint64_t lo, uint64_t hi, void (*ready)(void *owner), void *owner)
{
    if (!s && remote_ops)
        return remote_start(home, q,
                            count_only     ? QW_COUNT
                            : qry_pipes(q) ? QW_TABLE
                                           : QW_ROWS,
                            ready, owner);
    struct qrun *r = run_new(home, s, q, lo, hi, ready, owner);
    if (!r)
        return NULL;
    const struct qpipes *pipes = qry_pipes(q);
    if (pipes && count_only) {
        snprintf(r->err, sizeof(r->err),
                 "COUNT takes a filter without pipes (a pipe at %zu); use SEARCH for a table",
                 qpipes_bar(pipes));
        return run_submit(r, RUN_COUNT);
    }
    if (pipes) {
        r->piped = true;
        if (qpipes_needs_all(pipes)) {
            r->fops = &table_fold;
            r->fctx = r;
            return run_submit(r, RUN_FOLD);
        }
        r->cursor = r->hi;
        if (!(r->agg = qagg_new(pipes, mem_limit)))
            snprintf(r->err, sizeof(r->err), "out of memory");
        return run_submit(r, RUN_LIMIT);
    }
    if (count_only && !qry_limit(q))
        return run_submit(r, RUN_COUNT);
    r->x = qexec_new_range(s, q, count_only, r->lo, r->hi);
    r->q = NULL; /* The executor owns it now (or freed it). */
    if (!r->x) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        return run_submit(r, RUN_COUNT); /* Answers the error. */
    }
    return run_submit(r, RUN_ROWS);
}

struct qrun *qrun_start_part(struct ev_loop *home, struct store *s, struct qry *q,
                             void (*ready)(void *owner), void *owner)
{
    if (!qry_pipes(q))
        return refused(home, q, "a part needs pipes", ready, owner);
    struct qrun *r = run_new(home, s, q, 0, 0, ready, owner);
    if (!r)
        return NULL;
    r->want_part = true;
    r->piped = true;
    if (qpipes_needs_all(qry_pipes(q))) {
        r->fops = &table_fold;
        r->fctx = r;
        return run_submit(r, RUN_FOLD);
    }
    r->cursor = r->hi;
    if (!(r->agg = qagg_new(qry_pipes(q), mem_limit)))
        snprintf(r->err, sizeof(r->err), "out of memory");
    return run_submit(r, RUN_LIMIT);
}

struct qrun *qrun_start_fold(struct ev_loop *home, struct store *s, struct qry *q, uint64_t lo,
                             uint64_t hi, const struct qfold_ops *ops, void *ctx,
                             void (*ready)(void *owner), void *owner)
{
    if (!s && remote_ops)
        return refused(home, q, "this view is not available in a cluster yet", ready, owner);
    struct qrun *r = run_new(home, s, q, lo, hi, ready, owner);
    if (!r)
        return NULL;
    r->fops = ops;
    r->fctx = ctx;
    return run_submit(r, RUN_FOLD);
}

struct qrun *qrun_start_order(struct ev_loop *home, struct qry *q, struct qrun_bound lo,
                              struct qrun_bound hi, bool forward, uint64_t max_rows,
                              void (*ready)(void *owner), void *owner)
{
    if (!remote_ops)
        return refused(home, q, "entries in arrival order are a cluster's", ready, owner);
    struct qrun *r = remote_prepare(home, q, ready, owner);
    if (r) {
        r->forward = forward;
        r->max_rows = max_rows;
        r->blo = lo;
        r->bhi = hi;
        remote_go(r, QW_LIST);
    }
    return r;
}

void qrun_order_params(const struct qrun *r, struct qrun_bound *lo, struct qrun_bound *hi)
{
    *lo = r->blo;
    *hi = r->bhi;
}

struct qrun *qrun_start_list(struct ev_loop *home, struct store *s, struct qry *q, uint64_t lo,
                             uint64_t hi, bool forward, uint64_t max_rows,
                             void (*ready)(void *owner), void *owner)
{
    if (!s && remote_ops && lo == 0 && hi == 0)
        return qrun_start_order(home, q, (struct qrun_bound){0}, (struct qrun_bound){0}, forward,
                                max_rows, ready, owner);
    if (!s && remote_ops)
        return refused(home, q, "entries by id range are a single node's; use qrun_start_order",
                       ready, owner);
    struct qrun *r = run_new(home, s, q, lo, hi, ready, owner);
    if (!r)
        return NULL;
    r->forward = forward;
    r->max_rows = max_rows;
    r->cursor = forward ? r->lo : r->hi;
    return run_submit(r, RUN_LIST);
}

/* Decode a row event's payload into e (strings point into it). */
static void row_decode(const char *p, struct lc_entry *e)
{
    struct row_head h;
    memcpy(&h, p, sizeof(h));
    *e = (struct lc_entry){.id = h.id,
                           .ts_ms = h.ts_ms,
                           .recv_ms = h.recv_ms,
                           .level = h.level,
                           .flags = h.flags,
                           .source = p + sizeof(h),
                           .source_len = h.src_len,
                           .msg = p + sizeof(h) + h.src_len,
                           .msg_len = h.msg_len};
}

/* Hand out the table's rows from table_next on; false when the sink is full. */
static bool table_rows(struct qrun *r, const struct qrun_sink *sink, void *arg)
{
    while (r->table_next < r->table->nrows)
        if (!sink->table_row(arg, r->table, r->table_next++))
            return r->table_next >= r->table->nrows;
    return true;
}

/* True when the owner closed the run from inside a sink call: stop touching it. */
static bool closed_meanwhile(struct qrun *r)
{
    pthread_mutex_lock(&r->mu);
    bool gone = r->owner == NULL;
    pthread_mutex_unlock(&r->mu);
    return gone;
}

static enum qexec_status drain(struct qrun *r, const struct qrun_sink *sink, void *arg);

enum qexec_status qrun_drain(struct qrun *r, const struct qrun_sink *sink, void *arg)
{
    /* A reference of its own: a sink call may close the run (its connection failed). */
    pthread_mutex_lock(&r->mu);
    r->refs++;
    pthread_mutex_unlock(&r->mu);
    enum qexec_status st = drain(r, sink, arg);
    unref(r);
    return st;
}

static enum qexec_status drain(struct qrun *r, const struct qrun_sink *sink, void *arg)
{
    if (r->table && !table_rows(r, sink, arg))
        return QX_PAUSED;
    for (;;) {
        if (r->in.off == r->in.len) { /* Take everything the pool left. */
            pthread_mutex_lock(&r->mu);
            struct bytes got = r->out;
            r->out = (struct bytes){r->in.p, 0, r->in.cap, 0};
            r->in = got;
            r->in.off = 0;
            bool unblock = r->blocked && r->in.len > 0;
            r->blocked = r->blocked && !unblock;
            pthread_mutex_unlock(&r->mu);
            if (unblock)
                qpool_unpause(&r->task);
            if (r->in.len == 0)
                return QX_MORE;
        }
        const char *p = r->in.p + r->in.off;
        enum ev_kind k = (enum ev_kind)p[0];
        uint32_t len;
        memcpy(&len, p + 1, 4);
        r->in.off += 5 + len;
        p += 5;
        struct lc_entry e;
        uint64_t n;
        switch (k) {
        case E_COUNT:
            memcpy(&n, p, sizeof(n));
            sink->count(arg, n);
            if (closed_meanwhile(r))
                return QX_DONE;
            break;
        case E_ROW:
            row_decode(p, &e);
            if (!sink->row(arg, &e))
                return closed_meanwhile(r) ? QX_DONE : QX_PAUSED;
            if (closed_meanwhile(r))
                return QX_DONE;
            break;
        case E_TABLE:
            memcpy(&r->table, p, sizeof(r->table));
            r->table_next = 0;
            sink->table(arg, r->table);
            if (!table_rows(r, sink, arg))
                return QX_PAUSED;
            break;
        case E_RESULT: {
            void *part = r->part; /* want_part: handed over, */
            r->part = NULL;
            if (len) /* else the fold's merged part, the run's until closed. */
                memcpy(&part, p, sizeof(part));
            sink->result(arg, part);
            break;
        }
        case E_ERROR: {
            char why[QRY_ERR_MAX + 64];
            size_t m = len < sizeof(why) - 1 ? len : sizeof(why) - 1;
            memcpy(why, p, m);
            why[m] = 0;
            sink->error(arg, why);
            break;
        }
        case E_PARTIAL:
            if (sink->partial) {
                char what[512];
                size_t m = len < sizeof(what) - 1 ? len : sizeof(what) - 1;
                memcpy(what, p, m);
                what[m] = 0;
                sink->partial(arg, what);
            }
            break;
        case E_END:
            return QX_DONE;
        }
    }
}

void qrun_close(struct qrun *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->owner = NULL;
    /* Under the lock: until qrun_put_end (which clears it, under the lock) the handle lives;
     * the producer never holds a lock of its own while feeding the run. */
    if (r->kind == RUN_REMOTE && r->remote)
        remote_ops->cancel(r->remote);
    pthread_mutex_unlock(&r->mu);
    if (r->kind != RUN_REMOTE)
        qpool_cancel(&r->task);
    unref(r);
}

/* ------------------------------------------------------------------------------------------ */
/* Runs answered elsewhere. */

void qrun_set_remote(const struct qrun_remote *ops)
{
    remote_ops = ops;
}

const struct qry *qrun_query(const struct qrun *r)
{
    return r->q;
}

size_t qrun_memory_limit(void)
{
    return mem_limit;
}

static struct qrun *remote_prepare(struct ev_loop *home, struct qry *q, void (*ready)(void *owner),
                                   void *owner)
{
    struct qrun *r = run_alloc(home, q, ready, owner);
    if (r)
        r->kind = RUN_REMOTE;
    return r;
}

static void remote_go(struct qrun *r, enum qrun_want want)
{
    void *h = remote_ops->start(r, want);
    pthread_mutex_lock(&r->mu);
    if (!r->ended) /* The answer may be complete already. */
        r->remote = h;
    pthread_mutex_unlock(&r->mu);
}

static struct qrun *remote_start(struct ev_loop *home, struct qry *q, enum qrun_want want,
                                 void (*ready)(void *owner), void *owner)
{
    struct qrun *r = remote_prepare(home, q, ready, owner);
    if (r)
        remote_go(r, want);
    return r;
}

void qrun_list_params(const struct qrun *r, bool *forward, uint64_t *max_rows)
{
    *forward = r->forward;
    *max_rows = r->max_rows;
}

void qrun_put_partial(struct qrun *r, const char *missing)
{
    pthread_mutex_lock(&r->mu);
    emit(r, E_PARTIAL, missing, strlen(missing), NULL, 0);
    pthread_mutex_unlock(&r->mu);
}

/* A run that only says why it cannot run. */
static struct qrun *refused(struct ev_loop *home, struct qry *q, const char *why,
                            void (*ready)(void *owner), void *owner)
{
    struct qrun *r = remote_prepare(home, q, ready, owner);
    if (r) {
        qrun_put_error(r, why);
        qrun_put_end(r);
    }
    return r;
}

void qrun_put_count(struct qrun *r, uint64_t n)
{
    prod_count(r, n);
}

void qrun_put_row(struct qrun *r, const struct lc_entry *e)
{
    prod_row(r, e);
}

void qrun_put_table(struct qrun *r, struct qtable *t)
{
    pthread_mutex_lock(&r->mu);
    emit(r, E_TABLE, &t, sizeof(t), NULL, 0);
    pthread_mutex_unlock(&r->mu);
}

void qrun_put_error(struct qrun *r, const char *why)
{
    pthread_mutex_lock(&r->mu);
    emit(r, E_ERROR, why, strlen(why), NULL, 0);
    pthread_mutex_unlock(&r->mu);
}

void qrun_put_end(struct qrun *r)
{
    pthread_mutex_lock(&r->mu);
    emit(r, E_END, NULL, 0, NULL, 0);
    r->remote = NULL;
    r->ended = true;
    pthread_mutex_unlock(&r->mu);
    unref(r);
}
