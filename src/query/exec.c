/* exec.c - the two-phase, sliced query executor. */
#include "query/exec.h"

#include <stdlib.h>

#include "core/log.h"
#include "query/qry.h"
#include "store/store.h"

enum phase { PH_COUNT, PH_ROWS, PH_MISSING, PH_DONE };

/* Ids remembered while counting, so a sparse answer is fetched by id instead of being
 * searched for a second time. */
#define REMEMBER_MAX 4096

struct qexec {
    struct store *store;
    struct qry *q;
    bool count_only;
    enum phase phase;
    uint64_t lo, hi; /* Snapshot id range. */
    uint64_t cursor; /* Next id to examine in the current phase. */
    uint64_t limit;  /* 0 = none. */
    uint64_t n;      /* Matches counted. */
    uint64_t oldest; /* Oldest counted match: where rows start. */
    uint64_t emitted;
    bool paused;                /* The sink asked to stop after the last row. */
    uint64_t ids[REMEMBER_MAX]; /* The first matches counted, in scan order. */
    size_t nids;
    size_t next_id; /* Rows phase over ids[]: next index to emit. */
    const struct qexec_sink *sink;
    void *arg;
};

struct qexec *qexec_new(struct store *s, struct qry *q, bool count_only)
{
    uint64_t first, last;
    store_id_range(s, &first, &last);
    return qexec_new_range(s, q, count_only, first ? first : 1, last);
}

struct qexec *qexec_new_range(struct store *s, struct qry *q, bool count_only, uint64_t lo,
                              uint64_t hi)
{
    struct qexec *x = calloc(1, sizeof(*x));
    if (!x) {
        qry_free(q);
        return NULL;
    }
    x->store = s;
    x->q = q;
    x->count_only = count_only;
    x->limit = count_only ? 0 : qry_limit(q);
    x->lo = lo ? lo : 1;
    x->hi = hi;
    /* Counting walks newest first when a limit applies (it stops early), else oldest first. */
    x->cursor = x->limit ? x->hi : x->lo;
    return x;
}

void qexec_free(struct qexec *x)
{
    if (!x)
        return;
    qry_free(x->q);
    free(x);
}

static bool count_visit(void *arg, const struct lc_entry *e)
{
    struct qexec *x = arg;
    if (x->n == 0 || e->id < x->oldest)
        x->oldest = e->id;
    if (x->n < REMEMBER_MAX)
        x->ids[x->nids++] = e->id;
    x->n++;
    return !(x->limit && x->n >= x->limit);
}

static bool row_visit(void *arg, const struct lc_entry *e)
{
    struct qexec *x = arg;
    x->cursor = e->id + 1;
    x->emitted++;
    if (!x->sink->row(x->arg, e))
        x->paused = true;
    return !x->paused && x->emitted < x->n;
}

/* Rows promised by the count but deleted (by retention) before they could be sent are
 * replaced by a marker row, so the client still receives exactly the count it was told. The
 * markers come at the end, paced by the sink like any row. */
static enum qexec_status emit_missing(struct qexec *x)
{
    static const char text[] = "(entry deleted before it could be sent)";
    if (x->phase != PH_MISSING) {
        log_warn("query: %llu promised rows were deleted before they could be sent",
                 (unsigned long long)(x->n - x->emitted));
        x->phase = PH_MISSING;
    }
    while (x->emitted < x->n) {
        struct lc_entry e = {.level = LC_INFO,
                             .msg = text,
                             .msg_len = sizeof(text) - 1,
                             .source = "",
                             .source_len = 0};
        x->emitted++;
        if (!x->sink->row(x->arg, &e) && x->emitted < x->n)
            return QX_PAUSED;
    }
    x->phase = PH_DONE;
    return QX_DONE;
}

enum qexec_status qexec_step(struct qexec *x, size_t budget, const struct qexec_sink *sink,
                             void *arg)
{
    x->sink = sink;
    x->arg = arg;
    x->paused = false;
    if (x->phase == PH_COUNT) {
        if (x->hi >= x->lo && x->hi) {
            uint64_t resume = 0;
            int done;
            if (x->limit)
                done = qry_scan(x->store, x->q, x->lo, x->cursor, false, budget, count_visit, x,
                                &resume);
            else if (x->count_only) /* The store may count without visiting. */
                done = qry_count(x->store, x->q, x->cursor, x->hi, budget, &x->n, &resume);
            else
                done = qry_scan(x->store, x->q, x->cursor, x->hi, true, budget, count_visit, x,
                                &resume);
            if (!done) {
                x->cursor = resume;
                return QX_MORE;
            }
        }
        sink->count(arg, x->n);
        if (x->count_only || x->n == 0) {
            x->phase = PH_DONE;
            return QX_DONE;
        }
        x->phase = PH_ROWS;
        x->cursor = x->oldest;
        if (x->n <= REMEMBER_MAX && x->limit) { /* Counted newest first: emit oldest first. */
            for (size_t i = 0; i < x->nids / 2; i++) {
                uint64_t t = x->ids[i];
                x->ids[i] = x->ids[x->nids - 1 - i];
                x->ids[x->nids - 1 - i] = t;
            }
        }
        return QX_MORE; /* Rows start on the next slice: the count already cost a budget. */
    }
    if (x->phase == PH_ROWS && x->n <= REMEMBER_MAX) {
        /* Every match is remembered: fetch each by id. */
        uint64_t resume;
        while (x->next_id < x->nids && !x->paused) {
            uint64_t id = x->ids[x->next_id++];
            qry_scan(x->store, NULL, id, id, true, 1, row_visit, x, &resume);
        }
        if (x->emitted >= x->n) {
            x->phase = PH_DONE;
            return QX_DONE;
        }
        if (x->paused)
            return QX_PAUSED;
        return emit_missing(x);
    }
    if (x->phase == PH_ROWS) {
        uint64_t resume = 0;
        int done = qry_scan(x->store, x->q, x->cursor, x->hi, true, budget, row_visit, x, &resume);
        if (x->emitted >= x->n) {
            x->phase = PH_DONE;
            return QX_DONE;
        }
        if (x->paused)
            return QX_PAUSED;
        if (done)
            return emit_missing(x);
        x->cursor = resume;
        return QX_MORE;
    }
    if (x->phase == PH_MISSING)
        return emit_missing(x);
    return QX_DONE;
}
