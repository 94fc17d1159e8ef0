/* fanout.h - committed batches, once, to every subscriber: IRC log channels, HTTP live tails,
 * later cluster peers.
 *
 * While anyone subscribes, each submitted batch is copied once into a shared, reference-counted
 * commit. When the writer has decided the batch's ids, the commit goes to every reactor thread
 * with subscribers, and from there into each subscriber's bounded queue; entries whose write
 * failed are never delivered. A subscriber that falls behind loses its oldest commits and is
 * told how many entries it missed; the writer and the other subscribers never wait for it.
 * Nobody reads the store to find new entries. */
#ifndef LC_INGEST_FANOUT_H
#define LC_INGEST_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/entry.h"

struct ev_loop;
struct ingest_commit;

struct ingest_sub {
    void (*notify)(struct ingest_sub *s); /* New entries queued; on the loop's thread. */
    void *arg;                            /* The subscriber's. */
    size_t max_entries;                   /* Queue bound: beyond it the oldest go. */
    /* Private. */
    struct ingest_commit **q;
    size_t head, len, cap, at; /* Ring of commits; at: entries of q[head] already taken. */
    size_t queued;             /* Entries queued, not yet taken. */
    uint64_t dropped;          /* Entries lost to the bound since the last take. */
    struct ingest_sub *next;   /* The reactor's subscribers. */
    bool active;
};

/* Start receiving commits on the calling thread, whose loop is loop. Batches submitted from now
 * on arrive once decided. A batch already on its way when the subscription began may not: a
 * subscriber that must miss nothing reads the ids below the queue's first (all decided by
 * then) from the store. Returns 0 or -ENOMEM. */
int ingest_subscribe(struct ev_loop *loop, struct ingest_sub *s);
/* Stop, and release what is queued. Not subscribed: a no-op. */
void ingest_unsubscribe(struct ingest_sub *s);

/* The id of the next entry the queue holds, or 0 when it is empty. Every id below it that is
 * not in the queue was decided before it: read it from the store, if wanted. */
uint64_t ingest_sub_next_id(const struct ingest_sub *s);

/* Visit up to max queued entries in id order (visit returns false to stop after that entry),
 * removing them from the queue. *dropped gets the entries lost to the bound since the last
 * take, which came before the ones visited. Returns the entries taken. The entry passed to
 * visit is valid during the call only. */
size_t ingest_sub_take(struct ingest_sub *s, size_t max,
                       bool (*visit)(void *arg, const struct lc_entry *e), void *arg,
                       uint64_t *dropped);

/* ---- A cluster member: the live entries come from the cluster, not from this node's writes. */

/* From now on, batches submitted here are not copied for subscribers (the cluster's streams
 * bring them back, with every other node's), and entries' ids are not in arrival order:
 * subscribers take what comes and do not look for gaps to fill from a store. Call before any
 * listener starts. */
void ingest_live_external(void);
/* False on a cluster member (ingest_live_external). */
bool ingest_ids_ordered(void);
/* Anyone subscribed in this process? Cheap: the cluster skips decoding when nobody is. */
bool ingest_live_wanted(void);
/* When the subscribers of now began (wall-clock ms: the last time there were none before). */
int64_t ingest_live_wanted_since_ms(void);
/* Hand n entries to every subscriber (copied once, shared), from any thread. */
void ingest_live_post(const struct lc_entry *e, size_t n);

#endif
