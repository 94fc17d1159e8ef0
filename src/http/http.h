/* http.h - the HTTP/1.1 protocol: connection handling and responses (http.c) shared by the
 * endpoint handlers (http_api.c, http_ingest.c, http_tail.c).
 *
 * One request at a time per connection: while a handler works (a sliced query, a body waiting
 * for durability, a live tail), the connection is busy and pipelined requests wait in its
 * input buffer, so responses keep request order. A handler either answers at once (http_reply
 * and friends end the request), or parks itself with http_park and is called again through
 * its resume function until it ends the request. */
#ifndef LC_HTTP_H
#define LC_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/http_parse.h"

struct conn;

struct http_conn {
    struct conn *c;
    int state;
    char *head; /* A copy of the current request's head; req points into it. */
    size_t head_cap;
    struct http_request req;
    struct buf body; /* The decoded request body. */
    struct http_chunked chunk;
    uint64_t body_left; /* Content-Length bytes still to read. */
    bool head_only;     /* HEAD: headers without the body. */
    bool streaming;     /* The response is being sent with chunked encoding. */
    bool closing;       /* The last response is out: close, ignore further input. */
    size_t scanned;     /* Head bytes already searched for a line end. */
    int64_t req_start_ms;
    int64_t req_start_ns;
    /* A parked handler. */
    void (*resume)(struct http_conn *h);
    void (*cleanup)(struct http_conn *h);
    void (*on_tick)(struct http_conn *h, int64_t now_mono_ms); /* About 4 times a second. */
    void *hs;
};

/* A complete response with a body (Content-Length); ends the request. */
void http_reply(struct http_conn *h, int status, const char *ctype, const void *body, size_t len);
/* {"error":"msg"} with status; ends the request. */
void http_reply_error(struct http_conn *h, int status, const char *msg);
/* A JSON body built in b; ends the request. */
void http_reply_json(struct http_conn *h, int status, const struct buf *b);

/* A streamed response (chunked transfer encoding): headers now, then http_send chunks, then
 * http_end. extra_headers: "Name: value\r\n" lines or NULL. */
void http_begin(struct http_conn *h, int status, const char *ctype, const char *extra_headers);
void http_send(struct http_conn *h, const void *p, size_t n);
void http_end(struct http_conn *h);

/* Park the handler: resume runs when the connection's output has room, the store made
 * progress (it waited with ingest_wait_conn) or after conn_schedule_resume; cleanup frees hs
 * when the request ends or the connection closes. */
void http_park(struct http_conn *h, void (*resume)(struct http_conn *h),
               void (*cleanup)(struct http_conn *h), void *hs);

/* A query parameter, percent-decoded into out[0..cap) (NUL-terminated). Returns its length,
 * -1 when absent, -2 when malformed or too long. */
long http_param(const struct http_conn *h, const char *name, char *out, size_t cap);

/* The handlers (one per route). */
void http_get_asset(struct http_conn *h);
void http_get_healthz(struct http_conn *h);
void http_get_stats(struct http_conn *h);
void http_get_metrics(struct http_conn *h);
void http_get_query(struct http_conn *h);
void http_get_histogram(struct http_conn *h);
void http_get_tail(struct http_conn *h);
void http_post_logs(struct http_conn *h);

#endif
