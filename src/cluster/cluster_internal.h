/* cluster_internal.h - what the cluster's files share: the one cluster state and their calls.
 *
 *   link.c     the NATS connection, the streams and buckets, this node's number and ids
 *   member.c   heartbeats, the live members, which nodes hold which partition
 *   publish.c  the ingest pipeline's sink: batches to the partitions' streams
 *   replica.c  the partitions this node holds: local stores fed from the streams
 *   scatter.c  queries: asked of one copy of each partition, answers merged
 *   respond.c  answering other nodes' queries (and exports) for the partitions held here
 *   live.c     new entries from every partition to this node's live subscribers
 *   wire.c     the bytes of batches, requests and answers */
#ifndef LC_CLUSTER_INTERNAL_H
#define LC_CLUSTER_INTERNAL_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/entry.h"
#include "cluster/wire.h"
#include "core/config.h"

#define CL_MAX_PARTITIONS 255
#define CL_MAX_MEMBERS    64
#define CL_NAME_MAX       65
#define CL_SUBJ_MAX       192        /* Room for a subject, stream or key made of names. */
#define CL_ID_SHIFT       48         /* id = node number << 48 | the node's own counter. */
#define CL_ID_CHUNK       (1u << 24) /* Ids reserved in the meta bucket at a time. */
#define CL_HEARTBEAT_MS   1000
#define CL_DEAD_MS        5000 /* A member silent this long is gone. */

struct cl_member {
    char name[CL_NAME_MAX];
    int64_t seen_ms; /* When its last heartbeat arrived (our monotonic clock). */
    uint8_t ready[(CL_MAX_PARTITIONS + 8) / 8]; /* Partitions it holds caught up. */
    char info[512]; /* Its heartbeat as it wrote it, for `logcaster cluster`. */
    uint8_t wire;   /* The request version it reads: "wire=N" in its heartbeat, else 1. */
};

struct cl {
    /* Options. */
    const struct config *cfg;
    char name[CL_NAME_MAX], node[CL_NAME_MAX];
    int partitions, replicas, copies;
    int64_t ack_timeout_ms;
    /* The request version this node speaks (wire.h): WIRE_VERSION, or for a test that plays a
     * node built before it, LOGCASTER_FAULT_WIRE_VERSION. */
    uint8_t wire_version;
    /* NATS: set by the manager thread before ready is raised, then read-only. */
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv_members, *kv_meta;
    int node_no;
    _Atomic bool ready;     /* Connected once, set up, ids reserved: ingest may flow. */
    _Atomic bool connected; /* The NATS connection is up now. */
    _Atomic bool stopping;
    _Atomic bool quiet; /* Shutting down: no more queries taken or asked. */
    pthread_t manager;
    pthread_mutex_t mu; /* Guards what follows, and wakes the manager (cv). */
    pthread_cond_t cv;
    uint64_t id_first;            /* Where this run's counter starts (the reservation found). */
    _Atomic uint64_t id_reserved; /* Ids below this (of our counter) are ours to give. */
    uint64_t meta_rev;            /* Revision of our node.<name> key in the meta bucket. */
    struct cl_member members[CL_MAX_MEMBERS];
    int nmembers;
    /* Figures. */
    _Atomic uint64_t published_batches, published_entries, publish_errors, failed_entries;
    _Atomic uint64_t published_bytes; /* Payload bytes (compressed) of the confirmed batches. */
    _Atomic uint64_t publish_lat_us_sum, publish_lat_n, publish_lat_max_us;
    _Atomic uint64_t queries_out, queries_in, partitions_missing;
    _Atomic uint64_t queries_in_v1; /* Requests read in version 1: from nodes of an older build. */
    /* Requests answered here that first waited for their copy (respond.c), and how long. */
    _Atomic uint64_t queries_waited, query_wait_ms_sum, query_wait_max_ms;
    /* Per partition, the last stream sequence this node has seen: its batches confirmed, and
     * the live feed's. A query's copies apply the stream up to it before they answer. */
    _Atomic uint64_t seen_seq[CL_MAX_PARTITIONS];
};

extern struct cl cl;

void cl_subject(char *out, size_t cap, const char *kind, int p); /* "<name>.<kind>.<p>" */
void cl_saw_seq(int p, uint64_t seq);                            /* Raise seen_seq[p] to seq. */
void cl_stream_name(char *out, size_t cap, int p);               /* "<name>-p<p>" */

/* link.c: the manager thread's set-up steps. */
int link_connect(void);     /* Until connected or stopping; 0 or -1 (stopping). */
int link_setup(void);       /* Streams, buckets, the partition count, this node's number. */
int link_reserve_ids(void); /* Extend id_reserved by a chunk (mu not held). */
void link_close(void);
/* Close the connection: no more messages or callbacks start (subscriptions complete). */
void link_disconnect(void);

/* A subscription whose handler uses memory we free: cl_sub_watch right after subscribing;
 * cl_sub_end (from another thread than the handler's) unsubscribes -- at once when the
 * connection is closed -- and waits until the handler has returned for the last time, then
 * destroys it. False when that did not happen within 10 s: then neither s nor what the
 * handler uses may be freed (a leak rather than a crash). */
struct cl_sub {
    natsSubscription *sub;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, watched;
};
void cl_sub_watch(struct cl_sub *s);
bool cl_sub_end(struct cl_sub *s);

/* member.c: on the manager thread. */
int member_watch(void);  /* Start watching the members bucket. 0 or -1. */
int member_start(void);  /* The heartbeat and the watch, on their thread. 0 or -1. */
void member_stop(void);  /* Once cl.stopping is set: the thread ends. */
void member_leave(void); /* After member_stop: delete our key (a clean stop). */
/* From any thread: is this node one of partition p's --cluster-copies owners now? */
bool member_owns(int p);
/* Is this node not among partition p's owners, which all say they hold it caught up? One
 * look at the members (the members thread may change them between two). */
bool member_may_drop(int p);
/* The live nodes to ask for partition p, best first: those that hold it caught up, in
 * rendezvous order, and the request version each reads (wire, unless NULL). Returns how many
 * were written (at most max). */
int member_candidates(int p, char (*out)[CL_NAME_MAX], uint8_t *wire, int max);
/* Is another owner of partition p not (yet) holding it caught up? */
bool member_other_owner_catching_up(int p);
/* The request version to write to a node that reads up to `theirs`. */
static inline uint8_t member_wire_for(uint8_t theirs)
{
    return theirs < cl.wire_version ? theirs : cl.wire_version;
}

/* publish.c */
void publish_js_options(jsOptions *o); /* The publish-ack handler, before the context. */
void publish_start(void);
void publish_stop(void); /* Within --cluster-ack-timeout: every batch answered or failed. */
bool publish_backlogged(void);
bool publish_ids_low(void); /* Fewer than half a chunk of reserved ids left. */

/* replica.c */
void replica_sync(void); /* Open the partitions we should hold, close the others. */
void replica_close_all(void);
struct replica;
/* Partition p's copy, held for a query, or NULL when it is not held here caught up. */
struct replica *replica_acquire(int p);
void replica_release(struct replica *rep);
struct store *replica_store(const struct replica *rep);
uint64_t replica_global_id(struct replica *rep, uint64_t local_id); /* 0 when unknown. */
/* Has the copy applied its stream up to seq, and are those entries queryable? */
bool replica_has_seq(struct replica *rep, uint64_t seq);
/* The stream sequence of the message local_id came in (false when unknown). */
bool replica_seq_of(struct replica *rep, uint64_t local_id, uint64_t *seq);
/* The last message held whole and queryable (0: none), and the last queryable local id. */
uint64_t replica_whole_seq(struct replica *rep, uint64_t *readable_local);
/* The first local id of a message at sequence seq or later, or 0 when the copy has none. */
uint64_t replica_local_of_seq(struct replica *rep, uint64_t seq);
/* A run of consecutive ids on both sides, with its entries' arrival range: the id map. */
struct replica_run {
    uint64_t local_first, cluster_first;
    uint32_t count;
    int64_t recv_min, recv_max;
};
/* A copy of the id map's runs in local id order (malloc'd, *n of them; NULL when empty). */
struct replica_run *replica_runs(struct replica *rep, size_t *n);
/* The local id of cluster id `id` in this copy, or 0 when it does not hold it. */
uint64_t replica_local_id(struct replica *rep, uint64_t id);
/* What this node holds of partition p: false when it holds none. */
bool replica_figures(int p, uint64_t *entries, uint64_t *lag, bool *ready);
/* "0,3,5": the partitions held and caught up, for the heartbeat. */
void replica_ready_list(char *out, size_t cap);
void replica_report(void (*put)(void *arg, const char *name, const char *value), void *arg);

/* live.c: every partition's new entries to this node's live subscribers. */
void live_sync(void); /* The manager's tick: follow the streams while anyone subscribes. */
void live_stop(void);
int live_feeds(void); /* Partitions followed now. */

/* scatter.c: queries asked of the cluster (and respond.c's start and stop). */
int scatter_start(void);
void scatter_stop(void);

/* respond.c: answering the other nodes. */
int respond_start(void);
void respond_stop(void);

#endif
