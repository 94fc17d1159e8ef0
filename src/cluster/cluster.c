/* cluster.c - a node's life in the cluster: start, the manager thread, stop, and what it
 * reports (see cluster.h).
 *
 * The manager thread connects (retrying), sets up the streams and buckets, then loops: a
 * heartbeat a second, the members' changes, the partitions to hold or hand over, and more
 * ids when the reservation runs low. Ingest flows from the moment the node has ids and a
 * publisher; queries as soon as the partitions are held somewhere. */
#include "cluster/cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/thread.h"
#include "cluster/cluster_internal.h"
#include "core/buf.h"
#include "core/log.h"

struct cl cl = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static bool enabled, manager_started, failed;

void cl_saw_seq(int p, uint64_t seq)
{
    uint64_t was = atomic_load(&cl.seen_seq[p]);
    while (seq > was && !atomic_compare_exchange_weak(&cl.seen_seq[p], &was, seq))
        ;
}

/* Membership settles for this long after start before partitions are taken, so that nodes
 * starting together do not all take everything first. */
#define SETTLE_MS 2500

static void *manager(void *arg)
{
    (void)arg;
    thread_name("cluster");
    if (link_connect() < 0)
        return NULL;
    int r;
    bool said = false;
    while ((r = link_setup()) == -1 && !atomic_load(&cl.stopping)) {
        if (!said)
            log_warn("cluster: JetStream is not ready yet; retrying");
        said = true;
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
        link_close();
        if (link_connect() < 0)
            return NULL;
    }
    if (r < 0) {
        if (r == -2) { /* The partition count differs: this node must not run. */
            failed = true;
            kill(getpid(), SIGTERM);
        }
        return NULL;
    }
    if (member_watch() < 0 || member_start() < 0 || scatter_start() < 0) {
        failed = true;
        kill(getpid(), SIGTERM);
        return NULL;
    }
    publish_start();
    /* A fault for the tests: LOGCASTER_FAULT_READY_DELAY_MS=N holds the node for N ms between
     * starting its publisher and taking lines, so a reader can pause in that window. */
    const char *fd = getenv("LOGCASTER_FAULT_READY_DELAY_MS");
    if (fd && atoi(fd) > 0) {
        log_info("cluster: fault: ready in %d ms", atoi(fd));
        struct timespec ts = {atoi(fd) / 1000, atoi(fd) % 1000 * 1000000L};
        nanosleep(&ts, NULL);
    }
    atomic_store(&cl.ready, true);
    log_info("cluster: node %s (number %d) ready: %d partitions, %d replicas, %d copies", cl.node,
             cl.node_no, cl.partitions, cl.replicas, cl.copies);
    int64_t since = mono_ms();
    bool reserve_failed = false;
    while (!atomic_load(&cl.stopping)) {
        /* A turn every 200 ms, or at once when ids run low or the node stops. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        /* Not under cl.mu: take_ids holds pub.mu. After a failed reservation, the full wait. */
        bool low = publish_ids_low() && !reserve_failed;
        pthread_mutex_lock(&cl.mu);
        if (!atomic_load(&cl.stopping) && !low)
            pthread_cond_timedwait(&cl.cv, &cl.mu, &ts);
        pthread_mutex_unlock(&cl.mu);
        live_sync();
        if (mono_ms() - since >= SETTLE_MS)
            replica_sync();
        reserve_failed = publish_ids_low() && link_reserve_ids() < 0;
    }
    return NULL;
}

int cluster_start(const struct config *cfg)
{
    if (cfg->cluster_copies > 16 || cfg->cluster_partitions > CL_MAX_PARTITIONS) {
        fprintf(stderr, "logcasterd: --cluster-copies or --cluster-partitions out of range\n");
        return -1;
    }
    cl.cfg = cfg;
    snprintf(cl.name, sizeof(cl.name), "%s", cfg->cluster_name);
    snprintf(cl.node, sizeof(cl.node), "%s", cfg->node_name);
    cl.partitions = cfg->cluster_partitions;
    cl.replicas = cfg->cluster_replicas;
    cl.copies = cfg->cluster_copies;
    cl.ack_timeout_ms = cfg->cluster_ack_timeout_ms > 0 ? cfg->cluster_ack_timeout_ms : 10000;
    /* A fault for the tests: LOGCASTER_FAULT_WIRE_VERSION=1 makes this node speak and read
     * request version 1 only, and say no "wire=", as nodes built before version 2 do. */
    const char *fw = getenv("LOGCASTER_FAULT_WIRE_VERSION");
    cl.wire_version = fw && strcmp(fw, "1") == 0 ? 1 : WIRE_VERSION;
    enabled = true;
    if (pthread_create(&cl.manager, NULL, manager, NULL) != 0) {
        fprintf(stderr, "logcasterd: cannot start the cluster thread\n");
        return -1;
    }
    manager_started = true;
    return 0;
}

bool cluster_enabled(void)
{
    return enabled;
}

bool cluster_failed(void)
{
    return failed;
}

void cluster_quiesce(void)
{
    atomic_store(&cl.quiet, true);
}

void cluster_stop(void)
{
    if (!enabled)
        return;
    /* What the connections handed over goes out first (bounded by the ack timeout). */
    if (atomic_load(&cl.ready))
        publish_stop();
    pthread_mutex_lock(&cl.mu);
    atomic_store(&cl.stopping, true);
    pthread_cond_broadcast(&cl.cv);
    pthread_mutex_unlock(&cl.mu);
    if (manager_started)
        pthread_join(cl.manager, NULL);
    member_stop();
    if (atomic_load(&cl.ready))
        scatter_stop();
    member_leave(); /* Only where it watched the members (and NATS is there). */
    /* Closed first: the streams' consumers then end without a JetStream request each (which
     * would wait its timeout when NATS is gone); the server drops the ephemeral ones. */
    link_disconnect();
    live_stop();
    replica_close_all();
    link_close();
    enabled = false;
}

static void put_u64(void (*put)(void *, const char *, const char *), void *arg, const char *name,
                    uint64_t v)
{
    char val[32];
    snprintf(val, sizeof(val), "%" PRIu64, v);
    put(arg, name, val);
}

void cluster_report(void (*put)(void *arg, const char *name, const char *value), void *arg)
{
    if (!enabled)
        return;
    put(arg, "cluster_name", cl.name);
    put(arg, "cluster_node", cl.node);
    put(arg, "cluster_state",
        !atomic_load(&cl.ready)       ? "connecting"
        : !atomic_load(&cl.connected) ? "disconnected"
                                      : "ready");
    put_u64(put, arg, "cluster_partitions", (uint64_t)cl.partitions);
    put_u64(put, arg, "cluster_copies", (uint64_t)cl.copies);
    put_u64(put, arg, "cluster_published_batches", atomic_load(&cl.published_batches));
    put_u64(put, arg, "cluster_published_lines", atomic_load(&cl.published_entries));
    put_u64(put, arg, "cluster_published_bytes", atomic_load(&cl.published_bytes));
    put_u64(put, arg, "cluster_publish_errors", atomic_load(&cl.publish_errors));
    put_u64(put, arg, "cluster_failed_lines", atomic_load(&cl.failed_entries));
    uint64_t n = atomic_load(&cl.publish_lat_n);
    put_u64(put, arg, "cluster_publish_avg_us", n ? atomic_load(&cl.publish_lat_us_sum) / n : 0);
    put_u64(put, arg, "cluster_publish_max_us", atomic_load(&cl.publish_lat_max_us));
    put_u64(put, arg, "cluster_queries_out", atomic_load(&cl.queries_out));
    put_u64(put, arg, "cluster_queries_in", atomic_load(&cl.queries_in));
    put_u64(put, arg, "cluster_queries_in_v1", atomic_load(&cl.queries_in_v1));
    put_u64(put, arg, "cluster_partitions_missing", atomic_load(&cl.partitions_missing));
    put_u64(put, arg, "cluster_queries_waited", atomic_load(&cl.queries_waited));
    put_u64(put, arg, "cluster_query_wait_max_ms", atomic_load(&cl.query_wait_max_ms));
    put_u64(put, arg, "cluster_live_feeds", (uint64_t)live_feeds());
    char members[CL_MAX_MEMBERS * CL_NAME_MAX];
    size_t len = 0;
    pthread_mutex_lock(&cl.mu);
    members[0] = 0;
    for (int i = 0; i < cl.nmembers; i++)
        len += (size_t)snprintf(members + len, sizeof(members) - len, "%s%s", i ? "," : "",
                                cl.members[i].name);
    int nm = cl.nmembers;
    pthread_mutex_unlock(&cl.mu);
    put_u64(put, arg, "cluster_members", (uint64_t)nm);
    put(arg, "cluster_member_names", members[0] ? members : "-");
    for (int p = 0; p < cl.partitions; p++) {
        char owners[4 * CL_NAME_MAX] = "", name[48];
        char cand[8][CL_NAME_MAX];
        int k = member_candidates(p, cand, NULL, 8);
        size_t ol = 0;
        for (int i = 0; i < k; i++)
            ol += (size_t)snprintf(owners + ol, sizeof(owners) - ol, "%s%s", i ? "," : "", cand[i]);
        snprintf(name, sizeof(name), "cluster_partition_%d_copies", p);
        put(arg, name, owners[0] ? owners : "-");
    }
    replica_report(put, arg);
}

static void head(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void cluster_metrics(struct buf *b)
{
    if (!enabled)
        return;
    pthread_mutex_lock(&cl.mu);
    int members = cl.nmembers;
    pthread_mutex_unlock(&cl.mu);
    head(b, "logcaster_cluster_members", "gauge",
         "Live members of the cluster, as this node sees them.");
    buf_printf(b, "logcaster_cluster_members %d\n", members);
    head(b, "logcaster_cluster_published_lines_total", "counter",
         "Lines this node published that JetStream confirmed.");
    buf_printf(b, "logcaster_cluster_published_lines_total %" PRIu64 "\n",
               atomic_load(&cl.published_entries));
    head(b, "logcaster_cluster_published_bytes_total", "counter",
         "Bytes (compressed batches) this node published that JetStream confirmed.");
    buf_printf(b, "logcaster_cluster_published_bytes_total %" PRIu64 "\n",
               atomic_load(&cl.published_bytes));
    head(b, "logcaster_cluster_failed_lines_total", "counter",
         "Lines JetStream did not confirm within --cluster-ack-timeout (answered with an error).");
    buf_printf(b, "logcaster_cluster_failed_lines_total %" PRIu64 "\n",
               atomic_load(&cl.failed_entries));
    head(b, "logcaster_cluster_publish_seconds", "summary",
         "Time from publishing a batch to JetStream's confirmation.");
    buf_printf(b, "logcaster_cluster_publish_seconds_sum %.6f\n",
               (double)atomic_load(&cl.publish_lat_us_sum) / 1e6);
    buf_printf(b, "logcaster_cluster_publish_seconds_count %" PRIu64 "\n",
               atomic_load(&cl.publish_lat_n));
    head(b, "logcaster_cluster_queries_total", "counter",
         "Cluster queries: asked of other nodes (out), answered for them (in).");
    buf_printf(b, "logcaster_cluster_queries_total{direction=\"out\"} %" PRIu64 "\n",
               atomic_load(&cl.queries_out));
    buf_printf(b, "logcaster_cluster_queries_total{direction=\"in\"} %" PRIu64 "\n",
               atomic_load(&cl.queries_in));
    head(b, "logcaster_cluster_query_wait_seconds", "summary",
         "Waits of requests answered here for their copy to apply the stream as far as the "
         "asking node had seen it.");
    buf_printf(b, "logcaster_cluster_query_wait_seconds_sum %.3f\n",
               (double)atomic_load(&cl.query_wait_ms_sum) / 1e3);
    buf_printf(b, "logcaster_cluster_query_wait_seconds_count %" PRIu64 "\n",
               atomic_load(&cl.queries_waited));
    head(b, "logcaster_cluster_partitions_missing_total", "counter",
         "Partitions no copy answered for, summed over queries.");
    buf_printf(b, "logcaster_cluster_partitions_missing_total %" PRIu64 "\n",
               atomic_load(&cl.partitions_missing));
    head(b, "logcaster_cluster_partition_copies", "gauge",
         "Nodes holding each partition caught up.");
    for (int p = 0; p < cl.partitions; p++) {
        char cand[16][CL_NAME_MAX];
        buf_printf(b, "logcaster_cluster_partition_copies{partition=\"%d\"} %d\n", p,
                   member_candidates(p, cand, NULL, 16));
    }
    head(b, "logcaster_cluster_partition_entries", "gauge",
         "Entries of each partition this node holds.");
    for (int p = 0; p < cl.partitions; p++) {
        uint64_t entries, lag;
        bool ready;
        if (replica_figures(p, &entries, &lag, &ready))
            buf_printf(b,
                       "logcaster_cluster_partition_entries{partition=\"%d\",state=\"%s\"} %" PRIu64
                       "\n",
                       p, ready ? "ready" : "catching-up", entries);
    }
    head(b, "logcaster_cluster_partition_lag_messages", "gauge",
         "Stream messages of each partition this node holds that it has yet to replay.");
    for (int p = 0; p < cl.partitions; p++) {
        uint64_t entries, lag;
        bool ready;
        if (replica_figures(p, &entries, &lag, &ready))
            buf_printf(b,
                       "logcaster_cluster_partition_lag_messages{partition=\"%d\"} %" PRIu64 "\n",
                       p, lag);
    }
}
