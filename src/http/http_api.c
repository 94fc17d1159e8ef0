/* http_api.c - the read side of the HTTP API: the console's assets, /healthz, /metrics,
 * /api/v1/stats, /api/v1/query (JSON or streamed NDJSON; a table for a query with pipes)
 * and /api/v1/histogram.
 *
 * Queries run on the query pool (query/run.h): the request parks, the pool's answer arrives
 * through ready -> conn_schedule_resume, and the parked step formats what has arrived. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/policy.h"
#include "core/server.h"
#include "http/http.h"
#include "proto/json.h"
#include "proto/protocols.h"
#include "proto/stats.h"
#include "query/pipe.h"
#include "query/pool.h"
#include "query/qry.h"
#include "query/run.h"
#include "store/store.h"

#define MAX_Q          8192
#define LIMIT_DEFAULT  100
#define LIMIT_MAX_JSON 10000
#define LIMIT_MAX_NDJ  10000000
#define MAX_BUCKETS    2000
#define TARGET_BUCKETS 120

/* ------------------------------------------------------------------------------------------ */
/* Assets: web/ embedded by assets.S. */

#define ASSET(name)                                                                                \
    extern const char asset_##name##_start[];                                                      \
    extern const char asset_##name##_end[];
ASSET(index_html)
ASSET(app_js)
ASSET(app_css)

void http_get_asset(struct http_conn *h)
{
    const struct http_request *r = &h->req;
    const char *start = asset_index_html_start, *end = asset_index_html_end;
    const char *ctype = "text/html; charset=utf-8";
    if (r->path_len == 7 && memcmp(r->path, "/app.js", 7) == 0) {
        start = asset_app_js_start, end = asset_app_js_end;
        ctype = "text/javascript; charset=utf-8";
    } else if (r->path_len == 8 && memcmp(r->path, "/app.css", 8) == 0) {
        start = asset_app_css_start, end = asset_app_css_end;
        ctype = "text/css; charset=utf-8";
    }
    http_reply(h, 200, ctype, start, (size_t)(end - start));
}

void http_get_healthz(struct http_conn *h)
{
    struct store_stats st;
    store_get_stats(protocols_store(), &st);
    if (st.error) {
        char msg[200];
        int n = snprintf(msg, sizeof(msg), "store unavailable: %s\n", st.error);
        http_reply(h, 503, "text/plain; charset=utf-8", msg, (size_t)n);
        return;
    }
    http_reply(h, 200, "text/plain; charset=utf-8", "ok\n", 3);
}

/* ------------------------------------------------------------------------------------------ */
/* Statistics and metrics. */

static void put_cluster_json(void *arg, const char *name, const char *value)
{
    struct buf *b = arg;
    buf_printf(b, ",\"%s\":", name + 8); /* Without "cluster_". */
    json_str(b, value, strlen(value));
}

void http_get_stats(struct http_conn *h)
{
    struct stat_kv kv[STATS_MAX];
    size_t n = stats_collect(h->c, kv);
    struct store_stats st;
    store_get_stats(protocols_store(), &st);
    struct buf b = {0};
    buf_append(&b, "{", 1);
    for (size_t i = 0; i < n; i++) {
        buf_printf(&b, "\"%s\":", kv[i].key);
        switch (kv[i].kind) {
        case STAT_U64:
            buf_printf(&b, "%" PRIu64, kv[i].u);
            break;
        case STAT_I64:
            buf_printf(&b, "%" PRId64, kv[i].i);
            break;
        case STAT_F64:
            buf_printf(&b, "%.4f", kv[i].d);
            break;
        case STAT_STR:
            json_str(&b, kv[i].s, strlen(kv[i].s));
            break;
        }
        buf_append(&b, ",", 1);
    }
    struct server_counters *k = server_counters(conn_server(h->c));
    buf_printf(&b,
               "\"connections_current\":%" PRIu64 ",\"oldest_ts_ms\":%" PRId64
               ",\"newest_ts_ms\":%" PRId64 ",\"per_level\":{",
               atomic_load_explicit((_Atomic uint64_t *)&k->conns_current, memory_order_relaxed),
               st.oldest_ts_ms, st.newest_ts_ms);
    for (int l = 0; l < LC_LEVEL_COUNT; l++)
        buf_printf(&b, "%s\"%s\":%" PRIu64, l ? "," : "", lc_level_name(l), st.per_level[l]);
    buf_append(&b, "}", 1);
    if (cluster_enabled()) {
        buf_append(&b, ",\"cluster\":{\"enabled\":true", 27);
        cluster_report(put_cluster_json, &b);
        buf_append(&b, "}", 1);
    }
    buf_append(&b, "}\n", 2);
    http_reply_json(h, 200, &b);
    buf_free(&b);
}

static const char *const slot_names[PROTO_SLOTS] = {"ingest", "query", "irc", "http"};

static void metric_head(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void http_get_metrics(struct http_conn *h)
{
    struct server_counters *k = server_counters(conn_server(h->c));
    struct store_stats st;
    store_get_stats(protocols_store(), &st);
    struct buf b = {0};
#define LOAD(f) atomic_load_explicit((_Atomic uint64_t *)&(f), memory_order_relaxed)
    metric_head(&b, "logcaster_ingested_lines_total", "counter",
                "Log entries stored, by the protocol they came in by and their level.");
    for (int p = 0; p < PROTO_SLOTS; p++) {
        if (p != SLOT_INGEST && p != SLOT_HTTP)
            continue;
        for (int l = 0; l < LC_LEVEL_COUNT; l++)
            buf_printf(&b,
                       "logcaster_ingested_lines_total{protocol=\"%s\",level=\"%s\"} %" PRIu64 "\n",
                       slot_names[p], lc_level_name(l), LOAD(k->lines_by_proto[p][l]));
    }
    metric_head(&b, "logcaster_received_bytes_total", "counter",
                "Bytes read from connections, by protocol.");
    for (int p = 0; p < PROTO_SLOTS; p++)
        buf_printf(&b, "logcaster_received_bytes_total{protocol=\"%s\"} %" PRIu64 "\n",
                   slot_names[p], LOAD(k->bytes_in_by_proto[p]));
    metric_head(&b, "logcaster_rejected_lines_total", "counter",
                "Framed lines answered with an error (malformed, too long, store unavailable).");
    buf_printf(&b, "logcaster_rejected_lines_total %" PRIu64 "\n", LOAD(k->lines_rejected));
    metric_head(&b, "logcaster_truncated_lines_total", "counter",
                "Plain lines stored truncated at --max-line.");
    buf_printf(&b, "logcaster_truncated_lines_total %" PRIu64 "\n", LOAD(k->lines_truncated));
    metric_head(&b, "logcaster_evicted_lines_total", "counter", "Entries deleted by retention.");
    buf_printf(&b, "logcaster_evicted_lines_total %" PRIu64 "\n", st.evicted);
    metric_head(&b, "logcaster_connections", "gauge", "Open connections, by protocol.");
    for (int p = 0; p < PROTO_SLOTS; p++)
        buf_printf(&b, "logcaster_connections{protocol=\"%s\"} %" PRIu64 "\n", slot_names[p],
                   LOAD(k->conns_by_proto[p]));
    metric_head(&b, "logcaster_connections_accepted_total", "counter",
                "Connections accepted since start.");
    buf_printf(&b, "logcaster_connections_accepted_total %" PRIu64 "\n", LOAD(k->conns_total));
    metric_head(&b, "logcaster_connections_refused_total", "counter",
                "Connections refused at accept: --max-connections, or an access policy (reason).");
    struct policy_counters pc;
    policy_get_counters(&pc);
    static const char *const reasons[POLICY_VERDICTS] = {
        "", "denied", "rate", "per_ip", "total", "auth_banned", "local_only"};
    uint64_t by_policy = 0;
    for (int i = 1; i < POLICY_VERDICTS; i++) {
        buf_printf(&b, "logcaster_connections_refused_total{reason=\"%s\"} %" PRIu64 "\n",
                   reasons[i], pc.refused[i]);
        by_policy += pc.refused[i];
    }
    uint64_t all = LOAD(k->conns_refused);
    buf_printf(&b, "logcaster_connections_refused_total{reason=\"max_connections\"} %" PRIu64 "\n",
               all > by_policy ? all - by_policy : 0);
    metric_head(&b, "logcaster_auth_total", "counter", "Authentication attempts by result.");
    buf_printf(&b, "logcaster_auth_total{result=\"ok\"} %" PRIu64 "\n", pc.auth_ok);
    buf_printf(&b, "logcaster_auth_total{result=\"failed\"} %" PRIu64 "\n", pc.auth_failed);
#undef LOAD
    static const struct {
        enum metrics_hist h;
        const char *name, *help;
    } hists[] = {
        {MH_QUERY, "logcaster_query_duration_seconds",
         "Time from a query's request to its last result byte (every front end)."},
        {MH_QUERY_WAIT, "logcaster_query_wait_seconds",
         "Time a query waited for a slot on the query pool (--query-concurrency)."},
    };
    for (size_t hk = 0; hk < sizeof(hists) / sizeof(hists[0]); hk++) {
        uint64_t cum[QLAT_BUCKETS + 1], count;
        double sum;
        metrics_snapshot(hists[hk].h, cum, &count, &sum);
        metric_head(&b, hists[hk].name, "histogram", hists[hk].help);
        for (int i = 0; i < QLAT_BUCKETS; i++)
            buf_printf(&b, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", hists[hk].name, qlat_bounds[i],
                       cum[i]);
        buf_printf(&b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.6f\n%s_count %" PRIu64 "\n",
                   hists[hk].name, cum[QLAT_BUCKETS], hists[hk].name, sum, hists[hk].name, count);
    }
    struct qpool_stats qs;
    qpool_get_stats(&qs);
    metric_head(&b, "logcaster_queries", "gauge",
                "Queries now waiting for a slot (queued) and admitted (running).");
    buf_printf(&b, "logcaster_queries{state=\"queued\"} %" PRIu64 "\n", qs.queued);
    buf_printf(&b, "logcaster_queries{state=\"running\"} %" PRIu64 "\n", qs.running);
    metric_head(&b, "logcaster_queries_total", "counter", "Queries ended, by how they ended.");
    buf_printf(&b, "logcaster_queries_total{result=\"finished\"} %" PRIu64 "\n", qs.finished);
    buf_printf(&b, "logcaster_queries_total{result=\"cancelled\"} %" PRIu64 "\n", qs.cancelled);
    buf_printf(&b, "logcaster_queries_total{result=\"timed_out\"} %" PRIu64 "\n", qs.timed_out);
    metric_head(&b, "logcaster_store_entries", "gauge", "Entries held.");
    buf_printf(&b, "logcaster_store_entries %" PRIu64 "\n", st.entries);
    metric_head(&b, "logcaster_store_raw_bytes", "gauge", "Stored records, uncompressed.");
    buf_printf(&b, "logcaster_store_raw_bytes %" PRIu64 "\n", st.raw_bytes);
    metric_head(&b, "logcaster_store_disk_bytes", "gauge", "Segment files on disk.");
    buf_printf(&b, "logcaster_store_disk_bytes %" PRIu64 "\n", st.disk_bytes);
    metric_head(&b, "logcaster_store_compression_ratio", "gauge", "Disk bytes / raw bytes.");
    buf_printf(&b, "logcaster_store_compression_ratio %.4f\n",
               st.raw_bytes ? (double)st.disk_bytes / (double)st.raw_bytes : 0);
    metric_head(&b, "logcaster_store_segments", "gauge", "Segment files.");
    buf_printf(&b, "logcaster_store_segments %" PRIu64 "\n", st.segments);
    metric_head(&b, "logcaster_store_pending_bytes", "gauge", "Accepted, not yet written.");
    buf_printf(&b, "logcaster_store_pending_bytes %" PRIu64 "\n", st.pending_bytes);
    metric_head(&b, "logcaster_store_write_errors_total", "counter",
                "Batches that could not be stored.");
    buf_printf(&b, "logcaster_store_write_errors_total %" PRIu64 "\n", st.write_errors);
    metric_head(&b, "logcaster_fsyncs_total", "counter", "fsync calls of the store.");
    buf_printf(&b, "logcaster_fsyncs_total %" PRIu64 "\n", st.fsyncs);
    metric_head(&b, "logcaster_fsync_last_seconds", "gauge", "Duration of the latest fsync.");
    buf_printf(&b, "logcaster_fsync_last_seconds %.6f\n",
               st.last_fsync_us < 0 ? 0.0 : (double)st.last_fsync_us / 1e6);
    metric_head(&b, "logcaster_uptime_seconds", "gauge", "Seconds since start.");
    buf_printf(&b, "logcaster_uptime_seconds %lld\n",
               (long long)((now_ms() - server_started_ms(conn_server(h->c))) / 1000));
    cluster_metrics(&b); /* Nothing on a single node. */
    http_reply(h, 200, "text/plain; version=0.0.4; charset=utf-8", buf_head(&b), buf_len(&b));
    buf_free(&b);
}

/* ------------------------------------------------------------------------------------------ */
/* Shared by query and histogram: q, from and to parameters into a compiled query. */

/* from/to: unix milliseconds (digits only) or ISO-8601. */
static int time_param(struct http_conn *h, const char *name, int64_t *ms, char *err)
{
    char v[64];
    long n = http_param(h, name, v, sizeof(v));
    if (n == -1 || n == 0)
        return 1; /* Absent. */
    if (n < 0) {
        snprintf(err, QRY_ERR_MAX, "bad %s parameter", name);
        return -1;
    }
    bool digits = true;
    for (long i = 0; i < n; i++)
        digits &= v[i] >= '0' && v[i] <= '9';
    if (digits && n <= 15) {
        *ms = strtoll(v, NULL, 10);
        return 0;
    }
    if (qry_parse_time(v, (size_t)n, ms, err) < 0) {
        snprintf(err, QRY_ERR_MAX, "bad %s parameter '%s' (unix milliseconds or ISO-8601)", name,
                 v);
        return -1;
    }
    return 0;
}

/* Compile q plus the from/to parameters. Returns the query or NULL after answering 400. */
static struct qry *compile_params(struct http_conn *h, char *text, size_t cap, int64_t *from,
                                  int64_t *to, bool apply_range)
{
    char err[QRY_ERR_MAX] = "";
    long n = http_param(h, "q", text, cap);
    if (n == -2) {
        http_reply_error(h, 400, "bad q parameter (malformed percent-encoding, or too long)");
        return NULL;
    }
    if (n < 0) {
        n = 0;
        text[0] = 0;
    }
    *from = INT64_MIN;
    *to = INT64_MAX;
    int rf = time_param(h, "from", from, err);
    int rt = rf < 0 ? 0 : time_param(h, "to", to, err);
    if (rf < 0 || rt < 0) {
        http_reply_error(h, 400, err);
        return NULL;
    }
    struct qry *q;
    if (qry_compile(text, (size_t)n, now_ms(), &q, err) < 0) {
        http_reply_error(h, 400, err);
        return NULL;
    }
    if (apply_range && (*from != INT64_MIN || *to != INT64_MAX)) {
        struct qry *t = qry_time_range(*from, *to, err);
        if (!t) {
            qry_free(q);
            http_reply_error(h, 400, err);
            return NULL;
        }
        q = qry_and(q, t);
    }
    return q;
}

static long uint_param(struct http_conn *h, const char *name, uint64_t *v)
{
    char s[32];
    long n = http_param(h, name, s, sizeof(s));
    if (n <= 0)
        return n == -2 ? -2 : -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end || s[0] == '-')
        return -2;
    *v = x;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* /api/v1/query */

struct query_job {
    struct qrun *run;
    char missing[512]; /* A cluster's partial answer: the partitions it lacks ("1, 5"). */
    uint64_t limit, found;
    bool ndjson, more;
    bool table;          /* The answer is a table (the query has pipes). */
    uint64_t table_cap;  /* Rows of a table sent at most (0: all), */
    uint64_t table_rows; /* of how many. */
    int status;          /* An error answered (or 0). */
    struct buf out;
    int64_t t0;
    char text[MAX_Q];
};

/* Rows arrive newest first, at most limit + 1 for JSON (the extra one only says "more"). */
static bool query_row(void *arg, const struct lc_entry *e)
{
    struct http_conn *h = arg;
    struct query_job *j = h->hs;
    if (j->found == j->limit) {
        j->more = true;
        return true;
    }
    j->found++;
    if (j->ndjson) {
        json_entry(&j->out, e);
        buf_append(&j->out, "\n", 1);
        if (buf_len(&j->out) >= 64 * 1024) {
            http_send(h, buf_head(&j->out), buf_len(&j->out));
            buf_consume(&j->out, buf_len(&j->out));
            return !conn_out_full(h->c);
        }
        return true;
    }
    if (j->found > 1)
        buf_append(&j->out, ",", 1);
    json_entry(&j->out, e);
    return true;
}

/* A cell as JSON: numbers bare, everything else a string. */
static void json_cell(struct buf *b, const struct qcell *c)
{
    if (c->num)
        buf_append(b, c->s, c->len);
    else
        json_str(b, c->s, c->len);
}

static void query_table(void *arg, const struct qtable *t)
{
    struct http_conn *h = arg;
    struct query_job *j = h->hs;
    j->table = true;
    j->table_rows = t->nrows;
    if (j->ndjson)
        return;
    buf_append(&j->out, "\"columns\":[", 11);
    for (size_t c = 0; c < t->ncols; c++) {
        if (c)
            buf_append(&j->out, ",", 1);
        json_str(&j->out, t->cols[c], strlen(t->cols[c]));
    }
    buf_append(&j->out, "],\"rows\":[", 10);
}

static bool query_table_row(void *arg, const struct qtable *t, size_t r)
{
    struct http_conn *h = arg;
    struct query_job *j = h->hs;
    const struct qcell *row = t->cells + r * t->ncols;
    if (j->table_cap && r >= j->table_cap) { /* The rest is counted, not sent. */
        j->more = true;
        return true;
    }
    if (j->ndjson) { /* One object per row. */
        buf_append(&j->out, "{", 1);
        for (size_t c = 0; c < t->ncols; c++) {
            if (c)
                buf_append(&j->out, ",", 1);
            json_str(&j->out, t->cols[c], strlen(t->cols[c]));
            buf_append(&j->out, ":", 1);
            json_cell(&j->out, &row[c]);
        }
        buf_append(&j->out, "}\n", 2);
        if (buf_len(&j->out) >= 64 * 1024) {
            http_send(h, buf_head(&j->out), buf_len(&j->out));
            buf_consume(&j->out, buf_len(&j->out));
            return !conn_out_full(h->c);
        }
        return true;
    }
    buf_append(&j->out, r ? ",[" : "[", r ? 2 : 1);
    for (size_t c = 0; c < t->ncols; c++) {
        if (c)
            buf_append(&j->out, ",", 1);
        json_cell(&j->out, &row[c]);
    }
    buf_append(&j->out, "]", 1);
    j->found++;
    return true;
}

/* A run's error: a status that says whose fault it is, unless the answer already started. */
static int run_error_status(const char *why)
{
    return strstr(why, "--query-timeout") ? 504 : strstr(why, "--query-memory") ? 507 : 400;
}

static void query_error(void *arg, const char *why)
{
    struct http_conn *h = arg;
    struct query_job *j = h->hs;
    if (j->ndjson) { /* Headers are out: the error is the stream's last line. */
        buf_append(&j->out, "{\"error\":", 9);
        json_str(&j->out, why, strlen(why));
        buf_append(&j->out, "}\n", 2);
        j->status = 200;
        return;
    }
    j->status = run_error_status(why);
    buf_consume(&j->out, buf_len(&j->out));
    buf_append(&j->out, why, strlen(why));
}

static void query_partial(void *arg, const char *missing)
{
    struct http_conn *h = arg;
    struct query_job *j = h->hs;
    snprintf(j->missing, sizeof(j->missing), "%s", missing);
}

static const struct qrun_sink query_sink = {.row = query_row,
                                            .table = query_table,
                                            .table_row = query_table_row,
                                            .error = query_error,
                                            .partial = query_partial};

static void query_finish(struct http_conn *h, bool table)
{
    /* table: "columns":[..],"rows":[.. is in out; close it. */
    struct query_job *j = h->hs;
    metrics_query_observe(mono_ns() - j->t0);
    if (j->ndjson) {
        http_send(h, buf_head(&j->out), buf_len(&j->out));
        http_end(h);
        return;
    }
    if (j->status) {
        char why[QRY_ERR_MAX + 64];
        snprintf(why, sizeof(why), "%.*s", (int)buf_len(&j->out), buf_head(&j->out));
        http_reply_error(h, j->status, why);
        return;
    }
    struct buf b = {0};
    buf_append(&b, "{\"query\":", 9);
    json_str(&b, j->text, strlen(j->text));
    if (j->missing[0]) /* "1, 5" is a JSON list's inside as it is. */
        buf_printf(&b, ",\"partial\":true,\"missing_partitions\":[%s]", j->missing);
    if (table) {
        buf_printf(&b, ",\"rows_total\":%" PRIu64 ",\"more\":%s,\"took_ms\":%.3f,", j->table_rows,
                   j->more ? "true" : "false", (double)(mono_ns() - j->t0) / 1e6);
        buf_append(&b, buf_head(&j->out), buf_len(&j->out));
        buf_append(&b, "]}\n", 3);
    } else {
        buf_printf(&b, ",\"limit\":%" PRIu64 ",\"more\":%s,\"took_ms\":%.3f,\"entries\":[",
                   j->limit, j->more ? "true" : "false", (double)(mono_ns() - j->t0) / 1e6);
        buf_append(&b, buf_head(&j->out), buf_len(&j->out));
        buf_append(&b, "]}\n", 3);
    }
    http_reply_json(h, 200, &b);
    buf_free(&b);
}

static void query_step(struct http_conn *h)
{
    struct query_job *j = h->hs;
    if (qrun_drain(j->run, &query_sink, h) != QX_DONE)
        return; /* Paused on a full output (resume comes), or waiting for the pool (ready). */
    query_finish(h, j->table);
}

static void query_ready(void *owner)
{
    struct http_conn *h = owner;
    conn_schedule_resume(h->c);
}

static void query_cleanup(struct http_conn *h)
{
    struct query_job *j = h->hs;
    qrun_close(j->run);
    buf_free(&j->out);
    free(j);
}

static bool wants_ndjson(const struct http_conn *h)
{
    size_t len;
    const char *accept = http_header(&h->req, "Accept", &len);
    char fmt[16];
    long n = http_param(h, "format", fmt, sizeof(fmt));
    if (n > 0 && strcmp(fmt, "ndjson") == 0)
        return true;
    return accept && http_list_has(accept, len, "application/x-ndjson");
}

void http_get_query(struct http_conn *h)
{
    struct query_job *j = calloc(1, sizeof(*j));
    if (!j) {
        http_reply_error(h, 500, "out of memory");
        return;
    }
    j->t0 = mono_ns();
    int64_t from, to;
    struct qry *q = compile_params(h, j->text, sizeof(j->text), &from, &to, true);
    if (!q) {
        free(j);
        return;
    }
    j->ndjson = wants_ndjson(h);
    uint64_t limit = LIMIT_DEFAULT, before = 0;
    long lr = uint_param(h, "limit", &limit), br = uint_param(h, "before", &before);
    uint64_t max = j->ndjson ? LIMIT_MAX_NDJ : LIMIT_MAX_JSON;
    if (lr == -2 || br == -2 || limit == 0 || limit > max) {
        qry_free(q);
        free(j);
        char msg[120];
        snprintf(msg, sizeof(msg), "limit must be 1..%" PRIu64 " and before an entry id", max);
        http_reply_error(h, 400, msg);
        return;
    }
    if (qry_limit(q) && qry_limit(q) < limit)
        limit = qry_limit(q);
    j->limit = limit;
    uint64_t lo, hi;
    store_id_range(protocols_store(), &lo, &hi);
    lo = lo ? lo : 1;
    if (br == 0 && before <= hi)
        hi = before ? before - 1 : 0;
    struct ev_loop *loop = conn_loop(h->c);
    /* A table: the pipes decide its rows; limit (when given) or LIMIT_MAX_JSON caps what is
     * sent, so `| fields a` over millions of entries does not become one huge answer. */
    j->table_cap = lr == 0 ? limit : j->ndjson ? 0 : LIMIT_MAX_JSON;
    bool cluster = protocols_store() == NULL;
    qry_set_partial_ok(q, !j->ndjson); /* NDJSON has no envelope to say it in. */
    if (qry_has_pipes(q))
        j->run = qrun_start(loop, protocols_store(), q, false, 0, 0, query_ready, h);
    else if (cluster) /* The whole cluster: its newest matches, in arrival order. */
        j->run = qrun_start_order(loop, q, (struct qrun_bound){0},
                                  (struct qrun_bound){before, br == 0, false}, false,
                                  j->ndjson ? limit : limit + 1, query_ready, h);
    else if (hi >= lo && hi > 0)
        j->run = qrun_start_list(loop, protocols_store(), q, lo, hi, false,
                                 j->ndjson ? limit : limit + 1, query_ready, h);
    else /* Nothing to scan: an empty range still answers through the pool, in order. */
        j->run = qrun_start_list(loop, protocols_store(), q, 1, 0, false, 1, query_ready, h);
    if (!j->run) {
        free(j);
        http_reply_error(h, 500, "out of memory");
        return;
    }
    http_park(h, query_step, query_cleanup, j);
    if (j->ndjson)
        http_begin(h, 200, "application/x-ndjson", NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* /api/v1/histogram */

struct histo_part;

struct histo_job {
    struct qry *q;          /* Tested by the parts per block; freed at cleanup. */
    struct histo_part *sum; /* A cluster's: the stats table's rows, counted (or NULL). */
    struct qrun *run;
    struct buf out;         /* The answer, replied once the run is drained. */
    int64_t from, to, step; /* Buckets cover [from, to), step ms each. */
    size_t nbuckets;
    int64_t t0;
    int status;
    char why[QRY_ERR_MAX + 64];
    char text[MAX_Q];
};

/* A part of the histogram: counts per bucket and level, folded on the query pool. */
struct histo_part {
    const struct histo_job *j;
    uint64_t total;
    uint64_t counts[]; /* nbuckets * LC_LEVEL_COUNT */
};

static void *histo_part_new(void *ctx)
{
    const struct histo_job *j = ctx;
    struct histo_part *p = calloc(1, sizeof(*p) + j->nbuckets * LC_LEVEL_COUNT * sizeof(uint64_t));
    if (p)
        p->j = j;
    return p;
}

static bool histo_visit(void *arg, const struct lc_entry *e)
{
    struct histo_part *p = arg;
    const struct histo_job *j = p->j;
    if (e->ts_ms < j->from || e->ts_ms >= j->to)
        return true;
    size_t b = (size_t)((e->ts_ms - j->from) / j->step);
    p->counts[b * LC_LEVEL_COUNT + (e->level < LC_LEVEL_COUNT ? e->level : LC_INFO)]++;
    p->total++;
    return true;
}

/* A block whose entries all match and all fall into one bucket is counted from its summary's
 * level counts, without reading it. */
static bool histo_block(void *arg, const struct lc_block_info *b)
{
    struct histo_part *p = arg;
    const struct histo_job *j = p->j;
    if (b->min_ts_ms < j->from || b->max_ts_ms >= j->to ||
        (b->min_ts_ms - j->from) / j->step != (b->max_ts_ms - j->from) / j->step)
        return false;
    if (qry_block_count(j->q, b) != (int64_t)(b->last_id - b->first_id + 1))
        return false;
    size_t k = (size_t)((b->min_ts_ms - j->from) / j->step);
    for (int l = 0; l < LC_LEVEL_COUNT; l++) {
        p->counts[k * LC_LEVEL_COUNT + l] += b->level_counts[l];
        p->total += b->level_counts[l];
    }
    return true;
}

static int histo_merge(void *into, void *part)
{
    struct histo_part *a = into, *b = part;
    for (size_t i = 0; i < a->j->nbuckets * LC_LEVEL_COUNT; i++)
        a->counts[i] += b->counts[i];
    a->total += b->total;
    free(b);
    return 0;
}

static const struct qfold_ops histo_fold = {.part_new = histo_part_new,
                                            .take_block = histo_block,
                                            .add = histo_visit,
                                            .merge = histo_merge,
                                            .part_free = free};

static void histo_result(void *arg, void *part)
{
    struct http_conn *h = arg;
    struct histo_job *j = h->hs;
    const struct histo_part *p = part;
    struct buf *b = &j->out;
    buf_append(b, "{\"query\":", 9);
    json_str(b, j->text, strlen(j->text));
    buf_printf(b,
               ",\"from_ms\":%" PRId64 ",\"to_ms\":%" PRId64 ",\"step_ms\":%" PRId64
               ",\"total\":%" PRIu64 ",\"took_ms\":%.3f,\"levels\":[",
               j->from, j->to, j->step, p->total, (double)(mono_ns() - j->t0) / 1e6);
    for (int l = 0; l < LC_LEVEL_COUNT; l++)
        buf_printf(b, "%s\"%s\"", l ? "," : "", lc_level_name(l));
    buf_append(b, "],\"buckets\":[", 13);
    for (size_t i = 0; i < j->nbuckets; i++) {
        buf_printf(b, "%s{\"ts_ms\":%" PRId64 ",\"counts\":[", i ? "," : "",
                   j->from + (int64_t)i * j->step);
        for (int l = 0; l < LC_LEVEL_COUNT; l++)
            buf_printf(b, "%s%" PRIu64, l ? "," : "", p->counts[i * LC_LEVEL_COUNT + l]);
        buf_append(b, "]}", 2);
    }
    buf_append(b, "]}\n", 3);
    j->status = 200;
}

static void histo_error(void *arg, const char *why)
{
    struct http_conn *h = arg;
    struct histo_job *j = h->hs;
    j->status = run_error_status(why);
    snprintf(j->why, sizeof(j->why), "%s", why);
}

/* A cluster's row of `stats by (_time:STEP, level) count()`: _time, level, n. */
static bool histo_table_row(void *arg, const struct qtable *t, size_t r)
{
    struct http_conn *h = arg;
    struct histo_job *j = h->hs;
    const struct qcell *c = t->cells + r * t->ncols;
    char err[QRY_ERR_MAX];
    int64_t ts;
    int level = t->ncols == 3 ? lc_level_parse(c[1].s, c[1].len) : -1;
    if (level < 0 || qry_parse_time(c[0].s, c[0].len, &ts, err) < 0 || ts < j->from ||
        ts >= j->to) {
        histo_error(h, "a cluster's histogram row is not a bucket");
        return true;
    }
    uint64_t n = strtoull(c[2].s, NULL, 10);
    j->sum->counts[(size_t)((ts - j->from) / j->step) * LC_LEVEL_COUNT + (size_t)level] += n;
    j->sum->total += n;
    return true;
}

static void histo_table(void *arg, const struct qtable *t)
{
    (void)arg;
    (void)t;
}

static const struct qrun_sink histo_sink = {.result = histo_result,
                                            .error = histo_error,
                                            .table = histo_table,
                                            .table_row = histo_table_row};

static void histo_step(struct http_conn *h)
{
    struct histo_job *j = h->hs;
    if (qrun_drain(j->run, &histo_sink, h) != QX_DONE)
        return;
    if (j->sum && !j->status)
        histo_result(h, j->sum);
    metrics_query_observe(mono_ns() - j->t0);
    if (j->status == 200)
        http_reply_json(h, 200, &j->out); /* Ends the request: cleanup frees j. */
    else
        http_reply_error(h, j->status ? j->status : 500, j->why[0] ? j->why : "no answer");
}

static void histo_cleanup(struct http_conn *h)
{
    struct histo_job *j = h->hs;
    qrun_close(j->run); /* Before the query it borrows is freed. */
    qry_free(j->q);
    free(j->sum);
    buf_free(&j->out);
    free(j);
}

/* The smallest round step that gives at most TARGET_BUCKETS buckets over span ms. */
static int64_t auto_step(int64_t span)
{
    static const int64_t steps[] = {1000,      2000,      5000,        10000,    15000,    30000,
                                    60000,     120000,    300000,      600000,   900000,   1800000,
                                    3600000,   7200000,   10800000,    21600000, 43200000, 86400000,
                                    172800000, 604800000, 2592000000LL};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        if (span / steps[i] < TARGET_BUCKETS)
            return steps[i];
    return span / TARGET_BUCKETS + 1;
}

static void histo_fail(struct http_conn *h, struct histo_job *j, int status, const char *msg)
{
    qry_free(j->q);
    free(j->sum);
    free(j);
    http_reply_error(h, status, msg);
}

/* step: a duration (10s, 1m, 1h) or milliseconds; 0 when absent, -1 when malformed. */
static int64_t step_param(struct http_conn *h)
{
    char v[32], err[QRY_ERR_MAX];
    long n = http_param(h, "step", v, sizeof(v));
    if (n == -1 || n == 0)
        return 0;
    if (n < 0)
        return -1;
    bool digits = true;
    for (long i = 0; i < n; i++)
        digits &= v[i] >= '0' && v[i] <= '9';
    int64_t step;
    if (digits)
        step = n <= 15 ? strtoll(v, NULL, 10) : -1;
    else if (qry_parse_duration(v, (size_t)n, &step, err) < 0)
        step = -1;
    return step > 0 ? step : -1;
}

void http_get_histogram(struct http_conn *h)
{
    struct histo_job *j = calloc(1, sizeof(*j));
    if (!j) {
        http_reply_error(h, 500, "out of memory");
        return;
    }
    j->t0 = mono_ns();
    int64_t from, to;
    /* The buckets' own range is applied below: whole buckets, from and to rounded out. */
    j->q = compile_params(h, j->text, sizeof(j->text), &from, &to, false);
    if (!j->q) {
        free(j);
        return;
    }
    /* The range: from/to parameters, else the query's own time bounds, else the last hour. */
    int64_t qf, qt;
    qry_time_bounds(j->q, &qf, &qt);
    if (from == INT64_MIN)
        from = qf;
    if (to == INT64_MAX)
        to = qt == INT64_MAX ? now_ms() : qt + 1;
    if (from == INT64_MIN)
        from = to - 3600 * 1000;
    if (to <= from) {
        histo_fail(h, j, 400, "the time range is empty (from must be before to)");
        return;
    }
    int64_t step = step_param(h);
    if (step < 0) {
        histo_fail(h, j, 400, "bad step (e.g. 10s, 1m, 1h, or milliseconds)");
        return;
    }
    if (step == 0)
        step = auto_step(to - from);
    j->from = from - ((from % step) + step) % step; /* Buckets start on whole steps. */
    j->step = step;
    uint64_t nb = (uint64_t)((to - j->from - 1) / step) + 1;
    if (nb > MAX_BUCKETS) {
        histo_fail(h, j, 400, "step too small for the range: at most 2000 buckets");
        return;
    }
    j->nbuckets = (size_t)nb;
    j->to = j->from + (int64_t)nb * step;
    char err[QRY_ERR_MAX];
    struct qry *range = qry_time_range(j->from, j->to - 1, err);
    if (!range) {
        histo_fail(h, j, 500, "out of memory");
        return;
    }
    j->q = qry_and(j->q, range);
    /* The run reads the query (parts test it per block); the job keeps it until cleanup. A
     * second compiled copy is what the run itself owns. A cluster counts the same as a stats
     * pipe, merged where it is asked (histo_table_row). */
    bool cluster = !protocols_store();
    if (cluster && qry_has_pipes(j->q)) {
        histo_fail(h, j, 400, "a histogram takes a filter without pipes");
        return;
    }
    char text[MAX_Q + 96];
    if (cluster)
        snprintf(text, sizeof(text), "%s | stats by (_time:%" PRId64 "ms, level) count() as n",
                 j->text, step);
    else
        snprintf(text, sizeof(text), "%s", j->text);
    struct qry *own = NULL;
    if ((cluster && !(j->sum = histo_part_new(j))) ||
        qry_compile(text, strlen(text), now_ms(), &own, err) < 0 || !own) {
        histo_fail(h, j, 500, "out of memory");
        return;
    }
    own = qry_and(own, qry_time_range(j->from, j->to - 1, err));
    if (cluster)
        j->run = qrun_start(conn_loop(h->c), NULL, own, false, 0, 0, query_ready, h);
    else
        j->run = qrun_start_fold(conn_loop(h->c), protocols_store(), own, 0, 0, &histo_fold, j,
                                 query_ready, h);
    if (!j->run) {
        histo_fail(h, j, 500, "out of memory");
        return;
    }
    http_park(h, histo_step, histo_cleanup, j);
}
