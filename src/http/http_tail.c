/* http_tail.c - GET /api/v1/tail?q=EXPR: new matching entries as Server-Sent Events.
 *
 * Each event is `id: <entry id>`, `event: log`, `data: <entry JSON>`. A reconnecting
 * EventSource sends Last-Event-ID and continues after that entry (at most BACKLOG_MAX entries
 * back). A tail subscribes to the ingest fan-out (ingest/fanout.h): committed entries arrive
 * in its queue once, are matched with its query and sent as fast as the reader takes them.
 * Only history is read from the store, on the query pool: what Last-Event-ID asks for, and the
 * entries that were already on their way when the tail subscribed. A reader whose unsent output
 * stays at
 * --out-limit for STALL_MS is disconnected, and one more than BACKLOG_MAX entries behind skips
 * ahead (an "event: skipped"): it never slows ingest or anyone else. A comment line every 15 s
 * keeps proxies and the idle timeout from closing a quiet stream.
 *
 * On a cluster member the queue brings every node's entries, in no id order: Last-Event-ID's
 * successors are read in the cluster's arrival order (qrun_start_order) while new ones queue,
 * and a queued entry that history sent already is passed by. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/server.h"
#include "http/http.h"
#include "ingest/fanout.h"
#include "ingest/pipeline.h"
#include "proto/json.h"
#include "proto/protocols.h"
#include "query/pipe.h"
#include "query/qry.h"
#include "query/run.h"
#include "store/store.h"

#define TAIL_CHUNK   (64 << 10) /* Events rendered before they are handed to the socket. */
#define BACKLOG_MAX  100000     /* Entries a tail may be behind before it skips ahead. */
#define KEEPALIVE_MS 15000
#define STALL_MS     5000 /* A reader whose output stays full this long is dropped. */
/* A cluster member's resumed tail: how long a live entry may still come after the history that
 * sent it was read (its copies applied it before this node's live feed brought it). */
#define SEEN_KEEP_MS 30000

struct tail_job {
    struct qry *q;
    uint64_t next_id;   /* First id not yet examined. */
    uint64_t last_seen; /* Last entry rendered. */
    bool chunk_full;    /* The scan stopped because TAIL_CHUNK bytes are ready. */
    int64_t last_write_ms;
    int64_t stalled_ms; /* Since when the output has been full (0: it is not). */
    struct buf out;
    struct ingest_sub sub;       /* Committed entries, as they come. */
    bool fed;                    /* The queue has delivered: no more waiting for commits. */
    struct ingest_waiter waiter; /* Until then: the writer's next commit. */
    struct qrun *hist;           /* History being read on the query pool, */
    uint64_t hist_hi;            /* up to this id. */
    /* A cluster member: Last-Event-ID's entry, whose successors in arrival order are read
     * first (0: none, or read), and the ids that history sent, sorted once it is done, so a
     * live entry it sent too is passed by, until seen_until. */
    uint64_t resume_id;
    uint64_t *seen;
    size_t nseen, capseen;
    int64_t seen_until;
    char text[8192]; /* The query, compiled again for each history run. */
};

static bool tail_visit(void *arg, const struct lc_entry *e)
{
    struct tail_job *j = arg;
    j->last_seen = e->id;
    buf_printf(&j->out, "id: %" PRIu64 "\nevent: log\ndata: ", e->id);
    json_entry(&j->out, e);
    buf_append(&j->out, "\n\n", 2);
    if (buf_len(&j->out) >= TAIL_CHUNK) {
        j->chunk_full = true;
        return false;
    }
    return true;
}

static void tail_send(struct http_conn *h)
{
    struct tail_job *j = h->hs;
    if (!buf_len(&j->out))
        return;
    http_send(h, buf_head(&j->out), buf_len(&j->out));
    buf_consume(&j->out, buf_len(&j->out));
    buf_shrink(&j->out, 2 * TAIL_CHUNK);
    j->last_write_ms = mono_ms();
}

static int id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A cluster member's tail: whether its resumed history sent this entry already. */
static bool sent_by_history(const struct tail_job *j, uint64_t id)
{
    return j->seen && bsearch(&id, j->seen, j->nseen, sizeof(id), id_cmp);
}

/* An entry from the queue: sent if it is news to this tail and matches. */
static bool tail_take(void *arg, const struct lc_entry *e)
{
    struct tail_job *j = arg;
    if (!ingest_ids_ordered()) /* A cluster member: every entry comes once. */
        return qry_match(j->q, e) && !sent_by_history(j, e->id) ? tail_visit(j, e) : true;
    if (e->id < j->next_id)
        return true; /* Read from the store already. */
    j->next_id = e->id + 1;
    return qry_match(j->q, e) ? tail_visit(j, e) : true;
}

static bool hist_row(void *arg, const struct lc_entry *e)
{
    struct tail_job *j = arg;
    if (!ingest_ids_ordered()) { /* A cluster's history: in arrival order, each once. */
        if (j->nseen == j->capseen) {
            size_t cap = j->capseen ? 2 * j->capseen : 1024;
            uint64_t *g = realloc(j->seen, cap * sizeof(*g));
            if (!g)
                return tail_visit(j, e);
            j->seen = g;
            j->capseen = cap;
        }
        j->seen[j->nseen++] = e->id;
        return tail_visit(j, e);
    }
    if (e->id < j->next_id)
        return true;
    j->next_id = e->id + 1;
    return tail_visit(j, e);
}

static void hist_error(void *arg, const char *why)
{
    (void)arg;
    log_warn("http: a live tail's history could not be read: %s", why);
}

static const struct qrun_sink hist_sink = {.row = hist_row, .error = hist_error};

static void hist_ready(void *owner)
{
    struct http_conn *h = owner;
    conn_schedule_resume(h->c);
}

/* Start reading [next_id, hi] from the store on the query pool: history, or entries on their
 * way at subscription. False when out of memory. */
static bool tail_history(struct http_conn *h, uint64_t hi)
{
    struct tail_job *j = h->hs;
    if (hi - j->next_id >= BACKLOG_MAX) {
        uint64_t skip = hi - j->next_id + 1 - BACKLOG_MAX;
        buf_printf(&j->out, "event: skipped\ndata: {\"skipped\":%" PRIu64 "}\n\n", skip);
        j->next_id += skip;
    }
    char err[QRY_ERR_MAX];
    struct qry *q = NULL;
    if (qry_compile(j->text, strlen(j->text), now_ms(), &q, err) < 0)
        return false;
    j->hist_hi = hi;
    j->hist = qrun_start_list(conn_loop(h->c), protocols_store(), q, j->next_id, hi, true, 0,
                              hist_ready, h);
    return j->hist != NULL;
}

/* The history run's rows, as the output takes them. True when it is done. */
static bool tail_history_drain(struct http_conn *h)
{
    struct tail_job *j = h->hs;
    enum qexec_status st = qrun_drain(j->hist, &hist_sink, j);
    if (st != QX_DONE)
        return false;
    qrun_close(j->hist);
    j->hist = NULL;
    if (j->seen) { /* A cluster's: live entries it sent too may still come. */
        qsort(j->seen, j->nseen, sizeof(*j->seen), id_cmp);
        j->seen_until = mono_ms() + SEEN_KEEP_MS;
    }
    if (j->next_id <= j->hist_hi)
        j->next_id = j->hist_hi + 1;
    return true;
}

/* A cluster member's tail resuming after Last-Event-ID: the entries after it in the
 * cluster's order, at most BACKLOG_MAX, read while new ones queue. False when out of memory. */
static bool tail_resume_cluster(struct http_conn *h)
{
    struct tail_job *j = h->hs;
    char err[QRY_ERR_MAX];
    struct qry *q = NULL;
    if (qry_compile(j->text, strlen(j->text), now_ms(), &q, err) < 0)
        return false;
    struct qrun_bound after = {j->resume_id, true, false};
    j->resume_id = 0;
    j->hist = qrun_start_order(conn_loop(h->c), q, after, (struct qrun_bound){0}, true, BACKLOG_MAX,
                               hist_ready, h);
    return j->hist != NULL;
}

/* Send what is new, a chunk at a time, as fast as the reader takes it. A full output pauses
 * the tail until it drains (resume); the tick drops a reader that stays full. */
static void tail_resume(struct http_conn *h)
{
    struct tail_job *j = h->hs;
    if (conn_out_full(h->c)) {
        if (!j->stalled_ms)
            j->stalled_ms = mono_ms();
        return;
    }
    j->stalled_ms = 0;
    j->chunk_full = false;
    if (j->resume_id) {
        if (!tail_resume_cluster(h))
            conn_abort(h->c, NULL); /* Out of memory. */
        return;                     /* The run's rows come through ready. */
    }
    if (j->hist && !tail_history_drain(h)) {
        tail_send(h);
        if (conn_out_full(h->c))
            j->stalled_ms = mono_ms();
        else if (j->chunk_full)
            conn_schedule_resume(h->c); /* More rows are waiting. */
        return;                         /* Else the pool's next rows call ready. */
    }
    uint64_t dropped;
    ingest_sub_take(&j->sub, 0, NULL, NULL, &dropped);
    uint64_t first = ingest_sub_next_id(&j->sub);
    if (dropped) { /* It fell BACKLOG_MAX behind: the queue let the oldest go. */
        buf_printf(&j->out, "event: skipped\ndata: {\"skipped\":%" PRIu64 "}\n\n", dropped);
        if (j->next_id < first)
            j->next_id = first;
    }
    /* Everything before the queue's first entry is decided: the store has it. (A cluster
     * member's live entries are not in id order, and it has no store to fill gaps from.) */
    uint64_t hi = first ? first - 1 : store_done_id(protocols_store());
    if (j->next_id <= hi && ingest_ids_ordered()) {
        tail_send(h);
        if (!tail_history(h, hi))
            conn_abort(h->c, NULL); /* Out of memory: a tail that cannot catch up is no tail. */
        return;                     /* The run's rows come through ready. */
    }
    bool more = false;
    if (first) {
        j->fed = true;
        ingest_sub_take(&j->sub, SIZE_MAX, tail_take, j, &dropped);
        more = j->chunk_full;
    }
    tail_send(h);
    if (conn_out_full(h->c)) {
        j->stalled_ms = mono_ms();
        return; /* Continues when the output drains. */
    }
    if (more)
        conn_schedule_resume(h->c); /* More to send: on the next turn. */
    else if (!j->fed && ingest_wait_conn(h->c, &j->waiter, 0) < 0)
        conn_abort(h->c, NULL); /* Out of memory: a tail that can never wake is no tail. */
}

static void tail_tick(struct http_conn *h, int64_t now)
{
    struct tail_job *j = h->hs;
    if (j->stalled_ms && now - j->stalled_ms >= STALL_MS) {
        size_t len;
        log_info("http: dropping live tail to %s: it does not keep up", conn_peer(h->c, &len));
        conn_abort(h->c, NULL);
        return;
    }
    if (j->seen && !j->hist && now >= j->seen_until) {
        free(j->seen);
        j->seen = NULL;
        j->nseen = j->capseen = 0;
    }
    if (!j->stalled_ms && now - j->last_write_ms >= KEEPALIVE_MS) {
        static const char ping[] = ": keepalive\n\n";
        buf_append(&j->out, ping, sizeof(ping) - 1);
        tail_send(h);
    }
}

static void tail_notify(struct ingest_sub *sub)
{
    conn_schedule_resume(sub->arg);
}

static void tail_cleanup(struct http_conn *h)
{
    struct tail_job *j = h->hs;
    ingest_wait_cancel(&j->waiter);
    ingest_unsubscribe(&j->sub);
    qrun_close(j->hist);
    qry_free(j->q);
    free(j->seen);
    buf_free(&j->out);
    free(j);
}

void http_get_tail(struct http_conn *h)
{
    char text[8192], err[QRY_ERR_MAX];
    long n = http_param(h, "q", text, sizeof(text));
    if (n == -2) {
        http_reply_error(h, 400, "bad q parameter (malformed percent-encoding, or too long)");
        return;
    }
    struct qry *q;
    if (qry_compile(n > 0 ? text : "", n > 0 ? (size_t)n : 0, now_ms(), &q, err) < 0) {
        http_reply_error(h, 400, err);
        return;
    }
    if (qry_has_pipes(q)) {
        qry_free(q);
        http_reply_error(h, 400, "a live tail takes a filter without pipes");
        return;
    }
    if (h->head_only) { /* The headers a GET would get, and no stream. */
        qry_free(q);
        http_begin(h, 200, "text/event-stream", "X-Accel-Buffering: no\r\n");
        http_end(h);
        return;
    }
    struct tail_job *j = calloc(1, sizeof(*j));
    if (!j) {
        qry_free(q);
        http_reply_error(h, 500, "out of memory");
        return;
    }
    j->q = q;
    memcpy(j->text, text, n > 0 ? (size_t)n : 0);
    uint64_t done = store_done_id(protocols_store());
    j->next_id = done + 1;
    size_t len;
    const char *last = http_header(&h->req, "Last-Event-ID", &len);
    if (last && len > 0 && len < 21) {
        char idv[24];
        memcpy(idv, last, len);
        idv[len] = 0;
        char *end;
        unsigned long long id = strtoull(idv, &end, 10);
        if (*end == 0 && id < done)
            j->next_id = id + 1;
        else if (*end == 0 && id && !protocols_store()) /* A cluster: after it, by arrival. */
            j->resume_id = id;
    }
    j->last_write_ms = mono_ms();
    j->sub.notify = tail_notify;
    j->sub.arg = h->c;
    j->sub.max_entries = BACKLOG_MAX;
    if (ingest_subscribe(conn_loop(h->c), &j->sub) < 0) {
        qry_free(q);
        free(j);
        http_reply_error(h, 503, "out of memory subscribing to new entries");
        return;
    }
    http_park(h, tail_resume, tail_cleanup, j);
    h->on_tick = tail_tick;
    http_begin(h, 200, "text/event-stream", "X-Accel-Buffering: no\r\n");
    /* Keep reading while streaming, so a client that goes away is noticed (and shutdown
     * closes the stream) at once; anything it sends is ignored. */
    conn_set_busy(h->c, false);
    static const char hello[] = "retry: 2000\n: connected\n\n";
    buf_append(&j->out, hello, sizeof(hello) - 1);
    tail_resume(h);
}
