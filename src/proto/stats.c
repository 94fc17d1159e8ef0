/* stats.c - collect the server's statistics (see stats.h). */
#include "proto/stats.h"

#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/policy.h"
#include "core/server.h"
#include "proto/protocols.h"
#include "query/pipe.h"
#include "query/pool.h"
#include "store/store.h"

static long rss_bytes(void)
{
    long size, pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &pages) != 2)
            pages = 0;
        fclose(f);
    }
    return pages * sysconf(_SC_PAGESIZE);
}

size_t stats_collect(struct conn *c, struct stat_kv *out)
{
    static const char *const level_keys[LC_LEVEL_COUNT] = {
        "level.TRACE", "level.DEBUG", "level.INFO", "level.WARN", "level.ERROR", "level.FATAL",
    };
    struct server *srv = conn_server(c);
    struct server_counters *k = server_counters(srv);
    struct store_stats st;
    store_get_stats(protocols_store(), &st);
    size_t n = 0;
#define LOAD(f)    atomic_load_explicit((_Atomic uint64_t *)&k->f, memory_order_relaxed)
#define U(name, v) out[n++] = (struct stat_kv){.key = (name), .kind = STAT_U64, .u = (v)}
#define I(name, v)                                                                                 \
    out[n++] = (struct stat_kv)                                                                    \
    {                                                                                              \
        .key = (name), .kind = STAT_I64, .i = (v)                                                  \
    }
    U("entries", st.entries);
    U("appended", st.appended);
    U("evicted", st.evicted);
    U("dropped", LOAD(lines_rejected));
    U("truncated", LOAD(lines_truncated));
    for (int l = 0; l < LC_LEVEL_COUNT; l++)
        U(level_keys[l], st.per_level[l]);
    U("first_id", st.first_id);
    U("last_id", st.last_id);
    I("oldest_ts", st.oldest_ts_ms / 1000);
    I("newest_ts", st.newest_ts_ms / 1000);
    U("lines_received", LOAD(lines_in));
    U("bytes_received", LOAD(bytes_in));
    U("udp_datagrams", LOAD(udp_datagrams));
    U("udp_refused", LOAD(udp_refused));
    U("connections", LOAD(conns_current));
    U("connections_total", LOAD(conns_total));
    U("connections_refused", LOAD(conns_refused));
    U("connections_timed_out", LOAD(conns_timed_out));
    struct policy_counters pc;
    policy_get_counters(&pc);
    U("auth_ok", pc.auth_ok);
    U("auth_failed", pc.auth_failed);
    I("uptime_s", (now_ms() - server_started_ms(srv)) / 1000);
    U("memory_store_bytes", st.bytes);
    U("memory_limit_bytes", conn_config(c)->memory_limit);
    I("memory_rss_bytes", rss_bytes());
    U("raw_bytes", st.raw_bytes);
    U("disk_bytes", st.disk_bytes);
    out[n++] =
        (struct stat_kv){.key = "compression_ratio",
                         .kind = STAT_F64,
                         .d = st.raw_bytes ? (double)st.disk_bytes / (double)st.raw_bytes : 0};
    U("segments", st.segments);
    U("blocks", st.blocks);
    U("segments_deleted", st.segments_deleted);
    U("segments_archived", st.segments_archived);
    U("token_filters_pending", st.tokens_pending);
    out[n++] = (struct stat_kv){.key = "fsync_policy", .kind = STAT_STR, .s = st.fsync_policy};
    struct qpool_stats qs;
    qpool_get_stats(&qs);
    U("queries_queued", qs.queued);
    U("queries_running", qs.running);
    U("queries_finished", qs.finished);
    U("queries_cancelled", qs.cancelled);
    U("queries_timed_out", qs.timed_out);
    U("query_threads", (uint64_t)qs.threads);
    U("query_blocks_summarized", qagg_blocks_summarized());
    out[n++] = (struct stat_kv){
        .key = "query_p50_ms", .kind = STAT_F64, .d = metrics_quantile(MH_QUERY, 0.5) * 1000};
    out[n++] = (struct stat_kv){
        .key = "query_p99_ms", .kind = STAT_F64, .d = metrics_quantile(MH_QUERY, 0.99) * 1000};
    out[n++] = (struct stat_kv){.key = "query_wait_p99_ms",
                                .kind = STAT_F64,
                                .d = metrics_quantile(MH_QUERY_WAIT, 0.99) * 1000};
    U("fsyncs", st.fsyncs);
    I("last_fsync_us", st.last_fsync_us);
    U("pending_bytes", st.pending_bytes);
    U("write_errors", st.write_errors);
    U("failed_entries", st.failed_entries);
    U("damaged_bytes", st.damaged_bytes);
    out[n++] =
        (struct stat_kv){.key = "store_error", .kind = STAT_STR, .s = st.error ? st.error : "none"};
#undef U
#undef I
#undef LOAD
    lc_assert(n <= STATS_MAX);
    return n;
}
