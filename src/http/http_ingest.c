/* http_ingest.c - POST /api/v1/logs: a body of newline-separated log lines, plain text (as on
 * the ingest port) or JSON objects, stored as one batch and acknowledged only once durable.
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
#include "proto/ingest_parse.h"
#include "proto/json_line.h"
#include "proto/line.h"
#include "store/store.h"

struct post_job {
    uint64_t first_id, last_id;
    size_t n;
};

static void post_cleanup(struct http_conn *h)
{
    free(h->hs);
}

static void post_wait(struct http_conn *h)
{
    struct post_job *j = h->hs;
    switch (store_range_state(conn_store(h->c), j->first_id, j->last_id)) {
    case STORE_PENDING:
        conn_wait_store(h->c);
        return;
    case STORE_FAILED:
        http_reply_error(h, 503, "store unavailable: the entries were not stored");
        return;
    case STORE_DURABLE: {
        char body[128];
        int k = snprintf(body, sizeof(body),
                         "{\"stored\":%zu,\"first_id\":%" PRIu64 ",\"last_id\":%" PRIu64 "}\n",
                         j->n, j->first_id, j->last_id);
        http_reply(h, 200, "application/json", body, (size_t)k);
        return;
    }
    }
}

/* Parsed lines: messages live in text (offsets until the batch is complete). */
struct batch {
    struct lc_entry *e;
    size_t n, cap;
    struct buf text;
};

static int batch_add(struct batch *b, struct conn *c, int64_t now, int level, int64_t ts_ms,
                     const char *msg, size_t len)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        struct lc_entry *e = realloc(b->e, cap * sizeof(*e));
        if (!e)
            return -ENOMEM;
        b->e = e;
        b->cap = cap;
    }
    /* text may move while it grows: messages are offsets until the batch is complete. */
    if (buf_reserve(&b->text, 4 * len + 1) < 0)
        return -ENOMEM;
    size_t off = b->text.end;
    if (line_is_clean(msg, len)) {
        memcpy(b->text.data + off, msg, len);
        b->text.end += len;
    } else {
        b->text.end += line_escape(msg, len, b->text.data + off);
    }
    struct lc_entry *e = &b->e[b->n++];
    memset(e, 0, sizeof(*e));
    e->recv_ms = now;
    e->ts_ms = ts_ms == INT64_MIN ? now : ts_ms;
    e->source = conn_peer(c, &e->source_len);
    e->msg = (const char *)(uintptr_t)off;
    e->msg_len = b->text.end - off;
    if (level < 0)
        level = line_detect_level(b->text.data + off, e->msg_len);
    e->level = (uint8_t)(level >= 0 ? level : LC_INFO);
    return 0;
}

static bool json_only(const struct http_conn *h)
{
    size_t len;
    const char *ct = http_header(&h->req, "Content-Type", &len);
    return ct && (http_list_has(ct, len, "application/x-ndjson") ||
                  http_list_has(ct, len, "application/json") ||
                  http_list_has(ct, len, "application/jsonlines"));
}

void http_post_logs(struct http_conn *h)
{
    struct conn *c = h->c;
    const struct config *cfg = conn_config(c);
    struct batch b = {0};
    struct buf scratch = {0};
    bool strict_json = json_only(h);
    const char *p = buf_head(&h->body);
    size_t n = buf_len(&h->body), line_no = 0;
    int64_t now = now_ms();
    char err[200] = "";
    int status = 0;
    while (n > 0 && !status) {
        size_t len, take = line_next(p, n, &len);
        if (!take)
            take = len = n; /* The last line needs no newline. */
        line_no++;
        if (len > cfg->max_line) {
            snprintf(err, sizeof(err), "line %zu is longer than --max-line (%zu bytes)", line_no,
                     cfg->max_line);
            status = 413;
        } else if (len == 0) {
            /* Blank lines carry nothing. */
        } else if (strict_json || json_line_looks(p, len)) {
            struct json_line jl;
            char why[160];
            buf_consume(&scratch, buf_len(&scratch));
            if (json_line_parse(p, len, &scratch, &jl, why, sizeof(why)) < 0) {
                snprintf(err, sizeof(err), "line %zu: %s", line_no, why);
                status = 400;
            } else if (batch_add(&b, c, now, jl.level, jl.ts_ms, scratch.data + jl.msg_off,
                                 jl.msg_len) < 0) {
                status = 500;
            }
        } else {
            struct ingest_line il;
            ingest_parse(p, len, &il);
            if (il.error) {
                snprintf(err, sizeof(err), "line %zu: %s", line_no, il.error);
                status = 400;
            } else if (batch_add(&b, c, now, il.level, il.ts_ms, il.msg, il.msg_len) < 0) {
                status = 500;
            }
        }
        p += take;
        n -= take;
    }
    buf_free(&scratch);
    struct server_counters *k = server_counters(conn_server(c));
    atomic_fetch_add_explicit((_Atomic uint64_t *)&k->lines_in, line_no, memory_order_relaxed);
    struct post_job *j = status ? NULL : calloc(1, sizeof(*j));
    if (!status && !j)
        status = 500;
    if (!status && b.n) {
        for (size_t i = 0; i < b.n; i++)
            b.e[i].msg = b.text.data + (uintptr_t)b.e[i].msg;
        if (store_append(conn_store(c), b.e, b.n) < 0) {
            status = 503;
            snprintf(err, sizeof(err), "store unavailable");
        } else {
            j->n = b.n;
            j->first_id = b.e[0].id;
            j->last_id = b.e[b.n - 1].id;
            uint64_t per_level[LC_LEVEL_COUNT] = {0};
            for (size_t i = 0; i < b.n; i++)
                per_level[b.e[i].level]++;
            for (int l = 0; l < LC_LEVEL_COUNT; l++)
                atomic_fetch_add_explicit((_Atomic uint64_t *)&k->lines_by_proto[SLOT_HTTP][l],
                                          per_level[l], memory_order_relaxed);
        }
    }
    free(b.e);
    buf_free(&b.text);
    if (status) {
        free(j);
        atomic_fetch_add_explicit((_Atomic uint64_t *)&k->lines_rejected, line_no,
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
