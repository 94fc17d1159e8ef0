/* http_ingest.c - POST /api/v1/logs: a body of newline-separated log lines in any form the log
 * port takes (plain text, syslog, JSON objects, the seed's framed forms), parsed by the same
 * code (ingest/batch.h), stored as one batch and acknowledged only once durable.
 *
 * All or nothing: the whole body is parsed before anything is stored, so a malformed JSON line
 * gets a 400 naming its line number and nothing of the request is kept. The reply,
 * {"stored":n,"first_id":a,"last_id":b}, is sent when the store says every entry of the batch
 * is as durable as the --fsync policy promises; a store failure answers 503 instead. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/server.h"
#include "http/http.h"
#include "ingest/batch.h"
#include "ingest/pipeline.h"
#include "proto/line.h"

struct post_job {
    struct ingest_ticket t;
    size_t n;
    struct ingest_waiter waiter; /* Until the whole ticket is decided. */
};

static void post_cleanup(struct http_conn *h)
{
    struct post_job *j = h->hs;
    ingest_wait_cancel(&j->waiter);
    free(j);
}

static void post_wait(struct http_conn *h)
{
    struct post_job *j = h->hs;
    switch (ingest_ticket_state(&j->t)) {
    case INGEST_PENDING:
        if (ingest_wait_conn(h->c, &j->waiter, j->t.last_id) < 0)
            http_reply_error(h, 503, "out of memory waiting for the store");
        return;
    case INGEST_FAILED: {
        char why[160];
        snprintf(why, sizeof(why), "%s: the entries were not stored", ingest_failure());
        http_reply_error(h, 503, why);
        return;
    }
    case INGEST_DURABLE: {
        char body[128];
        int k = snprintf(body, sizeof(body),
                         "{\"stored\":%zu,\"first_id\":%" PRIu64 ",\"last_id\":%" PRIu64 "}\n",
                         j->n, j->t.first_id, j->t.last_id);
        http_reply(h, 200, "application/json", body, (size_t)k);
        return;
    }
    }
}

static bool json_only(const struct http_conn *h)
{
    size_t len;
    const char *ct = http_header(&h->req, "Content-Type", &len);
    return ct && (http_list_has(ct, len, "application/x-ndjson") ||
                  http_list_has(ct, len, "application/json") ||
                  http_list_has(ct, len, "application/jsonlines"));
}

/* Parse the whole body into the thread's batch. Returns 0, or an HTTP status with the reason
 * in err (nothing of the request is kept then). */
static int parse_body(struct http_conn *h, struct ingest_batch *b, int64_t now, size_t *lines,
                      char *err, size_t errcap)
{
    const struct config *cfg = conn_config(h->c);
    unsigned flags = INGEST_JSON_STRICT | (json_only(h) ? INGEST_JSON_ONLY : 0);
    size_t peer_len;
    const char *peer = conn_peer(h->c, &peer_len);
    const char *p = buf_head(&h->body);
    size_t n = buf_len(&h->body);
    while (n > 0) {
        size_t len, take = line_next(p, n, &len);
        if (!take)
            take = len = n; /* The last line needs no newline. */
        ++*lines;
        if (len > cfg->max_line) {
            snprintf(err, errcap, "line %zu is longer than --max-line (%zu bytes)", *lines,
                     cfg->max_line);
            return 413;
        }
        struct ingest_msg m;
        int r = ingest_parse_msg(b, p, len, now, flags, &m);
        if (r < 0) {
            snprintf(err, errcap, "line %zu: %s", *lines, m.error);
            return 400;
        }
        if (r == 0 && !ingest_batch_add(b, &m, peer, peer_len, now))
            return 500;
        p += take;
        n -= take;
    }
    return 0;
}

void http_post_logs(struct http_conn *h)
{
    struct conn *c = h->c;
    struct server_counters *k = server_counters(conn_server(c));
    struct ingest_batch *b = ingest_batch_get(conn_config(c)->max_line);
    struct post_job *j = calloc(1, sizeof(*j));
    char err[200] = "";
    size_t lines = 0;
    int status = b && j ? parse_body(h, b, now_ms(), &lines, err, sizeof(err)) : 500;
    atomic_fetch_add_explicit((_Atomic uint64_t *)&k->lines_in, lines, memory_order_relaxed);
    if (!status) {
        j->n = ingest_batch_count(b);
        if (ingest_submit(b, k, SLOT_HTTP, &j->t) < 0) {
            status = 503;
            snprintf(err, sizeof(err), "%s", ingest_failure());
            lines = 0; /* Counted as rejected by the pipeline. */
        }
    }
    if (status) {
        if (b)
            ingest_batch_reset(b);
        free(j);
        atomic_fetch_add_explicit((_Atomic uint64_t *)&k->lines_rejected, lines,
                                  memory_order_relaxed);
        http_reply_error(h, status, err[0] ? err : "out of memory");
        return;
    }
    if (j->n == 0) {
        free(j);
        static const char none[] = "{\"stored\":0,\"first_id\":null,\"last_id\":null}\n";
        http_reply(h, 200, "application/json", none, sizeof(none) - 1);
        return;
    }
    http_park(h, post_wait, post_cleanup, j);
    post_wait(h);
}
