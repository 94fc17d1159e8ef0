/* cluster.h - a LogCaster node as a member of a cluster that stands on NATS JetStream.
 *
 * With --cluster, a node's writes do not go to a store of its own: the ingest pipeline hands
 * its batches to the cluster's publisher, which sends them, compressed and de-duplicated, to
 * one JetStream stream per partition; a line is acknowledged once JetStream has confirmed its
 * batch on a majority of the stream's replicas. Every partition is kept queryable on
 * --cluster-copies nodes, chosen by rendezvous hashing over the live members (a key-value
 * bucket with heartbeats), each replaying the partition's stream into a local segment store.
 * A query on any node is sent over NATS request/reply to one live copy of each partition, and
 * the answers are merged. We write no consensus of our own: ordering, replication and
 * durability are JetStream's.
 *
 * One cluster per process; every call is from main unless it says otherwise. */
#ifndef LC_CLUSTER_H
#define LC_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

struct config;
struct ingest_sink_ops;

/* Start the cluster member described by cfg (cfg->cluster_urls set): checks the options, then
 * connects in the background (saying once when NATS cannot be reached, and retrying). Until
 * the node is ready it takes no line: the publisher reports itself backlogged, so readers
 * pause. Returns 0, or -1 after printing one line. */
int cluster_start(const struct config *cfg);

/* Shutting down: take no more queries from other nodes (before qpool_stop). */
void cluster_quiesce(void);

/* Stop: publish what is pending (bounded by the shutdown timeout), close every partition
 * store, leave the membership. After qpool_stop (no query reads the stores any more). */
void cluster_stop(void);

/* True between cluster_start and cluster_stop. */
bool cluster_enabled(void);

/* True when the node had to stop for a reason of the cluster's (it said why): exit non-zero. */
bool cluster_failed(void);

/* The pipeline's sink in cluster mode (pipeline.h ingest_init_sink). */
const struct ingest_sink_ops *cluster_sink_ops(void);
void *cluster_sink(void);

/* What the node knows, for STATS, /metrics and `logcaster cluster`: writes line by line into
 * a callback as "name value" pairs (numbers or words without spaces). From any thread. */
void cluster_report(void (*put)(void *arg, const char *name, const char *value), void *arg);

/* The same for /metrics, in the Prometheus text format, appended to b (core/buf.h). */
struct buf;
void cluster_metrics(struct buf *b);

#endif
