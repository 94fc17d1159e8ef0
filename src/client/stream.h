/* stream.h - one client connection to the server, plain TCP or TLS (OpenSSL), with the line
 * reader and deadlines of net.h on top. The query commands and the HTTP client (tail, formatted
 * query output) read and write through it, so --tls works the same for all of them. */
#ifndef LCC_STREAM_H
#define LCC_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "client/net.h"
#include "client/util.h"

struct lcc_stream {
    int fd;               /* -1 when closed. */
    void *ssl;            /* SSL *, or NULL for plain TCP. */
    void *ctx;            /* SSL_CTX *, or NULL. */
    struct lcc_reader rd; /* Bytes received and not yet taken. */
};

/* Connect to o->host:port within o->timeout_ms, with a TLS handshake (the server's certificate
 * verified against o->tls_ca or the system's CAs, and its name or address checked) when
 * o->tls is set. Returns 0, or a negative errno with one sentence in err. */
int lcc_stream_open(struct lcc_stream *s, const struct lcc_opts *o, int port, char *err,
                    size_t errlen);

/* Close and free; safe on a zeroed or already closed stream (fd must be -1 or open). */
void lcc_stream_close(struct lcc_stream *s);

/* Write all len bytes, waiting at most timeout_ms without progress. Returns 0 or -errno. */
int lcc_stream_write(struct lcc_stream *s, const void *buf, size_t len, int timeout_ms);

/* Receive more bytes into s->rd, waiting at most timeout_ms (-1: forever, until a signal,
 * which gives -EINTR). Returns bytes added, 0 at end of stream, or -errno (-ETIMEDOUT). */
long lcc_stream_fill(struct lcc_stream *s, int timeout_ms);

/* The next line (as lcc_reader_next: borrowed until the next call), waiting at most
 * timeout_ms between bytes. Returns 1, 0 at end of stream, or -errno. */
int lcc_stream_line(struct lcc_stream *s, int timeout_ms, char **line, size_t *len);

#endif
