/* http.c - HTTP/1.1 connections: request framing (head, Content-Length and chunked bodies,
 * 100-continue), limits and timeouts, keep-alive and pipelining, routing, and responses.
 * The endpoints live in http_api.c, http_ingest.c and http_tail.c. */
#include "http/http.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/policy.h"
#include "core/server.h"
#include "proto/json.h"
#include "proto/protocols.h"

#define MAX_TARGET 8192

enum { HS_HEAD, HS_BODY, HS_HANDLING };

static const char *reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* "Date:" value, formatted once per second per thread. */
static const char *http_date(void)
{
    static __thread char cached[40];
    static __thread time_t cached_at = -1;
    time_t t = time(NULL);
    if (t != cached_at) {
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(cached, sizeof(cached), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached_at = t;
    }
    return cached;
}

static bool keep_alive(const struct http_conn *h)
{
    return h->req.keep_alive;
}

static void write_head(struct http_conn *h, int status, const char *ctype, const char *framing,
                       const char *extra)
{
    conn_printf(h->c,
                "HTTP/1.1 %d %s\r\nServer: logcaster/" LC_VERSION "\r\nDate: %s\r\n"
                "Content-Type: %s\r\nCache-Control: no-store\r\n%s%s%s\r\n",
                status, reason(status), http_date(), ctype, framing, extra ? extra : "",
                keep_alive(h) ? "" : "Connection: close\r\n");
}

/* The request is answered: free the handler's state, then read the next one (or close). */
static void request_done(struct http_conn *h)
{
    if (h->cleanup)
        h->cleanup(h);
    h->resume = NULL;
    h->cleanup = NULL;
    h->on_tick = NULL;
    h->hs = NULL;
    h->streaming = false;
    h->state = HS_HEAD;
    h->req_start_ms = 0;
    buf_consume(&h->body, buf_len(&h->body));
    buf_shrink(&h->body, 64 * 1024);
    conn_set_busy(h->c, false);
    if (!keep_alive(h)) {
        h->closing = true; /* Whatever the peer sent after this request is ignored. */
        conn_close_after_flush(h->c);
    }
}

void http_reply(struct http_conn *h, int status, const char *ctype, const void *body, size_t len)
{
    char framing[48];
    snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", len);
    write_head(h, status, ctype, framing, NULL);
    if (!h->head_only && len)
        conn_write(h->c, body, len);
    request_done(h);
}

void http_reply_json(struct http_conn *h, int status, const struct buf *b)
{
    http_reply(h, status, "application/json", buf_head(b), buf_len(b));
}

void http_reply_error(struct http_conn *h, int status, const char *msg)
{
    h->req.keep_alive = false; /* After an error the connection closes: a clean slate. */
    struct buf b = {0};
    buf_append(&b, "{\"error\":", 9);
    json_str(&b, msg, strlen(msg));
    buf_append(&b, "}\n", 2);
    http_reply_json(h, status, &b);
    buf_free(&b);
}

void http_begin(struct http_conn *h, int status, const char *ctype, const char *extra_headers)
{
    write_head(h, status, ctype, "Transfer-Encoding: chunked\r\n", extra_headers);
    h->streaming = true;
}

void http_send(struct http_conn *h, const void *p, size_t n)
{
    if (h->head_only || n == 0)
        return;
    char size[24];
    int k = snprintf(size, sizeof(size), "%zx\r\n", n);
    conn_write(h->c, size, (size_t)k);
    conn_write(h->c, p, n);
    conn_write(h->c, "\r\n", 2);
}

void http_end(struct http_conn *h)
{
    if (!h->head_only)
        conn_write(h->c, "0\r\n\r\n", 5);
    request_done(h);
}

void http_park(struct http_conn *h, void (*resume)(struct http_conn *h),
               void (*cleanup)(struct http_conn *h), void *hs)
{
    h->resume = resume;
    h->cleanup = cleanup;
    h->hs = hs;
}

long http_param(const struct http_conn *h, const char *name, char *out, size_t cap)
{
    if (!h->req.query)
        return -1;
    return http_query_param(h->req.query, h->req.query_len, name, out, cap);
}

/* An error before or instead of a handler: answer and close (the stream may be out of step). */
static void fail(struct http_conn *h, int status, const char *msg)
{
    h->req.keep_alive = false;
    http_reply_error(h, status, msg);
}

/* ------------------------------------------------------------------------------------------ */
/* Routing. */

struct route {
    const char *path;
    void (*get)(struct http_conn *h);  /* GET and HEAD. */
    void (*post)(struct http_conn *h); /* POST. */
    bool open;                         /* Served without authentication. */
};

static const struct route routes[] = {
    {"/", http_get_asset, NULL, true},
    {"/index.html", http_get_asset, NULL, true},
    {"/app.js", http_get_asset, NULL, true},
    {"/app.css", http_get_asset, NULL, true},
    {"/healthz", http_get_healthz, NULL, true},
    {"/metrics", http_get_metrics, NULL, false},
    {"/api/v1/stats", http_get_stats, NULL, false},
    {"/api/v1/query", http_get_query, NULL, false},
    {"/api/v1/histogram", http_get_histogram, NULL, false},
    {"/api/v1/tail", http_get_tail, NULL, false},
    {"/api/v1/logs", NULL, http_post_logs, false},
};

/* Authorization: Bearer <token>, or ?access_token= (EventSource cannot send headers). */
static bool authorized(struct http_conn *h)
{
    if (!policy_auth_required(ROLE_HTTP))
        return true;
    size_t len;
    const char *v = http_header(&h->req, "Authorization", &len);
    char tok[POLICY_TOKEN_MAX + 1];
    long tl = -1;
    if (v && len > 7 && strncasecmp(v, "Bearer ", 7) == 0) {
        v += 7, len -= 7;
        while (len && *v == ' ')
            v++, len--;
        tl = len < sizeof(tok) ? (long)len : -1;
        if (tl >= 0)
            memcpy(tok, v, (size_t)tl);
    } else {
        tl = http_param(h, "access_token", tok, sizeof(tok));
    }
    if (tl <= 0)
        return false; /* No secret offered: 401, not counted as a wrong guess. */
    if (policy_check_token(ROLE_HTTP, conn_sockaddr(h->c), tok, (size_t)tl, mono_ms()))
        return true;
    size_t plen;
    log_warn("http: authentication failed from %s", conn_peer(h->c, &plen));
    return false;
}

static void dispatch(struct http_conn *h)
{
    h->state = HS_HANDLING;
    conn_set_busy(h->c, true);
    const struct http_request *r = &h->req;
    if (r->method == HTTP_OTHER) {
        http_reply_error(h, 501, "method not implemented");
        return;
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const struct route *rt = &routes[i];
        if (strlen(rt->path) != r->path_len || memcmp(rt->path, r->path, r->path_len) != 0)
            continue;
        if (!rt->open && !authorized(h)) {
            static const char body[] = "{\"error\":\"authentication required: send "
                                       "Authorization: Bearer <token>\"}\n";
            char framing[48];
            snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", sizeof(body) - 1);
            h->req.keep_alive = false;
            write_head(h, 401, "application/json", framing,
                       "WWW-Authenticate: Bearer realm=\"logcaster\"\r\n");
            if (!h->head_only)
                conn_write(h->c, body, sizeof(body) - 1);
            request_done(h);
            return;
        }
        if ((r->method == HTTP_GET || r->method == HTTP_HEAD) && rt->get) {
            rt->get(h);
            return;
        }
        if (r->method == HTTP_POST && rt->post) {
            rt->post(h);
            return;
        }
        char allow[64];
        snprintf(allow, sizeof(allow), "Allow: %s\r\n", rt->get ? "GET, HEAD" : "POST");
        struct buf b = {0};
        buf_printf(&b, "{\"error\":\"method %.*s not allowed on %s\"}\n", (int)r->method_len,
                   r->method_str, rt->path);
        char framing[48];
        snprintf(framing, sizeof(framing), "Content-Length: %zu\r\n", buf_len(&b));
        h->req.keep_alive = false;
        write_head(h, 405, "application/json", framing, allow);
        if (!h->head_only)
            conn_write(h->c, buf_head(&b), buf_len(&b));
        buf_free(&b);
        request_done(h);
        return;
    }
    http_reply_error(h, 404, "no such resource; see / for the console and /api/v1/ for the API");
}

/* ------------------------------------------------------------------------------------------ */
/* Reading requests. */

/* Take a parsed head: copy it (req must outlive the input buffer), check the body framing. */
static int start_request(struct http_conn *h, const char *p, size_t head_len)
{
    const struct config *cfg = conn_config(h->c);
    if (h->head_cap < head_len) {
        char *n = realloc(h->head, head_len);
        if (!n)
            return -500;
        h->head = n;
        h->head_cap = head_len;
    }
    memcpy(h->head, p, head_len);
    const char *err;
    long r = http_parse_head(h->head, head_len, head_len, MAX_TARGET, &h->req, &err);
    lc_assert(r == (long)head_len);
    h->head_only = h->req.method == HTTP_HEAD;
    memset(&h->chunk, 0, sizeof(h->chunk));
    h->body_left = 0;
    if (h->req.chunked) {
        h->state = HS_BODY;
    } else if (h->req.has_length) {
        if (h->req.content_length > cfg->http_max_body)
            return -413;
        h->body_left = h->req.content_length;
        h->state = h->body_left ? HS_BODY : HS_HANDLING;
    } else if (h->req.method == HTTP_POST || h->req.method == HTTP_PUT ||
               h->req.method == HTTP_PATCH) {
        return -411;
    } else {
        h->state = HS_HANDLING;
    }
    if (h->state == HS_BODY && h->req.expect_continue)
        conn_write(h->c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static size_t read_body(struct http_conn *h, const char *p, size_t n)
{
    const struct config *cfg = conn_config(h->c);
    if (!h->req.chunked) {
        size_t take = n < h->body_left ? n : (size_t)h->body_left;
        if (buf_append(&h->body, p, take) < 0) {
            fail(h, 500, "out of memory");
            return n;
        }
        h->body_left -= take;
        if (h->body_left == 0)
            h->state = HS_HANDLING;
        return take;
    }
    if (buf_reserve(&h->body, n) < 0) {
        fail(h, 500, "out of memory");
        return n;
    }
    size_t out = 0;
    long used = http_chunked_decode(&h->chunk, p, n, h->body.data + h->body.end, &out);
    if (used < 0) {
        fail(h, 400, "malformed chunked body");
        return n;
    }
    h->body.end += out;
    if (buf_len(&h->body) > cfg->http_max_body) {
        fail(h, 413, "request body too large");
        return n;
    }
    if (h->chunk.done)
        h->state = HS_HANDLING;
    return (size_t)used;
}

static size_t http_input(struct conn *c, const char *p, size_t n, bool eof)
{
    struct http_conn *h = conn_state(c);
    const struct config *cfg = conn_config(c);
    if (h->closing || h->state == HS_HANDLING)
        return n; /* Only a live tail reads while handling: what its client sends is ignored. */
    if (n == 0)
        return 0;
    if (h->state == HS_HEAD) {
        if (!h->req_start_ms) {
            h->req_start_ms = mono_ms();
            h->req_start_ns = mono_ns();
            h->scanned = 0;
        }
        /* Parse only once a new line has arrived (or the limit is passed): a head trickled
         * byte by byte must not be parsed again for every byte. */
        if (n <= h->scanned ||
            (n <= cfg->http_max_header && !memchr(p + h->scanned, '\n', n - h->scanned))) {
            h->scanned = n;
            if (!eof)
                return 0;
        }
        h->scanned = n;
        const char *err = NULL;
        long r = http_parse_head(p, n, cfg->http_max_header, MAX_TARGET, &h->req, &err);
        if (r == 0) {
            if (eof) {
                h->req.keep_alive = false;
                fail(h, 400, "incomplete request");
                return n;
            }
            return 0;
        }
        if (r < 0) {
            fail(h, (int)-r, err ? err : "bad request");
            return n;
        }
        int rc = start_request(h, p, (size_t)r);
        if (rc < 0) {
            fail(h, -rc,
                 rc == -413   ? "request body too large"
                 : rc == -411 ? "Content-Length or chunked Transfer-Encoding required"
                              : "out of memory");
            return n;
        }
        if (h->state == HS_HANDLING)
            dispatch(h);
        return (size_t)r;
    }
    if (h->state == HS_BODY) {
        size_t used = read_body(h, p, n);
        if (h->state == HS_HANDLING)
            dispatch(h);
        return used;
    }
    return 0;
}

static int http_open(struct conn *c)
{
    struct http_conn *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->c = c;
    conn_set_state(c, h);
    return 0;
}

static void http_close(struct conn *c)
{
    struct http_conn *h = conn_state(c);
    if (!h)
        return;
    if (h->cleanup)
        h->cleanup(h);
    free(h->head);
    buf_free(&h->body);
    free(h);
}

static void http_resume(struct conn *c)
{
    struct http_conn *h = conn_state(c);
    if (h && h->resume)
        h->resume(h);
}

/* A request must arrive whole within --http-request-timeout (slowloris). */
static void http_tick(struct conn *c, int64_t now)
{
    struct http_conn *h = conn_state(c);
    if (h && h->on_tick) {
        h->on_tick(h, now);
        return;
    }
    if (!h || h->state == HS_HANDLING || !h->req_start_ms)
        return;
    if (now - h->req_start_ms > (int64_t)conn_config(c)->http_request_timeout_s * 1000) {
        size_t len;
        log_info("http: closing %s: request not complete within %d s", conn_peer(c, &len),
                 conn_config(c)->http_request_timeout_s);
        h->req_start_ms = 0;
        fail(h, 408, "request not complete in time");
    }
}

/* A connection refused by the access policy: 403 for who it is, 429 (retry in a second) for
 * how many. A line timeout closes without a word: a request has its own 408 (http_tick). */
static int http_refuse(char *out, size_t cap, const struct config *cfg, const char *peer,
                       enum policy_verdict v)
{
    (void)cfg;
    (void)peer;
    const char *why = policy_verdict_text(v);
    int status = v == POLICY_DENIED || v == POLICY_LOCAL_ONLY ? 403 : 429;
    char body[160];
    int blen = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", why);
    return snprintf(out, cap,
                    "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                    "Connection: close\r\n%s\r\n%s",
                    status, status == 403 ? "Forbidden" : "Too Many Requests", blen,
                    status == 429 ? "Retry-After: 1\r\n" : "", body);
}

const struct proto proto_http = {
    .name = "http",
    .open = http_open,
    .input = http_input,
    .resume = http_resume,
    .close = http_close,
    .tick = http_tick,
    .refuse = http_refuse,
    .slot = SLOT_HTTP,
};
