/* httpc.c - one GET and its body, line by line (see httpc.h).
 *
 * The client asks for Connection: close, so a body without chunked coding simply ends when
 * the server closes; with chunked coding (the server streams every long answer, the live
 * tail included) the chunks are unwrapped into a second line reader, because a line may
 * span chunks. */
#define _GNU_SOURCE /* strcasestr */
#include "client/httpc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>

char *lcc_url_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(3 * strlen(s) + 1), *o = out;

    if (!out)
        return NULL;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

void lcc_http_close(struct lcc_http *h)
{
    lcc_stream_close(&h->s);
    lcc_reader_free(&h->rd);
}

int lcc_http_get(struct lcc_http *h, const struct lcc_opts *o, const char *target,
                 const char *extra_headers, char *err, size_t errlen)
{
    size_t cap = strlen(target) + (extra_headers ? strlen(extra_headers) : 0) +
                 (o->token ? strlen(o->token) : 0) + strlen(o->host) + 200;
    char *req, *line;
    size_t len;
    int n, rc;

    memset(h, 0, sizeof(*h));
    h->s.fd = -1;
    rc = lcc_stream_open(&h->s, o, o->http_port, err, errlen);
    if (rc < 0)
        return rc;
    req = malloc(cap);
    if (!req) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    n = snprintf(req, cap,
                 "GET %s HTTP/1.1\r\nHost: %s%s%s\r\nUser-Agent: logcaster\r\n"
                 "Connection: close\r\n%s%s%s%s\r\n",
                 target, strchr(o->host, ':') ? "[" : "", o->host, strchr(o->host, ':') ? "]" : "",
                 o->token ? "Authorization: Bearer " : "", o->token ? o->token : "",
                 o->token ? "\r\n" : "", extra_headers ? extra_headers : "");
    rc = lcc_stream_write(&h->s, req, (size_t)n, o->timeout_ms);
    free(req);
    if (rc < 0) {
        snprintf(err, errlen, "sending to %s:%d: %s", o->host, o->http_port, strerror(-rc));
        goto fail;
    }
    rc = lcc_stream_line(&h->s, o->timeout_ms, &line, &len);
    if (rc <= 0 || sscanf(line, "HTTP/1.%*d %d", &h->status) != 1) {
        snprintf(err, errlen, "%s:%d: %s", o->host, o->http_port,
                 rc == 0  ? "closed the connection before answering"
                 : rc < 0 ? strerror(-rc)
                          : "not an HTTP answer (is this the HTTP port?)");
        rc = rc < 0 ? rc : -EPROTO;
        goto fail;
    }
    for (;;) { /* Headers, up to the blank line. */
        rc = lcc_stream_line(&h->s, o->timeout_ms, &line, &len);
        if (rc <= 0) {
            snprintf(err, errlen, "%s:%d: the answer's head was cut short", o->host, o->http_port);
            rc = rc < 0 ? rc : -EPROTO;
            goto fail;
        }
        if (len == 0)
            break;
        if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strcasestr(line, "chunked"))
            h->chunked = true;
    }
    lcc_reader_init(&h->rd);
    return 0;
fail:
    lcc_http_close(h);
    return rc;
}

int lcc_http_line(struct lcc_http *h, int timeout_ms, char **line, size_t *len)
{
    struct lcc_reader *in = &h->s.rd;

    if (!h->chunked) {
        int rc = lcc_stream_line(&h->s, timeout_ms, line, len);
        return rc == 0 ? lcc_reader_rest(in, line, len) : rc;
    }
    for (;;) {
        char *sz;
        size_t szl, avail;
        long got;
        int rc;

        if (lcc_reader_next(&h->rd, line, len))
            return 1;
        if (h->body_done)
            return lcc_reader_rest(&h->rd, line, len);
        if (h->chunk_left == 0) {
            if (h->chunk_crlf) {
                rc = lcc_stream_line(&h->s, timeout_ms, &sz, &szl);
                if (rc <= 0)
                    return rc;
                h->chunk_crlf = false;
            }
            rc = lcc_stream_line(&h->s, timeout_ms, &sz, &szl);
            if (rc <= 0)
                return rc; /* Cut off mid-body: the caller sees the end (or the error). */
            char *end;
            unsigned long long n = strtoull(sz, &end, 16);
            if (end == sz)
                return -EPROTO;
            if (n == 0) {
                h->body_done = true;
                continue;
            }
            h->chunk_left = n;
            h->chunk_crlf = true;
        }
        avail = in->end - in->start;
        if (avail == 0) {
            got = lcc_stream_fill(&h->s, timeout_ms);
            if (got <= 0)
                return (int)got;
            continue;
        }
        if (avail > h->chunk_left)
            avail = (size_t)h->chunk_left;
        rc = lcc_reader_append(&h->rd, in->buf + in->start, avail);
        if (rc < 0)
            return rc;
        in->start += avail;
        in->scan = 0;
        h->chunk_left -= avail;
    }
}

void lcc_http_error(struct lcc_http *h, int timeout_ms, char *out, size_t cap)
{
    static const char *path[] = {"error", NULL};
    char *line;
    size_t len;

    snprintf(out, cap, "HTTP status %d", h->status);
    if (lcc_http_line(h, timeout_ms, &line, &len) != 1)
        return;
    yajl_val v = yajl_tree_parse(line, NULL, 0);
    yajl_val e = v ? yajl_tree_get(v, path, yajl_t_string) : NULL;
    snprintf(out, cap, "%s", e ? YAJL_GET_STRING(e) : line);
    yajl_tree_free(v);
}
