/* pipeline.h - the one door to the writer: whole batches in, tickets out.
 *
 * Every carrier (TCP, UDP, HTTP, later the cluster's stream consumer) builds a batch
 * (batch.h) and hands it to ingest_submit, which gives the batch's entries their ids and
 * answers with a ticket: the id range the batch occupies. A carrier that owes its sender an
 * answer keeps the ticket and waits (ingest_wait) on its reactor thread.
 *
 * Durability is pushed, not polled: the writer publishes the id ranges each write run decided
 * (written, or failed) once; they reach every reactor thread's inbox, and the reactor wakes
 * exactly the waiters whose ids those ranges cover, which then answer in request order. */
#ifndef LC_INGEST_PIPELINE_H
#define LC_INGEST_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/server.h"
#include "ingest/batch.h"
#include "store/store.h"

struct ev_loop;
struct store;

/* The id range a submitted batch occupies; first_id 0: nothing was stored. */
struct ingest_ticket {
    uint64_t first_id, last_id;
};

enum ingest_state {
    INGEST_PENDING, /* Accepted, not yet as durable as the --fsync policy promises. */
    INGEST_DURABLE, /* Durable per the policy, and queryable: acknowledge it. */
    INGEST_FAILED,  /* Could not be stored (disk full, I/O error): report an error. */
};

/* Where submitted batches go. Called once by main before any listener starts: it subscribes
 * to the store's commits, which are pushed to the reactor threads from then on. */
void ingest_init(struct store *sink);

/* Another writer with the store's four calls (store.h): the cluster's publisher, which numbers
 * entries itself and tells which id ranges JetStream confirmed, in id order, as the store's
 * commit listener does. ingest_init_sink replaces ingest_init. */
struct ingest_sink_ops {
    int (*append)(void *sink, struct lc_entry *e, size_t n);
    uint64_t (*done_id)(void *sink);
    bool (*backlogged)(void *sink);
    void (*on_commit)(void *sink, store_commit_fn fn, void *arg);
    const char *failure; /* What a sender is told when its lines could not be taken. */
};
void ingest_init_sink(const struct ingest_sink_ops *ops, void *sink);

/* Submit the batch's entries, in order, to the writer, and reset the batch. The batch's
 * entry i has id t->first_id + i (ids are consecutive). slot (enum in server.h) is the
 * carrier's protocol, for the per-protocol counters in cnt. Returns 0, or -errno when nothing
 * was accepted (the entries are counted as rejected). Never blocks on disk. */
int ingest_submit(struct ingest_batch *b, struct server_counters *cnt, int slot,
                  struct ingest_ticket *t);

/* The fate of a ticket's entries together, as the calling thread knows it from the commits
 * pushed to it so far (no lock): PENDING until all are decided, then FAILED if any failed,
 * else DURABLE. Call it on the thread that submitted, or after being woken there. */
enum ingest_state ingest_ticket_state(const struct ingest_ticket *t);

/* The sentence for lines that failed (FAILED, or a refused submit): "store unavailable", or the
 * cluster's. */
const char *ingest_failure(void);

/* True while the writer's queue is over its bound: carriers stop reading until woken. */
bool ingest_backlogged(void);

/* A carrier waiting for the writer, on its reactor thread. */
struct ingest_waiter {
    void (*wake)(struct ingest_waiter *w); /* Runs on the loop's thread; may wait again. */
    void *arg;                             /* The carrier's (a connection, a request). */
    uint64_t id;                           /* Set by ingest_wait. */
    size_t slot;                           /* Position + 1 (heap or next list); 0: not waiting. */
};

/* Call w->wake once every id <= id is decided (durable or failed), or, with id 0, after the
 * writer's next commit round (new entries to follow, or the backlog may have cleared: a sink
 * whose backlog clears pokes a round that may decide nothing new). Replaces an
 * earlier wait of w. loop is the calling thread's reactor loop. Returns 0 or -ENOMEM. */
int ingest_wait(struct ev_loop *loop, struct ingest_waiter *w, uint64_t id);

/* Wake the loop's next-commit waiters (id 0) on its next turn, as a commit round would. A carrier
 * that pauses on ingest_backlogged() registers its wait first and then asks again: when the
 * backlog cleared in between, the sink's poke may have missed this thread, so it wakes itself. */
int ingest_wake_next_commit_waiters(struct ev_loop *loop); /* 0, or -ENOMEM. */

/* ingest_wait for a connection: its protocol's resume runs on the loop turn after the wake. */
int ingest_wait_conn(struct conn *c, struct ingest_waiter *w, uint64_t id);

/* Stop waiting (the carrier goes away). A waiter not waiting is a no-op. */
void ingest_wait_cancel(struct ingest_waiter *w);

#endif
