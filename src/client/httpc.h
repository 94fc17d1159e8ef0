/* httpc.h - the little HTTP/1.1 client the CLI needs for the server's JSON API: one GET per
 * connection (Connection: close), over plain TCP or TLS, with the body read line by line
 * (chunked transfer coding decoded). */
#ifndef LCC_HTTPC_H
#define LCC_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/stream.h"

struct lcc_http {
    struct lcc_stream s;
    int status;           /* The response's status code. */
    bool chunked;         /* Transfer-Encoding: chunked. */
    bool body_done;       /* The last chunk was read. */
    uint64_t chunk_left;  /* Bytes of the current chunk not yet moved to body. */
    bool chunk_crlf;      /* A chunk's CRLF is still to be read before the next size. */
    struct lcc_reader rd; /* Decoded body bytes. */
};

/* Percent-encode s for a URL query value into a malloc'd string (NULL on ENOMEM). */
char *lcc_url_encode(const char *s);

/* Connect to o->host:o->http_port and send "GET target" with the token (Authorization:
 * Bearer) and extra_headers ("Name: value\r\n" lines, or NULL), then read the response head.
 * Returns 0 with h->status set, or a negative errno with one sentence in err. h is closed on
 * failure. */
int lcc_http_get(struct lcc_http *h, const struct lcc_opts *o, const char *target,
                 const char *extra_headers, char *err, size_t errlen);

/* The next line of the body (borrowed until the next call), waiting at most timeout_ms (-1:
 * until a signal) between bytes. Returns 1, 0 at the end of the body, or -errno. */
int lcc_http_line(struct lcc_http *h, int timeout_ms, char **line, size_t *len);

/* After an error status: the server's {"error":"..."} sentence (or the first line of the
 * body, or the status), copied into out. */
void lcc_http_error(struct lcc_http *h, int timeout_ms, char *out, size_t cap);

void lcc_http_close(struct lcc_http *h); /* Safe twice. */

#endif
