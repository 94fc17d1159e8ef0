/* run.h - a query run on the pool (pool.h), as a connection's reactor sees it.
 *
 * A front end starts a run with the compiled query and a `ready` callback; the pool's threads
 * scan the store and leave the answer, piece by piece, in the run's bounded output. `ready`
 * is posted to the front end's own loop whenever something arrived; the front end then calls
 * qrun_drain, which hands the pieces to its sink on that loop, until the sink is full or
 * nothing is left. The reactor therefore never scans and never waits for a scan; the pool
 * never writes to a socket. When the output is full the run pauses until it is drained, so a
 * slow reader costs memory only up to that bound. Closing a run that has not ended cancels it.
 *
 * The answer is one of:
 *   count(n), then n rows (row)            SEARCH, and COUNT (count only, no rows)
 *   table(t), then t->nrows rows (table_row)   a query with pipes (pipe.h)
 *   result(part)                           a custom fold (qrun_start_fold)
 *   error(why), possibly after some rows   a timeout, the memory limit, a bad pipe
 * and qrun_drain returns QX_DONE once it has all been delivered. */
#ifndef LC_QUERY_RUN_H
#define LC_QUERY_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/entry.h"
#include "query/exec.h"
#include "query/pipe.h"
#include "query/qry.h"

struct ev_loop;
struct store;
struct qry;
struct qrun;

struct qrun_sink {
    void (*count)(void *arg, uint64_t n);
    /* Return false when the output is full: drain stops after this row. */
    bool (*row)(void *arg, const struct lc_entry *e);
    void (*table)(void *arg, const struct qtable *t);
    bool (*table_row)(void *arg, const struct qtable *t, size_t r);
    void (*error)(void *arg, const char *why);
    void (*result)(void *arg, void *part); /* The merged part; the run's until qrun_close. */
    /* May be NULL. In a cluster, before the answer: it lacks the partitions named ("1, 5"),
     * which no copy answered for (only for a query with qry_set_partial_ok). */
    void (*partial)(void *arg, const char *missing);
};

/* A fold: parts built by pool threads over shares of the store, then merged into one. */
struct qfold_ops {
    void *(*part_new)(void *ctx);         /* NULL when out of memory. */
    qry_block_fn take_block;              /* May be NULL; its arg is the part. */
    qry_visit_fn add;                     /* Its arg is the part; false stops the share (error). */
    int (*merge)(void *into, void *part); /* Frees part; 0 or -errno. */
    const char *(*error)(void *part);     /* May be NULL: why the part stopped, or NULL. */
    void (*part_free)(void *part);
};

/* Limits for every run: memory per query for pipes (bytes, 0 = none). */
void qrun_set_memory_limit(size_t bytes);

/* Start a run of q (taken over) over the whole store (lo = hi = 0) or over ids [lo, hi].
 * count_only: COUNT (the filter's match count; pipes are refused). ready(owner) runs on home
 * whenever output is waiting. Returns NULL when out of memory (q is freed). */
struct qrun *qrun_start(struct ev_loop *home, struct store *s, struct qry *q, bool count_only,
                        uint64_t lo, uint64_t hi, void (*ready)(void *owner), void *owner);

/* A custom fold of the matching entries of [lo, hi] (0, 0: the whole store); answers with
 * result(merged part). ctx is passed to part_new and must outlive the run. */
struct qrun *qrun_start_fold(struct ev_loop *home, struct store *s, struct qry *q, uint64_t lo,
                             uint64_t hi, const struct qfold_ops *ops, void *ctx,
                             void (*ready)(void *owner), void *owner);

/* The matching entries of [lo, hi] in id order (oldest first when forward), at most max_rows
 * of them (0: all), as rows without a count. In a cluster (s NULL) only the whole of it
 * (lo = hi = 0), as qrun_start_order without bounds. */
struct qrun *qrun_start_list(struct ev_loop *home, struct store *s, struct qry *q, uint64_t lo,
                             uint64_t hi, bool forward, uint64_t max_rows,
                             void (*ready)(void *owner), void *owner);

/* In a cluster (the front ends pass no store): the matching entries in the cluster's order,
 * arrival time then id, strictly after the entry lo and before the entry hi (or from/to them,
 * when inclusive; an unset bound is open): the first max_rows of them (0: all) when forward,
 * oldest first, else the last max_rows, newest first. A bound's entry must exist (its key is
 * looked up): otherwise the run answers an error naming it. When both are set and the entry
 * lo comes after hi, the rows are those between them taken from lo's end, still delivered
 * oldest first when forward (CHATHISTORY BETWEEN from the newer reference). */
struct qrun_bound {
    uint64_t id;
    bool set, inclusive;
};
struct qrun *qrun_start_order(struct ev_loop *home, struct qry *q, struct qrun_bound lo,
                              struct qrun_bound hi, bool forward, uint64_t max_rows,
                              void (*ready)(void *owner), void *owner);

/* The pipes of q over s, answered with their part before it is finished: result(struct qagg *)
 * hands the part over (the sink frees it). A cluster node answers another with it. */
struct qrun *qrun_start_part(struct ev_loop *home, struct store *s, struct qry *q,
                             void (*ready)(void *owner), void *owner);

/* Runs answered elsewhere: in a cluster, the front ends pass no store (NULL), and a run goes to
 * the hook set here, which gathers the answer from other nodes and feeds it into the run with
 * qrun_put_*, from any thread, ending with qrun_put_end. */
enum qrun_want { QW_COUNT, QW_ROWS, QW_TABLE, QW_LIST };
struct qrun_remote {
    /* Start answering r (qrun_query(r), want); returns a handle for cancel, or NULL after
     * qrun_put_error + qrun_put_end were called. */
    void *(*start)(struct qrun *r, enum qrun_want want);
    /* The owner closed r: stop soon; qrun_put_end is still due. */
    void (*cancel)(void *handle);
};
void qrun_set_remote(const struct qrun_remote *ops);
const struct qry *qrun_query(const struct qrun *r);
/* QW_LIST: the order and number of rows wanted (the whole store: qrun_start_list(.., 0, 0, ..)). */
void qrun_list_params(const struct qrun *r, bool *forward, uint64_t *max_rows);
void qrun_order_params(const struct qrun *r, struct qrun_bound *lo, struct qrun_bound *hi);
void qrun_put_partial(struct qrun *r, const char *missing);
size_t qrun_memory_limit(void);
void qrun_put_count(struct qrun *r, uint64_t n);
void qrun_put_row(struct qrun *r, const struct lc_entry *e);
void qrun_put_table(struct qrun *r, struct qtable *t); /* Takes t. */
void qrun_put_error(struct qrun *r, const char *why);
void qrun_put_end(struct qrun *r); /* The producer's last call on r. */

/* Deliver what is waiting to sink (on home's thread). QX_DONE: the whole answer was delivered
 * (close the run now); QX_PAUSED: the sink said it is full (drain again when it has room);
 * QX_MORE: nothing more yet (ready will be posted). */
enum qexec_status qrun_drain(struct qrun *r, const struct qrun_sink *sink, void *arg);

/* The owner is done with r: after QX_DONE, or to cancel it. No callback comes after this. */
void qrun_close(struct qrun *r);

#endif
