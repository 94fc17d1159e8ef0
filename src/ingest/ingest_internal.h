/* ingest_internal.h - what pipeline.c and fanout.c share: the per-thread reactor record. */
#ifndef LC_INGEST_INTERNAL_H
#define LC_INGEST_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/ev.h"
#include "ingest/fanout.h"
#include "ingest/pipeline.h"
#include "store/store.h"

#define FAILED_KEEP 64   /* Failed ranges a reactor keeps apart (more are merged). */
#define INBOX_MAX   4096 /* Commits a reactor's inbox holds; beyond, subscribers are told. */

struct commit_vec {
    struct ingest_commit **v;
    size_t n, cap;
    uint64_t dropped; /* Entries of commits that found the inbox full. */
};

/* Remember a failed range in a list of at most FAILED_KEEP, in id order. When full, the two
 * oldest merge into one range covering both: an entry between them may then be reported as
 * failed although it was stored -- never the other way round. */
void failed_add(struct store_range *list, size_t *n, struct store_range r);

/* A thread that submits, waits or subscribes. The writer thread fills its inbox; the thread
 * itself drains it when its eventfd fires. */
struct reactor {
    struct ev_io io; /* The eventfd, once the thread's loop is known. */
    struct ev_loop *loop;
    struct reactor *next; /* In the registry. */

    pthread_mutex_t mu; /* Guards the inbox. */
    uint64_t in_done;   /* Every id up to this is decided. */
    bool in_round;      /* A commit round (or a poke) since the thread last looked. */
    struct store_range in_failed[FAILED_KEEP];
    size_t nin_failed;
    uint64_t in_dropped;          /* Commit entries not posted: the inbox was full. */
    struct commit_vec in_commits; /* Decided, for the subscribers. */
    _Atomic bool has_subs;        /* Worth posting commits to. */

    /* The thread's own, read without a lock. */
    uint64_t done;
    struct store_range failed[FAILED_KEEP]; /* In id order; see failed_add. */
    size_t nfailed;
    struct ingest_waiter **heap; /* Min-heap on the id each waits for. */
    size_t nheap, capheap;
    struct ingest_waiter **cw; /* Waiting for the next commit (id 0), whatever its ids. */
    size_t ncw, capcw;
    struct ingest_waiter **due; /* reactor_wake's scratch: the waiters it wakes. */
    size_t capdue;
    struct ingest_sub *subs;
};

extern __thread struct reactor *tls_reactor;

/* The calling thread's record, made on first use; NULL when out of resources. */
struct reactor *reactor_get(void);
/* reactor_get, with the thread's loop watching the record's eventfd. */
struct reactor *reactor_attach(struct ev_loop *loop);

/* fanout.c: the submit path -- the sink's append, with a shared copy of the batch while
 * anyone subscribes. */
int fanout_append(int (*append)(void *sink, struct lc_entry *e, size_t n), void *sink,
                  struct lc_entry *e, size_t n);
/* The writer thread: the commits whose ids are all decided (up to hi), taken off the pending
 * list, as a list to post and then release. */
struct ingest_commit *fanout_decided(uint64_t hi);
/* Under r->mu: give r a reference to each commit of the list, if it has subscribers. */
void fanout_post(struct reactor *r, struct ingest_commit *list);
/* Drop the list's references (fanout_decided's). */
void fanout_release(struct ingest_commit *list);
/* Under r->mu: take the commits posted to r (the inbox is left empty). */
struct commit_vec fanout_take_inbox(struct reactor *r);
/* On r's thread, after r->failed is up to date: queue the commits for r's subscribers and
 * notify them; releases the commits and the vector. */
void fanout_deliver(struct reactor *r, struct commit_vec arrived);
/* pipeline.c: post the commit to every reactor with subscribers and wake them. */
void reactors_post(struct ingest_commit *c);
/* The thread ends: release what it still holds. */
void fanout_reactor_free(struct reactor *r);

#endif
